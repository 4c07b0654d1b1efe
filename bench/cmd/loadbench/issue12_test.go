package main

import (
	"bufio"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestParseStatPPIDAndSubtree(t *testing.T) {
	for _, tt := range []struct {
		stat string
		want int // -1 = an error
	}{
		{"1234 (nginx) S 77 1234 1234 0 -1 4194560 500", 77},
		{"9 (a (b) c) R 1 9 9", 1},
		{"9 (x) R", -1},
		{"9 x R 1", -1},
		{"9 (x) R y 9", -1},
	} {
		got, err := parseStatPPID([]byte(tt.stat))
		if (tt.want < 0) != (err != nil) || (tt.want >= 0 && got != tt.want) {
			t.Errorf("parseStatPPID(%q) = %d, %v; want %d", tt.stat, got, err, tt.want)
		}
	}
	// 10 is nginx's master, 11 and 12 its workers, 13 a worker's child; 20 is unrelated.
	parent := map[int]int{10: 1, 11: 10, 12: 10, 13: 12, 20: 1, 21: 20}
	if got := subtree(10, parent); !slices.Equal(got, []int{10, 11, 12, 13}) {
		t.Errorf("subtree(10) = %v; want [10 11 12 13]", got)
	}
	if got := subtree(99, parent); !slices.Equal(got, []int{99}) {
		t.Errorf("subtree of a leaf = %v; want [99]", got)
	}
	// This process and a child it starts: descendants reads the real /proc.
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	pids, err := descendants(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if pids[0] != os.Getpid() || !slices.Contains(pids, cmd.Process.Pid) {
		t.Errorf("descendants(self) = %v; want self first and child %d", pids, cmd.Process.Pid)
	}
}

func TestMetricValues(t *testing.T) {
	text := `# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 10190
go_memstats_heap_inuse_bytes 1.21864192e+08
go_memstats_stack_inuse_bytes 8.4213760e+07
gatehouse_requests_total{route="all"} 5
`
	v, err := metricValues(text, "go_memstats_heap_inuse_bytes", "go_goroutines", "go_memstats_stack_inuse_bytes")
	if err != nil || v[0] != 121864192 || v[1] != 10190 || v[2] != 84213760 {
		t.Fatalf("got %v, %v; want [121864192 10190 84213760]", v, err)
	}
	if _, err := metricValues(text, "go_threads"); err == nil {
		t.Error("a missing metric: got no error")
	}
	if _, err := metricValues("go_goroutines many\n", "go_goroutines"); err == nil {
		t.Error("a value that is not a number: got no error")
	}
}

func TestPairRatiosCompareRunsOfTheSameRound(t *testing.T) {
	round := func(gh, ref float64, refProblem string) map[string]sample {
		return map[string]sample{
			"gh-proxy":  {Scenario: "gh-proxy", ReqPerSec: gh, ProxyCPUus: 60},
			"nginx-ref": {Scenario: "nginx-ref", ReqPerSec: ref, ProxyCPUus: 15, Problem: refProblem},
		}
	}
	rounds := []map[string]sample{round(10000, 40000, ""), round(15000, 30000, ""), round(20000, 10000, "1 non-2xx responses")}
	if got := pairRatio(rounds[0], "gh-proxy", "nginx-ref", reqPerSec); got != 0.25 {
		t.Errorf("round 1 req/s ratio = %v; want 0.25", got)
	}
	if got := pairRatio(rounds[2], "gh-proxy", "nginx-ref", reqPerSec); !math.IsNaN(got) {
		t.Errorf("ratio to a failed run = %v; want NaN", got)
	}
	if got := medianPairRatio(rounds, "gh-proxy", "nginx-ref", reqPerSec); got != 0.375 {
		t.Errorf("median req/s ratio = %v; want 0.375 (the failed round left out)", got)
	}
	if got := medianPairRatio(rounds, "gh-proxy", "nginx-ref", proxyCPU); got != 4 {
		t.Errorf("median CPU ratio = %v; want 4", got)
	}
	if got := medianPairRatio(rounds, "gh-proxy", "rp-ref", reqPerSec); !math.IsNaN(got) {
		t.Errorf("ratio to a scenario that did not run = %v; want NaN", got)
	}
	if got := totalCPU(sample{ProxyCPUus: 30, AuthCPUus: 25}); got != 55 {
		t.Errorf("totalCPU = %v; want nginx + auth = 55", got)
	}
}

func TestTargets12(t *testing.T) {
	rounds := []map[string]sample{{
		"direct":       {ReqPerSec: 50000},
		"nginx-ref":    {ReqPerSec: 30000},
		"rp-ref":       {ReqPerSec: 10000},
		"gh-proxy":     {ReqPerSec: 12000},
		"gh-auth":      {ReqPerSec: 45000},
		"ingress-none": {ReqPerSec: 20000},
		"ingress-o2p":  {ReqPerSec: 4000},
		"ingress-gh":   {ReqPerSec: 13000},
	}}
	ts := targets12(summary{rounds: rounds}, &connsResult{RSSPerConnKB: 21}, &slowResult{
		Base: sample{P99ms: 10}, WithSlow: sample{P99ms: 12}})
	want := []string{"0.40 (target ≥ 0.50) — MISSED by 20 %", "1.20 (target ≥ 1.00) — met", "0.90 (target ≥ 0.80) — met",
		"0.65 (target ≥ 0.60) — met", "3.25 (target ≥ 3.00) — met", "21.00 (target ≤ 10.00) — MISSED by 110 %", "1.20 (no numeric target"}
	if len(ts) != len(want) {
		t.Fatalf("got %d targets; want %d", len(ts), len(want))
	}
	for i, tt := range ts {
		if !strings.Contains(tt.String(), want[i]) {
			t.Errorf("target %d: got %q; want it to contain %q", i, tt.String(), want[i])
		}
	}
	for _, tt := range targets12(summary{}, nil, nil) {
		if !strings.HasSuffix(tt.String(), "not measured") {
			t.Errorf("without measurements: got %q; want not measured", tt.String())
		}
	}
}

func TestRenderNginx(t *testing.T) {
	c := nginxConf{Dir: "/d", Workers: 2, App: "127.0.0.1:1", RefListen: "127.0.0.1:2", RefCookie: "gatehouse",
		NoneListen: "127.0.0.1:3", AuthSource: authSource, Auth: []nginxAuth{
			{Name: "gh", Addr: "127.0.0.1:4", Listen: "127.0.0.1:5", Cookie: "gatehouse"},
			{Name: "o2p", Addr: "127.0.0.1:6", Listen: "127.0.0.1:7", Cookie: "_oauth2.proxy"},
		}}
	b, err := renderNginx(c)
	if err != nil {
		t.Fatal(err)
	}
	conf := string(b)
	for _, want := range []string{
		"worker_processes 2;", "access_log off;", `if ($http_cookie !~ "gatehouse=")`, "keepalive 128;",
		"upstream gh {\n        server 127.0.0.1:4;", "proxy_bind 127.0.0.2;", `(?:[^;]*;\s*)*?)_oauth2\.proxy=`,
		"proxy_set_header Cookie $o2p_app_cookie;", "listen 127.0.0.1:7;",
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("configuration lacks %q:\n%s", want, conf)
		}
	}
	if n := strings.Count(conf, `proxy_set_header Connection "";`); n != 6 {
		t.Errorf("keep-alive to upstreams in %d locations; want 6 (ref, none, and per ingress its auth and its app)", n)
	}
	c.Auth = []nginxAuth{{Name: "gh; evil", Addr: "x"}}
	if _, err := renderNginx(c); err == nil {
		t.Error("an auth name that is not an identifier: got no error")
	}
}

// TestNginxConfiguration runs the benchmark's nginx in front of a recording
// upstream and a stand-in auth service: the reference checks the cookie;
// the ingress asks the auth service from authSource with the original URL,
// passes its identity headers on, keeps the session cookie from the app,
// refuses what the auth service refuses, and keeps its connections alive.
func TestNginxConfiguration(t *testing.T) {
	bin, err := exec.LookPath("nginx")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/nginx"); serr != nil {
			t.Fatalf("nginx is not installed: `make test` installs it (scripts/install-deps.sh); bench/run.sh does too")
		}
		bin = "/usr/sbin/nginx"
	}
	type seen struct {
		auth, user, cookie string
	}
	var mu sync.Mutex
	var got []seen
	var appConns, authConns atomic.Int64
	app := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, seen{r.Header.Get("Authorization"), r.Header.Get("X-Auth-Request-User"), r.Header.Get("Cookie")})
		mu.Unlock()
		_, _ = io.WriteString(w, "app")
	}))
	app.Config.ConnState = countNew(&appConns)
	app.Start()
	defer app.Close()
	var authFrom, original atomic.Value
	auth := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		authFrom.Store(host)
		original.Store(r.Header.Get("X-Original-URL"))
		if r.URL.Path != "/oauth2/auth" || !strings.Contains(r.Header.Get("Cookie"), "gatehouse=ok") {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Authorization", "Bearer minted")
		w.Header().Set("X-Auth-Request-User", "alice")
		w.WriteHeader(http.StatusAccepted)
	}))
	auth.Config.ConnState = countNew(&authConns)
	auth.Start()
	defer auth.Close()

	ports := make([]string, 3)
	for i := range ports {
		p, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = "127.0.0.1:" + strconv.Itoa(p)
	}
	dir := t.TempDir()
	ngx, err := startNginx(bin, dir, nginxConf{Workers: 2, App: strings.TrimPrefix(app.URL, "http://"),
		RefListen: ports[0], RefCookie: "gatehouse", NoneListen: ports[1], AuthSource: authSource,
		Auth: []nginxAuth{{Name: "gh", Addr: strings.TrimPrefix(auth.URL, "http://"), Listen: ports[2], Cookie: "gatehouse"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer ngx.stop()
	mu.Lock()
	got = nil // startNginx's readiness checks: ingress-none passes anything on
	mu.Unlock()
	if pids, err := ngx.pids(); err != nil || len(pids) != 3 {
		t.Errorf("nginx processes: %v, %v; want the master and 2 workers", pids, err)
	}
	c := &http.Client{Timeout: 10 * time.Second}
	get := func(url, cookie string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get(ngx.ref+"/", "other=1"); code != http.StatusUnauthorized {
		t.Errorf("nginx-ref without the cookie: got %d; want 401", code)
	}
	if code := get(ngx.ingress["gh"]+"/x", "gatehouse=no"); code != http.StatusUnauthorized {
		t.Errorf("ingress with a refused session: got %d; want 401", code)
	}
	mu.Lock()
	if len(got) != 0 {
		t.Errorf("refused requests reached the app: %v", got)
	}
	mu.Unlock()
	appConns.Store(0)
	authConns.Store(0)
	for range 20 {
		for _, u := range []string{ngx.ref + "/", ngx.none + "/", ngx.ingress["gh"] + "/x?y=1"} {
			if code := get(u, "a=1; gatehouse=ok; b=2"); code != http.StatusOK {
				t.Fatalf("GET %s with the cookie: got %d; want 200", u, code)
			}
		}
	}
	if from := authFrom.Load(); from != authSource {
		t.Errorf("auth subrequests came from %v; want %s (proxy_bind)", from, authSource)
	}
	if o := original.Load(); o != "http://"+ports[2]+"/x?y=1" {
		t.Errorf("X-Original-URL %v; want http://%s/x?y=1", o, ports[2])
	}
	mu.Lock()
	last := got[len(got)-1]
	mu.Unlock()
	if last.auth != "Bearer minted" || last.user != "alice" || last.cookie != "a=1; b=2" {
		t.Errorf("the app got Authorization %q, user %q, Cookie %q; want the auth service's headers and no session cookie", last.auth, last.user, last.cookie)
	}
	// 60 requests on one client connection, so one worker: the app and the
	// auth service each see one new connection at most (two if the
	// client's connection moved to the other worker).
	if n := appConns.Load(); n > 2 {
		t.Errorf("the app accepted %d connections for 60 requests; want at most 2 (keepalive)", n)
	}
	if n := authConns.Load(); n > 2 {
		t.Errorf("the auth service accepted %d connections for 20 checks; want at most 2 (keepalive)", n)
	}
}

func countNew(n *atomic.Int64) func(net.Conn, http.ConnState) {
	return func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			n.Add(1)
		}
	}
}

func TestOpenIdleHoldsConnectionsFromSeveralSources(t *testing.T) {
	var mu sync.Mutex
	sources := map[string]int{}
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Cookie") != "gatehouse=v" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_, _ = io.WriteString(w, "ok")
	}))
	srv.Config.ConnState = func(c net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
			host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
			mu.Lock()
			sources[host]++
			mu.Unlock()
		}
	}
	srv.Start()
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	p, err := openIdle(t.Context(), addr, "gatehouse=v", 50, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	if n := p.ping(); n != 50 {
		t.Errorf("ping: %d of 50 answered; want all", n)
	}
	if n := conns.Load(); n != 50 {
		t.Errorf("server accepted %d connections; want 50, each kept alive", n)
	}
	mu.Lock()
	if sources["127.0.0.10"] != 25 || sources["127.0.0.11"] != 25 {
		t.Errorf("source addresses %v; want 25 each from 127.0.0.10 and 127.0.0.11", sources)
	}
	mu.Unlock()
	if _, err := openIdle(t.Context(), addr, "gatehouse=wrong", 3, 1); err == nil {
		t.Error("a refused first request: got no error")
	}
}

// TestSlowClientReconnectsWhenCut runs a slow client against a server that
// cuts every connection after 3 bytes, by closing it or by answering 408:
// the client counts the cut, how it ended, and comes back.
func TestSlowClientReconnectsWhenCut(t *testing.T) {
	for _, tt := range []struct {
		name   string
		answer string // what the server writes before closing
		check  func(k *slowKind) error
	}{
		{"closed", "", func(k *slowKind) error {
			if k.Errors["closed (EOF)"] < 1 {
				return errors.New("want an EOF ending")
			}
			return nil
		}},
		{"answered", "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", func(k *slowKind) error {
			if k.Answers[408] < 1 {
				return errors.New("want a 408 answer")
			}
			return nil
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			accepted := make(chan struct{}, 16)
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					go func() {
						defer c.Close()
						_, _ = io.ReadFull(c, make([]byte, 3))
						_, _ = io.WriteString(c, tt.answer)
						// A FIN, not a reset: the client reads the answer or
						// EOF whatever it has sent meanwhile.
						_ = c.(*net.TCPConn).CloseWrite()
						accepted <- struct{}{}
						_, _ = io.Copy(io.Discard, c)
					}()
				}
			}()
			k := &slowKind{Answers: map[int]int64{}, Errors: map[string]int64{}}
			stop := make(chan struct{})
			var ready atomic.Int64
			done := make(chan struct{})
			go func() {
				slowClient(ln.Addr().String(), nil, []byte("abcdefgh"), time.Millisecond, k, stop,
					func() { ready.Add(1) })
				close(done)
			}()
			<-accepted
			<-accepted // cut once, and back
			close(stop)
			<-done
			k.mu.Lock()
			defer k.mu.Unlock()
			if k.Connections < 2 || k.Cut < 1 || len(k.CutAfter) != int(k.Cut) {
				t.Errorf("connections %d, cut %d (%d durations); want at least 2 and 1", k.Connections, k.Cut, len(k.CutAfter))
			}
			if err := tt.check(k); err != nil {
				t.Errorf("%v; got answers %v, errors %v", err, k.Answers, k.Errors)
			}
			if ready.Load() != 1 {
				t.Errorf("ready called %d times; want once", ready.Load())
			}
		})
	}
}

func TestSlowPayloads(t *testing.T) {
	h, b := slowPayloads("127.0.0.1:8080", "gatehouse=v")
	if strings.Contains(string(h), "\r\n\r\n") || !strings.HasPrefix(string(h), "GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n") {
		t.Errorf("header payload must start a request and never end its headers: %.80q", h)
	}
	req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(string(b))))
	if err != nil {
		t.Fatal(err)
	}
	if req.Method != http.MethodPost || req.ContentLength != slowBodyLength || req.Header.Get("Cookie") != "gatehouse=v" ||
		req.Header.Get("Origin") != "http://127.0.0.1:8080" {
		t.Errorf("body head: %s %d, Cookie %q, Origin %q; want a same-origin POST with the cookie announcing %d bytes",
			req.Method, req.ContentLength, req.Header.Get("Cookie"), req.Header.Get("Origin"), slowBodyLength)
	}
}

func TestCountsString(t *testing.T) {
	if got := countsString(map[int]int64{408: 2, 200: 1}); got != "200: 1, 408: 2" {
		t.Errorf("got %q", got)
	}
	if got := countsString(map[string]int64{}); got != "–" {
		t.Errorf("empty: got %q", got)
	}
}
