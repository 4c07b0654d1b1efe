package proxy

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestUntrustedPeerIsLoggedOnceAMinute: original-request headers from a
// peer outside trusted_proxies are refused every time, and logged with the
// entry to add at most once a minute, however many arrive.
func TestUntrustedPeerIsLoggedOnceAMinute(t *testing.T) {
	f := newAuthFixture(t)
	var buf bytes.Buffer
	f.srv.log = slog.New(slog.NewTextHandler(&buf, nil))
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.srv.now = func() time.Time { return now }
	ask := func() int {
		return f.check(authRequest{peer: untrustedAddr, headers: [][2]string{origURL("https://app.example.com/x")}}).Code
	}
	for range 50 {
		if got := ask(); got != http.StatusForbidden {
			t.Fatalf("got %d; want 403", got)
		}
	}
	if n := strings.Count(buf.String(), "trusted_proxies_entry=192.0.2.7/32"); n != 1 {
		t.Fatalf("50 refusals in a minute logged %d times; want 1:\n%s", n, buf.String())
	}
	now = now.Add(time.Minute)
	ask()
	if n := strings.Count(buf.String(), "trusted_proxies_entry="); n != 2 {
		t.Fatalf("a minute later: %d log lines; want 2", n)
	}
}

// TestNoRouteForASignedInUserIs403: an ingress turns a 401 into a sign-in
// redirect, so a signed-in user whom no route takes must get 403, or the
// browser loops between the app and the login.
func TestNoRouteForASignedInUserIs403(t *testing.T) {
	f := newAuthFixture(t)
	up, _ := url.Parse("http://127.0.0.1:1")
	f.srv.routes = []*Route{{Name: "only", Host: "app.example.com", PathPrefix: "/app/", Upstream: up, Audience: "app"}}
	for _, tt := range []struct {
		user, url string
		redirect  bool
		want      int
	}{
		{"alice", "https://app.example.com/elsewhere", false, http.StatusForbidden},
		{"alice", "https://other.example.com/app/x", true, http.StatusForbidden},
		{"", "https://app.example.com/elsewhere", false, http.StatusUnauthorized},
		{"", "https://app.example.com/elsewhere", true, http.StatusFound},
		{"alice", "https://app.example.com/app/x", false, http.StatusAccepted},
	} {
		a := authRequest{user: tt.user, headers: [][2]string{origURL(tt.url)}, browser: tt.redirect}
		if tt.redirect {
			a.query = "mode=redirect"
		}
		if got := f.check(a).Code; got != tt.want {
			t.Errorf("%q at %s (redirect mode %v): got %d; want %d", tt.user, tt.url, tt.redirect, got, tt.want)
		}
	}
	// The reverse proxy has nothing to send such a request to.
	req := httptest.NewRequest("GET", "https://app.example.com/elsewhere", nil)
	req.Header.Set("Cookie", "gatehouse="+f.cookies["alice"])
	rec := httptest.NewRecorder()
	f.srv.ServeHTTP(rec, req)
	if rec.Code != http.StatusNotFound {
		t.Errorf("proxy mode: got %d; want 404", rec.Code)
	}
}

// TestHostUnknownCaseInsensitiveScope: with the host unknown (a relative
// X-Original-URL), a case-insensitive protected route that would take the
// path from a public one is in scope too: the path is not public.
func TestHostUnknownCaseInsensitiveScope(t *testing.T) {
	f := newAuthFixture(t)
	up, _ := url.Parse("http://127.0.0.1:1")
	f.srv.routes = []*Route{
		{Name: "docs", PathPrefix: "/docs/", Upstream: up, Public: true},
		{Name: "admin", Host: "app.example.com", PathPrefix: "/DOCS/admin/", CaseInsensitive: true, Upstream: up, Audience: "admin", AllowedGroups: []string{"admins"}},
	}
	f.srv.anyCaseInsensitive = true
	for _, tt := range []struct {
		user, orig string
		want       int
	}{
		{"", "/docs/readme", http.StatusAccepted},
		{"", "/docs/admin/x", http.StatusUnauthorized},
		{"bob", "/docs/admin/x", http.StatusForbidden},
		{"", "https://app.example.com/docs/admin/x", http.StatusUnauthorized},
		{"", "https://other.example.com/docs/admin/x", http.StatusAccepted},
	} {
		if got := f.check(authRequest{user: tt.user, headers: [][2]string{origURL(tt.orig)}}).Code; got != tt.want {
			t.Errorf("%q asking about %s: got %d; want %d", tt.user, tt.orig, got, tt.want)
		}
	}
}
