package main

import (
	"log/slog"
	"math"
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseStatTicks(t *testing.T) {
	tests := []struct {
		name string
		stat string
		want int64 // utime + stime; -1 = an error
	}{
		{"plain", "1234 (gatehouse) S 1 1234 1234 0 -1 4194560 500 0 0 0 250 40 0 0 20 0 8 0 100 0 0", 290},
		{"name with spaces and parens", "77 (my (odd) proc) R 1 77 77 0 -1 0 0 0 0 0 7 3 0 0 20 0 1 0 5 0 0", 10},
		{"truncated", "77 (x) R 1 2 3", -1},
		{"no name", "77 x R 1 2 3 4 5 6 7 8 9 10 11 12 13", -1},
		{"not a number", "1 (x) S 1 1 1 0 -1 0 0 0 0 0 abc 3 0", -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStatTicks([]byte(tt.stat))
			if tt.want < 0 {
				if err == nil {
					t.Fatalf("got %d, nil; want an error", got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %d, %v; want %d", got, err, tt.want)
			}
		})
	}
}

func TestParseStatTicksOfThisProcess(t *testing.T) {
	// Burn a little CPU so the count cannot be zero.
	deadline := time.Now().Add(30 * time.Millisecond)
	for n := 0; time.Now().Before(deadline); n++ {
		_ = n * n
	}
	got, err := cpuTicks(os.Getpid())
	if err != nil || got <= 0 {
		t.Fatalf("cpuTicks(self) = %d, %v; want > 0", got, err)
	}
	rss, hwm, err := memKB(os.Getpid())
	if err != nil || rss <= 0 || hwm < rss {
		t.Fatalf("memKB(self) = %d, %d, %v; want 0 < rss <= hwm", rss, hwm, err)
	}
}

func TestParseStatusMem(t *testing.T) {
	status := "Name:\tgatehouse\nVmPeak:\t 1000 kB\nVmHWM:\t   41000 kB\nVmRSS:\t   39000 kB\nThreads:\t8\n"
	rss, hwm, err := parseStatusMem([]byte(status))
	if err != nil || rss != 39000 || hwm != 41000 {
		t.Fatalf("got %d, %d, %v; want 39000, 41000, nil", rss, hwm, err)
	}
	if _, _, err := parseStatusMem([]byte("Name:\tx\nVmRSS:\t1 kB\n")); err == nil {
		t.Fatal("status without VmHWM: got no error")
	}
}

func TestParseWrk(t *testing.T) {
	out := `Running 10s test @ http://127.0.0.1:1/
  2 threads and 64 connections
  Latency Distribution
     50%    1.29ms
Requests/sec:  46429.00
BENCH requests=93067 duration_us=2004516 p50_us=1290 p99_us=11120 non2xx=3 connect=0 read=1 write=0 timeout=2 status=3
`
	got, err := parseWrk(out)
	if err != nil {
		t.Fatal(err)
	}
	want := wrkResult{Requests: 93067, Duration: 2004516 * time.Microsecond, P50: 1290 * time.Microsecond,
		P99: 11120 * time.Microsecond, Non2xx: 3, SockErrors: 3}
	if got != want {
		t.Fatalf("got %+v; want %+v", got, want)
	}
	if rps := got.reqPerSec(); math.Abs(rps-46428.6) > 1 {
		t.Fatalf("reqPerSec = %.1f; want about 46428.6", rps)
	}
	for _, bad := range []string{"no summary\n", "BENCH requests=1\n", "BENCH requests=x duration_us=1 p50_us=1 p99_us=1 non2xx=0\n", "BENCH oops\n"} {
		if _, err := parseWrk(bad); err == nil {
			t.Errorf("parseWrk(%q): got no error", bad)
		}
	}
}

func TestCheck(t *testing.T) {
	proxied := scenario{name: "gh-proxy", upstream: true}
	auth := scenario{name: "gh-auth"}
	ok := wrkResult{Requests: 1000}
	tests := []struct {
		name     string
		sc       scenario
		res      wrkResult
		upstream int64
		want     string // substring of the problem; "" = passes
	}{
		{"all reached the upstream", proxied, ok, 1000, ""},
		{"in-flight requests at the end", proxied, ok, 1064, ""},
		{"more than one extra per connection", proxied, ok, 1065, "upstream got 1065"},
		{"answered without the upstream", proxied, ok, 999, "upstream got 999"},
		{"non-2xx", proxied, wrkResult{Requests: 1000, Non2xx: 1}, 1000, "1 non-2xx"},
		{"socket errors", proxied, wrkResult{Requests: 1000, SockErrors: 2}, 1000, "2 socket errors"},
		{"nothing completed", proxied, wrkResult{}, 0, "no request"},
		{"auth check never proxies", auth, ok, 0, ""},
		{"auth check reached the upstream", auth, ok, 5, "want 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := check(tt.sc, tt.res, tt.upstream, 64)
			if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
				t.Fatalf("got %q; want %q", got, tt.want)
			}
		})
	}
}

func TestRoundOrderAlternates(t *testing.T) {
	scs := []scenario{{name: "a"}, {name: "b"}, {name: "c"}}
	names := func(r int) string {
		var b strings.Builder
		for _, s := range roundOrder(scs, r) {
			b.WriteString(s.name)
		}
		return b.String()
	}
	for r, want := range []string{"abc", "acb", "cab", "cba", "bca"} {
		if got := names(r); got != want {
			t.Errorf("round %d: got %s; want %s", r, got, want)
		}
	}
	// Every scenario runs first at least once in 5 rounds of 3.
	first := map[string]bool{}
	for r := range 5 {
		first[roundOrder(scs, r)[0].name] = true
	}
	if len(first) != 3 {
		t.Errorf("scenarios that ran first: %v; want all 3", first)
	}
}

func TestMedian(t *testing.T) {
	nan := math.NaN()
	tests := []struct {
		in   []float64
		want float64
	}{
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{nan, 5, nan}, 5},
		{[]float64{nan}, nan},
		{nil, nan},
	}
	for _, tt := range tests {
		got := median(tt.in)
		if !(got == tt.want || math.IsNaN(got) && math.IsNaN(tt.want)) {
			t.Errorf("median(%v) = %v; want %v", tt.in, got, tt.want)
		}
	}
}

func TestSummarizeRatiosPairRounds(t *testing.T) {
	scs := []scenario{
		{name: "direct"},
		{name: "o2p-proxy", target: &proxy{}},
		{name: "gh-proxy", target: &proxy{}, peer: "o2p-proxy"},
	}
	round := func(direct, o2p, gh float64, ghProblem string) map[string]sample {
		return map[string]sample{
			"direct":    {Scenario: "direct", ReqPerSec: direct},
			"o2p-proxy": {Scenario: "o2p-proxy", ReqPerSec: o2p, ProxyCPUus: 160, P99ms: 40},
			"gh-proxy":  {Scenario: "gh-proxy", ReqPerSec: gh, ProxyCPUus: 40, P99ms: 10, Problem: ghProblem},
		}
	}
	sum := summarize(scs, []map[string]sample{
		round(10000, 1000, 5000, ""),
		round(20000, 2000, 12000, ""),
		round(10000, 1000, 9000, "3 non-2xx responses"), // a failed run counts in no median
	})
	r := sum.ratios["gh-proxy"]
	if math.Abs(r.xPeer-5.5) > 1e-9 || math.Abs(r.xDirect-0.55) > 1e-9 || r.cpuPeer != 4 || r.p99Peer != 0.25 {
		t.Fatalf("ratios = %+v; want xPeer 5.5, xDirect 0.55, cpuPeer 4, p99Peer 0.25", r)
	}
	if got := sum.passed["gh-proxy"]; got != 2 {
		t.Fatalf("passed rounds = %d; want 2", got)
	}
	if got := sum.med["gh-proxy"].ReqPerSec; got != 8500 {
		t.Fatalf("median req/s = %v; want 8500", got)
	}
}

func TestTargetVerdicts(t *testing.T) {
	tests := []struct {
		t    target
		want string
	}{
		{target{what: "x", value: 6, want: 5}, "met"},
		{target{what: "x", value: 2.5, want: 5}, "MISSED by 50 %"},
		{target{what: "x", value: 0.8, want: 1, atMost: true}, "met"},
		{target{what: "x", value: 1.5, want: 1, atMost: true}, "MISSED by 50 %"},
		{target{what: "x", value: math.NaN(), want: 1}, "not measured"},
	}
	for _, tt := range tests {
		if got := tt.t.String(); !strings.HasSuffix(got, tt.want) {
			t.Errorf("%+v: got %q; want it to end in %q", tt.t, got, tt.want)
		}
	}
}

func TestParseFlags(t *testing.T) {
	base := []string{"loadbench", "-gatehouse", "g", "-oauth2-proxy", "o", "-out", "d", "-refproxy", "r"}
	o, err := parseFlags(base)
	if err != nil {
		t.Fatal(err)
	}
	if o.duration != 10*time.Second || o.rounds != 5 || o.conns != 64 || o.threads != 2 || len(o.selected()) != len(allScenarios) ||
		o.idleConns != 10000 || o.slowClients != 500 || !o.wantsNginx() || o.profile {
		t.Fatalf("defaults: got %+v; want 10s, 5 rounds, 64 connections, 2 threads, every scenario, 10000 idle connections, 500 slow clients, no profile", o)
	}
	o, err = parseFlags([]string{"loadbench", "-gatehouse", "g", "-oauth2-proxy", "o", "-out", "d", "-scenarios", "gh-proxy"})
	if err != nil || o.wantsNginx() {
		t.Fatalf("-scenarios gh-proxy without -refproxy: got %v, nginx %v; want no error and no nginx", err, o.wantsNginx())
	}
	o, err = parseFlags(append(base, "-scenarios", "direct, gh-auth"))
	if err != nil || !o.wants("gh-auth") || o.wants("gh-proxy") {
		t.Fatalf("-scenarios direct,gh-auth: got %v, %v", o.selected(), err)
	}
	for _, bad := range [][]string{
		{"loadbench"},
		append(base, "-scenarios", "gh-proxy,nope"),
		append(base, "-duration", "500ms"),
		append(base, "-threads", "100"),
		append(base, "-sessions", "-1"),
		append(base, "-idle-conns", "-1"),
		append(base, "-slow-clients", "1"),
		append(base, "-profile"),
		{"loadbench", "-gatehouse", "g", "-oauth2-proxy", "o", "-out", "d", "-scenarios", "rp-ref"},
	} {
		if _, err := parseFlags(bad); err == nil {
			t.Errorf("parseFlags(%q): got no error", bad)
		}
	}
}

func TestGatehouseConfigRoutes(t *testing.T) {
	dir := t.TempDir()
	path, metrics, err := writeGatehouseConfig(dir, gatehouseConfig{name: "g", port: 1234, issuer: "http://127.0.0.1:1",
		clientID: "g", secret: "s", cookieKey: "k", redis: "127.0.0.1:2", keyFile: "/k.pem", upstream: "http://127.0.0.1:3",
		audience: "native-app", routes: 100})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	y := string(b)
	if got := strings.Count(y, "- name: "); got != 100 {
		t.Errorf("routes: got %d; want 100", got)
	}
	if i, j := strings.Index(y, "path_prefix: /r098/"), strings.Index(y, "path_prefix: /\n"); i < 0 || j < i {
		t.Errorf("the catch-all route must come last, after /r098/")
	}
	for _, want := range []string{"access_log: false", "level: warn", "store: redis", "listen: 127.0.0.1:1234", "metrics_listen: " + metrics} {
		if !strings.Contains(y, want) {
			t.Errorf("configuration lacks %q", want)
		}
	}
}

func TestParseMachineTicks(t *testing.T) {
	stat := "cpu  100 5 50 1000 20 3 2 10 0 0\ncpu0 50 2 25 500 10 1 1 5 0 0\n"
	busy, total, err := parseMachineTicks([]byte(stat))
	if err != nil || busy != 170 || total != 1190 {
		t.Fatalf("got %d, %d, %v; want 170, 1190, nil", busy, total, err)
	}
	if _, _, err := parseMachineTicks([]byte("intr 1 2 3\n")); err == nil {
		t.Fatal("a stat without the cpu line: got no error")
	}
}

func TestEqualLoadRatioNeedsBothPassing(t *testing.T) {
	eq := []sample{
		{Scenario: "o2p-proxy", P99ms: 50},
		{Scenario: "gh-proxy", P99ms: 10},
		{Scenario: "o2p-auth", P99ms: 20},
		{Scenario: "gh-auth", P99ms: 2, Problem: "1 non-2xx responses"},
	}
	if got := eqRatio(eq, "gh-proxy", "o2p-proxy"); got != 0.2 {
		t.Errorf("proxied ratio = %v; want 0.2", got)
	}
	if got := eqRatio(eq, "gh-auth", "o2p-auth"); !math.IsNaN(got) {
		t.Errorf("ratio with a failed run = %v; want NaN (not measured)", got)
	}
	if got := eqRatio(nil, "gh-auth", "o2p-auth"); !math.IsNaN(got) {
		t.Errorf("ratio without runs = %v; want NaN", got)
	}
}

func TestLogValuesHideSecrets(t *testing.T) {
	var b strings.Builder
	log := slog.New(slog.NewTextHandler(&b, nil))
	log.Info("x",
		"proxy", &proxy{kind: "gatehouse", url: "http://127.0.0.1:1", clientID: "gh", secret: "client-secret-1"},
		"gatehouse", gatehouseConfig{name: "gh", secret: "client-secret-2", cookieKey: "cookie-secret-3"},
		"oauth2_proxy", oauth2ProxyConfig{clientID: "o2p", secret: "client-secret-4"})
	for _, secret := range []string{"client-secret-1", "client-secret-2", "cookie-secret-3", "client-secret-4"} {
		if strings.Contains(b.String(), secret) {
			t.Errorf("log shows %q: %s", secret, b.String())
		}
	}
	if !strings.Contains(b.String(), "client_id=gh") {
		t.Errorf("log lacks the client id: %s", b.String())
	}
}
