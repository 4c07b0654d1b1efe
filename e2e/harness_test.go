// Package e2e runs Gatehouse end to end against real components: the
// zitadel-based OpenID provider in devidp, a real redis-server, a recording
// upstream, and HTTP clients that follow the login like a browser.
package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/app"
	"github.com/gatehouse/gatehouse/config"
	"github.com/gatehouse/gatehouse/devidp"
	"github.com/gatehouse/gatehouse/internal/testredis"
)

const (
	clientID     = "gatehouse"
	clientSecret = "e2e-client-secret-0123456789abcdef"
	cookieSecret = "e2e-cookie-secret-0123456789abcdef0123456789"
)

// upstream records what reached it.
type upstream struct {
	*httptest.Server
	mu    sync.Mutex
	hits  int
	last  *http.Request
	block chan struct{}
	hold  chan struct{}
}

func newUpstream(t *testing.T) *upstream {
	u := &upstream{block: make(chan struct{}), hold: make(chan struct{})}
	u.Server = httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(func() { close(u.block); u.Close() })
	return u
}

func (u *upstream) serve(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	u.hits++
	u.last = r.Clone(context.Background())
	u.mu.Unlock()
	switch r.URL.Path {
	case "/hold":
		<-u.hold
	case "/slow":
		select {
		case <-time.After(5 * time.Second):
		case <-r.Context().Done():
		case <-u.block:
		}
	case "/sse":
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: first\n\n")
		http.NewResponseController(w).Flush()
		// Hold the stream open: the client must get the first event now,
		// not when the upstream finishes.
		select {
		case <-r.Context().Done():
		case <-u.block:
		}
		return
	case "/ws":
		if r.Header.Get("Upgrade") != "websocket" {
			http.Error(w, "want upgrade", http.StatusBadRequest)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		fmt.Fprint(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		line, _ := brw.ReadString('\n')
		fmt.Fprintf(brw, "echo:%s", line)
		brw.Flush()
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	fmt.Fprintf(w, "upstream %s %s", r.Method, r.URL.Path)
}

// release lets requests to /hold finish.
func (u *upstream) release() { close(u.hold) }

func (u *upstream) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.hits
}

func (u *upstream) lastRequest() *http.Request {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.last
}

// env is one running Gatehouse with its provider, upstream and store.
type env struct {
	t          *testing.T
	idp        *devidp.Server
	up         *upstream
	app        *app.App
	redis      *testredis.Server
	url        string // Gatehouse's base URL
	metricsURL string
	tlsClient  *http.Client // set when the proxy is served over TLS
}

type options struct {
	store   string            // "memory" (default) or "redis"
	redis   *testredis.Server // share one server between instances
	env     map[string]string // extra GATEHOUSE_* settings
	routes  func(upstream string) []config.Route
	tls     bool // serve the proxy over HTTPS (secure cookies)
	secrets string
	logs    io.Writer // Gatehouse's log output at debug level; nil = discard
}

var users = []devidp.User{
	{ID: "u-alice", Username: "alice", Password: "alice-pw", Email: "alice@example.com", EmailVerified: true,
		Name: "Alice Admin", PreferredUsername: "alice", Groups: []string{"admins", "developers"}},
	{ID: "u-bob", Username: "bob", Password: "bob-pw", Email: "bob@example.com", EmailVerified: true,
		Name: "Bob Builder", PreferredUsername: "bob", Groups: []string{"developers"}},
	{ID: "u-eve", Username: "eve", Password: "eve-pw", Email: "eve@evil.test", EmailVerified: true,
		Name: "Eve", PreferredUsername: "eve"},
}

func start(t *testing.T, o options) *env {
	t.Helper()
	e := &env{t: t, up: newUpstream(t)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	scheme := "http"
	if o.tls {
		scheme = "https"
	}
	e.url = scheme + "://" + ln.Addr().String()

	e.idp, err = devidp.Start(devidp.Config{
		Users: users,
		Clients: []devidp.Client{{
			ID: clientID, Secret: clientSecret,
			RedirectURIs:           []string{e.url + "/oauth2/callback"},
			PostLogoutRedirectURIs: []string{e.url + "/"},
		}},
	})
	if err != nil {
		t.Fatalf("starting the OpenID provider: %v", err)
	}
	t.Cleanup(func() { e.idp.Close() })

	secrets := o.secrets
	if secrets == "" {
		secrets = cookieSecret
	}
	vars := map[string]string{
		"GATEHOUSE_PUBLIC_URL":              e.url,
		"GATEHOUSE_LISTEN":                  ln.Addr().String(),
		"GATEHOUSE_METRICS_LISTEN":          "127.0.0.1:0",
		"GATEHOUSE_OIDC_ISSUER":             e.idp.URL,
		"GATEHOUSE_OIDC_CLIENT_ID":          clientID,
		"GATEHOUSE_OIDC_CLIENT_SECRET":      clientSecret,
		"GATEHOUSE_COOKIE_SECRETS":          secrets,
		"GATEHOUSE_COOKIE_SECURE":           fmt.Sprint(o.tls),
		"GATEHOUSE_UPSTREAM":                e.up.URL,
		"GATEHOUSE_LOG_ACCESS_LOG":          "false",
		"GATEHOUSE_SERVER_SHUTDOWN_TIMEOUT": "2s",
	}
	if o.store == "redis" {
		e.redis = o.redis
		if e.redis == nil {
			e.redis = testredis.Start(t, testredis.Options{})
		}
		vars["GATEHOUSE_SESSION_STORE"] = "redis"
		vars["GATEHOUSE_REDIS_ADDRS"] = e.redis.Addr
	}
	for k, v := range o.env {
		vars[k] = v
	}
	cfg, err := config.Load("", func(k string) string { return vars[k] })
	if err != nil {
		t.Fatal(err)
	}
	if o.routes != nil {
		cfg.Routes = o.routes(e.up.URL)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	opts := app.Options{}
	if !o.tls {
		opts.Listener = ln
	} else {
		ln.Close()
	}
	logger := slog.New(slog.DiscardHandler)
	if o.logs != nil {
		logger = slog.New(slog.NewJSONHandler(o.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	e.app, err = app.New(cfg, logger, opts)
	if err != nil {
		t.Fatal(err)
	}
	if o.tls {
		// Serve the same handler over TLS on the address public_url names.
		srv := httptest.NewUnstartedServer(e.app.Handler())
		l, err := net.Listen("tcp", strings.TrimPrefix(e.url, "https://"))
		if err != nil {
			t.Fatal(err)
		}
		srv.Listener = l
		srv.StartTLS()
		t.Cleanup(srv.Close)
		e.tlsClient = srv.Client()
		cfg.Listen = "127.0.0.1:0" // the plain listener is unused in this mode
	}
	if err := e.app.Listen(); err != nil {
		t.Fatal(err)
	}
	e.metricsURL = "http://" + e.app.MetricsAddr()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.app.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("gatehouse exited with %v", err)
		}
	})
	e.waitReady()
	return e
}

// waitReady polls /readyz until the provider is discovered.
func (e *env) waitReady() {
	e.t.Helper()
	c := &http.Client{Timeout: time.Second}
	var last string
	for range 100 {
		resp, err := c.Get(e.metricsURL + "/readyz")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = string(b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	e.t.Fatalf("gatehouse never became ready: %s", last)
}

// browser returns an HTTP client with a cookie jar that follows redirects,
// sending Accept: text/html like a browser navigation.
func (e *env) browser() *http.Client {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second, Transport: browserTransport{base(e)}}
	return c
}

func base(e *env) http.RoundTripper {
	if e.tlsClient != nil {
		return e.tlsClient.Transport
	}
	return http.DefaultTransport
}

type browserTransport struct{ rt http.RoundTripper }

func (b browserTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Header.Get("Accept") == "" {
		r.Header.Set("Accept", "text/html,application/xhtml+xml")
	}
	return b.rt.RoundTrip(r)
}

var authReqRe = regexp.MustCompile(`name="auth_request_id" value="([^"]+)"`)

// login signs in through Gatehouse starting at path, posting the provider's
// login form like a person would, and returns the final response's body.
func (e *env) login(c *http.Client, path, user, password string) (*http.Response, string) {
	e.t.Helper()
	resp, err := c.Get(e.url + path)
	if err != nil {
		e.t.Fatalf("GET %s: %v", path, err)
	}
	body := readBody(e.t, resp)
	if !strings.HasPrefix(resp.Request.URL.String(), e.idp.URL) {
		e.t.Fatalf("GET %s ended at %s (%d), not at the provider's login form", path, resp.Request.URL, resp.StatusCode)
	}
	m := authReqRe.FindStringSubmatch(body)
	if m == nil {
		e.t.Fatalf("no login form at %s: %.300s", resp.Request.URL, body)
	}
	resp, err = c.PostForm(e.idp.URL+"/login", url.Values{
		"auth_request_id": {m[1]}, "username": {user}, "password": {password},
	})
	if err != nil {
		e.t.Fatalf("posting the login form: %v", err)
	}
	return resp, readBody(e.t, resp)
}

func readBody(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// sessionCookie returns the session cookie the jar holds for Gatehouse.
func (e *env) sessionCookie(c *http.Client, name string) *http.Cookie {
	u, _ := url.Parse(e.url)
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == name {
			return ck
		}
	}
	return nil
}

// do sends one request without following redirects.
func (e *env) do(req *http.Request) *http.Response {
	e.t.Helper()
	c := &http.Client{Timeout: 10 * time.Second, Transport: base(e),
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	return resp
}

// rawRequest writes a request byte for byte (for headers net/http would fix)
// and returns the response.
func rawRequest(t *testing.T, addr, raw string) *http.Response {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// syncBuffer collects log output from concurrent goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
