package proxy

import (
	"context"
	"errors"
	"time"

	"golang.org/x/oauth2"

	"github.com/gatehouse/gatehouse/oidcclient"
	"github.com/gatehouse/gatehouse/sessionstore"
)

const (
	// refreshMargin: refresh once the provider's access token has less than
	// this left.
	refreshMargin = time.Minute
	// refreshLockTTL is held, not released: at most one refresh per session
	// per this interval, on every replica together.
	refreshLockTTL = 30 * time.Second
	refreshTimeout = 20 * time.Second
)

func refreshDue(sess *sessionstore.Session, now time.Time) bool {
	return sess.RefreshToken != "" && !sess.TokenExpiry.IsZero() && !now.Before(sess.TokenExpiry.Add(-refreshMargin))
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
	go func() {
		defer s.refreshing.Delete(sid)
		ctx, cancel := context.WithTimeout(context.Background(), refreshTimeout)
		defer cancel()
		s.cfg.Metrics.refresh(s.refresh(ctx, t))
	}()
}

// refresh renews one session and returns the outcome for the metrics.
func (s *Server) refresh(ctx context.Context, t sessionstore.Ticket) string {
	got, err := s.cfg.Session.Store.TryLock(ctx, t, refreshLockTTL)
	if err != nil {
		s.log.Warn("refresh: cannot take the session lock", "sid", t.SID(), "err", err)
		return "error"
	}
	if !got {
		return "skipped" // another request or replica has it
	}
	sess, err := s.cfg.Session.Store.Load(ctx, t)
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
	res, err := s.cfg.Login.Client.Refresh(ctx, sess.RefreshToken, prev)
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.ErrorCode == "invalid_grant" {
			// The provider no longer honours this login: the user was
			// disabled, signed out there, or the grant was revoked.
			if err := s.storeDelete(ctx, t); err != nil {
				s.log.Error("refresh: ending a session the provider revoked", "sid", t.SID(), "err", err)
				return "error"
			}
			s.log.Info("refresh: the provider revoked the grant; session ended", "sid", t.SID(), "user", sess.Subject)
			return "revoked"
		}
		s.log.Warn("refresh failed; the session continues and is retried later", "sid", t.SID(), "err", err)
		return "error"
	}
	id := res.Identity
	sess.Email, sess.EmailVerified, sess.Name = id.Email, id.EmailVerified, id.Name
	sess.PreferredUsername, sess.Groups, sess.Claims = id.PreferredUsername, id.Groups, id.Claims
	if res.IDToken != "" {
		sess.IDToken = res.IDToken
	}
	sess.AccessToken, sess.RefreshToken, sess.TokenExpiry = res.AccessToken, res.RefreshToken, res.Expiry
	sess.Version++
	if err := s.cfg.Session.Store.Replace(ctx, t, sess); err != nil {
		if errors.Is(err, sessionstore.ErrNotFound) {
			return "skipped" // signed out while we refreshed: stay signed out
		}
		s.log.Error("refresh: saving the refreshed session", "sid", t.SID(), "err", err)
		return "error"
	}
	return "success"
}
