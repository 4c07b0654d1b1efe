package proxy

import (
	"errors"
	"net/http"

	"github.com/gatehouse/gatehouse/oidcclient"
)

// handleBackchannelLogout implements OpenID Connect Back-Channel Logout 1.0:
// the provider POSTs a signed logout token, and every Gatehouse session of
// that provider login (sid) or, without a sid, of that user (sub) ends on
// every replica. Answers per the spec: 200, or 400 with a JSON error.
func (s *Server) handleBackchannelLogout(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeJSONError(w, http.StatusMethodNotAllowed, "invalid_request", "Use POST.")
		return
	}
	lv, rv := s.cfg.Login.Client, s.cfg.Session.Store
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	raw := r.PostFormValue("logout_token")
	if raw == "" {
		writeJSONError(w, http.StatusBadRequest, "invalid_request", "logout_token is required.")
		return
	}
	lt, err := lv.VerifyLogout(r.Context(), raw)
	if err != nil {
		s.log.Info("back-channel logout: token refused", "request_id", requestID(r), "err", err)
		code := http.StatusBadRequest
		if !errors.Is(err, oidcclient.ErrInvalidToken) {
			code = http.StatusServiceUnavailable // the provider's keys could not be had
		}
		writeJSONError(w, code, "invalid_request", "The logout token is invalid.")
		return
	}
	var n int
	if lt.SessionID != "" {
		n, err = rv.DeleteByProviderSID(r.Context(), lt.SessionID)
	} else {
		n, err = rv.DeleteBySubject(r.Context(), lt.Subject)
	}
	if err != nil {
		s.log.Error("back-channel logout: ending sessions", "request_id", requestID(r), "err", err)
		writeJSONError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "Sessions could not be ended; retry.")
		return
	}
	s.log.Info("back-channel logout", "request_id", requestID(r), "user", lt.Subject, "sessions", n)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}
