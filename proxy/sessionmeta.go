package proxy

import (
	"net/http"
	"net/netip"
	"time"

	"github.com/gatehouse/gatehouse/sessionstore"
)

// recordSession writes what `gatehouse sessions list` shows of a session
// saved at login: when, from which network, with which browser. Best
// effort: the login has succeeded; without the record an operator still
// lists and ends the session by subject, only not by sid or email.
func (s *Server) recordSession(r *http.Request, t sessionstore.Ticket, sess *sessionstore.Session) {
	keys := s.cfg.Session.Meta
	if keys == nil {
		return
	}
	addr, _ := netip.ParseAddr(s.clientIP(r, stateOf(r).trusted))
	m, err := keys.Seal(t, sessionstore.NewMeta(t, sess, sessionstore.ClientBrowser, r.Header.Get("User-Agent"), addr))
	if err == nil {
		start := time.Now()
		err = s.cfg.Session.Store.SaveMeta(r.Context(), t, m)
		s.cfg.Metrics.storeOp("save_meta", time.Since(start).Seconds(), err != nil)
	}
	if err != nil {
		s.log.Warn("login: recording the session for operators", "request_id", requestID(r), "sid", t.SID(), "err", err)
	}
}
