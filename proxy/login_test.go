package proxy

import (
	"context"
	"errors"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/devidp"
	"github.com/gatehouse/gatehouse/oidcclient"
)

// withProvider points f's login at a real development provider, discovered.
func withProvider(t *testing.T, f *fixture, publicURL string) {
	t.Helper()
	idp, err := devidp.Start(devidp.Config{
		Users:   []devidp.User{{Username: "alice", Password: "alice", ID: "alice-id", Email: "alice@example.com", EmailVerified: true}},
		Clients: []devidp.Client{{ID: "gatehouse", Secret: "s3cret", RedirectURIs: []string{publicURL + "/oauth2/callback"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idp.Close() })
	c := oidcclient.New(oidcclient.Config{Issuer: idp.URL, ClientID: "gatehouse", ClientSecret: "s3cret",
		RedirectURL: publicURL + "/oauth2/callback", HTTPClient: &http.Client{Timeout: 5 * time.Second}})
	if err := c.Discover(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.srv.cfg.Login.Client = c
}

// browser is a cookie-keeping client that does not follow redirects.
func browser(t *testing.T) *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 5 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func flowCookies(c *http.Client, base string) int {
	u, _ := url.Parse(base + "/oauth2/callback")
	n := 0
	for _, ck := range c.Jar.Cookies(u) {
		if strings.HasPrefix(ck.Name, "gatehouse-flow-") {
			n++
		}
	}
	return n
}

// TestLoginFlowsAreCapped: several tabs may log in at once, but one browser
// never holds more than maxFlows flow cookies: /start sees the browser's
// flows and drops the oldest.
func TestLoginFlowsAreCapped(t *testing.T) {
	f := newFixture(t, nil)
	ts := httptest.NewServer(f.srv)
	t.Cleanup(ts.Close)
	withProvider(t, f, ts.URL)
	c := browser(t)
	for i := range maxFlows + 3 {
		resp, err := c.Get(ts.URL + "/oauth2/start?rd=/tab" + string(rune('a'+i)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusFound {
			t.Fatalf("start %d: got %d; want 302", i, resp.StatusCode)
		}
		if n, want := flowCookies(c, ts.URL), min(i+1, maxFlows); n != want {
			t.Fatalf("after %d starts the browser holds %d flow cookies; want %d", i+1, n, want)
		}
	}
}

// TestLoginRedirectLength: an rd of any length gets a clear answer; one that
// would push the flow cookie past what browsers keep is a 400, never a
// cookie the browser silently drops (a login that can never finish).
func TestLoginRedirectLength(t *testing.T) {
	f := newFixture(t, nil)
	ts := httptest.NewServer(f.srv)
	t.Cleanup(ts.Close)
	withProvider(t, f, ts.URL)
	for _, tt := range []struct {
		n    int
		want int
	}{{100, http.StatusFound}, {1500, http.StatusFound}, {maxRedirectLen + 1, http.StatusBadRequest}, {64 << 10, http.StatusBadRequest}} {
		resp, err := browser(t).Get(ts.URL + "/oauth2/start?rd=/" + strings.Repeat("a", tt.n-1))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("rd of %d bytes: got %d; want %d", tt.n, resp.StatusCode, tt.want)
		}
		for _, ck := range resp.Cookies() {
			if len(ck.String()) > maxCookieLen {
				t.Errorf("rd of %d bytes: a %d-byte cookie", tt.n, len(ck.String()))
			}
		}
	}
}

// TestLoginWhileSignedInEndsTheSession: starting a login clears the session
// cookie at once and ends that session server-side.
func TestLoginWhileSignedInEndsTheSession(t *testing.T) {
	f := newFixture(t, nil)
	ts := httptest.NewServer(f.srv)
	t.Cleanup(ts.Close)
	withProvider(t, f, ts.URL)
	cookie := f.plant(t)
	if got := f.get(cookie).Code; got != http.StatusOK {
		t.Fatalf("before: got %d; want 200", got)
	}
	req, _ := http.NewRequest("GET", ts.URL+"/oauth2/start", nil)
	req.Header.Set("Cookie", "gatehouse="+cookie)
	resp, err := browser(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cleared := false
	for _, ck := range resp.Cookies() {
		cleared = cleared || (ck.Name == "gatehouse" && ck.MaxAge < 0)
	}
	if resp.StatusCode != http.StatusFound || !cleared {
		t.Fatalf("got %d, session cookie cleared %v; want 302 and cleared", resp.StatusCode, cleared)
	}
	if got := f.get(cookie).Code; got != http.StatusUnauthorized {
		t.Fatalf("the old cookie, replayed: got %d; want 401", got)
	}
}

// TestCallbackRefusals: a callback that does not belong to a flow this
// browser started, or that carries the provider's error, ends with no
// session and a page that says so.
func TestCallbackRefusals(t *testing.T) {
	f := newFixture(t, nil)
	ts := httptest.NewServer(f.srv)
	t.Cleanup(ts.Close)
	withProvider(t, f, ts.URL)
	c := browser(t)
	resp, err := c.Get(ts.URL + "/oauth2/start")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	state := loc.Query().Get("state")
	for _, tt := range []struct {
		name, query string
		client      *http.Client
		want        int
	}{
		{"another browser's state", "state=" + state + "&code=x", browser(t), http.StatusBadRequest},
		{"no state", "code=x", c, http.StatusBadRequest},
		{"a made-up state", "state=" + strings.Repeat("A", 43) + "&code=x", c, http.StatusBadRequest},
		{"provider error", "state=" + state + "&error=access_denied", c, http.StatusForbidden},
		{"the same flow again", "state=" + state + "&code=x", c, http.StatusBadRequest},
	} {
		resp, err := tt.client.Get(ts.URL + "/oauth2/callback?" + tt.query)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.want || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
			t.Errorf("%s: got %d %s; want %d and a page", tt.name, resp.StatusCode, resp.Header.Get("Content-Type"), tt.want)
		}
		for _, ck := range resp.Cookies() {
			if ck.Name == "gatehouse" && ck.Value != "" {
				t.Errorf("%s: a session cookie was set", tt.name)
			}
		}
	}
}

// stubBearer is a BearerVerifier answering from a table, counting calls.
type stubBearer struct {
	calls int
	err   error
	b     *oidcclient.Bearer
}

func (s *stubBearer) VerifyAccessToken(context.Context, string) (*oidcclient.Bearer, error) {
	s.calls++
	return s.b, s.err
}

// TestBearerVerdicts: a bearer token decides alone (never a fallback to the
// cookie); a bad one is 401 invalid_token, an unverifiable one 503, a good
// one reaches the upstream with a token minted for the client, and is not
// verified again while it is cached.
func TestBearerVerdicts(t *testing.T) {
	good := &oidcclient.Bearer{Identity: oidcclient.Identity{Subject: "svc", Email: "svc@example.com", EmailVerified: true},
		ClientID: "native", Expiry: time.Now().Add(time.Hour)}
	for _, tt := range []struct {
		name   string
		stub   *stubBearer
		header string
		want   int
	}{
		{"valid", &stubBearer{b: good}, "Bearer t1", http.StatusOK},
		{"scheme case-insensitive", &stubBearer{b: good}, "bearer t1", http.StatusOK},
		{"refused by the verifier", &stubBearer{err: oidcclient.ErrInvalidToken}, "Bearer t1", http.StatusUnauthorized},
		{"provider unreachable", &stubBearer{err: errors.New("keys unreachable")}, "Bearer t1", http.StatusServiceUnavailable},
		{"empty token", &stubBearer{b: good}, "Bearer ", http.StatusUnauthorized},
		{"oversized token", &stubBearer{b: good}, "Bearer " + strings.Repeat("a", 20000), http.StatusUnauthorized},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil)
			f.srv.cfg.Login.Bearer = tt.stub
			cookie := f.plant(t) // a valid cookie too: it must not rescue a bad token
			for range 2 {
				req := httptest.NewRequest("GET", "https://app.example.com/api", nil)
				req.Header.Set("Authorization", tt.header)
				req.Header.Set("Cookie", "gatehouse="+cookie)
				rec := httptest.NewRecorder()
				f.srv.ServeHTTP(rec, req)
				if rec.Code != tt.want {
					t.Fatalf("got %d %s; want %d", rec.Code, rec.Body, tt.want)
				}
				if tt.want == http.StatusUnauthorized && !strings.Contains(rec.Header().Get("WWW-Authenticate"), `error="invalid_token"`) {
					t.Errorf("WWW-Authenticate = %q", rec.Header().Get("WWW-Authenticate"))
				}
			}
			if tt.want == http.StatusOK {
				if tt.stub.calls != 1 {
					t.Errorf("verified %d times for two requests; want 1 (cached)", tt.stub.calls)
				}
				if got := f.header.Get("X-Auth-Request-User"); got != "svc" {
					t.Errorf("upstream saw user %q; want svc", got)
				}
			}
		})
	}
}

// TestBearerTokens reads the Authorization header as RFC 6750 says.
func TestBearerTokens(t *testing.T) {
	for _, tt := range []struct {
		vals    []string
		token   string
		present bool
	}{
		{nil, "", false},
		{[]string{"Basic dTpw"}, "", false},
		{[]string{"Bearer abc"}, "abc", true},
		{[]string{"BEARER  abc "}, "abc", true},
		{[]string{"Bearer abc", "Bearer def"}, "", true}, // two: unusable, but present
		{[]string{"Basic dTpw", "Bearer def"}, "", true},
	} {
		tok, present := bearerToken(http.Header{"Authorization": tt.vals})
		if tok != tt.token || present != tt.present {
			t.Errorf("%q: got %q, %v; want %q, %v", tt.vals, tok, present, tt.token, tt.present)
		}
	}
}
