"""Gatehouse's signing keys, fetched from its JWKS with PyJWT's PyJWKClient.

PyJWKClient as packaged in Debian 12 (PyJWT 2.6) fetches without a timeout,
caches a failed fetch as "no keys", and refetches on every unknown ``kid``.
GatehouseJWKClient keeps its caching and key selection but fetches with a
timeout and a size limit, and refetches for an unknown kid at most once per
JWKS_MIN_REFRESH_SECONDS, so tokens with made-up kids cannot turn Django into
a flood of requests to Gatehouse.
"""
import json
import threading
import time
import urllib.error
import urllib.request

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt import PyJWKClient, PyJWKSet
from jwt.exceptions import PyJWKClientError, PyJWTError

# A JWKS of a handful of keys is a few KiB.
MAX_JWKS_BYTES = 1 << 20
MIN_RSA_BITS = 2048


class JWKSUnavailable(PyJWKClientError):
    """The JWKS could not be fetched or parsed: Gatehouse is unreachable or broken."""


class GatehouseJWKClient(PyJWKClient):
    """A PyJWKClient with a timeout, a size limit and a bounded refetch rate.

    Safe for concurrent use by the threads of one Django process.
    """

    def __init__(self, uri, *, lifespan=300, timeout=5, min_refresh_interval=10, clock=time.monotonic):
        super().__init__(uri, cache_keys=False, cache_jwk_set=True, lifespan=lifespan)
        self._timeout = timeout
        self._min_refresh_interval = min_refresh_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._last_fetch = None
        self._parsed_from, self._parsed_keys = None, []
        self.fetches = 0  # for tests and debugging

    def fetch_data(self):
        self._last_fetch = self._clock()
        self.fetches += 1
        request = urllib.request.Request(self.uri, headers={"Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                body = response.read(MAX_JWKS_BYTES + 1)
        except (urllib.error.URLError, OSError) as e:
            raise JWKSUnavailable(f"gatehouse_auth: fetching {self.uri}: {e}") from e
        if len(body) > MAX_JWKS_BYTES:
            raise JWKSUnavailable(f"gatehouse_auth: {self.uri} returned more than {MAX_JWKS_BYTES} bytes")
        try:
            data = json.loads(body)
        except ValueError as e:
            raise JWKSUnavailable(f"gatehouse_auth: {self.uri} is not JSON: {e}") from e
        if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
            raise JWKSUnavailable(f"gatehouse_auth: {self.uri} is not a JWK set")
        # Only a good answer replaces the cached keys.
        self.jwk_set_cache.put(data)
        return data

    def get_signing_key(self, kid):
        with self._lock:
            key = self.match_kid(self._keys(refresh=False), kid)
            if key is None and self._may_refresh():
                # Gatehouse publishes a new key before it signs with it, but
                # our copy may predate the publication.
                key = self.match_kid(self._keys(refresh=True), kid)
        if key is None:
            raise PyJWKClientError("gatehouse_auth: no published key has this kid")
        return key

    def _keys(self, refresh):
        data = None if refresh else self.jwk_set_cache.get()
        if data is None:
            data = self.fetch_data()
        # PyJWKClient parses the whole set on every call; parse once per fetch.
        if data is not self._parsed_from:
            try:
                keys = [k for k in PyJWKSet.from_dict(data).keys if k.public_key_use in ("sig", None) and k.key_id]
            except PyJWTError as e:
                raise JWKSUnavailable(f"gatehouse_auth: {self.uri}: {e}") from e
            if not keys:
                raise JWKSUnavailable(f"gatehouse_auth: {self.uri} has no signing key with a kid")
            self._parsed_keys, self._parsed_from = keys, data
        return self._parsed_keys

    def _may_refresh(self):
        return self._last_fetch is None or self._clock() - self._last_fetch >= self._min_refresh_interval


def key_fits(key, alg):
    """Reports whether a public key may verify alg: its type and size are alg's."""
    if alg == "ES256":
        return isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1)
    if alg == "EdDSA":
        return isinstance(key, ed25519.Ed25519PublicKey)
    if alg == "RS256":
        return isinstance(key, rsa.RSAPublicKey) and key.key_size >= MIN_RSA_BITS
    return False


_clients = {}
_clients_lock = threading.Lock()


def client_for(config):
    """Returns the process-wide client for config's JWKS URL and cache settings."""
    ident = (config.jwks_url, config.jwks_cache_seconds, config.jwks_timeout, config.jwks_min_refresh_seconds)
    with _clients_lock:
        client = _clients.get(ident)
        if client is None:
            client = GatehouseJWKClient(
                config.jwks_url,
                lifespan=config.jwks_cache_seconds,
                timeout=config.jwks_timeout,
                min_refresh_interval=config.jwks_min_refresh_seconds,
            )
            _clients[ident] = client
        return client


def clear_clients():
    """Forgets every client and its cached keys (settings changed)."""
    with _clients_lock:
        _clients.clear()
