// Command loadbench is the side-by-side load benchmark of Gatehouse and
// oauth2-proxy that bench/run.sh builds and runs (issue 5).
//
// On 127.0.0.1 only, it starts a counting upstream and the devidp OpenID
// provider in its own process, and redis-server, oauth2-proxy and Gatehouse
// as child processes, signs in to each proxy through its /oauth2/start flow,
// then loads every scenario with wrk for a number of rounds in alternating
// order. For each run it records req/s, p50 and p99 latency, the proxy's CPU
// per request from /proc/PID/stat, new upstream connections and RSS, checks
// that every response was 2xx and that the upstream saw every proxied
// request, and prints a table per round and one of medians with the ratios
// to the direct upstream and to oauth2-proxy. It then measures how long a
// second Gatehouse keeps accepting a session signed out on the first, and
// the Redis memory per session.
//
// Every server it starts is stopped when it exits; children get SIGKILL
// should the harness itself die. No figure it prints is asserted anywhere:
// it measures, it does not judge, apart from the 2xx and upstream checks.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/gatehouse/gatehouse/devidp"
	"github.com/gatehouse/gatehouse/sessionstore"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args, os.Stdout)
	stop()
	if err != nil {
		// Every error already starts with "loadbench: ".
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// options are the command line.
type options struct {
	gatehouse, gatehousePprof, oauth2Proxy, redisServer, wrk, goBin string
	refProxy, nginx                                                 string
	out, revision                                                   string
	duration, warmup                                                time.Duration
	rounds, conns, threads                                          int
	scenarios                                                       string
	sessions, revokeTrials                                          int
	idleConns, slowClients                                          int
	equalLoad, profile                                              bool
	capacity                                                        bool
}

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("loadbench", flag.ContinueOnError)
	fs.StringVar(&o.gatehouse, "gatehouse", "", "Gatehouse binary (required)")
	fs.StringVar(&o.gatehousePprof, "gatehouse-pprof", "", "the bench/cmd/gatehouse-pprof binary: Gatehouse with pprof, for -profile and for the connection and slow-client instances (whose memory is read after a forced GC)")
	fs.BoolVar(&o.profile, "profile", false, "run the main Gatehouse as -gatehouse-pprof and print CPU and allocation profiles")
	fs.StringVar(&o.oauth2Proxy, "oauth2-proxy", "", "oauth2-proxy v7.15.6 binary (required)")
	fs.StringVar(&o.redisServer, "redis-server", "redis-server", "redis-server binary")
	fs.StringVar(&o.wrk, "wrk", "wrk", "wrk binary")
	fs.StringVar(&o.goBin, "go", "go", "go binary, for go tool pprof")
	fs.StringVar(&o.refProxy, "refproxy", "", "the bench/cmd/refproxy binary, for rp-ref (required when rp-ref runs)")
	fs.StringVar(&o.nginx, "nginx", "nginx", "nginx binary, for nginx-ref and the ingress scenarios")
	fs.IntVar(&o.idleConns, "idle-conns", 10000, "keep-alive connections held open on a Gatehouse of their own, 1 % of them busy; 0 = skip")
	fs.IntVar(&o.slowClients, "slow-clients", 500, "slow clients (half dribbling headers, half bodies) beside a wrk run; 0 = skip")
	fs.StringVar(&o.revision, "revision", "", "what Gatehouse was built from, for the report (e.g. git describe --dirty)")
	fs.StringVar(&o.out, "out", "", "directory for logs, wrk output, profiles and results.json (required)")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "measured wrk run per scenario and round (whole seconds)")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "wrk warm-up before each measured run; 0 = none")
	fs.IntVar(&o.rounds, "rounds", 5, "rounds; the scenario order alternates between rounds")
	fs.IntVar(&o.conns, "connections", 64, "wrk connections")
	fs.IntVar(&o.threads, "threads", 2, "wrk threads")
	fs.StringVar(&o.scenarios, "scenarios", "", "comma-separated scenario names; empty = all ("+strings.Join(allScenarios, ",")+")")
	fs.IntVar(&o.sessions, "sessions", 100000, "sessions written to a fresh Redis for the scale figures; 0 = skip")
	fs.BoolVar(&o.equalLoad, "equal-load", true, "also compare latency with both proxies at the same paced load, half oauth2-proxy's median req/s")
	fs.IntVar(&o.revokeTrials, "revoke-trials", 5, "revocation trials across two Gatehouse instances; 0 = skip")
	fs.BoolVar(&o.capacity, "capacity", false, "only the capacity figures (capacity.go): Redis memory and commands per operation with -sessions sessions, a 10k-session revocation, two replicas on a Cluster against a standalone Redis")
	if err := fs.Parse(args[1:]); err != nil {
		return o, fmt.Errorf("loadbench: %w", err)
	}
	var problems []string
	if o.gatehouse == "" {
		problems = append(problems, "-gatehouse is required")
	}
	if o.oauth2Proxy == "" && !o.capacity {
		problems = append(problems, "-oauth2-proxy is required")
	}
	if o.out == "" {
		problems = append(problems, "-out is required")
	}
	if o.duration < time.Second {
		problems = append(problems, "-duration must be at least 1s")
	}
	if o.rounds < 1 || o.conns < 1 || o.threads < 1 || o.threads > o.conns {
		problems = append(problems, "-rounds, -connections and -threads must be positive, threads at most connections")
	}
	if o.sessions < 0 || o.revokeTrials < 0 || o.idleConns < 0 || o.slowClients < 0 {
		problems = append(problems, "-sessions, -revoke-trials, -idle-conns and -slow-clients must not be negative")
	}
	if o.slowClients == 1 {
		problems = append(problems, "-slow-clients must be 0 or at least 2 (half dribble headers, half bodies)")
	}
	if o.profile && o.gatehousePprof == "" {
		problems = append(problems, "-profile needs -gatehouse-pprof")
	}
	if o.wants("rp-ref") && o.refProxy == "" && !o.capacity {
		problems = append(problems, "-refproxy is required for the rp-ref scenario")
	}
	for _, s := range o.selected() {
		if !slices.Contains(allScenarios, s) {
			problems = append(problems, fmt.Sprintf("-scenarios: unknown %q", s))
		}
	}
	if len(problems) > 0 {
		return o, errors.New("loadbench: " + strings.Join(problems, "; "))
	}
	return o, nil
}

// allScenarios in table order.
var allScenarios = []string{
	"direct", "nginx-ref", "rp-ref", "o2p-proxy", "gh-proxy", "o2p-auth", "gh-auth", "o2p-bearer", "gh-bearer",
	"o2p-proxy-200g", "gh-proxy-200g", "gh-proxy-100routes", "ingress-none", "ingress-o2p", "ingress-gh",
}

// wantsNginx reports whether any selected scenario runs through nginx.
func (o options) wantsNginx() bool {
	return slices.ContainsFunc(o.selected(), func(s string) bool { return s == "nginx-ref" || strings.HasPrefix(s, "ingress-") })
}

func (o options) selected() []string {
	if o.scenarios == "" {
		return allScenarios
	}
	var out []string
	for s := range strings.SplitSeq(o.scenarios, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func (o options) wants(name string) bool { return slices.Contains(o.selected(), name) }

// Users of the benchmark's provider: alice is an ordinary user, carol is in
// 200 groups, to show how cost grows with the size of the identity.
var (
	alice = devidp.User{ID: "u-alice", Username: "alice", Password: "alice-pw", Email: "alice@example.com",
		EmailVerified: true, Name: "Alice Admin", PreferredUsername: "alice", Groups: []string{"admins", "developers"}}
	carol = devidp.User{ID: "u-carol", Username: "carol", Password: "carol-pw", Email: "carol@example.com",
		EmailVerified: true, Name: "Carol Many-Groups", PreferredUsername: "carol", Groups: manyGroups(200)}
)

func manyGroups(n int) []string {
	g := make([]string, n)
	for i := range g {
		g[i] = fmt.Sprintf("group-%03d-platform-engineering", i)
	}
	return g
}

const nativeClientID = "native-app"

// run is the whole benchmark; every process it starts is stopped when it returns.
func run(ctx context.Context, args []string, stdout io.Writer) (err error) {
	o, err := parseFlags(args)
	if err != nil {
		return err
	}
	if o.capacity {
		return runCapacity(ctx, o, stdout)
	}
	if err := os.MkdirAll(o.out, 0o700); err != nil {
		return fmt.Errorf("loadbench: %w", err)
	}
	script := filepath.Join(o.out, "count.lua")
	if err := os.WriteFile(script, countLua, 0o600); err != nil {
		return fmt.Errorf("loadbench: %w", err)
	}
	tck, err := clockTicks()
	if err != nil {
		return err
	}
	logf := func(format string, a ...any) { fmt.Fprintf(os.Stderr, "loadbench: "+format+"\n", a...) }
	if o.idleConns > 0 {
		// Before any child starts: children inherit the raised limit.
		limit, err := raiseNofile(uint64(o.idleConns + fdHeadroom))
		if err != nil {
			return err
		}
		if limit < uint64(o.idleConns+fdHeadroom) {
			return fmt.Errorf("loadbench: -idle-conns %d needs %d file descriptors; the limit is %d (raise the hard limit, ulimit -Hn, or lower BENCH_IDLE_CONNS)",
				o.idleConns, o.idleConns+fdHeadroom, limit)
		}
	}

	var procs []*proc
	defer func() {
		for _, p := range slices.Backward(procs) {
			p.stop()
		}
	}()

	up, err := startUpstream()
	if err != nil {
		return err
	}
	defer up.close()
	rds, err := startRedis(o.redisServer, "redis", o.out)
	if err != nil {
		return err
	}
	procs = append(procs, rds.proc)

	// Ports first: each proxy's redirect URI is registered at the provider.
	type instance struct {
		name  string
		port  int
		want  bool
		proxy *proxy
	}
	instances := []*instance{
		{name: "oauth2-proxy", want: true},
		{name: "gatehouse", want: true},
		{name: "gatehouse-b", want: o.revokeTrials > 0},
		{name: "gatehouse-routes", want: o.wants("gh-proxy-100routes")},
		// Fresh instances for the connection and slow-client figures, so
		// their memory is not hidden in a heap the rounds already grew.
		{name: "gatehouse-conns", want: o.idleConns > 0},
		{name: "gatehouse-slow", want: o.slowClients > 0},
	}
	clients := []devidp.Client{{ID: nativeClientID, RedirectURIs: []string{nativeRedirect}}}
	for _, in := range instances {
		if !in.want {
			continue
		}
		if in.port, err = freePort(); err != nil {
			return err
		}
		clients = append(clients, devidp.Client{
			ID: in.name, Secret: randomSecret(24),
			RedirectURIs: []string{fmt.Sprintf("http://127.0.0.1:%d/oauth2/callback", in.port)},
		})
	}
	idp, err := devidp.Start(devidp.Config{
		Users: []devidp.User{alice, carol}, Clients: clients,
		// Long lifetimes: no proxy refreshes tokens while it is measured.
		AccessTokenLifetime: 6 * time.Hour, IDTokenLifetime: 6 * time.Hour,
	})
	if err != nil {
		return fmt.Errorf("loadbench: starting the OpenID provider: %w", err)
	}
	defer idp.Close()
	secretOf := func(id string) string {
		for _, c := range clients {
			if c.ID == id {
				return c.Secret
			}
		}
		return ""
	}

	keyFile := filepath.Join(o.out, "signing-key.pem")
	if err := generateKey(ctx, o.gatehouse, keyFile); err != nil {
		return err
	}
	cookieKey := randomSecret(32)
	for _, in := range instances {
		if !in.want {
			continue
		}
		if in.name == "oauth2-proxy" {
			in.proxy, err = startOAuth2Proxy(o.oauth2Proxy, o.out, oauth2ProxyConfig{
				port: in.port, issuer: idp.URL, clientID: in.name, secret: secretOf(in.name),
				redis: rds.addr, upstream: up.url, nativeClient: nativeClientID,
			})
		} else {
			bin, pprofAddr := o.gatehouse, ""
			withPprof := (in.name == "gatehouse" && o.profile) || in.name == "gatehouse-conns" || in.name == "gatehouse-slow"
			if withPprof && o.gatehousePprof != "" {
				p, perr := freePort()
				if perr != nil {
					return perr
				}
				bin, pprofAddr = o.gatehousePprof, fmt.Sprintf("127.0.0.1:%d", p)
			}
			routes := 0
			if in.name == "gatehouse-routes" {
				routes = 100
			}
			in.proxy, err = startGatehouse(bin, o.out, gatehouseConfig{
				name: in.name, port: in.port, issuer: idp.URL, clientID: in.name, secret: secretOf(in.name),
				cookieKey: cookieKey, redis: rds.addr, keyFile: keyFile, upstream: up.url,
				audience: nativeClientID, routes: routes,
			}, pprofAddr)
		}
		if err != nil {
			return err
		}
		procs = append(procs, in.proxy.proc)
		logf("%s pid %d on %s", in.name, in.proxy.pid(), in.proxy.url)
	}
	o2p, gh := instances[0].proxy, instances[1].proxy

	// The reference proxies and the ingress: they only pass requests on.
	var ngx *nginxServer
	if o.wantsNginx() {
		c := nginxConf{Workers: runtime.NumCPU(), App: strings.TrimPrefix(up.url, "http://"), RefCookie: gh.cookie, AuthSource: authSource}
		ports := make([]int, 4)
		for i := range ports {
			if ports[i], err = freePort(); err != nil {
				return err
			}
		}
		c.RefListen, c.NoneListen = fmt.Sprintf("127.0.0.1:%d", ports[0]), fmt.Sprintf("127.0.0.1:%d", ports[1])
		c.Auth = []nginxAuth{
			{Name: "gh", Addr: strings.TrimPrefix(gh.url, "http://"), Listen: fmt.Sprintf("127.0.0.1:%d", ports[2]), Cookie: gh.cookie},
			{Name: "o2p", Addr: strings.TrimPrefix(o2p.url, "http://"), Listen: fmt.Sprintf("127.0.0.1:%d", ports[3]), Cookie: o2p.cookie},
		}
		if ngx, err = startNginx(o.nginx, o.out, c); err != nil {
			return err
		}
		procs = append(procs, ngx.proc)
		logf("nginx pid %d (%d workers) on %s, %s, %s, %s", ngx.pid(), c.Workers, ngx.ref, ngx.none, ngx.ingress["gh"], ngx.ingress["o2p"])
	}
	var rp *proxy
	if o.wants("rp-ref") {
		if rp, err = startRefProxy(o.refProxy, o.out, up.url, gh.cookie, max(256, o.conns)); err != nil {
			return err
		}
		procs = append(procs, rp.proc)
		logf("refproxy pid %d on %s", rp.pid(), rp.url)
	}

	// Sign in everywhere a scenario needs a session.
	cookies := map[string]string{}
	for _, l := range []struct {
		key  string
		px   *proxy
		user devidp.User
		need bool
	}{
		{"o2p", o2p, alice, true},
		{"o2p-200g", o2p, carol, o.wants("o2p-proxy-200g")},
		{"gh", gh, alice, true},
		{"gh-200g", gh, carol, o.wants("gh-proxy-200g")},
		{"gh-routes", instances[3].proxy, alice, o.wants("gh-proxy-100routes")},
	} {
		if !l.need {
			continue
		}
		c, err := login(ctx, l.px, idp.URL, l.user.Username, l.user.Password)
		if err != nil {
			return err
		}
		cookies[l.key] = l.px.cookie + "=" + c
	}
	tok, err := nativeLogin(ctx, idp.URL, nativeClientID, alice.Username, alice.Password)
	if err != nil {
		return err
	}
	bearer := "Bearer " + tok.AccessToken

	all := []scenario{
		{name: "direct", label: "upstream direct", url: up.url + "/", upstream: true},
		{name: "o2p-proxy", label: "oauth2-proxy proxied", target: o2p, url: o2p.url + "/", hname: "Cookie", hval: cookies["o2p"], upstream: true},
		{name: "gh-proxy", label: "Gatehouse proxied", target: gh, url: gh.url + "/", hname: "Cookie", hval: cookies["gh"], upstream: true, peer: "o2p-proxy"},
		{name: "o2p-auth", label: "oauth2-proxy /oauth2/auth", target: o2p, url: o2p.url + "/oauth2/auth", hname: "Cookie", hval: cookies["o2p"]},
		{name: "gh-auth", label: "Gatehouse /oauth2/auth", target: gh, url: gh.url + "/oauth2/auth", hname: "Cookie", hval: cookies["gh"], peer: "o2p-auth"},
		{name: "o2p-bearer", label: "oauth2-proxy bearer", target: o2p, url: o2p.url + "/", hname: "Authorization", hval: bearer, upstream: true},
		{name: "gh-bearer", label: "Gatehouse bearer", target: gh, url: gh.url + "/", hname: "Authorization", hval: bearer, upstream: true, peer: "o2p-bearer"},
		{name: "o2p-proxy-200g", label: "oauth2-proxy proxied, 200 groups", target: o2p, url: o2p.url + "/", hname: "Cookie", hval: cookies["o2p-200g"], upstream: true},
		{name: "gh-proxy-200g", label: "Gatehouse proxied, 200 groups", target: gh, url: gh.url + "/", hname: "Cookie", hval: cookies["gh-200g"], upstream: true, peer: "o2p-proxy-200g"},
		{name: "gh-proxy-100routes", label: "Gatehouse proxied, 100 routes", target: instances[3].proxy, url: "/", hname: "Cookie", hval: cookies["gh-routes"], upstream: true, peer: "o2p-proxy"},
	}
	if p := instances[3].proxy; p != nil {
		all[9].url = p.url + "/"
	}
	if ngx != nil {
		all = append(all,
			scenario{name: "nginx-ref", label: "nginx proxy_pass, cookie present (reference)", target: ngx.proxy, url: ngx.ref + "/", hname: "Cookie", hval: cookies["gh"], upstream: true},
			// The same request as ingress-gh's, cookie included.
			scenario{name: "ingress-none", label: "nginx, no auth", target: ngx.proxy, url: ngx.none + "/", hname: "Cookie", hval: cookies["gh"], upstream: true, ingress: true},
			scenario{name: "ingress-o2p", label: "nginx + oauth2-proxy (auth_request)", target: ngx.proxy, auth: o2p, url: ngx.ingress["o2p"] + "/", hname: "Cookie", hval: cookies["o2p"], upstream: true, ingress: true},
			scenario{name: "ingress-gh", label: "nginx + Gatehouse (auth_request)", target: ngx.proxy, auth: gh, url: ngx.ingress["gh"] + "/", hname: "Cookie", hval: cookies["gh"], upstream: true, ingress: true, peer: "ingress-o2p"},
		)
	}
	if rp != nil {
		all = append(all, scenario{name: "rp-ref", label: "httputil.ReverseProxy, cookie present (reference)", target: rp, url: rp.url + "/", hname: "Cookie", hval: cookies["gh"], upstream: true})
	}
	// Table order is allScenarios' order.
	slices.SortStableFunc(all, func(a, b scenario) int {
		return slices.Index(allScenarios, a.name) - slices.Index(allScenarios, b.name)
	})
	var scs []scenario
	for _, sc := range all {
		if o.wants(sc.name) {
			scs = append(scs, sc)
		}
	}

	m := &meter{
		wrk:      wrkRun{bin: o.wrk, script: script, threads: o.threads, conns: o.conns, duration: o.duration},
		warmup:   o.warmup,
		up:       up,
		redis:    rds,
		ticksPer: 1e6 / float64(tck),
		out:      o.out,
	}
	for _, in := range instances {
		if in.proxy != nil {
			m.others = append(m.others, in.proxy.proc)
		}
	}
	if ngx != nil {
		m.others = append(m.others, ngx.proc)
	}
	if rp != nil {
		m.others = append(m.others, rp.proc)
	}
	fmt.Fprintf(stdout, "## Gatehouse vs oauth2-proxy v7.15.6 — %d rounds × %v per scenario (warm-up %v), wrk -t%d -c%d\n\n",
		o.rounds, o.duration, o.warmup, o.threads, o.conns)
	if o.revision != "" {
		fmt.Fprintf(stdout, "Gatehouse built from %s. ", o.revision)
	}
	fmt.Fprintf(stdout, "Machine: %s. Load average before: %s.\n", machine(), loadavg())
	results := struct {
		Rounds     [][]sample          `json:"rounds"`
		Medians    map[string]sample   `json:"medians"`
		PeakRSSMB  map[string]float64  `json:"peak_rss_mb"`
		Revocation []revocation        `json:"revocation,omitempty"`
		EqualLoad  []sample            `json:"equal_load,omitempty"`
		RedisKeys  map[string]keyUsage `json:"redis_keys,omitempty"`
		RedisScale *redisScale         `json:"redis_scale,omitempty"`
		Conns      *connsResult        `json:"connections,omitempty"`
		Slow       *slowResult         `json:"slow_clients,omitempty"`
		Problems   []string            `json:"problems,omitempty"`
	}{PeakRSSMB: map[string]float64{}}

	var rounds []map[string]sample
	for r := range o.rounds {
		round := map[string]sample{}
		var list []sample
		for _, sc := range roundOrder(scs, r) {
			for _, px := range []*proxy{sc.target, sc.auth} {
				if px != nil && !px.alive() {
					return px.exitError()
				}
			}
			logf("round %d/%d: %s", r+1, o.rounds, sc.name)
			s, err := m.measure(ctx, sc, r+1)
			if err != nil {
				return err
			}
			if !s.ok() {
				results.Problems = append(results.Problems, fmt.Sprintf("round %d %s: %s", r+1, sc.name, s.Problem))
			}
			round[sc.name] = s
			list = append(list, s)
		}
		rounds = append(rounds, round)
		results.Rounds = append(results.Rounds, list)
		printRound(stdout, scs, round, r+1)
	}
	sum := summarize(scs, rounds)
	results.Medians = sum.med
	printMedians(stdout, scs, sum, o.rounds)
	fmt.Fprintf(stdout, "\nPeak RSS (VmHWM since start):")
	for _, in := range instances {
		if in.proxy == nil || in.name == "gatehouse-conns" || in.name == "gatehouse-slow" {
			continue // not loaded yet
		}
		_, hwm, err := memKB(in.proxy.pid())
		if err != nil {
			return err
		}
		results.PeakRSSMB[in.name] = float64(hwm) / 1024
		fmt.Fprintf(stdout, " %s %.1f MB;", in.name, float64(hwm)/1024)
	}
	fmt.Fprintln(stdout)

	if o.equalLoad {
		eq, err := equalLoad(ctx, stdout, m, scs, sum)
		if err != nil {
			return err
		}
		results.EqualLoad = eq
		for _, s := range eq {
			if !s.ok() {
				results.Problems = append(results.Problems, fmt.Sprintf("equal load %s: %s", s.Scenario, s.Problem))
			}
		}
	}
	printTargets(stdout, targets(sum, results.PeakRSSMB["gatehouse"], results.PeakRSSMB["oauth2-proxy"], results.EqualLoad))

	if o.idleConns > 0 {
		logf("%d idle keep-alive connections", o.idleConns)
		c, err := measureConns(ctx, m, instances[4].proxy, cookies["gh"], o.idleConns, o.goBin, o.gatehousePprof)
		if err != nil {
			return err
		}
		results.Conns = c
		printConns(stdout, c, "120 s by default")
		for _, s := range []sample{c.Alone, c.WithIdle} {
			if !s.ok() {
				results.Problems = append(results.Problems, fmt.Sprintf("idle connections, wrk on the active ones: %s", s.Problem))
			}
		}
	}
	if o.slowClients > 0 {
		logf("%d slow clients", o.slowClients)
		sl, err := measureSlow(ctx, m, instances[5].proxy, cookies["gh"], o.slowClients, o.goBin, o.gatehousePprof)
		if err != nil {
			return err
		}
		results.Slow = sl
		printSlow(stdout, sl)
		for _, s := range []sample{sl.Base, sl.WithSlow} {
			if !s.ok() {
				results.Problems = append(results.Problems, fmt.Sprintf("slow clients, wrk's run: %s", s.Problem))
			}
		}
	}
	printTargets12(stdout, targets12(sum, results.Conns, results.Slow))

	if o.revokeTrials > 0 {
		b := instances[2].proxy
		fmt.Fprintf(stdout, "\n### Revocation across replicas\n\n"+
			"A session signed in on %s is used on %s (same Redis, same cookie secrets), one request at a time, "+
			"while it is signed out on %s.\n\n| trial | sign-out ms | B accepted after sign-out returned | last accepted at ms | first refused at ms | B requests |\n|--:|--:|--:|--:|--:|--:|\n",
			gh.name, b.name, gh.name)
		worst := 0.0
		for i := range o.revokeTrials {
			rv, err := measureRevocation(ctx, gh, b, idp.URL)
			if err != nil {
				return err
			}
			results.Revocation = append(results.Revocation, rv)
			worst = max(worst, rv.FirstRefusedMS)
			fmt.Fprintf(stdout, "| %d | %.2f | %d | %.2f | %.2f | %d |\n", i+1, rv.SignOutMS, rv.Accepted, rv.LastAcceptedMS, rv.FirstRefusedMS, rv.Requests)
		}
		fmt.Fprintf(stdout, "\nB kept accepting a signed-out session for at most %.2f ms after the sign-out returned.\n", worst)
	}

	if results.RedisKeys, err = realKeyUsage(ctx, rds.addr); err != nil {
		return err
	}
	var rs redisScale
	if o.sessions > 0 {
		scaleRedis, err := startRedis(o.redisServer, "redis-scale", o.out)
		if err != nil {
			return err
		}
		procs = append(procs, scaleRedis.proc)
		logf("writing %d sessions to a fresh Redis", o.sessions)
		now := time.Now()
		tmpl := &sessionstore.Session{
			Subject: alice.ID, Email: alice.Email, EmailVerified: true, Name: alice.Name, PreferredUsername: alice.PreferredUsername,
			Groups: alice.Groups, IDToken: fmt.Sprint(tok.Extra("id_token")), AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken,
			TokenExpiry: tok.Expiry, AuthTime: now, CreatedAt: now, LastSeen: now, ExpiresAt: now.Add(12 * time.Hour), Version: 1,
		}
		if rs, err = measureRedisScale(ctx, scaleRedis.addr, o.sessions, tmpl); err != nil {
			return err
		}
		results.RedisScale = &rs
		scaleRedis.stop()
	}
	printScale(stdout, results.RedisKeys, rs)

	if gh.pprof != "" {
		for _, sc := range scs {
			if sc.target == gh {
				if err := profileScenario(ctx, stdout, m, sc, o.goBin, o.gatehousePprof); err != nil {
					return err
				}
			}
		}
		if err := profileAllocs(ctx, stdout, gh, o.out, o.goBin, o.gatehousePprof); err != nil {
			return err
		}
	}

	b, err := json.MarshalIndent(results, "", "  ")
	if err != nil {
		return fmt.Errorf("loadbench: %w", err)
	}
	if err := os.WriteFile(filepath.Join(o.out, "results.json"), b, 0o600); err != nil {
		return fmt.Errorf("loadbench: %w", err)
	}
	fmt.Fprintf(stdout, "\nLoad average after: %s. Logs, wrk output and results.json are in %s.\n", loadavg(), o.out)
	if len(results.Problems) > 0 {
		return fmt.Errorf("loadbench: %d runs failed their checks:\n  %s", len(results.Problems), strings.Join(results.Problems, "\n  "))
	}
	return nil
}

// machine describes the CPU the figures were measured on.
func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	return fmt.Sprintf("%d CPUs, %s, %s", runtime.NumCPU(), model, runtime.Version())
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
