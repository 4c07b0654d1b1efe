package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// This file runs slow clients against Gatehouse (issue 12): slowloris
// request headers dribbled a byte at a time, and request bodies dribbled
// the same way, while wrk measures everybody else's latency.

// slowInterval is how long a slow client waits between two bytes.
const slowInterval = 500 * time.Millisecond

// slowBodyLength is the Content-Length a slow body announces: more than it
// can send in any run, so it never completes.
const slowBodyLength = 1 << 20

// slowKind is what one kind of slow client met.
type slowKind struct {
	Kind    string `json:"kind"`
	Clients int    `json:"clients"`
	// Connections counts every connection made, reconnections included.
	Connections int64 `json:"connections"`
	// Cut counts connections Gatehouse closed or answered while the
	// client was still sending; CutAfter how long each had lasted.
	Cut      int64            `json:"cut"`
	CutAfter []float64        `json:"-"`
	Answers  map[int]int64    `json:"answers"` // statuses Gatehouse answered with
	Errors   map[string]int64 `json:"errors"`  // what else ended a connection
	mu       sync.Mutex
}

func (k *slowKind) record(f func(k *slowKind)) {
	k.mu.Lock()
	defer k.mu.Unlock()
	f(k)
}

// slowResult is Gatehouse serving wrk beside slow clients.
type slowResult struct {
	Clients  int     `json:"clients"`
	Interval float64 `json:"interval_seconds"`
	Base     sample  `json:"without"`
	WithSlow sample  `json:"with"`
	// Before: without slow clients; Connected: once every slow client has
	// sent its first byte; Loaded: after wrk's run beside them; After: once
	// they have gone.
	Before, Connected, Loaded, After runtimeStats
	Headers, Bodies                  *slowKind
	// UpstreamMaxInFlight is the most requests the upstream served at once
	// while the slow clients ran: each slow body Gatehouse passes on holds
	// one upstream request for as long as the body takes.
	UpstreamMaxInFlight int64 `json:"upstream_max_in_flight"`
	UpstreamSlowBodies  int64 `json:"upstream_slow_bodies"`
	// HeapTop is `go tool pprof -top` of the live heap with the slow
	// clients connected; empty without pprof.
	HeapTop     string `json:"-"`
	HeapProfile string `json:"heap_profile,omitempty"`
}

// p99Ratio is wrk's p99 with the slow clients ÷ without; NaN if either run
// failed its checks.
func (r *slowResult) p99Ratio() float64 {
	if !r.Base.ok() || !r.WithSlow.ok() || r.Base.P99ms <= 0 {
		return math.NaN()
	}
	return r.WithSlow.P99ms / r.Base.P99ms
}

// slowPayloads returns what a header dribbler and a body dribbler send to
// addr. The header one never ends a header line within any run (4 KiB of
// it at 2 bytes a second take half an hour); the body one sends complete
// headers with the session cookie and announces slowBodyLength bytes.
func slowPayloads(addr, cookie string) (headers, bodyHead []byte) {
	headers = []byte("GET / HTTP/1.1\r\nHost: " + addr + "\r\nUser-Agent: loadbench-slowloris\r\nX-Slow: " + strings.Repeat("a", 4096))
	bodyHead = fmt.Appendf(nil, "POST /slow-body HTTP/1.1\r\nHost: %s\r\nUser-Agent: loadbench-slow-body\r\nCookie: %s\r\n"+
		"Origin: http://%s\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n", addr, cookie, addr, slowBodyLength)
	return headers, bodyHead
}

// slowClient dribbles payload (after head, sent at once) to addr a byte
// every interval, reconnecting whenever the server closes or answers, until
// stop is closed. ready is called once: after its first byte, or when it
// returns without having sent one, so a waiter is never left hanging.
func slowClient(addr string, head, payload []byte, interval time.Duration, k *slowKind, stop <-chan struct{}, ready func()) {
	first := true
	defer func() {
		if first {
			ready()
		}
	}()
	for {
		select {
		case <-stop:
			return
		default:
		}
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			k.record(func(k *slowKind) { k.Errors["dial: "+errClass(err)]++ })
			select {
			case <-stop:
				return
			case <-time.After(interval):
			}
			continue
		}
		k.record(func(k *slowKind) { k.Connections++ })
		start := time.Now()
		ended := make(chan error, 1)
		status := 0
		go func() {
			resp, err := http.ReadResponse(bufio.NewReaderSize(c, 512), nil)
			if err == nil {
				status = resp.StatusCode
				resp.Body.Close()
			}
			ended <- err
		}()
		_, werr := c.Write(head)
		t := time.NewTicker(interval)
		stopped := false
	dribble:
		for i := 0; werr == nil && i < len(payload); i++ {
			if _, werr = c.Write(payload[i : i+1]); werr != nil {
				break
			}
			if first {
				first = false
				ready()
			}
			select {
			case <-stop:
				stopped = true
				break dribble
			case err := <-ended:
				ended <- err // read below
				break dribble
			case <-t.C:
			}
		}
		t.Stop()
		if stopped {
			c.Close()
			<-ended
			return
		}
		// Cut: the server answered, closed, or refused a write.
		var rerr error
		select {
		case rerr = <-ended:
		case <-stop:
			c.Close()
			<-ended
			return
		}
		c.Close()
		lasted := time.Since(start).Seconds()
		k.record(func(k *slowKind) {
			k.Cut++
			k.CutAfter = append(k.CutAfter, lasted)
			switch {
			case status != 0:
				k.Answers[status]++
			case rerr != nil:
				k.Errors[errClass(rerr)]++
			case werr != nil:
				k.Errors["write: "+errClass(werr)]++
			}
		})
	}
}

// errClass names an error without addresses, for counting.
func errClass(err error) string {
	switch s := err.Error(); {
	case err == io.EOF || strings.HasSuffix(s, "EOF"):
		return "closed (EOF)"
	case strings.Contains(s, "connection reset"):
		return "reset"
	case strings.Contains(s, "broken pipe"):
		return "broken pipe"
	case strings.Contains(s, "timeout"):
		return "timeout"
	default:
		if i := strings.LastIndex(s, ": "); i >= 0 {
			return s[i+2:]
		}
		return s
	}
}

// measureSlow runs n slow clients against gh, a Gatehouse that has served
// nothing else, half dribbling headers, half bodies: memory before (after a
// few requests), with them connected, after a wrk run beside them and after
// they left; then the same wrk run without them. The baseline comes first so
// that no earlier load has left free memory in the process for the slow
// clients to reuse unseen.
//
// goBin and binary (gh's executable) print the heap profile with the slow
// clients connected, when gh serves pprof.
func measureSlow(ctx context.Context, m *meter, gh *proxy, cookie string, n int, goBin, binary string) (*slowResult, error) {
	res := &slowResult{Clients: n, Interval: slowInterval.Seconds(),
		Headers: &slowKind{Kind: "headers", Clients: n / 2, Answers: map[int]int64{}, Errors: map[string]int64{}},
		Bodies:  &slowKind{Kind: "bodies", Clients: n - n/2, Answers: map[int]int64{}, Errors: map[string]int64{}}}
	sc := scenario{name: "slow-clients", label: "Gatehouse proxied", target: gh, url: gh.url + "/",
		hname: "Cookie", hval: cookie, upstream: true}
	if err := warm(ctx, sc.url, cookie, 100); err != nil {
		return nil, err
	}
	var err error
	if res.Before, err = readRuntime(ctx, gh, ""); err != nil {
		return nil, err
	}

	addr := strings.TrimPrefix(gh.url, "http://")
	headers, bodyHead := slowPayloads(addr, cookie)
	body := make([]byte, slowBodyLength)
	for i := range body {
		body[i] = 'b'
	}
	stop := make(chan struct{})
	var wg, ready sync.WaitGroup
	ready.Add(n)
	postsBefore := m.up.others.Load()
	m.up.resetMaxInFlight()
	for i := range n {
		k, head, payload := res.Headers, []byte(nil), headers
		if i >= n/2 {
			k, head, payload = res.Bodies, bodyHead, body
		}
		wg.Go(func() { slowClient(addr, head, payload, slowInterval, k, stop, ready.Done) })
	}
	stopAll := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopAll()
	allReady := make(chan struct{})
	go func() { ready.Wait(); close(allReady) }()
	select {
	case <-allReady:
	case <-time.After(30 * time.Second):
		return nil, fmt.Errorf("loadbench: slow clients: not all %d connected and sent a byte within 30 s", n)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if gh.pprof != "" {
		res.HeapProfile = filepath.Join(m.out, "heap-slow-clients.pprof")
	}
	if res.Connected, err = readRuntime(ctx, gh, res.HeapProfile); err != nil {
		return nil, err
	}
	if res.HeapProfile != "" {
		out, err := exec.CommandContext(ctx, goBin, "tool", "pprof", "-top", "-nodecount=15", "-sample_index=inuse_space", binary, res.HeapProfile).CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("loadbench: go tool pprof %s: %w: %s", res.HeapProfile, err, out)
		}
		res.HeapTop = string(out)
	}
	if res.WithSlow, err = m.measure(ctx, sc, 0); err != nil {
		return nil, err
	}
	if res.Loaded, err = readRuntime(ctx, gh, ""); err != nil {
		return nil, err
	}
	res.UpstreamMaxInFlight = m.up.maxInFlight.Load()
	res.UpstreamSlowBodies = m.up.others.Load() - postsBefore
	stopAll()
	after := ""
	if gh.pprof != "" {
		after = filepath.Join(m.out, "heap-slow-clients-gone.pprof")
	}
	if res.After, err = readRuntime(ctx, gh, after); err != nil {
		return nil, err
	}
	if res.Base, err = m.measure(ctx, sc, 0); err != nil {
		return nil, err
	}
	return res, nil
}

func printSlow(w io.Writer, r *slowResult) {
	fmt.Fprintf(w, "\n### Slow clients\n\n"+
		"%d slow clients against a Gatehouse of their own (`gatehouse-slow`: the same configuration, built with pprof to force a GC before each memory reading): %d send a request's headers "+
		"one byte every %v and never finish them (slowloris); %d send complete headers with a valid session cookie and "+
		"`Content-Length: %d`, then the body one byte every %v. Each reconnects when Gatehouse closes it. "+
		"wrk loads `GET /` (proxied) on %s beside them, and again once they have gone.\n\n"+
		"| run | req/s | p50 ms | p99 ms | proxy CPU µs/req | RSS MB | other CPU %% | upstream got / wrk done |\n|---|--:|--:|--:|--:|--:|--:|--:|\n",
		r.Clients, r.Headers.Clients, slowInterval, r.Bodies.Clients, slowBodyLength, slowInterval, "its own connections")
	for _, x := range []struct {
		name string
		s    sample
	}{{fmt.Sprintf("with %d slow clients", r.Clients), r.WithSlow}, {"without them", r.Base}} {
		check := fmt.Sprintf("%d / %d", x.s.UpstreamReqs, x.s.Requests)
		if !x.s.ok() {
			check += " FAIL: " + x.s.Problem
		}
		fmt.Fprintf(w, "| %s | %.0f | %.2f | %.2f | %.1f | %.1f | %.0f | %s |\n", x.name, x.s.ReqPerSec, x.s.P50ms, x.s.P99ms, x.s.ProxyCPUus, x.s.RSSMaxMB, x.s.OtherCPUpct, check)
	}
	fmt.Fprintf(w, "\np99 with them ÷ without: %s.\n\n| Gatehouse | VmRSS MB | Go heap in use MB | goroutine stacks MB | goroutines |\n|---|--:|--:|--:|--:|\n", f("%.2f", r.p99Ratio()))
	for _, x := range []struct {
		name string
		st   runtimeStats
	}{{"before", r.Before}, {"slow clients connected", r.Connected}, {"after wrk's run beside them", r.Loaded}, {"slow clients gone", r.After}} {
		fmt.Fprintf(w, "| %s | %.1f | %.1f | %.1f | %.0f |\n", x.name, float64(x.st.RSSKB)/1024, x.st.HeapInuse/(1<<20), x.st.StackInuse/(1<<20), x.st.Goroutines)
	}
	n := float64(r.Clients)
	fmt.Fprintf(w, "| **per slow client, connected** | **%.1f KB** | %.1f KB | %.1f KB | %.2f |\n",
		float64(r.Connected.RSSKB-r.Before.RSSKB)/n, (r.Connected.HeapInuse-r.Before.HeapInuse)/1024/n,
		(r.Connected.StackInuse-r.Before.StackInuse)/1024/n, (r.Connected.Goroutines-r.Before.Goroutines)/n)
	if r.HeapTop != "" {
		fmt.Fprintf(w, "\nThe live heap with the slow clients connected (after a GC), saved as %s:\n\n```\n%s```\n", r.HeapProfile, r.HeapTop)
	}
	fmt.Fprintf(w, "\n| slow clients | clients | connections | closed or answered by Gatehouse | lasted (median / max s) | answers | other endings |\n|---|--:|--:|--:|--:|---|---|\n")
	for _, k := range []*slowKind{r.Headers, r.Bodies} {
		med, most := median(k.CutAfter), math.NaN()
		if len(k.CutAfter) > 0 {
			most = slices.Max(k.CutAfter)
		}
		fmt.Fprintf(w, "| %s | %d | %d | %d | %s / %s | %s | %s |\n", k.Kind, k.Clients, k.Connections, k.Cut,
			f("%.1f", med), f("%.1f", most), countsString(k.Answers), countsString(k.Errors))
	}
	fmt.Fprintf(w, "\nGatehouse's server.read_header_timeout (10 s by default) ends a connection whose headers are not complete; "+
		"server.read_timeout (60 s) one whose request, body included, is not: a run shorter than these shows no endings.\n")
	fmt.Fprintf(w, "\nSlow bodies that reached the upstream: %d; the most requests the upstream served at once meanwhile: %d "+
		"(Gatehouse passes a body on as it arrives, so each slow body holds an upstream request until it ends or server.read_timeout cuts it).\n",
		r.UpstreamSlowBodies, r.UpstreamMaxInFlight)
}

// countsString prints a map of counts in key order, "–" when empty.
func countsString[K int | string](m map[K]int64) string {
	if len(m) == 0 {
		return "–"
	}
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%v: %d", k, m[k])
	}
	return b.String()
}
