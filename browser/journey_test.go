package browser

import (
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/gatehouse/gatehouse/config"
	"github.com/gatehouse/gatehouse/internal/e2etest"
)

// whoami is what the example's /api/whoami answers.
type whoami struct {
	Username string   `json:"username"`
	Sub      string   `json:"sub"`
	Email    string   `json:"email"`
	Groups   []string `json:"groups"`
	ClientID string   `json:"client_id"`
}

// TestDjangoBehindGatehouse walks the journeys of issue 4 with the real
// things: Chromium signs in to the example's single page through Gatehouse
// and the provider's login form, uses the DRF API with fetch and a form POST,
// is refused when another origin posts with its cookie, and signs out; a
// native app's token then reaches the same Django user.
func TestDjangoBehindGatehouse(t *testing.T) {
	requireDjango(t)
	// Django needs Gatehouse's URL and Gatehouse's route Django's, and
	// Django binds its own port: Gatehouse's listener is bound first.
	ln := e2etest.Listen(t)
	dj := startDjango(t, "http://"+ln.Addr().String())
	e := e2etest.Start(t, e2etest.Options{
		Listener: ln,
		Env:      map[string]string{"GATEHOUSE_API_ACCEPTED_AUDIENCES": e2etest.NativeClientID},
		Routes: func(string) []config.Route {
			return []config.Route{{Name: "django", PathPrefix: "/", Upstream: dj.URL, Audience: djangoAudience}}
		},
	})
	b := newTab(t)

	loginForm := fmt.Sprintf(`location.href.startsWith(%q) && !!document.querySelector("input[name=password]")`, e.IDP.URL)

	// Sign in: the page first asked for is where the browser lands again.
	first := e.URL + "/?view=notes"
	b.do("opening the single page", chromedp.Navigate(first))
	b.waitUntil("the provider's login form", loginForm)
	b.do("signing in as alice",
		chromedp.SendKeys(chromedp.CSS(`input[name=username]`), "alice"),
		chromedp.SendKeys(chromedp.CSS(`input[name=password]`), "alice-pw"),
		chromedp.Click(chromedp.CSS(`button[type=submit]`)),
	)
	b.waitUntil("the single page with DRF's whoami shown",
		fmt.Sprintf(`location.href === %q && document.getElementById("whoami")?.dataset.state === "ok"`, first))
	var shown whoami
	shownJSON := mustEval[string](b, `JSON.stringify({
		username: document.getElementById("me-username").textContent,
		sub: document.getElementById("me-sub").textContent,
		email: document.getElementById("me-email").textContent,
		groups: document.getElementById("me-groups").textContent.split(", "),
		client_id: document.getElementById("me-client").textContent,
	})`)
	if err := json.Unmarshal([]byte(shownJSON), &shown); err != nil {
		t.Fatal(err)
	}
	want := whoami{Username: "alice", Sub: "u-alice", Email: "alice@example.com",
		Groups: []string{"admins", "developers"}, ClientID: e2etest.ClientID}
	if !equalWhoami(shown, want) {
		t.Fatalf("the page shows %+v; want %+v", shown, want)
	}
	b.screenshot("signed-in.png")

	// The session cookie exists but page scripts cannot read it.
	if c := mustEval[string](b, `document.cookie`); strings.Contains(c, "gatehouse") {
		t.Errorf("document.cookie reveals the session cookie (names: %q)", cookieNames(c))
	}
	session := b.cookie(e.URL, "gatehouse")
	switch {
	case session == nil:
		t.Fatal("the browser holds no gatehouse cookie after signing in")
	case !session.HTTPOnly:
		t.Error("the gatehouse cookie is not HttpOnly")
	}

	// Notes through fetch and through a classic form POST.
	b.do("saving a note with fetch",
		chromedp.SendKeys(chromedp.ID("note-fetch-text"), "note via fetch"),
		chromedp.Click(chromedp.ID("note-fetch-submit")),
	)
	b.waitUntil("the fetch note in the list", `[...document.querySelectorAll("#notes li")].some(li => li.textContent === "note via fetch")`)
	b.do("saving a note with the form",
		chromedp.SendKeys(chromedp.ID("note-classic-text"), "note via form"),
		chromedp.Click(chromedp.ID("note-classic-submit")),
	)
	b.waitUntil("the page again after the form POST, listing both notes",
		fmt.Sprintf(`location.href === %q && document.getElementById("notes").dataset.state === "ok" &&
			[...document.querySelectorAll("#notes li")].map(li => li.textContent).join("|") === "note via fetch|note via form"`, e.URL+"/"))
	if n := dj.requests("POST", "/notes/new"); n != 1 {
		t.Errorf("Django logged %d form POSTs; want 1", n)
	}

	// Another origin (127.0.0.1 on another port: same site, so the Lax cookie
	// rides along) auto-submits forms to the API and to the form view.
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><form id="f" method="post" action="%s">
<input name="text" value="forged by another origin"></form>
<script>document.getElementById("f").submit()</script>`, html.EscapeString(e.URL+r.URL.Path))
	}))
	defer evil.Close()
	for _, path := range []string{"/api/notes", "/notes/new"} {
		before := dj.requests("POST", path)
		b.do("opening the other origin's page", chromedp.Navigate(evil.URL+path))
		b.waitUntil("the forged POST's answer", fmt.Sprintf(`location.href === %q`, e.URL+path))
		if got := b.docStatus(e.URL + path); got != http.StatusForbidden {
			t.Errorf("cross-origin form POST to %s: got %d; want 403 (401 would mean the cookie was not sent)\n%s", path, got, b.describe())
		}
		if got := dj.requests("POST", path); got != before {
			t.Errorf("cross-origin form POST to %s reached Django", path)
		}
	}
	b.do("back to the single page", chromedp.Navigate(e.URL+"/"))
	b.waitUntil("the notes list", `document.getElementById("notes").dataset.state === "ok"`)
	notes := mustEval[[]string](b, `fetch("/api/notes", {credentials: "same-origin"}).then(r => r.json()).then(ns => ns.map(n => n.text))`)
	if !slices.Equal(notes, []string{"note via fetch", "note via form"}) {
		t.Errorf("notes after the cross-origin attempts: %q; want only the two alice wrote", notes)
	}

	// A native app signs in at the provider and calls the API with its own
	// token: DRF sees the user the browser session produced.
	tok := e.NativeLogin("alice", "alice-pw")
	var native whoami
	apiJSON(t, e, "GET", "/api/whoami", tok.AccessToken, "", http.StatusOK, &native)
	want.ClientID = e2etest.NativeClientID
	if !equalWhoami(native, want) {
		t.Errorf("native client's whoami %+v; want %+v", native, want)
	}
	apiJSON(t, e, "POST", "/api/notes", tok.AccessToken, `{"text": "note via native app"}`, http.StatusCreated, nil)
	notes = mustEval[[]string](b, `fetch("/api/notes", {credentials: "same-origin"}).then(r => r.json()).then(ns => ns.map(n => n.text))`)
	if !slices.Contains(notes, "note via native app") {
		t.Errorf("the browser lists %q; want the native app's note too (same user)", notes)
	}

	// A user Django has never seen, calling in parallel as a page's first
	// requests do: every call succeeds and all make one user.
	bobTok := e.NativeLogin("bob", "bob-pw")
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 10 * time.Second}
	bobs := make([]string, 6)
	for i := range bobs {
		wg.Go(func() {
			req, _ := http.NewRequest("GET", e.URL+"/api/whoami", nil)
			req.Header.Set("Authorization", "Bearer "+bobTok.AccessToken)
			resp, err := client.Do(req)
			if err != nil {
				bobs[i] = err.Error()
				return
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			bobs[i] = fmt.Sprintf("%d %s", resp.StatusCode, body)
		})
	}
	wg.Wait()
	for i, got := range bobs {
		if !strings.HasPrefix(got, `200 {"username":"bob","sub":"u-bob"`) {
			t.Errorf("parallel first call %d got %.300s; want 200 for bob (u-bob)", i, got)
		}
	}

	// Sign out; the page again leads to the login, the old cookie is dead,
	// and going back shows none of alice's data.
	b.do("signing out", chromedp.Click(chromedp.ID("sign-out")))
	b.waitUntil("the login form after sign-out", loginForm)
	b.do("reloading", chromedp.Reload())
	b.waitUntil("the login form after reload", loginForm)
	req, _ := http.NewRequest("GET", e.URL+"/api/whoami", nil)
	req.Header.Set("Accept", "application/json")
	req.AddCookie(&http.Cookie{Name: session.Name, Value: session.Value})
	if resp := e.Do(req); resp.StatusCode != http.StatusUnauthorized {
		resp.Body.Close()
		t.Errorf("the signed-out cookie still gets %d from /api/whoami; want 401", resp.StatusCode)
	} else {
		resp.Body.Close()
	}
	if back := b.back(); back != e.URL+"/" {
		t.Fatalf("going back led to %s; want the signed-in page %s/", back, e.URL)
	}
	b.waitUntil("the login form, with no protected data on the way",
		`document.body && document.body.innerText.includes("alice@example.com") ? "fail: alice's data is shown" : (`+loginForm+`)`)
}

// apiJSON calls Gatehouse with a bearer token like a native app and decodes
// the JSON answer into out (if not nil).
func apiJSON(t *testing.T, e *e2etest.Env, method, path, token, body string, wantStatus int, out any) {
	t.Helper()
	req, err := http.NewRequest(method, e.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp := e.Do(req)
	text := e2etest.ReadBody(t, resp)
	if resp.StatusCode != wantStatus {
		t.Fatalf("%s %s with a bearer token: got %d; want %d: %.300s", method, path, resp.StatusCode, wantStatus, text)
	}
	if out != nil {
		if err := json.Unmarshal([]byte(text), out); err != nil {
			t.Fatalf("%s %s: %v in %.300s", method, path, err, text)
		}
	}
}

func equalWhoami(a, b whoami) bool {
	return a.Username == b.Username && a.Sub == b.Sub && a.Email == b.Email &&
		slices.Equal(a.Groups, b.Groups) && a.ClientID == b.ClientID
}

// cookieNames lists the names in a document.cookie string, never the values.
func cookieNames(s string) []string {
	var names []string
	for _, kv := range strings.Split(s, ";") {
		name, _, _ := strings.Cut(strings.TrimSpace(kv), "=")
		names = append(names, name)
	}
	return names
}
