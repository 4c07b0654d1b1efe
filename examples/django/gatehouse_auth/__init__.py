"""Trust the tokens Gatehouse mints, in Django.

- ``gatehouse_auth.authentication.GatehouseJWTAuthentication``: Django REST
  Framework authentication by Gatehouse's token.
- ``gatehouse_auth.middleware.GatehouseUserMiddleware``: ``request.user``
  for plain Django views such as the admin, staff or superuser by group
  (GATEHOUSE_STAFF_GROUPS, GATEHOUSE_SUPERUSER_GROUPS).
- ``gatehouse_auth.testing``: a JWKS server and a minter for your tests.

Add ``gatehouse_auth`` to INSTALLED_APPS and configure ``GATEHOUSE_AUTH``.
See docs/django.md in the Gatehouse repository.
"""

__version__ = "0.1.0"
