package app_test

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/app"
	"github.com/gatehouse/gatehouse/config"
	"github.com/gatehouse/gatehouse/devidp"
	"github.com/gatehouse/gatehouse/internal/e2etest"
	"github.com/gatehouse/gatehouse/tokenmint"
)

// guard bounds every wait: it only ends a broken test instead of hanging
// it, and is generous for a loaded machine running -race.
const guard = 30 * time.Second

// Cookie secrets of the tests, each at least 32 bytes.
const (
	secretA = "reload-test-cookie-secret-A-0123456789abcdef"
	secretB = "reload-test-cookie-secret-B-0123456789abcdef"
)

// settings are the parts of the configuration file a test changes.
type settings struct {
	// Routes is the YAML of the routes key, indented by two spaces.
	Routes string
	// Extra is more top-level YAML, appended as given.
	Extra string
	// KeyFiles are token.signing_key_files; empty = an ephemeral key.
	KeyFiles []string
	// MetricsListen is metrics_listen; empty = 127.0.0.1:0.
	MetricsListen string
	// CookieSecretsFile is cookie.secrets_file; empty = cookie-secrets in
	// the test's directory.
	CookieSecretsFile string
	// Issuer is oidc.issuer; empty = the test's provider.
	Issuer string
}

// gatehouse is one Gatehouse run by app directly, from a configuration
// file in a temporary directory, with a real OpenID provider.
type gatehouse struct {
	t          *testing.T
	dir        string // holds config.yaml, the secrets and the keys
	cfgPath    string
	addr       string // host:port of the proxy listener
	URL        string
	MetricsURL string
	App        *app.App
	IDP        *devidp.Server
	Logs       *e2etest.SyncBuffer
	reloads    chan app.ReloadResult
}

// startGatehouse writes the client secret, the cookie secrets (secretA)
// and the configuration of s, then runs Gatehouse until the test ends.
// signals, if not nil, is its Options.ReloadSignals.
func startGatehouse(t *testing.T, s settings, signals <-chan os.Signal) *gatehouse {
	t.Helper()
	return start(t, func(*gatehouse) settings { return s }, signals)
}

// start is startGatehouse with the settings made by prepare once the test's
// directory exists (to write keys there first).
func start(t *testing.T, prepare func(*gatehouse) settings, signals <-chan os.Signal) *gatehouse {
	t.Helper()
	ln := e2etest.Listen(t)
	g := &gatehouse{
		t: t, dir: t.TempDir(), addr: ln.Addr().String(),
		Logs: &e2etest.SyncBuffer{}, reloads: make(chan app.ReloadResult, 64),
	}
	g.URL = "http://" + g.addr
	g.cfgPath = filepath.Join(g.dir, "config.yaml")
	var err error
	g.IDP, err = devidp.Start(devidp.Config{
		Users: e2etest.Users,
		Clients: []devidp.Client{{
			ID: e2etest.ClientID, Secret: e2etest.ClientSecret,
			RedirectURIs: []string{g.URL + "/oauth2/callback"}, PostLogoutRedirectURIs: []string{g.URL + "/"},
		}},
	})
	if err != nil {
		t.Fatalf("starting the OpenID provider: %v", err)
	}
	t.Cleanup(func() { g.IDP.Close() })
	g.WriteFile("client-secret", e2etest.ClientSecret+"\n")
	g.WriteFile("cookie-secrets", secretA+"\n")
	g.WriteConfig(prepare(g))

	cfg, err := config.Load(g.cfgPath, noEnv)
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewJSONHandler(g.Logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	g.App, err = app.New(cfg, logger, app.Options{
		Listener: ln, ConfigFile: g.cfgPath, Getenv: noEnv, ReloadSignals: signals,
		OnReload: func(r app.ReloadResult) { g.reloads <- r },
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.App.Listen(); err != nil {
		t.Fatal(err)
	}
	g.MetricsURL = "http://" + g.App.MetricsAddr()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.App.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("gatehouse exited with %v", err)
		}
		if t.Failed() {
			t.Logf("Gatehouse's log:\n%s", g.Logs.String())
		}
	})
	e2etest.WaitReady(t, g.MetricsURL)
	return g
}

func noEnv(string) string { return "" }

// WriteFile replaces the file name in the test's directory the way editors
// and Kubernetes do: a new file renamed over the old, so a reader never
// sees half of it.
func (g *gatehouse) WriteFile(name, content string) string {
	g.t.Helper()
	path := filepath.Join(g.dir, name)
	tmp := filepath.Join(g.dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		g.t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		g.t.Fatal(err)
	}
	return path
}

// WriteConfig replaces config.yaml with the configuration of s.
func (g *gatehouse) WriteConfig(s settings) {
	g.t.Helper()
	g.WriteRaw(g.render(s))
}

// WriteRaw replaces config.yaml with text.
func (g *gatehouse) WriteRaw(text string) {
	g.t.Helper()
	g.WriteFile("config.yaml", text)
}

func (g *gatehouse) render(s settings) string {
	var b strings.Builder
	ml := cmp.Or(s.MetricsListen, "127.0.0.1:0")
	issuer := cmp.Or(s.Issuer, g.IDP.URL)
	secrets := cmp.Or(s.CookieSecretsFile, filepath.Join(g.dir, "cookie-secrets"))
	fmt.Fprintf(&b, `listen: %s
metrics_listen: %s
public_url: %s
oidc:
  issuer: %s
  client_id: %s
  client_secret_file: %s
cookie:
  secrets_file: %s
  secure: false
log:
  access_log: false
  level: debug
server:
  shutdown_timeout: 5s
`, g.addr, ml, g.URL, issuer, e2etest.ClientID, filepath.Join(g.dir, "client-secret"), secrets)
	if len(s.KeyFiles) > 0 {
		b.WriteString("token:\n  signing_key_files:\n")
		for _, f := range s.KeyFiles {
			fmt.Fprintf(&b, "    - %s\n", f)
		}
	}
	if s.Routes != "" {
		b.WriteString("routes:\n" + s.Routes)
	}
	b.WriteString(s.Extra)
	return b.String()
}

// WriteKey writes a new signing key of alg to name and returns its path
// and the key.
func (g *gatehouse) WriteKey(name, alg string) (string, *tokenmint.Key) {
	g.t.Helper()
	k, err := tokenmint.GenerateKey(alg)
	if err != nil {
		g.t.Fatal(err)
	}
	pem, err := k.PEM()
	if err != nil {
		g.t.Fatal(err)
	}
	return g.WriteFile(name, string(pem)), k
}

// NextReload waits for the next reload attempt's outcome.
func (g *gatehouse) NextReload() app.ReloadResult {
	g.t.Helper()
	select {
	case r := <-g.reloads:
		return r
	case <-time.After(guard):
		g.t.Fatalf("no reload within %s", guard)
		return app.ReloadResult{}
	}
}

// WaitReload waits until a reload applies a configuration for which ok
// holds (file events may bring intermediate reloads first), failing the
// test on a refused one.
func (g *gatehouse) WaitReload(what string, ok func(app.ReloadResult) bool) app.ReloadResult {
	g.t.Helper()
	for {
		r := g.NextReload()
		if r.Err != nil {
			g.t.Fatalf("waiting for %s: reload (%s) refused: %v", what, r.Trigger, r.Err)
		}
		if ok(r) {
			return r
		}
	}
}

// changed reports whether a reload changed key.
func changed(key string) func(app.ReloadResult) bool {
	return func(r app.ReloadResult) bool {
		for _, k := range r.Changed {
			if k == key {
				return true
			}
		}
		return false
	}
}

// Browser is a client with a cookie jar that does not follow redirects
// into Gatehouse's answers blindly: it follows them like a browser,
// sending Accept: text/html.
func (g *gatehouse) Browser() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 10 * time.Second, Transport: acceptHTML{http.DefaultTransport}}
}

type acceptHTML struct{ rt http.RoundTripper }

func (a acceptHTML) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Header.Get("Accept") == "" {
		r = r.Clone(r.Context())
		r.Header.Set("Accept", "text/html")
	}
	return a.rt.RoundTrip(r)
}

// Login signs user in through Gatehouse, starting at path, as a person at
// the provider's form would, and returns the final response and its body.
func (g *gatehouse) Login(c *http.Client, path, user, password string) (*http.Response, string) {
	g.t.Helper()
	resp, err := c.Get(g.URL + path)
	if err != nil {
		g.t.Fatalf("GET %s: %v", path, err)
	}
	body := e2etest.ReadBody(g.t, resp)
	m := e2etest.AuthRequestID.FindStringSubmatch(body)
	if m == nil || !strings.HasPrefix(resp.Request.URL.String(), g.IDP.URL) {
		g.t.Fatalf("GET %s ended at %s (%d), not at the provider's login form: %.300s", path, resp.Request.URL, resp.StatusCode, body)
	}
	resp, err = c.PostForm(g.IDP.URL+"/login", url.Values{"auth_request_id": {m[1]}, "username": {user}, "password": {password}})
	if err != nil {
		g.t.Fatalf("posting the login form: %v", err)
	}
	return resp, e2etest.ReadBody(g.t, resp)
}

// Get sends an API-style GET (no login redirects) with c's cookies and
// returns the status and body.
func (g *gatehouse) Get(c *http.Client, path string) (int, string) {
	g.t.Helper()
	req, _ := http.NewRequest("GET", g.URL+path, nil)
	req.Header.Set("Accept", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		g.t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode, e2etest.ReadBody(g.t, resp)
}

// Metrics returns /metrics.
func (g *gatehouse) Metrics() string {
	g.t.Helper()
	resp, err := http.Get(g.MetricsURL + "/metrics")
	if err != nil {
		g.t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return string(b)
}

// Metric returns the value of the series (name and labels, as /metrics
// prints them), or "" when it is absent.
func (g *gatehouse) Metric(series string) string {
	g.t.Helper()
	for _, l := range strings.Split(g.Metrics(), "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			return v
		}
	}
	return ""
}

// ConfigHash is the hash label of gatehouse_config_info.
func (g *gatehouse) ConfigHash() string {
	g.t.Helper()
	for _, l := range strings.Split(g.Metrics(), "\n") {
		if rest, ok := strings.CutPrefix(l, `gatehouse_config_info{hash="`); ok {
			h, _, _ := strings.Cut(rest, `"`)
			return h
		}
	}
	g.t.Fatal("no gatehouse_config_info series")
	return ""
}

// named is an upstream that answers "<name> <path>".
func named(t *testing.T, name string) string {
	t.Helper()
	srv := httpServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s", name, r.URL.Path)
	}))
	return srv
}

// httpServer serves h on 127.0.0.1 until the test ends and returns its URL.
func httpServer(t *testing.T, h http.Handler) string {
	t.Helper()
	ln := e2etest.Listen(t)
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}
