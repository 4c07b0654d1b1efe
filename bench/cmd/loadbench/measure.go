package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"time"
)

// scenario is one kind of request the benchmark loads.
type scenario struct {
	name     string // short id, as in -scenarios
	label    string
	target   *proxy // the proxy under load; nil for the direct upstream
	url      string
	hname    string // credential header, sent through count.lua
	hval     string
	upstream bool   // whether every request reaches the upstream
	peer     string // the scenario this one's "×o2p" ratios compare with
	// auth is the auth service an ingress (the target) asks on every
	// request; its CPU is measured beside the target's.
	auth *proxy
	// ingress: the row belongs to the ingress table, not the main one.
	ingress bool
}

// sample is one scenario's measurement in one round.
type sample struct {
	Scenario  string  `json:"scenario"`
	Round     int     `json:"round"`
	ReqPerSec float64 `json:"req_per_sec"`
	Requests  int64   `json:"requests"`
	P50ms     float64 `json:"p50_ms"`
	P99ms     float64 `json:"p99_ms"`
	// ProxyCPUus is the proxy process's user+system CPU per request, in µs
	// (nginx: its master and workers together).
	ProxyCPUus float64 `json:"proxy_cpu_us_per_req"`
	// AuthCPUus is the auth service's CPU per request behind an ingress, in µs.
	AuthCPUus float64 `json:"auth_cpu_us_per_req,omitempty"`
	// RedisCPUus is redis-server's CPU per request, in µs.
	RedisCPUus float64 `json:"redis_cpu_us_per_req"`
	// HarnessCPUus is this harness's CPU (the upstream, mostly) per request that reached the upstream.
	HarnessCPUus float64 `json:"harness_cpu_us_per_upstream_req"`
	UpstreamReqs int64   `json:"upstream_requests"`
	NewConns     int64   `json:"new_upstream_conns"`
	// OtherCPUpct is the CPU that processes other than the benchmark's (proxy, Redis, harness, wrk) used during
	// the run, in percent of one core: other work on the machine that disturbed the figures.
	OtherCPUpct float64 `json:"other_cpu_pct"`
	RSSMaxMB    float64 `json:"rss_max_mb"`  // largest VmRSS sampled during the run
	PeakRSSMB   float64 `json:"peak_rss_mb"` // VmHWM after the run: the peak since the process started
	Non2xx      int64   `json:"non_2xx"`
	SockErrors  int64   `json:"socket_errors"`
	Problem     string  `json:"problem,omitempty"`
}

func (s sample) ok() bool { return s.Problem == "" }

// meter measures scenarios against the processes it knows.
type meter struct {
	wrk      wrkRun // bin, script, threads, conns, duration
	warmup   time.Duration
	up       *upstream
	redis    *redisServer
	ticksPer float64 // µs per clock tick
	out      string
	// others are the benchmark's processes besides Redis, this harness and
	// wrk: every proxy, under load or idle.
	others []*proc
}

// measure warms the scenario up, then runs wrk once and reads the CPU, memory
// and upstream counters around it. A run with any non-2xx response, socket
// error or request missing at the upstream is returned with Problem set.
func (m *meter) measure(ctx context.Context, sc scenario, round int) (sample, error) {
	s := sample{Scenario: sc.name, Round: round}
	r := m.wrk
	r.url, r.headerName, r.headerV = sc.url, sc.hname, sc.hval
	logPath := filepath.Join(m.out, "wrk-"+sc.name+".log")
	if m.warmup > 0 {
		w := r
		w.duration = m.warmup
		res, err := w.run(ctx, logPath)
		if err != nil {
			return s, err
		}
		if res.Non2xx > 0 || res.SockErrors > 0 {
			s.Problem = fmt.Sprintf("warm-up: %d non-2xx responses, %d socket errors", res.Non2xx, res.SockErrors)
			return s, nil
		}
	}
	m.settle()

	pids := []int{os.Getpid()}
	if sc.target != nil {
		var err error
		if pids, err = sc.target.pids(); err != nil {
			return s, err
		}
	}
	authPID := 0
	if sc.auth != nil {
		authPID = sc.auth.pid()
	}
	proxyBefore, err := sumTicks(pids)
	if err != nil {
		return s, err
	}
	authBefore, err := authTicks(authPID)
	if err != nil {
		return s, err
	}
	redisBefore, err := cpuTicks(m.redis.pid())
	if err != nil {
		return s, err
	}
	selfBefore, err := cpuTicks(os.Getpid())
	if err != nil {
		return s, err
	}
	busyBefore, totalBefore, err := machineTicks()
	if err != nil {
		return s, err
	}
	idleBefore, err := m.idleTicks()
	if err != nil {
		return s, err
	}
	upBefore, connsBefore := m.up.requests.Load(), m.up.conns.Load()

	// Sample the proxy's RSS while it is under load.
	var rssMax int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			if rss, err := sumRSS(pids); err == nil {
				rssMax = max(rssMax, rss)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	})
	res, err := r.run(ctx, logPath)
	close(stop)
	wg.Wait()
	if err != nil {
		return s, err
	}
	proxyAfter, err := sumTicks(pids)
	if err != nil {
		return s, err
	}
	authAfter, err := authTicks(authPID)
	if err != nil {
		return s, err
	}
	redisAfter, err := cpuTicks(m.redis.pid())
	if err != nil {
		return s, err
	}
	selfAfter, err := cpuTicks(os.Getpid())
	if err != nil {
		return s, err
	}
	busyAfter, totalAfter, err := machineTicks()
	if err != nil {
		return s, err
	}
	idleAfter, err := m.idleTicks()
	if err != nil {
		return s, err
	}
	var hwm int64
	for _, pid := range pids {
		_, h, err := memKB(pid)
		if err != nil {
			return s, err
		}
		hwm += h
	}
	ours := float64(redisAfter-redisBefore+selfAfter-selfBefore+idleAfter-idleBefore) * m.ticksPer
	ours += float64(res.CPU / time.Microsecond)
	if elapsed := float64(totalAfter-totalBefore) / float64(runtime.NumCPU()) * m.ticksPer; elapsed > 0 {
		other := float64(busyAfter-busyBefore)*m.ticksPer - ours
		s.OtherCPUpct = max(0, 100*other/elapsed)
	}
	// Requests wrk had in flight when it stopped still reach the upstream.
	m.settle()
	s.UpstreamReqs = m.up.requests.Load() - upBefore
	s.NewConns = m.up.conns.Load() - connsBefore

	s.Requests = res.Requests
	s.ReqPerSec = res.reqPerSec()
	s.P50ms = float64(res.P50) / float64(time.Millisecond)
	s.P99ms = float64(res.P99) / float64(time.Millisecond)
	s.Non2xx, s.SockErrors = res.Non2xx, res.SockErrors
	if res.Requests > 0 {
		n := float64(res.Requests)
		s.RedisCPUus = float64(redisAfter-redisBefore) * m.ticksPer / n
		if sc.target != nil {
			s.ProxyCPUus = float64(proxyAfter-proxyBefore) * m.ticksPer / n
		}
		if sc.auth != nil {
			s.AuthCPUus = float64(authAfter-authBefore) * m.ticksPer / n
		}
	}
	if s.UpstreamReqs > 0 {
		s.HarnessCPUus = float64(selfAfter-selfBefore) * m.ticksPer / float64(s.UpstreamReqs)
	}
	s.RSSMaxMB = float64(rssMax) / 1024
	s.PeakRSSMB = float64(hwm) / 1024
	s.Problem = check(sc, res, s.UpstreamReqs, int64(m.wrk.conns))
	return s, nil
}

// idleTicks is the CPU every proxy the benchmark started has used, the one
// under load and the idle ones alike.
func (m *meter) idleTicks() (int64, error) {
	var sum int64
	for _, p := range m.others {
		n, err := p.ticks()
		if err != nil {
			return 0, err
		}
		sum += n
	}
	return sum, nil
}

// authTicks is the CPU of an auth service; 0 for pid 0 (none).
func authTicks(pid int) (int64, error) {
	if pid == 0 {
		return 0, nil
	}
	return cpuTicks(pid)
}

// check returns what is wrong with a run, or "" when every response was 2xx
// and the upstream saw exactly the requests it should have.
func check(sc scenario, res wrkResult, upstreamReqs, conns int64) string {
	switch {
	case res.Requests == 0:
		return "no request completed"
	case res.Non2xx > 0:
		return fmt.Sprintf("%d non-2xx responses", res.Non2xx)
	case res.SockErrors > 0:
		return fmt.Sprintf("%d socket errors", res.SockErrors)
	case !sc.upstream && upstreamReqs != 0:
		return fmt.Sprintf("upstream got %d requests; want 0", upstreamReqs)
	case sc.upstream && (upstreamReqs < res.Requests || upstreamReqs > res.Requests+conns):
		// wrk does not count the responses still in flight when it stops,
		// at most one per connection.
		return fmt.Sprintf("upstream got %d requests; wrk completed %d", upstreamReqs, res.Requests)
	}
	return ""
}

// settle waits until the upstream's request counter stops moving, at most 2 s.
func (m *meter) settle() {
	last := m.up.requests.Load()
	for range 20 {
		time.Sleep(100 * time.Millisecond)
		n := m.up.requests.Load()
		if n == last {
			return
		}
		last = n
	}
}

// roundOrder rotates the scenarios by the round number and reverses every
// other round, so no scenario always runs first, last, or after the same one.
func roundOrder(scs []scenario, round int) []scenario {
	n := len(scs)
	out := make([]scenario, 0, n)
	for i := range n {
		out = append(out, scs[(i+round)%n])
	}
	if round%2 == 1 {
		slices.Reverse(out)
	}
	return out
}

// equalLoad runs each Gatehouse scenario and its oauth2-proxy peer once more,
// both paced to the same offered load, half of oauth2-proxy's median req/s,
// and prints their latencies. At saturation the faster proxy leaves wrk less
// CPU on a small machine, which lengthens its measured tail; at equal load
// the latencies compare the proxies alone.
func equalLoad(ctx context.Context, w io.Writer, m *meter, scs []scenario, sum summary) ([]sample, error) {
	byName := map[string]scenario{}
	for _, sc := range scs {
		byName[sc.name] = sc
	}
	var out []sample
	header := false
	for _, name := range []string{"gh-proxy", "gh-auth"} {
		gh, ok := byName[name]
		if !ok {
			continue
		}
		o2p, ok := byName[gh.peer]
		med, measured := sum.med[gh.peer]
		if !ok || !measured || med.ReqPerSec <= 0 {
			continue
		}
		rate := med.ReqPerSec / 2
		delay := time.Duration(float64(m.wrk.conns) / rate * float64(time.Second)).Round(time.Millisecond)
		if delay < time.Millisecond {
			continue
		}
		if !header {
			fmt.Fprintf(w, "\n### Latency at equal load\n\nEach connection waits a fixed delay before every request "+
				"(wrk's delay()), so both proxies get the same offered load: about half of oauth2-proxy's median req/s.\n\n"+
				"| scenario | offered req/s | req/s | p50 ms | p99 ms | p99 ÷o2p | proxy CPU µs/req | other CPU %% | upstream got / wrk done |\n"+
				"|---|--:|--:|--:|--:|--:|--:|--:|--:|\n")
			header = true
		}
		em := *m
		em.wrk.delay = delay
		var pair [2]sample
		for i, sc := range []scenario{o2p, gh} {
			s, err := em.measure(ctx, sc, 0)
			if err != nil {
				return out, err
			}
			pair[i] = s
			out = append(out, s)
		}
		for i, sc := range []scenario{o2p, gh} {
			s := pair[i]
			ratio := math.NaN()
			if i == 1 && pair[0].P99ms > 0 {
				ratio = s.P99ms / pair[0].P99ms
			}
			check := fmt.Sprintf("%d / %d", s.UpstreamReqs, s.Requests)
			if !s.ok() {
				check += " FAIL: " + s.Problem
			}
			fmt.Fprintf(w, "| %s | %.0f | %.0f | %.2f | %.2f | %s | %.1f | %.0f | %s |\n", sc.label,
				float64(m.wrk.conns)/delay.Seconds(), s.ReqPerSec, s.P50ms, s.P99ms, f("%.2f", ratio), s.ProxyCPUus, s.OtherCPUpct, check)
		}
	}
	return out, nil
}
