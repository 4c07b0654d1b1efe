package proxy

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

// TestEnvoyExtAuthz covers the check Envoy's ext_authz HTTP service makes:
// the original method and path appended to /oauth2/auth, 200 to allow.
func TestEnvoyExtAuthz(t *testing.T) {
	f := newFixture(t, nil)
	f.srv.routes = append([]*Route{{Name: "public", PathPrefix: "/public/", Public: true, Upstream: f.srv.routes[0].Upstream}}, f.srv.routes...)
	f.srv.cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
	cookie := f.plant(t)

	tests := []struct {
		name, method, path, remote, cookie string
		navigate                           bool
		want                               int
		location                           string // prefix of Location, for redirects
	}{
		{name: "public route, no session", method: "GET", path: "/public/x", want: 200},
		{name: "protected, session", method: "GET", path: "/page?x=1", cookie: cookie, want: 200},
		{name: "protected POST, session, same origin", method: "POST", path: "/api/items", cookie: cookie, want: 200},
		{name: "protected, browser without session", method: "GET", path: "/page?x=1", navigate: true, want: 302,
			location: "https://app.example.com/oauth2/start?rd=" + "https%3A%2F%2Fapp.example.com%2Fpage%3Fx%3D1"},
		{name: "protected, API without session", method: "GET", path: "/page", want: 401},
		{name: "protected POST without session", method: "POST", path: "/api/items", want: 401},
		{name: "dot segments through public", method: "GET", path: "/public/%2e%2e/page", want: 401},
		{name: "untrusted peer asking about a public path", method: "GET", path: "/public/x", remote: "203.0.113.9:1000", want: 403},
		{name: "untrusted peer with a session: reachable only from trusted peers", method: "GET", path: "/page", remote: "203.0.113.9:1000", cookie: cookie, want: 403},
		{name: "control character", method: "GET", path: "/public/%0a", want: 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, "http://app.example.com/oauth2/auth"+tt.path, nil)
			req.Header.Set("X-Forwarded-Proto", "https")
			if tt.remote != "" {
				req.RemoteAddr = tt.remote
			}
			if tt.cookie != "" {
				req.Header.Set("Cookie", "gatehouse="+tt.cookie)
				req.Header.Set("Origin", "https://app.example.com")
			}
			if tt.navigate {
				req.Header.Set("Sec-Fetch-Mode", "navigate")
				req.Header.Set("Accept", "text/html")
			}
			rec := httptest.NewRecorder()
			f.srv.ServeHTTP(rec, req)
			if rec.Code != tt.want {
				t.Fatalf("got %d (%s); want %d", rec.Code, rec.Body, tt.want)
			}
			if tt.location != "" && !strings.HasPrefix(rec.Header().Get("Location"), tt.location) {
				t.Errorf("Location %q; want %q", rec.Header().Get("Location"), tt.location)
			}
			identity := rec.Header().Get("Authorization") != ""
			if identity != (tt.want == 200 && tt.cookie != "") {
				t.Errorf("identity headers present = %v", identity)
			}
			if f.hits != 0 {
				t.Errorf("the check reached the upstream")
			}
		})
	}
	// The answer a client could read is the same as /oauth2/auth's.
	req := httptest.NewRequest("GET", "http://app.example.com/oauth2/auth/page", nil)
	req.Header.Set("Cookie", "gatehouse="+cookie)
	rec := httptest.NewRecorder()
	f.srv.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK || rec.Header().Get("X-Auth-Request-User") != "u1" {
		t.Errorf("got %d, user %q", rec.Code, rec.Header().Get("X-Auth-Request-User"))
	}
}
