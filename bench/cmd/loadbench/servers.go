package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// upstreamBody is what the upstream answers: about 100 bytes, like a small
// JSON API response.
var upstreamBody = []byte(`{"ok":true,"service":"loadbench-upstream","note":"a small body of about one hundred bytes."}` + "\n")

// upstream is the minimal Go backend every scenario ends at. It counts the
// requests it serves and the connections it accepts, so the harness can check
// that proxied requests really arrived and see whether proxies reuse
// connections.
type upstream struct {
	srv *http.Server
	url string
	// requests counts GET and HEAD requests: wrk's. Other methods (the slow
	// clients' bodies) count in others, and are never compared with wrk's.
	requests atomic.Int64
	others   atomic.Int64
	conns    atomic.Int64
	// inFlight is how many requests the handler is serving now; maxInFlight
	// the most since resetMaxInFlight.
	inFlight, maxInFlight atomic.Int64
}

// resetMaxInFlight starts a new maximum of concurrent requests.
func (u *upstream) resetMaxInFlight() { u.maxInFlight.Store(u.inFlight.Load()) }

func (u *upstream) enter() {
	n := u.inFlight.Add(1)
	for {
		m := u.maxInFlight.Load()
		if n <= m || u.maxInFlight.CompareAndSwap(m, n) {
			return
		}
	}
}

func startUpstream() (*upstream, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("loadbench: upstream listener: %w", err)
	}
	u := &upstream{url: "http://" + ln.Addr().String()}
	u.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet || r.Method == http.MethodHead {
				u.requests.Add(1)
			} else {
				u.others.Add(1)
			}
			u.enter()
			defer u.inFlight.Add(-1)
			_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(upstreamBody)
		}),
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				u.conns.Add(1)
			}
		},
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	go func() { _ = u.srv.Serve(ln) }()
	return u, nil
}

func (u *upstream) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := u.srv.Shutdown(ctx); err != nil {
		_ = u.srv.Close()
	}
}

// freePort returns a port of 127.0.0.1 that was free a moment ago. A child
// process binds it next; the small window for another program to take it is
// caught by the readiness checks, which then fail loudly.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("loadbench: finding a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// randomSecret returns n random bytes, base64url-encoded without padding.
func randomSecret(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on Linux
	return base64.RawURLEncoding.EncodeToString(b)
}

// waitHTTP polls url until it answers with status want (0 = any status),
// the process dies, or 30 s pass.
func waitHTTP(p *proc, url string, want int) error {
	c := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(30 * time.Second)
	last := "no answer"
	for time.Now().Before(deadline) {
		if !p.alive() {
			return p.exitError()
		}
		resp, err := c.Get(url)
		if err == nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			resp.Body.Close()
			if want == 0 || resp.StatusCode == want {
				return nil
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(b)))
		} else {
			last = err.Error()
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("loadbench: %s not ready at %s after 30s (%s); last log lines:\n%s", p.name, url, last, p.tail())
}

// redisServer is a redis-server child without persistence.
type redisServer struct {
	*proc
	addr string
}

func startRedis(bin, name, dir string) (*redisServer, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	p, err := startProc(name, filepath.Join(dir, name+".log"), bin, []string{
		"--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", dir, "--daemonize", "no", "--loglevel", "warning",
	}, nil)
	if err != nil {
		return nil, err
	}
	r := &redisServer{proc: p, addr: fmt.Sprintf("127.0.0.1:%d", port)}
	c := redis.NewClient(&redis.Options{Addr: r.addr, DialTimeout: time.Second, ReadTimeout: time.Second})
	defer c.Close()
	for range 100 {
		if !p.alive() {
			return nil, p.exitError()
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err = c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return r, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.stop()
	return nil, fmt.Errorf("loadbench: %s never answered PING at %s: %w", name, r.addr, err)
}

// proxy is one running auth proxy (Gatehouse or oauth2-proxy).
type proxy struct {
	*proc
	kind     string // "gatehouse" or "oauth2-proxy"
	url      string // base URL, http://127.0.0.1:PORT
	cookie   string // the session cookie's name
	clientID string // its client at the OpenID provider
	secret   string // that client's secret
	pprof    string // base URL of net/http/pprof, if the binary serves it
	metrics  string // base URL of Gatehouse's metrics listener (Go runtime figures)
}

// LogValue implements slog.LogValuer: a logged proxy shows no client secret.
func (p *proxy) LogValue() slog.Value {
	return slog.GroupValue(slog.String("kind", p.kind), slog.String("url", p.url), slog.String("client_id", p.clientID))
}

// gatehouseConfig is what differs between the benchmark's Gatehouse instances.
type gatehouseConfig struct {
	name      string
	port      int
	issuer    string
	clientID  string
	secret    string
	cookieKey string
	redis     string
	keyFile   string
	upstream  string
	audience  string // accepted audience of native bearer tokens
	routes    int    // 0 = the catch-all upstream; N = N-1 prefix routes that do not match "/", then a catch-all
}

// LogValue implements slog.LogValuer: a logged configuration shows no client or cookie secret.
func (c gatehouseConfig) LogValue() slog.Value {
	return slog.GroupValue(slog.String("name", c.name), slog.Int("port", c.port), slog.Int("routes", c.routes))
}

// writeGatehouseConfig writes the YAML configuration of one instance and
// returns its path and metrics listener's address.
func writeGatehouseConfig(dir string, c gatehouseConfig) (path, metrics string, err error) {
	mport, err := freePort()
	if err != nil {
		return "", "", err
	}
	metrics = fmt.Sprintf("127.0.0.1:%d", mport)
	var b strings.Builder
	fmt.Fprintf(&b, `listen: 127.0.0.1:%d
metrics_listen: %s
public_url: http://127.0.0.1:%d
oidc:
  issuer: %s
  client_id: %s
  client_secret: %q
cookie:
  secrets: [%q]
  secure: false
session:
  store: redis
redis:
  addrs: [%q]
token:
  signing_key_files: [%q]
api:
  accepted_audiences: [%q]
trusted_proxies: [%s/32]
log:
  format: text
  level: warn
  access_log: false
upstream: %s
`, c.port, metrics, c.port, c.issuer, c.clientID, c.secret, c.cookieKey, c.redis, c.keyFile, c.audience, authSource, c.upstream)
	if c.routes > 0 {
		b.WriteString("routes:\n")
		for i := range c.routes - 1 {
			fmt.Fprintf(&b, "  - name: r%03d\n    path_prefix: /r%03d/\n    upstream: %s\n", i, i, c.upstream)
		}
		fmt.Fprintf(&b, "  - name: all\n    path_prefix: /\n    upstream: %s\n", c.upstream)
	}
	path = filepath.Join(dir, c.name+".yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return "", "", fmt.Errorf("loadbench: writing %s: %w", path, err)
	}
	return path, metrics, nil
}

// startGatehouse runs `gatehouse serve` with a generated configuration and
// waits for /readyz. pprofAddr, if not empty, is passed to the profiling
// wrapper binary as BENCH_PPROF_ADDR.
func startGatehouse(bin, dir string, c gatehouseConfig, pprofAddr string) (*proxy, error) {
	path, metrics, err := writeGatehouseConfig(dir, c)
	if err != nil {
		return nil, err
	}
	var env []string
	if pprofAddr != "" {
		env = append(env, "BENCH_PPROF_ADDR="+pprofAddr)
	}
	p, err := startProc(c.name, filepath.Join(dir, c.name+".log"), bin, []string{"serve", "--config", path}, env)
	if err != nil {
		return nil, err
	}
	px := &proxy{proc: p, kind: "gatehouse", url: fmt.Sprintf("http://127.0.0.1:%d", c.port), cookie: "gatehouse",
		clientID: c.clientID, secret: c.secret, metrics: "http://" + metrics}
	if pprofAddr != "" {
		px.pprof = "http://" + pprofAddr
	}
	if err := waitHTTP(p, "http://"+metrics+"/readyz", http.StatusOK); err != nil {
		p.stop()
		return nil, err
	}
	return px, nil
}

// oauth2ProxyConfig is the command line of the oauth2-proxy instance.
type oauth2ProxyConfig struct {
	port         int
	issuer       string
	clientID     string
	secret       string
	redis        string
	upstream     string
	nativeClient string // audience of native bearer tokens it accepts
}

// LogValue implements slog.LogValuer: a logged configuration shows no client secret.
func (c oauth2ProxyConfig) LogValue() slog.Value {
	return slog.GroupValue(slog.Int("port", c.port), slog.String("client_id", c.clientID))
}

// oauth2ProxyArgs is oauth2-proxy v7.15.6 configured like Gatehouse: OIDC,
// the Redis session store, request and auth logs off, and identity plus a
// token passed to the upstream and in /oauth2/auth answers, as an ingress
// setup would have it.
func oauth2ProxyArgs(c oauth2ProxyConfig) []string {
	return []string{
		"--provider=oidc",
		"--oidc-issuer-url=" + c.issuer,
		"--client-id=" + c.clientID,
		"--client-secret=" + c.secret,
		"--cookie-secret=" + randomSecret(32),
		"--cookie-secure=false",
		"--email-domain=*",
		fmt.Sprintf("--http-address=127.0.0.1:%d", c.port),
		fmt.Sprintf("--redirect-url=http://127.0.0.1:%d/oauth2/callback", c.port),
		"--upstream=" + c.upstream + "/",
		"--session-store-type=redis",
		"--redis-connection-url=redis://" + c.redis,
		"--request-logging=false",
		"--auth-logging=false",
		"--reverse-proxy=false",
		"--skip-provider-button=true",
		"--set-xauthrequest=true",
		"--pass-authorization-header=true",
		"--set-authorization-header=true",
		// Bearer tokens from the native client, the counterpart of
		// Gatehouse's api.accepted_audiences.
		"--skip-jwt-bearer-tokens=true",
		"--extra-jwt-issuers=" + c.issuer + "=" + c.nativeClient,
	}
}

// startOAuth2Proxy runs oauth2-proxy and waits for /ping. Its client secret
// is on the command line, as oauth2-proxy's flags want it; it is a random
// secret of a throwaway client of the benchmark's own provider.
func startOAuth2Proxy(bin, dir string, c oauth2ProxyConfig) (*proxy, error) {
	p, err := startProc("oauth2-proxy", filepath.Join(dir, "oauth2-proxy.log"), bin, oauth2ProxyArgs(c), nil)
	if err != nil {
		return nil, err
	}
	px := &proxy{proc: p, kind: "oauth2-proxy", url: fmt.Sprintf("http://127.0.0.1:%d", c.port), cookie: "_oauth2_proxy",
		clientID: c.clientID, secret: c.secret}
	if err := waitHTTP(p, px.url+"/ping", http.StatusOK); err != nil {
		p.stop()
		return nil, err
	}
	return px, nil
}

// generateKey writes a signing key with `gatehouse keys generate`.
func generateKey(ctx context.Context, gatehouse, path string) error {
	p, err := startProc("keys-generate", path+".log", gatehouse, []string{"keys", "generate", "--out", path}, nil)
	if err != nil {
		return err
	}
	select {
	case <-p.done:
	case <-ctx.Done():
		p.stop()
		return ctx.Err()
	}
	if p.err != nil {
		return fmt.Errorf("loadbench: gatehouse keys generate: %w: %s", p.err, p.tail())
	}
	if _, err := os.Stat(path); err != nil {
		return errors.New("loadbench: gatehouse keys generate wrote no key")
	}
	return nil
}

// startRefProxy runs bench/cmd/refproxy, the minimal httputil.ReverseProxy
// of the rp-ref row, in its own process so its CPU is measured apart from
// the harness's, and waits until it answers.
func startRefProxy(bin, dir, upstreamURL, cookie string, idle int) (*proxy, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	p, err := startProc("refproxy", filepath.Join(dir, "refproxy.log"), bin, []string{
		"-listen", addr, "-upstream", upstreamURL, "-cookie", cookie, "-max-idle-conns-per-host", fmt.Sprint(idle),
	}, nil)
	if err != nil {
		return nil, err
	}
	px := &proxy{proc: p, kind: "refproxy", url: "http://" + addr}
	// Without the cookie it answers 401: any answer means it serves.
	if err := waitHTTP(p, px.url+"/", 0); err != nil {
		p.stop()
		return nil, err
	}
	return px, nil
}
