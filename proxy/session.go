package proxy

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/gatehouse/gatehouse/sessionstore"
)

// errNoSession means the request has no usable session: no cookie, a cookie
// that does not decode, or a session that is gone or timed out.
var errNoSession = errors.New("no session")

// session returns the request's session. Any other error than errNoSession
// means the store could not answer (a 503, not a login).
func (s *Server) session(r *http.Request) (*sessionstore.Session, sessionstore.Ticket, error) {
	t, fresh, ok := s.decodeTicket(r)
	if !ok {
		return nil, t, errNoSession
	}
	ctx := r.Context()
	sess, err := s.load(ctx, t)
	if err != nil {
		return nil, t, err
	}
	now := s.now()
	if sess.Expired(now, s.cfg.Session.IdleTimeout) {
		if !now.Before(sess.ExpiresAt) {
			s.storeDelete(ctx, t)
			return nil, t, errNoSession
		}
		// Idle by this copy, which may be a replica's cache: the store
		// re-reads it and ends it only if it is idle there too.
		ended, err := s.cfg.Session.Store.DeleteIfIdle(ctx, t, s.cfg.Session.IdleTimeout, now)
		if err != nil {
			return nil, t, err
		}
		if ended {
			return nil, t, errNoSession
		}
	}
	if fresh != "" {
		s.reissue(r, fresh, sess, now)
	}
	s.maybeRefresh(t, sess)
	if now.Sub(sess.LastSeen) >= s.touchEvery {
		// Best effort: a failed touch costs at most touchEvery of idle time.
		start := time.Now()
		err := s.cfg.Session.Store.Touch(ctx, t, now)
		s.cfg.Metrics.storeOp("touch", time.Since(start).Seconds(), err != nil && !errors.Is(err, sessionstore.ErrNotFound))
	}
	return sess, t, nil
}

// ticket decodes the session cookie. Several cookies of the same name can
// arrive (a sibling domain may have set one); the first that decodes wins.
func (s *Server) ticket(r *http.Request) (sessionstore.Ticket, bool) {
	t, _, ok := s.decodeTicket(r)
	return t, ok
}

// decodeTicket is ticket that also returns, for a cookie sealed with an
// older cookie secret than the newest, the same ticket sealed with the
// newest ("" otherwise): the value to send back so the older secret can be
// retired without signing anybody out.
func (s *Server) decodeTicket(r *http.Request) (t sessionstore.Ticket, fresh string, ok bool) {
	for _, c := range r.CookiesNamed(s.cookieName) {
		if e, ok := s.tickets.get(c.Value, s.now()); ok {
			return e.t, e.fresh, true
		}
		t, stale, err := s.cfg.Cookie.Codec.DecodeTicketStale(s.cookieName, c.Value)
		if err != nil {
			continue
		}
		if stale {
			// Encoded once per cached value, not per request: a browser's
			// parallel requests all carry the old cookie until the first
			// answer lands.
			if fresh, err = s.cfg.Cookie.Codec.EncodeTicket(s.cookieName, t); err != nil {
				fresh = "" // keep the old cookie; it still decodes
			}
		}
		s.tickets.put(c.Value, ticketEntry{t: t, fresh: fresh}, s.now())
		return t, fresh, true
	}
	return sessionstore.Ticket{}, "", false
}

// reissue sets the session cookie to value, sealed with the newest secret,
// on the response to r, expiring with the session rather than a full
// lifetime from now.
func (s *Server) reissue(r *http.Request, value string, sess *sessionstore.Session, now time.Time) {
	rs := stateOf(r)
	if rs.respHeader == nil {
		return
	}
	c := s.sessionCookie(value)
	if left := sess.ExpiresAt.Sub(now); !sess.ExpiresAt.IsZero() && left < s.cfg.Session.MaxLifetime {
		c.MaxAge = max(int(left/time.Second), 1)
	}
	if v := c.String(); v != "" {
		rs.respHeader.Add("Set-Cookie", v)
		s.log.Debug("session cookie re-issued under the newest cookie secret", "request_id", rs.id)
	}
}

// ticketCache remembers recently decoded cookie values, sparing the HMAC and
// AES work on a browser's every request. Only values that decoded are kept,
// for at most ticketCacheTTL: the cookie's own age limit can be exceeded by
// that much at most, and the server-side session's lifetime still governs.
// Bounded: when full it starts over. A Server's cache lives as long as its
// configuration: a reload with other cookie secrets starts a new one.
type ticketCache struct {
	mu sync.RWMutex
	m  map[string]ticketEntry
}

type ticketEntry struct {
	t sessionstore.Ticket
	// fresh is t sealed with the newest secret when the cached value was
	// sealed with an older one; "" when the value is current.
	fresh string
	exp   time.Time
}

const (
	ticketCacheTTL = time.Minute
	ticketCacheMax = 20000
)

func (c *ticketCache) get(value string, now time.Time) (ticketEntry, bool) {
	c.mu.RLock()
	e, ok := c.m[value]
	c.mu.RUnlock()
	if !ok || !now.Before(e.exp) {
		return ticketEntry{}, false
	}
	return e, true
}

func (c *ticketCache) put(value string, e ticketEntry, now time.Time) {
	e.exp = now.Add(ticketCacheTTL)
	c.mu.Lock()
	if c.m == nil || len(c.m) >= ticketCacheMax {
		c.m = make(map[string]ticketEntry)
	}
	c.m[value] = e
	c.mu.Unlock()
}

// load returns the request's session read-only: nothing on the request path
// modifies a session (changes go through Save, Replace or Touch).
func (s *Server) load(ctx context.Context, t sessionstore.Ticket) (*sessionstore.Session, error) {
	start := time.Now()
	ctx, end := s.span(ctx, "session.load")
	sess, err := s.cfg.Session.Store.View(ctx, t)
	notFound := errors.Is(err, sessionstore.ErrNotFound)
	if notFound {
		end(nil) // an answer, not a failure
	} else {
		end(err)
	}
	s.cfg.Metrics.storeOp("load", time.Since(start).Seconds(), err != nil && !notFound)
	if notFound {
		return nil, errNoSession
	}
	return sess, err
}

func (s *Server) storeDelete(ctx context.Context, t sessionstore.Ticket) error {
	start := time.Now()
	err := s.cfg.Session.Store.Delete(ctx, t)
	s.cfg.Metrics.storeOp("delete", time.Since(start).Seconds(), err != nil)
	return err
}

// sessionCookie builds the Set-Cookie for a ticket value; value "" clears it.
func (s *Server) sessionCookie(value string) *http.Cookie {
	c := &http.Cookie{
		Name:     s.cookieName,
		Value:    value,
		Path:     "/",
		Secure:   s.cfg.Cookie.Secure,
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
		MaxAge:   int(s.cfg.Session.MaxLifetime / time.Second),
	}
	if value == "" {
		c.MaxAge = -1
	}
	return c
}
