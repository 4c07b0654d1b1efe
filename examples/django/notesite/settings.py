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

The defaults of the last three match a Gatehouse listening on
http://127.0.0.1:4180 with a route whose audience is "django".
"""
import os
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent


def _env_list(name, default):
    return [v.strip() for v in os.environ.get(name, default).split(",") if v.strip()]


DEBUG = os.environ.get("DJANGO_DEBUG", "") == "1"

# This project keeps no sessions, signs no cookies and sends no password
# reset mails, so SECRET_KEY protects little here; it is still never
# committed. The development default is named so nobody mistakes it.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "insecure-development-only-key-set-DJANGO_SECRET_KEY")

ALLOWED_HOSTS = _env_list("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost")

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "rest_framework",
    "gatehouse_auth",
    "notes",
]

# No SessionMiddleware and no AuthenticationMiddleware: Gatehouse owns the
# browser session, and Django learns who is calling only from the token
# Gatehouse adds to each request. CsrfViewMiddleware stays so any plain
# Django view that someone adds later is protected by default (see
# docs/django.md, "CSRF").
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "notesite.urls"
WSGI_APPLICATION = "notesite.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": []},
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
