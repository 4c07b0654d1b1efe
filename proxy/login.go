package proxy

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/sessionstore"
	"golang.org/x/oauth2"
)

// maxFlows bounds the login-flow cookies one browser holds (several tabs
// may log in at once); the oldest is dropped beyond it.
const maxFlows = 5

// flowTTL is how long a started login may take.
const flowTTL = 10 * time.Minute

// flow is the state of one login in progress, kept in an encrypted cookie
// bound to the browser that started it.
type flow struct {
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"`
	Redirect string `json:"rd"`
	Handoff  string `json:"hn,omitempty"` // rd is on another host: its browser nonce's hash
	Started  int64  `json:"t"`
}

func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// flowCookieName derives the cookie name from the state, so the callback
// finds its flow among several.
func (s *Server) flowCookieName(state string) string {
	return s.flowPrefix + state[:16]
}

func (s *Server) flowCookie(name, value string, maxAge int) *http.Cookie {
	return &http.Cookie{
		// Below the prefix, not only the callback: /start must see the
		// browser's flows to keep them at maxFlows.
		Name:     name,
		Value:    value,
		Path:     s.prefix + "/",
		Secure:   s.cfg.Cookie.Secure,
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
		MaxAge:   maxAge,
	}
}

const (
	// maxRedirectLen bounds rd: it travels in the flow cookie, and a
	// browser drops a cookie over 4 KB silently, which would lose the login.
	maxRedirectLen = 2048
	// maxCookieLen is what every browser keeps of one cookie (RFC 6265 §6.1).
	maxCookieLen = 4096
)

func (s *Server) handleStart(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		s.fail(w, r, http.StatusMethodNotAllowed, "Use GET.")
		return
	}
	rd := "/"
	if raw := r.URL.Query().Get("rd"); raw != "" {
		if len(raw) > maxRedirectLen {
			s.fail(w, r, http.StatusBadRequest, "The address to return to after signing in is too long.")
			return
		}
		if clean, err := s.cfg.Login.Redirects.Check(raw); err == nil {
			rd = clean
		} else {
			s.log.Info("login: ignoring invalid rd", "request_id", requestID(r), "err", err)
		}
	}
	if s.otherHost(r.Host) {
		s.startElsewhere(w, r, rd)
		return
	}
	hn := ""
	if rdHost := s.rdHost(rd); rdHost != "" {
		// A login for another host: that host's nonce must come along
		// (docs/multi-host.md); without one, the browser gets it there.
		if hn = r.URL.Query().Get("hn"); len(hn) != 43 {
			u, _ := url.Parse(rd)
			http.Redirect(w, r, u.Scheme+"://"+u.Host+s.prefix+"/start?rd="+url.QueryEscape(rd), http.StatusFound)
			return
		}
		if t, ok := s.ticket(r); ok {
			if _, err := s.load(r.Context(), t); err == nil {
				// Signed in here already: no new login, a code for that host.
				if err := s.handOff(w, r, t, rd, hn); err != nil {
					s.log.Error("multi-host sign-in: issuing a code", "request_id", requestID(r), "err", err)
					s.fail(w, r, http.StatusServiceUnavailable, "Sign-in could not be completed; try again shortly.")
				}
				return
			}
		}
	}
	f := flow{
		Handoff:  hn,
		State:    randomString(32),
		Nonce:    randomString(32),
		Verifier: oauth2.GenerateVerifier(),
		Redirect: rd,
		Started:  s.now().Unix(),
	}
	authURL, err := s.cfg.Login.Client.AuthCodeURL(f.State, f.Nonce, f.Verifier)
	if err != nil {
		s.log.Error("login: provider not ready", "request_id", requestID(r), "err", err)
		s.fail(w, r, http.StatusServiceUnavailable, "The identity provider is not reachable yet; try again shortly.")
		return
	}
	raw, _ := json.Marshal(f)
	name := s.flowCookieName(f.State)
	value, err := s.cfg.Cookie.FlowCodec.Encode(name, raw)
	if err != nil {
		s.log.Error("login: encoding flow cookie", "request_id", requestID(r), "err", err)
		s.fail(w, r, http.StatusInternalServerError, "Internal error.")
		return
	}
	cookie := s.flowCookie(name, value, int(flowTTL/time.Second))
	if len(cookie.String()) > maxCookieLen {
		s.fail(w, r, http.StatusBadRequest, "The address to return to after signing in is too long.")
		return
	}
	// Signing in again ends the session this browser had, at once: its
	// cookie is cleared and it ends server-side (a fresh id comes at the
	// callback in any case).
	if old, ok := s.ticket(r); ok {
		if err := s.storeDelete(r.Context(), old); err != nil {
			s.log.Warn("login: ending the previous session", "request_id", requestID(r), "err", err)
		}
	}
	if len(r.CookiesNamed(s.cookieName)) > 0 {
		http.SetCookie(w, s.sessionCookie(""))
	}
	s.dropOldFlows(w, r)
	http.SetCookie(w, cookie)
	http.Redirect(w, r, authURL, http.StatusFound)
}

// dropOldFlows expires the oldest flow cookies so that, with the new one,
// at most maxFlows remain. Undecodable ones go first.
func (s *Server) dropOldFlows(w http.ResponseWriter, r *http.Request) {
	type aged struct {
		name string
		t    int64
	}
	var flows []aged
	for _, c := range r.Cookies() {
		if !strings.HasPrefix(c.Name, s.flowPrefix) {
			continue
		}
		var f flow
		if raw, err := s.cfg.Cookie.FlowCodec.Decode(c.Name, c.Value); err == nil && json.Unmarshal(raw, &f) == nil {
			flows = append(flows, aged{c.Name, f.Started})
		} else {
			flows = append(flows, aged{c.Name, 0})
		}
	}
	for len(flows) >= maxFlows {
		oldest := 0
		for i, f := range flows {
			if f.t < flows[oldest].t {
				oldest = i
			}
		}
		http.SetCookie(w, s.flowCookie(flows[oldest].name, "", -1))
		flows = append(flows[:oldest], flows[oldest+1:]...)
	}
}

func (s *Server) handleCallback(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		s.fail(w, r, http.StatusMethodNotAllowed, "Use GET.")
		return
	}
	q := r.URL.Query()
	state := q.Get("state")
	var f flow
	name := ""
	if len(state) >= 16 {
		name = s.flowCookieName(state)
		if c, err := r.Cookie(name); err == nil {
			raw, err := s.cfg.Cookie.FlowCodec.Decode(name, c.Value)
			if err == nil && json.Unmarshal(raw, &f) == nil &&
				subtle.ConstantTimeCompare([]byte(f.State), []byte(state)) == 1 {
				// The flow is used up whatever happens next.
				http.SetCookie(w, s.flowCookie(name, "", -1))
			} else {
				f = flow{}
			}
		}
	}
	if f.State == "" {
		s.cfg.Metrics.login("invalid_state")
		s.log.Info("login: callback without a matching login flow", "request_id", requestID(r))
		s.page(w, http.StatusBadRequest, "Sign-in expired",
			"This sign-in link is no longer valid: it expired, was already used, or was started in another browser.", s.prefix+"/start")
		return
	}
	if e := q.Get("error"); e != "" {
		s.cfg.Metrics.login("provider_error")
		s.log.Info("login: provider returned an error", "request_id", requestID(r), "error", truncate(e, 64))
		msg := "The identity provider did not sign you in."
		if e == "access_denied" {
			msg = "Access was denied at the identity provider."
		}
		s.page(w, http.StatusForbidden, "Sign-in failed", msg, s.prefix+"/start?rd="+url.QueryEscape(f.Redirect))
		return
	}
	code := q.Get("code")
	if code == "" || len(code) > 2048 {
		s.cfg.Metrics.login("invalid_state")
		s.page(w, http.StatusBadRequest, "Sign-in failed", "The identity provider's answer had no code.", s.prefix+"/start")
		return
	}
	ctx, end := s.span(r.Context(), "provider.exchange")
	res, err := s.cfg.Login.Client.Exchange(ctx, code, f.Verifier, f.Nonce)
	end(err)
	if err != nil {
		s.cfg.Metrics.login("exchange_failed")
		s.log.Warn("login: code exchange failed", "request_id", requestID(r), "err", err)
		s.page(w, http.StatusBadGateway, "Sign-in failed",
			"The sign-in could not be completed with the identity provider.", s.prefix+"/start?rd="+url.QueryEscape(f.Redirect))
		return
	}
	now := s.now()
	sess := &sessionstore.Session{
		Subject:           res.Identity.Subject,
		Email:             res.Identity.Email,
		EmailVerified:     res.Identity.EmailVerified,
		Name:              res.Identity.Name,
		PreferredUsername: res.Identity.PreferredUsername,
		Groups:            res.Identity.Groups,
		Claims:            res.Identity.Claims,
		ProviderSID:       res.Identity.ProviderSID,
		IDToken:           res.IDToken,
		AccessToken:       res.AccessToken,
		RefreshToken:      res.RefreshToken,
		TokenExpiry:       res.Expiry,
		AuthTime:          res.Identity.AuthTime,
		CreatedAt:         now,
		LastSeen:          now,
		ExpiresAt:         now.Add(s.cfg.Session.MaxLifetime),
		Version:           1,
	}
	if sess.AuthTime.IsZero() {
		sess.AuthTime = now
	}
	if why := s.rules.refuse(sess); why != "" {
		s.cfg.Metrics.login("forbidden")
		s.log.Info("login: user not allowed by policy", "request_id", requestID(r), "user", sess.Subject, "rule", why)
		s.page(w, http.StatusForbidden, "Not allowed", "You signed in, but this account is not allowed to use this site.", "")
		return
	}
	// A fresh session id at every login; any session the browser had before
	// is ended, so a planted cookie can never become a logged-in one.
	if old, ok := s.ticket(r); ok {
		_ = s.storeDelete(r.Context(), old)
	}
	t, err := sessionstore.NewTicket()
	if err == nil {
		start := time.Now()
		err = s.cfg.Session.Store.Save(r.Context(), t, sess)
		s.cfg.Metrics.storeOp("save", time.Since(start).Seconds(), err != nil)
	}
	var value string
	if err == nil {
		value, err = s.cfg.Cookie.Codec.EncodeTicket(s.cookieName, t)
	}
	if err != nil {
		s.cfg.Metrics.login("store_error")
		s.log.Error("login: saving session", "request_id", requestID(r), "err", err)
		s.page(w, http.StatusServiceUnavailable, "Sign-in failed", "Your session could not be saved; try again shortly.", s.prefix+"/start")
		return
	}
	s.recordSession(r, t, sess)
	s.cfg.Metrics.login("success")
	s.log.Info("login", "request_id", requestID(r), "user", sess.Subject, "sid", t.SID())
	http.SetCookie(w, s.sessionCookie(value))
	// The target was checked when the flow started; check again at use.
	rd, err := s.cfg.Login.Redirects.Check(f.Redirect)
	if err != nil {
		rd = "/"
	}
	if f.Handoff != "" && s.rdHost(rd) != "" {
		if err := s.handOff(w, r, t, rd, f.Handoff); err == nil {
			return
		}
		s.log.Error("multi-host sign-in: issuing a code", "request_id", requestID(r), "err", err)
		rd = "/"
	}
	http.Redirect(w, r, rd, http.StatusFound)
}

func (s *Server) handleUserinfo(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		s.fail(w, r, http.StatusMethodNotAllowed, "Use GET.")
		return
	}
	sess, _, err := s.session(r)
	if errors.Is(err, errNoSession) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="gatehouse"`)
		writeJSONError(w, http.StatusUnauthorized, "unauthorized", "Not signed in.")
		return
	}
	if err != nil {
		s.fail(w, r, http.StatusServiceUnavailable, "Session store unavailable; try again shortly.")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	groups := sess.Groups
	if groups == nil {
		groups = []string{}
	}
	_ = json.NewEncoder(w).Encode(map[string]any{
		"user":               sess.Subject,
		"email":              sess.Email,
		"email_verified":     sess.EmailVerified,
		"name":               sess.Name,
		"preferred_username": sess.PreferredUsername,
		"groups":             groups,
	})
}

func (s *Server) handleJWKS(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Token.JWKS == nil {
		s.fail(w, r, http.StatusNotFound, "Not found.")
		return
	}
	w.Header().Del("Cache-Control") // the key set is public and cacheable
	s.cfg.Token.JWKS.ServeHTTP(w, r)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
