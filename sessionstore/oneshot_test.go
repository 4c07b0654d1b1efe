package sessionstore

import (
	"context"
	"errors"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/testredis"
)

// usedMarker is the one-shot key method set every store has.
type usedMarker interface {
	MarkUsed(ctx context.Context, key string, until time.Time) (bool, error)
	UnmarkUsed(ctx context.Context, key string) error
}

var (
	_ usedMarker = (*Memory)(nil)
	_ usedMarker = (*Redis)(nil)
	_ usedMarker = (*Cached)(nil)
)

// testOneShot is the conformance case for one-shot keys (testStore runs it
// against every store): first use once, concurrent first uses decided once,
// UnmarkUsed for a retry, kept until `until` and not forever.
func testOneShot(t *testing.T, h harness) {
	ctx := context.Background()
	clock := newFakeClock()
	s := h.newStore(t, clock.Now).(usedMarker)
	until := clock.Now().Add(5 * time.Minute)

	mark := func(key string) bool {
		t.Helper()
		first, err := s.MarkUsed(ctx, key, until)
		if err != nil {
			t.Fatalf("MarkUsed(%q): %v", key, err)
		}
		return first
	}
	if !mark("jti-1") {
		t.Fatal("first MarkUsed = false; want true")
	}
	if mark("jti-1") {
		t.Fatal("second MarkUsed = true; want false (a replay)")
	}
	if !mark("jti-2") {
		t.Fatal("MarkUsed of another key = false; want true")
	}
	if err := s.UnmarkUsed(ctx, "jti-1"); err != nil {
		t.Fatal(err)
	}
	if !mark("jti-1") {
		t.Fatal("MarkUsed after UnmarkUsed = false; want true")
	}
	if err := s.UnmarkUsed(ctx, "never-marked"); err != nil {
		t.Errorf("UnmarkUsed of an unknown key: %v", err)
	}

	var wg sync.WaitGroup
	var firsts atomic.Int32
	for range 8 {
		wg.Go(func() {
			first, err := s.MarkUsed(ctx, "jti-race", until)
			if err != nil {
				t.Error(err)
			}
			if first {
				firsts.Add(1)
			}
		})
	}
	wg.Wait()
	if n := firsts.Load(); n != 1 {
		t.Errorf("eight concurrent MarkUsed of one key: %d were first; want 1", n)
	}

	if _, err := s.MarkUsed(ctx, "jti-late", clock.Now()); err == nil {
		t.Error("MarkUsed with until = now succeeded; want an error")
	}

	// Kept until `until`, then forgotten: by the store's clock (Memory), or
	// by Redis's own expiry, which must be what was asked.
	switch st := s.(type) {
	case *Memory:
		clock.Advance(5*time.Minute - time.Second)
		if mark("jti-2") {
			t.Error("MarkUsed a second before until = true; want false")
		}
		clock.Advance(time.Second)
		until = clock.Now().Add(time.Minute)
		if !mark("jti-2") {
			t.Error("MarkUsed at until = false; want true (the key expired)")
		}
	default:
		r, ok := st.(*Redis)
		if c, isCached := st.(*Cached); isCached {
			r, ok = c.store, true
		}
		if !ok {
			t.Fatalf("no expiry check for %T", st)
		}
		ttl, err := r.client.PTTL(ctx, r.usedKey("jti-2")).Result()
		if err != nil || ttl <= 5*time.Minute-10*time.Second || ttl > 5*time.Minute {
			t.Errorf("Redis TTL of a used key = %s, %v; want 5m (until - now)", ttl, err)
		}
	}
}

// TestOneShotAcrossReplicas: a key marked used on one replica is used on
// another sharing the Redis, with or without their caches.
func TestOneShotAcrossReplicas(t *testing.T) {
	ctx := context.Background()
	srv := testredis.Start(t, testredis.Options{})
	ra := newRedisStore(t, srv, nil)
	rb, err := NewRedis(RedisConfig{Addrs: []string{srv.Addr}, KeyPrefix: ra.prefix})
	if err != nil {
		t.Fatal(err)
	}
	a := NewCached(ra, CacheConfig{TTL: time.Hour})
	b := NewCached(rb, CacheConfig{TTL: time.Hour})
	t.Cleanup(func() { a.Close(); b.Close() })
	until := time.Now().Add(time.Minute)
	if first, err := a.MarkUsed(ctx, "jti", until); err != nil || !first {
		t.Fatalf("replica a: %v, %v; want first", first, err)
	}
	if first, err := b.MarkUsed(ctx, "jti", until); err != nil || first {
		t.Fatalf("replica b: %v, %v; want already used", first, err)
	}
	if first, err := rb.MarkUsed(ctx, "jti", until); err != nil || first {
		t.Fatalf("replica b without its cache: %v, %v; want already used", first, err)
	}
}

// TestOneShotAtRest: Redis holds a hash of the key, never the key, under
// the prefix, one hash-tagged key per token.
func TestOneShotAtRest(t *testing.T) {
	ctx := context.Background()
	srv := testredis.Start(t, testredis.Options{})
	raw := rawClient(t, srv)
	r := newRedisStore(t, srv, nil)
	const jti = "logout-jti-7f3a9c"
	if _, err := r.MarkUsed(ctx, jti, time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	keys, err := raw.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || !regexp.MustCompile(`^`+r.prefix+`:r:\{[0-9a-f]{64}\}$`).MatchString(keys[0]) {
		t.Fatalf("keys = %q; want one %s:r:{sha256}", keys, r.prefix)
	}
	if v, _ := raw.Get(ctx, keys[0]).Result(); v != "1" {
		t.Errorf("value = %q; want a marker that says nothing", v)
	}
	if regexp.MustCompile(regexp.QuoteMeta(jti)).MatchString(keys[0]) {
		t.Error("the key holds the token's jti")
	}
}

// TestMemoryOneShotBound: Memory keeps at most maxUsed keys; expired ones
// make room; when every slot is live it refuses rather than forgets.
func TestMemoryOneShotBound(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	m := NewMemory(MemoryConfig{Now: clock.Now})
	t.Cleanup(func() { m.Close() })
	m.used.m = make(map[string]ttlEntry, maxUsed)
	for i := range maxUsed {
		m.used.m[keyHash("used", strconv.Itoa(i))] = ttlEntry{exp: clock.Now().Add(time.Minute)}
	}
	if _, err := m.MarkUsed(ctx, "one-too-many", clock.Now().Add(time.Minute)); !errors.Is(err, ErrTooManyUsed) {
		t.Fatalf("MarkUsed when full = %v; want ErrTooManyUsed", err)
	}
	clock.Advance(time.Minute)
	if first, err := m.MarkUsed(ctx, "one-too-many", clock.Now().Add(time.Minute)); err != nil || !first {
		t.Fatalf("MarkUsed once the others expired = %v, %v; want first", first, err)
	}
}
