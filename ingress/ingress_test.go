package ingress

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/gatehouse/gatehouse/config"
	"github.com/gatehouse/gatehouse/internal/e2etest"
	"github.com/gatehouse/gatehouse/tokenmint"
)

// routes are Gatehouse's routes in every ingress test: a public prefix, an
// admins-only prefix with its own audience, and a catch-all app.
func routes(up string) []config.Route {
	return []config.Route{
		{Name: "public", PathPrefix: "/public/", Upstream: up, Public: true},
		{Name: "admin", PathPrefix: "/admin/", Upstream: up, Audience: "admin", AllowedGroups: []string{"admins"}},
		{Name: "app", PathPrefix: "/", Upstream: up, Audience: "app"},
	}
}

// startGatehouse starts the provider, the recording upstream and Gatehouse
// with front (the ingress's URL) as its public URL, believing forwarded
// headers from 127.0.0.1 only: the ingress's address.
func startGatehouse(t *testing.T, front string) *e2etest.Env {
	t.Helper()
	return e2etest.Start(t, e2etest.Options{
		PublicURL: front,
		Env:       map[string]string{"GATEHOUSE_TRUSTED_PROXIES": "127.0.0.1/32"},
		Routes:    routes,
	})
}

// behindIngress starts an ingress in front of Gatehouse and the recording
// upstream, and then Gatehouse with the ingress's URL as its public URL.
// The ingress binds its own port (see e2etest.StartDaemon), so it starts
// first: start gets the addresses Gatehouse and the upstream will serve on
// (already bound, nothing to race for) and returns the ingress's base URL.
func behindIngress(t *testing.T, start func(gatehouse, app string) (front string)) (*e2etest.Env, string) {
	t.Helper()
	up := e2etest.NewUpstream(t)
	ln := e2etest.Listen(t)
	front := start(ln.Addr().String(), strings.TrimPrefix(up.URL, "http://"))
	e := e2etest.Start(t, e2etest.Options{
		Listener:  ln,
		Upstream:  up,
		PublicURL: front,
		Env:       map[string]string{"GATEHOUSE_TRUSTED_PROXIES": "127.0.0.1/32"},
		Routes:    routes,
	})
	return e, front
}

// binary finds an ingress's executable, failing the test when it is
// missing: the ingress tests are the point of this package.
func binary(t *testing.T, name string, candidates ...string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, p := range candidates {
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p
		}
	}
	t.Fatalf("%s is not installed (looked in PATH and %v): `make test` installs it (scripts/install-deps.sh)", name, candidates)
	return ""
}

// render executes the template in testdata/name with data.
func render(t testing.TB, name string, data any) string {
	t.Helper()
	tmpl, err := template.ParseFiles(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := tmpl.Execute(&b, data); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// signIn starts at start (a URL on the ingress) with a browser and posts
// the provider's login form, returning the final response and body.
func signIn(t *testing.T, e *e2etest.Env, c *http.Client, start, user, password string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(start)
	if err != nil {
		t.Fatalf("GET %s: %v", start, err)
	}
	body := e2etest.ReadBody(t, resp)
	if !strings.HasPrefix(resp.Request.URL.String(), e.IDP.URL) {
		t.Fatalf("GET %s ended at %s (%d), not at the provider's login form: %.300s", start, resp.Request.URL, resp.StatusCode, body)
	}
	m := e2etest.AuthRequestID.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no login form at %s: %.300s", resp.Request.URL, body)
	}
	resp, err = c.PostForm(e.IDP.URL+"/login", url.Values{
		"auth_request_id": {m[1]}, "username": {user}, "password": {password},
	})
	if err != nil {
		t.Fatalf("posting the login form: %v", err)
	}
	return resp, e2etest.ReadBody(t, resp)
}

// anonymous is a client without cookies that shows each response instead
// of following it.
var anonymous = &http.Client{Timeout: 10 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// noRedirects is a client that shares a browser's cookies but shows each
// response instead of following it.
func noRedirects(browser *http.Client) *http.Client {
	return &http.Client{Jar: browser.Jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// do sends req with c and returns the status and body.
func do(t *testing.T, c *http.Client, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	return resp, e2etest.ReadBody(t, resp)
}

// identityNames are the headers an upstream takes as identity, normalized.
var identityNames = []string{"authorization", "x-auth-request-user", "x-auth-request-email",
	"x-auth-request-groups", "x-auth-request-preferred-username"}

// identity collects every identity header an upstream received, under its
// normalized name (lower case, '_' as '-'), with every value.
func identity(h http.Header) map[string][]string {
	out := map[string][]string{}
	for k, v := range h {
		n := strings.ToLower(strings.ReplaceAll(k, "_", "-"))
		if slices.Contains(identityNames, n) {
			out[n] = append(out[n], v...)
		}
	}
	return out
}

// spoofed are identity headers a client makes up: canonical, underscore,
// lower-case and duplicated variants.
var spoofed = [][2]string{
	{"X-Auth-Request-User", "admin"},
	{"X_Auth_Request_User", "admin"},
	{"X_Auth_Request_Email", "ceo@corp.example"},
	{"X-Auth-Request-Groups", "root"},
	{"X-Auth-Request-Groups", "root"},
	{"x-auth-request-preferred-username", "root"},
	{"Authorization", "Bearer forged"},
}

func addSpoofed(req *http.Request) {
	for _, kv := range spoofed {
		req.Header[kv[0]] = append(req.Header[kv[0]], kv[1]) // as written, not canonicalized
	}
}

// redact shortens a header value that may hold a token for test output.
func redact(v string) string {
	if len(v) > 20 {
		return v[:20] + "…"
	}
	return v
}

// redacted is identity(h) fit for test output.
func redacted(id map[string][]string) map[string][]string {
	out := make(map[string][]string, len(id))
	for k, vs := range id {
		for _, v := range vs {
			out[k] = append(out[k], redact(v))
		}
	}
	return out
}

// hasAlice checks that the upstream got exactly Gatehouse's identity for
// alice: one token that verifies for audience, and one value of each
// identity header, whatever the client sent.
func hasAlice(t *testing.T, front string, h http.Header, audience string) {
	t.Helper()
	id := identity(h)
	if auth := id["authorization"]; len(auth) != 1 {
		t.Errorf("upstream got Authorization %q; want Gatehouse's one token", redacted(id)["authorization"])
	} else {
		claims := verify(t, front, auth[0], audience)
		if claims.Subject != "u-alice" || claims.Email != "alice@example.com" || claims.PreferredUsername != "alice" ||
			!slices.Equal(claims.Groups, []string{"admins", "developers"}) || claims.ClientID != e2etest.ClientID {
			t.Errorf("claims = %+v; want alice's identity", claims)
		}
	}
	delete(id, "authorization")
	want := map[string][]string{
		"x-auth-request-user":               {"u-alice"},
		"x-auth-request-email":              {"alice@example.com"},
		"x-auth-request-groups":             {"admins,developers"},
		"x-auth-request-preferred-username": {"alice"},
	}
	if fmt.Sprint(id) != fmt.Sprint(want) {
		t.Errorf("upstream identity headers = %v; want only Gatehouse's %v", id, want)
	}
}

// sessionCookie is Gatehouse's session cookie in a browser's jar.
func sessionCookie(t *testing.T, browser *http.Client, front string) string {
	t.Helper()
	u, _ := url.Parse(front)
	for _, ck := range browser.Jar.Cookies(u) {
		if ck.Name == "gatehouse" {
			return ck.Value
		}
	}
	t.Fatal("no session cookie in the browser")
	return ""
}

// verify checks a minted token against Gatehouse's JWKS, fetched through
// the ingress, for the given audience.
func verify(t *testing.T, front, authorization, audience string) *tokenmint.Claims {
	t.Helper()
	raw, ok := strings.CutPrefix(authorization, "Bearer ")
	if !ok {
		t.Fatalf("upstream Authorization = %q; want a bearer token", redact(authorization))
	}
	v, err := tokenmint.NewVerifier(tokenmint.VerifierConfig{Issuer: front, Audience: audience, JWKSURL: front + "/oauth2/jwks.json"})
	if err != nil {
		t.Fatal(err)
	}
	claims, err := v.Verify(context.Background(), raw)
	if err != nil {
		t.Fatalf("minted token does not verify for aud %q: %v", audience, err)
	}
	return claims
}

// journey is what a user of an ingress in front of Gatehouse sees.
type journey struct {
	front   string // the ingress's base URL (Gatehouse's public_url)
	landing string // path and query to start the browser journey at and land on again
	apiPath string // a path where an API call without a session must get 401
	// passesSessionCookie: the ingress hands Gatehouse's session cookie to
	// the upstream (ingress-nginx cannot remove one cookie).
	passesSessionCookie bool
}

// run plays the journey: login through the ingress, a verified token and
// identity at the upstream, spoofed headers gone, public routes open, API
// calls refused, forged original-request headers and path tricks useless,
// policy refusals as 403, cross-origin writes refused, sign-out.
func (j journey) run(t *testing.T, e *e2etest.Env) {
	alice := e.Browser()
	t.Run("anonymous browser ends at the login form", func(t *testing.T) {
		before := e.Up.Count()
		resp, err := alice.Get(j.front + j.landing)
		if err != nil {
			t.Fatal(err)
		}
		body := e2etest.ReadBody(t, resp)
		if !strings.HasPrefix(resp.Request.URL.String(), e.IDP.URL) || !e2etest.AuthRequestID.MatchString(body) {
			t.Fatalf("GET %s ended at %s (%d); want the provider's login form", j.landing, resp.Request.URL, resp.StatusCode)
		}
		if n := e.Up.Count() - before; n != 0 {
			t.Errorf("upstream reached %d times before login", n)
		}
	})

	t.Run("login lands on the original URL with a token for the route", func(t *testing.T) {
		resp, body := signIn(t, e, alice, j.front+j.landing, "alice", "alice-pw")
		path, _, _ := strings.Cut(j.landing, "?")
		if resp.StatusCode != 200 || body != "upstream GET "+path {
			t.Fatalf("after login got %d %q at %s; want the upstream's %s", resp.StatusCode, body, resp.Request.URL, path)
		}
		if got := resp.Request.URL.String(); got != j.front+j.landing {
			t.Errorf("landed at %s; want %s", got, j.front+j.landing)
		}
		hasAlice(t, j.front, e.Up.LastRequest().Header, "app")
	})

	c := noRedirects(alice)
	t.Run("spoofed identity headers never reach the upstream", func(t *testing.T) {
		req, _ := http.NewRequest("GET", j.front+"/spoof", nil)
		addSpoofed(req)
		req.Header.Set("Cookie", "gatehouse="+sessionCookie(t, alice, j.front))
		resp, body := do(t, anonymous, req)
		got := e.Up.LastRequest()
		if resp.StatusCode != 200 || got.URL.Path != "/spoof" {
			t.Fatalf("signed-in spoof request got %d %q, upstream saw %s; want 200 from the upstream", resp.StatusCode, body, got.URL.Path)
		}
		hasAlice(t, j.front, got.Header, "app")
	})

	t.Run("the session cookie stays between the browser and Gatehouse", func(t *testing.T) {
		session := sessionCookie(t, alice, j.front)
		for _, cookies := range [][]string{
			{"gatehouse"},
			{"gatehouse", "b"},
			{"a", "gatehouse"},
			{"a", "gatehouse", "b"},
			{"xgatehouse", "gatehouses", "gatehouse-flow-x", "gatehouse", "b"},
		} {
			var parts, want []string
			for _, name := range cookies {
				if name == "gatehouse" {
					parts = append(parts, name+"="+session)
					if !j.passesSessionCookie {
						continue
					}
				} else {
					parts = append(parts, name+"=1")
				}
				want = append(want, name)
			}
			req, _ := http.NewRequest("GET", j.front+"/cookies", nil)
			req.Header.Set("Cookie", strings.Join(parts, "; "))
			if resp, body := do(t, anonymous, req); resp.StatusCode != 200 {
				t.Fatalf("cookies %v: got %d %q; want the upstream", cookies, resp.StatusCode, body)
			}
			var names []string
			for _, ck := range e.Up.LastRequest().Cookies() {
				names = append(names, ck.Name)
			}
			if !slices.Equal(names, want) {
				t.Errorf("sent cookies %v, upstream got %v; want %v", cookies, names, want)
			}
		}
	})

	t.Run("a public route needs no login and gets no identity", func(t *testing.T) {
		req, _ := http.NewRequest("GET", j.front+"/public/page", nil)
		addSpoofed(req)
		resp, body := do(t, anonymous, req)
		got := e.Up.LastRequest()
		if resp.StatusCode != 200 || body != "upstream GET /public/page" {
			t.Fatalf("anonymous public request got %d %q; want the upstream's page", resp.StatusCode, body)
		}
		if id := identity(got.Header); len(id) != 0 {
			t.Errorf("upstream received identity headers on a public route: %v", redacted(id))
		}
	})

	t.Run("an API call without a session gets 401", func(t *testing.T) {
		before := e.Up.Count()
		req, _ := http.NewRequest("GET", j.front+j.apiPath, nil)
		req.Header.Set("Accept", "application/json")
		resp, body := do(t, anonymous, req)
		if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("got %d (WWW-Authenticate %q) %.200q; want 401 with a Bearer challenge",
				resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body)
		}
		if n := e.Up.Count() - before; n != 0 {
			t.Errorf("upstream reached %d times", n)
		}
	})

	t.Run("forged original-request headers cannot open a protected path", func(t *testing.T) {
		before := e.Up.Count()
		req, _ := http.NewRequest("GET", j.front+"/dashboard", nil)
		req.Header.Set("Accept", "application/json")
		req.Header.Set("X-Original-URL", j.front+"/public/x")
		req.Header.Set("X-Original-Method", "GET")
		req.Header.Set("X-Forwarded-Uri", "/public/x")
		req.Header.Set("X-Forwarded-Method", "GET")
		req.Header.Set("X-Forwarded-Host", strings.TrimPrefix(j.front, "http://"))
		req.Header.Set("X-Forwarded-Proto", "http")
		resp, _ := do(t, anonymous, req)
		if resp.StatusCode < 300 {
			t.Errorf("got %d; want a refusal", resp.StatusCode)
		}
		if n := e.Up.Count() - before; n != 0 {
			t.Errorf("upstream reached %d times", n)
		}
	})

	// A client's X-Original-URL or X-Forwarded-Uri gets a 401 (above); its
	// host and scheme claims are replaced or ignored.
	t.Run("the login redirect names the real URL, whatever host the client claims", func(t *testing.T) {
		req, _ := http.NewRequest("GET", j.front+"/dashboard", nil)
		req.Header.Set("Accept", "text/html")
		req.Header.Set("X-Forwarded-Host", "evil.test")
		req.Header.Set("X-Forwarded-Proto", "https")
		resp, _ := do(t, anonymous, req)
		loc, err := url.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != http.StatusFound || err != nil || loc.Scheme+"://"+loc.Host+loc.Path != j.front+"/oauth2/start" {
			t.Fatalf("got %d to %q; want a 302 to %s/oauth2/start", resp.StatusCode, resp.Header.Get("Location"), j.front)
		}
		front, _ := url.Parse(j.front + "/")
		rd, err := front.Parse(loc.Query().Get("rd"))
		if err != nil || rd.String() != j.front+"/dashboard" {
			t.Errorf("rd = %q; want %s/dashboard", loc.Query().Get("rd"), j.front)
		}
	})

	t.Run("path tricks cannot reach a protected path through a public one", func(t *testing.T) {
		addr := strings.TrimPrefix(j.front, "http://")
		for _, target := range []string{
			"/public/../dashboard",
			"/public/%2e%2e/dashboard",
			"/public/%2E%2E/admin/x",
			"/public%2F..%2Fdashboard",
			"/public/..%2Fdashboard",
			"/dashboard?next=/public/",
			"/admin%23/../public/x",
			"/admin%3F/../public/x",
			"http://" + addr + "/dashboard",
		} {
			before := e.Up.Count()
			resp := e2etest.RawRequest(t, addr, "GET "+target+" HTTP/1.1\r\nHost: "+addr+
				"\r\nAccept: application/json\r\nConnection: close\r\n\r\n")
			resp.Body.Close()
			if resp.StatusCode < 300 || e.Up.Count() != before {
				t.Errorf("GET %s got %d with %d upstream hits; want a refusal and none", target, resp.StatusCode, e.Up.Count()-before)
			}
		}
	})

	t.Run("the check itself is not reachable through the ingress", func(t *testing.T) {
		for _, p := range []string{"/oauth2/auth", "/oauth2//auth", "/oauth2/./auth", "/x/../oauth2/auth", "/OAUTH2/auth", "/oauth2/auth?mode=redirect"} {
			addr := strings.TrimPrefix(j.front, "http://")
			resp := e2etest.RawRequest(t, addr, "GET "+p+" HTTP/1.1\r\nHost: "+addr+
				"\r\nCookie: gatehouse="+sessionCookie(t, alice, j.front)+"\r\nConnection: close\r\n\r\n")
			resp.Body.Close()
			if h := resp.Header; resp.StatusCode == http.StatusAccepted || h.Get("Authorization") != "" || h.Get("X-Auth-Request-User") != "" {
				t.Errorf("GET %s through the ingress got %d with Authorization %q, X-Auth-Request-User %q; want no answer from the check",
					p, resp.StatusCode, redact(h.Get("Authorization")), h.Get("X-Auth-Request-User"))
			}
		}
	})

	t.Run("route audiences and a policy refusal as 403", func(t *testing.T) {
		req, _ := http.NewRequest("GET", j.front+"/admin/panel", nil)
		resp, body := do(t, c, req)
		if resp.StatusCode != 200 || body != "upstream GET /admin/panel" {
			t.Fatalf("alice on /admin/panel got %d %q; want the upstream", resp.StatusCode, body)
		}
		hasAlice(t, j.front, e.Up.LastRequest().Header, "admin")

		bob := e.Browser()
		if resp, body := signIn(t, e, bob, j.front+"/dashboard", "bob", "bob-pw"); resp.StatusCode != 200 {
			t.Fatalf("bob's login got %d %q", resp.StatusCode, body)
		}
		before := e.Up.Count()
		req, _ = http.NewRequest("GET", j.front+"/admin/panel", nil)
		req.Header.Set("Accept", "text/html")
		resp, _ = do(t, noRedirects(bob), req)
		if resp.StatusCode != 403 || resp.Header.Get("Location") != "" {
			t.Errorf("bob on /admin/panel got %d (Location %q); want 403 and no redirect", resp.StatusCode, resp.Header.Get("Location"))
		}
		if n := e.Up.Count() - before; n != 0 {
			t.Errorf("upstream reached %d times", n)
		}
	})

	t.Run("cookie-authenticated writes only from the same origin", func(t *testing.T) {
		for _, tt := range []struct {
			origin string
			want   int
		}{{"http://evil.test", 403}, {j.front, 200}} {
			before := e.Up.Count()
			req, _ := http.NewRequest("POST", j.front+"/form", strings.NewReader("a=1"))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Origin", tt.origin)
			resp, _ := do(t, c, req)
			reached := e.Up.Count() - before
			if resp.StatusCode != tt.want || (tt.want == 200) != (reached == 1) {
				t.Errorf("POST from %s got %d with %d upstream hits; want %d", tt.origin, resp.StatusCode, reached, tt.want)
			}
			if tt.want == 200 && e.Up.LastRequest().Method != "POST" {
				t.Errorf("upstream saw %s; want POST", e.Up.LastRequest().Method)
			}
		}
	})

	t.Run("sign-out through the ingress ends the session", func(t *testing.T) {
		session := sessionCookie(t, alice, j.front)
		req, _ := http.NewRequest("POST", j.front+"/oauth2/sign_out", nil)
		req.Header.Set("Origin", j.front)
		if resp, body := do(t, c, req); resp.StatusCode >= 400 {
			t.Fatalf("sign-out got %d %q", resp.StatusCode, body)
		}
		req, _ = http.NewRequest("GET", j.front+j.apiPath, nil)
		req.Header.Set("Accept", "application/json")
		req.AddCookie(&http.Cookie{Name: "gatehouse", Value: session})
		if resp, _ := do(t, anonymous, req); resp.StatusCode != 401 {
			t.Errorf("the signed-out cookie got %d; want 401", resp.StatusCode)
		}
	})
}
