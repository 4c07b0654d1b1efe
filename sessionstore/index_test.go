package sessionstore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/testredis"
)

// TestRedisIndexBounded: the per-user index holds live sessions only. A
// session that ends by Delete or by an idle check leaves it, an expired one
// is trimmed by the next write, and the index expires with its longest
// session.
func TestRedisIndexBounded(t *testing.T) {
	ctx := context.Background()
	srv := testredis.Start(t, testredis.Options{})
	raw := rawClient(t, srv)
	clock := newFakeClock()
	r := newRedisStore(t, srv, clock.Now)
	ukey := r.indexKey("u", "alice")
	card := func() int64 {
		t.Helper()
		n, err := raw.ZCard(ctx, ukey).Result()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	save := func(lifetime time.Duration) Ticket {
		t.Helper()
		tk := mustTicket(t)
		s := &Session{Subject: "alice", ProviderSID: "sid-" + tk.SID(), LastSeen: clock.Now(), ExpiresAt: clock.Now().Add(lifetime)}
		if err := r.Save(ctx, tk, s); err != nil {
			t.Fatal(err)
		}
		return tk
	}

	short, long := save(time.Minute), save(2*time.Hour)
	signedOut, idle := save(time.Hour), save(time.Hour)
	if got := card(); got != 4 {
		t.Fatalf("index size after 4 logins = %d; want 4", got)
	}
	if err := r.Delete(ctx, signedOut); err != nil {
		t.Fatal(err)
	}
	if got := card(); got != 3 {
		t.Errorf("index size after a sign-out = %d; want 3", got)
	}
	if n, _ := raw.Exists(ctx, r.indexKey("p", "sid-"+signedOut.SID())).Result(); n != 0 {
		t.Errorf("the signed-out session's provider-sid index still exists")
	}
	clock.Advance(45 * time.Minute)
	if ended, err := r.DeleteIfIdle(ctx, idle, 30*time.Minute, clock.Now()); err != nil || !ended {
		t.Fatalf("DeleteIfIdle = %v, %v; want true", ended, err)
	}
	if got := card(); got != 2 {
		t.Errorf("index size after an idle session ended = %d; want 2", got)
	}
	clock.Advance(30 * time.Minute) // short expired (by the store's clock; Redis may still hold its key)
	save(10 * time.Minute)
	members, err := raw.ZRange(ctx, ukey, 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(members) != 2 {
		t.Errorf("index after the next login = %d members; want 2 (the expired session trimmed)", len(members))
	}
	for _, m := range members {
		if m == storeHash(short.ID) {
			t.Error("the expired session is still indexed")
		}
	}
	// The index lives as long as its longest session: long, 2h from the start, 45m left.
	ttl, err := raw.PTTL(ctx, ukey).Result()
	if err != nil {
		t.Fatal(err)
	}
	if want := 45 * time.Minute; ttl < want || ttl > want+2*time.Second {
		t.Errorf("index TTL = %v; want about %v (the longest session's remaining life)", ttl, want)
	}
	if _, err := r.Load(ctx, long); err != nil {
		t.Errorf("Load of the long session: %v", err)
	}
}

// TestRedisRevokeManyInBatches: a user with more sessions than one batch is
// revoked completely, the count is exact, and nothing of the index is left.
func TestRedisRevokeManyInBatches(t *testing.T) {
	ctx := context.Background()
	srv := testredis.Start(t, testredis.Options{})
	raw := rawClient(t, srv)
	clock := newFakeClock()
	r := newRedisStore(t, srv, clock.Now)
	const n = 3*revokeBatch + 17
	tickets := make([]Ticket, n)
	for i := range tickets {
		tickets[i] = mustTicket(t)
		if err := r.Save(ctx, tickets[i], &Session{Subject: "bulk", ExpiresAt: clock.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	batches := 0
	r.testHookRevokeBatch = func() { batches++ }
	got, err := r.DeleteBySubject(ctx, "bulk")
	if err != nil || got != n {
		t.Fatalf("DeleteBySubject = %d, %v; want %d", got, err, n)
	}
	if batches < 4 {
		t.Errorf("revocation ran %d batches; want at least 4 of %d", batches, revokeBatch)
	}
	for _, tk := range []Ticket{tickets[0], tickets[n/2], tickets[n-1]} {
		if _, err := r.Load(ctx, tk); !errors.Is(err, ErrNotFound) {
			t.Errorf("Load of a revoked session: %v; want ErrNotFound", err)
		}
	}
	keys, err := raw.Keys(ctx, r.prefix+":*").Result()
	if err != nil || len(keys) != 0 {
		t.Errorf("keys left after revoking every session = %q, %v; want none", keys, err)
	}
}

// TestRedisRevokeRacesSave: a session saved while a revocation is under way
// (between its read of the index and its deletes) is either revoked or
// still indexed, so the next revocation ends it. Removing the whole index
// key, as an SMEMBERS + DEL revocation does, loses it.
func TestRedisRevokeRacesSave(t *testing.T) {
	ctx := context.Background()
	srv := testredis.Start(t, testredis.Options{})
	raw := rawClient(t, srv)
	clock := newFakeClock()
	r := newRedisStore(t, srv, clock.Now)
	// A second replica writing to the same Redis.
	other, err := NewRedis(RedisConfig{Addrs: []string{srv.Addr}, KeyPrefix: r.prefix, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })

	old := mustTicket(t)
	if err := r.Save(ctx, old, &Session{Subject: "carol", ExpiresAt: clock.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	fresh := mustTicket(t)
	saved := make(chan error, 1)
	r.testHookRevokeBatch = func() {
		r.testHookRevokeBatch = nil
		// Synchronous: the Save completes inside the revocation's window.
		saved <- other.Save(ctx, fresh, &Session{Subject: "carol", ExpiresAt: clock.Now().Add(time.Hour)})
	}
	if _, err := r.DeleteBySubject(ctx, "carol"); err != nil {
		t.Fatal(err)
	}
	if err := <-saved; err != nil {
		t.Fatalf("concurrent Save: %v", err)
	}
	if _, err := r.Load(ctx, old); !errors.Is(err, ErrNotFound) {
		t.Errorf("the session read by the revocation survived: %v", err)
	}
	if _, err := r.Load(ctx, fresh); err == nil {
		if _, err := raw.ZScore(ctx, r.indexKey("u", "carol"), storeHash(fresh.ID)).Result(); err != nil {
			t.Fatalf("the session saved during the revocation is alive but no longer indexed (%v): no revocation can reach it", err)
		}
		if n, err := r.DeleteBySubject(ctx, "carol"); err != nil || n != 1 {
			t.Fatalf("second DeleteBySubject = %d, %v; want 1", n, err)
		}
		if _, err := r.Load(ctx, fresh); !errors.Is(err, ErrNotFound) {
			t.Errorf("Load after the second revocation: %v; want ErrNotFound", err)
		}
	}
}

// TestRedisSaveIndexFailure: when the index cannot be written, Save fails
// and leaves no session behind that revocation could not reach.
func TestRedisSaveIndexFailure(t *testing.T) {
	ctx := context.Background()
	srv := testredis.Start(t, testredis.Options{})
	raw := rawClient(t, srv)
	clock := newFakeClock()
	r := newRedisStore(t, srv, clock.Now)
	// The index key holds a value of the wrong type: ZADD on it fails.
	if err := raw.Set(ctx, r.indexKey("u", "dave"), "not a sorted set", 0).Err(); err != nil {
		t.Fatal(err)
	}
	tk := mustTicket(t)
	if err := r.Save(ctx, tk, &Session{Subject: "dave", ExpiresAt: clock.Now().Add(time.Hour)}); err == nil {
		t.Fatal("Save with an unwritable index = nil; want an error")
	}
	if n, _ := raw.Exists(ctx, r.key(storeHash(tk.ID))).Result(); n != 0 {
		t.Error("Save failed but left the unindexed session in Redis")
	}
}
