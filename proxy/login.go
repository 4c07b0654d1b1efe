package proxy

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"html/template"
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
	f := flow{
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
	res, err := s.cfg.Login.Client.Exchange(r.Context(), code, f.Verifier, f.Nonce)
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
	s.cfg.Metrics.login("success")
	s.log.Info("login", "request_id", requestID(r), "user", sess.Subject, "sid", t.SID())
	http.SetCookie(w, s.sessionCookie(value))
	// The target was checked when the flow started; check again at use.
	rd, err := s.cfg.Login.Redirects.Check(f.Redirect)
	if err != nil {
		rd = "/"
	}
	http.Redirect(w, r, rd, http.StatusFound)
}

func (s *Server) handleSignOut(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		s.fail(w, r, http.StatusMethodNotAllowed, "Use GET or POST.")
		return
	}
	rd := ""
	if raw := r.URL.Query().Get("rd"); raw != "" {
		if clean, err := s.cfg.Login.Redirects.Check(raw); err == nil {
			rd = clean
		}
	}
	// Another site must not be able to sign a user out (an <img> or a form
	// pointing here): a cross-site GET gets a confirmation form instead, a
	// cross-site POST a 403.
	if s.crossSite(http.MethodPost, r.Host, r.Header) {
		if r.Method == http.MethodPost {
			s.fail(w, r, http.StatusForbidden, "Cross-origin sign-out refused.")
			return
		}
		s.confirmSignOut(w, rd)
		return
	}
	idToken := ""
	if t, ok := s.ticket(r); ok {
		if s.cfg.Login.ProviderLogout {
			if sess, err := s.cfg.Session.Store.Load(r.Context(), t); err == nil {
				idToken = sess.IDToken
			}
		}
		if err := s.storeDelete(r.Context(), t); err != nil {
			// Never pretend: the session still exists server-side.
			s.log.Error("sign-out: deleting session", "request_id", requestID(r), "err", err)
			s.fail(w, r, http.StatusServiceUnavailable, "Sign-out could not be completed; try again shortly.")
			return
		}
		s.log.Info("sign-out", "request_id", requestID(r), "sid", t.SID())
	}
	http.SetCookie(w, s.sessionCookie(""))
	if end := s.cfg.Login.Client.EndSessionURL(); s.cfg.Login.ProviderLogout && end != "" && idToken != "" {
		http.Redirect(w, r, s.providerLogoutURL(end, idToken, rd), http.StatusFound)
		return
	}
	if rd != "" {
		http.Redirect(w, r, rd, http.StatusFound)
		return
	}
	if !isNavigation(r.Header, http.MethodGet) && r.Method == http.MethodPost {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	s.page(w, http.StatusOK, "Signed out", "You are signed out.", s.prefix+"/start")
}

var confirmTmpl = template.Must(template.New("confirm").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>Sign out? · Gatehouse</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:34rem;margin:12vh auto;padding:0 1rem;color:#222}
h1{font-size:1.4rem}button{font:inherit;padding:.4rem 1rem}</style></head>
<body><h1>Sign out?</h1><p>Another site sent you here to sign out.</p>
<form method="post" action="{{.Action}}"><button type="submit">Sign out</button></form></body></html>
`))

// confirmSignOut asks the user to confirm a sign-out another site started.
func (s *Server) confirmSignOut(w http.ResponseWriter, rd string) {
	action := s.prefix + "/sign_out"
	if rd != "" {
		action += "?rd=" + url.QueryEscape(rd)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'")
	w.Header().Set("X-Frame-Options", "DENY")
	w.WriteHeader(http.StatusOK)
	_ = confirmTmpl.Execute(w, struct{ Action string }{action})
}

// providerLogoutURL builds the RP-initiated logout request (OpenID Connect
// RP-Initiated Logout 1.0): the provider ends its session, then sends the
// browser to the validated rd, made absolute on public_url.
func (s *Server) providerLogoutURL(endpoint, idToken, rd string) string {
	u, err := url.Parse(endpoint)
	if err != nil {
		return "/"
	}
	back := rd
	if back == "" || strings.HasPrefix(back, "/") {
		back = strings.TrimSuffix(s.cfg.PublicURL.String(), "/") + back
		if rd == "" {
			back += "/"
		}
	}
	q := u.Query()
	q.Set("id_token_hint", idToken)
	q.Set("client_id", s.cfg.Login.ClientID)
	q.Set("post_logout_redirect_uri", back)
	u.RawQuery = q.Encode()
	return u.String()
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
