// Package e2etest starts Gatehouse end to end against real components for
// tests: the zitadel-based OpenID provider in devidp, a real redis-server,
// a recording upstream, and HTTP clients that follow the login like a
// browser. The e2e, ingress and browser tests share it.
package e2etest

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
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/gatehouse/gatehouse/app"
	"github.com/gatehouse/gatehouse/config"
	"github.com/gatehouse/gatehouse/devidp"
	"github.com/gatehouse/gatehouse/internal/testredis"
	"github.com/gatehouse/gatehouse/tokenmint"
)

const (
	// ClientID, ClientSecret and CookieSecret are the fixed test credentials.
	ClientID     = "gatehouse"
	ClientSecret = "e2e-client-secret-0123456789abcdef"
	// NativeClientID is a public client (PKCE, no secret) registered at the
	// provider with the loopback redirect URI NativeRedirectURI, like a
	// desktop or mobile app.
	NativeClientID    = "native-app"
	NativeRedirectURI = "http://127.0.0.1/callback"
	CookieSecret      = "e2e-cookie-secret-0123456789abcdef0123456789"
)

// Upstream records what reached it. Most paths answer at once with
// "upstream METHOD PATH"; /hold answers once Release is called, /slow only
// when the client gives up, /sse streams one event and holds the stream,
// /ws echoes one line after a WebSocket-style upgrade.
type Upstream struct {
	*httptest.Server
	mu    sync.Mutex
	hits  int
	last  *http.Request
	block chan struct{} // closed when the test ends
	hold  chan struct{} // closed by Release
	held  chan struct{} // one send per request that reached /hold
}

// NewUpstream starts a recording upstream, closed when the test ends.
func NewUpstream(t testing.TB) *Upstream {
	u := &Upstream{block: make(chan struct{}), hold: make(chan struct{}), held: make(chan struct{}, 64)}
	u.Server = httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(func() { close(u.block); u.Close() })
	return u
}

func (u *Upstream) serve(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	u.hits++
	u.last = r.Clone(context.Background())
	u.mu.Unlock()
	switch r.URL.Path {
	case "/hold":
		select {
		case u.held <- struct{}{}:
		default:
		}
		select {
		case <-u.hold:
		case <-u.block:
			return
		}
	case "/slow":
		// Never answers: whatever times out first is the client's timeout.
		select {
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

// Release lets requests to /hold finish.
func (u *Upstream) Release() { close(u.hold) }

// WaitHeld waits until a request to /hold has reached the upstream (each
// call consumes one such request).
func (u *Upstream) WaitHeld(t testing.TB) {
	t.Helper()
	select {
	case <-u.held:
	case <-time.After(guard):
		t.Fatalf("no request reached the upstream's /hold within %s", guard)
	}
}

// Count is how many requests reached the upstream.
func (u *Upstream) Count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.hits
}

// LastRequest is a copy of the last request that reached the upstream.
func (u *Upstream) LastRequest() *http.Request {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.last
}

// Env is one running Gatehouse with its provider, upstream and store.
type Env struct {
	t          testing.TB
	IDP        *devidp.Server
	Up         *Upstream
	App        *app.App
	Redis      *testredis.Server
	URL        string // Gatehouse's base URL
	MetricsURL string
	TLSClient  *http.Client // set when the proxy is served over TLS
}

// Options configures Start.
type Options struct {
	// Listener is Gatehouse's listener; nil = a new one on 127.0.0.1. Pass
	// one when something that starts first must know Gatehouse's address
	// (an ingress's configuration, Django's JWKS URL).
	Listener net.Listener
	// Upstream is the recording upstream of the default route; nil = a new
	// one. Pass one when something that starts first must know its address.
	Upstream *Upstream

	Store   string            // "memory" (default) or "redis"
	Redis   *testredis.Server // share one server between instances
	Env     map[string]string // extra GATEHOUSE_* settings
	Routes  func(upstream string) []config.Route
	TLS     bool // serve the proxy over HTTPS (secure cookies)
	Secrets string
	Logs    io.Writer // Gatehouse's log output at debug level; nil = discard
	// PublicURL is Gatehouse's public_url when something else (an ingress)
	// fronts it; the provider's redirect URIs follow it. Empty = Gatehouse's
	// own URL. Not combinable with TLS.
	PublicURL string
	// AccessTokenLifetime is the provider's access (and ID) token lifetime;
	// zero = devidp's default (5m).
	AccessTokenLifetime time.Duration
}

var Users = []devidp.User{
	{ID: "u-alice", Username: "alice", Password: "alice-pw", Email: "alice@example.com", EmailVerified: true,
		Name: "Alice Admin", PreferredUsername: "alice", Groups: []string{"admins", "developers"}},
	{ID: "u-bob", Username: "bob", Password: "bob-pw", Email: "bob@example.com", EmailVerified: true,
		Name: "Bob Builder", PreferredUsername: "bob", Groups: []string{"developers"}},
	{ID: "u-eve", Username: "eve", Password: "eve-pw", Email: "eve@evil.test", EmailVerified: true,
		Name: "Eve", PreferredUsername: "eve"},
	// olga's provider sends groups only from userinfo, as Okta's org
	// authorization server does.
	{ID: "u-olga", Username: "olga", Password: "olga-pw", Email: "olga@example.com", EmailVerified: true,
		Name: "Olga", PreferredUsername: "olga", Groups: []string{"ops"}, GroupsInUserinfoOnly: true},
}

// Start runs a Gatehouse with its own provider and upstream (and Redis
// when o.Store is "redis") until the test ends, and returns once it is
// ready.
func Start(t testing.TB, o Options) *Env {
	t.Helper()
	e := &Env{t: t, Up: o.Upstream}
	if e.Up == nil {
		e.Up = NewUpstream(t)
	}
	ln := o.Listener
	if ln == nil {
		ln = Listen(t)
	}
	scheme := "http"
	if o.TLS {
		scheme = "https"
	}
	e.URL = scheme + "://" + ln.Addr().String()
	public := e.URL
	if o.PublicURL != "" {
		public = strings.TrimSuffix(o.PublicURL, "/")
	}

	var err error
	e.IDP, err = devidp.Start(devidp.Config{
		Users: Users,
		Clients: []devidp.Client{{
			ID: ClientID, Secret: ClientSecret,
			RedirectURIs:           []string{public + "/oauth2/callback"},
			PostLogoutRedirectURIs: []string{public + "/"},
			BackchannelLogoutURI:   public + "/oauth2/backchannel_logout",
		}, {
			ID: NativeClientID, RedirectURIs: []string{NativeRedirectURI},
		}},
		AccessTokenLifetime: o.AccessTokenLifetime,
		IDTokenLifetime:     o.AccessTokenLifetime,
	})
	if err != nil {
		t.Fatalf("starting the OpenID provider: %v", err)
	}
	t.Cleanup(func() { e.IDP.Close() })

	secrets := o.Secrets
	if secrets == "" {
		secrets = CookieSecret
	}
	vars := map[string]string{
		"GATEHOUSE_PUBLIC_URL":              public,
		"GATEHOUSE_LISTEN":                  ln.Addr().String(),
		"GATEHOUSE_METRICS_LISTEN":          "127.0.0.1:0",
		"GATEHOUSE_OIDC_ISSUER":             e.IDP.URL,
		"GATEHOUSE_OIDC_CLIENT_ID":          ClientID,
		"GATEHOUSE_OIDC_CLIENT_SECRET":      ClientSecret,
		"GATEHOUSE_COOKIE_SECRETS":          secrets,
		"GATEHOUSE_COOKIE_SECURE":           fmt.Sprint(o.TLS),
		"GATEHOUSE_UPSTREAM":                e.Up.URL,
		"GATEHOUSE_LOG_ACCESS_LOG":          "false",
		"GATEHOUSE_SERVER_SHUTDOWN_TIMEOUT": "2s",
	}
	if o.Store == "redis" {
		e.Redis = o.Redis
		if e.Redis == nil {
			e.Redis = testredis.Start(t, testredis.Options{})
		}
		vars["GATEHOUSE_SESSION_STORE"] = "redis"
		vars["GATEHOUSE_REDIS_ADDRS"] = e.Redis.Addr
		// Gatehouse refuses an ephemeral signing key with Redis.
		vars["GATEHOUSE_TOKEN_SIGNING_KEY_FILES"] = KeyFile(t)
	}
	for k, v := range o.Env {
		vars[k] = v
	}
	cfg, err := config.Load("", func(k string) string { return vars[k] })
	if err != nil {
		t.Fatal(err)
	}
	if o.Routes != nil {
		cfg.Routes = o.Routes(e.Up.URL)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	// Over TLS, ln serves the TLS server below and the app's own plain
	// listener goes unused.
	opts := app.Options{Listener: ln}
	if o.TLS {
		opts.Listener = Listen(t)
	}
	logger := slog.New(slog.DiscardHandler)
	if o.Logs != nil {
		logger = slog.New(slog.NewJSONHandler(o.Logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	e.App, err = app.New(cfg, logger, opts)
	if err != nil {
		t.Fatal(err)
	}
	if o.TLS {
		// Serve the same handler over TLS on the address public_url names.
		srv := httptest.NewUnstartedServer(e.App.Handler())
		srv.Listener = ln
		srv.StartTLS()
		t.Cleanup(srv.Close)
		e.TLSClient = srv.Client()
	}
	if err := e.App.Listen(); err != nil {
		t.Fatal(err)
	}
	e.MetricsURL = "http://" + e.App.MetricsAddr()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.App.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("gatehouse exited with %v", err)
		}
	})
	e.WaitReady()
	return e
}

// KeyFile writes a new ES256 signing key as PEM into a temporary folder
// and returns its path, for token.signing_key_files.
func KeyFile(t testing.TB) string {
	t.Helper()
	k, err := tokenmint.GenerateKey("ES256")
	if err != nil {
		t.Fatal(err)
	}
	pem, err := k.PEM()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "signing-key.pem")
	if err := os.WriteFile(path, pem, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// WaitReady waits until /readyz says ready: the provider discovered and
// the session store reachable.
func (e *Env) WaitReady() {
	e.t.Helper()
	WaitReady(e.t, e.MetricsURL)
}

// WaitReady waits until the Gatehouse whose metrics listener is at
// metricsURL says it is ready. Discovery runs in the background with
// backoff and has no event to wait on, so this polls /readyz.
func WaitReady(t testing.TB, metricsURL string) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	Eventually(t, "gatehouse's /readyz to say ready", func() error {
		resp, err := c.Get(metricsURL + "/readyz")
		if err != nil {
			return err
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s %s", resp.Status, b)
		}
		return nil
	})
}

// Browser returns an HTTP client with a cookie jar that follows redirects,
// sending Accept: text/html like a browser navigation.
func (e *Env) Browser() *http.Client {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second, Transport: browserTransport{base(e)}}
	return c
}

func base(e *Env) http.RoundTripper {
	if e.TLSClient != nil {
		return e.TLSClient.Transport
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

var AuthRequestID = regexp.MustCompile(`name="auth_request_id" value="([^"]+)"`)

// Login signs in through Gatehouse starting at path, posting the provider's
// login form like a person would, and returns the final response's body.
func (e *Env) Login(c *http.Client, path, user, password string) (*http.Response, string) {
	e.t.Helper()
	resp, err := c.Get(e.URL + path)
	if err != nil {
		e.t.Fatalf("GET %s: %v", path, err)
	}
	body := ReadBody(e.t, resp)
	if !strings.HasPrefix(resp.Request.URL.String(), e.IDP.URL) {
		e.t.Fatalf("GET %s ended at %s (%d), not at the provider's login form", path, resp.Request.URL, resp.StatusCode)
	}
	m := AuthRequestID.FindStringSubmatch(body)
	if m == nil {
		e.t.Fatalf("no login form at %s: %.300s", resp.Request.URL, body)
	}
	resp, err = c.PostForm(e.IDP.URL+"/login", url.Values{
		"auth_request_id": {m[1]}, "username": {user}, "password": {password},
	})
	if err != nil {
		e.t.Fatalf("posting the login form: %v", err)
	}
	return resp, ReadBody(e.t, resp)
}

func ReadBody(t testing.TB, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// SessionCookie returns the session cookie the jar holds for Gatehouse.
func (e *Env) SessionCookie(c *http.Client, name string) *http.Cookie {
	u, _ := url.Parse(e.URL)
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == name {
			return ck
		}
	}
	return nil
}

// Do sends one request without following redirects.
func (e *Env) Do(req *http.Request) *http.Response {
	e.t.Helper()
	c := &http.Client{Timeout: 10 * time.Second, Transport: base(e),
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	return resp
}

// RawRequest writes a request byte for byte (for headers net/http would fix)
// and returns the response.
func RawRequest(t testing.TB, addr, raw string) *http.Response {
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

// SyncBuffer collects log output from concurrent goroutines.
type SyncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// NativeLogin obtains tokens the way a native app does: authorization code
// with PKCE S256 as the public client NativeClientID, the user typing their
// credentials into the provider's form, and the code caught at the loopback
// redirect URI. It returns the provider's token response (access token, ID
// token in Extra("id_token"), refresh token with offline_access).
func (e *Env) NativeLogin(user, password string, scopes ...string) *oauth2.Token {
	e.t.Helper()
	if len(scopes) == 0 {
		scopes = []string{"openid", "email", "profile"}
	}
	cfg := oauth2.Config{
		ClientID:    NativeClientID,
		RedirectURL: NativeRedirectURI,
		Scopes:      scopes,
		Endpoint: oauth2.Endpoint{
			AuthURL: e.IDP.URL + "/authorize", TokenURL: e.IDP.URL + "/oauth/token", AuthStyle: oauth2.AuthStyleInParams,
		},
	}
	verifier := oauth2.GenerateVerifier()
	jar, _ := cookiejar.New(nil)
	var code string
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		if strings.HasPrefix(req.URL.String(), NativeRedirectURI) {
			code = req.URL.Query().Get("code")
			return http.ErrUseLastResponse
		}
		return nil
	}}
	resp, err := c.Get(cfg.AuthCodeURL("native-state", oauth2.S256ChallengeOption(verifier)))
	if err != nil {
		e.t.Fatal(err)
	}
	m := AuthRequestID.FindStringSubmatch(ReadBody(e.t, resp))
	if m == nil {
		e.t.Fatalf("native login: no login form at %s", resp.Request.URL)
	}
	resp, err = c.PostForm(e.IDP.URL+"/login", url.Values{"auth_request_id": {m[1]}, "username": {user}, "password": {password}})
	if err != nil {
		e.t.Fatal(err)
	}
	ReadBody(e.t, resp)
	if code == "" {
		e.t.Fatalf("native login: no code reached %s", NativeRedirectURI)
	}
	tok, err := cfg.Exchange(context.Background(), code, oauth2.VerifierOption(verifier))
	if err != nil {
		e.t.Fatalf("native login: exchanging the code: %v", err)
	}
	return tok
}

// APIStatus sends an API-style GET (Accept: application/json) for path
// with the session cookie ck and returns the status code.
func (e *Env) APIStatus(path string, ck *http.Cookie) int {
	e.t.Helper()
	req, _ := http.NewRequest("GET", e.URL+path, nil)
	req.AddCookie(ck)
	req.Header.Set("Accept", "application/json")
	resp := e.Do(req)
	resp.Body.Close()
	return resp.StatusCode
}

// Listen returns a new listener on a free 127.0.0.1 port, closed when the
// test ends. Hand it to the Go server that will serve there: unlike a port
// picked and closed, nobody else can take it in between.
func Listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// NewApp builds and binds a Gatehouse from GATEHOUSE_* variables (and, when
// routes is not nil, these routes), on ln, for tests that drive Run
// themselves. Logs are discarded.
func NewApp(t testing.TB, vars map[string]string, routes []config.Route, ln net.Listener) *app.App {
	t.Helper()
	cfg, err := config.Load("", func(k string) string { return vars[k] })
	if err != nil {
		t.Fatal(err)
	}
	if routes != nil {
		cfg.Routes = routes
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	a, err := app.New(cfg, slog.New(slog.DiscardHandler), app.Options{Listener: ln})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Listen(); err != nil {
		t.Fatal(err)
	}
	return a
}
