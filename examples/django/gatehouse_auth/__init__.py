"""Authenticate Django REST Framework requests with the token Gatehouse mints.

Add ``gatehouse_auth`` to INSTALLED_APPS, configure ``GATEHOUSE_AUTH`` and put
``gatehouse_auth.authentication.GatehouseJWTAuthentication`` in DRF's
DEFAULT_AUTHENTICATION_CLASSES. See docs/django.md in the Gatehouse
repository.
"""
