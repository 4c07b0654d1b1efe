package sessionstore

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/testredis"
)

// replicas returns two Cached stores over one Redis (as two Gatehouse
// replicas), both subscribed, reading the time from clock.
func replicas(t *testing.T, srv *testredis.Server, clock *fakeClock, cfg CacheConfig) (a, b *Cached) {
	t.Helper()
	cfg.Now = clock.Now
	ra := newRedisStore(t, srv, clock.Now)
	rb, err := NewRedis(RedisConfig{Addrs: []string{srv.Addr}, Password: srv.Password, KeyPrefix: ra.prefix, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	a, b = NewCached(ra, cfg), NewCached(rb, cfg)
	t.Cleanup(func() { a.Close(); b.Close() })
	<-a.subscribed
	<-b.subscribed
	return a, b
}

// TestCachedLoadRacesInvalidation: a session read from Redis just before
// another replica's write, whose invalidation arrives before the read is
// cached, is served once but not kept: the next read sees the write.
func TestCachedLoadRacesInvalidation(t *testing.T) {
	ctx := context.Background()
	srv := testredis.Start(t, testredis.Options{})
	clock := newFakeClock()
	a, b := replicas(t, srv, clock, CacheConfig{TTL: time.Hour})
	aGot := messages(a)

	tk := mustTicket(t)
	v1 := fullSession(clock.Now())
	if err := a.store.Save(ctx, tk, v1); err != nil {
		t.Fatal(err)
	}
	a.mu.Lock()
	a.testHookLoaded = func() {
		a.mu.Lock()
		a.testHookLoaded = nil
		a.mu.Unlock()
		// a has read v1 from Redis; b writes v2 and a receives the news before it caches v1.
		v2 := v1.Clone()
		v2.Groups, v2.Version = []string{"promoted"}, v1.Version+1
		if err := b.Replace(ctx, tk, v2); err != nil {
			t.Errorf("Replace on b: %v", err)
		}
		awaitMessage(t, aGot, storeHash(tk.ID))
	}
	a.mu.Unlock()

	first, err := a.Load(ctx, tk)
	if err != nil || first.Version != v1.Version {
		t.Fatalf("Load racing the write = %v, %v; want v1 (current when read)", first, err)
	}
	second, err := a.Load(ctx, tk)
	if err != nil {
		t.Fatal(err)
	}
	if second.Version != v1.Version+1 {
		t.Fatalf("Load after the invalidation: Version %d; want %d (a stale copy was cached)", second.Version, v1.Version+1)
	}
}

// TestCachedIdleCheckRereads: replica a's cached copy says the session has
// been idle too long, but b saw the user since. The idle check re-reads
// Redis and keeps the session.
func TestCachedIdleCheckRereads(t *testing.T) {
	ctx := context.Background()
	srv := testredis.Start(t, testredis.Options{})
	clock := newFakeClock()
	a, b := replicas(t, srv, clock, CacheConfig{TTL: time.Hour})
	const idle = 30 * time.Minute

	tk := mustTicket(t)
	start := clock.Now()
	if err := a.store.Save(ctx, tk, fullSession(start)); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Load(ctx, tk); err != nil { // cached in a with LastSeen = start
		t.Fatal(err)
	}
	if err := b.Touch(ctx, tk, start.Add(20*time.Minute)); err != nil {
		t.Fatal(err)
	}
	clock.Advance(31 * time.Minute)
	stale, err := a.View(ctx, tk)
	if err != nil {
		t.Fatal(err)
	}
	if !stale.Expired(clock.Now(), idle) {
		t.Fatal("test setup: a's cached copy should look idle")
	}
	ended, err := a.DeleteIfIdle(ctx, tk, idle, clock.Now())
	if err != nil || ended {
		t.Fatalf("DeleteIfIdle = %v, %v; want false: b saw the user 11 minutes ago", ended, err)
	}
	got, err := a.Load(ctx, tk)
	if err != nil {
		t.Fatalf("Load after the idle check: %v", err)
	}
	if want := start.Add(20 * time.Minute); !got.LastSeen.Equal(want) {
		t.Errorf("LastSeen after the idle check = %v; want %v (the stale copy dropped)", got.LastSeen, want)
	}
}

// TestCachedPublishFailure: Redis accepts the write but refuses the
// publish (an ACL without channel permission). The write is not reported
// as failed, the failure is counted and shown by Health, and once Redis
// accepts publishes again the retrier delivers the invalidation.
func TestCachedPublishFailure(t *testing.T) {
	ctx := context.Background()
	srv := testredis.Start(t, testredis.Options{})
	raw := rawClient(t, srv)
	// Like a Redis ACL that forgot the channel: keys allowed, channels not.
	if err := raw.Do(ctx, "ACL", "SETUSER", "nochan", "on", ">nochan-pw", "~*", "resetchannels", "+@all").Err(); err != nil {
		t.Fatal(err)
	}
	clock := newFakeClock()
	ra, err := NewRedis(RedisConfig{Addrs: []string{srv.Addr}, Username: "nochan", Password: "nochan-pw", KeyPrefix: "pubfail", Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	rb, err := NewRedis(RedisConfig{Addrs: []string{srv.Addr}, KeyPrefix: "pubfail", Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	a := NewCached(ra, CacheConfig{TTL: time.Hour, Now: clock.Now})
	b := NewCached(rb, CacheConfig{TTL: time.Hour, Now: clock.Now})
	t.Cleanup(func() { a.Close(); b.Close() })
	bGot := messages(b)
	<-b.subscribed

	tk := mustTicket(t)
	if err := b.Save(ctx, tk, fullSession(clock.Now())); err != nil {
		t.Fatal(err)
	}
	awaitMessage(t, bGot, storeHash(tk.ID))
	if _, err := b.Load(ctx, tk); err != nil { // cached in b
		t.Fatal(err)
	}
	if err := a.Delete(ctx, tk); err != nil {
		t.Fatalf("Delete whose invalidation cannot be published: %v; want nil (the session is gone)", err)
	}
	if _, err := a.store.Load(ctx, tk); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the session is still in Redis: %v", err)
	}
	st := a.Stats()
	if st.PublishFailures == 0 || st.PendingInvalidations != 1 {
		t.Errorf("Stats = %+v; want a publish failure and one pending invalidation", st)
	}
	if err := a.Health(ctx); err == nil || !strings.Contains(err.Error(), "not yet delivered") {
		t.Errorf("Health = %v; want it to report the undelivered invalidation", err)
	}

	if err := raw.Do(ctx, "ACL", "SETUSER", "nochan", "allchannels").Err(); err != nil {
		t.Fatal(err)
	}
	awaitMessage(t, bGot, storeHash(tk.ID))
	if _, err := b.Load(ctx, tk); !errors.Is(err, ErrNotFound) {
		t.Errorf("b after the retried invalidation: %v; want ErrNotFound", err)
	}
	waitFor(t, 10*time.Second, "pending invalidations", func() error {
		if n := a.Stats().PendingInvalidations; n != 0 {
			return errors.New("still pending")
		}
		return nil
	})
}

// TestCachedBoundsAndStats: the cache holds at most MaxEntries, evicts
// entries past the TTL first, and counts hits and misses.
func TestCachedBoundsAndStats(t *testing.T) {
	ctx := context.Background()
	srv := testredis.Start(t, testredis.Options{})
	clock := newFakeClock()
	r := newRedisStore(t, srv, clock.Now)
	c := NewCached(r, CacheConfig{TTL: 10 * time.Second, MaxEntries: 4, Now: clock.Now})
	t.Cleanup(func() { c.Close() })
	<-c.subscribed

	var tks []Ticket
	for range 6 {
		tk := mustTicket(t)
		if err := r.Save(ctx, tk, fullSession(clock.Now())); err != nil {
			t.Fatal(err)
		}
		tks = append(tks, tk)
	}
	for _, tk := range tks[:3] {
		if _, err := c.Load(ctx, tk); err != nil {
			t.Fatal(err)
		}
	}
	clock.Advance(11 * time.Second) // the first three are past the TTL
	for _, tk := range tks[3:] {
		if _, err := c.Load(ctx, tk); err != nil {
			t.Fatal(err)
		}
	}
	if got := c.Stats().Entries; got != 3 {
		t.Errorf("entries = %d; want 3 (the expired ones evicted first, the fresh ones kept)", got)
	}
	before := c.Stats()
	if _, err := c.Load(ctx, tks[5]); err != nil {
		t.Fatal(err)
	}
	if _, err := c.View(ctx, tks[4]); err != nil {
		t.Fatal(err)
	}
	after := c.Stats()
	if after.Hits-before.Hits != 2 || after.Misses != before.Misses {
		t.Errorf("stats %+v -> %+v; want 2 more hits, no more misses", before, after)
	}
	if after.Misses != 6 {
		t.Errorf("misses = %d; want 6 (one per first read)", after.Misses)
	}
	for range 10 {
		tk := mustTicket(t)
		if err := r.Save(ctx, tk, fullSession(clock.Now())); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Load(ctx, tk); err != nil {
			t.Fatal(err)
		}
		if got := c.Stats().Entries; got > 4 {
			t.Fatalf("entries = %d; want at most MaxEntries 4", got)
		}
	}
}

// TestCachedLoadFresh: a copy cached before another replica's write is
// what Load serves until the invalidation or the TTL, but LoadFresh (the
// refresher's read) always sees the stored session.
func TestCachedLoadFresh(t *testing.T) {
	ctx := context.Background()
	srv := testredis.Start(t, testredis.Options{})
	clock := newFakeClock()
	r := newRedisStore(t, srv, clock.Now)
	c := NewCached(r, CacheConfig{TTL: time.Hour, Now: clock.Now})
	t.Cleanup(func() { c.Close() })
	<-c.subscribed
	tk := mustTicket(t)
	v1 := fullSession(clock.Now())
	if err := r.Save(ctx, tk, v1); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Load(ctx, tk); err != nil { // cached
		t.Fatal(err)
	}
	v2 := v1.Clone()
	v2.RefreshToken, v2.Version = "rotated", v1.Version+1
	if err := r.Replace(ctx, tk, v2); err != nil { // behind the cache's back: no invalidation
		t.Fatal(err)
	}
	if got, err := c.Load(ctx, tk); err != nil || got.Version != v1.Version {
		t.Fatalf("Load = %v, %v; want the cached v1 (test setup)", got, err)
	}
	got, err := c.LoadFresh(ctx, tk)
	if err != nil || got.RefreshToken != "rotated" {
		t.Fatalf("LoadFresh = %v, %v; want the stored session with the rotated refresh token", got, err)
	}
	if got, err := c.Load(ctx, tk); err != nil || got.Version != v2.Version {
		t.Errorf("Load after LoadFresh = %v, %v; want v2 (the stale copy dropped)", got, err)
	}
}

// freshLoader is what a refresher declares: every store offers it.
type freshLoader interface {
	LoadFresh(ctx context.Context, t Ticket) (*Session, error)
}

var (
	_ freshLoader = (*Memory)(nil)
	_ freshLoader = (*Redis)(nil)
	_ freshLoader = (*Cached)(nil)
)
