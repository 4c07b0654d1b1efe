"""Tests of the example's views with Gatehouse-shaped tokens."""
from django.test import Client, TestCase

from gatehouse_auth.testing import GatehouseTestMixin

from .models import Note


class NotesAPITests(GatehouseTestMixin, TestCase):
    def setUp(self):
        self.alice = self.bearer(self.minter.mint())
        self.bob = self.bearer(
            self.minter.mint(sub="u-bob", preferred_username="bob", email="bob@example.com", groups=["developers"])
        )

    def test_create_and_list_own_notes(self):
        resp = self.client.post("/api/notes", {"text": "buy milk"}, content_type="application/json", **self.alice)
        self.assertEqual(resp.status_code, 201, resp.content)
        self.assertEqual(resp.json()["text"], "buy milk")
        self.client.post("/api/notes", {"text": "bob's"}, content_type="application/json", **self.bob)
        got = [n["text"] for n in self.client.get("/api/notes", **self.alice).json()]
        self.assertEqual(got, ["buy milk"], "alice must see her notes only")

    def test_invalid_note_is_400(self):
        for text in ["", "x" * 501]:
            resp = self.client.post("/api/notes", {"text": text}, content_type="application/json", **self.alice)
            self.assertEqual(resp.status_code, 400, f"len {len(text)}: got {resp.status_code}; want 400")
        self.assertFalse(Note.objects.exists())

    def test_api_without_token_is_401(self):
        resp = self.client.post("/api/notes", {"text": "x"}, content_type="application/json")
        self.assertEqual(resp.status_code, 401)
        self.assertFalse(Note.objects.exists())

    def test_api_answers_are_not_cached(self):
        for path in ["/api/whoami", "/api/notes"]:
            resp = self.client.get(path, **self.alice)
            self.assertIn("no-store", resp["Cache-Control"], path)


class NoteFormTests(GatehouseTestMixin, TestCase):
    """The classic form POST. CSRF stance (docs/django.md): Gatehouse refuses
    cookie-authenticated writes from other origins, and Django sees only
    Gatehouse's token, which no other site can make a browser send, so the
    view needs no Django CSRF token. These tests run with Django's CSRF
    checks enforced to show the view does not depend on them."""

    def setUp(self):
        self.client = Client(enforce_csrf_checks=True)

    def test_form_post_creates_and_redirects_back(self):
        resp = self.client.post("/notes/new", {"text": "from a form"}, **self.bearer(self.minter.mint()))
        self.assertEqual((resp.status_code, resp["Location"]), (303, "/"))
        self.assertEqual(list(Note.objects.values_list("text", flat=True)), ["from a form"])

    def test_form_post_without_token_is_refused(self):
        resp = self.client.post("/notes/new", {"text": "forged"}, HTTP_ORIGIN="http://evil.test")
        self.assertEqual(resp.status_code, 401)
        self.assertFalse(Note.objects.exists())

    def test_invalid_form_post_redirects_with_error(self):
        resp = self.client.post("/notes/new", {"text": ""}, **self.bearer(self.minter.mint()))
        self.assertEqual((resp.status_code, resp["Location"]), (303, "/?error=note"))
        self.assertFalse(Note.objects.exists())


class PageTests(TestCase):
    def test_page_is_served_uncached_with_a_strict_policy(self):
        resp = self.client.get("/")
        self.assertEqual(resp.status_code, 200)
        self.assertIn("no-store", resp["Cache-Control"])
        self.assertIn("script-src 'self'", resp["Content-Security-Policy"])
        self.assertContains(resp, 'id="whoami"')
        self.assertContains(resp, 'href="/oauth2/sign_out?rd=/"')

    def test_script_is_served(self):
        resp = self.client.get("/app.js")
        self.assertEqual(resp.status_code, 200)
        self.assertTrue(resp["Content-Type"].startswith("text/javascript"))
        self.assertIn(b"credentials: \"same-origin\"", b"".join(resp.streaming_content))

    def test_page_takes_no_post(self):
        self.assertEqual(self.client.post("/").status_code, 405)
