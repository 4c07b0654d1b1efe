"""Settings for the example DRF project that runs behind Gatehouse.

Everything that differs between machines comes from the environment, so no
secret lives in git:

    DJANGO_SECRET_KEY            required outside development (see below)
    DJANGO_DEBUG                 "1" turns DEBUG on; off by default
    DJANGO_ALLOWED_HOSTS         comma-separated; default "127.0.0.1,localhost"
    DJANGO_DB_PATH               SQLite file; default db.sqlite3 next to manage.py
    DJANGO_GATEHOUSE_JWKS_URL    where Gatehouse publishes its keys
    DJANGO_GATEHOUSE_ISSUER      Gatehouse's public_url (the tokens' iss)
    DJANGO_GATEHOUSE_AUDIENCE    the audience of the Gatehouse route to Django
    DJANGO_GATEHOUSE_SUPERUSER_GROUPS  comma-separated; default "admins"
    DJANGO_GATEHOUSE_STAFF_GROUPS      comma-separated; default "developers"

The defaults of the Gatehouse URLs match a Gatehouse listening on
http://127.0.0.1:4180 with a route whose audience is "django".
"""
import os
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent


def _env_list(name, default):
    return [v.strip() for v in os.environ.get(name, default).split(",") if v.strip()]


DEBUG = os.environ.get("DJANGO_DEBUG", "") == "1"

# No Gatehouse user has a Django session and no password reset mail is
# sent, so SECRET_KEY protects little here (the admin's signed messages
# cookie, and the session of a local password login if you create one); it
# is still never committed. The development default is named so nobody mistakes it.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "insecure-development-only-key-set-DJANGO_SECRET_KEY")

ALLOWED_HOSTS = _env_list("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "gatehouse_auth",
    "notes",
]

# Gatehouse owns the browser session: Django learns who is calling only from
# the token Gatehouse adds to each request. GatehouseUserMiddleware makes
# that token's user request.user for plain Django views such as the admin,
# without logging anyone in. SessionMiddleware, AuthenticationMiddleware and
# MessageMiddleware are here because the admin requires them; no Gatehouse
# user ever has a Django session. CsrfViewMiddleware stays so the admin's
# forms and any plain Django view added later are protected by default (see
# docs/django.md, "CSRF").
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "gatehouse_auth.middleware.GatehouseUserMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "notesite.urls"
WSGI_APPLICATION = "notesite.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    },
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DJANGO_DB_PATH", str(BASE_DIR / "db.sqlite3")),
    }
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"

X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

REST_FRAMEWORK = {
    # Only Gatehouse's token: no SessionAuthentication (there is no Django
    # session) and no TokenAuthentication (native clients use the identity
    # provider's tokens, which Gatehouse verifies and re-mints).
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "gatehouse_auth.authentication.GatehouseJWTAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
    ],
    # No browsable API: it would need Django's session login.
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
    ],
}

GATEHOUSE_AUTH = {
    "JWKS_URL": os.environ.get("DJANGO_GATEHOUSE_JWKS_URL", "http://127.0.0.1:4180/oauth2/jwks.json"),
    "ISSUER": os.environ.get("DJANGO_GATEHOUSE_ISSUER", "http://127.0.0.1:4180"),
    "AUDIENCE": os.environ.get("DJANGO_GATEHOUSE_AUDIENCE", "django"),
    "ALGORITHMS": ["ES256"],
}

# The Django admin at /admin/, signed in by Gatehouse: members of these
# groups (the token's groups claim) are staff, or superusers with every
# permission. The defaults match the development provider's demo users:
# alice (admins) is a superuser, bob (developers) is staff and sees what the
# Django group "developers" is granted.
GATEHOUSE_SUPERUSER_GROUPS = _env_list("DJANGO_GATEHOUSE_SUPERUSER_GROUPS", "admins")
GATEHOUSE_STAFF_GROUPS = _env_list("DJANGO_GATEHOUSE_STAFF_GROUPS", "developers")

# gatehouse_auth logs refused tokens (the reason, never the token) and new
# users at INFO; `manage.py test` provokes plenty of both on purpose.
_GATEHOUSE_LOG_LEVEL = "WARNING" if sys.argv[1:2] == ["test"] else "INFO"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        # Tracebacks of 500s go to the console even with DEBUG off.
        "django.request": {"handlers": ["console"], "level": "ERROR", "propagate": False},
        "gatehouse_auth": {"handlers": ["console"], "level": _GATEHOUSE_LOG_LEVEL},
    },
}
