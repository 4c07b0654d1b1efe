"""Tests of the Django admin signed in by Gatehouse (GatehouseUserMiddleware).

Every request goes through the example's whole middleware stack to the
real admin at /admin/, with tokens from a real JWKS server on 127.0.0.1:
what is checked is what a browser behind Gatehouse would get.
"""
import socket

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.contrib.sessions.models import Session
from django.test import TestCase, override_settings

from gatehouse_auth import conf
from gatehouse_auth.testing import GatehouseTestMixin, Minter, new_key

User = get_user_model()
ADMIN = "/admin/"
LOGIN = "/admin/login/?next=/admin/"


@override_settings(GATEHOUSE_SUPERUSER_GROUPS=["admins"], GATEHOUSE_STAFF_GROUPS=["developers"])
class AdminLoginTests(GatehouseTestMixin, TestCase):
    def admin(self, path=ADMIN, **claims):
        return self.client.get(path, **self.bearer(self.minter.mint(**claims)))

    def assertSentToLogin(self, resp):
        self.assertEqual(resp.status_code, 302, f"got {resp.status_code}; want 302 to the admin's login")
        self.assertEqual(resp["Location"], LOGIN)

    def test_superuser_group_enters_with_every_permission(self):
        resp = self.admin(groups=["admins"])
        self.assertEqual(resp.status_code, 200, resp.content[:300])
        self.assertContains(resp, "Groups")  # auth models, visible to superusers only
        user = User.objects.get(username="alice")
        self.assertTrue(user.is_staff and user.is_superuser, "want staff and superuser")
        self.assertFalse(user.has_usable_password(), "a Gatehouse user must have no password")
        # The admin's own pages answer too.
        self.assertEqual(self.admin("/admin/auth/user/", groups=["admins"]).status_code, 200)

    def test_staff_group_enters_with_its_django_permissions_only(self):
        bob = {"sub": "u-bob", "preferred_username": "bob", "email": "bob@example.com", "groups": ["developers"]}
        resp = self.admin(**bob)
        self.assertEqual(resp.status_code, 200)
        self.assertNotContains(resp, "/admin/notes/note/")
        user = User.objects.get(username="bob")
        self.assertTrue(user.is_staff)
        self.assertFalse(user.is_superuser)
        # Permissions granted to the Django group that mirrors the token's
        # group work as Django's own.
        developers = Group.objects.get(name="developers")
        developers.permissions.add(Permission.objects.get(codename="view_note"))
        self.assertContains(self.admin(**bob), "/admin/notes/note/")
        self.assertEqual(self.admin("/admin/notes/note/", **bob).status_code, 200)
        self.assertEqual(self.admin("/admin/auth/user/", **bob).status_code, 403)

    def test_no_admin_group_is_sent_to_the_login_page(self):
        self.assertSentToLogin(self.admin(groups=["readers"]))
        user = User.objects.get(username="alice")
        self.assertFalse(user.is_staff or user.is_superuser)

    def test_leaving_the_group_ends_admin_access_on_the_next_request(self):
        self.assertEqual(self.admin(groups=["admins"]).status_code, 200)
        self.assertSentToLogin(self.admin(groups=[]))
        user = User.objects.get(username="alice")
        self.assertFalse(user.is_staff or user.is_superuser, "flags must follow the token down, too")
        self.assertEqual(self.admin(groups=["developers"]).status_code, 200)
        user.refresh_from_db()
        self.assertTrue(user.is_staff)
        self.assertFalse(user.is_superuser)

    def test_superuser_can_change_things(self):
        # A POST through the admin, as the signed-in superuser, with Django's
        # CSRF checks on (the admin's forms carry the token).
        client = self.client_class(enforce_csrf_checks=True)
        auth = self.bearer(self.minter.mint(groups=["admins"]))
        form = client.get("/admin/auth/group/add/", **auth)
        self.assertEqual(form.status_code, 200)
        csrf = form.context["csrf_token"]
        resp = client.post(
            "/admin/auth/group/add/",
            {"name": "auditors", "csrfmiddlewaretoken": csrf},
            **auth,
        )
        self.assertEqual(resp.status_code, 302, resp.content[:500])
        self.assertTrue(Group.objects.filter(name="auditors").exists())

    def test_admin_log_out_signs_out_of_gatehouse(self):
        for method in ("get", "post"):
            with self.subTest(method):
                resp = getattr(self.client, method)("/admin/logout/", **self.bearer(self.minter.mint(groups=["admins"])))
                self.assertEqual(resp.status_code, 302)
                self.assertEqual(resp["Location"], "/oauth2/sign_out?rd=/admin/")

    def test_nobody_is_logged_into_a_django_session(self):
        self.assertEqual(self.admin(groups=["admins"]).status_code, 200)
        self.assertFalse(Session.objects.exists(), "the middleware logged someone into a Django session")
        self.assertNotIn("sessionid", self.client.cookies)
        # So the next request without Gatehouse's token is nobody.
        self.assertSentToLogin(self.client.get(ADMIN))

    def test_headers_alone_never_sign_anyone_in(self):
        cases = {
            "identity headers": {
                "HTTP_X_AUTH_REQUEST_USER": "u-alice",
                "HTTP_X_AUTH_REQUEST_EMAIL": "alice@example.com",
                "HTTP_X_AUTH_REQUEST_GROUPS": "admins",
                "HTTP_X_AUTH_REQUEST_PREFERRED_USERNAME": "alice",
                "HTTP_X_FORWARDED_USER": "alice",
                "HTTP_REMOTE_USER": "alice",
                "REMOTE_USER": "alice",
            },
            "basic auth": {"HTTP_AUTHORIZATION": "Basic YWxpY2U6YWxpY2U="},
        }
        for name, headers in cases.items():
            with self.subTest(name):
                self.assertSentToLogin(self.client.get(ADMIN, **headers))
        self.assertFalse(User.objects.exists())

    def test_refused_tokens_are_nobody(self):
        cases = {
            "signed by another key": self.minter.mint(key=new_key(), groups=["admins"]),
            "wrong audience": self.minter.mint(aud="another-route", groups=["admins"]),
            "malformed": "not.a.token",
            "two tokens": self.minter.mint(groups=["admins"]) + " x",
        }
        for name, token in cases.items():
            with self.subTest(name):
                with self.assertLogs("gatehouse_auth", "INFO") as logs:
                    self.assertSentToLogin(self.client.get(ADMIN, HTTP_AUTHORIZATION="Bearer " + token))
                for line in logs.output:
                    self.assertNotIn(token, line, "the log holds the token")
        self.assertFalse(User.objects.exists())

    def test_bad_token_never_falls_back_to_the_session(self):
        # A local superuser signed in with a password (a Django session)...
        local = User.objects.create_superuser("root", "root@example.com", "correct horse battery")
        self.client.force_login(local)
        self.assertEqual(self.client.get(ADMIN).status_code, 200)
        # ... whose browser then sends a refused Gatehouse token is nobody.
        with self.assertLogs("gatehouse_auth", "INFO"):
            resp = self.client.get(ADMIN, HTTP_AUTHORIZATION="Bearer " + self.minter.mint(aud="elsewhere"))
        self.assertSentToLogin(resp)
        # And a good token is its own user, not the session's.
        resp = self.admin(groups=["developers"])
        self.assertEqual(resp.status_code, 200)
        self.assertEqual(resp.context["user"].get_username(), "alice")

    def test_inactive_user_is_nobody(self):
        self.assertEqual(self.admin(groups=["admins"]).status_code, 200)
        User.objects.filter(username="alice").update(is_active=False)
        with self.assertLogs("gatehouse_auth", "INFO"):
            self.assertSentToLogin(self.admin(groups=["admins"]))

    def test_api_and_middleware_verify_once(self):
        # The middleware answers first and DRF reuses the answer: one log
        # line for a refused token, not two.
        with self.assertLogs("gatehouse_auth", "INFO") as logs:
            resp = self.client.get("/api/whoami", HTTP_AUTHORIZATION="Bearer " + self.minter.mint(aud="elsewhere"))
        self.assertEqual(resp.status_code, 401)
        self.assertEqual(len([line for line in logs.output if "token refused" in line]), 1, logs.output)
        resp = self.client.get("/api/whoami", **self.bearer(self.minter.mint()))
        self.assertEqual(resp.status_code, 200)
        self.assertEqual(resp.json()["username"], "alice")


class AdminJWKSUnavailableTests(TestCase):
    def test_unreachable_jwks_is_503(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            closed = f"http://127.0.0.1:{s.getsockname()[1]}/oauth2/jwks.json"
        minter = Minter(new_key(), "k1")
        with override_settings(
            GATEHOUSE_AUTH={"JWKS_URL": closed, "ISSUER": minter.issuer, "AUDIENCE": minter.audience, "JWKS_TIMEOUT": 2}
        ):
            with self.assertLogs("gatehouse_auth", "WARNING"), self.assertLogs("django.request", "ERROR"):
                resp = self.client.get(ADMIN, HTTP_AUTHORIZATION="Bearer " + minter.mint())
        self.assertEqual(resp.status_code, 503)
        self.assertEqual(resp["Cache-Control"], "no-store")
        self.assertFalse(User.objects.exists())


class AdminFlagsUnmanagedTests(GatehouseTestMixin, TestCase):
    @override_settings(GATEHOUSE_STAFF_GROUPS=None, GATEHOUSE_SUPERUSER_GROUPS=None)
    def test_flags_untouched_without_the_settings(self):
        self.client.get("/api/whoami", **self.bearer(self.minter.mint()))
        User.objects.filter(username="alice").update(is_staff=True)
        self.client.get("/api/whoami", **self.bearer(self.minter.mint(groups=[])))
        self.assertTrue(User.objects.get(username="alice").is_staff, "flags changed with neither setting set")

    @override_settings(GATEHOUSE_SUPERUSER_GROUPS=["admins"], GATEHOUSE_STAFF_GROUPS=None)
    def test_superuser_groups_alone_imply_staff(self):
        self.client.get("/api/whoami", **self.bearer(self.minter.mint(groups=["admins"])))
        user = User.objects.get(username="alice")
        self.assertTrue(user.is_staff and user.is_superuser)


class AdminSettingsTests(TestCase):
    def test_problems_name_the_key(self):
        cases = {
            "a string, not a list": ({"GATEHOUSE_STAFF_GROUPS": "admins"}, "GATEHOUSE_STAFF_GROUPS must be a list"),
            "an empty name": ({"GATEHOUSE_SUPERUSER_GROUPS": ["admins", ""]}, "GATEHOUSE_SUPERUSER_GROUPS must hold"),
            "a number": ({"GATEHOUSE_STAFF_GROUPS": [7]}, "GATEHOUSE_STAFF_GROUPS must hold"),
        }
        for name, (values, want) in cases.items():
            with self.subTest(name), override_settings(**values):
                errors = conf.check_settings(None)
                self.assertEqual([e.id for e in errors], ["gatehouse_auth.E002"], errors)
                self.assertIn(want, errors[0].msg)

    def test_middleware_before_authentication_middleware_is_an_error(self):
        from django.conf import settings

        wrong = [m for m in settings.MIDDLEWARE if m != conf.MIDDLEWARE_PATH]
        wrong.insert(wrong.index(conf.AUTHENTICATION_MIDDLEWARE), conf.MIDDLEWARE_PATH)
        with override_settings(MIDDLEWARE=wrong):
            errors = conf.check_settings(None)
        self.assertEqual([e.id for e in errors], ["gatehouse_auth.E003"], errors)
