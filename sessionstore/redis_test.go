package sessionstore

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/gatehouse/gatehouse/internal/testredis"
)

// rawClient talks to srv directly, to inspect what the store wrote.
func rawClient(t testing.TB, srv *testredis.Server) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{
		Addr:                     srv.Addr,
		Password:                 srv.Password,
		TLSConfig:                srv.TLSConfig,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	})
	t.Cleanup(func() { c.Close() })
	return c
}

// newRedisStore returns a store on srv with its own key prefix, so stores sharing a server never see each other.
func newRedisStore(t testing.TB, srv *testredis.Server, now func() time.Time) *Redis {
	t.Helper()
	r, err := NewRedis(RedisConfig{
		Addrs:     []string{srv.Addr},
		Password:  srv.Password,
		TLSConfig: srv.TLSConfig,
		KeyPrefix: fmt.Sprintf("test%d", prefixSeq.Add(1)),
		Now:       now,
	})
	if err != nil {
		t.Fatalf("NewRedis: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

var prefixSeq atomic.Int64

func TestRedisConformance(t *testing.T) {
	tests := []struct {
		name string
		opts testredis.Options
	}{
		{"standalone", testredis.Options{}},
		{"password", testredis.Options{Password: "conformance-pw"}},
		{"tls and password", testredis.Options{TLS: true, Password: "conformance-pw"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := testredis.Start(t, tt.opts)
			raw := rawClient(t, srv)
			testStore(t, harness{
				newStore: func(t *testing.T, now func() time.Time) store {
					return newRedisStore(t, srv, now)
				},
				ttl: func(t *testing.T, s store, tk Ticket) time.Duration {
					key := s.(*Redis).key(storeHash(tk.ID))
					ttl, err := raw.PTTL(context.Background(), key).Result()
					if err != nil {
						t.Fatalf("PTTL %s: %v", key, err)
					}
					return ttl
				},
			})
		})
	}
}

// TestRedisAtRest checks what someone reading Redis learns: neither the session id (which would let them use the
// session) nor the provider's tokens or the user's identity.
func TestRedisAtRest(t *testing.T) {
	ctx := context.Background()
	srv := testredis.Start(t, testredis.Options{})
	raw := rawClient(t, srv)
	clock := newFakeClock()
	r := newRedisStore(t, srv, clock.Now)

	tk := mustTicket(t)
	sess := fullSession(clock.Now())
	if err := r.Save(ctx, tk, sess); err != nil {
		t.Fatalf("Save: %v", err)
	}
	if err := r.Touch(ctx, tk, clock.Now().Add(time.Second)); err != nil {
		t.Fatalf("Touch: %v", err)
	}

	keys, err := raw.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatalf("KEYS: %v", err)
	}
	// The session, and the two revocation indexes (by subject, by provider sid).
	if len(keys) != 3 {
		t.Fatalf("keys after one Save = %q; want the session and two index keys", keys)
	}
	var key string
	var indexes []string
	for _, k := range keys {
		switch {
		case regexp.MustCompile(`^` + r.prefix + `:s:\{[0-9a-f]{64}\}$`).MatchString(k):
			key = k
		case regexp.MustCompile(`^` + r.prefix + `:[up]:\{[0-9a-f]{64}\}$`).MatchString(k):
			indexes = append(indexes, k)
		default:
			t.Errorf("unexpected key %q", k)
		}
	}
	if key == "" || len(indexes) != 2 {
		t.Fatalf("keys = %q; want one session key and two index keys", keys)
	}

	secrets := map[string][]byte{
		"id (raw)":          tk.ID[:],
		"id (hex)":          []byte(hex.EncodeToString(tk.ID[:])),
		"id (base64)":       []byte(base64.StdEncoding.EncodeToString(tk.ID[:])),
		"id (base64url)":    []byte(base64.RawURLEncoding.EncodeToString(tk.ID[:])),
		"key (raw)":         tk.Key[:],
		"key (hex)":         []byte(hex.EncodeToString(tk.Key[:])),
		"key (base64url)":   []byte(base64.RawURLEncoding.EncodeToString(tk.Key[:])),
		"SID":               []byte(tk.SID()),
		"access token":      []byte(sess.AccessToken),
		"refresh token":     []byte(sess.RefreshToken),
		"ID token":          []byte(sess.IDToken),
		"email":             []byte(sess.Email),
		"subject":           []byte(sess.Subject),
		"group":             []byte(sess.Groups[0]),
		"provider sid":      []byte(sess.ProviderSID),
		"claim value":       []byte("acme"),
		"JSON field name":   []byte("refresh_token"),
		"hex of refresh tk": []byte(hex.EncodeToString([]byte(sess.RefreshToken))),
	}
	fields, err := raw.HGetAll(ctx, key).Result()
	if err != nil {
		t.Fatalf("HGETALL: %v", err)
	}
	if len(fields) == 0 {
		t.Fatal("HGETALL returned no fields; want the stored session")
	}
	var members []string
	for _, ix := range indexes {
		m, err := raw.ZRange(ctx, ix, 0, -1).Result()
		if err != nil || len(m) != 1 || r.key(m[0]) != key {
			t.Errorf("index %s = %q, %v; want the session's store hash", ix, m, err)
		}
		members = append(members, m...)
	}
	for what, secret := range secrets {
		for _, k := range append(append([]string{key}, indexes...), members...) {
			if strings.Contains(k, string(secret)) {
				t.Errorf("key or index entry %q contains the %s", k, what)
			}
		}
		for f, v := range fields {
			if bytes.Contains([]byte(f+v), secret) {
				t.Errorf("hash field %q contains the %s", f, what)
			}
		}
	}
}

func TestRedisOutageAndRecovery(t *testing.T) {
	ctx := context.Background()
	srv := testredis.Start(t, testredis.Options{Password: "pw"})
	r, err := NewRedis(RedisConfig{
		Addrs:     []string{srv.Addr},
		Password:  srv.Password,
		OpTimeout: 300 * time.Millisecond,
	})
	if err != nil {
		t.Fatalf("NewRedis: %v", err)
	}
	t.Cleanup(func() { r.Close() })

	tk := mustTicket(t)
	sess := &Session{Subject: "u", ExpiresAt: time.Now().Add(time.Hour)}
	if err := r.Save(ctx, tk, sess); err != nil {
		t.Fatalf("Save: %v", err)
	}

	srv.Stop()
	// The caller's context has no deadline: OpTimeout alone must end every call.
	if _, err := r.Load(ctx, tk); err == nil || errors.Is(err, ErrNotFound) {
		t.Errorf("Load with Redis down: err = %v; want a connection error, not ErrNotFound", err)
	}
	if err := r.Touch(ctx, tk, time.Now()); err == nil || errors.Is(err, ErrNotFound) {
		t.Errorf("Touch with Redis down: err = %v; want a connection error, not ErrNotFound", err)
	}
	if err := r.Save(ctx, tk, sess); err == nil {
		t.Error("Save with Redis down: err = nil; want an error")
	}
	if err := r.Ping(ctx); err == nil {
		t.Error("Ping with Redis down: err = nil; want an error")
	}

	srv.Restart(t)
	// go-redis backs off dialling after failures: the same store answers again once it has redialled.
	waitFor(t, 10*time.Second, "Ping after Restart", func() error { return r.Ping(ctx) })
	// The restarted server kept nothing: the old session is gone, which is ErrNotFound now, not an outage.
	if _, err := r.Load(ctx, tk); !errors.Is(err, ErrNotFound) {
		t.Errorf("Load of a session lost in the restart: err = %v; want ErrNotFound", err)
	}
	if err := r.Save(ctx, tk, sess); err != nil {
		t.Fatalf("Save after Restart: %v", err)
	}
	if got, err := r.Load(ctx, tk); err != nil || got.Subject != "u" {
		t.Fatalf("Load after Restart = (%v, %v); want the saved session", got, err)
	}
}

func TestRedisCancelledContext(t *testing.T) {
	srv := testredis.Start(t, testredis.Options{})
	r := newRedisStore(t, srv, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.Load(ctx, mustTicket(t)); !errors.Is(err, context.Canceled) {
		t.Errorf("Load with a cancelled context: err = %v; want context.Canceled", err)
	}
}

func TestNewRedisConfig(t *testing.T) {
	tests := []struct {
		name    string
		cfg     RedisConfig
		wantErr string // substring; empty means success
	}{
		{"minimal", RedisConfig{Addrs: []string{"127.0.0.1:1"}}, ""},
		{"standalone", RedisConfig{Mode: ModeStandalone, Addrs: []string{"127.0.0.1:1"}}, ""},
		{"cluster", RedisConfig{Mode: ModeCluster, Addrs: []string{"127.0.0.1:1", "127.0.0.1:2"}}, ""},
		{"cluster behind one endpoint", RedisConfig{Mode: ModeCluster, Addrs: []string{"127.0.0.1:1"}}, ""},
		{"sentinel", RedisConfig{Mode: ModeSentinel, Addrs: []string{"127.0.0.1:1"}, MasterName: "mymaster"}, ""},
		{"sentinel with auth", RedisConfig{Mode: ModeSentinel, Addrs: []string{"127.0.0.1:1"}, MasterName: "m", SentinelUsername: "u", SentinelPassword: "p"}, ""},
		{"unknown mode", RedisConfig{Mode: "ring", Addrs: []string{"127.0.0.1:1"}}, `mode "ring"`},
		{"several addrs standalone", RedisConfig{Addrs: []string{"127.0.0.1:1", "127.0.0.1:2"}}, "standalone mode takes one address"},
		{"sentinel without master", RedisConfig{Mode: ModeSentinel, Addrs: []string{"127.0.0.1:1"}}, "master_name: required"},
		{"master name outside sentinel", RedisConfig{Addrs: []string{"127.0.0.1:1"}, MasterName: "m"}, "master_name: only in sentinel mode"},
		{"sentinel auth outside sentinel", RedisConfig{Addrs: []string{"127.0.0.1:1"}, SentinelPassword: "p"}, "only in sentinel mode"},
		{"cluster db", RedisConfig{Mode: ModeCluster, Addrs: []string{"127.0.0.1:1"}, DB: 2}, "db 2: must be 0"},
		{"whitespace in prefix", RedisConfig{Addrs: []string{"127.0.0.1:1"}, KeyPrefix: "a b"}, `key_prefix "a b"`},
		{"negative revoke timeout", RedisConfig{Addrs: []string{"127.0.0.1:1"}, RevokeTimeout: -1}, "revoke_timeout"},
		{"no addrs", RedisConfig{}, "addrs: at least one address"},
		{"empty addr", RedisConfig{Addrs: []string{" "}}, "addrs[0]: empty address"},
		{"hash tag in prefix", RedisConfig{Addrs: []string{"127.0.0.1:1"}, KeyPrefix: "a{b}"}, `key_prefix "a{b}"`},
		{"negative op timeout", RedisConfig{Addrs: []string{"127.0.0.1:1"}, OpTimeout: -1}, "op_timeout"},
		{"negative dial timeout", RedisConfig{Addrs: []string{"127.0.0.1:1"}, DialTimeout: -1}, "dial_timeout"},
		{"negative pool", RedisConfig{Addrs: []string{"127.0.0.1:1"}, PoolSize: -1}, "pool_size"},
		{"negative db", RedisConfig{Addrs: []string{"127.0.0.1:1"}, DB: -1}, "db -1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := NewRedis(tt.cfg)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("NewRedis: %v; want success without contacting Redis", err)
				}
				r.Close()
				return
			}
			if err == nil {
				r.Close()
				t.Fatalf("NewRedis: err = nil; want one mentioning %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("NewRedis: err = %q; want it to mention %q", err, tt.wantErr)
			}
		})
	}
}

func BenchmarkRedisLoad(b *testing.B) {
	ctx := context.Background()
	srv := testredis.Start(b, testredis.Options{})
	r := newRedisStore(b, srv, nil)
	tk := mustTicket(b)
	if err := r.Save(ctx, tk, fullSession(time.Now())); err != nil {
		b.Fatalf("Save: %v", err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Load(ctx, tk); err != nil {
			b.Fatalf("Load: %v", err)
		}
	}
}

func TestCachedConformance(t *testing.T) {
	srv := testredis.Start(t, testredis.Options{})
	raw := rawClient(t, srv)
	testStore(t, harness{
		newStore: func(t *testing.T, now func() time.Time) store {
			c := NewCached(newRedisStore(t, srv, now), CacheConfig{Now: now})
			t.Cleanup(func() { c.Close() })
			return c
		},
		ttl: func(t *testing.T, s store, tk Ticket) time.Duration {
			key := s.(*Cached).store.key(storeHash(tk.ID))
			ttl, err := raw.PTTL(context.Background(), key).Result()
			if err != nil {
				t.Fatalf("PTTL %s: %v", key, err)
			}
			return ttl
		},
	})
}

// TestCachedRevocationAcrossReplicas: two replicas with their own caches
// over one Redis; a Delete on one is seen by the other without waiting for
// the cache TTL (an hour here, so only the invalidation message can do it).
func TestCachedRevocationAcrossReplicas(t *testing.T) {
	ctx := context.Background()
	srv := testredis.Start(t, testredis.Options{})
	ra := newRedisStore(t, srv, nil)
	rb, err := NewRedis(RedisConfig{Addrs: []string{srv.Addr}, KeyPrefix: ra.prefix}) // a second replica
	if err != nil {
		t.Fatal(err)
	}
	a := NewCached(ra, CacheConfig{TTL: time.Hour})
	b := NewCached(rb, CacheConfig{TTL: time.Hour})
	t.Cleanup(func() { a.Close(); b.Close() })
	bGot := messages(b)
	<-a.subscribed
	<-b.subscribed

	tk := mustTicket(t)
	if err := a.Save(ctx, tk, fullSession(time.Now())); err != nil {
		t.Fatal(err)
	}
	awaitMessage(t, bGot, storeHash(tk.ID))    // a's Save announced itself; b drops nothing it has not read yet
	if _, err := b.Load(ctx, tk); err != nil { // now cached in b
		t.Fatal(err)
	}
	if err := a.Delete(ctx, tk); err != nil {
		t.Fatal(err)
	}
	awaitMessage(t, bGot, storeHash(tk.ID))
	if _, err := b.Load(ctx, tk); !errors.Is(err, ErrNotFound) {
		t.Fatalf("replica b after the invalidation: %v; want ErrNotFound", err)
	}
}

// messages returns a channel receiving every invalidation payload c applies. Set it before c subscribes.
func messages(c *Cached) <-chan string {
	ch := make(chan string, 64)
	c.mu.Lock()
	c.testHookMessage = func(p string) { ch <- p }
	c.mu.Unlock()
	return ch
}

// awaitMessage waits for an invalidation naming hash; others are skipped.
func awaitMessage(t *testing.T, ch <-chan string, hash string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case p := <-ch:
			if slices.Contains(strings.Fields(p), hash) {
				return
			}
		case <-timeout:
			t.Fatalf("no invalidation for the session arrived")
		}
	}
}

// waitFor polls cond until it succeeds or timeout passes: for recovery that only the component itself can signal
// (a reconnect, a failover), never as a delay.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still failing after %v: %v", what, timeout, err)
		}
		<-tick.C
	}
}

// TestCachedServesFromMemory: a fresh cached session is served without
// Redis (here: while Redis is down), and a stale one is not.
func TestCachedServesFromMemory(t *testing.T) {
	ctx := context.Background()
	srv := testredis.Start(t, testredis.Options{})
	clock := newFakeClock()
	r := newRedisStore(t, srv, clock.Now)
	c := NewCached(r, CacheConfig{TTL: 5 * time.Second, Now: clock.Now})
	t.Cleanup(func() { c.Close() })
	<-c.subscribed // the first subscription flushes the cache; let it happen first
	tk := mustTicket(t)
	// Saved behind the cache's back: c.Save would publish an invalidation
	// that, arriving after the Load below, would (rightly) drop the entry.
	if err := r.Save(ctx, tk, fullSession(clock.Now())); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Load(ctx, tk); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	if _, err := c.Load(ctx, tk); err != nil {
		t.Errorf("fresh cached session: %v; want it served from memory", err)
	}
	wrong := tk
	wrong.Key[0] ^= 1
	if _, err := c.Load(ctx, wrong); err == nil {
		t.Error("cached session served for a ticket with the wrong key")
	}
	clock.Advance(6 * time.Second)
	if _, err := c.Load(ctx, tk); err == nil || errors.Is(err, ErrNotFound) {
		t.Errorf("stale entry with Redis down: %v; want a store error", err)
	}
}
