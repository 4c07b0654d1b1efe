"""The GATEHOUSE_AUTH setting: defaults, validation and a system check.

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
from typing import Tuple
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
    global _config
    if setting == "GATEHOUSE_AUTH":
        _config = None
        from . import jwks

        jwks.clear_clients()


def check_settings(app_configs, **kwargs):
    """Django system check: every problem of GATEHOUSE_AUTH as an error."""
    return [
        checks.Error(msg, id="gatehouse_auth.E001")
        for msg in problems(getattr(settings, "GATEHOUSE_AUTH", None))
    ]
