package devidp

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"
)

// authorizeInProcess starts a code flow for the web client against p
// without a network and returns the auth request id the login page carries.
func authorizeInProcess(tb testing.TB, p *Provider, extra url.Values) string {
	tb.Helper()
	q := url.Values{
		"client_id":             {webClientID},
		"redirect_uri":          {webRedirectURI},
		"response_type":         {"code"},
		"scope":                 {"openid profile offline_access"},
		"state":                 {"st"},
		"code_challenge":        {oauth2.S256ChallengeFromVerifier(strings.Repeat("v", 43))},
		"code_challenge_method": {"S256"},
	}
	for k, v := range extra {
		q[k] = v
	}
	rec := httptest.NewRecorder()
	p.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/authorize?"+q.Encode(), nil))
	loc, err := url.Parse(rec.Header().Get("Location"))
	if rec.Code != http.StatusFound || err != nil || loc.Path != "/login" {
		tb.Fatalf("authorize: status %d, Location %q; want 302 to /login\n%s", rec.Code, rec.Header().Get("Location"), rec.Body)
	}
	return loc.Query().Get("auth_request_id")
}

func postLogin(p *Provider, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/login", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	p.ServeHTTP(rec, req)
	return rec
}

func newTestProvider(tb testing.TB, mutate func(*Config)) *Provider {
	tb.Helper()
	cfg := testConfig()
	cfg.Issuer = "http://127.0.0.1:9999"
	if mutate != nil {
		mutate(&cfg)
	}
	p, err := New(cfg)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	return p
}

func TestLoginPage(t *testing.T) {
	plain := newTestProvider(t, nil)
	hinted := newTestProvider(t, func(c *Config) { c.ShowHints = true })

	t.Run("headers and hints", func(t *testing.T) {
		for _, tt := range []struct {
			p         *Provider
			wantHints bool
		}{{plain, false}, {hinted, true}} {
			id := authorizeInProcess(t, tt.p, nil)
			rec := httptest.NewRecorder()
			tt.p.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/login?auth_request_id="+url.QueryEscape(id), nil))
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d; want 200", rec.Code)
			}
			for h, want := range map[string]string{
				"Cache-Control":   "no-store",
				"Content-Type":    "text/html; charset=utf-8",
				"X-Frame-Options": "DENY",
			} {
				if got := rec.Header().Get(h); got != want {
					t.Errorf("%s = %q; want %q", h, got, want)
				}
			}
			if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") {
				t.Errorf("Content-Security-Policy = %q; want frame-ancestors 'none'", csp)
			}
			body := rec.Body.String()
			if got := hintsRE.MatchString(body); got != tt.wantHints {
				t.Errorf("hints shown: %v; want %v", got, tt.wantHints)
			}
			if got := strings.Contains(body, "<code>alice</code>"); got != tt.wantHints {
				t.Errorf("alice's credentials shown: %v; want %v", got, tt.wantHints)
			}
			for _, want := range []string{`<form method="post"`, `name="username"`, `name="password"`, `type="submit"`,
				`<input type="hidden" name="auth_request_id" value="` + id + `">`} {
				if !strings.Contains(body, want) {
					t.Errorf("login page lacks %s", want)
				}
			}
		}
	})

	t.Run("login_hint is escaped into the username field", func(t *testing.T) {
		hint := `"><script>alert(1)</script>`
		id := authorizeInProcess(t, plain, url.Values{"login_hint": {hint}})
		rec := httptest.NewRecorder()
		plain.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/login?auth_request_id="+url.QueryEscape(id), nil))
		if strings.Contains(rec.Body.String(), "<script>") {
			t.Fatalf("login page contains the raw hint:\n%s", rec.Body)
		}
		m := userValE.FindStringSubmatch(rec.Body.String())
		if m == nil || attrMap([][]string{{"", "value", m[1]}})["value"] != hint {
			t.Errorf("username field = %v; want the escaped hint %q", m, hint)
		}
	})

	t.Run("bad requests get a clear page, never a panic", func(t *testing.T) {
		id := authorizeInProcess(t, plain, nil)
		long := strings.Repeat("x", maxFieldBytes+1)
		tests := []struct {
			name   string
			method string
			target string
			body   string
			want   int
		}{
			{"unknown request id", http.MethodGet, "/login?auth_request_id=nope", "", http.StatusBadRequest},
			{"no request id", http.MethodGet, "/login", "", http.StatusBadRequest},
			{"post with unknown request id", http.MethodPost, "/login", "auth_request_id=nope&username=alice&password=alice", http.StatusBadRequest},
			{"body over the limit", http.MethodPost, "/login", "auth_request_id=" + id + "&username=" + strings.Repeat("a", maxFormBytes), http.StatusBadRequest},
			{"field over the limit", http.MethodPost, "/login", "auth_request_id=" + id + "&username=" + long + "&password=x", http.StatusBadRequest},
			{"invalid UTF-8", http.MethodPost, "/login", "auth_request_id=" + id + "&username=%ff%fe&password=x", http.StatusBadRequest},
			{"malformed form", http.MethodPost, "/login", "auth_request_id=%zz", http.StatusBadRequest},
			{"PUT", http.MethodPut, "/login", "", http.StatusMethodNotAllowed},
			{"device page PUT", http.MethodPut, "/device", "", http.StatusMethodNotAllowed},
			{"device post without a code", http.MethodPost, "/device", "username=alice&password=alice", http.StatusOK},
		}
		for _, tt := range tests {
			req := httptest.NewRequest(tt.method, tt.target, strings.NewReader(tt.body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			rec := httptest.NewRecorder()
			plain.ServeHTTP(rec, req)
			if rec.Code != tt.want {
				t.Errorf("%s: status %d; want %d\n%s", tt.name, rec.Code, tt.want, rec.Body)
			}
		}
	})

	t.Run("a completed sign-in", func(t *testing.T) {
		id := authorizeInProcess(t, plain, nil)
		form := "auth_request_id=" + url.QueryEscape(id) + "&password=alice&username=alice"
		for i := range 2 { // a double-clicked submit lands at the callback both times
			rec := postLogin(plain, form)
			if loc := rec.Header().Get("Location"); rec.Code != http.StatusSeeOther || !strings.HasPrefix(loc, plain.Issuer()+"/authorize/callback?id=") {
				t.Errorf("submit %d: status %d, Location %q; want 303 to the callback", i+1, rec.Code, loc)
			}
		}
		if rec := postLogin(plain, "auth_request_id="+url.QueryEscape(id)+"&password=bob&username=bob"); rec.Code != http.StatusBadRequest {
			t.Errorf("another user completing it: status %d; want 400", rec.Code)
		}
	})
}

func TestNewRejectsBadConfig(t *testing.T) {
	good := func() Config { c := testConfig(); c.Issuer = "http://127.0.0.1:9999"; return c }
	tests := []struct {
		name   string
		mutate func(*Config)
		want   []string // substrings of the error
	}{
		{"no issuer", func(c *Config) { c.Issuer = "" }, []string{"issuer: required"}},
		{"issuer with path", func(c *Config) { c.Issuer = "http://127.0.0.1:9999/idp" }, []string{"issuer"}},
		{"issuer with trailing slash", func(c *Config) { c.Issuer = "http://127.0.0.1:9999/" }, []string{"issuer"}},
		{"issuer not http", func(c *Config) { c.Issuer = "ftp://127.0.0.1" }, []string{"issuer"}},
		{"no users", func(c *Config) { c.Users = nil }, []string{"users: at least one"}},
		{"user without password", func(c *Config) { c.Users[1].Password = "" }, []string{"users[1].password"}},
		{"duplicate username", func(c *Config) { c.Users[1].Username = "alice" }, []string{`users[1].username "alice": duplicate`}},
		{"duplicate id", func(c *Config) { c.Users[1].ID = c.Users[0].ID }, []string{"users[1].id"}},
		{"no clients", func(c *Config) { c.Clients = nil }, []string{"clients: at least one"}},
		{"duplicate client", func(c *Config) { c.Clients[1].ID = webClientID }, []string{"clients[1].id"}},
		{"relative redirect", func(c *Config) { c.Clients[0].RedirectURIs = []string{"/callback"} }, []string{"clients[0].redirect_uris[0]"}},
		{"redirect with fragment", func(c *Config) { c.Clients[0].RedirectURIs = []string{"http://127.0.0.1/cb#x"} }, []string{"fragment"}},
		{"bad backchannel URI", func(c *Config) { c.Clients[0].BackchannelLogoutURI = "mailto:x" }, []string{"backchannel_logout_uri"}},
		{"negative lifetime", func(c *Config) { c.AccessTokenLifetime = -1 }, []string{"access_token_lifetime"}},
		{"every problem at once", func(c *Config) { c.Issuer = ""; c.Users = nil; c.Clients = nil },
			[]string{"issuer: required", "users: at least one", "clients: at least one"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good()
			tt.mutate(&cfg)
			_, err := New(cfg)
			if err == nil {
				t.Fatalf("New: got nil error; want one mentioning %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("New: got %q; want it to mention %q", err, w)
				}
			}
		})
	}
}

func TestLogValuesHideSecrets(t *testing.T) {
	const password, secret = "hunter2-password", "s3cr3t-client-value"
	u := User{ID: "u1", Username: "user", Password: password}
	c := Client{ID: "c1", Secret: secret}
	var buf strings.Builder
	logger := slog.New(slog.NewTextHandler(&buf, nil))
	logger.Info("values", "user", u, "client", c, "config", Config{Issuer: "http://x", Users: []User{u}, Clients: []Client{c}})
	if strings.Contains(buf.String(), password) || strings.Contains(buf.String(), secret) {
		t.Errorf("log line shows a password or secret: %s", buf.String())
	}
	if !strings.Contains(buf.String(), "user.username=user") || !strings.Contains(buf.String(), "client.id=c1") {
		t.Errorf("log line lacks the user or client it describes: %s", buf.String())
	}
}

func TestStartAndClose(t *testing.T) {
	s, err := Start(Config{Issuer: "http://idp.test:8080", Users: DemoUsers(), Clients: testConfig().Clients})
	if err != nil {
		t.Fatal(err)
	}
	if s.Issuer() != "http://idp.test:8080" || !strings.HasPrefix(s.URL, "http://127.0.0.1:") {
		t.Errorf("Issuer, URL = %q, %q; want the configured issuer and a loopback URL", s.Issuer(), s.URL)
	}
	resp := get(t, http.DefaultClient, s.URL+"/.well-known/openid-configuration")
	var d struct{ Issuer string }
	json.NewDecoder(resp.Body).Decode(&d)
	resp.Body.Close()
	if d.Issuer != "http://idp.test:8080" {
		t.Errorf("discovery issuer = %q; want the configured one", d.Issuer)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := http.Get(s.URL + "/healthz"); err == nil {
		t.Errorf("GET after Close succeeded; want a connection error")
	}
	if _, err := Start(Config{}); err == nil {
		t.Errorf("Start with no users or clients: got nil error")
	}
}

func TestNormalizeUserCode(t *testing.T) {
	for in, want := range map[string]string{
		"BCDF-GHJK":   "BCDF-GHJK",
		"bcdfghjk":    "BCDF-GHJK",
		" bcdf ghjk ": "BCDF-GHJK",
		"BCD":         "BCD",
		"":            "",
		"ñ<script>":   "SCRIPT",
	} {
		if got := normalizeUserCode(in); got != want {
			t.Errorf("normalizeUserCode(%q) = %q; want %q", in, got, want)
		}
	}
}

// FuzzLoginForm posts arbitrary bodies to the login form. Whatever comes
// in, the answer is a page (200 or 400) or, only for the right password,
// the redirect to the op's callback; never a server error.
func FuzzLoginForm(f *testing.F) {
	p := newTestProvider(f, nil)
	// {{ID}} is replaced by a live auth request id.
	for _, seed := range []string{
		"auth_request_id={{ID}}&username=alice&password=alice",      // right password
		"auth_request_id={{ID}}&username=alice&password=alicE",      // wrong password
		"auth_request_id={{ID}}&username=alice&username=bob",        // repeated field
		"auth_request_id={{ID}}&username=%00&password=%ff",          // NUL, invalid UTF-8
		"auth_request_id=%zz&username=alice",                        // bad escape
		"auth_request_id={{ID}};username=alice;password=alice",      // semicolons
		"auth_request_id=../../{{ID}}&username=alice",               // path-like id
		"username=<script>alert(1)</script>&auth_request_id={{ID}}", // markup
		"",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body string) {
		if strings.Contains(body, "{{ID}}") {
			id := authorizeInProcess(t, p, nil)
			// Completed requests are only dropped at code exchange; drop it
			// here so a long run stays under the pending-request bound.
			defer p.store.DeleteAuthRequest(t.Context(), id)
			body = strings.ReplaceAll(body, "{{ID}}", url.QueryEscape(id))
		}
		rec := postLogin(p, body)
		switch rec.Code {
		case http.StatusOK, http.StatusBadRequest:
			if ct := rec.Header().Get("Content-Type"); ct != "text/html; charset=utf-8" {
				t.Errorf("status %d with Content-Type %q; want an HTML page", rec.Code, ct)
			}
			if strings.Contains(rec.Body.String(), "<script>") {
				t.Errorf("page echoes markup unescaped:\n%s", rec.Body)
			}
		case http.StatusSeeOther:
			form, err := url.ParseQuery(body)
			if err != nil || form.Get("username") != "alice" || form.Get("password") != "alice" {
				t.Errorf("signed in without alice's credentials: body %q", body)
			}
		default:
			t.Errorf("status %d for body %q; want 200, 303 or 400", rec.Code, body)
		}
	})
}

func BenchmarkLoginPage(b *testing.B) {
	p := newTestProvider(b, func(c *Config) { c.ShowHints = true })
	target := "/login?auth_request_id=" + url.QueryEscape(authorizeInProcess(b, p, nil))
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		p.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d", rec.Code)
		}
	}
}

// BenchmarkRefresh measures one refresh_token grant: client authentication,
// rotation, and signing a new access token and ID token.
func BenchmarkRefresh(b *testing.B) {
	p := newTestProvider(b, nil)
	id := authorizeInProcess(b, p, nil)
	rec := postLogin(p, "auth_request_id="+url.QueryEscape(id)+"&username=alice&password=alice")
	cb := httptest.NewRecorder()
	p.ServeHTTP(cb, httptest.NewRequest(http.MethodGet, rec.Header().Get("Location"), nil))
	back, _ := url.Parse(cb.Header().Get("Location"))
	token := func(form url.Values) map[string]any {
		req := httptest.NewRequest(http.MethodPost, "/oauth/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(webClientID, webClientSecret)
		w := httptest.NewRecorder()
		p.ServeHTTP(w, req)
		var m map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil || w.Code != http.StatusOK {
			b.Fatalf("token endpoint: status %d: %s", w.Code, w.Body)
		}
		return m
	}
	m := token(url.Values{"grant_type": {"authorization_code"}, "code": {back.Query().Get("code")},
		"redirect_uri": {webRedirectURI}, "code_verifier": {strings.Repeat("v", 43)}})
	rt, _ := m["refresh_token"].(string)
	b.ReportAllocs()
	for b.Loop() {
		m := token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
		rt, _ = m["refresh_token"].(string)
	}
}
