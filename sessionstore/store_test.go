package sessionstore

import (
	"context"
	"errors"
	"fmt"
	"github.com/gatehouse/gatehouse/internal/testredis"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// store is the method set both implementations share; consumers declare their own smaller interfaces.
type store interface {
	Save(ctx context.Context, t Ticket, s *Session) error
	Load(ctx context.Context, t Ticket) (*Session, error)
	Touch(ctx context.Context, t Ticket, seen time.Time) error
	Delete(ctx context.Context, t Ticket) error
	Replace(ctx context.Context, t Ticket, s *Session) error
	TryLock(ctx context.Context, t Ticket, ttl time.Duration) (bool, error)
	DeleteBySubject(ctx context.Context, subject string) (int, error)
	DeleteByProviderSID(ctx context.Context, sid string) (int, error)
	PutOnce(ctx context.Context, key string, value []byte, ttl time.Duration) error
	TakeOnce(ctx context.Context, key string) ([]byte, error)
	DeleteIfIdle(ctx context.Context, t Ticket, idle time.Duration, now time.Time) (bool, error)
	Ping(ctx context.Context) error
	Close() error
}

var (
	_ store = (*Memory)(nil)
	_ store = (*Redis)(nil)
	_ store = (*Cached)(nil)
)

// harness builds one implementation for the conformance suite.
type harness struct {
	// newStore returns a fresh, empty store reading the time from now. It registers its own cleanup.
	newStore func(t *testing.T, now func() time.Time) store
	// ttl, if set, returns the remaining lifetime the backend itself keeps for the ticket's session.
	ttl func(t *testing.T, s store, tk Ticket) time.Duration
}

// fakeClock is a settable clock for the stores' Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 3, 14, 15, 9, 26, 535897932, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func mustTicket(t testing.TB) Ticket {
	t.Helper()
	tk, err := NewTicket()
	if err != nil {
		t.Fatalf("NewTicket: %v", err)
	}
	return tk
}

// fullSession sets every field, with Claims in the shapes encoding/json produces, so a round trip must keep them all.
func fullSession(now time.Time) *Session {
	zone := time.FixedZone("UTC+2", 2*3600)
	return &Session{
		Subject:           "248289761001",
		Email:             "jane@example.com",
		EmailVerified:     true,
		Name:              "Jane Doe",
		PreferredUsername: "jane",
		Groups:            []string{"admins", "staff"},
		Claims: map[string]any{
			"tenant": "acme",
			"level":  float64(3),
			"flag":   true,
			"none":   nil,
			"roles":  []any{"reader", "writer"},
			"nested": map[string]any{"k": []any{1.5, "x-original"}},
		},
		ProviderSID:  "provider-sid-1",
		IDToken:      "eyJhbGciOiJFUzI1NiJ9.id-token-plaintext.sig",
		AccessToken:  "access-token-plaintext-7f3a",
		RefreshToken: "refresh-token-plaintext-9c1b",
		TokenExpiry:  now.Add(5 * time.Minute).In(zone),
		AuthTime:     now.Add(-time.Minute),
		CreatedAt:    now.Add(-time.Minute),
		LastSeen:     now,
		ExpiresAt:    now.Add(time.Hour),
		Version:      7,
	}
}

// normalized returns a copy whose times compare with DeepEqual regardless of zone, monotonic reading or
// representation, which stores are free to change; the instants must still match.
func normalized(s *Session) *Session {
	c := s.Clone()
	for _, p := range []*time.Time{&c.TokenExpiry, &c.AuthTime, &c.CreatedAt, &c.LastSeen, &c.ExpiresAt} {
		*p = p.Round(0).UTC()
	}
	return c
}

func diffSessions(got, want *Session) string {
	g, w := normalized(got), normalized(want)
	if reflect.DeepEqual(g, w) {
		return ""
	}
	return fmt.Sprintf("got  %+v\nwant %+v", *g, *w)
}

// testStore is the conformance suite every store must pass.
func testStore(t *testing.T, h harness) {
	ctx := context.Background()

	t.Run("a one-shot key is used once, until it expires", func(t *testing.T) { testOneShot(t, h) })

	t.Run("a one-time value is taken once, by anyone, until it expires", func(t *testing.T) {
		clock := newFakeClock()
		s := h.newStore(t, clock.Now)
		if _, err := s.TakeOnce(ctx, "never-put"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("TakeOnce of an unknown key: %v; want ErrNotFound", err)
		}
		if err := s.PutOnce(ctx, "code-1", []byte("v1"), time.Minute); err != nil {
			t.Fatal(err)
		}
		if err := s.PutOnce(ctx, "code-2", []byte("v2"), time.Minute); err != nil {
			t.Fatal(err)
		}
		if v, err := s.TakeOnce(ctx, "code-1"); err != nil || string(v) != "v1" {
			t.Fatalf("TakeOnce = %q, %v; want v1", v, err)
		}
		if _, err := s.TakeOnce(ctx, "code-1"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("TakeOnce again: %v; want ErrNotFound", err)
		}
		var wg sync.WaitGroup
		var taken atomic.Int32
		for range 8 {
			wg.Go(func() {
				if _, err := s.TakeOnce(ctx, "code-2"); err == nil {
					taken.Add(1)
				}
			})
		}
		wg.Wait()
		if n := taken.Load(); n != 1 {
			t.Fatalf("eight concurrent takes of one value: %d succeeded; want 1", n)
		}
		if h.ttl == nil { // the store's own clock decides expiry
			if err := s.PutOnce(ctx, "code-3", []byte("v3"), time.Minute); err != nil {
				t.Fatal(err)
			}
			clock.Advance(time.Minute)
			if _, err := s.TakeOnce(ctx, "code-3"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("TakeOnce after its TTL: %v; want ErrNotFound", err)
			}
		}
	})

	t.Run("replace updates a live session and never resurrects one", func(t *testing.T) {
		clock := newFakeClock()
		s := h.newStore(t, clock.Now)
		tk := mustTicket(t)
		sess := fullSession(clock.Now())
		if err := s.Replace(ctx, tk, sess); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Replace of a missing session: %v; want ErrNotFound", err)
		}
		if _, err := s.Load(ctx, tk); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Replace created a session: %v", err)
		}
		if err := s.Save(ctx, tk, sess); err != nil {
			t.Fatal(err)
		}
		updated := sess.Clone()
		updated.Groups = []string{"new-group"}
		updated.Version++
		wrong := tk
		wrong.Key[0] ^= 1
		if err := s.Replace(ctx, wrong, updated); !errors.Is(err, ErrNotFound) {
			t.Errorf("Replace with the wrong key: %v; want ErrNotFound", err)
		}
		if err := s.Replace(ctx, tk, updated); err != nil {
			t.Fatalf("Replace: %v", err)
		}
		got, err := s.Load(ctx, tk)
		if err != nil || got.Version != updated.Version || len(got.Groups) != 1 || got.Groups[0] != "new-group" {
			t.Fatalf("after Replace got %+v, %v", got, err)
		}
		if err := s.Delete(ctx, tk); err != nil {
			t.Fatal(err)
		}
		if err := s.Replace(ctx, tk, updated); !errors.Is(err, ErrNotFound) {
			t.Errorf("Replace after Delete: %v; want ErrNotFound", err)
		}
		if _, err := s.Load(ctx, tk); !errors.Is(err, ErrNotFound) {
			t.Errorf("Replace after Delete resurrected the session: %v", err)
		}
	})

	t.Run("replace never moves LastSeen backwards", func(t *testing.T) {
		clock := newFakeClock()
		s := h.newStore(t, clock.Now)
		tk := mustTicket(t)
		sess := fullSession(clock.Now())
		if err := s.Save(ctx, tk, sess); err != nil {
			t.Fatal(err)
		}
		// A refresh reads the session, the user is seen meanwhile, the refresh writes its (older) copy back.
		read, err := s.Load(ctx, tk)
		if err != nil {
			t.Fatal(err)
		}
		clock.Advance(time.Minute)
		seen := clock.Now()
		if err := s.Touch(ctx, tk, seen); err != nil {
			t.Fatal(err)
		}
		read.AccessToken = "refreshed"
		read.Version++
		if err := s.Replace(ctx, tk, read); err != nil {
			t.Fatal(err)
		}
		got, err := s.Load(ctx, tk)
		if err != nil {
			t.Fatal(err)
		}
		if !got.LastSeen.Equal(seen) || got.AccessToken != "refreshed" {
			t.Errorf("after Replace: LastSeen %v, AccessToken %q; want %v (the Touch's) and \"refreshed\"", got.LastSeen, got.AccessToken, seen)
		}
	})

	t.Run("delete if idle judges the stored session", func(t *testing.T) {
		clock := newFakeClock()
		s := h.newStore(t, clock.Now)
		const idle = 30 * time.Minute
		tk := mustTicket(t)
		start := clock.Now()
		if err := s.Save(ctx, tk, fullSession(start)); err != nil {
			t.Fatal(err)
		}
		if ended, err := s.DeleteIfIdle(ctx, tk, idle, start.Add(time.Minute)); err != nil || ended {
			t.Fatalf("DeleteIfIdle of an active session = %v, %v; want false", ended, err)
		}
		// Seen at +20m (by another replica, say): at +31m the session is idle only by a stale copy's LastSeen.
		if err := s.Touch(ctx, tk, start.Add(20*time.Minute)); err != nil {
			t.Fatal(err)
		}
		clock.Advance(31 * time.Minute)
		if ended, err := s.DeleteIfIdle(ctx, tk, idle, clock.Now()); err != nil || ended {
			t.Fatalf("DeleteIfIdle of a session seen 11 minutes ago = %v, %v; want false", ended, err)
		}
		if _, err := s.Load(ctx, tk); err != nil {
			t.Fatalf("Load after a refused idle delete: %v", err)
		}
		wrong := tk
		wrong.Key[0] ^= 1
		clock.Advance(time.Hour - 31*time.Minute - time.Second) // idle by the stored LastSeen, not yet expired
		if ended, err := s.DeleteIfIdle(ctx, wrong, idle, clock.Now()); err != nil || !ended {
			t.Errorf("DeleteIfIdle with the wrong key = %v, %v; want true (no such session for it)", ended, err)
		}
		if _, err := s.Load(ctx, tk); err != nil {
			t.Fatalf("the wrong key deleted the session: %v", err)
		}
		if ended, err := s.DeleteIfIdle(ctx, tk, idle, clock.Now()); err != nil || !ended {
			t.Fatalf("DeleteIfIdle of an idle session = %v, %v; want true", ended, err)
		}
		if _, err := s.Load(ctx, tk); !errors.Is(err, ErrNotFound) {
			t.Errorf("Load after the idle delete: %v; want ErrNotFound", err)
		}
		if ended, err := s.DeleteIfIdle(ctx, tk, idle, clock.Now()); err != nil || !ended {
			t.Errorf("DeleteIfIdle of a deleted session = %v, %v; want true", ended, err)
		}
	})

	t.Run("revoke by provider sid and by subject", func(t *testing.T) {
		clock := newFakeClock()
		s := h.newStore(t, clock.Now)
		mk := func(sub, sid string) Ticket {
			tk := mustTicket(t)
			sess := fullSession(clock.Now())
			sess.Subject, sess.ProviderSID = sub, sid
			if err := s.Save(ctx, tk, sess); err != nil {
				t.Fatal(err)
			}
			return tk
		}
		laptop, phone, other := mk("alice", "sid-laptop"), mk("alice", "sid-phone"), mk("bob", "sid-bob")
		alive := func(tk Ticket) bool { _, err := s.Load(ctx, tk); return err == nil }
		if n, err := s.DeleteByProviderSID(ctx, "sid-laptop"); err != nil || n != 1 {
			t.Fatalf("DeleteByProviderSID = %d, %v; want 1", n, err)
		}
		if alive(laptop) || !alive(phone) || !alive(other) {
			t.Fatalf("after back-channel logout of one login: laptop %v, phone %v, bob %v; want false, true, true", alive(laptop), alive(phone), alive(other))
		}
		if n, err := s.DeleteBySubject(ctx, "alice"); err != nil || n != 1 {
			t.Fatalf("DeleteBySubject = %d, %v; want 1 (the laptop's session had already ended)", n, err)
		}
		if alive(phone) || !alive(other) {
			t.Fatalf("after sign-out everywhere: phone %v, bob %v; want false, true", alive(phone), alive(other))
		}
		if n, err := s.DeleteBySubject(ctx, "nobody"); err != nil || n != 0 {
			t.Errorf("DeleteBySubject(nobody) = %d, %v; want 0", n, err)
		}
	})

	t.Run("try lock is exclusive until it expires", func(t *testing.T) {
		clock := newFakeClock()
		s := h.newStore(t, clock.Now)
		tk, other := mustTicket(t), mustTicket(t)
		// The store's clock decides when the lock is free, so a fake clock tests expiry without waiting; the TTL is
		// long enough that no real delay can free it early.
		for i, want := range []bool{true, false, false} {
			if got, err := s.TryLock(ctx, tk, time.Minute); err != nil || got != want {
				t.Fatalf("TryLock #%d = %v, %v; want %v", i, got, err, want)
			}
			clock.Advance(10 * time.Second)
		}
		if got, _ := s.TryLock(ctx, other, time.Minute); !got {
			t.Error("another session's lock is taken")
		}
		clock.Advance(time.Minute)
		if got, err := s.TryLock(ctx, tk, time.Minute); err != nil || !got {
			t.Errorf("TryLock after expiry = %v, %v; want true", got, err)
		}
		if got, err := s.TryLock(ctx, tk, time.Minute); err != nil || got {
			t.Errorf("TryLock right after retaking it = %v, %v; want false", got, err)
		}
	})

	t.Run("round trip keeps every field and hands out copies", func(t *testing.T) {
		clock := newFakeClock()
		s := h.newStore(t, clock.Now)
		tk := mustTicket(t)
		orig := fullSession(clock.Now())
		want := orig.Clone()
		if err := s.Save(ctx, tk, orig); err != nil {
			t.Fatalf("Save: %v", err)
		}
		// The store keeps its own copy: changing the caller's session afterwards changes nothing.
		orig.Groups[0] = "changed"
		orig.Claims["nested"].(map[string]any)["k"].([]any)[0] = "changed"
		orig.Subject = "changed"

		got, err := s.Load(ctx, tk)
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		if d := diffSessions(got, want); d != "" {
			t.Fatalf("Load after Save:\n%s", d)
		}
		// Changing what Load returned does not change the stored session either.
		got.Groups[1] = "changed"
		got.Claims["roles"].([]any)[0] = "changed"
		got.Claims["nested"].(map[string]any)["new"] = "x"
		got.Email = "changed"
		again, err := s.Load(ctx, tk)
		if err != nil {
			t.Fatalf("second Load: %v", err)
		}
		if d := diffSessions(again, want); d != "" {
			t.Fatalf("Load after modifying a loaded copy:\n%s", d)
		}
	})

	t.Run("missing session", func(t *testing.T) {
		clock := newFakeClock()
		s := h.newStore(t, clock.Now)
		if _, err := s.Load(ctx, mustTicket(t)); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Load of a never-saved ticket: err = %v; want ErrNotFound", err)
		}
	})

	t.Run("wrong key", func(t *testing.T) {
		clock := newFakeClock()
		s := h.newStore(t, clock.Now)
		tk := mustTicket(t)
		saved := fullSession(clock.Now())
		if err := s.Save(ctx, tk, saved); err != nil {
			t.Fatalf("Save: %v", err)
		}
		wrong := tk
		wrong.Key[0] ^= 1
		if got, err := s.Load(ctx, wrong); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Load with a wrong key: (%v, %v); want ErrNotFound", got, err)
		}
		if err := s.Touch(ctx, wrong, clock.Now().Add(time.Minute)); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Touch with a wrong key: err = %v; want ErrNotFound", err)
		}
		// Neither attempt harmed the real session.
		got, err := s.Load(ctx, tk)
		if err != nil {
			t.Fatalf("Load with the right key after wrong-key attempts: %v", err)
		}
		if d := diffSessions(got, saved); d != "" {
			t.Fatalf("session after wrong-key attempts:\n%s", d)
		}
	})

	t.Run("replace", func(t *testing.T) {
		clock := newFakeClock()
		s := h.newStore(t, clock.Now)
		tk := mustTicket(t)
		first := fullSession(clock.Now())
		if err := s.Save(ctx, tk, first); err != nil {
			t.Fatalf("Save: %v", err)
		}
		second := &Session{Subject: "other", ExpiresAt: clock.Now().Add(2 * time.Hour), Version: 8}
		rekeyed := tk
		rekeyed.Key[5] ^= 0xff
		if err := s.Save(ctx, rekeyed, second); err != nil {
			t.Fatalf("second Save: %v", err)
		}
		got, err := s.Load(ctx, rekeyed)
		if err != nil {
			t.Fatalf("Load after replace: %v", err)
		}
		if d := diffSessions(got, second); d != "" {
			t.Fatalf("Load after replace (nothing of the first session may survive):\n%s", d)
		}
		if _, err := s.Load(ctx, tk); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Load with the replaced key: err = %v; want ErrNotFound", err)
		}
	})

	t.Run("delete", func(t *testing.T) {
		clock := newFakeClock()
		s := h.newStore(t, clock.Now)
		tk, other := mustTicket(t), mustTicket(t)
		for _, x := range []Ticket{tk, other} {
			if err := s.Save(ctx, x, fullSession(clock.Now())); err != nil {
				t.Fatalf("Save: %v", err)
			}
		}
		if err := s.Delete(ctx, tk); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if _, err := s.Load(ctx, tk); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Load after Delete: err = %v; want ErrNotFound", err)
		}
		if err := s.Delete(ctx, tk); err != nil {
			t.Fatalf("second Delete: err = %v; want nil (idempotent)", err)
		}
		if err := s.Delete(ctx, mustTicket(t)); err != nil {
			t.Fatalf("Delete of a never-saved ticket: err = %v; want nil", err)
		}
		if _, err := s.Load(ctx, other); err != nil {
			t.Fatalf("Load of another session after Delete: %v; want it untouched", err)
		}
	})

	t.Run("touch updates LastSeen only", func(t *testing.T) {
		clock := newFakeClock()
		s := h.newStore(t, clock.Now)
		tk := mustTicket(t)
		saved := fullSession(clock.Now())
		if err := s.Save(ctx, tk, saved); err != nil {
			t.Fatalf("Save: %v", err)
		}
		clock.Advance(10 * time.Minute)
		seen := clock.Now()
		if err := s.Touch(ctx, tk, seen); err != nil {
			t.Fatalf("Touch: %v", err)
		}
		got, err := s.Load(ctx, tk)
		if err != nil {
			t.Fatalf("Load after Touch: %v", err)
		}
		want := saved.Clone()
		want.LastSeen = seen
		if d := diffSessions(got, want); d != "" {
			t.Fatalf("Load after Touch:\n%s", d)
		}
		if ttl := h.ttl; ttl != nil {
			// Touch must not extend the absolute lifetime.
			if got, limit := ttl(t, s, tk), saved.ExpiresAt.Sub(saved.LastSeen); got > limit {
				t.Errorf("TTL after Touch = %v; want at most %v", got, limit)
			}
		}
	})

	t.Run("touch on missing", func(t *testing.T) {
		clock := newFakeClock()
		s := h.newStore(t, clock.Now)
		if err := s.Touch(ctx, mustTicket(t), clock.Now()); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Touch of a never-saved ticket: err = %v; want ErrNotFound", err)
		}
		tk := mustTicket(t)
		if err := s.Save(ctx, tk, fullSession(clock.Now())); err != nil {
			t.Fatalf("Save: %v", err)
		}
		if err := s.Delete(ctx, tk); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if err := s.Touch(ctx, tk, clock.Now()); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Touch after Delete: err = %v; want ErrNotFound", err)
		}
		// Touch must not leave a stub behind that Load would find.
		if _, err := s.Load(ctx, tk); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Load after Touch of a deleted session: err = %v; want ErrNotFound", err)
		}
	})

	t.Run("expiry at ExpiresAt", func(t *testing.T) {
		clock := newFakeClock()
		s := h.newStore(t, clock.Now)
		tk := mustTicket(t)
		sess := fullSession(clock.Now())
		sess.ExpiresAt = clock.Now().Add(time.Hour)
		if err := s.Save(ctx, tk, sess); err != nil {
			t.Fatalf("Save: %v", err)
		}
		if h.ttl != nil {
			got := h.ttl(t, s, tk)
			if got <= 59*time.Minute || got > time.Hour {
				t.Errorf("backend TTL = %v; want the remaining lifetime, in (59m, 1h]", got)
			}
		}
		clock.Advance(time.Hour - time.Nanosecond)
		if _, err := s.Load(ctx, tk); err != nil {
			t.Fatalf("Load just before ExpiresAt: %v; want the session", err)
		}
		clock.Advance(time.Nanosecond)
		if _, err := s.Load(ctx, tk); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Load at ExpiresAt: err = %v; want ErrNotFound", err)
		}
	})

	t.Run("save of an expired session removes it", func(t *testing.T) {
		clock := newFakeClock()
		s := h.newStore(t, clock.Now)
		tk := mustTicket(t)
		sess := fullSession(clock.Now())
		if err := s.Save(ctx, tk, sess); err != nil {
			t.Fatalf("Save: %v", err)
		}
		sess.ExpiresAt = clock.Now().Add(-time.Second)
		if err := s.Save(ctx, tk, sess); err != nil {
			t.Fatalf("Save of an expired session: %v; want nil", err)
		}
		if _, err := s.Load(ctx, tk); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Load after saving it expired: err = %v; want ErrNotFound", err)
		}
	})

	t.Run("save rejects unusable sessions", func(t *testing.T) {
		clock := newFakeClock()
		s := h.newStore(t, clock.Now)
		if err := s.Save(ctx, mustTicket(t), nil); err == nil {
			t.Error("Save(nil) = nil; want an error")
		}
		if err := s.Save(ctx, mustTicket(t), &Session{Subject: "x"}); err == nil {
			t.Error("Save of a session without ExpiresAt = nil; want an error")
		}
	})

	t.Run("ping", func(t *testing.T) {
		s := h.newStore(t, time.Now)
		if err := s.Ping(ctx); err != nil {
			t.Fatalf("Ping: %v", err)
		}
	})

	t.Run("concurrent use", func(t *testing.T) {
		clock := newFakeClock()
		s := h.newStore(t, clock.Now)
		shared := mustTicket(t)
		if err := s.Save(ctx, shared, fullSession(clock.Now())); err != nil {
			t.Fatalf("Save: %v", err)
		}
		const workers, rounds = 8, 40
		errs := make(chan error, workers)
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				own := mustTicket(t)
				for i := range rounds {
					sess := fullSession(clock.Now())
					sess.Version = uint64(i)
					if err := s.Save(ctx, own, sess); err != nil {
						errs <- fmt.Errorf("worker %d Save: %w", w, err)
						return
					}
					got, err := s.Load(ctx, own)
					if err != nil {
						errs <- fmt.Errorf("worker %d Load: %w", w, err)
						return
					}
					if got.Version != uint64(i) {
						errs <- fmt.Errorf("worker %d Load: Version = %d; want %d", w, got.Version, i)
						return
					}
					got.Groups = append(got.Groups, "mine") // modifying a copy must not race
					if err := s.Touch(ctx, shared, clock.Now()); err != nil {
						errs <- fmt.Errorf("worker %d Touch shared: %w", w, err)
						return
					}
					if _, err := s.Load(ctx, shared); err != nil {
						errs <- fmt.Errorf("worker %d Load shared: %w", w, err)
						return
					}
				}
				if err := s.Delete(ctx, own); err != nil {
					errs <- fmt.Errorf("worker %d Delete: %w", w, err)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
}

func TestMemoryConformance(t *testing.T) {
	testStore(t, harness{
		newStore: func(t *testing.T, now func() time.Time) store {
			m := NewMemory(MemoryConfig{Now: now})
			t.Cleanup(func() { m.Close() })
			return m
		},
	})
}

// viewer is implemented by stores with a copy-free read path.
type viewer interface {
	View(ctx context.Context, t Ticket) (*Session, error)
}

var (
	_ viewer = (*Memory)(nil)
	_ viewer = (*Cached)(nil)
)

// testView checks View agrees with Load: same session, same refusals.
func testView(t *testing.T, s store) {
	ctx := context.Background()
	v := s.(viewer)
	tk := mustTicket(t)
	sess := fullSession(time.Now())
	if _, err := v.View(ctx, tk); !errors.Is(err, ErrNotFound) {
		t.Fatalf("View of a missing session: %v", err)
	}
	if err := s.Save(ctx, tk, sess); err != nil {
		t.Fatal(err)
	}
	got, err := v.View(ctx, tk)
	if err != nil {
		t.Fatal(err)
	}
	if d := diffSessions(got, sess); d != "" {
		t.Errorf("View:\n%s", d)
	}
	wrong := tk
	wrong.Key[0] ^= 1
	if _, err := v.View(ctx, wrong); !errors.Is(err, ErrNotFound) {
		t.Errorf("View with the wrong key: %v; want ErrNotFound", err)
	}
	if err := s.Delete(ctx, tk); err != nil {
		t.Fatal(err)
	}
	if _, err := v.View(ctx, tk); !errors.Is(err, ErrNotFound) {
		t.Errorf("View after Delete: %v; want ErrNotFound", err)
	}
}

func TestView(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		m := NewMemory(MemoryConfig{})
		t.Cleanup(func() { m.Close() })
		testView(t, m)
	})
	t.Run("cached", func(t *testing.T) {
		srv := testredis.Start(t, testredis.Options{})
		c := NewCached(newRedisStore(t, srv, nil), CacheConfig{TTL: time.Minute})
		t.Cleanup(func() { c.Close() })
		<-c.subscribed
		testView(t, c)
	})
}
