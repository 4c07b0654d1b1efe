package sessionstore

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/testredis"
)

// TestRedisDocumentedACL runs the conformance suite, revocations and the
// cache's pub/sub as the Redis user docs/kubernetes.md tells operators to
// create, so the documented ACL is exactly enough: a command or channel
// missing from it fails here, not in someone's production.
func TestRedisDocumentedACL(t *testing.T) {
	ctx := context.Background()
	doc, err := os.ReadFile("../docs/kubernetes.md")
	if err != nil {
		t.Fatal(err)
	}
	var acl string
	for line := range strings.Lines(string(doc)) {
		if strings.HasPrefix(line, "ACL SETUSER gatehouse ") {
			acl = strings.TrimSpace(line)
		}
	}
	if acl == "" {
		t.Fatal("docs/kubernetes.md has no ACL SETUSER gatehouse line")
	}
	srv := testredis.Start(t, testredis.Options{})
	raw := rawClient(t, srv)
	const prefix = "aclprefix"
	acl = strings.ReplaceAll(acl, "gatehouse:", prefix+":")
	acl = strings.Replace(acl, ">CHANGE-ME", ">acl-test-pw", 1)
	args := []any{}
	for _, f := range strings.Fields(acl) {
		args = append(args, f)
	}
	if err := raw.Do(ctx, args...).Err(); err != nil {
		t.Fatalf("%s: %v", acl, err)
	}
	newStore := func(t *testing.T, now func() time.Time) *Redis {
		r, err := NewRedis(RedisConfig{Addrs: []string{srv.Addr}, Username: "gatehouse", Password: "acl-test-pw", KeyPrefix: prefix, Now: now})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		return r
	}
	testStore(t, harness{
		newStore: func(t *testing.T, now func() time.Time) store {
			c := NewCached(newStore(t, now), CacheConfig{Now: now})
			t.Cleanup(func() { c.Close() })
			return c
		},
		ttl: func(t *testing.T, s store, tk Ticket) time.Duration {
			ttl, err := raw.PTTL(ctx, s.(*Cached).store.key(storeHash(tk.ID))).Result()
			if err != nil {
				t.Fatal(err)
			}
			return ttl
		},
	})
	clock := newFakeClock()
	a, b := NewCached(newStore(t, clock.Now), CacheConfig{TTL: time.Hour}), NewCached(newStore(t, clock.Now), CacheConfig{TTL: time.Hour})
	t.Cleanup(func() { a.Close(); b.Close() })
	bGot := messages(b)
	<-a.subscribed
	<-b.subscribed
	if err := a.Ping(ctx); err != nil {
		t.Fatalf("Ping (with the version check): %v", err)
	}
	tk := mustTicket(t)
	if err := a.Save(ctx, tk, fullSession(clock.Now())); err != nil {
		t.Fatal(err)
	}
	awaitMessage(t, bGot, storeHash(tk.ID))
	if _, err := a.DeleteBySubject(ctx, fullSession(clock.Now()).Subject); err != nil {
		t.Fatal(err)
	}
	awaitMessage(t, bGot, storeHash(tk.ID))
	if st := a.Stats(); st.PublishFailures != 0 {
		t.Errorf("publish failures as the documented user: %d; want 0", st.PublishFailures)
	}
	if err := a.Health(ctx); err != nil {
		t.Errorf("Health as the documented user: %v", err)
	}
}
