"""DRF authentication with the short-lived JWT Gatehouse adds to every request.

The checks themselves live in gatehouse_auth.tokens, shared with the
middleware that serves the Django admin. A request that did not come
through Gatehouse has no such token and is not authenticated, whatever
``X-Auth-Request-*`` headers it carries.
"""
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from . import tokens

# Kept importable from here for projects that used them before tokens.py.
MAX_TOKEN_BYTES = tokens.MAX_TOKEN_BYTES
ACCESS_TOKEN_TYPES = tokens.ACCESS_TOKEN_TYPES


class AuthenticationUnavailable(exceptions.APIException):
    """Gatehouse's keys cannot be fetched, so no token can be checked (503)."""

    status_code = 503
    default_detail = "Authentication is temporarily unavailable; try again shortly."
    default_code = "authentication_unavailable"


class GatehouseJWTAuthentication(BaseAuthentication):
    """Authenticates requests by the bearer token Gatehouse minted for them.

    ``request.user`` is the Django user linked to the token's ``sub`` (created
    on first sight, profile, groups and admin flags kept in step with the
    token) and ``request.auth`` is the dict of verified claims (``client_id``
    tells a browser session from a native client).

    Without a bearer token it returns None, so DRF's permissions decide: with
    IsAuthenticated the answer is 401 with ``WWW-Authenticate: Bearer``. An
    invalid token is always 401. If Gatehouse's JWKS cannot be fetched the
    answer is 503, not 401: the token may be fine.
    """

    www_authenticate_realm = "api"

    def authenticate(self, request):
        try:
            token = tokens.bearer(get_authorization_header(request))
            if token is None:
                return None
            # The HttpRequest, not DRF's wrapper: GatehouseUserMiddleware may
            # have answered for this token already.
            return tokens.identify(request._request, token)
        except tokens.InvalidToken:
            raise exceptions.AuthenticationFailed("Invalid or expired token.")
        except tokens.JWKSUnavailable:
            raise AuthenticationUnavailable()

    def authenticate_header(self, request):
        return f'Bearer realm="{self.www_authenticate_realm}"'

    def verify(self, token):
        """Returns the verified claims of token; see tokens.verify.

        Raises AuthenticationFailed or AuthenticationUnavailable, as DRF
        expects.
        """
        try:
            return tokens.verify(token)
        except tokens.InvalidToken:
            raise exceptions.AuthenticationFailed("Invalid or expired token.")
        except tokens.JWKSUnavailable:
            raise AuthenticationUnavailable()
