package proxy

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"time"

	"github.com/gatehouse/gatehouse/oidcclient"
)

// maxLogoutBody bounds a back-channel logout request body: one logout token
// of a few KiB is all it holds.
const maxLogoutBody = 64 << 10

// logoutVerifier verifies back-channel logout tokens (oidcclient.Client):
// errors wrapping oidcclient.ErrInvalidToken mean the token is bad, any
// other that it could not be checked. Safe for concurrent use.
type logoutVerifier interface {
	VerifyLogout(ctx context.Context, raw string) (*oidcclient.Logout, error)
}

// oneShotStore remembers one-shot tokens on every replica until they expire
// (sessionstore.Memory, Redis and Cached; part of Store). Safe for
// concurrent use.
type oneShotStore interface {
	// MarkUsed marks key used until until and reports whether it was its
	// first use, on any replica; of concurrent calls exactly one is first.
	MarkUsed(ctx context.Context, key string, until time.Time) (first bool, err error)
	// UnmarkUsed forgets key, so a token whose processing failed after
	// MarkUsed can be retried.
	UnmarkUsed(ctx context.Context, key string) error
}

// sessionEnder ends sessions without their cookie (part of Store).
type sessionEnder interface {
	DeleteBySubject(ctx context.Context, subject string) (int, error)
	DeleteByProviderSID(ctx context.Context, sid string) (int, error)
}

// backchannelLogout serves POST /oauth2/backchannel_logout: OpenID Connect
// Back-Channel Logout 1.0. The provider POSTs a signed logout token; every
// Gatehouse session of that provider login (sid) or, without a sid, of that
// user (sub) ends on every replica. Answers (section 2.8): 200; 400 with a
// JSON error for a bad request or token, a replayed one included, which
// never ends a session; 503 when the token could not be checked or the
// sessions not ended, so the provider retries.
type backchannelLogout struct {
	verifier logoutVerifier
	sessions sessionEnder
	used     oneShotStore
	log      *slog.Logger
	metrics  *Metrics // nil = none
}

func (s *Server) handleBackchannelLogout(w http.ResponseWriter, r *http.Request) {
	backchannelLogout{
		verifier: s.cfg.Login.Client,
		sessions: s.cfg.Session.Store,
		used:     s.cfg.Session.Store,
		log:      s.log,
		metrics:  s.cfg.Metrics,
	}.ServeHTTP(w, r)
}

func (b backchannelLogout) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeJSONError(w, http.StatusMethodNotAllowed, "invalid_request", "Use POST.")
		return
	}
	log := b.log.With("request_id", requestID(r))
	raw, status, msg := logoutTokenOf(w, r)
	if status != 0 {
		log.Info("back-channel logout: bad request", "status", status, "reason", msg)
		writeJSONError(w, status, "invalid_request", msg)
		return
	}
	ctx := r.Context()
	lt, err := b.verifier.VerifyLogout(ctx, raw)
	if err != nil {
		if errors.Is(err, oidcclient.ErrInvalidToken) {
			log.Info("back-channel logout: token refused", "err", err)
			writeJSONError(w, http.StatusBadRequest, "invalid_request", "The logout token is invalid.")
			return
		}
		log.Warn("back-channel logout: token could not be checked", "err", err)
		writeJSONError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "The logout token could not be checked; retry.")
		return
	}
	// A logout token is used once (section 2.6 step 8): remembered on every
	// replica until it could no longer be accepted anyway.
	key := "backchannel-logout\x00" + lt.JTI
	first, err := b.used.MarkUsed(ctx, key, lt.Until)
	if err != nil {
		log.Error("back-channel logout: remembering the token", "err", err)
		writeJSONError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "The logout token could not be processed; retry.")
		return
	}
	if !first {
		log.Warn("back-channel logout: token replayed; refused", "user", lt.Subject)
		writeJSONError(w, http.StatusBadRequest, "invalid_request", "The logout token was already used.")
		return
	}
	var n int
	if lt.SessionID != "" {
		n, err = b.sessions.DeleteByProviderSID(ctx, lt.SessionID)
	} else {
		n, err = b.sessions.DeleteBySubject(ctx, lt.Subject)
	}
	if err != nil {
		log.Error("back-channel logout: ending sessions", "err", err)
		// Let the provider's retry through: it carries the same jti.
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		if err := b.used.UnmarkUsed(uctx, key); err != nil {
			log.Error("back-channel logout: forgetting the token for a retry", "err", err)
		}
		cancel()
		writeJSONError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "Sessions could not be ended; retry.")
		return
	}
	// An audit line like every revocation's: who (the provider), what, how many.
	b.metrics.revoked("backchannel_logout", n)
	scope := "user"
	if lt.SessionID != "" {
		scope = "provider_session"
	}
	log.Info("audit: sessions revoked", "by", "identity_provider", "what", "backchannel_logout", "scope", scope,
		"user", lt.Subject, "sessions", n)
	w.WriteHeader(http.StatusOK)
}

// logoutTokenOf reads the one logout_token of r, which must come in an
// application/x-www-form-urlencoded body (section 2.5): not in the query
// string, not in JSON or multipart, not twice. A non-zero status comes
// with the message for the client.
func logoutTokenOf(w http.ResponseWriter, r *http.Request) (raw string, status int, msg string) {
	if q, err := url.ParseQuery(r.URL.RawQuery); err != nil || q.Has("logout_token") {
		return "", http.StatusBadRequest, "logout_token belongs in a form body, not in the query string."
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/x-www-form-urlencoded" {
		return "", http.StatusBadRequest, "The body must be application/x-www-form-urlencoded."
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxLogoutBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return "", http.StatusRequestEntityTooLarge, "The body is too large."
		}
		return "", http.StatusBadRequest, "The body could not be read."
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return "", http.StatusBadRequest, "The body is not a valid form."
	}
	if v := form["logout_token"]; len(v) != 1 || v[0] == "" {
		return "", http.StatusBadRequest, "Exactly one logout_token is required."
	}
	return form.Get("logout_token"), 0, ""
}
