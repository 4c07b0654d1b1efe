package main

// The capacity mode (-capacity; BENCH_SCALE=1 bench/run.sh; issue 9 part
// 6) measures what an operator sizes Redis and the replicas from, with
// Gatehouse as it runs (the built binary, a real login flow, real
// provider tokens):
//
//   - Redis memory per session with BENCH_SESSIONS sessions, each written as
//     a login writes it (the session, its revocation indexes, the operator's
//     metadata and its sid and email indexes, one Touch), and MEMORY USAGE
//     of each kind of key;
//   - Redis commands per login, per request (session cache on and off) and
//     per background refresh, counted with MONITOR (which tells the commands
//     a client sent from those a Lua script ran);
//   - revoking a user with 10 000 sessions: `gatehouse sessions revoke`,
//     and sign-out everywhere, with wall time and Redis time (INFO
//     commandstats usec: revocation runs no script, so nothing is counted
//     twice) among the BENCH_SESSIONS others;
//   - two Gatehouse replicas on a three-master Redis Cluster against the
//     same two on one standalone Redis: throughput and p99 with two wrk
//     processes at once, session cache on and off, medians over -rounds
//     rounds in alternating order.
//
// It needs neither oauth2-proxy nor nginx. No figure is asserted.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gatehouse/gatehouse/devidp"
	"github.com/gatehouse/gatehouse/sessionstore"
)

const (
	// heavySessions is how many sessions the revoked user holds.
	heavySessions = 10000
	// countLogins, countRequests and countRefreshes are the units each
	// MONITOR window counts over.
	countLogins    = 10
	countRequests  = 1000
	countRefreshes = 10
	// shortTokenLifetime makes the refresh instance's sessions due for a
	// refresh (one minute before expiry) seconds after their login.
	shortTokenLifetime = 70 * time.Second
	browserUA          = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
)

// heavy is the user whose 10 000 sessions are revoked.
var heavy = devidp.User{ID: "u-heavy", Username: "heavy", Password: "heavy-pw", Email: "heavy@example.com",
	EmailVerified: true, Name: "Heavy User", PreferredUsername: "heavy", Groups: []string{"developers"}}

// capacityResults is everything the capacity mode measured (capacity.json).
type capacityResults struct {
	Machine     string          `json:"machine"`
	LoadBefore  string          `json:"load_before"`
	LoadAfter   string          `json:"load_after"`
	Memory      memoryFigures   `json:"memory"`
	Ops         []opCount       `json:"ops"`
	Revocations []revokeFigures `json:"revocations"`
	Topologies  []topoRun       `json:"topologies"`
}

type memoryFigures struct {
	Sessions        int     `json:"sessions"`
	TokenBytes      int     `json:"session_tokens_bytes"`
	BytesPerSession float64 `json:"used_memory_bytes_per_session"`
	RSSPerSession   float64 `json:"used_memory_rss_bytes_per_session"`
	FillSeconds     float64 `json:"fill_seconds"`
	// KeyBytes is the mean MEMORY USAGE of sampled keys, by kind.
	KeyBytes map[string]float64 `json:"memory_usage_bytes_by_kind"`
}

// opCount is the Redis commands one kind of unit (a login, a request, a
// refresh) costs, per unit: those Gatehouse sent and those its scripts ran.
type opCount struct {
	What     string             `json:"what"`
	Units    int                `json:"units"`
	Sent     map[string]float64 `json:"sent_per_unit"`
	InScript map[string]float64 `json:"in_scripts_per_unit"`
}

func (o opCount) sentTotal() float64     { return sumValues(o.Sent) }
func (o opCount) inScriptTotal() float64 { return sumValues(o.InScript) }

type revokeFigures struct {
	How      string  `json:"how"`
	Sessions int     `json:"sessions_ended"`
	WallMS   float64 `json:"wall_ms"`
	// RedisMS is the commands' own time (INFO commandstats usec);
	// RedisCPUMS the redis-server process's CPU time (network included).
	RedisMS    float64          `json:"redis_commandstats_ms"`
	RedisCPUMS float64          `json:"redis_cpu_ms"`
	Commands   map[string]int64 `json:"commands"`
}

type topoRun struct {
	Topology  string  `json:"topology"`
	Cache     string  `json:"session_cache"`
	ReqPerSec float64 `json:"req_per_s"`
	// P50ms and P99ms are the worse of the two wrk runs (one per replica).
	P50ms           float64 `json:"p50_ms"`
	P99ms           float64 `json:"p99_ms"`
	RedisUSPerReq   float64 `json:"redis_cpu_us_per_req"`
	GatehouseUSPReq float64 `json:"gatehouse_cpu_us_per_req"`
	// OtherCPUpct is the CPU processes other than the benchmark's used
	// meanwhile, in % of one core: the shared machine's other work.
	OtherCPUpct float64 `json:"other_cpu_pct"`
	// Rounds is how many runs a median row summarizes.
	Rounds  int    `json:"rounds,omitempty"`
	Problem string `json:"problem,omitempty"`
}

// capInstance is one Gatehouse of the capacity mode.
type capInstance struct {
	name     string
	port     int
	metrics  string // host:port of its metrics listener
	cfgPath  string
	clientID string
	secret   string
	px       *proxy
}

// capEnv is what every phase shares.
type capEnv struct {
	o         options
	logf      func(string, ...any)
	up        *upstream
	keyFile   string
	cookieKey string
	idp       *devidp.Server // tokens live 6 hours: no refresh while measured
	shortIdP  *devidp.Server // tokens live shortTokenLifetime: refreshes come due
	inst      map[string]*capInstance
	procs     []*proc
	tck       int64
}

func (e *capEnv) stopAll() {
	for _, p := range slices.Backward(e.procs) {
		p.stop()
	}
}

// runCapacity is the capacity mode: every process it starts is stopped when it returns.
func runCapacity(ctx context.Context, o options, stdout io.Writer) error {
	if err := os.MkdirAll(o.out, 0o700); err != nil {
		return fmt.Errorf("loadbench: %w", err)
	}
	if err := os.WriteFile(filepath.Join(o.out, "count.lua"), countLua, 0o600); err != nil {
		return fmt.Errorf("loadbench: %w", err)
	}
	tck, err := clockTicks()
	if err != nil {
		return err
	}
	e := &capEnv{o: o, tck: tck, inst: map[string]*capInstance{},
		logf: func(format string, a ...any) { fmt.Fprintf(os.Stderr, "loadbench: "+format+"\n", a...) }}
	defer e.stopAll()
	res := capacityResults{Machine: machine(), LoadBefore: loadavg()}

	if e.up, err = startUpstream(); err != nil {
		return err
	}
	defer e.up.close()
	e.keyFile = filepath.Join(o.out, "signing-key.pem")
	if err := generateKey(ctx, o.gatehouse, e.keyFile); err != nil {
		return err
	}
	e.cookieKey = randomSecret(32)

	// Ports first: each instance's redirect URI is registered at its provider.
	var clients, shortClients []devidp.Client
	names := []string{"ops", "nocache", "refresh"}
	for i := range 4 { // topology × session cache
		names = append(names, fmt.Sprintf("topo-%d-0", i), fmt.Sprintf("topo-%d-1", i))
	}
	for _, name := range names {
		in := &capInstance{name: name, clientID: "gh-" + name, secret: randomSecret(24)}
		if in.port, err = freePort(); err != nil {
			return err
		}
		c := devidp.Client{ID: in.clientID, Secret: in.secret,
			RedirectURIs: []string{fmt.Sprintf("http://127.0.0.1:%d/oauth2/callback", in.port)}}
		if name == "refresh" {
			shortClients = append(shortClients, c)
		} else {
			clients = append(clients, c)
		}
		e.inst[name] = in
	}
	clients = append(clients, devidp.Client{ID: nativeClientID, RedirectURIs: []string{nativeRedirect}})
	users := []devidp.User{alice, heavy}
	if e.idp, err = devidp.Start(devidp.Config{Users: users, Clients: clients,
		AccessTokenLifetime: 6 * time.Hour, IDTokenLifetime: 6 * time.Hour}); err != nil {
		return fmt.Errorf("loadbench: starting the OpenID provider: %w", err)
	}
	defer e.idp.Close()
	if e.shortIdP, err = devidp.Start(devidp.Config{Users: users, Clients: shortClients,
		AccessTokenLifetime: shortTokenLifetime, IDTokenLifetime: shortTokenLifetime}); err != nil {
		return fmt.Errorf("loadbench: starting the short-lived OpenID provider: %w", err)
	}
	defer e.shortIdP.Close()

	fmt.Fprintf(stdout, "## Capacity (BENCH_SCALE=1): %d sessions in Redis\n\n", o.sessions)
	if o.revision != "" {
		fmt.Fprintf(stdout, "Gatehouse built from %s. ", o.revision)
	}
	fmt.Fprintf(stdout, "Machine: %s. Load average before: %s.\n", res.Machine, res.LoadBefore)

	if err := e.sizeAndOps(ctx, stdout, &res); err != nil {
		return err
	}
	if err := e.topologies(ctx, stdout, &res); err != nil {
		return err
	}
	res.LoadAfter = loadavg()
	printCapacityModel(stdout, res)
	fmt.Fprintf(stdout, "\nLoad average after: %s.\n", res.LoadAfter)
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return fmt.Errorf("loadbench: %w", err)
	}
	return os.WriteFile(filepath.Join(o.out, "capacity.json"), b, 0o600)
}

// sizeAndOps fills a standalone Redis with o.sessions sessions and
// measures memory, the commands of each operation, and the 10k-session
// revocations against it.
func (e *capEnv) sizeAndOps(ctx context.Context, w io.Writer, res *capacityResults) error {
	rds, err := startRedis(e.o.redisServer, "redis-capacity", e.o.out)
	if err != nil {
		return err
	}
	e.procs = append(e.procs, rds.proc)
	defer rds.stop()
	raw := redis.NewClient(&redis.Options{Addr: rds.addr, DialTimeout: 3 * time.Second, ReadTimeout: 30 * time.Second})
	defer raw.Close()

	tok, err := nativeLogin(ctx, e.idp.URL, nativeClientID, alice.Username, alice.Password)
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &sessionstore.Session{
		EmailVerified: true, Name: alice.Name, PreferredUsername: alice.PreferredUsername, Groups: alice.Groups,
		IDToken: fmt.Sprint(tok.Extra("id_token")), AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken,
		TokenExpiry: tok.Expiry, AuthTime: now, CreatedAt: now, LastSeen: now, ExpiresAt: now.Add(12 * time.Hour), Version: 1,
	}
	store, err := sessionstore.NewRedis(sessionstore.RedisConfig{Addrs: []string{rds.addr}, OpTimeout: 10 * time.Second, PoolSize: 32})
	if err != nil {
		return fmt.Errorf("loadbench: %w", err)
	}
	defer store.Close()
	keys, err := sessionstore.NewMetaKeys([][]byte{[]byte(e.cookieKey)})
	if err != nil {
		return fmt.Errorf("loadbench: %w", err)
	}

	// Memory: every session its own user, with a provider sid: each has all
	// four of its indexes to itself, the most Redis memory a session takes.
	m := memoryFigures{Sessions: e.o.sessions, TokenBytes: len(tmpl.IDToken) + len(tmpl.AccessToken) + len(tmpl.RefreshToken)}
	before, err := memoryInfo(ctx, raw)
	if err != nil {
		return err
	}
	e.logf("writing %d sessions as logins write them", e.o.sessions)
	start := time.Now()
	if err := fillLogins(ctx, store, keys, tmpl, e.o.sessions, func(i int) (string, string) {
		return fmt.Sprintf("u-%08d", i), fmt.Sprintf("user-%08d@example.com", i)
	}); err != nil {
		return err
	}
	m.FillSeconds = time.Since(start).Seconds()
	after, err := memoryInfo(ctx, raw)
	if err != nil {
		return err
	}
	if e.o.sessions > 0 {
		m.BytesPerSession = float64(after["used_memory"]-before["used_memory"]) / float64(e.o.sessions)
		m.RSSPerSession = float64(after["used_memory_rss"]-before["used_memory_rss"]) / float64(e.o.sessions)
	}
	if m.KeyBytes, err = keyBytesByKind(ctx, raw); err != nil {
		return err
	}
	res.Memory = m
	printMemory(w, m)

	// Gatehouse on that Redis: the default session cache, and none.
	ops, err := e.startInstance(e.inst["ops"], e.idp.URL, "standalone", []string{rds.addr}, "5s")
	if err != nil {
		return err
	}
	nocache, err := e.startInstance(e.inst["nocache"], e.idp.URL, "standalone", []string{rds.addr}, "0s")
	if err != nil {
		return err
	}
	opsCookie, err := login(ctx, ops.px, e.idp.URL, alice.Username, alice.Password)
	if err != nil {
		return err
	}
	nocacheCookie, err := login(ctx, nocache.px, e.idp.URL, alice.Username, alice.Password)
	if err != nil {
		return err
	}

	count := func(what string, units int, fn func() error) error {
		sent, inScript, err := monitorCommands(ctx, rds.addr, fn)
		if err != nil {
			return fmt.Errorf("loadbench: counting %s: %w", what, err)
		}
		oc := opCount{What: what, Units: units, Sent: perUnit(sent, units), InScript: perUnit(inScript, units)}
		res.Ops = append(res.Ops, oc)
		return nil
	}
	e.logf("counting Redis commands per login, request and refresh")
	if err := count("login (the whole flow, and the first proxied request)", countLogins, func() error {
		for range countLogins {
			if _, err := login(ctx, ops.px, e.idp.URL, alice.Username, alice.Password); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}
	if err := count("request, session.cache_ttl 0 (no cache)", countRequests, func() error {
		return requests(ctx, nocache.px.url+"/", nocache.px.cookie+"="+nocacheCookie, countRequests)
	}); err != nil {
		return err
	}
	if err := count("request, session.cache_ttl 5s (default), one busy session", countRequests, func() error {
		return requests(ctx, ops.px.url+"/", ops.px.cookie+"="+opsCookie, countRequests)
	}); err != nil {
		return err
	}
	if err := e.countRefreshes(ctx, rds.addr, res); err != nil {
		return err
	}
	printOps(w, res.Ops)

	// Revocation of a user with 10 000 sessions, among all the others.
	if err := e.revocations(ctx, w, rds, raw, store, keys, tmpl, ops, res); err != nil {
		return err
	}
	ops.px.stop()
	nocache.px.stop()
	return nil
}

// countRefreshes signs in countRefreshes browsers on an instance whose
// provider's tokens come due a few seconds later, then sends one request
// per session, each of which starts a background refresh, and counts the
// commands until every refresh has succeeded.
func (e *capEnv) countRefreshes(ctx context.Context, addr string, res *capacityResults) error {
	in, err := e.startInstance(e.inst["refresh"], e.shortIdP.URL, "standalone", []string{addr}, "5s")
	if err != nil {
		return err
	}
	defer in.px.stop()
	var cookies []string
	for range countRefreshes {
		c, err := login(ctx, in.px, e.shortIdP.URL, alice.Username, alice.Password)
		if err != nil {
			return err
		}
		cookies = append(cookies, in.px.cookie+"="+c)
	}
	// Due one minute before the provider's tokens expire (proxy's
	// refreshMargin); the cached copies (5s) are gone by then too.
	due := shortTokenLifetime - time.Minute + 2*time.Second
	e.logf("waiting %v for the sessions' refreshes to come due", due)
	select {
	case <-time.After(due):
	case <-ctx.Done():
		return ctx.Err()
	}
	base, err := metricValue(ctx, in.metrics, `gatehouse_session_refreshes_total{outcome="success"}`)
	if err != nil {
		return err
	}
	sent, inScript, err := monitorCommands(ctx, addr, func() error {
		for _, c := range cookies {
			if err := requests(ctx, in.px.url+"/", c, 1); err != nil {
				return err
			}
		}
		deadline := time.Now().Add(60 * time.Second)
		for {
			v, err := metricValue(ctx, in.metrics, `gatehouse_session_refreshes_total{outcome="success"}`)
			if err != nil {
				return err
			}
			if v-base >= countRefreshes {
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("loadbench: %v of %d refreshes succeeded within 60s", v-base, countRefreshes)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	if err != nil {
		return fmt.Errorf("loadbench: counting refreshes: %w", err)
	}
	res.Ops = append(res.Ops, opCount{What: "refresh (background, with the request that started it)", Units: countRefreshes,
		Sent: perUnit(sent, countRefreshes), InScript: perUnit(inScript, countRefreshes)})
	return nil
}

// revocations ends the 10 000 sessions of one user twice: with `gatehouse
// sessions revoke` and with sign-out everywhere from one of its browsers.
func (e *capEnv) revocations(ctx context.Context, w io.Writer, rds *redisServer, raw *redis.Client, store *sessionstore.Redis,
	keys *sessionstore.MetaKeys, tmpl *sessionstore.Session, ops *capInstance, res *capacityResults) error {
	fillHeavy := func() error {
		e.logf("writing %d sessions of one user", heavySessions)
		return fillLogins(ctx, store, keys, tmpl, heavySessions, func(int) (string, string) { return heavy.ID, heavy.Email })
	}
	measure := func(how string, fn func() (int, error)) error {
		stats0, err := commandStats(ctx, raw)
		if err != nil {
			return err
		}
		cpu0, err := cpuTicks(rds.pid())
		if err != nil {
			return err
		}
		start := time.Now()
		n, err := fn()
		wall := time.Since(start)
		if err != nil {
			return err
		}
		cpu1, err := cpuTicks(rds.pid())
		if err != nil {
			return err
		}
		stats1, err := commandStats(ctx, raw)
		if err != nil {
			return err
		}
		d := stats1.sub(stats0)
		delete(d, "info")
		rf := revokeFigures{How: how, Sessions: n, WallMS: float64(wall.Microseconds()) / 1000,
			RedisMS: float64(d.usec()) / 1000, RedisCPUMS: float64(cpu1-cpu0) * 1000 / float64(e.tck), Commands: d.calls()}
		res.Revocations = append(res.Revocations, rf)
		return nil
	}

	if err := fillHeavy(); err != nil {
		return err
	}
	if err := measure("gatehouse sessions list --sub (10 000 rows, --json)", func() (int, error) {
		out, err := e.cli(ctx, ops.cfgPath, "sessions", "list", "--json", "--sub", heavy.ID)
		if err != nil {
			return 0, err
		}
		var rows []json.RawMessage
		if err := json.Unmarshal([]byte(out), &rows); err != nil {
			return 0, fmt.Errorf("loadbench: sessions list --json: %w", err)
		}
		return len(rows), nil
	}); err != nil {
		return err
	}
	if err := measure("gatehouse sessions revoke --sub (process start included)", func() (int, error) {
		out, err := e.cli(ctx, ops.cfgPath, "sessions", "revoke", "--sub", heavy.ID, "--reason", "capacity benchmark")
		if err != nil {
			return 0, err
		}
		var n int
		if _, err := fmt.Sscanf(out, "ended %d session(s)", &n); err != nil {
			return 0, fmt.Errorf("loadbench: sessions revoke printed %q", out)
		}
		return n, nil
	}); err != nil {
		return err
	}

	if err := fillHeavy(); err != nil {
		return err
	}
	cookie, err := login(ctx, ops.px, e.idp.URL, heavy.Username, heavy.Password)
	if err != nil {
		return err
	}
	if err := measure("POST /oauth2/sign_out_everywhere (one HTTP request)", func() (int, error) {
		return signOutEverywhere(ctx, ops.px, cookie)
	}); err != nil {
		return err
	}
	printRevocations(w, res.Revocations)
	return nil
}

// cli runs the Gatehouse binary's command line and returns its standard output.
func (e *capEnv) cli(ctx context.Context, cfgPath string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.o.gatehouse, append(args, "--config", cfgPath)...)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("loadbench: gatehouse %s: %w: %s", strings.Join(args[:2], " "), err, errOut.String())
	}
	return out.String(), nil
}

func signOutEverywhere(ctx context.Context, px *proxy, cookie string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, px.url+"/oauth2/sign_out_everywhere", nil)
	if err != nil {
		return 0, fmt.Errorf("loadbench: %w", err)
	}
	req.Header.Set("Cookie", px.cookie+"="+cookie)
	req.Header.Set("Origin", px.url)
	req.Header.Set("Accept", "application/json")
	resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
	if err != nil {
		return 0, fmt.Errorf("loadbench: sign-out everywhere: %w", err)
	}
	defer resp.Body.Close()
	var body struct {
		Sessions int `json:"sessions"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4096)).Decode(&body); err != nil || resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("loadbench: sign-out everywhere answered %d: %v", resp.StatusCode, err)
	}
	return body.Sessions, nil
}

// topoConfig is one Redis topology with one session cache setting, served
// by two replicas.
type topoConfig struct {
	topology, mode, cache string
	addrs                 []string
	servers               []*redisServer
	reps                  [2]*capInstance
	cookies               [2]string
	samples               []topoRun
}

func (c *topoConfig) label() string { return c.topology + ", session.cache_ttl " + c.cache }

// topologies compares two replicas on one standalone Redis with two on a
// three-master Cluster, each with the session cache on and off. Every
// configuration runs all along; the rounds alternate their order as the
// main benchmark's do, and each figure is the median over the rounds.
func (e *capEnv) topologies(ctx context.Context, w io.Writer, res *capacityResults) error {
	sa, err := startRedis(e.o.redisServer, "redis-standalone", e.o.out)
	if err != nil {
		return err
	}
	e.procs = append(e.procs, sa.proc)
	cluster, err := startCluster(ctx, e.o.redisServer, e.o.out)
	if err != nil {
		return err
	}
	var clusterAddrs []string
	for _, n := range cluster {
		e.procs = append(e.procs, n.proc)
		clusterAddrs = append(clusterAddrs, n.addr)
	}
	var configs []*topoConfig
	for _, cache := range []string{"5s", "0s"} {
		configs = append(configs,
			&topoConfig{topology: "one standalone Redis", mode: "standalone", cache: cache, addrs: []string{sa.addr}, servers: []*redisServer{sa}},
			&topoConfig{topology: "three-master Cluster", mode: "cluster", cache: cache, addrs: clusterAddrs, servers: cluster})
	}
	var all []*capInstance
	for i, c := range configs {
		for r := range 2 {
			in, err := e.startInstance(e.inst[fmt.Sprintf("topo-%d-%d", i, r)], e.idp.URL, c.mode, c.addrs, c.cache)
			if err != nil {
				return err
			}
			defer in.px.stop()
			ck, err := login(ctx, in.px, e.idp.URL, alice.Username, alice.Password)
			if err != nil {
				return err
			}
			c.reps[r], c.cookies[r] = in, in.px.cookie+"="+ck
			all = append(all, in)
		}
	}
	for round := range e.o.rounds {
		order := slices.Clone(configs)
		k := round % len(order)
		order = append(order[k:], order[:k]...)
		if round%2 == 1 {
			slices.Reverse(order)
		}
		for _, c := range order {
			e.logf("round %d/%d: two replicas on %s", round+1, e.o.rounds, c.label())
			run, err := e.twoReplicas(ctx, c, all, sa, cluster)
			if err != nil {
				return err
			}
			c.samples = append(c.samples, run)
		}
	}
	for _, c := range configs {
		res.Topologies = append(res.Topologies, medianRun(c))
	}
	printTopologies(w, res.Topologies, e.o)
	return nil
}

// medianRun is the median of each figure over c's rounds that passed.
func medianRun(c *topoConfig) topoRun {
	out := topoRun{Topology: c.topology, Cache: c.cache, Rounds: len(c.samples)}
	var rps, p50, p99, redisUS, ghUS, other []float64
	for _, s := range c.samples {
		if s.Problem != "" {
			out.Problem = strings.TrimPrefix(out.Problem+"; "+s.Problem, "; ")
			continue
		}
		rps, p50, p99 = append(rps, s.ReqPerSec), append(p50, s.P50ms), append(p99, s.P99ms)
		redisUS, ghUS, other = append(redisUS, s.RedisUSPerReq), append(ghUS, s.GatehouseUSPReq), append(other, s.OtherCPUpct)
	}
	med := func(xs []float64) float64 { // 0 when no round passed: JSON has no NaN
		if len(xs) == 0 {
			return 0
		}
		return median(xs)
	}
	out.ReqPerSec, out.P50ms, out.P99ms = med(rps), med(p50), med(p99)
	out.RedisUSPerReq, out.GatehouseUSPReq, out.OtherCPUpct = med(redisUS), med(ghUS), med(other)
	return out
}

// twoReplicas loads both replicas of c at once, one wrk each, and measures
// the throughput, the worse replica's latencies, the CPU per request of
// Gatehouse and Redis, and the CPU other processes took meanwhile.
func (e *capEnv) twoReplicas(ctx context.Context, c *topoConfig, all []*capInstance, sa *redisServer, cluster []*redisServer) (topoRun, error) {
	run := topoRun{Topology: c.topology, Cache: c.cache}
	script := filepath.Join(e.o.out, "count.lua")
	conns := max(1, e.o.conns/2)
	both := func(d time.Duration, tag string) ([2]wrkResult, error) {
		var out [2]wrkResult
		var errs [2]error
		var wg sync.WaitGroup
		for i := range 2 {
			wg.Go(func() {
				r := wrkRun{bin: e.o.wrk, script: script, threads: 1, conns: conns, duration: d,
					url: c.reps[i].px.url + "/", headerName: "Cookie", headerV: c.cookies[i]}
				out[i], errs[i] = r.run(ctx, filepath.Join(e.o.out, fmt.Sprintf("wrk-capacity-%s-%s.log", c.reps[i].name, tag)))
			})
		}
		wg.Wait()
		return out, errors.Join(errs[0], errs[1])
	}
	if e.o.warmup > 0 {
		if _, err := both(e.o.warmup, "warmup"); err != nil {
			return run, err
		}
	}
	var ourPIDs, redisPIDs, ghPIDs []int
	for _, in := range all {
		ourPIDs = append(ourPIDs, in.px.pid())
	}
	for _, s := range append([]*redisServer{sa}, cluster...) {
		ourPIDs = append(ourPIDs, s.pid())
	}
	for _, s := range c.servers {
		redisPIDs = append(redisPIDs, s.pid())
	}
	ghPIDs = []int{c.reps[0].px.pid(), c.reps[1].px.pid()}
	ourPIDs = append(ourPIDs, os.Getpid())
	snap := func() (redisT, ghT, ourT, busy, total int64, err error) {
		if redisT, err = sumTicks(redisPIDs); err != nil {
			return
		}
		if ghT, err = sumTicks(ghPIDs); err != nil {
			return
		}
		if ourT, err = sumTicks(ourPIDs); err != nil {
			return
		}
		busy, total, err = machineTicks()
		return
	}
	r0, g0, o0, b0, t0, err := snap()
	if err != nil {
		return run, err
	}
	r, err := both(e.o.duration, "measured")
	if err != nil {
		return run, err
	}
	r1, g1, o1, b1, t1, err := snap()
	if err != nil {
		return run, err
	}
	usPerTick := 1e6 / float64(e.tck)
	reqs := r[0].Requests + r[1].Requests
	run.ReqPerSec = r[0].reqPerSec() + r[1].reqPerSec()
	run.P50ms = max(r[0].P50, r[1].P50).Seconds() * 1000
	run.P99ms = max(r[0].P99, r[1].P99).Seconds() * 1000
	if reqs > 0 {
		run.RedisUSPerReq = float64(r1-r0) * usPerTick / float64(reqs)
		run.GatehouseUSPReq = float64(g1-g0) * usPerTick / float64(reqs)
	}
	ours := float64(o1-o0)*usPerTick + float64((r[0].CPU+r[1].CPU)/time.Microsecond)
	if elapsed := float64(t1-t0) / float64(runtime.NumCPU()) * usPerTick; elapsed > 0 {
		run.OtherCPUpct = max(0, 100*(float64(b1-b0)*usPerTick-ours)/elapsed)
	}
	if bad := r[0].Non2xx + r[1].Non2xx + r[0].SockErrors + r[1].SockErrors; bad > 0 {
		run.Problem = fmt.Sprintf("%d non-2xx responses or socket errors", bad)
	}
	return run, nil
}

// startInstance writes in's configuration (Redis in mode at addrs,
// session.cache_ttl cache, provider issuer) and runs it until /readyz.
func (e *capEnv) startInstance(in *capInstance, issuer, mode string, addrs []string, cache string) (*capInstance, error) {
	mport, err := freePort()
	if err != nil {
		return nil, err
	}
	in.metrics = fmt.Sprintf("127.0.0.1:%d", mport)
	quoted := make([]string, len(addrs))
	for i, a := range addrs {
		quoted[i] = strconv.Quote(a)
	}
	yaml := fmt.Sprintf(`listen: 127.0.0.1:%d
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
  cache_ttl: %s
redis:
  mode: %s
  addrs: [%s]
token:
  signing_key_files: [%q]
log:
  format: text
  level: warn
  access_log: false
upstream: %s
`, in.port, in.metrics, in.port, issuer, in.clientID, in.secret, e.cookieKey, cache, mode, strings.Join(quoted, ", "), e.keyFile, e.up.url)
	in.cfgPath = filepath.Join(e.o.out, "capacity-"+in.name+".yaml")
	if err := os.WriteFile(in.cfgPath, []byte(yaml), 0o600); err != nil {
		return nil, fmt.Errorf("loadbench: %w", err)
	}
	p, err := startProc("gatehouse-"+in.name, filepath.Join(e.o.out, "capacity-"+in.name+".log"), e.o.gatehouse, []string{"serve", "--config", in.cfgPath}, nil)
	if err != nil {
		return nil, err
	}
	e.procs = append(e.procs, p)
	in.px = &proxy{proc: p, kind: "gatehouse", url: fmt.Sprintf("http://127.0.0.1:%d", in.port), cookie: "gatehouse",
		clientID: in.clientID, secret: in.secret}
	if err := waitHTTP(p, "http://"+in.metrics+"/readyz", http.StatusOK); err != nil {
		p.stop()
		return nil, err
	}
	return in, nil
}

// fillLogins writes n sessions as a login writes them: the session and its
// indexes (Save), the operator's metadata and its indexes (SaveMeta), and a
// Touch, as the first requests after a login make. who names the user of
// the i-th session.
func fillLogins(ctx context.Context, store *sessionstore.Redis, keys *sessionstore.MetaKeys, tmpl *sessionstore.Session, n int,
	who func(i int) (sub, email string)) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	addr := netip.MustParseAddr("203.0.113.77")
	for range 16 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := fillOne(ctx, store, keys, tmpl, i, addr, who); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs // nil when the channel is empty
}

func fillOne(ctx context.Context, store *sessionstore.Redis, keys *sessionstore.MetaKeys, tmpl *sessionstore.Session, i int,
	addr netip.Addr, who func(int) (string, string)) error {
	t, err := sessionstore.NewTicket()
	if err != nil {
		return fmt.Errorf("loadbench: %w", err)
	}
	s := *tmpl
	s.Subject, s.Email = who(i)
	s.ProviderSID = randomSecret(16) // most providers send one: a provider-sid index each
	if err := store.Save(ctx, t, &s); err != nil {
		return fmt.Errorf("loadbench: saving session %d: %w", i, err)
	}
	sealed, err := keys.Seal(t, sessionstore.NewMeta(t, &s, sessionstore.ClientBrowser, browserUA, addr))
	if err != nil {
		return fmt.Errorf("loadbench: %w", err)
	}
	if err := store.SaveMeta(ctx, t, sealed); err != nil {
		return fmt.Errorf("loadbench: saving the metadata of session %d: %w", i, err)
	}
	if err := store.Touch(ctx, t, time.Now()); err != nil {
		return fmt.Errorf("loadbench: touching session %d: %w", i, err)
	}
	return nil
}

// requests sends n GET requests with the cookie header, one at a time, and
// fails on any answer but 200.
func requests(ctx context.Context, url, cookie string, n int) error {
	c := &http.Client{Timeout: 10 * time.Second}
	for range n {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return fmt.Errorf("loadbench: %w", err)
		}
		req.Header.Set("Cookie", cookie)
		resp, err := c.Do(req)
		if err != nil {
			return fmt.Errorf("loadbench: GET %s: %w", url, err)
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("loadbench: GET %s answered %d", url, resp.StatusCode)
		}
	}
	return nil
}

// metricValue reads one sample (name with its labels, as exposed) from a
// Gatehouse's /metrics.
func metricValue(ctx context.Context, metricsAddr, sample string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+metricsAddr+"/metrics", nil)
	if err != nil {
		return 0, fmt.Errorf("loadbench: %w", err)
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return 0, fmt.Errorf("loadbench: /metrics: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return 0, fmt.Errorf("loadbench: /metrics: %w", err)
	}
	return parseMetric(string(b), sample)
}

// parseMetric finds sample in a Prometheus text exposition.
func parseMetric(text, sample string) (float64, error) {
	for line := range strings.Lines(text) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), sample+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				return 0, fmt.Errorf("loadbench: metric %s: %w", sample, err)
			}
			return f, nil
		}
	}
	return 0, fmt.Errorf("loadbench: no metric %s", sample)
}

// cmdStats is INFO commandstats: calls and microseconds by command.
type cmdStats map[string][2]int64

var cmdstatLine = regexp.MustCompile(`^cmdstat_([^:]+):calls=(\d+),usec=(\d+)`)

// parseCommandStats reads INFO commandstats.
func parseCommandStats(info string) cmdStats {
	out := cmdStats{}
	for line := range strings.Lines(info) {
		m := cmdstatLine.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil {
			continue
		}
		calls, _ := strconv.ParseInt(m[2], 10, 64)
		usec, _ := strconv.ParseInt(m[3], 10, 64)
		out[m[1]] = [2]int64{calls, usec}
	}
	return out
}

// sub returns s - base, leaving out the commands that did not run.
func (s cmdStats) sub(base cmdStats) cmdStats {
	out := cmdStats{}
	for k, v := range s {
		d := [2]int64{v[0] - base[k][0], v[1] - base[k][1]}
		if d[0] > 0 {
			out[k] = d
		}
	}
	return out
}

func (s cmdStats) usec() int64 {
	var n int64
	for _, v := range s {
		n += v[1]
	}
	return n
}

func (s cmdStats) calls() map[string]int64 {
	out := map[string]int64{}
	for k, v := range s {
		out[k] = v[0]
	}
	return out
}

func commandStats(ctx context.Context, c *redis.Client) (cmdStats, error) {
	info, err := c.Info(ctx, "commandstats").Result()
	if err != nil {
		return nil, fmt.Errorf("loadbench: INFO commandstats: %w", err)
	}
	return parseCommandStats(info), nil
}

// memoryInfo returns the integer fields of INFO memory.
func memoryInfo(ctx context.Context, c *redis.Client) (map[string]int64, error) {
	info, err := c.Info(ctx, "memory").Result()
	if err != nil {
		return nil, fmt.Errorf("loadbench: INFO memory: %w", err)
	}
	out := map[string]int64{}
	for line := range strings.Lines(info) {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			out[k] = n
		}
	}
	if _, ok := out["used_memory"]; !ok {
		return nil, errors.New("loadbench: INFO memory has no used_memory")
	}
	return out, nil
}

// keyKinds are the key patterns of a session's keys (key_prefix gatehouse).
var keyKinds = []struct{ kind, pattern string }{
	{"session hash", "gatehouse:s:*"},
	{"per-user index", "gatehouse:u:*"},
	{"provider-sid index", "gatehouse:p:*"},
	{"email index", "gatehouse:e:*"},
	{"sid key", "gatehouse:i:*"},
}

// keyBytesByKind is the mean MEMORY USAGE of up to 50 keys of each kind.
func keyBytesByKind(ctx context.Context, c *redis.Client) (map[string]float64, error) {
	out := map[string]float64{}
	for _, k := range keyKinds {
		var total, n int64
		iter := c.Scan(ctx, 0, k.pattern, 1000).Iterator()
		for n < 50 && iter.Next(ctx) {
			b, err := c.MemoryUsage(ctx, iter.Val(), 0).Result()
			if err != nil {
				return nil, fmt.Errorf("loadbench: MEMORY USAGE: %w", err)
			}
			total += b
			n++
		}
		if err := iter.Err(); err != nil {
			return nil, fmt.Errorf("loadbench: SCAN: %w", err)
		}
		if n > 0 {
			out[k.kind] = float64(total) / float64(n)
		}
	}
	return out, nil
}

// monitorCommands counts the commands Redis at addr runs while fn runs,
// with MONITOR: those clients sent, and those Lua scripts ran ("[0 lua]"),
// by command. The harness's own markers and INFO are left out.
func monitorCommands(ctx context.Context, addr string, fn func() error) (sent, inScript map[string]int, err error) {
	conn, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		return nil, nil, fmt.Errorf("loadbench: MONITOR: %w", err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "MONITOR\r\n"); err != nil {
		return nil, nil, fmt.Errorf("loadbench: MONITOR: %w", err)
	}
	marker := "loadbench-marker-" + randomSecret(8)
	lines := make(chan string, 1024)
	readErr := make(chan error, 1)
	go func() {
		rd := bufio.NewReaderSize(conn, 1<<20)
		for {
			line, err := rd.ReadString('\n')
			if err != nil {
				readErr <- err
				close(lines)
				return
			}
			lines <- strings.TrimRight(line, "\r\n")
		}
	}()
	mark := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: 3 * time.Second})
	defer mark.Close()
	echo := func(tag string) error {
		return mark.Echo(ctx, marker+"-"+tag).Err()
	}
	// waitFor consumes lines until the marker tag shows, counting those before it.
	sent, inScript = map[string]int{}, map[string]int{}
	waitFor := func(tag string, counting bool) error {
		timeout := time.After(2 * time.Minute)
		for {
			select {
			case line, ok := <-lines:
				if !ok {
					return fmt.Errorf("loadbench: MONITOR connection closed: %v", <-readErr)
				}
				if strings.Contains(line, marker+"-"+tag) {
					return nil
				}
				if !counting {
					continue
				}
				if name, script, ok := parseMonitorLine(line); ok && name != "info" && name != "echo" {
					if script {
						inScript[name]++
					} else {
						sent[name]++
					}
				}
			case <-timeout:
				return fmt.Errorf("loadbench: MONITOR never showed the %s marker", tag)
			}
		}
	}
	if err := echo("start"); err != nil {
		return nil, nil, fmt.Errorf("loadbench: ECHO: %w", err)
	}
	if err := waitFor("start", false); err != nil {
		return nil, nil, err
	}
	// Lines are consumed while fn runs, so MONITOR never backs up.
	counted := make(chan error, 1)
	go func() { counted <- waitFor("end", true) }()
	fnErr := fn()
	if err := echo("end"); err != nil {
		return nil, nil, fmt.Errorf("loadbench: ECHO: %w", err)
	}
	if err := <-counted; err != nil {
		return nil, nil, err
	}
	if fnErr != nil {
		return nil, nil, fnErr
	}
	return sent, inScript, nil
}

// parseMonitorLine reads `+1700000000.123456 [0 127.0.0.1:5555] "hmget" ...`
// or `... [0 lua] "hset" ...`: the command, and whether a script ran it.
func parseMonitorLine(line string) (name string, script, ok bool) {
	open := strings.IndexByte(line, '[')
	closing := strings.Index(line, "] \"")
	if open < 0 || closing < open {
		return "", false, false
	}
	client := line[open+1 : closing]
	rest := line[closing+3:]
	end := strings.IndexByte(rest, '"')
	if end <= 0 {
		return "", false, false
	}
	return strings.ToLower(rest[:end]), strings.HasSuffix(client, " lua"), true
}

func perUnit(m map[string]int, units int) map[string]float64 {
	out := map[string]float64{}
	for k, v := range m {
		out[k] = float64(v) / float64(units)
	}
	return out
}

func sumValues(m map[string]float64) float64 {
	var t float64
	for _, v := range m {
		t += v
	}
	return t
}

// breakdown formats per-unit counts, most frequent first: "hmget 1.00, evalsha 0.10".
func breakdown(m map[string]float64) string {
	type kv struct {
		k string
		v float64
	}
	var list []kv
	for k, v := range m {
		list = append(list, kv{k, v})
	}
	slices.SortFunc(list, func(a, b kv) int {
		if a.v != b.v {
			if a.v > b.v {
				return -1
			}
			return 1
		}
		return strings.Compare(a.k, b.k)
	})
	var parts []string
	for _, e := range list {
		parts = append(parts, fmt.Sprintf("%s %s", e.k, trimFloat(e.v)))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func trimFloat(v float64) string {
	s := strconv.FormatFloat(v, 'f', 2, 64)
	return strings.TrimSuffix(strings.TrimSuffix(s, "0"), ".0")
}

// startCluster starts three cluster-enabled redis-servers and joins them
// with `redis-cli --cluster create`, as internal/testredis does.
func startCluster(ctx context.Context, bin, dir string) ([]*redisServer, error) {
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		return nil, fmt.Errorf("loadbench: redis-cli (Debian's redis-tools) is needed for the Cluster: %w", err)
	}
	var nodes []*redisServer
	stopAll := func() {
		for _, n := range nodes {
			n.stop()
		}
	}
	for i := range 3 {
		port, err := clusterPort()
		if err != nil {
			stopAll()
			return nil, err
		}
		name := fmt.Sprintf("redis-cluster-%d", i)
		ndir := filepath.Join(dir, name)
		// A reused BENCH_OUT's nodes.conf would make the node remember the old cluster.
		if err := os.RemoveAll(ndir); err != nil {
			stopAll()
			return nil, fmt.Errorf("loadbench: %w", err)
		}
		if err := os.MkdirAll(ndir, 0o700); err != nil {
			stopAll()
			return nil, fmt.Errorf("loadbench: %w", err)
		}
		n, err := startRedisArgs(bin, name, ndir, port, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf")
		if err != nil {
			stopAll()
			return nil, err
		}
		nodes = append(nodes, n)
	}
	args := []string{"--cluster", "create"}
	for _, n := range nodes {
		args = append(args, n.addr)
	}
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(cctx, cli, args...).CombinedOutput(); err != nil {
		stopAll()
		return nil, fmt.Errorf("loadbench: redis-cli --cluster create: %w: %s", err, out)
	}
	for _, n := range nodes {
		c := redis.NewClient(&redis.Options{Addr: n.addr, DialTimeout: time.Second, ReadTimeout: time.Second})
		ok := false
		for range 300 {
			info, err := c.ClusterInfo(ctx).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") {
				ok = true
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		c.Close()
		if !ok {
			stopAll()
			return nil, fmt.Errorf("loadbench: cluster node %s never reported cluster_state:ok", n.addr)
		}
	}
	return nodes, nil
}

// clusterPort is a free port whose cluster bus port (port + 10000) is free too.
func clusterPort() (int, error) {
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("loadbench: finding a free port: %w", err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		if port+10000 > 65535 {
			ln.Close()
			continue
		}
		bus, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port+10000))
		ln.Close()
		if err != nil {
			continue
		}
		bus.Close()
		return port, nil
	}
	return 0, errors.New("loadbench: no free port pair for a cluster node")
}

// startRedisArgs is startRedis on a given port with extra arguments.
func startRedisArgs(bin, name, dir string, port int, extra ...string) (*redisServer, error) {
	args := append([]string{
		"--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", dir, "--daemonize", "no", "--loglevel", "warning",
	}, extra...)
	p, err := startProc(name, filepath.Join(dir, name+".log"), bin, args, nil)
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

func printMemory(w io.Writer, m memoryFigures) {
	fmt.Fprintf(w, "\n### Redis memory with %d sessions\n\nEach session its own user with a provider sid, written as a login writes it "+
		"(session, per-user, provider-sid and email indexes, metadata, sid key, one Touch), with %d B of real devidp tokens.\n\n",
		m.Sessions, m.TokenBytes)
	fmt.Fprintf(w, "- used_memory: %.0f B per session; used_memory_rss: %.0f B per session; written in %.1f s from 16 goroutines\n",
		m.BytesPerSession, m.RSSPerSession, m.FillSeconds)
	var parts []string
	for _, k := range keyKinds {
		if v, ok := m.KeyBytes[k.kind]; ok {
			parts = append(parts, fmt.Sprintf("%s %.0f B", k.kind, v))
		}
	}
	fmt.Fprintf(w, "- MEMORY USAGE by key (mean of up to 50 each): %s\n", strings.Join(parts, ", "))
}

func printOps(w io.Writer, ops []opCount) {
	fmt.Fprintf(w, "\n### Redis commands per operation (MONITOR)\n\n| operation | units | commands sent | of which | commands run inside scripts |\n|---|--:|--:|---|---|\n")
	for _, o := range ops {
		fmt.Fprintf(w, "| %s | %d | %s | %s | %s |\n", o.What, o.Units, trimFloat(o.sentTotal()), breakdown(o.Sent), breakdown(o.InScript))
	}
}

func printRevocations(w io.Writer, rs []revokeFigures) {
	fmt.Fprintf(w, "\n### A user with %d sessions, among the others\n\n| what | sessions | wall ms | Redis ms (commandstats) | redis-server CPU ms | commands |\n|---|--:|--:|--:|--:|---|\n", heavySessions)
	for _, r := range rs {
		m := map[string]float64{}
		for k, v := range r.Commands {
			m[k] = float64(v)
		}
		fmt.Fprintf(w, "| %s | %d | %.0f | %.0f | %.0f | %s |\n", r.How, r.Sessions, r.WallMS, r.RedisMS, r.RedisCPUMS, breakdown(m))
	}
}

func printTopologies(w io.Writer, runs []topoRun, o options) {
	fmt.Fprintf(w, "\n### Two replicas, one standalone Redis against a three-master Cluster\n\n"+
		"Two wrk at once (-t1 -c%d each, %v after a %v warm-up), one per replica, each with its own session; "+
		"medians over %d rounds in alternating order.\n\n"+
		"| Redis | session cache | req/s (both) | p50 ms (worse) | p99 ms (worse) | Gatehouse CPU µs/req | Redis CPU µs/req | other CPU %% | problem |\n"+
		"|---|---|--:|--:|--:|--:|--:|--:|---|\n",
		max(1, o.conns/2), o.duration, o.warmup, o.rounds)
	for _, r := range runs {
		cache := "on (" + r.Cache + ")"
		if r.Cache == "0s" {
			cache = "off"
		}
		fmt.Fprintf(w, "| %s | %s | %.0f | %.2f | %.2f | %.1f | %.1f | %.0f | %s |\n", r.Topology, cache, r.ReqPerSec, r.P50ms, r.P99ms,
			r.GatehouseUSPReq, r.RedisUSPerReq, r.OtherCPUpct, r.Problem)
	}
}

// printCapacityModel turns the measurements into the sizing figures of
// docs/performance.md's "Capacity" section.
func printCapacityModel(w io.Writer, res capacityResults) {
	fmt.Fprintf(w, "\n### Capacity model\n\n")
	if m := res.Memory; m.BytesPerSession > 0 {
		fmt.Fprintf(w, "- sessions per GB of Redis used_memory: %.0f (%.0f B each)\n", 1e9/m.BytesPerSession, m.BytesPerSession)
	}
	for _, o := range res.Ops {
		fmt.Fprintf(w, "- %s: %s commands sent (%s in scripts)\n", o.What, trimFloat(o.sentTotal()), trimFloat(o.inScriptTotal()))
	}
}
