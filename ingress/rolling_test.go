package ingress

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/devidp"
	"github.com/gatehouse/gatehouse/internal/e2etest"
	"github.com/gatehouse/gatehouse/internal/testredis"
	"github.com/gatehouse/gatehouse/tokenmint"
)

// rollingConf is the data of testdata/rolling-nginx.conf.
type rollingConf struct {
	Dir                    string // nginx's prefix: pid, logs and temporary files
	Listen                 string // host:port nginx serves on
	Gatehouse1, Gatehouse2 string // host:port of each Gatehouse process
}

// TestRollingRestart restarts each of two Gatehouse processes (the real
// binary) in turn behind Debian's nginx, as docs/operations.md tells an
// operator to, while a signed-in client keeps sending requests through
// nginx: SIGTERM with a request in flight on the process, the request
// drains, the process exits 0, starts again on the same port and becomes
// ready, nginx sends it traffic again, then the other one. No request
// fails and the one session cookie works from start to end: sessions live
// in the shared Redis, and nginx retries what a stopped process refused.
func TestRollingRestart(t *testing.T) {
	bin := buildGatehouse(t)
	redis := testredis.Start(t, testredis.Options{})
	up := newRollingUpstream(t)

	// nginx must know both Gatehouse addresses and Gatehouse must know
	// nginx's (its public_url): hold two ports, start nginx towards them,
	// and let each Gatehouse bind its port right after the test lets go of
	// it. A restart binds the same port again, as a restarted service does.
	procs := []*gatehouseProc{{t: t, bin: bin, name: "gatehouse-1"}, {t: t, bin: bin, name: "gatehouse-2"}}
	for _, p := range procs {
		p.held = e2etest.Listen(t)
		p.addr = p.held.Addr().String()
	}
	dir := t.TempDir()
	nginx := binary(t, "nginx", "/usr/sbin/nginx")
	path := filepath.Join(dir, "nginx.conf")
	front := "http://" + e2etest.StartDaemon(t, "nginx", func(addr string) *exec.Cmd {
		conf := rollingConf{Dir: dir, Listen: addr, Gatehouse1: procs[0].addr, Gatehouse2: procs[1].addr}
		if err := os.WriteFile(path, []byte(render(t, "rolling-nginx.conf", conf)), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(nginx, "-p", dir, "-c", path, "-e", filepath.Join(dir, "error.log"))
		cmd.Dir = dir
		return cmd
	}).Addr

	idp, err := devidp.Start(devidp.Config{
		Users: e2etest.Users,
		Clients: []devidp.Client{{
			ID: e2etest.ClientID, Secret: e2etest.ClientSecret,
			RedirectURIs: []string{front + "/oauth2/callback"},
		}},
	})
	if err != nil {
		t.Fatalf("starting the OpenID provider: %v", err)
	}
	t.Cleanup(func() { idp.Close() })

	// Both processes sign with the same key, as replicas must.
	key, err := tokenmint.GenerateKey("ES256")
	if err != nil {
		t.Fatal(err)
	}
	pem, err := key.PEM()
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "signing-key.pem")
	if err := os.WriteFile(keyFile, pem, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range procs {
		p.env = []string{
			"PATH=" + os.Getenv("PATH"),
			"GATEHOUSE_LISTEN=" + p.addr,
			"GATEHOUSE_METRICS_LISTEN=127.0.0.1:0",
			"GATEHOUSE_PUBLIC_URL=" + front,
			"GATEHOUSE_OIDC_ISSUER=" + idp.URL,
			"GATEHOUSE_OIDC_CLIENT_ID=" + e2etest.ClientID,
			"GATEHOUSE_OIDC_CLIENT_SECRET=" + e2etest.ClientSecret,
			"GATEHOUSE_COOKIE_SECRETS=" + e2etest.CookieSecret,
			"GATEHOUSE_COOKIE_SECURE=false",
			"GATEHOUSE_UPSTREAM=" + up.URL,
			"GATEHOUSE_SESSION_STORE=redis",
			"GATEHOUSE_REDIS_ADDRS=" + redis.Addr,
			"GATEHOUSE_TOKEN_SIGNING_KEY_FILES=" + keyFile,
			"GATEHOUSE_TRUSTED_PROXIES=127.0.0.1/32",
			"GATEHOUSE_SERVER_SHUTDOWN_TIMEOUT=20s",
			"GATEHOUSE_LOG_ACCESS_LOG=false",
		}
		p.start()
	}
	for _, p := range procs {
		e2etest.WaitReady(t, p.metricsURL)
	}

	// Sign in through nginx, like a person.
	e := &e2etest.Env{IDP: idp}
	browser := e.Browser()
	if resp, body := signIn(t, e, browser, front+"/dashboard", "alice", "alice-pw"); resp.StatusCode != http.StatusOK || body != "upstream GET /dashboard as u-alice" {
		t.Fatalf("sign-in through nginx ended with %d %q", resp.StatusCode, body)
	}
	cookie := &http.Cookie{Name: "gatehouse", Value: sessionCookie(t, browser, front)}

	l := startLoad(t, front, cookie)
	for _, p := range procs {
		l.waitServed(20) // traffic flows before each restart
		p.restartUnderLoad(up, cookie, l)
	}
	l.waitServed(20)
	served, failures := l.stop()

	if len(failures) > 0 {
		t.Errorf("%d of %d requests through nginx failed during the rolling restart; first ones:\n%s",
			l.failed.Load(), served+l.failed.Load(), strings.Join(failures, "\n"))
	}
	// The session survived both restarts: it is still alice's.
	req, _ := http.NewRequest("GET", front+"/oauth2/userinfo", nil)
	req.AddCookie(cookie)
	resp, body := do(t, anonymous, req)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "alice@example.com") {
		t.Errorf("userinfo after the restarts: %d %s; want alice's session", resp.StatusCode, body)
	}
	t.Logf("%d requests through nginx while each process restarted, %d failed", served, len(failures))
}

// TestDocsShowRollingConfiguration keeps the nginx configuration in
// docs/operations.md equal to the one TestRollingRestart runs, with the
// test's addresses replaced by the docs' placeholders.
func TestDocsShowRollingConfiguration(t *testing.T) {
	doc, err := os.ReadFile("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	snippet := documented(t, render(t, "rolling-nginx.conf", rollingConf{
		Listen: "80", Gatehouse1: "10.0.0.11:4180", Gatehouse2: "10.0.0.12:4180",
	}), true)
	if !strings.Contains(string(doc), "\n"+snippet+"```\n") {
		t.Errorf("docs/operations.md lacks the tested nginx configuration; it should contain, in a code block:\n%s", snippet)
	}
}

// gatehouseProc is one Gatehouse process on a fixed proxy port.
type gatehouseProc struct {
	t          *testing.T
	bin, name  string
	addr       string       // the proxy listener, the same across restarts
	held       net.Listener // holds addr until the first start
	metricsURL string       // this run's metrics listener
	env        []string
	cmd        *exec.Cmd
	out        *e2etest.SyncBuffer
	exited     chan struct{}
	waitErr    error
}

// start runs the binary's serve command, and returns once it listens: its
// log's "gatehouse listening" line names the metrics listener it bound.
func (p *gatehouseProc) start() {
	t := p.t
	t.Helper()
	if p.held != nil {
		p.held.Close()
		p.held = nil
	}
	out := &e2etest.SyncBuffer{}
	cmd := exec.Command(p.bin, "serve")
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", p.name, err)
	}
	exited := make(chan struct{})
	p.cmd, p.out, p.exited = cmd, out, exited
	go func() { p.waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	e2etest.Eventually(t, p.name+" to listen", func() error {
		select {
		case <-exited:
			p.fail("exited at start (%v)", p.waitErr)
		default:
		}
		for line := range strings.Lines(out.String()) {
			var rec struct {
				Msg         string `json:"msg"`
				Addr        string `json:"addr"`
				MetricsAddr string `json:"metrics_addr"`
			}
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "gatehouse listening" {
				if rec.Addr != p.addr {
					p.fail("listens on %s; want %s", rec.Addr, p.addr)
				}
				p.metricsURL = "http://" + rec.MetricsAddr
				return nil
			}
		}
		return errors.New("no \"gatehouse listening\" log line yet")
	})
}

// fail ends the test with the process's output.
func (p *gatehouseProc) fail(format string, args ...any) {
	p.t.Helper()
	p.t.Fatalf("%s: %s\noutput:\n%s", p.name, fmt.Sprintf(format, args...), p.out.String())
}

// served is how many requests this run of the process answered (its
// gatehouse_http_requests_total): after a restart, only nginx sends it any.
func (p *gatehouseProc) served() (int, error) {
	c := &http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get(p.metricsURL + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	total := 0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "gatehouse_http_requests_total{") {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return 0, fmt.Errorf("metrics line %q: %w", line, err)
		}
		total += int(v)
	}
	return total, sc.Err()
}

// restartUnderLoad restarts the process the way an operator (or the
// kubelet) does: SIGTERM while a request is in flight on it, which must
// complete; meanwhile nginx keeps the load flowing to the other process.
// Once it has exited 0 it starts again on the same port, becomes ready, and
// the restart is over when nginx has sent it traffic again.
func (p *gatehouseProc) restartUnderLoad(up *rollingUpstream, cookie *http.Cookie, l *load) {
	t := p.t
	t.Helper()
	// A slow request straight to this process, held at the upstream.
	held := make(chan string, 1)
	go func() {
		req, _ := http.NewRequest("GET", "http://"+p.addr+"/hold", nil)
		req.AddCookie(cookie)
		req.Header.Set("Accept", "application/json")
		c := &http.Client{Timeout: 30 * time.Second}
		resp, err := c.Do(req)
		if err != nil {
			held <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		held <- fmt.Sprintf("%d %s", resp.StatusCode, b)
	}()
	var release chan struct{}
	select {
	case release = <-up.holds:
	case <-time.After(30 * time.Second):
		p.fail("the held request never reached the upstream")
	}

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Draining: it refuses new connections while the held request runs,
	// and the load goes on through the other process.
	e2etest.Eventually(t, p.name+" to stop accepting connections", func() error {
		c, err := net.DialTimeout("tcp", p.addr, 3*time.Second)
		if err != nil {
			return nil
		}
		c.Close()
		return errors.New("still accepting")
	})
	l.waitServed(20)
	select {
	case <-p.exited:
		p.fail("exited with a request in flight (%v)", p.waitErr)
	default:
	}
	close(release)
	if got := <-held; got != "200 upstream GET /hold as u-alice" {
		p.fail("the request in flight at SIGTERM got %q; want it drained: 200 from the upstream", got)
	}
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		p.fail("did not exit after draining")
	}
	if p.waitErr != nil {
		p.fail("exited with %v after SIGTERM; want 0", p.waitErr)
	}
	// Down: everything goes to the other process.
	l.waitServed(20)

	p.start()
	e2etest.WaitReady(t, p.metricsURL)
	// nginx sends it requests again before the next one stops.
	e2etest.Eventually(t, "nginx to send "+p.name+" requests again", func() error {
		n, err := p.served()
		if err == nil && n == 0 {
			err = errors.New("no request served yet")
		}
		return err
	})
}

// load is a signed-in client sending requests through nginx from a few
// goroutines, recording every failure.
type load struct {
	t        *testing.T
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	served   atomic.Int64
	failed   atomic.Int64
	mu       sync.Mutex
	failures []string
	progress chan struct{} // a tick per served request, dropped when nobody waits
}

// loadLimit bounds the load: it stops by itself after this many requests
// or loadTimeout, whichever comes first, so a hung restart cannot make it
// run forever.
const (
	loadLimit   = 200000
	loadTimeout = 2 * time.Minute
)

func startLoad(t *testing.T, front string, cookie *http.Cookie) *load {
	ctx, cancel := context.WithTimeout(context.Background(), loadTimeout)
	l := &load{t: t, cancel: cancel, progress: make(chan struct{}, 1)}
	t.Cleanup(func() { l.stop() })
	for w := range 4 {
		l.wg.Go(func() {
			c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			defer c.CloseIdleConnections()
			for i := 0; ctx.Err() == nil && l.served.Load()+l.failed.Load() < loadLimit; i++ {
				path := fmt.Sprintf("/api/items/%d-%d", w, i)
				req, _ := http.NewRequestWithContext(ctx, "GET", front+path, nil)
				req.AddCookie(cookie)
				req.Header.Set("Accept", "application/json")
				resp, err := c.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						l.fail(fmt.Sprintf("GET %s: %v", path, err))
					}
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if want := "upstream GET " + path + " as u-alice"; resp.StatusCode != http.StatusOK || string(b) != want {
					l.fail(fmt.Sprintf("GET %s: %d %q; want 200 %q", path, resp.StatusCode, b, want))
					continue
				}
				l.served.Add(1)
				select {
				case l.progress <- struct{}{}:
				default:
				}
			}
		})
	}
	return l
}

func (l *load) fail(msg string) {
	l.failed.Add(1)
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.failures) < 20 {
		l.failures = append(l.failures, msg)
	}
}

// waitServed waits until n more requests have succeeded: the load is
// really flowing at this point of the restart.
func (l *load) waitServed(n int64) {
	l.t.Helper()
	target := l.served.Load() + n
	deadline := time.After(30 * time.Second)
	for l.served.Load() < target {
		select {
		case <-l.progress:
		case <-deadline:
			l.mu.Lock()
			defer l.mu.Unlock()
			l.t.Fatalf("the load stalled at %d served, %d failed: %q", l.served.Load(), l.failed.Load(), l.failures)
		}
	}
}

// stop ends the load and returns what it did.
func (l *load) stop() (served int64, failures []string) {
	l.cancel()
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.served.Load(), l.failures
}

// rollingUpstream answers "upstream <method> <path> as <user>" with the
// identity Gatehouse sent, and holds /hold until the test releases it.
type rollingUpstream struct {
	URL   string
	holds chan chan struct{}
}

func newRollingUpstream(t *testing.T) *rollingUpstream {
	u := &rollingUpstream{holds: make(chan chan struct{})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			release := make(chan struct{})
			select {
			case u.holds <- release:
			case <-r.Context().Done():
				return
			}
			select {
			case <-release:
			case <-r.Context().Done():
				return
			}
		}
		fmt.Fprintf(w, "upstream %s %s as %s", r.Method, r.URL.Path, r.Header.Get("X-Auth-Request-User"))
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	u.URL = "http://" + ln.Addr().String()
	return u
}

// buildGatehouse builds the gatehouse binary, as `make build` does, for
// the test to run.
func buildGatehouse(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "gatehouse")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building gatehouse: %v\n%s", err, out)
	}
	return bin
}
