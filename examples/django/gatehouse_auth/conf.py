"""Settings: GATEHOUSE_AUTH and the admin groups, validated, with a system check.

    GATEHOUSE_AUTH = {
        # Required. Where Gatehouse publishes its keys; pinned here, never
        # taken from a token header (jku, x5u and jwk are ignored).
        "JWKS_URL": "https://app.example.com/oauth2/jwks.json",
        # Required. Gatehouse's public_url, exactly as in its configuration.
        "ISSUER": "https://app.example.com",
        # Required. The audience of the Gatehouse route that leads here.
        "AUDIENCE": "api",
        # Accepted JWS algorithms: Gatehouse's token.algorithm. Only ES256,
        # EdDSA and RS256 may be listed; "none" and HMAC never.
        "ALGORITHMS": ["ES256"],
        # Clock skew allowed on exp, nbf and iat, in seconds.
        "LEEWAY": 30,
        # How long a fetched JWKS is used before it is fetched again.
        "JWKS_CACHE_SECONDS": 300,
        # A token with an unknown kid refetches the JWKS (key rotation), but
        # at most this often, so made-up kids cannot flood Gatehouse.
        "JWKS_MIN_REFRESH_SECONDS": 10,
        # Timeout of one JWKS fetch, in seconds.
        "JWKS_TIMEOUT": 5,
        # Make the user's Django groups exactly the token's groups claim.
        "SYNC_GROUPS": True,
    }
"""
from dataclasses import dataclass
from typing import FrozenSet, Tuple
from urllib.parse import urlsplit

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver

# Asymmetric algorithms only, the same set Gatehouse signs with.
SUPPORTED_ALGORITHMS = ("ES256", "EdDSA", "RS256")

DEFAULTS = {
    "ALGORITHMS": ["ES256"],
    "LEEWAY": 30,
    "JWKS_CACHE_SECONDS": 300,
    "JWKS_MIN_REFRESH_SECONDS": 10,
    "JWKS_TIMEOUT": 5,
    "SYNC_GROUPS": True,
}
REQUIRED = ("JWKS_URL", "ISSUER", "AUDIENCE")


@dataclass(frozen=True)
class Config:
    """GATEHOUSE_AUTH, validated and with defaults filled in."""

    jwks_url: str
    issuer: str
    audience: str
    algorithms: Tuple[str, ...]
    leeway: float
    jwks_cache_seconds: float
    jwks_min_refresh_seconds: float
    jwks_timeout: float
    sync_groups: bool


def problems(raw):
    """Lists what is wrong with a GATEHOUSE_AUTH value, each naming its key."""
    if not isinstance(raw, dict):
        return ["GATEHOUSE_AUTH must be a dict with JWKS_URL, ISSUER and AUDIENCE"]
    found = []
    unknown = sorted(set(raw) - set(DEFAULTS) - set(REQUIRED))
    if unknown:
        found.append(f"GATEHOUSE_AUTH has unknown keys {unknown}")
    for key in REQUIRED:
        if not isinstance(raw.get(key), str) or not raw.get(key):
            found.append(f"GATEHOUSE_AUTH['{key}'] is required (a non-empty string)")
    url = raw.get("JWKS_URL")
    if isinstance(url, str) and url:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            found.append(f"GATEHOUSE_AUTH['JWKS_URL'] {url!r} is not an absolute http(s) URL")
    algs = raw.get("ALGORITHMS", DEFAULTS["ALGORITHMS"])
    if not isinstance(algs, (list, tuple)) or not algs:
        found.append("GATEHOUSE_AUTH['ALGORITHMS'] must be a non-empty list")
    else:
        bad = [a for a in algs if a not in SUPPORTED_ALGORITHMS]
        if bad:
            found.append(
                f"GATEHOUSE_AUTH['ALGORITHMS'] contains {bad}; only {list(SUPPORTED_ALGORITHMS)} are accepted"
            )
    for key in ("LEEWAY", "JWKS_CACHE_SECONDS", "JWKS_MIN_REFRESH_SECONDS", "JWKS_TIMEOUT"):
        value = raw.get(key, DEFAULTS[key])
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            found.append(f"GATEHOUSE_AUTH['{key}'] must be a number >= 0, not {value!r}")
    for key in ("JWKS_CACHE_SECONDS", "JWKS_TIMEOUT"):
        value = raw.get(key, DEFAULTS[key])
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0:
            found.append(f"GATEHOUSE_AUTH['{key}'] must be greater than 0")
    if not isinstance(raw.get("SYNC_GROUPS", True), bool):
        found.append("GATEHOUSE_AUTH['SYNC_GROUPS'] must be True or False")
    return found


_config = None


def get_config():
    """Returns the validated configuration; ImproperlyConfigured if it is not."""
    global _config
    if _config is None:
        raw = getattr(settings, "GATEHOUSE_AUTH", None)
        found = problems(raw)
        if found:
            raise ImproperlyConfigured("; ".join(found))
        merged = {**DEFAULTS, **raw}
        _config = Config(
            jwks_url=merged["JWKS_URL"],
            issuer=merged["ISSUER"],
            audience=merged["AUDIENCE"],
            algorithms=tuple(merged["ALGORITHMS"]),
            leeway=float(merged["LEEWAY"]),
            jwks_cache_seconds=float(merged["JWKS_CACHE_SECONDS"]),
            jwks_min_refresh_seconds=float(merged["JWKS_MIN_REFRESH_SECONDS"]),
            jwks_timeout=float(merged["JWKS_TIMEOUT"]),
            sync_groups=merged["SYNC_GROUPS"],
        )
    return _config


@receiver(setting_changed)
def _reset(setting, **kwargs):
    # override_settings in tests, like DRF's own api_settings.reload.
    global _config, _admin_groups
    if setting == "GATEHOUSE_AUTH":
        _config = None
        from . import jwks

        jwks.clear_clients()
    elif setting in ADMIN_GROUP_SETTINGS:
        _admin_groups = False


def check_settings(app_configs, **kwargs):
    """Django system check: every problem of GATEHOUSE_AUTH (E001), of the
    admin group settings (E002) and of the middleware's place (E003)."""
    errors = [
        checks.Error(msg, id="gatehouse_auth.E001")
        for msg in problems(getattr(settings, "GATEHOUSE_AUTH", None))
    ]
    errors += [checks.Error(msg, id="gatehouse_auth.E002") for msg in admin_group_problems()]
    errors += [checks.Error(msg, id="gatehouse_auth.E003") for msg in middleware_problems()]
    return errors


# The Django admin, by group. Two top-level settings, each a list of group
# names from the token's groups claim:
#
#     GATEHOUSE_STAFF_GROUPS = ["developers"]     # may enter the admin
#     GATEHOUSE_SUPERUSER_GROUPS = ["admins"]     # ... with every permission
#
# When either is set, every verified token sets its user's is_staff and
# is_superuser: staff = in a staff or superuser group, superuser = in a
# superuser group, and a user who left the group loses the flag on their
# next request. When neither is set the flags are never touched.
ADMIN_GROUP_SETTINGS = ("GATEHOUSE_STAFF_GROUPS", "GATEHOUSE_SUPERUSER_GROUPS")

MIDDLEWARE_PATH = "gatehouse_auth.middleware.GatehouseUserMiddleware"
AUTHENTICATION_MIDDLEWARE = "django.contrib.auth.middleware.AuthenticationMiddleware"


@dataclass(frozen=True)
class AdminGroups:
    """GATEHOUSE_STAFF_GROUPS and GATEHOUSE_SUPERUSER_GROUPS, validated."""

    staff: FrozenSet[str]
    superuser: FrozenSet[str]


def admin_group_problems():
    """Lists what is wrong with the admin group settings, each naming its key."""
    found = []
    for key in ADMIN_GROUP_SETTINGS:
        value = getattr(settings, key, None)
        if value is None:
            continue
        if isinstance(value, str) or not isinstance(value, (list, tuple, set, frozenset)):
            found.append(f"{key} must be a list of group names, not {type(value).__name__}")
        elif not all(isinstance(g, str) and g for g in value):
            found.append(f"{key} must hold non-empty strings only")
    return found


_admin_groups = False  # False: not read yet; None: not managed


def get_admin_groups():
    """Returns the AdminGroups, or None when neither setting is set.

    Raises ImproperlyConfigured when a setting is malformed.
    """
    global _admin_groups
    if _admin_groups is False:
        found = admin_group_problems()
        if found:
            raise ImproperlyConfigured("; ".join(found))
        staff = getattr(settings, "GATEHOUSE_STAFF_GROUPS", None)
        superuser = getattr(settings, "GATEHOUSE_SUPERUSER_GROUPS", None)
        if staff is None and superuser is None:
            _admin_groups = None
        else:
            _admin_groups = AdminGroups(staff=frozenset(staff or ()), superuser=frozenset(superuser or ()))
    return _admin_groups


def middleware_problems():
    """GatehouseUserMiddleware must come after AuthenticationMiddleware,
    which would otherwise replace the user it sets with the session's."""
    middleware = list(getattr(settings, "MIDDLEWARE", None) or [])
    if MIDDLEWARE_PATH not in middleware or AUTHENTICATION_MIDDLEWARE not in middleware:
        return []
    if middleware.index(AUTHENTICATION_MIDDLEWARE) > middleware.index(MIDDLEWARE_PATH):
        return [f"{MIDDLEWARE_PATH} must come after {AUTHENTICATION_MIDDLEWARE} in MIDDLEWARE"]
    return []
