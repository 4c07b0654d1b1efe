package sessionstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/gatehouse/gatehouse/internal/testredis"
)

// failoverTimeout bounds how long a store may take to serve again after a
// master dies: detection (about a second with the test topologies'
// settings), the election and promotion, and the client's rediscovery.
const failoverTimeout = 30 * time.Second

// TestSentinelFailover: sessions in a Sentinel deployment (a master, a
// replica, three Sentinels, authentication on both) survive the master's
// death: the same store serves again without a restart, a session that had
// reached the replica is still there, and revocations still reach every
// Gatehouse replica over the new master.
func TestSentinelFailover(t *testing.T) {
	ctx := context.Background()
	d := testredis.StartSentinel(t, testredis.SentinelOptions{
		Password: "data-pw", SentinelUsername: "gatehouse-sentinel", SentinelPassword: "sentinel-pw",
	})
	newStore := func() *Redis {
		r, err := NewRedis(RedisConfig{
			Mode: ModeSentinel, Addrs: d.SentinelAddrs(), MasterName: d.MasterName,
			Password: d.Password, SentinelUsername: d.SentinelUsername, SentinelPassword: d.SentinelPassword,
			KeyPrefix: "sentinel",
		})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	ra, rb := newStore(), newStore()
	a := NewCached(ra, CacheConfig{TTL: time.Hour})
	b := NewCached(rb, CacheConfig{TTL: time.Hour})
	t.Cleanup(func() { a.Close(); b.Close() })
	bGot := messages(b)
	<-a.subscribed
	<-b.subscribed
	if err := ra.Check(ctx); err != nil {
		t.Fatalf("Check through the Sentinels: %v", err)
	}

	tk, other := mustTicket(t), mustTicket(t)
	for _, x := range []Ticket{tk, other} {
		s := fullSession(time.Now())
		s.Subject = "erin"
		if err := a.Save(ctx, x, s); err != nil {
			t.Fatalf("Save: %v", err)
		}
		awaitMessage(t, bGot, storeHash(x.ID)) // b caches nothing before a's announcements are in
	}
	// The sessions have reached the replica before the master dies.
	master := nodeClient(t, d.Master)
	if n, err := master.Do(ctx, "WAIT", 1, 5000).Int(); err != nil || n != 1 {
		t.Fatalf("WAIT for the replica = %d, %v; want 1", n, err)
	}

	d.Master.Stop()
	waitFor(t, failoverTimeout, "Load after the master died", func() error {
		_, err := ra.Load(ctx, tk)
		return err
	})
	waitFor(t, failoverTimeout, "Save after the master died", func() error {
		s := fullSession(time.Now())
		s.Subject = "erin"
		return a.Save(ctx, mustTicket(t), s)
	})
	got, err := ra.Load(ctx, other)
	if err != nil || got.Subject != "erin" {
		t.Fatalf("the replicated session after the failover = %v, %v", got, err)
	}
	// Both replicas have resubscribed through the new master.
	waitFor(t, failoverTimeout, "resubscription", func() error {
		if a.Stats().Subscriptions < 2 || b.Stats().Subscriptions < 2 {
			return errors.New("not yet resubscribed")
		}
		return nil
	})
	if _, err := b.Load(ctx, tk); err != nil { // cached in b
		t.Fatal(err)
	}
	n, err := a.DeleteBySubject(ctx, "erin")
	if err != nil || n != 3 {
		t.Fatalf("DeleteBySubject after the failover = %d, %v; want 3", n, err)
	}
	awaitMessage(t, bGot, storeHash(tk.ID))
	if _, err := b.Load(ctx, tk); !errors.Is(err, ErrNotFound) {
		t.Errorf("replica b after the revocation: %v; want ErrNotFound", err)
	}
}

// TestClusterSessions: on a three-master Cluster with a replica each,
// reached through one seed address (as a managed service's configuration
// endpoint), login, the refresh lock, back-channel logout, sign-out
// everywhere and the cache's pub/sub work, and they keep working after the
// master holding a session dies.
func TestClusterSessions(t *testing.T) {
	ctx := context.Background()
	c := testredis.StartCluster(t, testredis.ClusterOptions{Password: "cluster-pw", Replicas: true})
	newStore := func() *Redis {
		r, err := NewRedis(RedisConfig{Mode: ModeCluster, Addrs: c.Addrs()[:1], Password: c.Password, KeyPrefix: "cluster"})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	ra, rb := newStore(), newStore()
	a := NewCached(ra, CacheConfig{TTL: time.Hour})
	b := NewCached(rb, CacheConfig{TTL: time.Hour})
	t.Cleanup(func() { a.Close(); b.Close() })
	bGot := messages(b)
	<-a.subscribed
	<-b.subscribed
	if err := ra.Check(ctx); err != nil {
		t.Fatalf("Check on every node: %v", err)
	}

	// Enough sessions to land on every master.
	const n = 48
	tickets := make([]Ticket, n)
	for i := range tickets {
		tickets[i] = mustTicket(t)
		s := fullSession(time.Now())
		s.Subject, s.ProviderSID = "frank", fmt.Sprintf("login-%d", i%3)
		if err := a.Save(ctx, tickets[i], s); err != nil {
			t.Fatalf("Save %d: %v", i, err)
		}
	}
	// b caches only after the Saves' own announcements reached it.
	awaitMessages(t, bGot, tickets...)
	for i, tk := range tickets {
		if _, err := b.Load(ctx, tk); err != nil {
			t.Fatalf("Load %d on the other replica: %v", i, err)
		}
	}
	if got, err := a.TryLock(ctx, tickets[0], time.Minute); err != nil || !got {
		t.Fatalf("TryLock = %v, %v; want true", got, err)
	}
	if got, err := b.TryLock(ctx, tickets[0], time.Minute); err != nil || got {
		t.Fatalf("TryLock from the other replica = %v, %v; want false", got, err)
	}

	// Back-channel logout of one provider login: a third of the sessions.
	if got, err := a.DeleteByProviderSID(ctx, "login-0"); err != nil || got != n/3 {
		t.Fatalf("DeleteByProviderSID = %d, %v; want %d", got, err, n/3)
	}
	awaitMessage(t, bGot, storeHash(tickets[0].ID))
	if _, err := b.Load(ctx, tickets[0]); !errors.Is(err, ErrNotFound) {
		t.Errorf("b after back-channel logout: %v; want ErrNotFound", err)
	}

	// Kill the master that serves the invalidation channel's slot (so both
	// replicas' subscriptions die with it) and holds a live session, once
	// its replica has that session.
	cc := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs: c.Addrs(), Password: c.Password,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	})
	t.Cleanup(func() { cc.Close() })
	owner, err := cc.MasterForKey(ctx, a.channel)
	if err != nil {
		t.Fatal(err)
	}
	var tk Ticket
	for i, x := range tickets {
		m, err := cc.MasterForKey(ctx, ra.key(storeHash(x.ID)))
		if err != nil {
			t.Fatal(err)
		}
		if i%3 != 0 && m.Options().Addr == owner.Options().Addr {
			tk = x
			break
		}
	}
	if tk == (Ticket{}) {
		t.Fatal("no live session on the channel's master; use more sessions")
	}
	if n, err := owner.Do(ctx, "WAIT", 1, 5000).Int(); err != nil || n != 1 {
		t.Fatalf("WAIT for the replica = %d, %v; want 1", n, err)
	}
	killed := false
	for _, node := range c.Nodes {
		if node.Addr == owner.Options().Addr {
			node.Stop()
			killed = true
		}
	}
	if !killed {
		t.Fatalf("no node at %s", owner.Options().Addr)
	}
	waitFor(t, failoverTimeout, "Load after the master died", func() error {
		_, err := ra.Load(ctx, tk)
		return err
	})
	waitFor(t, failoverTimeout, "Save after the master died", func() error {
		s := fullSession(time.Now())
		s.Subject = "frank"
		return a.Save(ctx, mustTicket(t), s)
	})
	if got, err := a.TryLock(ctx, tk, time.Minute); err != nil || !got {
		t.Errorf("TryLock after the failover = %v, %v; want true", got, err)
	}
	waitFor(t, failoverTimeout, "resubscription", func() error {
		if a.Stats().Subscriptions < 2 || b.Stats().Subscriptions < 2 {
			return errors.New("not yet resubscribed")
		}
		return nil
	})
	waitFor(t, failoverTimeout, "b reading the session", func() error {
		_, err := b.Load(ctx, tk) // cached in b (again, after any flush)
		return err
	})
	got, err := a.DeleteBySubject(ctx, "frank")
	if err != nil || got != n-n/3+1 {
		t.Fatalf("DeleteBySubject after the failover = %d, %v; want %d", got, err, n-n/3+1)
	}
	awaitMessage(t, bGot, storeHash(tk.ID))
	// b's own client may still route to the dead master once (it reloads the
	// slot map on that failure): an error, never the revoked session.
	waitFor(t, failoverTimeout, "b after sign-out everywhere", func() error {
		_, err := b.Load(ctx, tk)
		switch {
		case err == nil:
			t.Fatal("b serves the revoked session")
		case errors.Is(err, ErrNotFound):
			return nil
		}
		return err
	})
}

// awaitMessages waits until invalidations have named every ticket's
// session, in any order: in a Cluster, messages published through different
// nodes may overtake each other.
func awaitMessages(t *testing.T, ch <-chan string, tickets ...Ticket) {
	t.Helper()
	want := map[string]bool{}
	for _, tk := range tickets {
		want[storeHash(tk.ID)] = true
	}
	timeout := time.After(10 * time.Second)
	for len(want) > 0 {
		select {
		case p := <-ch:
			for _, h := range strings.Fields(p) {
				delete(want, h)
			}
		case <-timeout:
			t.Fatalf("invalidations for %d sessions never arrived", len(want))
		}
	}
}

// nodeClient talks to one node directly.
func nodeClient(t *testing.T, s *testredis.Server) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{
		Addr: s.Addr, Password: s.Password,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	})
	t.Cleanup(func() { c.Close() })
	return c
}
