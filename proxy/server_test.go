package proxy

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/oidcclient"
	"github.com/gatehouse/gatehouse/redirect"
	"github.com/gatehouse/gatehouse/sessionstore"
	"github.com/gatehouse/gatehouse/tokenmint"
)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fixture is a proxy with a memory store, a real minter and an upstream,
// whose sessions are planted directly (no provider needed).
type fixture struct {
	srv    *Server
	upURL  string
	store  Store
	codec  *sessionstore.Codec
	clock  *clock
	hits   int
	mu     sync.Mutex
	header http.Header
}

func newFixture(t testing.TB, store Store) *fixture {
	t.Helper()
	return newFixtureTransport(t, store, nil)
}

// newFixtureTransport is newFixture with rt as the upstream transport; nil
// = NewTransport's default.
func newFixtureTransport(t testing.TB, store Store, rt http.RoundTripper) *fixture {
	t.Helper()
	f := &fixture{clock: &clock{t: time.Now()}}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.hits++
		f.header = r.Header.Clone()
		f.mu.Unlock()
		io.WriteString(w, "ok")
	}))
	t.Cleanup(up.Close)
	f.upURL = up.URL
	upURL, _ := url.Parse(up.URL)
	secret := [][]byte{[]byte("proxy-test-secret-0123456789abcdef0123")}
	var err error
	if f.codec, err = sessionstore.NewCodec(secret, 12*time.Hour); err != nil {
		t.Fatal(err)
	}
	flow, _ := sessionstore.NewCodec(secret, 10*time.Minute)
	key, _ := tokenmint.GenerateKey("ES256")
	minter, err := tokenmint.NewMinter(tokenmint.Config{Issuer: "https://app.example.com", Keys: []*tokenmint.Key{key}, Now: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := url.Parse("https://app.example.com")
	policy, _ := redirect.NewPolicy("https://app.example.com", nil)
	if store == nil {
		store = sessionstore.NewMemory(sessionstore.MemoryConfig{Now: f.clock.Now})
	}
	f.store = store
	f.srv, err = New(Config{
		PublicURL: pub,
		Cookie:    CookieConfig{Name: "gatehouse", Codec: f.codec, FlowCodec: flow},
		Session:   SessionConfig{Store: store, IdleTimeout: 30 * time.Minute, MaxLifetime: 12 * time.Hour},
		Token:     TokenConfig{Minter: minter},
		Login:     LoginConfig{Client: oidcclient.New(oidcclient.Config{Issuer: "http://127.0.0.1:1"}), Redirects: policy},
		Routes:    []*Route{{Name: "app", PathPrefix: "/", Upstream: upURL, Audience: "app"}},
		Transport: rt,
		Now:       f.clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// plant stores a session and returns its cookie value.
func (f *fixture) plant(t testing.TB) string {
	return f.plantGroups(t, []string{"g"})
}

func (f *fixture) plantGroups(t testing.TB, groups []string) string {
	t.Helper()
	tk, _ := sessionstore.NewTicket()
	now := f.clock.Now()
	s := &sessionstore.Session{Subject: "u1", Email: "u1@example.com", EmailVerified: true, Groups: groups,
		CreatedAt: now, LastSeen: now, AuthTime: now, ExpiresAt: now.Add(12 * time.Hour), Version: 1}
	if err := f.store.Save(context.Background(), tk, s); err != nil {
		t.Fatal(err)
	}
	v, err := f.codec.EncodeTicket("gatehouse", tk)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func (f *fixture) get(cookie string) *httptest.ResponseRecorder {
	req := httptest.NewRequest("GET", "https://app.example.com/page", nil)
	req.Header.Set("Accept", "application/json")
	if cookie != "" {
		req.Header.Set("Cookie", "gatehouse="+cookie)
	}
	rec := httptest.NewRecorder()
	f.srv.ServeHTTP(rec, req)
	return rec
}

func TestSessionTimeouts(t *testing.T) {
	tests := []struct {
		name  string
		steps []time.Duration // time passing between requests, each must succeed
		last  time.Duration   // then this passes
		want  int             // and the next request gets this
	}{
		{"fresh", nil, 0, 200},
		{"idle timeout", nil, 31 * time.Minute, 401},
		{"activity extends idle", []time.Duration{20 * time.Minute, 20 * time.Minute, 20 * time.Minute}, 20 * time.Minute, 200},
		{"absolute lifetime despite activity", repeat(25*time.Minute, 28), 25 * time.Minute, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil)
			c := f.plant(t)
			for i, d := range tt.steps {
				f.clock.Add(d)
				if code := f.get(c).Code; code != 200 {
					t.Fatalf("step %d: got %d; want 200", i, code)
				}
			}
			f.clock.Add(tt.last)
			if code := f.get(c).Code; code != tt.want {
				t.Fatalf("got %d; want %d", code, tt.want)
			}
		})
	}
}

func repeat(d time.Duration, n int) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = d
	}
	return out
}

// countingStore counts writes, to show activity is not a write per request.
type countingStore struct {
	Store
	mu      sync.Mutex
	touches int
}

func (c *countingStore) Touch(ctx context.Context, t sessionstore.Ticket, seen time.Time) error {
	c.mu.Lock()
	c.touches++
	c.mu.Unlock()
	return c.Store.Touch(ctx, t, seen)
}

func TestActivityDoesNotWriteEveryRequest(t *testing.T) {
	cs := &countingStore{}
	f := newFixture(t, cs)
	cs.Store = sessionstore.NewMemory(sessionstore.MemoryConfig{Now: f.clock.Now})
	f.store = cs.Store
	c := f.plant(t)
	for range 100 {
		f.clock.Add(time.Second)
		if code := f.get(c).Code; code != 200 {
			t.Fatalf("got %d", code)
		}
	}
	// idle 30m → touch every 1m at most: 100 requests over 100s touch once or twice.
	if cs.touches > 2 {
		t.Errorf("%d store writes for 100 requests in 100s; want at most 2", cs.touches)
	}
}

func TestTokenIsCachedAndHeadersSet(t *testing.T) {
	f := newFixture(t, nil)
	c := f.plant(t)
	f.get(c)
	first := f.header.Get("Authorization")
	f.clock.Add(10 * time.Second)
	f.get(c)
	if second := f.header.Get("Authorization"); second != first || !strings.HasPrefix(first, "Bearer ey") {
		t.Errorf("token changed within its half-life or is missing: %q vs %q", first, second)
	}
	if f.header.Get("X-Auth-Request-User") != "u1" || f.header.Get("X-Auth-Request-Email") != "u1@example.com" {
		t.Errorf("identity headers: %v", f.header)
	}
}

func TestBadPathIs400(t *testing.T) {
	f := newFixture(t, nil)
	for _, p := range []string{"/a%5cb", "/a%00b"} {
		req := httptest.NewRequest("GET", "https://app.example.com"+p, nil)
		rec := httptest.NewRecorder()
		f.srv.ServeHTTP(rec, req)
		if rec.Code != 400 || f.hits != 0 {
			t.Errorf("%s: got %d with %d upstream hits; want 400 and none", p, rec.Code, f.hits)
		}
	}
}

// benchClients are the upstream clients the proxied benchmarks compare,
// one sub-benchmark each (client=lean, client=stdlib): go test -bench
// 'ServeHTTP$|DirectUpstream' -count 5 runs both in one command, and
// benchstat -col /client sets them side by side.
var benchClients = []string{ClientStdlib, ClientLean}

// BenchmarkDirectUpstream is the baseline for BenchmarkServeHTTP: the same
// upstream request over a reused connection, without Gatehouse. The
// difference between the two is what Gatehouse adds.
func BenchmarkDirectUpstream(b *testing.B) {
	for _, name := range benchClients {
		b.Run("client="+name, func(b *testing.B) {
			f := newFixture(b, nil)
			tr := NewTransport(TransportConfig{Client: name})
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr}
			defer reportCPU(b)()
			b.ReportAllocs()
			for b.Loop() {
				resp, err := client.Get(f.upURL + "/page")
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
}

// BenchmarkServeHTTP is one authenticated proxied request end to end
// (cookie decode, session load, cached token, header rewrite, upstream
// round trip on a reused connection), with each upstream client.
func BenchmarkServeHTTP(b *testing.B) {
	for _, name := range benchClients {
		b.Run("client="+name, func(b *testing.B) {
			tr := NewTransport(TransportConfig{Client: name})
			defer tr.CloseIdleConnections()
			benchServe(b, newFixtureTransport(b, nil, tr))
		})
	}
}

// BenchmarkServeHTTPParallel is BenchmarkServeHTTP from 64 goroutines at
// once: the proxy at saturation, where the upstream client's cost per
// request decides throughput (BenchmarkServeHTTP, one request at a time in
// one process with its upstream, is latency-bound instead: there each
// wake-up of an idle thread shows, whatever the client).
func BenchmarkServeHTTPParallel(b *testing.B) {
	for _, name := range benchClients {
		b.Run("client="+name, func(b *testing.B) {
			tr := NewTransport(TransportConfig{Client: name})
			defer tr.CloseIdleConnections()
			f := newFixtureTransport(b, nil, tr)
			req := httptest.NewRequest("GET", "https://app.example.com/page", nil)
			req.Header.Set("Cookie", "gatehouse="+f.plant(b))
			req.Header.Set("Accept", "application/json")
			b.SetParallelism(64 / runtime.GOMAXPROCS(0))
			defer reportCPU(b)()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					rec := httptest.NewRecorder()
					f.srv.ServeHTTP(rec, req.Clone(req.Context()))
					if rec.Code != 200 {
						b.Errorf("got %d", rec.Code)
						return
					}
				}
			})
		})
	}
}

// reportCPU adds cpu-ns/op, the process's user and system CPU time per
// iteration: what bounds throughput on a busy machine. ns/op is latency,
// in which a client that keeps the other core busy (http.Transport's
// read and write goroutines) looks faster than it costs.
func reportCPU(b *testing.B) func() {
	start := cpuTime()
	return func() {
		b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkServeHTTPGroups shows the cost of a big identity: a user in 200
// groups (token and headers grow; the token is still cached).
func BenchmarkServeHTTPGroups(b *testing.B) {
	f := newFixture(b, nil)
	groups := make([]string, 200)
	for i := range groups {
		groups[i] = fmt.Sprintf("team-%03d-engineering", i)
	}
	benchServeCookie(b, f, f.plantGroups(b, groups))
}

func benchServe(b *testing.B, f *fixture) {
	benchServeCookie(b, f, f.plant(b))
}

func benchServeCookie(b *testing.B, f *fixture, c string) {
	req := httptest.NewRequest("GET", "https://app.example.com/page", nil)
	req.Header.Set("Cookie", "gatehouse="+c)
	req.Header.Set("Accept", "application/json")
	defer reportCPU(b)()
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		f.srv.ServeHTTP(rec, req.Clone(req.Context()))
		if rec.Code != 200 {
			b.Fatalf("got %d", rec.Code)
		}
	}
}

// BenchmarkSessionCheck is the request path up to (not including) the
// upstream: what /oauth2/auth costs.
func BenchmarkSessionCheck(b *testing.B) {
	f := newFixture(b, nil)
	c := f.plant(b)
	req := httptest.NewRequest("GET", "https://app.example.com/oauth2/auth", nil)
	req.Header.Set("Cookie", "gatehouse="+c)
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		f.srv.ServeHTTP(rec, req.Clone(req.Context()))
		if rec.Code != http.StatusAccepted {
			b.Fatalf("got %d", rec.Code)
		}
	}
}
