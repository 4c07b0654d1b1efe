package proxy

import (
	"encoding/json"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// This file ends sessions at the user's request: sign-out (this browser,
// and at the provider when configured) and sign-out everywhere (every
// session of the user, on every replica).

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
		s.confirmSignOut(w, rd, "Another site sent you here to sign out.")
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
		s.cfg.Metrics.revoked("sign_out", 1)
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
h1{font-size:1.4rem}button{font:inherit;padding:.4rem 1rem;margin:.2rem .4rem .2rem 0}</style></head>
<body><h1>Sign out?</h1><p>{{.Message}}</p>
<form method="post" action="{{.Action}}"><button type="submit">Sign out</button></form>
<form method="post" action="{{.Everywhere}}"><button type="submit">Sign out everywhere</button></form>
<p><small>"Sign out everywhere" ends every session of your account: other browsers and devices too.</small></p></body></html>
`))

// confirmSignOut asks the user to confirm a sign-out: one another site
// started (GET sign_out from another origin), or a link to sign out
// everywhere (GET sign_out_everywhere). Either is a POST from this page.
func (s *Server) confirmSignOut(w http.ResponseWriter, rd, msg string) {
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
	_ = confirmTmpl.Execute(w, struct{ Action, Everywhere, Message string }{action, s.prefix + "/sign_out_everywhere", msg})
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

// handleSignOutEverywhere ends every session of the signed-in user: other
// browsers, devices and replicas too. It is a same-origin POST (a cross-site
// POST gets 403, so another site cannot log a user out everywhere); a GET
// shows the page with the button. A browser's form POST gets a page, a
// script's fetch JSON: {"sessions": n}. Every use is an audit log line.
func (s *Server) handleSignOutEverywhere(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		s.confirmSignOut(w, "", "Sign out of this browser, or of every browser and device where you are signed in.")
		return
	case http.MethodPost:
	default:
		w.Header().Set("Allow", "GET, POST")
		s.fail(w, r, http.StatusMethodNotAllowed, "Use POST.")
		return
	}
	if s.crossSite(http.MethodPost, r.Host, r.Header) {
		s.fail(w, r, http.StatusForbidden, "Cross-origin sign-out refused.")
		return
	}
	sess, _, err := s.session(r)
	switch {
	case errors.Is(err, errNoSession):
		s.clearDeadCookie(w, r)
		s.fail(w, r, http.StatusUnauthorized, "Not signed in.")
		return
	case err != nil:
		s.fail(w, r, http.StatusServiceUnavailable, "Session store unavailable; try again shortly.")
		return
	}
	n, err := s.cfg.Session.Store.DeleteBySubject(r.Context(), sess.Subject)
	if err != nil {
		// Never pretend: some sessions may still exist.
		s.log.Error("sign-out everywhere: ending sessions", "request_id", requestID(r), "user", sess.Subject, "err", err)
		s.fail(w, r, http.StatusServiceUnavailable, "Sign-out everywhere could not be completed; try again shortly.")
		return
	}
	s.cfg.Metrics.revoked("sign_out_everywhere", n)
	s.log.Info("audit: sessions revoked", "request_id", requestID(r), "by", sess.Subject, "what", "sign_out_everywhere",
		"user", sess.Subject, "sessions", n)
	http.SetCookie(w, s.sessionCookie(""))
	if showsHTML(r.Header) {
		s.page(w, http.StatusOK, "Signed out everywhere",
			"You are signed out of "+strconv.Itoa(n)+" session(s), on every browser and device.", s.prefix+"/start")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(struct {
		Sessions int `json:"sessions"`
	}{n})
}
