"""Test helpers: a real JWKS server on 127.0.0.1 and a Gatehouse-like minter.

Use them to test your own views with tokens shaped exactly like Gatehouse's:

    from gatehouse_auth.testing import GatehouseTestMixin

    class MyTests(GatehouseTestMixin, TestCase):
        def test_it(self):
            token = self.minter.mint(sub="u-alice", groups=["admins"])
            self.client.get("/api/x", HTTP_AUTHORIZATION="Bearer " + token)
"""
import base64
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from django.test.utils import override_settings

ISSUER = "http://gatehouse.test"
AUDIENCE = "django"

# Pass as a claim value to leave that claim out.
OMIT = object()


def new_key():
    """A fresh ES256 (P-256) private key."""
    return ec.generate_private_key(ec.SECP256R1())


def public_jwk(private_key, kid):
    """The public JWK of an ES256 key, as Gatehouse publishes it.

    Built by hand: PyJWT 2.6's ECAlgorithm.to_jwk drops leading zero bytes
    of x and y, which its own from_jwk then refuses (1 key in 128).
    """
    numbers = private_key.public_key().public_numbers()
    return {
        "kty": "EC",
        "crv": "P-256",
        "x": _b64(numbers.x.to_bytes(32, "big")),
        "y": _b64(numbers.y.to_bytes(32, "big")),
        "kid": kid,
        "use": "sig",
        "alg": "ES256",
    }


def _b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class JWKSServer:
    """Serves a JWK set over HTTP on 127.0.0.1 from a thread; counts fetches."""

    def __init__(self):
        self.jwks = {"keys": []}
        self.paths = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                owner.paths.append(self.path)
                body = json.dumps(owner.jwks).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        host, port = self._server.server_address
        self.url = f"http://{host}:{port}/oauth2/jwks.json"

    def publish(self, *jwks):
        self.jwks = {"keys": list(jwks)}

    def close(self):
        self._server.shutdown()
        self._server.server_close()


class Minter:
    """Mints tokens the way Gatehouse does: ES256, typ at+jwt, kid, its claims."""

    def __init__(self, key, kid, issuer=ISSUER, audience=AUDIENCE):
        self.key, self.kid, self.issuer, self.audience = key, kid, issuer, audience

    def claims(self, **overrides):
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": "u-alice",
            "client_id": "gatehouse",
            "email": "alice@example.com",
            "email_verified": True,
            "name": "Alice Admin",
            "preferred_username": "alice",
            "groups": ["admins", "developers"],
            "sid": "c2lkLWhhc2g",
            "auth_time": now - 60,
            "iat": now,
            "nbf": now,
            "exp": now + 120,
            "jti": uuid.uuid4().hex,
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not OMIT}

    def mint(self, key=None, headers=None, algorithm="ES256", **overrides):
        """A signed token; headers and claims overridable (OMIT drops one)."""
        header = {"typ": "at+jwt", "kid": self.kid}
        header.update(headers or {})
        header = {k: v for k, v in header.items() if v is not OMIT}
        return jwt.encode(self.claims(**overrides), key or self.key, algorithm=algorithm, headers=header)


class GatehouseTestMixin:
    """Starts a JWKS server with one key for the test class and points
    GATEHOUSE_AUTH at it; ``self.minter`` mints tokens it accepts."""

    gatehouse_auth_overrides = {}

    @classmethod
    def setUpClass(cls):
        cls.jwks_server = JWKSServer()
        cls.kid = "test-key-1"
        cls.minter = Minter(new_key(), cls.kid)
        cls.jwks_server.publish(public_jwk(cls.minter.key, cls.kid))
        cls._gatehouse_settings = override_settings(
            GATEHOUSE_AUTH={
                "JWKS_URL": cls.jwks_server.url,
                "ISSUER": ISSUER,
                "AUDIENCE": AUDIENCE,
                "ALGORITHMS": ["ES256"],
                **cls.gatehouse_auth_overrides,
            }
        )
        cls._gatehouse_settings.enable()
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls._gatehouse_settings.disable()
        cls.jwks_server.close()

    def bearer(self, token):
        return {"HTTP_AUTHORIZATION": "Bearer " + token}
