package proxy

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/gatehouse/gatehouse/oidcclient"
	"github.com/gatehouse/gatehouse/sessionstore"
)

// Sessions' provider tokens are refreshed in the background, once per
// session across all replicas (the store's lock), a bounded number at a
// time, and not at all for a while after the provider failed: an outage
// ends in a trickle of retries, never a stampede. A refresh token the
// provider rotated is never lost: the provider call and the write of its
// result have separate deadlines, and the write is retried.
const (
	// refreshMargin: refresh once the provider's access token has less than
	// this left.
	refreshMargin = time.Minute
	// refreshLockTTL is held, not released: at most one refresh per session
	// per this interval, on every replica together. The write of a result
	// is retried within it.
	refreshLockTTL = 30 * time.Second
	// refreshCallTimeout bounds the provider call, refreshWriteTimeout each
	// attempt to save its result, refreshWriteAttempts how many there are.
	refreshCallTimeout   = 10 * time.Second
	refreshWriteTimeout  = 2 * time.Second
	refreshWriteAttempts = 5
	// maxRefreshes is how many refreshes one replica runs at once.
	maxRefreshes = 8
	// refreshBackoffMax caps the pause after consecutive provider failures.
	refreshBackoffMax = time.Minute
)

var errRefreshFailed = errors.New("proxy: refresh failed")

func refreshDue(sess *sessionstore.Session, now time.Time) bool {
	return sess.RefreshToken != "" && !sess.TokenExpiry.IsZero() && !now.Before(sess.TokenExpiry.Add(-refreshMargin))
}

// refreshGate limits refreshes: a concurrency cap, and a pause with
// exponential backoff and jitter after the provider fails.
type refreshGate struct {
	slots chan struct{}

	mu       sync.Mutex
	failures int
	until    time.Time // no refresh starts before this
}

func newRefreshGate() *refreshGate {
	return &refreshGate{slots: make(chan struct{}, maxRefreshes)}
}

// enter takes a slot unless all are busy or the provider is being given a
// rest; leave must follow a true.
func (g *refreshGate) enter(now time.Time) bool {
	g.mu.Lock()
	paused := now.Before(g.until)
	g.mu.Unlock()
	if paused {
		return false
	}
	select {
	case g.slots <- struct{}{}:
		return true
	default:
		return false
	}
}

func (g *refreshGate) leave() { <-g.slots }

// providerFailed starts or extends the pause: 1s, 2s, 4s ... up to
// refreshBackoffMax, each with up to half again of jitter so replicas do
// not come back in step.
func (g *refreshGate) providerFailed(now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.failures++
	d := min(time.Second<<min(g.failures-1, 16), refreshBackoffMax)
	d += rand.N(d/2 + 1)
	g.until = now.Add(d)
}

func (g *refreshGate) providerAnswered() {
	g.mu.Lock()
	g.failures, g.until = 0, time.Time{}
	g.mu.Unlock()
}

// maybeRefresh starts a background refresh when the session's provider
// tokens are about to expire. The request goes on with the session as it is.
func (s *Server) maybeRefresh(t sessionstore.Ticket, sess *sessionstore.Session) {
	if !refreshDue(sess, s.now()) {
		return
	}
	sid := t.SID()
	if _, busy := s.refreshing.LoadOrStore(sid, struct{}{}); busy {
		return
	}
	if !s.refreshes.enter(s.now()) {
		s.refreshing.Delete(sid)
		s.cfg.Metrics.refresh("deferred") // tried again on a later request
		return
	}
	go func() {
		defer s.refreshing.Delete(sid)
		defer s.refreshes.leave()
		s.cfg.Metrics.refresh(s.refresh(context.Background(), t))
	}()
}

// refresh renews one session and returns the outcome for the metrics.
func (s *Server) refresh(ctx context.Context, t sessionstore.Ticket) (outcome string) {
	ctx, end := s.span(ctx, "session.refresh")
	defer func() {
		var err error
		if outcome == "error" {
			err = errRefreshFailed
		}
		end(err)
	}()
	store := s.cfg.Session.Store
	lockCtx, cancel := context.WithTimeout(ctx, refreshWriteTimeout)
	got, err := store.TryLock(lockCtx, t, refreshLockTTL)
	cancel()
	if err != nil {
		s.log.Warn("refresh: cannot take the session lock", "sid", t.SID(), "err", err)
		return "error"
	}
	if !got {
		return "skipped" // another request or replica has it
	}
	readCtx, cancel := context.WithTimeout(ctx, refreshWriteTimeout)
	sess, err := store.LoadFresh(readCtx, t) // never a cache: the refresh token may have rotated
	cancel()
	if err != nil {
		return "skipped" // gone meanwhile
	}
	if !refreshDue(sess, s.now()) {
		return "skipped" // already refreshed elsewhere
	}
	prev := oidcclient.Identity{
		Subject: sess.Subject, Email: sess.Email, EmailVerified: sess.EmailVerified, Name: sess.Name,
		PreferredUsername: sess.PreferredUsername, Groups: sess.Groups, ProviderSID: sess.ProviderSID,
		AuthTime: sess.AuthTime, Claims: sess.Claims,
	}
	callCtx, cancel := context.WithTimeout(ctx, refreshCallTimeout)
	res, err := s.cfg.Login.Client.Refresh(callCtx, sess.RefreshToken, prev)
	cancel()
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.ErrorCode == "invalid_grant" {
			s.refreshes.providerAnswered()
			// The provider no longer honours this login: the user was
			// disabled, signed out there, or the grant was revoked.
			delCtx, cancel := context.WithTimeout(ctx, refreshWriteTimeout)
			defer cancel()
			if err := s.storeDelete(delCtx, t); err != nil {
				s.log.Error("refresh: ending a session the provider revoked", "sid", t.SID(), "err", err)
				return "error"
			}
			s.cfg.Metrics.revoked("provider_revoked", 1)
			s.log.Info("refresh: the provider revoked the grant; session ended", "sid", t.SID(), "user", sess.Subject)
			return "revoked"
		}
		s.refreshes.providerFailed(s.now())
		s.log.Warn("refresh failed; the session continues and is retried later", "sid", t.SID(), "err", err)
		return "error"
	}
	s.refreshes.providerAnswered()
	id := res.Identity
	sess.Email, sess.EmailVerified, sess.Name = id.Email, id.EmailVerified, id.Name
	sess.PreferredUsername, sess.Groups, sess.Claims = id.PreferredUsername, id.Groups, id.Claims
	if res.IDToken != "" {
		sess.IDToken = res.IDToken
	}
	sess.AccessToken, sess.RefreshToken, sess.TokenExpiry = res.AccessToken, res.RefreshToken, res.Expiry
	sess.Version++
	// The provider may have rotated the refresh token and revoked the old
	// one: this write must not be lost to one slow or failed attempt.
	for attempt := range refreshWriteAttempts {
		writeCtx, cancel := context.WithTimeout(ctx, refreshWriteTimeout)
		err = store.Replace(writeCtx, t, sess)
		cancel()
		switch {
		case err == nil:
			return "success"
		case errors.Is(err, sessionstore.ErrNotFound):
			return "skipped" // signed out while we refreshed: stay signed out
		}
		s.log.Warn("refresh: saving the refreshed session; retrying", "sid", t.SID(), "attempt", attempt+1, "err", err)
		if !s.refreshPause(ctx, attempt) {
			break
		}
	}
	s.log.Error("refresh: the refreshed session could not be saved", "sid", t.SID(), "err", err)
	return "error"
}

// refreshPause waits before write attempt attempt+2 (200ms, 400ms, ...),
// or not at all where the test set refreshRetryNow. False if ctx ended.
func (s *Server) refreshPause(ctx context.Context, attempt int) bool {
	if s.refreshRetryNow {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(200 * time.Millisecond << attempt)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}
