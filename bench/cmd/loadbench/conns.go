package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
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
	"time"
)

// This file measures what many open keep-alive connections cost Gatehouse
// (issue 12): the memory per idle connection, and the latency of the busy
// ones while the others sit idle.

// connsResult is Gatehouse holding many idle keep-alive connections.
type connsResult struct {
	Conns   int `json:"connections"`
	Sources int `json:"source_addresses"`
	// OpenSeconds is how long opening them (one request each) took.
	OpenSeconds float64      `json:"open_seconds"`
	Before      runtimeStats `json:"before"`
	Idle        runtimeStats `json:"idle"`
	// RSSPerConnKB is the growth of Gatehouse's VmRSS ÷ connections.
	RSSPerConnKB   float64 `json:"rss_kb_per_conn"`
	HeapPerConnKB  float64 `json:"heap_kb_per_conn"`
	StackPerConnKB float64 `json:"stack_kb_per_conn"`
	// GoroutinesPerConn is the growth of go_goroutines ÷ connections.
	GoroutinesPerConn float64 `json:"goroutines_per_conn"`
	// Alone is wrk's run on the active connections with no idle ones open,
	// WithIdle the same run with them.
	Active   int    `json:"active_connections"`
	Alone    sample `json:"alone"`
	WithIdle sample `json:"with_idle"`
	// StillOpen counts the idle connections that answered one more request
	// after the loaded run.
	StillOpen int `json:"still_open"`
	// HeapTop is `go tool pprof -top` of the live heap with the idle
	// connections open; empty without pprof.
	HeapTop string `json:"-"`
	// HeapProfile is where that profile is saved.
	HeapProfile string `json:"heap_profile,omitempty"`
}

// runtimeStats is a process's memory and Go runtime figures at one moment.
type runtimeStats struct {
	RSSKB      int64   `json:"rss_kb"`
	HeapInuse  float64 `json:"go_heap_inuse_bytes"`
	StackInuse float64 `json:"go_stack_inuse_bytes"`
	Goroutines float64 `json:"go_goroutines"`
}

// readRuntime reads VmRSS of px and the Go figures its metrics listener
// publishes (go_memstats_*, go_goroutines). When px serves pprof, GCs run
// first (the heap profile's ?gc=1), so the heap holds live memory only and
// not whatever garbage the last requests left; the profile is saved to
// heapProfile when that is not empty. VmRSS is read once it stops moving.
func readRuntime(ctx context.Context, px *proxy, heapProfile string) (runtimeStats, error) {
	var st runtimeStats
	if px.pprof != "" {
		if heapProfile == "" {
			heapProfile = os.DevNull
		}
		// Three GCs: the first moves sync.Pools' contents (net/http's bufio
		// and copy-buffer pools) to their victim caches, the second frees
		// them, and the profile the third writes describes the heap as of
		// the cycle before it: without a third, it still shows the pools.
		for _, path := range []string{os.DevNull, os.DevNull, heapProfile} {
			if err := fetch(ctx, px.pprof+"/debug/pprof/heap?gc=1", path, 30*time.Second); err != nil {
				return st, err
			}
		}
	}
	waitRSSSteady(px.pid())
	rss, _, err := memKB(px.pid())
	if err != nil {
		return st, err
	}
	st.RSSKB = rss
	if px.metrics == "" {
		return st, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, px.metrics+"/metrics", nil)
	if err != nil {
		return st, fmt.Errorf("loadbench: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return st, fmt.Errorf("loadbench: %s metrics: %w", px.name, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return st, fmt.Errorf("loadbench: %s metrics: %w", px.name, err)
	}
	v, err := metricValues(string(b), "go_memstats_heap_inuse_bytes", "go_memstats_stack_inuse_bytes", "go_goroutines")
	if err != nil {
		return st, fmt.Errorf("loadbench: %s metrics: %w", px.name, err)
	}
	st.HeapInuse, st.StackInuse, st.Goroutines = v[0], v[1], v[2]
	return st, nil
}

// metricValues returns the value of each named metric without labels from
// a Prometheus text exposition.
func metricValues(text string, names ...string) ([]float64, error) {
	found := map[string]float64{}
	for line := range strings.Lines(text) {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return nil, fmt.Errorf("metric %s: %w", name, err)
		}
		found[name] = v
	}
	out := make([]float64, len(names))
	for i, n := range names {
		v, ok := found[n]
		if !ok {
			return nil, fmt.Errorf("no metric %s", n)
		}
		out[i] = v
	}
	return out, nil
}

// raiseNofile lifts the file descriptor limit to at least want when it can
// (the hard limit only with privilege), and returns the soft limit now in
// force. Children started afterwards inherit it (Go passes a limit set
// with Setrlimit on to them).
func raiseNofile(want uint64) (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("loadbench: getrlimit: %w", err)
	}
	if lim.Cur >= want {
		return lim.Cur, nil
	}
	if lim.Max < want {
		raised := syscall.Rlimit{Cur: want, Max: want}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err == nil {
			return want, nil
		}
	}
	lim.Cur = min(want, lim.Max)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("loadbench: setrlimit: %w", err)
	}
	return lim.Cur, nil
}

// fdHeadroom is the descriptors besides the measured connections that each
// side of the connection test may need: wrk's, the upstream's, logs.
const fdHeadroom = 1024

// connsPerSource is how many connections the test opens from one local
// address: well below the 28 000 ephemeral ports of a default
// ip_local_port_range, so other runs' TIME_WAIT sockets leave room.
const connsPerSource = 5000

// sourceAddr is the i-th local address the connection test dials from:
// 127.0.0.10 onwards, none of them a trusted proxy (authSource).
func sourceAddr(i int) net.IP { return net.IPv4(127, 0, 0, byte(10+i)) }

// idleConn is one held keep-alive connection.
type idleConn struct {
	c  net.Conn
	br *bufio.Reader
}

// idlePool is the connections the test holds open.
type idlePool struct {
	conns []*idleConn
	host  string
	req   []byte // one proxied GET with the session cookie; never logged
}

// get sends the pool's request on ic and reads the answer; it fails unless
// the answer is 2xx and the connection stays open.
func (p *idlePool) get(ic *idleConn) error {
	if err := ic.c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return err
	}
	if _, err := ic.c.Write(p.req); err != nil {
		return err
	}
	resp, err := http.ReadResponse(ic.br, nil)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 || resp.Close {
		return fmt.Errorf("answered %d (close %v); want 2xx and keep-alive", resp.StatusCode, resp.Close)
	}
	return ic.c.SetDeadline(time.Time{})
}

// openIdle opens n connections to addr from sources local addresses, sends
// one request on each, and keeps them open; 32 at a time.
func openIdle(ctx context.Context, addr, cookie string, n, sources int) (*idlePool, error) {
	p := &idlePool{conns: make([]*idleConn, n), host: addr,
		req: []byte("GET / HTTP/1.1\r\nHost: " + addr + "\r\nUser-Agent: loadbench-idle\r\nCookie: " + cookie + "\r\n\r\n")}
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for range 32 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: sourceAddr(i % sources)}}
				c, err := d.DialContext(ctx, "tcp", addr)
				if err != nil {
					errs <- fmt.Errorf("connection %d of %d from %s: %w", i+1, n, sourceAddr(i%sources), err)
					next.Store(int64(n)) // stop the others
					return
				}
				ic := &idleConn{c: c, br: bufio.NewReaderSize(c, 1024)}
				p.conns[i] = ic
				if err := p.get(ic); err != nil {
					errs <- fmt.Errorf("connection %d of %d: first request: %w", i+1, n, err)
					next.Store(int64(n))
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := errors.Join(<-errs, ctx.Err()); err != nil {
		p.close()
		return nil, fmt.Errorf("loadbench: opening idle connections: %w", err)
	}
	return p, nil
}

// ping sends one more request on every held connection, 32 at a time, and
// returns how many answered.
func (p *idlePool) ping() int {
	var ok, next atomic.Int64
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(p.conns) {
					return
				}
				if ic := p.conns[i]; ic != nil && p.get(ic) == nil {
					ok.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return int(ok.Load())
}

func (p *idlePool) close() {
	for _, ic := range p.conns {
		if ic != nil {
			ic.c.Close()
		}
	}
}

// waitRSSSteady samples VmRSS every 500 ms until two samples in a row
// differ by less than 0.5 %, at most 10 s: memory a process is still
// touching after the connections arrived.
func waitRSSSteady(pid int) {
	last := int64(-1)
	for range 20 {
		time.Sleep(500 * time.Millisecond)
		rss, _, err := memKB(pid)
		if err != nil {
			return
		}
		if last > 0 && math.Abs(float64(rss-last)) < 0.005*float64(last) {
			return
		}
		last = rss
	}
}

// warm sends n requests, one at a time, to url with the cookie: enough for
// a fresh Gatehouse to have set up what it builds on first use (caches, the
// upstream pool), so a memory reading after it is a baseline.
func warm(ctx context.Context, url, cookie string, n int) error {
	tr := &http.Transport{MaxIdleConnsPerHost: 1}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	for range n {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return fmt.Errorf("loadbench: %w", err)
		}
		req.Header.Set("Cookie", cookie)
		resp, err := c.Do(req)
		if err != nil {
			return fmt.Errorf("loadbench: warming %s: %w", url, err)
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("loadbench: warming %s: answered %d; want 2xx", url, resp.StatusCode)
		}
	}
	return nil
}

// measureConns runs the connection test against gh, a Gatehouse that has
// served nothing else: a baseline after a few requests, n idle connections
// opened and held, wrk on n/100 connections beside them, a last request on
// each idle one; then, with them closed, the same wrk run alone. The
// baseline comes first so that no earlier load has left free memory in the
// process for the connections to reuse unseen.
//
// goBin and binary (gh's executable) print the heap profile, when gh serves
// pprof.
func measureConns(ctx context.Context, m *meter, gh *proxy, cookie string, n int, goBin, binary string) (*connsResult, error) {
	active := max(1, n/100)
	res := &connsResult{Conns: n, Sources: (n + connsPerSource - 1) / connsPerSource, Active: active}
	em := *m
	em.wrk.conns, em.wrk.threads = active, min(m.wrk.threads, active)
	sc := scenario{name: "conns-active", label: "Gatehouse proxied", target: gh, url: gh.url + "/",
		hname: "Cookie", hval: cookie, upstream: true}

	if err := warm(ctx, sc.url, cookie, 100); err != nil {
		return nil, err
	}
	var err error
	if res.Before, err = readRuntime(ctx, gh, ""); err != nil {
		return nil, err
	}
	start := time.Now()
	pool, err := openIdle(ctx, strings.TrimPrefix(gh.url, "http://"), cookie, n, res.Sources)
	if err != nil {
		return nil, err
	}
	defer pool.close()
	res.OpenSeconds = time.Since(start).Seconds()
	if gh.pprof != "" {
		res.HeapProfile = filepath.Join(m.out, "heap-idle-conns.pprof")
	}
	if res.Idle, err = readRuntime(ctx, gh, res.HeapProfile); err != nil {
		return nil, err
	}
	if res.HeapProfile != "" {
		out, err := exec.CommandContext(ctx, goBin, "tool", "pprof", "-top", "-nodecount=12", "-sample_index=inuse_space", binary, res.HeapProfile).CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("loadbench: go tool pprof %s: %w: %s", res.HeapProfile, err, out)
		}
		res.HeapTop = string(out)
	}
	fn := float64(n)
	res.RSSPerConnKB = float64(res.Idle.RSSKB-res.Before.RSSKB) / fn
	res.HeapPerConnKB = (res.Idle.HeapInuse - res.Before.HeapInuse) / 1024 / fn
	res.StackPerConnKB = (res.Idle.StackInuse - res.Before.StackInuse) / 1024 / fn
	res.GoroutinesPerConn = (res.Idle.Goroutines - res.Before.Goroutines) / fn

	if res.WithIdle, err = em.measure(ctx, sc, 0); err != nil {
		return nil, err
	}
	res.StillOpen = pool.ping()
	pool.close()
	if res.Alone, err = em.measure(ctx, sc, 0); err != nil {
		return nil, err
	}
	return res, nil
}

func printConns(w io.Writer, c *connsResult, idleTimeout string) {
	fmt.Fprintf(w, "\n### %d keep-alive connections\n\n"+
		"A Gatehouse of its own (`gatehouse-conns`: the same configuration, built with pprof to force a GC before each reading) gets %d connections from the harness, "+
		"from %d source addresses (127.0.0.10 onwards), each after one proxied `GET /` with the session cookie, then idle; "+
		"opened in %.1f s. Memory is read before and after, each time after a GC (VmRSS once it stopped moving; the Go figures from its `/metrics`).\n\n"+
		"| | VmRSS MB | Go heap in use MB | goroutine stacks MB | goroutines |\n|---|--:|--:|--:|--:|\n", c.Conns, c.Conns, c.Sources, c.OpenSeconds)
	for _, r := range []struct {
		name string
		st   runtimeStats
	}{{"before", c.Before}, {fmt.Sprintf("with %d idle connections", c.Conns), c.Idle}} {
		fmt.Fprintf(w, "| %s | %.1f | %.1f | %.1f | %.0f |\n", r.name, float64(r.st.RSSKB)/1024, r.st.HeapInuse/(1<<20), r.st.StackInuse/(1<<20), r.st.Goroutines)
	}
	fmt.Fprintf(w, "| **per connection** | **%.1f KB** | %.1f KB | %.1f KB | %.2f |\n", c.RSSPerConnKB, c.HeapPerConnKB, c.StackPerConnKB, c.GoroutinesPerConn)
	if c.HeapTop != "" {
		fmt.Fprintf(w, "\nThe live heap with the connections open (after a GC), saved as %s:\n\n```\n%s```\n", c.HeapProfile, c.HeapTop)
	}
	fmt.Fprintf(w, "\nwrk on %d more connections (1 %%), beside the %d idle ones, then alone once they were closed:\n\n"+
		"| run | req/s | p50 ms | p99 ms | proxy CPU µs/req | RSS MB | other CPU %% | upstream got / wrk done |\n|---|--:|--:|--:|--:|--:|--:|--:|\n", c.Active, c.Conns)
	for _, r := range []struct {
		name string
		s    sample
	}{{fmt.Sprintf("beside %d idle ones", c.Conns), c.WithIdle}, {"alone", c.Alone}} {
		check := fmt.Sprintf("%d / %d", r.s.UpstreamReqs, r.s.Requests)
		if !r.s.ok() {
			check += " FAIL: " + r.s.Problem
		}
		fmt.Fprintf(w, "| %s | %.0f | %.2f | %.2f | %.1f | %.1f | %.0f | %s |\n", r.name, r.s.ReqPerSec, r.s.P50ms, r.s.P99ms, r.s.ProxyCPUus, r.s.RSSMaxMB, r.s.OtherCPUpct, check)
	}
	fmt.Fprintf(w, "\nAfter the run beside them, %d of the %d idle connections still answered a request (server.idle_timeout, %s, closes idle ones).\n",
		c.StillOpen, c.Conns, idleTimeout)
}
