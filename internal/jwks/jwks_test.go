package jwks

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// keyServer is a real JWKS endpoint on 127.0.0.1 whose keys, failures and
// holds the test controls. It counts the requests it receives.
type keyServer struct {
	*httptest.Server
	requests atomic.Int64

	mu      sync.Mutex
	keys    []jose.JSONWebKey
	status  int           // answer with this status instead of the keys, when not 0
	hold    chan struct{} // when set, a request waits for it to close (or its client to hang up)
	arrived chan struct{} // when set, receives once per request that arrived
}

func newKeyServer(t *testing.T) *keyServer {
	s := &keyServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		s.mu.Lock()
		keys, status, hold, arrived := s.keys, s.status, s.hold, s.arrived
		s.mu.Unlock()
		if arrived != nil {
			arrived <- struct{}{}
		}
		if hold != nil {
			select {
			case <-hold:
			case <-r.Context().Done():
				return
			}
		}
		if status != 0 {
			http.Error(w, "unavailable", status)
			return
		}
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: keys})
	}))
	t.Cleanup(s.Close)
	return s
}

// add publishes a new P-256 key under kid.
func (s *keyServer) add(kid string) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	s.mu.Lock()
	s.keys = append(s.keys, jose.JSONWebKey{Key: &k.PublicKey, KeyID: kid, Algorithm: "ES256", Use: "sig"})
	s.mu.Unlock()
}

// retire stops publishing kid.
func (s *keyServer) retire(kid string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var kept []jose.JSONWebKey
	for _, k := range s.keys {
		if k.KeyID != kid {
			kept = append(kept, k)
		}
	}
	s.keys = kept
}

func (s *keyServer) setStatus(code int) { s.mu.Lock(); s.status = code; s.mu.Unlock() }

// holdRequests makes the next requests wait until the returned release is
// called; arrived receives once per request.
func (s *keyServer) holdRequests() (arrived <-chan struct{}, release func()) {
	hold, arr := make(chan struct{}), make(chan struct{}, 64)
	s.mu.Lock()
	s.hold, s.arrived = hold, arr
	s.mu.Unlock()
	return arr, func() {
		s.mu.Lock()
		s.hold, s.arrived = nil, nil
		s.mu.Unlock()
		close(hold)
	}
}

func newCache(t *testing.T, srv *keyServer, clk *clock) *Cache {
	t.Helper()
	c, err := New(Config{URL: srv.URL, Client: srv.Client(), Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestLookupFetchesOnceAndCaches(t *testing.T) {
	srv := newKeyServer(t)
	srv.add("k1")
	srv.add("k2")
	c := newCache(t, srv, newClock())
	for range 3 {
		keys, err := c.Lookup(t.Context(), "k1")
		if err != nil || len(keys) != 1 || keys[0].KeyID != "k1" {
			t.Fatalf("Lookup(k1) = %v, %v; want the one k1 key", keys, err)
		}
	}
	if all, err := c.Lookup(t.Context(), ""); err != nil || len(all) != 2 {
		t.Errorf("Lookup without a kid = %d keys, %v; want both", len(all), err)
	}
	if n := srv.requests.Load(); n != 1 {
		t.Errorf("fetches = %d; want 1", n)
	}
}

// TestHungUpCallerDoesNotPoisonTheFetch: a stranger's request names an
// unknown kid and hangs up while the fetch it started is in flight. The
// fetch finishes anyway, and the next request uses its keys without a new
// fetch (and without waiting for any interval).
func TestHungUpCallerDoesNotPoisonTheFetch(t *testing.T) {
	srv := newKeyServer(t)
	srv.add("k1")
	c := newCache(t, srv, newClock())
	arrived, release := srv.holdRequests()

	ctx, hangUp := context.WithCancel(t.Context())
	go func() {
		<-arrived
		hangUp()
	}()
	_, err := c.Lookup(ctx, "stranger")
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.Canceled) || errors.Is(err, ErrUnknownKey) {
		t.Fatalf("Lookup by a caller that hung up = %v; want ErrUnavailable wrapping context.Canceled", err)
	}
	release()
	if keys, err := c.Lookup(t.Context(), "k1"); err != nil || len(keys) != 1 {
		t.Fatalf("Lookup(k1) after the stranger hung up = %v, %v; want the key", keys, err)
	}
	if n := srv.requests.Load(); n != 1 {
		t.Errorf("fetches = %d; want 1 (the stranger's fetch completed and served the next caller)", n)
	}
}

// TestHungUpCallerAtStartup: the same on a fresh cache whose only fetch is
// the one the stranger started.
func TestHungUpCallerAtStartup(t *testing.T) {
	srv := newKeyServer(t)
	srv.add("k1")
	c := newCache(t, srv, newClock())
	arrived, release := srv.holdRequests()
	ctx, hangUp := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := c.Lookup(ctx, "k1")
		done <- err
	}()
	<-arrived
	hangUp()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Lookup = %v; want context.Canceled", err)
	}
	// A legitimate request arriving while the fetch is still held joins it.
	got := make(chan error, 1)
	go func() {
		_, err := c.Lookup(t.Context(), "k1")
		got <- err
	}()
	release()
	if err := <-got; err != nil {
		t.Fatalf("Lookup after the hang-up: %v", err)
	}
	if n := srv.requests.Load(); n != 1 {
		t.Errorf("fetches = %d; want 1", n)
	}
}

// TestFailedFetchRecoversAfterBackoff: a failed fetch is retried after
// RetryMin (doubling while it keeps failing, capped at MinInterval), not
// after a whole MinInterval.
func TestFailedFetchRecoversAfterBackoff(t *testing.T) {
	srv := newKeyServer(t)
	srv.add("k1")
	clk := newClock()
	c, err := New(Config{URL: srv.URL, Client: srv.Client(), Now: clk.Now, MinInterval: 10 * time.Second, RetryMin: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	srv.setStatus(http.StatusServiceUnavailable)
	lookup := func() error { _, err := c.Lookup(t.Context(), "k1"); return err }

	for _, step := range []struct {
		advance time.Duration
		fetches int64 // after the lookup
	}{
		{0, 1},                       // first failure: retry after 1s
		{999 * time.Millisecond, 1},  // not yet
		{time.Millisecond, 2},        // second failure: retry after 2s
		{1999 * time.Millisecond, 2}, //
		{time.Millisecond, 3},        // 4s
		{4 * time.Second, 4},         // 8s
		{8 * time.Second, 5},         // capped at 10s
		{9 * time.Second, 5},
		{time.Second, 6},
	} {
		clk.Advance(step.advance)
		if err := lookup(); !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrUnknownKey) {
			t.Fatalf("after %s: Lookup = %v; want ErrUnavailable", step.advance, err)
		}
		if got := srv.requests.Load(); got != step.fetches {
			t.Errorf("after %s: fetches = %d; want %d", step.advance, got, step.fetches)
		}
	}

	// The provider recovers: the first lookup after the backoff loads the keys.
	srv.setStatus(0)
	clk.Advance(10 * time.Second)
	if err := lookup(); err != nil {
		t.Fatalf("Lookup once the server is back: %v", err)
	}
	// And the backoff starts over after a success.
	srv.setStatus(http.StatusBadGateway)
	clk.Advance(10 * time.Second)
	if _, err := c.Lookup(t.Context(), "unknown"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("unknown kid with the server failing = %v; want ErrUnavailable", err)
	}
	before := srv.requests.Load()
	srv.setStatus(0)
	clk.Advance(time.Second)
	if _, err := c.Lookup(t.Context(), "unknown"); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("unknown kid once the server is back = %v; want ErrUnknownKey", err)
	}
	if got := srv.requests.Load(); got != before+1 {
		t.Errorf("fetches = %d; want %d (a retry 1s after the first failure)", got, before+1)
	}
}

// TestUnknownKidStormIsBounded: a flood of tokens with made-up kids fetches
// the set at most once per MinInterval.
func TestUnknownKidStormIsBounded(t *testing.T) {
	srv := newKeyServer(t)
	srv.add("k1")
	clk := newClock()
	c := newCache(t, srv, clk)
	const (
		step  = 100 * time.Millisecond
		steps = 600 // one minute
	)
	for i := range steps {
		var wg sync.WaitGroup
		for j := range 5 {
			wg.Go(func() {
				if _, err := c.Lookup(t.Context(), fmt.Sprintf("made-up-%d-%d", i, j)); !errors.Is(err, ErrUnknownKey) {
					t.Errorf("Lookup(made-up kid) = %v; want ErrUnknownKey", err)
				}
			})
		}
		wg.Wait()
		clk.Advance(step)
	}
	// One fetch at 0s, then one per 10s: 6 in the minute.
	if got, most := srv.requests.Load(), int64(steps*step/DefaultMinInterval); got < 2 || got > most {
		t.Errorf("fetches during a one-minute storm = %d; want between 2 and %d", got, most)
	}
	if _, err := c.Lookup(t.Context(), "k1"); err != nil {
		t.Errorf("the real key after the storm: %v", err)
	}
}

// TestConcurrentLookupsShareOneFetch: after a rotation, many requests
// bearing the new kid at once all succeed with one fetch.
func TestConcurrentLookupsShareOneFetch(t *testing.T) {
	srv := newKeyServer(t)
	srv.add("k1")
	clk := newClock()
	c := newCache(t, srv, clk)
	if _, err := c.Lookup(t.Context(), "k1"); err != nil {
		t.Fatal(err)
	}
	srv.add("k2")
	clk.Advance(DefaultMinInterval)
	arrived, release := srv.holdRequests()
	var wg sync.WaitGroup
	var failed atomic.Int32
	for range 20 {
		wg.Go(func() {
			if _, err := c.Lookup(t.Context(), "k2"); err != nil {
				failed.Add(1)
			}
		})
	}
	<-arrived
	release()
	wg.Wait()
	if failed.Load() != 0 {
		t.Errorf("%d of 20 lookups of a newly rotated key failed; want 0", failed.Load())
	}
	if n := srv.requests.Load(); n != 2 {
		t.Errorf("fetches = %d; want 2", n)
	}
}

// TestStaleKeysServeWhileRefreshing: keys older than MaxAge answer at once
// while a background fetch replaces them; a retired key stops verifying
// once that fetch lands; a failed refresh keeps the old keys.
func TestStaleKeysServeWhileRefreshing(t *testing.T) {
	srv := newKeyServer(t)
	srv.add("k1")
	srv.add("k2")
	clk := newClock()
	c := newCache(t, srv, clk)
	if _, err := c.Lookup(t.Context(), "k1"); err != nil {
		t.Fatal(err)
	}
	srv.retire("k1")
	clk.Advance(DefaultMaxAge)
	arrived, release := srv.holdRequests()
	// The JWKS endpoint now hangs; the stale key still answers at once.
	if _, err := c.Lookup(t.Context(), "k1"); err != nil {
		t.Fatalf("stale key during a hung refresh: %v", err)
	}
	<-arrived
	release()
	if err := c.Wait(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Lookup(t.Context(), "k1"); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("retired key after the refresh = %v; want ErrUnknownKey", err)
	}
	if _, err := c.Lookup(t.Context(), "k2"); err != nil {
		t.Errorf("k2 after the refresh: %v", err)
	}

	// The endpoint fails: stale keys keep serving, and the failure is retried.
	srv.setStatus(http.StatusInternalServerError)
	clk.Advance(DefaultMaxAge)
	before := srv.requests.Load()
	for range 3 {
		if _, err := c.Lookup(t.Context(), "k2"); err != nil {
			t.Fatalf("stale key with the endpoint failing: %v", err)
		}
		if err := c.Wait(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if got := srv.requests.Load(); got != before+1 {
		t.Errorf("refresh attempts = %d; want 1 within the backoff", got-before)
	}
	clk.Advance(DefaultRetryMin)
	if _, err := c.Lookup(t.Context(), "k2"); err != nil {
		t.Fatal(err)
	}
	if err := c.Wait(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := srv.requests.Load(); got != before+2 {
		t.Errorf("refresh attempts = %d; want 2 after the backoff", got-before)
	}
}

// TestUnavailableVersusUnknown: callers must tell a bad token (ErrUnknownKey)
// from keys they cannot have (ErrUnavailable).
func TestUnavailableVersusUnknown(t *testing.T) {
	srv := newKeyServer(t)
	srv.add("k1")
	clk := newClock()
	c := newCache(t, srv, clk)

	srv.setStatus(http.StatusBadGateway)
	_, err := c.Lookup(t.Context(), "k1")
	if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrUnknownKey) || !strings.Contains(err.Error(), "502") {
		t.Errorf("never fetched = %v; want ErrUnavailable saying what the server answered", err)
	}
	srv.setStatus(0)
	clk.Advance(time.Minute)
	if _, err := c.Lookup(t.Context(), "k9"); !errors.Is(err, ErrUnknownKey) || errors.Is(err, ErrUnavailable) || errors.Is(err, ErrNotRefetched) {
		t.Errorf("unknown kid in a set fetched for this lookup = %v; want ErrUnknownKey alone", err)
	}
	if _, err := c.Lookup(t.Context(), "k9"); !errors.Is(err, ErrUnknownKey) || !errors.Is(err, ErrNotRefetched) {
		t.Errorf("unknown kid again within MinInterval = %v; want ErrUnknownKey and ErrNotRefetched", err)
	}
	srv.setStatus(http.StatusBadGateway)
	clk.Advance(time.Minute)
	if _, err := c.Lookup(t.Context(), "k9"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("unknown kid while the refetch fails = %v; want ErrUnavailable", err)
	}
	if _, err := c.Lookup(t.Context(), "k1"); err != nil {
		t.Errorf("known kid while the refetch fails: %v", err)
	}
}

func TestRefresh(t *testing.T) {
	srv := newKeyServer(t)
	srv.add("k1")
	clk := newClock()
	c := newCache(t, srv, clk)
	for range 2 { // Refresh ignores MinInterval
		if err := c.Refresh(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if n := srv.requests.Load(); n != 2 {
		t.Errorf("fetches = %d; want 2", n)
	}
	srv.setStatus(http.StatusNotFound)
	if err := c.Refresh(t.Context()); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Refresh of a failing endpoint = %v; want ErrUnavailable", err)
	}
	if _, err := c.Lookup(t.Context(), "k1"); err != nil {
		t.Errorf("keys after a failed Refresh: %v; want the old ones kept", err)
	}
}

// TestClockSetBack: a clock that jumps back by more than an interval does
// not block fetching until it catches up.
func TestClockSetBack(t *testing.T) {
	srv := newKeyServer(t)
	srv.add("k1")
	clk := newClock()
	c := newCache(t, srv, clk)
	_, _ = c.Lookup(t.Context(), "k1")
	clk.Advance(-time.Hour)
	srv.add("k2")
	if _, err := c.Lookup(t.Context(), "k2"); err != nil {
		t.Errorf("new kid after the clock went back an hour: %v", err)
	}
}

func TestParse(t *testing.T) {
	srv := newKeyServer(t)
	srv.add("good")
	good, _ := json.Marshal(srv.keys[0])
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	privJSON, _ := json.Marshal(jose.JSONWebKey{Key: priv, KeyID: "private", Algorithm: "ES256"})
	var enc map[string]any
	_ = json.Unmarshal(good, &enc)
	enc["use"], enc["kid"] = "enc", "enc"
	encJSON, _ := json.Marshal(enc)

	keys, err := parse([]byte(`{"keys":[`+
		`{"kty":"oct","kid":"hmac","k":"c2VjcmV0"},`+
		`{"kty":"EC","kid":"off-curve","crv":"P-256","x":"AA","y":"AA"},`+
		`{"kty":"QKD","kid":"future"},`+
		`"not an object",`+
		string(privJSON)+`,`+string(encJSON)+`,`+string(good)+`]}`), nil)
	if err != nil || len(keys) != 1 || keys[0].KeyID != "good" {
		t.Errorf("parse = %v, %v; want only the good public signing key", keys, err)
	}
	for name, body := range map[string]string{
		"empty set":  `{"keys":[]}`,
		"not json":   `<html>`,
		"keys null":  `{"keys":null}`,
		"only hmac":  `{"keys":[{"kty":"oct","kid":"hmac","k":"c2VjcmV0"}]}`,
		"json array": `[]`,
	} {
		if _, err := parse([]byte(body), nil); err == nil {
			t.Errorf("parse(%s) succeeded; want an error", name)
		}
	}
	if _, err := parse([]byte(`{"keys":[`+string(good)+`]}`), func(k jose.JSONWebKey) bool { return k.KeyID != "good" }); err == nil {
		t.Error("parse kept a key Accept refused")
	}
}

func TestFetchLimits(t *testing.T) {
	for name, h := range map[string]http.HandlerFunc{
		"too large": func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte(`{"keys":[` + strings.Repeat(" ", MaxBytes) + `]}`))
		},
		"redirect": func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://127.0.0.1:1/keys", http.StatusFound)
		},
	} {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(h)
			t.Cleanup(srv.Close)
			c, err := New(Config{URL: srv.URL}) // the default client: no redirects
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Refresh(t.Context()); !errors.Is(err, ErrUnavailable) {
				t.Errorf("Refresh = %v; want ErrUnavailable", err)
			}
		})
	}
}

func TestNewRefusesBadURLs(t *testing.T) {
	for _, u := range []string{"", "/keys", "file:///etc/jwks.json", "https://", "ftp://idp.example.com/keys"} {
		if _, err := New(Config{URL: u}); err == nil {
			t.Errorf("New(URL %q) succeeded; want an error", u)
		}
	}
}
