package proxy

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/redirect"
)

// hostBrowser is one browser's cookies, kept per host as browsers do for
// host-only cookies.
type hostBrowser struct {
	jar map[string]map[string]string // host -> name -> value
}

func (b *hostBrowser) do(t *testing.T, srv http.Handler, method, rawURL string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, rawURL, nil)
	req.Header.Set("Accept", "text/html")
	req.Header.Set("Sec-Fetch-Mode", "navigate")
	host := req.URL.Hostname()
	var pairs []string
	for k, v := range b.jar[host] {
		pairs = append(pairs, k+"="+v)
	}
	if len(pairs) > 0 {
		req.Header.Set("Cookie", strings.Join(pairs, "; "))
	}
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, req)
	for _, c := range rec.Result().Cookies() {
		if b.jar[host] == nil {
			b.jar[host] = map[string]string{}
		}
		if c.MaxAge < 0 || c.Value == "" {
			delete(b.jar[host], c.Name)
		} else {
			b.jar[host][c.Name] = c.Value
		}
	}
	return rec
}

// follow does the request and follows redirects within the three hosts,
// returning the last answer and the URLs it went through.
func (b *hostBrowser) follow(t *testing.T, srv http.Handler, rawURL string) (*httptest.ResponseRecorder, []string) {
	t.Helper()
	var trail []string
	for range 10 {
		trail = append(trail, rawURL)
		rec := b.do(t, srv, "GET", rawURL)
		if rec.Code != http.StatusFound {
			return rec, trail
		}
		next, _ := url.Parse(rec.Header().Get("Location"))
		base, _ := url.Parse(rawURL)
		rawURL = base.ResolveReference(next).String()
		if !strings.HasSuffix(next.Hostname(), "example.com") && next.Hostname() != "" {
			return rec, append(trail, rawURL) // left for the provider
		}
	}
	t.Fatalf("redirect loop: %v", trail)
	return nil, nil
}

func newHostsFixture(t *testing.T) *fixture {
	f := newFixture(t, nil)
	policy, err := redirect.NewPolicy("https://app.example.com", []string{"api.example.com", "grafana.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	f.srv.cfg.Login.Redirects = policy
	return f
}

// TestManyHostsOneSignIn: signed in on the sign-in host, a browser opens two
// other hosts without a second login, each with its own host-only cookie
// for the one server-side session; signing out on one signs out all.
func TestManyHostsOneSignIn(t *testing.T) {
	f := newHostsFixture(t)
	b := &hostBrowser{jar: map[string]map[string]string{"app.example.com": {"gatehouse": f.plant(t)}}}
	for _, host := range []string{"api.example.com", "grafana.example.com"} {
		rec, trail := b.follow(t, f.srv, "https://"+host+"/dashboard?x=1")
		if rec.Code != http.StatusOK || f.header.Get("X-Auth-Request-User") != "u1" {
			t.Fatalf("%s: got %d after %v; want 200 as u1", host, rec.Code, trail)
		}
		if last := trail[len(trail)-1]; last != "https://"+host+"/dashboard?x=1" {
			t.Errorf("%s: landed on %s; want the page asked for", host, last)
		}
		if b.jar[host]["gatehouse"] == "" || b.jar[host]["gatehouse-handoff"] != "" {
			t.Errorf("%s: cookies %v; want a session cookie and no nonce left", host, b.jar[host])
		}
	}
	if rec := b.do(t, f.srv, "POST", "https://grafana.example.com/oauth2/sign_out"); rec.Code != http.StatusOK {
		t.Fatalf("sign-out: got %d", rec.Code)
	}
	for _, host := range []string{"app.example.com", "api.example.com"} {
		req := httptest.NewRequest("GET", "https://"+host+"/x", nil)
		req.Header.Set("Cookie", "gatehouse="+b.jar[host]["gatehouse"])
		rec := httptest.NewRecorder()
		f.srv.ServeHTTP(rec, req)
		if rec.Code != http.StatusUnauthorized {
			t.Errorf("%s after sign-out on grafana: got %d; want 401", host, rec.Code)
		}
	}
}

// TestHandoffCodeRefusals: a code is for one host, one browser, one use,
// one minute.
func TestHandoffCodeRefusals(t *testing.T) {
	// issue runs the first half of the journey and returns the /handoff URL.
	issue := func(t *testing.T, f *fixture, b *hostBrowser) string {
		t.Helper()
		rec := b.do(t, f.srv, "GET", "https://api.example.com/oauth2/start?rd=/x")
		rec = b.do(t, f.srv, "GET", rec.Header().Get("Location"))
		loc := rec.Header().Get("Location")
		if !strings.HasPrefix(loc, "https://api.example.com/oauth2/handoff?code=") {
			t.Fatalf("got %d to %q; want a handoff to api.example.com", rec.Code, loc)
		}
		return loc
	}
	signedIn := func(f *fixture) *hostBrowser {
		return &hostBrowser{jar: map[string]map[string]string{"app.example.com": {"gatehouse": f.plant(t)}}}
	}

	t.Run("replayed", func(t *testing.T) {
		f := newHostsFixture(t)
		b := signedIn(f)
		code := issue(t, f, b)
		nonce := b.jar["api.example.com"]["gatehouse-handoff"]
		if rec := b.do(t, f.srv, "GET", code); rec.Code != http.StatusFound {
			t.Fatalf("first use: got %d", rec.Code)
		}
		b.jar["api.example.com"]["gatehouse-handoff"] = nonce // the same browser, replaying
		if rec := b.do(t, f.srv, "GET", code); rec.Code != http.StatusBadRequest {
			t.Fatalf("second use: got %d; want 400", rec.Code)
		}
	})
	t.Run("used on another host", func(t *testing.T) {
		f := newHostsFixture(t)
		b := signedIn(f)
		code := issue(t, f, b)
		b.jar["grafana.example.com"] = b.jar["api.example.com"] // even with the nonce
		rec := b.do(t, f.srv, "GET", strings.Replace(code, "api.example.com", "grafana.example.com", 1))
		if rec.Code != http.StatusBadRequest || b.jar["grafana.example.com"]["gatehouse"] != "" {
			t.Fatalf("got %d, cookie %q; want 400 and no session", rec.Code, b.jar["grafana.example.com"]["gatehouse"])
		}
	})
	t.Run("another browser", func(t *testing.T) {
		f := newHostsFixture(t)
		code := issue(t, f, signedIn(f)) // the attacker's own, signed-in code
		victim := &hostBrowser{jar: map[string]map[string]string{}}
		victim.do(t, f.srv, "GET", "https://api.example.com/oauth2/start?rd=/x") // the victim's own nonce
		if rec := victim.do(t, f.srv, "GET", code); rec.Code != http.StatusBadRequest || victim.jar["api.example.com"]["gatehouse"] != "" {
			t.Fatalf("got %d; want 400 and no session (login CSRF)", rec.Code)
		}
	})
	t.Run("expired", func(t *testing.T) {
		f := newHostsFixture(t)
		b := signedIn(f)
		code := issue(t, f, b)
		f.clock.Add(handoffTTL + time.Second)
		if rec := b.do(t, f.srv, "GET", code); rec.Code != http.StatusBadRequest {
			t.Fatalf("got %d; want 400", rec.Code)
		}
	})
	t.Run("made up", func(t *testing.T) {
		f := newHostsFixture(t)
		b := signedIn(f)
		issue(t, f, b)
		if rec := b.do(t, f.srv, "GET", "https://api.example.com/oauth2/handoff?code="+strings.Repeat("A", 43)); rec.Code != http.StatusBadRequest {
			t.Fatalf("got %d; want 400", rec.Code)
		}
	})
	t.Run("a host the configuration does not name", func(t *testing.T) {
		f := newHostsFixture(t)
		b := signedIn(f)
		rec := b.do(t, f.srv, "GET", "https://app.example.com/oauth2/start?rd="+url.QueryEscape("https://evil.test/x")+"&hn="+strings.Repeat("A", 43))
		if loc := rec.Header().Get("Location"); strings.Contains(loc, "evil.test") {
			t.Fatalf("sent the browser to %q", loc)
		}
	})
}
