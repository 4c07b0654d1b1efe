"""App configuration: registers the settings check."""
from django.apps import AppConfig
from django.core import checks


class GatehouseAuthConfig(AppConfig):
    name = "gatehouse_auth"
    verbose_name = "Gatehouse authentication"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from . import conf

        # `manage.py check` (and runserver, migrate, test) report a missing
        # or unsafe GATEHOUSE_AUTH before the first request does.
        checks.register(conf.check_settings, checks.Tags.security)
