package proxy

import (
	"context"
	"errors"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/gatehouse/gatehouse/oidcclient"
	"github.com/gatehouse/gatehouse/sessionstore"
)

// refreshingLogin is a LoginClient whose Refresh answers from the test; the
// rest is a real, undiscovered client.
type refreshingLogin struct {
	*oidcclient.Client
	calls int
	res   *oidcclient.Result
	err   error
}

func (l *refreshingLogin) Refresh(_ context.Context, rt string, prev oidcclient.Identity) (*oidcclient.Result, error) {
	l.calls++
	if l.err != nil {
		return nil, l.err
	}
	return l.res, nil
}

// TestRefreshOutcomes covers one background refresh of a session whose
// provider tokens are due: the lock shared by replicas, the provider's
// answers, and a session ended meanwhile.
func TestRefreshOutcomes(t *testing.T) {
	fresh := &oidcclient.Result{
		Identity:    oidcclient.Identity{Subject: "u1", Email: "u1@example.com", EmailVerified: true, Groups: []string{"new"}},
		AccessToken: "at2", RefreshToken: "rt2", Expiry: time.Now().Add(time.Hour),
	}
	for _, tt := range []struct {
		name      string
		err       error
		locked    bool // another replica holds the lock
		deleted   bool // the session ends before the refresh writes
		want      string
		wantCalls int
		wantAlive bool
		wantRT    string // the refresh token the session keeps
	}{
		{name: "success", want: "success", wantCalls: 1, wantAlive: true, wantRT: "rt2"},
		{name: "another replica refreshes", locked: true, want: "skipped", wantCalls: 0, wantAlive: true, wantRT: "rt1"},
		{name: "provider revoked the grant", err: &oauth2.RetrieveError{ErrorCode: "invalid_grant"}, want: "revoked", wantCalls: 1},
		{name: "provider down: the session goes on", err: errors.New("connection refused"), want: "error", wantCalls: 1, wantAlive: true, wantRT: "rt1"},
		{name: "signed out meanwhile: stays signed out", deleted: true, want: "skipped", wantCalls: 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil)
			login := &refreshingLogin{Client: oidcclient.New(oidcclient.Config{Issuer: "http://127.0.0.1:1"}), res: fresh, err: tt.err}
			f.srv.cfg.Login.Client = login
			ctx := context.Background()
			tk, _ := sessionstore.NewTicket()
			now := f.clock.Now()
			s := &sessionstore.Session{Subject: "u1", Email: "u1@example.com", EmailVerified: true, Groups: []string{"old"},
				RefreshToken: "rt1", AccessToken: "at1", TokenExpiry: now.Add(30 * time.Second),
				CreatedAt: now, LastSeen: now, AuthTime: now, ExpiresAt: now.Add(time.Hour), Version: 1}
			if err := f.store.Save(ctx, tk, s); err != nil {
				t.Fatal(err)
			}
			if tt.locked {
				if ok, err := f.store.TryLock(ctx, tk, time.Minute); !ok || err != nil {
					t.Fatal("cannot take the lock", err)
				}
			}
			if tt.deleted {
				if err := f.store.Delete(ctx, tk); err != nil {
					t.Fatal(err)
				}
			}
			if got := f.srv.refresh(ctx, tk); got != tt.want {
				t.Errorf("outcome %q; want %q", got, tt.want)
			}
			if login.calls != tt.wantCalls {
				t.Errorf("provider called %d times; want %d", login.calls, tt.wantCalls)
			}
			got, err := f.store.Load(ctx, tk)
			if alive := err == nil; alive != tt.wantAlive {
				t.Fatalf("session alive = %v (%v); want %v", alive, err, tt.wantAlive)
			}
			if !tt.wantAlive {
				return
			}
			if got.RefreshToken != tt.wantRT {
				t.Errorf("refresh token %q; want %q", got.RefreshToken, tt.wantRT)
			}
			if tt.want == "success" && (got.Version != 2 || len(got.Groups) != 1 || got.Groups[0] != "new") {
				t.Errorf("after refresh: version %d, groups %v; want 2, [new]", got.Version, got.Groups)
			}
		})
	}
}

// flakyStore fails Replace a given number of times, as a Redis failover would.
type flakyStore struct {
	Store
	failures int
}

func (s *flakyStore) Replace(ctx context.Context, t sessionstore.Ticket, sess *sessionstore.Session) error {
	if s.failures > 0 {
		s.failures--
		return errors.New("READONLY You can't write against a read only replica")
	}
	return s.Store.Replace(ctx, t, sess)
}

// TestRefreshWriteIsRetried: the provider has rotated the refresh token, so
// its result must reach the store even when the first writes fail.
func TestRefreshWriteIsRetried(t *testing.T) {
	for _, tt := range []struct {
		failures int
		want     string
		wantRT   string
	}{
		{0, "success", "rt2"},
		{refreshWriteAttempts - 1, "success", "rt2"},
		{refreshWriteAttempts, "error", "rt1"},
	} {
		mem := sessionstore.NewMemory(sessionstore.MemoryConfig{})
		store := &flakyStore{Store: mem, failures: tt.failures}
		f := newFixture(t, store)
		f.srv.refreshRetryNow = true
		f.srv.cfg.Login.Client = &refreshingLogin{Client: oidcclient.New(oidcclient.Config{Issuer: "http://127.0.0.1:1"}),
			res: &oidcclient.Result{Identity: oidcclient.Identity{Subject: "u1"}, RefreshToken: "rt2", Expiry: time.Now().Add(time.Hour)}}
		ctx := context.Background()
		tk, _ := sessionstore.NewTicket()
		now := f.clock.Now()
		if err := mem.Save(ctx, tk, &sessionstore.Session{Subject: "u1", RefreshToken: "rt1", TokenExpiry: now,
			CreatedAt: now, LastSeen: now, ExpiresAt: now.Add(time.Hour), Version: 1}); err != nil {
			t.Fatal(err)
		}
		if got := f.srv.refresh(ctx, tk); got != tt.want {
			t.Errorf("%d failed writes: outcome %q; want %q", tt.failures, got, tt.want)
		}
		if s, err := mem.Load(ctx, tk); err != nil || s.RefreshToken != tt.wantRT {
			t.Errorf("%d failed writes: stored refresh token %v, %v; want %q", tt.failures, s, err, tt.wantRT)
		}
	}
}

// TestRefreshGate: at most maxRefreshes run at once, and after the provider
// fails no refresh starts until the backoff (with its jitter) has passed;
// an answer from the provider, even a refusal, ends the pause.
func TestRefreshGate(t *testing.T) {
	g := newRefreshGate()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range maxRefreshes {
		if !g.enter(now) {
			t.Fatalf("slot %d refused; want %d slots", i, maxRefreshes)
		}
	}
	if g.enter(now) {
		t.Fatal("a refresh beyond the cap started")
	}
	g.leave()
	if !g.enter(now) {
		t.Fatal("a freed slot was not reused")
	}
	for range maxRefreshes {
		g.leave()
	}
	for failures, pause := 1, time.Second; failures <= 8; failures, pause = failures+1, min(2*pause, refreshBackoffMax) {
		g.providerFailed(now)
		if g.enter(now.Add(pause - time.Millisecond)) {
			t.Fatalf("after %d failures a refresh started before %v", failures, pause)
		}
		if !g.enter(now.Add(pause + pause/2 + time.Millisecond)) {
			t.Fatalf("after %d failures no refresh started after %v", failures, pause+pause/2)
		}
		g.leave()
	}
	g.providerAnswered()
	if !g.enter(now) {
		t.Fatal("the pause outlived an answer from the provider")
	}
}
