"""Tests of GatehouseJWTAuthentication against a real JWKS server on 127.0.0.1.

Each request goes through Django's URL conf to /api/whoami, so what is
checked is what a client would see: the status, WWW-Authenticate, and
whether a Django user came into being.
"""
import base64
import hashlib
import hmac
import json
import random
import socket
import string
import time

from cryptography.hazmat.primitives import serialization
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import TestCase, override_settings

from gatehouse_auth import conf
from gatehouse_auth.models import Identity
from gatehouse_auth.testing import AUDIENCE, ISSUER, OMIT, GatehouseTestMixin, JWKSServer, Minter, new_key, public_jwk

User = get_user_model()
WHOAMI = "/api/whoami"


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _decoded(token):
    return [base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)) for p in token.split(".")]


def unsigned(header, claims, signature=b""):
    """A compact JWS built by hand, for tokens PyJWT refuses to make."""
    signing_input = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
    return signing_input, signing_input + "." + b64(signature)


class TokenVerificationTests(GatehouseTestMixin, TestCase):
    def assertRefused(self, token, status=401):
        with self.assertLogs("gatehouse_auth", "INFO") as logs:
            resp = self.client.get(WHOAMI, **self.bearer(token))
        self.assertEqual(resp.status_code, status, f"got {resp.status_code}; want {status}: {resp.content!r}")
        if status == 401:
            self.assertEqual(resp["WWW-Authenticate"], 'Bearer realm="api"')
        self.assertFalse(User.objects.exists(), "a refused token created a user")
        for line in logs.output:
            self.assertNotIn(token, line, "the log holds the token")
        return logs.output

    def test_valid_token_is_accepted(self):
        resp = self.client.get(WHOAMI, **self.bearer(self.minter.mint()))
        self.assertEqual(resp.status_code, 200, resp.content)
        self.assertEqual(
            resp.json(),
            {
                "username": "alice",
                "sub": "u-alice",
                "email": "alice@example.com",
                "name": "Alice Admin",
                "groups": ["admins", "developers"],
                "client_id": "gatehouse",
            },
        )

    def test_accepted_variants(self):
        now = int(time.time())
        cases = {
            # RFC 9068 allows the media type form, in any case.
            "typ application/at+jwt": self.minter.mint(headers={"typ": "Application/AT+JWT"}),
            # Within LEEWAY (30 s) of exp, for clock skew.
            "expired within leeway": self.minter.mint(exp=now - 10, iat=now - 130, nbf=now - 130),
            # aud may be an array that contains ours (RFC 7519 4.1.3).
            "aud array with ours": self.minter.mint(aud=["other", AUDIENCE]),
        }
        for name, token in cases.items():
            with self.subTest(name):
                resp = self.client.get(WHOAMI, **self.bearer(token))
                self.assertEqual(resp.status_code, 200, f"{name}: got {resp.status_code}; want 200: {resp.content!r}")

    def test_refused_tokens(self):
        now = int(time.time())
        other = new_key()
        pub_pem = self.minter.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        claims = self.minter.claims()
        hs_input, _ = unsigned({"alg": "HS256", "typ": "at+jwt", "kid": self.kid}, claims)
        hs256_with_public_key = hs_input + "." + b64(hmac.new(pub_pem, hs_input.encode(), hashlib.sha256).digest())
        _, alg_none = unsigned({"alg": "none", "typ": "at+jwt", "kid": self.kid}, claims)
        _, alg_none_upper = unsigned({"alg": "None", "typ": "at+jwt", "kid": self.kid}, claims)
        good = self.minter.mint()
        head, payload, sig = good.split(".")
        forged = json.loads(base64.urlsafe_b64decode(payload + "==="))
        forged["sub"] = "u-bob"
        cases = {
            "expired": self.minter.mint(exp=now - 60, iat=now - 180, nbf=now - 180),
            "signed by another key, same kid": self.minter.mint(key=other),
            "signed by another key, its own jku": self.minter.mint(
                key=other, headers={"kid": "attacker", "jku": "http://127.0.0.1:9/evil.json"}
            ),
            "wrong audience": self.minter.mint(aud="other-route"),
            "aud array without ours": self.minter.mint(aud=["other", "another"]),
            "wrong issuer": self.minter.mint(iss="http://evil.test"),
            "issuer with trailing slash": self.minter.mint(iss=ISSUER + "/"),
            "alg none": alg_none,
            "alg None": alg_none_upper,
            "HS256 keyed with the public key": hs256_with_public_key,
            "typ JWT": self.minter.mint(headers={"typ": "JWT"}),
            "typ missing": self.minter.mint(headers={"typ": None}),
            "typ logout+jwt": self.minter.mint(headers={"typ": "logout+jwt"}),
            "kid missing": self.minter.mint(headers={"kid": OMIT}),
            "no exp": self.minter.mint(exp=OMIT),
            "no iat": self.minter.mint(iat=OMIT),
            "no sub": self.minter.mint(sub=OMIT),
            "no aud": self.minter.mint(aud=OMIT),
            "no iss": self.minter.mint(iss=OMIT),
            "empty sub": self.minter.mint(sub=""),
            "not yet valid": self.minter.mint(nbf=now + 300),
            "issued in the future": self.minter.mint(iat=now + 300, nbf=OMIT),
            "groups not a list": self.minter.mint(groups="admins"),
            "groups with a number": self.minter.mint(groups=["admins", 7]),
            "email not a string": self.minter.mint(email=["a@example.com"]),
            "payload changed after signing": ".".join([head, b64(json.dumps(forged).encode()), sig]),
            "signature stripped": head + "." + payload + ".",
            "garbage": "not-a-token",
            "oversized": "a" * 9000,
        }
        for name, token in cases.items():
            with self.subTest(name):
                self.assertRefused(token)

    def test_mutated_tokens_are_refused_never_500(self):
        # A poor man's fuzzer: single-character changes, truncations and
        # swapped segments of a valid token, seeded so failures reproduce.
        # Every variant must be refused with 401; none may crash the view.
        rng = random.Random(4)
        good = self.minter.mint()
        alphabet = string.ascii_letters + string.digits + "-_.=+/ "
        variants = set()
        while len(variants) < 150:
            kind = rng.randrange(3)
            if kind == 0:
                i = rng.randrange(len(good))
                variants.add(good[:i] + rng.choice(alphabet) + good[i + 1 :])
            elif kind == 1:
                variants.add(good[: rng.randrange(len(good))])
            else:
                parts = good.split(".")
                rng.shuffle(parts)
                variants.add(".".join(parts))
        variants.discard(good)
        with self.assertLogs("gatehouse_auth", "INFO"):
            for token in sorted(variants):
                resp = self.client.get(WHOAMI, HTTP_AUTHORIZATION="Bearer " + token)
                if resp.status_code == 200:
                    # Only base64 padding-equivalent spellings of the same
                    # token may pass: the signed bytes must be unchanged.
                    self.assertEqual(_decoded(token), _decoded(good), f"a changed token was accepted: {token!r}")
                else:
                    self.assertEqual(resp.status_code, 401, f"{token!r}: got {resp.status_code}; want 401")

    def test_key_from_jku_is_never_fetched(self):
        other = new_key()
        self.assertRefused(self.minter.mint(key=other, headers={"jku": self.jwks_server.url + "?evil"}))
        self.assertNotIn("/oauth2/jwks.json?evil", self.jwks_server.paths)

    def test_no_token_is_refused_whatever_headers_claim(self):
        cases = {
            "nothing": {},
            "spoofed identity headers": {
                "HTTP_X_AUTH_REQUEST_USER": "u-alice",
                "HTTP_X_AUTH_REQUEST_EMAIL": "alice@example.com",
                "HTTP_X_AUTH_REQUEST_GROUPS": "admins",
                "HTTP_X_FORWARDED_USER": "alice",
            },
            "basic auth": {"HTTP_AUTHORIZATION": "Basic YWxpY2U6YWxpY2UtcHc="},
            "DRF token scheme": {"HTTP_AUTHORIZATION": "Token 9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b"},
        }
        for name, headers in cases.items():
            with self.subTest(name):
                resp = self.client.get(WHOAMI, **headers)
                self.assertEqual(resp.status_code, 401, f"got {resp.status_code}; want 401")
                self.assertEqual(resp["WWW-Authenticate"], 'Bearer realm="api"')
                self.assertFalse(User.objects.exists())

    def test_malformed_authorization_header(self):
        for value in ["Bearer", "Bearer a b", "Bearer \u00e9t\u00e9"]:
            with self.subTest(value):
                resp = self.client.get(WHOAMI, HTTP_AUTHORIZATION=value)
                self.assertEqual(resp.status_code, 401, f"{value!r}: got {resp.status_code}; want 401")

    def test_inactive_user_is_refused(self):
        self.client.get(WHOAMI, **self.bearer(self.minter.mint()))
        User.objects.filter(username="alice").update(is_active=False)
        with self.assertLogs("gatehouse_auth", "INFO"):
            resp = self.client.get(WHOAMI, **self.bearer(self.minter.mint()))
        self.assertEqual(resp.status_code, 401)


class UserMappingTests(GatehouseTestMixin, TestCase):
    def whoami(self, **claims):
        resp = self.client.get(WHOAMI, **self.bearer(self.minter.mint(**claims)))
        self.assertEqual(resp.status_code, 200, resp.content)
        return resp.json()

    def test_user_created_on_first_sight_then_reused(self):
        self.whoami()
        self.whoami()
        self.assertEqual(User.objects.count(), 1)
        user = User.objects.get()
        self.assertEqual(user.gatehouse_identity.sub, "u-alice")
        self.assertFalse(user.has_usable_password(), "a Gatehouse user must not be able to log in with a password")

    def test_profile_follows_the_token(self):
        self.whoami()
        me = self.whoami(email="alice@new.example", name="Alice Liddell")
        self.assertEqual((me["email"], me["name"]), ("alice@new.example", "Alice Liddell"))
        self.assertEqual(User.objects.get().email, "alice@new.example")

    def test_groups_are_synced(self):
        self.assertEqual(self.whoami()["groups"], ["admins", "developers"])
        self.assertEqual(self.whoami(groups=["developers", "ops"])["groups"], ["developers", "ops"])
        self.assertEqual(self.whoami(groups=OMIT)["groups"], [])
        # Groups are shared Django objects; a user leaving one does not delete it.
        self.assertEqual(set(Group.objects.values_list("name", flat=True)), {"admins", "developers", "ops"})

    def test_groups_not_synced_when_disabled(self):
        self.whoami()
        with override_settings(GATEHOUSE_AUTH={**self._gatehouse_settings.options["GATEHOUSE_AUTH"], "SYNC_GROUPS": False}):
            self.assertEqual(self.whoami(groups=["ops"])["groups"], ["admins", "developers"])

    def test_users_are_keyed_by_sub_not_by_name(self):
        local = User.objects.create_user("alice", "alice@local.example", "local-password")
        me = self.whoami()
        self.assertEqual(me["username"], "u-alice", "the local account 'alice' must not be handed to the token's alice")
        self.assertEqual(User.objects.get(pk=local.pk).email, "alice@local.example")
        # A second identity with the same preferred_username and sub-like names taken.
        User.objects.create_user("u-mallory")
        other = self.whoami(sub="u-mallory", email="m@example.com", preferred_username="alice")
        self.assertTrue(other["username"].startswith("gh-"), other["username"])
        self.assertEqual(Identity.objects.count(), 2)

    def test_two_clients_one_user(self):
        browser = self.whoami(client_id="gatehouse")
        native = self.whoami(client_id="native-app")
        self.assertEqual((browser["username"], native["username"]), ("alice", "alice"))
        self.assertEqual(native["client_id"], "native-app")
        self.assertEqual(User.objects.count(), 1)


class JWKSTests(TestCase):
    """Fetching Gatehouse's keys: rotation, bounded refetches, outages."""

    def setUp(self):
        self.server = JWKSServer()
        self.addCleanup(self.server.close)
        self.minter = Minter(new_key(), "k1")
        self.server.publish(public_jwk(self.minter.key, "k1"))

    def settings_for(self, url=None, **extra):
        return override_settings(
            GATEHOUSE_AUTH={"JWKS_URL": url or self.server.url, "ISSUER": ISSUER, "AUDIENCE": AUDIENCE, **extra}
        )

    def get(self, token):
        return self.client.get(WHOAMI, HTTP_AUTHORIZATION="Bearer " + token).status_code

    def test_rotated_key_is_fetched(self):
        with self.settings_for(JWKS_MIN_REFRESH_SECONDS=0):
            self.assertEqual(self.get(self.minter.mint()), 200)
            new = Minter(new_key(), "k2")
            # Gatehouse publishes the new key, then signs with it.
            self.server.publish(public_jwk(self.minter.key, "k1"), public_jwk(new.key, "k2"))
            self.assertEqual(self.get(new.mint()), 200)
            self.assertEqual(len(self.server.paths), 2)

    def test_unknown_kids_do_not_flood_gatehouse(self):
        with self.settings_for(JWKS_MIN_REFRESH_SECONDS=3600):
            self.assertEqual(self.get(self.minter.mint()), 200)
            with self.assertLogs("gatehouse_auth", "INFO"):
                for i in range(20):
                    self.assertEqual(self.get(self.minter.mint(headers={"kid": f"made-up-{i}"})), 401)
            self.assertEqual(len(self.server.paths), 1, "unknown kids refetched the JWKS")

    def test_keys_are_cached(self):
        with self.settings_for():
            for _ in range(5):
                self.assertEqual(self.get(self.minter.mint()), 200)
        self.assertEqual(len(self.server.paths), 1)

    def test_unreachable_jwks_is_503_not_401(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            closed = f"http://127.0.0.1:{s.getsockname()[1]}/oauth2/jwks.json"
        with self.settings_for(url=closed, JWKS_TIMEOUT=2):
            with self.assertLogs("gatehouse_auth", "WARNING"), self.assertLogs("django.request", "ERROR"):
                self.assertEqual(self.get(self.minter.mint()), 503)
        self.assertFalse(User.objects.exists())

    def test_jwks_without_usable_keys_is_503(self):
        self.server.publish({"kty": "EC", "crv": "P-999", "kid": "k1"})
        with self.settings_for():
            with self.assertLogs("gatehouse_auth", "WARNING"), self.assertLogs("django.request", "ERROR"):
                self.assertEqual(self.get(self.minter.mint()), 503)

    def test_key_of_the_wrong_type_is_refused(self):
        # A key under the token's kid that is not a P-256 key must not be
        # used to verify an ES256 token, whatever PyJWT would make of it.
        self.server.publish({"kty": "oct", "kid": "k1", "k": b64(b"shared-secret-0123456789abcdef01")})
        with self.settings_for():
            with self.assertLogs("gatehouse_auth", "INFO") as logs:
                self.assertEqual(self.get(self.minter.mint()), 401)
        self.assertIn("does not fit alg ES256", "\n".join(logs.output))


class SettingsTests(TestCase):
    def test_problems_name_the_key(self):
        cases = {
            "not a dict": (None, "GATEHOUSE_AUTH must be a dict"),
            "missing issuer": ({"JWKS_URL": "http://x/j", "AUDIENCE": "a"}, "['ISSUER'] is required"),
            "relative jwks url": ({"JWKS_URL": "/jwks", "ISSUER": "i", "AUDIENCE": "a"}, "not an absolute http(s) URL"),
            "HS256": (
                {"JWKS_URL": "http://x/j", "ISSUER": "i", "AUDIENCE": "a", "ALGORITHMS": ["ES256", "HS256"]},
                "contains ['HS256']",
            ),
            "none": ({"JWKS_URL": "http://x/j", "ISSUER": "i", "AUDIENCE": "a", "ALGORITHMS": ["none"]}, "contains ['none']"),
            "typo": ({"JWKS_URL": "http://x/j", "ISSUER": "i", "AUDIENCE": "a", "LEWAY": 5}, "unknown keys ['LEWAY']"),
            "negative leeway": ({"JWKS_URL": "http://x/j", "ISSUER": "i", "AUDIENCE": "a", "LEEWAY": -1}, "['LEEWAY']"),
        }
        for name, (raw, want) in cases.items():
            with self.subTest(name):
                found = conf.problems(raw)
                self.assertTrue(any(want in p for p in found), f"got {found}; want one containing {want!r}")

    def test_system_check_reports_problems(self):
        with override_settings(GATEHOUSE_AUTH={"JWKS_URL": "http://x/j", "ISSUER": "i", "AUDIENCE": "a", "ALGORITHMS": ["none"]}):
            errors = conf.check_settings(None)
        self.assertEqual([e.id for e in errors], ["gatehouse_auth.E001"])

    def test_example_settings_pass(self):
        self.assertEqual(conf.check_settings(None), [])
