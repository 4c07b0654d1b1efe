"""The Django admin (and any plain Django view) signed in by Gatehouse.

GatehouseUserMiddleware sets ``request.user`` from the token Gatehouse adds
to every request it forwards, so the people Gatehouse signed in reach the
admin without a second login, staff or superuser by their groups
(GATEHOUSE_STAFF_GROUPS, GATEHOUSE_SUPERUSER_GROUPS):

    MIDDLEWARE = [
        ...
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "gatehouse_auth.middleware.GatehouseUserMiddleware",   # after it
        "django.contrib.messages.middleware.MessageMiddleware",
        ...
    ]

It logs nobody in: there is no Django session to steal or to outlive
Gatehouse's. Each request is judged by its own token, so signing out of
Gatehouse, revoking the session there, or leaving a group takes effect on
the next request. A request without a bearer token is left as Django's own
authentication made it (for example a local superuser who signed in with a
password); one with a bad token is anonymous, never the session's user.
"""
from django.contrib.auth.models import AnonymousUser
from django.http import HttpResponse

from . import tokens


class GatehouseUserMiddleware:
    """Sets request.user to the user of a verified Gatehouse token.

    A request whose Authorization header holds a Bearer token gets
    ``request.user`` = the token's user (created on first sight, profile,
    groups and admin flags kept in step), or AnonymousUser when the token
    is refused or its user is inactive. When Gatehouse's keys cannot be
    fetched the answer is 503: the token may be fine. Place it after
    AuthenticationMiddleware (``manage.py check`` says so if not).
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            token = tokens.bearer(request.META.get("HTTP_AUTHORIZATION"))
            if token is not None:
                request.user, _ = tokens.identify(request, token)
        except tokens.InvalidToken:
            # Never fall back to the session's user: the token says who this
            # is, and it is nobody.
            request.user = AnonymousUser()
        except tokens.JWKSUnavailable:
            return HttpResponse(
                "Authentication is temporarily unavailable; try again shortly.\n",
                status=503,
                content_type="text/plain; charset=utf-8",
                headers={"Retry-After": "5", "Cache-Control": "no-store"},
            )
        return self.get_response(request)
