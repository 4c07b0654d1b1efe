package proxy

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/oidcclient"
	"github.com/gatehouse/gatehouse/redirect"
	"github.com/gatehouse/gatehouse/sessionstore"
	"github.com/gatehouse/gatehouse/tokenmint"
)

func TestParseOriginal(t *testing.T) {
	tests := []struct {
		raw string
		ok  bool
	}{
		{"https://app.example.com/api/x?y=1", true},
		{"/api/x?y=1", true},
		{"http://app.example.com", true},
		{"https://app.example.com/a#frag", true},
		{"ftp://app.example.com/", false},
		{"javascript:alert(1)", false},
		{"//evil.example/x", false},
		{"https://user@app.example.com/", false},
		{"https:///nohost", false},
		{"api/x", false},
		{"/a b", false},
		{"/a\tb", false},
		{"/a\\b", false},
		{"https://app.example.com/%zz", false},
		{"", false},
	}
	for _, tt := range tests {
		u, err := parseOriginal(tt.raw)
		if (err == nil) != tt.ok {
			t.Errorf("parseOriginal(%q) = %v, %v; want ok=%v", tt.raw, u, err, tt.ok)
		}
		if err == nil && u.Fragment != "" {
			t.Errorf("parseOriginal(%q) kept fragment %q", tt.raw, u.Fragment)
		}
	}
}

func TestRequestURI(t *testing.T) {
	tests := []struct{ raw, want string }{
		{"https://app.example.com/a/b?c=d", "/a/b?c=d"},
		{"https://app.example.com", "/"},
		{"https://app.example.com?x=1", "/?x=1"},
		{"HTTP://app.example.com:8080/a#frag", "/a"},
		{"/a%2Fb?c", "/a%2Fb?c"},
	}
	for _, tt := range tests {
		u, err := parseOriginal(tt.raw)
		if err != nil {
			t.Fatalf("parseOriginal(%q): %v", tt.raw, err)
		}
		if got := requestURI(tt.raw, u); got != tt.want {
			t.Errorf("requestURI(%q) = %q; want %q", tt.raw, got, tt.want)
		}
	}
}

const (
	trustedAddr   = "10.1.2.3:40000"
	untrustedAddr = "192.0.2.7:40000"
)

// authFixture is a Server with routes worth deciding between, a trusted
// proxy range and planted sessions.
type authFixture struct {
	srv     *Server
	store   *sessionstore.Memory
	codec   *sessionstore.Codec
	cookies map[string]string // user name -> session cookie value
}

func newAuthFixture(t testing.TB) *authFixture {
	t.Helper()
	secret := [][]byte{[]byte("forward-auth-test-secret-0123456789abcdef")}
	codec, err := sessionstore.NewCodec(secret, 12*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	flow, _ := sessionstore.NewCodec(secret, 10*time.Minute)
	key, _ := tokenmint.GenerateKey("ES256")
	minter, err := tokenmint.NewMinter(tokenmint.Config{Issuer: "https://app.example.com", Keys: []*tokenmint.Key{key}})
	if err != nil {
		t.Fatal(err)
	}
	policy, err := redirect.NewPolicy("https://app.example.com", []string{".example.com"})
	if err != nil {
		t.Fatal(err)
	}
	up, _ := url.Parse("http://127.0.0.1:1")
	pub, _ := url.Parse("https://app.example.com")
	store := sessionstore.NewMemory(sessionstore.MemoryConfig{})
	t.Cleanup(func() { store.Close() })
	srv, err := New(Config{
		PublicURL: pub,
		Cookie:    CookieConfig{Name: "gatehouse", Codec: codec, FlowCodec: flow},
		Session:   SessionConfig{Store: store, IdleTimeout: 30 * time.Minute, MaxLifetime: 12 * time.Hour},
		Token:     TokenConfig{Minter: minter},
		Login:     LoginConfig{Client: oidcclient.New(oidcclient.Config{Issuer: "http://127.0.0.1:1"}), Redirects: policy},
		Policy:    Policy{EmailDomains: []string{"example.com"}},
		Routes: []*Route{
			{Name: "public", PathPrefix: "/public/", Upstream: up, Audience: "public", Public: true},
			{Name: "admin", PathPrefix: "/admin/", Upstream: up, Audience: "admin", AllowedGroups: []string{"admins"}},
			{Name: "api", Host: "api.example.com", PathPrefix: "/", Upstream: up, Audience: "api"},
			{Name: "app", PathPrefix: "/", Upstream: up, Audience: "app"},
		},
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
	})
	if err != nil {
		t.Fatal(err)
	}
	f := &authFixture{srv: srv, store: store, codec: codec, cookies: map[string]string{}}
	f.plant(t, "alice", "alice@example.com", "admins", "developers")
	f.plant(t, "bob", "bob@example.com", "developers")
	f.plant(t, "mallory", "mallory@evil.test", "admins")
	return f
}

func (f *authFixture) plant(t testing.TB, user, email string, groups ...string) {
	t.Helper()
	tk, _ := sessionstore.NewTicket()
	now := time.Now()
	s := &sessionstore.Session{Subject: "u-" + user, Email: email, EmailVerified: true, PreferredUsername: user,
		Groups: groups, CreatedAt: now, LastSeen: now, AuthTime: now, ExpiresAt: now.Add(12 * time.Hour), Version: 1}
	if err := f.store.Save(context.Background(), tk, s); err != nil {
		t.Fatal(err)
	}
	v, err := f.codec.EncodeTicket("gatehouse", tk)
	if err != nil {
		t.Fatal(err)
	}
	f.cookies[user] = v
}

// authRequest is one /oauth2/auth check as an ingress would send it.
type authRequest struct {
	peer    string      // RemoteAddr; "" = a trusted proxy
	headers [][2]string // in order; a name given twice is sent twice
	user    string      // "" = no session cookie
	query   string      // the auth URL's query, e.g. "mode=redirect"
	browser bool        // the client is a browser navigating (else an API call)
}

func (f *authFixture) check(a authRequest) *httptest.ResponseRecorder {
	target := "http://gatehouse.internal:4180/oauth2/auth"
	if a.query != "" {
		target += "?" + a.query
	}
	req := httptest.NewRequest("GET", target, nil)
	req.RemoteAddr = a.peer
	if a.peer == "" {
		req.RemoteAddr = trustedAddr
	}
	for _, h := range a.headers {
		req.Header[h[0]] = append(req.Header[h[0]], h[1])
	}
	if a.user != "" {
		req.Header.Set("Cookie", "gatehouse="+f.cookies[a.user])
	}
	if a.browser {
		req.Header.Set("Accept", "text/html,application/xhtml+xml")
		req.Header.Set("Sec-Fetch-Mode", "navigate")
	} else {
		req.Header.Set("Accept", "application/json")
	}
	rec := httptest.NewRecorder()
	f.srv.ServeHTTP(rec, req)
	return rec
}

// tokenAudience reads the aud claim of the minted token in a 202 answer
// (signatures are tokenmint's tests' business, and the ingress tests').
func tokenAudience(t *testing.T, h http.Header) string {
	t.Helper()
	raw, ok := strings.CutPrefix(h.Get("Authorization"), "Bearer ")
	parts := strings.Split(raw, ".")
	if !ok || len(parts) != 3 {
		t.Fatalf("Authorization = %q; want a bearer JWT", h.Get("Authorization"))
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims struct {
		Aud any `json:"aud"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	aud, _ := claims.Aud.(string)
	return aud
}

func origURL(u string) [2]string { return [2]string{"X-Original-Url", u} }

func fwd(uri, host, proto string) [][2]string {
	return [][2]string{{"X-Forwarded-Uri", uri}, {"X-Forwarded-Host", host}, {"X-Forwarded-Proto", proto}}
}

// TestForwardAuthDecisions is the decision matrix of /oauth2/auth: who is
// believed about the original request, what a malformed one gets, how
// paths are judged, and what each kind of refusal looks like.
func TestForwardAuthDecisions(t *testing.T) {
	const app = "https://app.example.com"
	tests := []struct {
		name string
		authRequest
		want     int
		body     string // if set, the body must contain it
		aud      string // with 202 and a user: the minted token's audience
		location string // with 302: the exact Location
	}{
		// Who is believed.
		{name: "untrusted peer, no headers, no session",
			authRequest: authRequest{peer: untrustedAddr}, want: 401},
		{name: "untrusted peer naming a public route: refused, and told why",
			authRequest: authRequest{peer: untrustedAddr, headers: [][2]string{origURL(app + "/public/x")}}, want: 403, body: "trusted_proxies"},
		{name: "untrusted peer with X-Forwarded-* naming a public route",
			authRequest: authRequest{peer: untrustedAddr, headers: fwd("/public/x", "app.example.com", "https")}, want: 403, body: "trusted_proxies"},
		{name: "untrusted peer with X-Forwarded-Method only",
			authRequest: authRequest{peer: untrustedAddr, headers: [][2]string{{"X-Forwarded-Method", "GET"}}}, want: 403, body: "trusted_proxies"},
		{name: "untrusted peer, signed in with every group",
			authRequest: authRequest{peer: untrustedAddr, user: "alice", headers: [][2]string{origURL(app + "/admin/x")}}, want: 403, body: "trusted_proxies"},
		{name: "untrusted peer without original headers, alice: judged on every route",
			authRequest: authRequest{peer: untrustedAddr, user: "alice"}, want: 202, aud: "app"},
		{name: "trusted peer, public route, absolute X-Original-URL",
			authRequest: authRequest{headers: [][2]string{origURL(app + "/public/x")}}, want: 202},
		{name: "trusted peer, public route, relative X-Original-URL",
			authRequest: authRequest{headers: [][2]string{origURL("/public/x?y=1")}}, want: 202},
		{name: "trusted peer, public route, X-Forwarded-*",
			authRequest: authRequest{headers: fwd("/public/x", "app.example.com", "https")}, want: 202},
		{name: "trusted peer, public route, X-Forwarded-Uri alone",
			authRequest: authRequest{headers: [][2]string{{"X-Forwarded-Uri", "/public/x"}}}, want: 202},
		{name: "X-Forwarded-Host alone says nothing about the path",
			authRequest: authRequest{headers: [][2]string{{"X-Forwarded-Host", "app.example.com"}}}, want: 401},
		{name: "X-Forwarded-Host alone, bob: judged on every route",
			authRequest: authRequest{user: "bob", headers: [][2]string{{"X-Forwarded-Host", "app.example.com"}}}, want: 403},

		// Malformed original requests.
		{name: "malformed percent-encoding",
			authRequest: authRequest{headers: [][2]string{origURL(app + "/public/%zz")}}, want: 401},
		{name: "javascript: URL",
			authRequest: authRequest{headers: [][2]string{origURL("javascript:alert(1)//public/")}}, want: 401},
		{name: "control character",
			authRequest: authRequest{headers: [][2]string{origURL(app + "/public/\x01x")}}, want: 401},
		{name: "encoded control character",
			authRequest: authRequest{headers: [][2]string{origURL(app + "/public/%00x")}}, want: 401},
		{name: "backslash",
			authRequest: authRequest{headers: [][2]string{origURL(app + "/public/..\\admin/x")}}, want: 401},
		{name: "scheme-relative",
			authRequest: authRequest{headers: [][2]string{origURL("//app.example.com/public/x")}}, want: 401},
		{name: "userinfo",
			authRequest: authRequest{headers: [][2]string{origURL("https://app.example.com@evil.test/public/x")}}, want: 401},
		{name: "empty X-Original-URL",
			authRequest: authRequest{headers: [][2]string{origURL("")}}, want: 401},
		{name: "malformed even with a session",
			authRequest: authRequest{user: "alice", headers: [][2]string{origURL("ftp://app.example.com/x")}}, want: 401},
		{name: "X-Forwarded-Uri not a path",
			authRequest: authRequest{headers: fwd("public/x", "app.example.com", "https")}, want: 401},
		{name: "X-Forwarded-Uri absolute",
			authRequest: authRequest{headers: fwd("https://app.example.com/public/x", "app.example.com", "https")}, want: 401},
		{name: "X-Forwarded-Host carrying a path",
			authRequest: authRequest{headers: fwd("/x", "app.example.com/public", "https")}, want: 401},
		{name: "X-Forwarded-Host carrying userinfo",
			authRequest: authRequest{headers: fwd("/public/x", "evil.test@app.example.com", "https")}, want: 401},
		{name: "X-Forwarded-Proto not http(s)",
			authRequest: authRequest{headers: fwd("/public/x", "app.example.com", "javascript")}, want: 401},
		{name: "X-Forwarded-Proto list",
			authRequest: authRequest{headers: fwd("/public/x", "app.example.com", "https, http")}, want: 401},

		// A client's copy of the other family of headers, passed through by the ingress.
		{name: "client X-Original-URL through Caddy/Traefik disagrees on the path",
			authRequest: authRequest{headers: append(fwd("/admin/x", "app.example.com", "https"), origURL(app+"/public/x"))}, want: 401},
		{name: "client X-Original-URL through Caddy/Traefik disagrees on the host",
			authRequest: authRequest{user: "alice", headers: append(fwd("/x", "app.example.com", "https"), origURL("https://api.example.com/x"))}, want: 401},
		{name: "client X-Forwarded-Uri through nginx disagrees",
			authRequest: authRequest{headers: [][2]string{origURL(app + "/admin/x"), {"X-Forwarded-Uri", "/public/x"}}}, want: 401},
		{name: "client X-Forwarded-Method disagrees",
			authRequest: authRequest{user: "alice", headers: [][2]string{origURL(app + "/x"), {"X-Original-Method", "POST"}, {"X-Forwarded-Method", "GET"}}}, want: 401},
		{name: "both families agree",
			authRequest: authRequest{headers: append(fwd("/public/x?y", "app.example.com", "https"), origURL(app+"/public/x?y"))}, want: 202},
		{name: "a load balancer's X-Forwarded-Host in front of nginx is not compared",
			authRequest: authRequest{headers: [][2]string{origURL("https://origin.internal/public/x"), {"X-Forwarded-Host", "app.example.com"}}}, want: 202},
		{name: "X-Original-URL twice",
			authRequest: authRequest{headers: [][2]string{origURL(app + "/public/x"), origURL(app + "/public/x")}}, want: 401},
		{name: "X-Forwarded-Uri twice",
			authRequest: authRequest{headers: append(fwd("/public/x", "app.example.com", "https"), [2]string{"X-Forwarded-Uri", "/public/x"})}, want: 401},

		// Route rules on the normalized path only.
		{name: "dot segments out of the public route",
			authRequest: authRequest{headers: [][2]string{origURL(app + "/public/../admin/x")}}, want: 401},
		{name: "encoded dot segments out of the public route",
			authRequest: authRequest{headers: [][2]string{origURL(app + "/public/%2e%2e/admin/x")}}, want: 401},
		{name: "encoded slashes out of the public route",
			authRequest: authRequest{headers: [][2]string{origURL(app + "/public%2F..%2Fadmin/x")}}, want: 401},
		{name: "encoded slashes out of the public route, bob refused by the admin route",
			authRequest: authRequest{user: "bob", headers: [][2]string{origURL(app + "/public%2F..%2Fadmin/x")}}, want: 403},
		{name: "query containing the public prefix",
			authRequest: authRequest{headers: [][2]string{origURL(app + "/admin/x?next=/public/")}}, want: 401},
		{name: "X-Forwarded-Uri with dot segments",
			authRequest: authRequest{headers: fwd("/public/../admin/x", "app.example.com", "https")}, want: 401},
		{name: "encoded '#' cutting into a public route is not public",
			authRequest: authRequest{headers: [][2]string{origURL(app + "/admin%23/../public/x")}}, want: 401},
		{name: "encoded '#' cutting into a public route needs every route's rules",
			authRequest: authRequest{user: "bob", headers: [][2]string{origURL(app + "/admin%23/../public/x")}}, want: 403},
		{name: "dot segments into a public route are not public",
			authRequest: authRequest{headers: [][2]string{origURL(app + "/admin/../public/x")}}, want: 401},
		{name: "double slash: Django does not collapse it, so it is never public",
			authRequest: authRequest{headers: [][2]string{origURL(app + "//public//x")}}, want: 401},

		// Signed in: audiences and policy.
		{name: "signed in, catch-all route",
			authRequest: authRequest{user: "bob", headers: [][2]string{origURL(app + "/x")}}, want: 202, aud: "app"},
		{name: "signed in, admin route",
			authRequest: authRequest{user: "alice", headers: [][2]string{origURL(app + "/admin/x")}}, want: 202, aud: "admin"},
		{name: "signed in, host route via X-Forwarded-Host",
			authRequest: authRequest{user: "bob", headers: fwd("/x", "API.example.com:443", "https")}, want: 202, aud: "api"},
		{name: "relative X-Original-URL never takes the check's Host: the first route the path may be on",
			authRequest: authRequest{user: "bob", headers: [][2]string{origURL("/x")}}, want: 202, aud: "api"},
		{name: "relative X-Original-URL, host unknown: every route the path may be on must allow",
			authRequest: authRequest{user: "bob", headers: [][2]string{origURL("/admin/x")}}, want: 403},
		{name: "relative X-Original-URL beside Traefik's forwarded host (a client's own): refused",
			authRequest: authRequest{user: "alice", headers: append(fwd("/x", "api.example.com", "https"), origURL("/x"))}, want: 401},
		{name: "bob refused by the admin route",
			authRequest: authRequest{user: "bob", headers: [][2]string{origURL(app + "/admin/x")}}, want: 403},
		{name: "bob refused in redirect mode: 403, not a redirect",
			authRequest: authRequest{user: "bob", browser: true, query: "mode=redirect", headers: [][2]string{origURL(app + "/admin/x")}}, want: 403},
		{name: "mallory refused by the email domain policy",
			authRequest: authRequest{user: "mallory", headers: [][2]string{origURL(app + "/x")}}, want: 403},
		{name: "mallory refused in redirect mode",
			authRequest: authRequest{user: "mallory", browser: true, query: "mode=redirect", headers: [][2]string{origURL(app + "/x")}}, want: 403},
		{name: "cross-origin POST with a cookie",
			authRequest: authRequest{user: "alice", headers: [][2]string{origURL(app + "/x"), {"X-Original-Method", "POST"}, {"Origin", "https://evil.test"}}}, want: 403},
		{name: "method unknown, cross-origin Origin: judged as a write",
			authRequest: authRequest{user: "alice", headers: [][2]string{origURL(app + "/x"), {"Origin", "https://evil.test"}}}, want: 403, body: "Cross-origin"},
		{name: "method unknown, same-origin Origin",
			authRequest: authRequest{user: "alice", headers: [][2]string{origURL(app + "/x"), {"Origin", app}}}, want: 202, aud: "app"},
		{name: "method unknown, no Origin (a cross-site link is a navigation)",
			authRequest: authRequest{user: "alice", headers: [][2]string{origURL(app + "/x"), {"Sec-Fetch-Site", "cross-site"}}}, want: 202, aud: "app"},
		{name: "WebSocket handshake from another site, Upgrade dropped by the ingress",
			authRequest: authRequest{user: "alice", headers: [][2]string{origURL(app + "/x"), {"X-Original-Method", "GET"}, {"Sec-Websocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="}, {"Origin", "https://evil.test"}}}, want: 403},
		{name: "WebSocket handshake from another site, by fetch metadata",
			authRequest: authRequest{user: "alice", headers: [][2]string{origURL(app + "/x"), {"X-Original-Method", "GET"}, {"Sec-Fetch-Mode", "websocket"}, {"Sec-Fetch-Site", "cross-site"}}}, want: 403},
		{name: "WebSocket handshake from the same origin",
			authRequest: authRequest{user: "alice", headers: [][2]string{origURL(app + "/x"), {"X-Original-Method", "GET"}, {"Sec-Websocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="}, {"Origin", app}}}, want: 202, aud: "app"},
		{name: "same-origin POST with a cookie",
			authRequest: authRequest{user: "alice", headers: [][2]string{origURL(app + "/x"), {"X-Original-Method", "POST"}, {"Origin", app}}}, want: 202, aud: "app"},

		// Without a session: 401, or the login in redirect mode.
		{name: "no session: 401 for nginx, even for a browser",
			authRequest: authRequest{browser: true, headers: [][2]string{origURL(app + "/x")}}, want: 401},
		{name: "redirect mode, browser navigation",
			authRequest: authRequest{browser: true, query: "mode=redirect", headers: fwd("/x?a=1&b=2", "app.example.com", "https")},
			want:        302, location: app + "/oauth2/start?rd=" + url.QueryEscape(app+"/x?a=1&b=2")},
		{name: "redirect mode, relative original URL",
			authRequest: authRequest{browser: true, query: "mode=redirect", headers: [][2]string{origURL("/x?a=1")}},
			want:        302, location: app + "/oauth2/start?rd=" + url.QueryEscape("/x?a=1")},
		{name: "redirect mode, another allowed host signs in through its own /start (multi-host)",
			authRequest: authRequest{browser: true, query: "mode=redirect", headers: fwd("/x", "api.example.com", "https")},
			want:        302, location: "https://api.example.com/oauth2/start?rd=" + url.QueryEscape("https://api.example.com/x")},
		{name: "redirect mode, disallowed host: no rd",
			authRequest: authRequest{browser: true, query: "mode=redirect", headers: fwd("/x", "evil.test", "https")},
			want:        302, location: app + "/oauth2/start"},
		{name: "redirect mode, no original URL: no rd",
			authRequest: authRequest{browser: true, query: "mode=redirect"},
			want:        302, location: app + "/oauth2/start"},
		{name: "redirect mode, API call",
			authRequest: authRequest{query: "mode=redirect", headers: [][2]string{origURL(app + "/x")}}, want: 401},
		{name: "redirect mode, browser POST",
			authRequest: authRequest{browser: true, query: "mode=redirect", headers: [][2]string{origURL(app + "/x"), {"X-Original-Method", "POST"}}}, want: 401},
		{name: "redirect mode, malformed original",
			authRequest: authRequest{browser: true, query: "mode=redirect", headers: [][2]string{origURL("javascript:alert(1)")}}, want: 401},
	}
	f := newAuthFixture(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := f.check(tt.authRequest)
			if rec.Code != tt.want {
				t.Fatalf("got %d %s; want %d", rec.Code, rec.Body, tt.want)
			}
			if !strings.Contains(rec.Body.String(), tt.body) {
				t.Errorf("body %q; want it to say %q", rec.Body, tt.body)
			}
			h := rec.Header()
			switch {
			case rec.Code == http.StatusAccepted && tt.user != "":
				if aud := tokenAudience(t, h); aud != tt.aud {
					t.Errorf("token aud = %q; want %q", aud, tt.aud)
				}
				if got, want := h.Get("X-Auth-Request-User"), "u-"+tt.user; got != want {
					t.Errorf("X-Auth-Request-User = %q; want %q", got, want)
				}
			case rec.Code == http.StatusAccepted:
				for _, k := range []string{"Authorization", "X-Auth-Request-User", "X-Auth-Request-Email", "X-Auth-Request-Groups"} {
					if v := h.Get(k); v != "" {
						t.Errorf("public answer carries %s: %q", k, v)
					}
				}
			case rec.Code == http.StatusFound:
				if loc := h.Get("Location"); loc != tt.location {
					t.Errorf("Location = %q; want %q", loc, tt.location)
				}
			case rec.Code == http.StatusUnauthorized || rec.Code == http.StatusForbidden:
				if h.Get("Authorization") != "" || h.Get("X-Auth-Request-User") != "" || h.Get("Location") != "" {
					t.Errorf("refusal carries identity or a redirect: %v", h)
				}
				if ct := h.Get("Content-Type"); ct != "application/json" {
					t.Errorf("refusal Content-Type = %q; want application/json", ct)
				}
			}
		})
	}
}

func TestForwardAuthMethods(t *testing.T) {
	f := newAuthFixture(t)
	for _, m := range []string{"POST", "PUT", "DELETE", "OPTIONS"} {
		req := httptest.NewRequest(m, "http://gatehouse.internal/oauth2/auth", nil)
		req.RemoteAddr = trustedAddr
		req.Header.Set("X-Original-Url", "https://app.example.com/public/x")
		req.Header.Set("Cookie", "gatehouse="+f.cookies["alice"])
		rec := httptest.NewRecorder()
		f.srv.ServeHTTP(rec, req)
		if rec.Code != http.StatusMethodNotAllowed {
			t.Errorf("%s /oauth2/auth got %d; want 405", m, rec.Code)
		}
	}
}

// FuzzForwardAuthHeaders throws arbitrary original-request headers at
// /oauth2/auth without a session. Properties: never a 5xx; a 2xx only from
// a trusted peer, carrying no identity, and only when every header that
// names a path names one under /public/ (checked here with net/url and
// path.Clean, independently of the proxy's own parsing).
func FuzzForwardAuthHeaders(f *testing.F) {
	// Corpus: origURL, origMethod, fwdURI, fwdHost, fwdProto, fwdMethod, dup, trusted.
	seeds := []struct {
		origURL, origMethod, fwdURI, fwdHost, fwdProto, fwdMethod string
		dup                                                       uint8
		trusted                                                   bool
	}{
		{"https://app.example.com/public/x", "GET", "", "", "", "", 0, true},                             // nginx, public
		{"https://app.example.com/admin/x", "GET", "", "", "", "", 0, true},                              // nginx, protected
		{"", "", "/public/x", "app.example.com", "https", "GET", 0, true},                                // Caddy, public
		{"https://app.example.com/public/x", "", "/admin/x", "app.example.com", "https", "GET", 0, true}, // forged X-Original-URL
		{"https://app.example.com/public/%2e%2e/admin", "", "", "", "", "", 0, true},                     // encoded dots
		{"https://app.example.com/public%2F..%2Fadmin", "", "", "", "", "", 0, true},                     // encoded slashes
		{"https://app.example.com/admin%23/../public/x", "", "", "", "", "", 0, true},                    // encoded '#'
		{"/public/x", "GET", "", "", "", "", 1, true},                                                    // duplicated header
		{"", "", "/x", "app.example.com/public", "https", "", 0, true},                                   // host with a path
		{"https://app.example.com/public/x", "", "", "", "", "", 0, false},                               // untrusted
	}
	for _, s := range seeds {
		f.Add(s.origURL, s.origMethod, s.fwdURI, s.fwdHost, s.fwdProto, s.fwdMethod, s.dup, s.trusted)
	}
	fx := newAuthFixture(f)
	f.Fuzz(func(t *testing.T, origURL, origMethod, fwdURI, fwdHost, fwdProto, fwdMethod string, dup uint8, trusted bool) {
		var headers [][2]string
		for i, kv := range [][2]string{
			{"X-Original-Url", origURL}, {"X-Original-Method", origMethod}, {"X-Forwarded-Uri", fwdURI},
			{"X-Forwarded-Host", fwdHost}, {"X-Forwarded-Proto", fwdProto}, {"X-Forwarded-Method", fwdMethod},
		} {
			if kv[1] == "" {
				continue
			}
			headers = append(headers, kv)
			if dup&(1<<i) != 0 {
				headers = append(headers, kv)
			}
		}
		a := authRequest{headers: headers, browser: dup&0x80 != 0, query: "mode=redirect"}
		if !trusted {
			a.peer = untrustedAddr
		}
		rec := fx.check(a)
		if rec.Code >= 500 {
			t.Fatalf("got %d for %q", rec.Code, headers)
		}
		if rec.Code >= 300 {
			return
		}
		if !trusted {
			t.Fatalf("untrusted peer got %d for %q", rec.Code, headers)
		}
		if rec.Header().Get("Authorization") != "" || rec.Header().Get("X-Auth-Request-User") != "" {
			t.Fatalf("identity without a session for %q", headers)
		}
		named := false
		if origURL != "" {
			named = true
			if !underPublic(origURL) {
				t.Fatalf("X-Original-URL %q is not public, yet got %d", origURL, rec.Code)
			}
		}
		if fwdURI != "" {
			named = true
			if !underPublic("http://h" + fwdURI) {
				t.Fatalf("X-Forwarded-Uri %q is not public, yet got %d", fwdURI, rec.Code)
			}
		}
		if !named {
			t.Fatalf("got %d without an original URL: %q", rec.Code, headers)
		}
	})
}

// underPublic reports whether raw (a URL) unambiguously names a path below
// /public/: no dot segments, no '?', '#' or '\\' in the decoded path.
func underPublic(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || strings.ContainsAny(u.Path, "?#\\") {
		return false
	}
	var segs []string
	for _, s := range strings.Split(u.Path, "/") {
		switch s {
		case ".", "..":
			return false
		case "":
			continue
		}
		segs = append(segs, s)
	}
	p := "/" + strings.Join(segs, "/")
	if strings.HasSuffix(u.Path, "/") {
		p += "/"
	}
	return strings.HasPrefix(p, "/public/")
}

// FuzzParseOriginal: whatever is accepted is an http(s) URL with a host or
// an absolute path, free of control characters and backslashes, whose path
// normalizes or is refused, never a panic.
func FuzzParseOriginal(f *testing.F) {
	for _, s := range []string{"https://a.example/x", "/x?y", "//evil", "/%2e%2e/admin", "http://a/\\b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := parseOriginal(raw)
		if err != nil {
			return
		}
		if u.IsAbs() && (u.Host == "" || (u.Scheme != "http" && u.Scheme != "https")) {
			t.Fatalf("accepted %q as %v", raw, u)
		}
		if !u.IsAbs() && !strings.HasPrefix(u.Path, "/") {
			t.Fatalf("accepted relative %q", raw)
		}
		if strings.ContainsAny(raw, "\\\x00\r\n\t ") {
			t.Fatalf("accepted %q with a control character or backslash", raw)
		}
		_, _ = normalizePath(u.Path)
		_ = requestURI(raw, u)
	})
}

// BenchmarkForwardAuth is a signed-in nginx check: trusted peer,
// X-Original-URL, session, cached token, 202 with headers.
func BenchmarkForwardAuth(b *testing.B) {
	f := newAuthFixture(b)
	req := httptest.NewRequest("GET", "http://gatehouse.internal/oauth2/auth", nil)
	req.RemoteAddr = trustedAddr
	req.Header.Set("X-Original-Url", "https://app.example.com/admin/reports?page=2")
	req.Header.Set("X-Original-Method", "GET")
	req.Header.Set("Cookie", "gatehouse="+f.cookies["alice"])
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		f.srv.ServeHTTP(rec, req.Clone(req.Context()))
		if rec.Code != http.StatusAccepted {
			b.Fatalf("got %d", rec.Code)
		}
	}
}
