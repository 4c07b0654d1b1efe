"""DRF authentication with the short-lived JWT Gatehouse adds to every request.

Gatehouse verifies the browser's session (or a native client's bearer
token), then sends the upstream ``Authorization: Bearer <JWT>``: typ at+jwt,
signed with a key published at ``<public_url>/oauth2/jwks.json``, with iss =
public_url and aud = the route's audience. This class verifies that token
against pinned settings and maps it to a Django user. A request that did not
come through Gatehouse has no such token and is not authenticated, whatever
``X-Auth-Request-*`` headers it carries.
"""
import logging

import jwt
from jwt.exceptions import PyJWKClientError
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from . import conf, jwks, users

log = logging.getLogger("gatehouse_auth")

# Gatehouse's tokens are well under 2 KiB; this stops oversized input before
# any parsing.
MAX_TOKEN_BYTES = 8192
ACCESS_TOKEN_TYPES = ("at+jwt", "application/at+jwt")  # RFC 9068; compared case-insensitively
REQUIRED_CLAIMS = ["exp", "iat", "sub", "aud", "iss"]
SUB_MAX = 255


class AuthenticationUnavailable(exceptions.APIException):
    """Gatehouse's keys cannot be fetched, so no token can be checked (503)."""

    status_code = 503
    default_detail = "Authentication is temporarily unavailable; try again shortly."
    default_code = "authentication_unavailable"


class GatehouseJWTAuthentication(BaseAuthentication):
    """Authenticates requests by the bearer token Gatehouse minted for them.

    ``request.user`` is the Django user linked to the token's ``sub`` (created
    on first sight, profile and groups kept in step with the token) and
    ``request.auth`` is the dict of verified claims (``client_id`` tells a
    browser session from a native client).

    Without a bearer token it returns None, so DRF's permissions decide: with
    IsAuthenticated the answer is 401 with ``WWW-Authenticate: Bearer``. An
    invalid token is always 401. If Gatehouse's JWKS cannot be fetched the
    answer is 503, not 401: the token may be fine.
    """

    www_authenticate_realm = "api"

    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != b"bearer":
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Invalid Authorization header: want 'Bearer <token>'.")
        if len(parts[1]) > MAX_TOKEN_BYTES:
            self._reject("token longer than %d bytes" % MAX_TOKEN_BYTES)
        try:
            token = parts[1].decode("ascii")
        except UnicodeDecodeError:
            self._reject("token is not ASCII")
        claims = self.verify(token)
        user = users.sync_user(claims, sync_groups=conf.get_config().sync_groups)
        if not user.is_active:
            self._reject("user %r is inactive" % user.get_username())
        return (user, claims)

    def authenticate_header(self, request):
        return f'Bearer realm="{self.www_authenticate_realm}"'

    def verify(self, token):
        """Returns the claims of a token Gatehouse minted for this audience.

        Checks, cheapest first: the header's typ (an RFC 9068 access token),
        alg (one of ALGORITHMS; never "none" or HMAC) and kid; the key with
        that kid from the pinned JWKS, of the type alg needs; the signature;
        iss, aud, exp, nbf and iat (with LEEWAY); and the types of the claims
        the user mapping reads. Raises AuthenticationFailed otherwise.
        """
        cfg = conf.get_config()
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as e:
            self._reject("malformed token: %s" % type(e).__name__)
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower() not in ACCESS_TOKEN_TYPES:
            self._reject("typ %s is not at+jwt" % _clip(typ))
        alg = header.get("alg")
        if alg not in cfg.algorithms:
            self._reject("alg %s is not one of %s" % (_clip(alg), list(cfg.algorithms)))
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            self._reject("no kid")
        try:
            signing_key = jwks.client_for(cfg).get_signing_key(kid)
        except jwks.JWKSUnavailable as e:
            log.warning("%s", e)
            raise AuthenticationUnavailable()
        except PyJWKClientError:
            self._reject("kid %s is not published at %s" % (_clip(kid), cfg.jwks_url))
        if not jwks.key_fits(signing_key.key, alg):
            self._reject("the key with kid %s does not fit alg %s" % (_clip(kid), alg))
        try:
            claims = jwt.decode(
                token,
                key=signing_key.key,
                algorithms=[alg],
                audience=cfg.audience,
                issuer=cfg.issuer,
                leeway=cfg.leeway,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.PyJWTError as e:
            self._reject("%s: %s" % (type(e).__name__, e))
        self._check_claims(claims)
        return claims

    def _check_claims(self, claims):
        sub = claims["sub"]
        if not isinstance(sub, str) or not sub or len(sub) > SUB_MAX:
            self._reject("sub is not a string of 1 to %d characters" % SUB_MAX)
        for name in ("email", "name", "preferred_username", "client_id"):
            if name in claims and not isinstance(claims[name], str):
                self._reject("%s is not a string" % name)
        groups = claims.get("groups", [])
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            self._reject("groups is not a list of strings")

    @staticmethod
    def _reject(reason):
        # The reason goes to the log, never the token; the client learns only
        # that its token was refused.
        log.info("gatehouse_auth: token refused: %s", reason)
        raise exceptions.AuthenticationFailed("Invalid or expired token.")


def _clip(value, limit=64):
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."
