// Package e2e runs Gatehouse end to end against real components (see
// internal/e2etest): the whole login, sessions in memory and Redis, attacks
// on the flow, routing, failures and operations.
package e2e

import (
	"context"
	"encoding/json"
	"github.com/gatehouse/gatehouse/internal/e2etest"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/tokenmint"
)

// TestBrowserJourney is the whole product in one test, against each store:
// login through the real provider, a verified token and identity headers at
// the upstream, spoofed headers gone, the cookie's attributes, userinfo,
// sign-out making the same cookie useless.
func TestBrowserJourney(t *testing.T) {
	for _, store := range []string{"memory", "redis"} {
		t.Run(store, func(t *testing.T) {
			e := e2etest.Start(t, e2etest.Options{Store: store})
			c := e.Browser()
			resp, body := e.Login(c, "/dashboard?tab=1", "alice", "alice-pw")
			if resp.StatusCode != http.StatusOK || body != "upstream GET /dashboard" {
				t.Fatalf("after login got %d %q at %s; want the upstream's /dashboard", resp.StatusCode, body, resp.Request.URL)
			}
			if q := resp.Request.URL.RawQuery; q != "tab=1" {
				t.Errorf("landed with query %q; want the original tab=1", q)
			}

			// The upstream got a token that verifies against Gatehouse's JWKS.
			got := e.Up.LastRequest()
			raw, ok := strings.CutPrefix(got.Header.Get("Authorization"), "Bearer ")
			if !ok {
				t.Fatalf("upstream Authorization = %q; want a bearer token", got.Header.Get("Authorization"))
			}
			host := strings.TrimPrefix(e.URL, "http://")
			v, err := tokenmint.NewVerifier(tokenmint.VerifierConfig{Issuer: e.URL, Audience: host, JWKSURL: e.URL + "/oauth2/jwks.json"})
			if err != nil {
				t.Fatal(err)
			}
			claims, err := v.Verify(context.Background(), raw)
			if err != nil {
				t.Fatalf("minted token does not verify: %v", err)
			}
			if claims.Subject != "u-alice" || claims.Email != "alice@example.com" || !claims.EmailVerified ||
				claims.PreferredUsername != "alice" || claims.Name != "Alice Admin" ||
				!slices.Equal(claims.Groups, []string{"admins", "developers"}) || claims.ClientID != e2etest.ClientID ||
				claims.SessionID == "" || claims.ID == "" || claims.AuthTime.IsZero() {
				t.Errorf("claims = %+v; want alice's identity, client_id, sid, jti and auth_time", claims)
			}
			for h, want := range map[string]string{
				"X-Auth-Request-User":               "u-alice",
				"X-Auth-Request-Email":              "alice@example.com",
				"X-Auth-Request-Groups":             "admins,developers",
				"X-Auth-Request-Preferred-Username": "alice",
			} {
				if g := got.Header.Get(h); g != want {
					t.Errorf("upstream %s = %q; want %q", h, g, want)
				}
			}
			if ck := got.Header.Get("Cookie"); strings.Contains(ck, "gatehouse") {
				t.Errorf("upstream received Gatehouse's cookie: %q", ck)
			}

			// The session cookie: HttpOnly, SameSite=Lax, Path=/.
			sc := sessionSetCookie(t, e, c)
			if !sc.HttpOnly || sc.SameSite != http.SameSiteLaxMode || sc.Path != "/" {
				t.Errorf("session cookie = %+v; want HttpOnly, SameSite=Lax, Path=/", sc)
			}

			// Spoofed identity headers never reach the upstream.
			req, _ := http.NewRequest("GET", e.URL+"/spoof", nil)
			req.AddCookie(&http.Cookie{Name: "gatehouse", Value: sc.Value})
			req.Header["X-Auth-Request-User"] = []string{"admin"}
			req.Header["X_Auth_Request_Email"] = []string{"ceo@corp"}
			req.Header["X-Auth-Request-Groups"] = []string{"admins", "admins"}
			req.Header["X-Forwarded-User"] = []string{"admin"}
			req.Header.Set("Authorization", "Bearer forged")
			resp = e.Do(req)
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			got = e.Up.LastRequest()
			if resp.StatusCode != 200 || got.URL.Path != "/spoof" {
				t.Fatalf("spoof request got %d, upstream saw %s", resp.StatusCode, got.URL.Path)
			}
			if got.Header.Get("X-Auth-Request-User") != "u-alice" || len(got.Header.Values("X-Auth-Request-Groups")) != 1 ||
				got.Header.Get("X_Auth_Request_Email") != "" || got.Header.Get("X-Forwarded-User") != "" ||
				got.Header.Get("Authorization") == "Bearer forged" {
				t.Errorf("spoofed identity reached the upstream: %v", got.Header)
			}

			// userinfo tells the front end who is signed in.
			req, _ = http.NewRequest("GET", e.URL+"/oauth2/userinfo", nil)
			req.AddCookie(&http.Cookie{Name: "gatehouse", Value: sc.Value})
			resp = e.Do(req)
			var ui map[string]any
			json.NewDecoder(resp.Body).Decode(&ui)
			resp.Body.Close()
			if resp.StatusCode != 200 || ui["email"] != "alice@example.com" || resp.Header.Get("Cache-Control") != "no-store" {
				t.Errorf("userinfo = %d %v (Cache-Control %q)", resp.StatusCode, ui, resp.Header.Get("Cache-Control"))
			}

			// Sign out, then replay the very same cookie: it is useless.
			req, _ = http.NewRequest("POST", e.URL+"/oauth2/sign_out", nil)
			req.AddCookie(&http.Cookie{Name: "gatehouse", Value: sc.Value})
			resp = e.Do(req)
			resp.Body.Close()
			if cleared := resp.Cookies(); resp.StatusCode >= 400 || len(cleared) != 1 || cleared[0].MaxAge >= 0 {
				t.Errorf("sign-out got %d with cookies %v; want the session cookie cleared", resp.StatusCode, cleared)
			}
			before := e.Up.Count()
			req, _ = http.NewRequest("GET", e.URL+"/after-signout", nil)
			req.AddCookie(&http.Cookie{Name: "gatehouse", Value: sc.Value})
			req.Header.Set("Accept", "application/json")
			resp = e.Do(req)
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized || e.Up.Count() != before {
				t.Errorf("replayed cookie after sign-out got %d and %d upstream calls; want 401 and none", resp.StatusCode, e.Up.Count()-before)
			}
		})
	}
}

// sessionSetCookie returns the session cookie's Set-Cookie, as seen on the
// callback response of a fresh login in a new browser.
func sessionSetCookie(t *testing.T, e *e2etest.Env, _ *http.Client) *http.Cookie {
	t.Helper()
	c := e.Browser()
	name := "gatehouse"
	if strings.HasPrefix(e.URL, "https") {
		name = "__Host-gatehouse"
	}
	var found *http.Cookie
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if resp := req.Response; resp != nil && resp.Request.URL.Path == "/oauth2/callback" {
			for _, ck := range resp.Cookies() {
				if ck.Name == name && ck.Value != "" {
					found = ck
				}
			}
		}
		return nil
	}
	e.Login(c, "/again", "alice", "alice-pw")
	if found == nil {
		t.Fatalf("no %s Set-Cookie on the callback", name)
	}
	return found
}

func TestSecureCookieOverHTTPS(t *testing.T) {
	e := e2etest.Start(t, e2etest.Options{TLS: true})
	c := e.Browser()
	resp, body := e.Login(c, "/", "bob", "bob-pw")
	if resp.StatusCode != 200 || body != "upstream GET /" {
		t.Fatalf("login over https got %d %q", resp.StatusCode, body)
	}
	sc := sessionSetCookie(t, e, c)
	if sc.Name != "__Host-gatehouse" || !sc.Secure || !sc.HttpOnly || sc.Path != "/" || sc.Domain != "" || sc.SameSite != http.SameSiteLaxMode {
		t.Errorf("cookie = %+v; want __Host-gatehouse, Secure, HttpOnly, Path=/, no Domain, SameSite=Lax", sc)
	}
}

// TestBadCookies: tampered, truncated, foreign and garbage cookies lead to a
// login (browser) or 401 (API), never to the upstream.
func TestBadCookies(t *testing.T) {
	e := e2etest.Start(t, e2etest.Options{})
	c := e.Browser()
	e.Login(c, "/", "alice", "alice-pw")
	good := e.SessionCookie(c, "gatehouse").Value

	foreignEnv := e2etest.Start(t, e2etest.Options{Secrets: "another-gatehouse-secret-0123456789abcdef"})
	fc := foreignEnv.Browser()
	foreignEnv.Login(fc, "/", "alice", "alice-pw")
	foreign := foreignEnv.SessionCookie(fc, "gatehouse").Value

	flip := []byte(good)
	flip[len(flip)/2] ^= 1
	tests := map[string]string{
		"tampered":  string(flip),
		"truncated": good[:len(good)-5],
		"foreign":   foreign,
		"empty":     "",
		"garbage":   strings.Repeat("A", 3000),
		"not b64":   "%%%%",
	}
	for name, value := range tests {
		t.Run(name, func(t *testing.T) {
			before := e.Up.Count()
			for _, accept := range []string{"text/html", "application/json"} {
				req, _ := http.NewRequest("GET", e.URL+"/private", nil)
				req.Header.Set("Cookie", "gatehouse="+value)
				req.Header.Set("Accept", accept)
				resp := e.Do(req)
				resp.Body.Close()
				switch accept {
				case "text/html":
					if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), "/oauth2/start?rd=") {
						t.Errorf("browser got %d → %q; want 302 to /oauth2/start", resp.StatusCode, resp.Header.Get("Location"))
					}
				default:
					if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" {
						t.Errorf("API got %d; want 401 with WWW-Authenticate", resp.StatusCode)
					}
				}
			}
			if n := e.Up.Count() - before; n != 0 {
				t.Errorf("upstream called %d times; want 0", n)
			}
		})
	}
}

// TestLoginFlowAttacks: provider errors, replayed and foreign callbacks
// all end with an error page and no session.
func TestLoginFlowAttacks(t *testing.T) {
	e := e2etest.Start(t, e2etest.Options{})

	t.Run("provider error", func(t *testing.T) {
		c := e.Browser()
		loc := startLogin(t, e, c)
		state := loc.Query().Get("state")
		resp, err := c.Get(e.URL + "/oauth2/callback?error=access_denied&state=" + url.QueryEscape(state))
		if err != nil {
			t.Fatal(err)
		}
		body := e2etest.ReadBody(t, resp)
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "denied") {
			t.Errorf("got %d %.200q; want 403 saying access was denied", resp.StatusCode, body)
		}
		assertNoSession(t, e, c)
	})

	t.Run("callback from another browser", func(t *testing.T) {
		victim, attacker := e.Browser(), e.Browser()
		loc := startLogin(t, e, victim)
		resp, err := attacker.Get(e.URL + "/oauth2/callback?code=abc&state=" + url.QueryEscape(loc.Query().Get("state")))
		if err != nil {
			t.Fatal(err)
		}
		e2etest.ReadBody(t, resp)
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("got %d; want 400", resp.StatusCode)
		}
		assertNoSession(t, e, attacker)
	})

	t.Run("replayed callback", func(t *testing.T) {
		c := e.Browser()
		var callback string
		c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
			if req.URL.Path == "/oauth2/callback" {
				callback = req.URL.String()
			}
			return nil
		}
		e.Login(c, "/", "alice", "alice-pw")
		if callback == "" {
			t.Fatal("never saw the callback")
		}
		// Same browser, same URL again: the flow cookie is spent.
		resp, err := c.Get(callback)
		if err != nil {
			t.Fatal(err)
		}
		e2etest.ReadBody(t, resp)
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("replayed callback got %d; want 400", resp.StatusCode)
		}
		// Fresh browser with the URL: no flow cookie either.
		c2 := e.Browser()
		resp, _ = c2.Get(callback)
		e2etest.ReadBody(t, resp)
		assertNoSession(t, e, c2)
	})

	t.Run("wrong password keeps the form", func(t *testing.T) {
		c := e.Browser()
		resp, body := e.Login(c, "/", "alice", "nope")
		if !strings.HasPrefix(resp.Request.URL.String(), e.IDP.URL) || !strings.Contains(body, `name="password"`) {
			t.Errorf("wrong password ended at %s", resp.Request.URL)
		}
		assertNoSession(t, e, c)
	})

	t.Run("parallel logins in two tabs", func(t *testing.T) {
		c := e.Browser()
		first := startLogin(t, e, c)
		second := startLogin(t, e, c)
		if first.Query().Get("state") == second.Query().Get("state") {
			t.Fatal("two logins share a state")
		}
		// Each tab completes its own login, the one started first first.
		for i, tab := range []*url.URL{first, second} {
			resp, body := completeLogin(t, e, c, tab, "bob", "bob-pw")
			if resp.StatusCode != 200 || body != "upstream GET /" {
				t.Errorf("tab %d: got %d %q at %s; want the upstream's /", i+1, resp.StatusCode, body, resp.Request.URL)
			}
		}
	})

	t.Run("open redirect in rd is ignored", func(t *testing.T) {
		c := e.Browser()
		resp, _ := c.Get(e.URL + "/oauth2/start?rd=" + url.QueryEscape("//evil.example/x"))
		e2etest.ReadBody(t, resp)
		m := e2etest.AuthRequestID.FindStringSubmatch(readBodyAgain(t, c, resp.Request.URL.String()))
		if m == nil {
			t.Fatal("no login form")
		}
		resp, err := c.PostForm(e.IDP.URL+"/login", url.Values{"auth_request_id": {m[1]}, "username": {"alice"}, "password": {"alice-pw"}})
		if err != nil {
			t.Fatal(err)
		}
		e2etest.ReadBody(t, resp)
		if resp.Request.URL.Host != strings.TrimPrefix(e.URL, "http://") || resp.Request.URL.Path != "/" {
			t.Errorf("landed at %s; want Gatehouse's /", resp.Request.URL)
		}
	})
}

func readBodyAgain(t *testing.T, c *http.Client, u string) string {
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	return e2etest.ReadBody(t, resp)
}

// completeLogin follows a login begun by startLogin: the provider's form
// at authorize, signed in as user, back through the callback.
func completeLogin(t *testing.T, e *e2etest.Env, c *http.Client, authorize *url.URL, user, password string) (*http.Response, string) {
	t.Helper()
	m := e2etest.AuthRequestID.FindStringSubmatch(readBodyAgain(t, c, authorize.String()))
	if m == nil {
		t.Fatalf("no login form at %s", authorize)
	}
	resp, err := c.PostForm(e.IDP.URL+"/login", url.Values{"auth_request_id": {m[1]}, "username": {user}, "password": {password}})
	if err != nil {
		t.Fatal(err)
	}
	return resp, e2etest.ReadBody(t, resp)
}

// startLogin begins a login and returns the provider authorize URL it
// redirected to (not followed).
func startLogin(t *testing.T, e *e2etest.Env, c *http.Client) *url.URL {
	t.Helper()
	orig := c.CheckRedirect
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	defer func() { c.CheckRedirect = orig }()
	resp, err := c.Get(e.URL + "/oauth2/start?rd=/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || resp.StatusCode != http.StatusFound || loc.Query().Get("code_challenge_method") != "S256" || loc.Query().Get("nonce") == "" {
		t.Fatalf("start got %d → %q; want 302 to the provider with PKCE S256 and a nonce", resp.StatusCode, resp.Header.Get("Location"))
	}
	return loc
}

func assertNoSession(t *testing.T, e *e2etest.Env, c *http.Client) {
	t.Helper()
	req, _ := http.NewRequest("GET", e.URL+"/oauth2/userinfo", nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("userinfo got %d; want 401 (no session)", resp.StatusCode)
	}
}
