"""Verifying the token Gatehouse mints, for any part of Django.

Gatehouse verifies the browser's session (or a native client's bearer
token), then sends the upstream ``Authorization: Bearer <JWT>``: typ at+jwt,
signed with a key published at ``<public_url>/oauth2/jwks.json``, with iss =
public_url and aud = the route's audience. ``verify`` checks such a token
against the pinned GATEHOUSE_AUTH settings; ``identify`` also maps it to a
Django user, once per request, so the DRF authentication class and the
middleware that serves the admin agree and never verify twice.

Nothing here trusts ``X-Auth-Request-*`` or any other header that a client
could send: only a token signed by Gatehouse's key identifies anyone.
"""
import logging

import jwt
from jwt.exceptions import PyJWKClientError

from . import conf, jwks, users

log = logging.getLogger("gatehouse_auth")

# Gatehouse's tokens are well under 2 KiB; this stops oversized input before
# any parsing.
MAX_TOKEN_BYTES = 8192
ACCESS_TOKEN_TYPES = ("at+jwt", "application/at+jwt")  # RFC 9068; compared case-insensitively
REQUIRED_CLAIMS = ["exp", "iat", "sub", "aud", "iss"]
SUB_MAX = 255

# JWKSUnavailable means no token can be checked right now (answer 503, not
# 401: the token may be fine).
JWKSUnavailable = jwks.JWKSUnavailable


class InvalidToken(Exception):
    """The token is not one Gatehouse minted for this audience, or its user
    may not sign in. The message is the reason, for the log; clients are
    told only that the token was refused."""


def bearer(header):
    """Returns the token of an ``Authorization: Bearer`` header value.

    header is the raw value (bytes or str, as WSGI gives it) or None. No
    header, or another scheme, is None: not authenticated. A Bearer header
    that is not exactly ``Bearer <token>`` in printable ASCII raises
    InvalidToken.
    """
    if not header:
        return None
    if isinstance(header, str):
        # WSGI hands headers over as latin-1 decoded text.
        header = header.encode("latin-1", errors="replace")
    parts = header.split()
    if not parts or parts[0].lower() != b"bearer":
        return None
    if len(parts) != 2:
        refuse("Authorization header is not 'Bearer <token>'")
    return ascii_token(parts[1])


def ascii_token(raw):
    """Returns raw (bytes) as text after the cheap checks: size and ASCII."""
    if len(raw) > MAX_TOKEN_BYTES:
        refuse("token longer than %d bytes" % MAX_TOKEN_BYTES)
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        refuse("token is not ASCII")


def verify(token):
    """Returns the claims of a token Gatehouse minted for this audience.

    Checks, cheapest first: the header's typ (an RFC 9068 access token),
    alg (one of ALGORITHMS; never "none" or HMAC) and kid; the key with
    that kid from the pinned JWKS, of the type alg needs; the signature;
    iss, aud, exp, nbf and iat (with LEEWAY); and the types of the claims
    the user mapping reads. Raises InvalidToken, or JWKSUnavailable when
    Gatehouse's keys cannot be fetched.
    """
    cfg = conf.get_config()
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as e:
        refuse("malformed token: %s" % type(e).__name__)
    typ = header.get("typ")
    if not isinstance(typ, str) or typ.lower() not in ACCESS_TOKEN_TYPES:
        refuse("typ %s is not at+jwt" % clip(typ))
    alg = header.get("alg")
    if alg not in cfg.algorithms:
        refuse("alg %s is not one of %s" % (clip(alg), list(cfg.algorithms)))
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        refuse("no kid")
    try:
        signing_key = jwks.client_for(cfg).get_signing_key(kid)
    except jwks.JWKSUnavailable as e:
        log.warning("%s", e)
        raise
    except PyJWKClientError:
        refuse("kid %s is not published at %s" % (clip(kid), cfg.jwks_url))
    if not jwks.key_fits(signing_key.key, alg):
        refuse("the key with kid %s does not fit alg %s" % (clip(kid), alg))
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
        refuse("%s: %s" % (type(e).__name__, e))
    _check_claims(claims)
    return claims


def _check_claims(claims):
    sub = claims["sub"]
    if not isinstance(sub, str) or not sub or len(sub) > SUB_MAX:
        refuse("sub is not a string of 1 to %d characters" % SUB_MAX)
    for name in ("email", "name", "preferred_username", "client_id"):
        if name in claims and not isinstance(claims[name], str):
            refuse("%s is not a string" % name)
    groups = claims.get("groups", [])
    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        refuse("groups is not a list of strings")


# Where identify keeps its answer on the HttpRequest: the middleware and the
# DRF class both ask, and the second asks for free.
_REQUEST_ATTR = "_gatehouse_identity"


def identify(request, token):
    """Returns (user, claims) for a request that carries token.

    request is the Django HttpRequest (DRF callers pass request._request).
    The token is verified and its user synced (created, profile, groups and
    admin flags kept in step) once per request; asking again with the same
    token returns the same answer, or raises the same InvalidToken. An
    inactive user is refused. JWKSUnavailable is not remembered: the next
    request tries again.
    """
    cached = getattr(request, _REQUEST_ATTR, None)
    if cached is not None and cached[0] == token:
        if isinstance(cached[1], InvalidToken):
            raise cached[1]
        return cached[1]
    try:
        claims = verify(token)
        user = users.sync_user(claims, sync_groups=conf.get_config().sync_groups)
        if not user.is_active:
            refuse("user %r is inactive" % user.get_username())
    except InvalidToken as e:
        setattr(request, _REQUEST_ATTR, (token, e))
        raise
    setattr(request, _REQUEST_ATTR, (token, (user, claims)))
    return user, claims


def refuse(reason):
    """Logs why a token was refused (never the token) and raises InvalidToken."""
    log.info("gatehouse_auth: token refused: %s", reason)
    raise InvalidToken(reason)


def clip(value, limit=64):
    """repr(value), cut to limit characters: values come from the sender."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."
