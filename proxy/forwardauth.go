package proxy

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
)

// originalRequest is the request an ingress asks about in a forward-auth check.
type originalRequest struct {
	method string
	url    *url.URL // absolute when the ingress said which host
}

var errBadOriginal = errors.New("malformed original request")

// original reads the request an ingress is asking about: X-Original-URL and
// X-Original-Method (nginx, ingress-nginx), else X-Forwarded-Method, -Proto,
// -Host and -Uri (Traefik, Caddy). Only a trusted proxy is believed; from
// anyone else, or without these headers, it returns nil and the check is
// judged against the strictest policy. A malformed URL is an error (401).
func (s *Server) original(r *http.Request) (*originalRequest, error) {
	if !s.trustedPeer(r.RemoteAddr) {
		return nil, nil
	}
	h := r.Header
	if raw := h.Get("X-Original-Url"); raw != "" {
		u, err := parseOriginal(raw)
		if err != nil {
			return nil, err
		}
		return &originalRequest{method: methodOr(h.Get("X-Original-Method")), url: u}, nil
	}
	uri, host := h.Get("X-Forwarded-Uri"), h.Get("X-Forwarded-Host")
	if uri == "" && host == "" {
		return nil, nil
	}
	if uri == "" {
		uri = "/"
	}
	proto := strings.ToLower(h.Get("X-Forwarded-Proto"))
	if proto == "" {
		proto = "http"
	}
	if host == "" || (proto != "http" && proto != "https") {
		return nil, errBadOriginal
	}
	u, err := parseOriginal(proto + "://" + host + uri)
	if err != nil {
		return nil, err
	}
	return &originalRequest{method: methodOr(h.Get("X-Forwarded-Method")), url: u}, nil
}

func methodOr(m string) string {
	if m == "" {
		return http.MethodGet
	}
	return strings.ToUpper(m)
}

// parseOriginal accepts an absolute http(s) URL with a host, or an
// absolute path, with no control characters or backslashes anywhere.
func parseOriginal(raw string) (*url.URL, error) {
	if len(raw) > 8192 {
		return nil, errBadOriginal
	}
	for i := 0; i < len(raw); i++ {
		if c := raw[i]; c <= 0x20 || c == 0x7f || c == '\\' {
			return nil, errBadOriginal
		}
	}
	u, err := url.Parse(raw)
	if err != nil || u.User != nil || u.Opaque != "" {
		return nil, errBadOriginal
	}
	if u.IsAbs() {
		if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, errBadOriginal
		}
	} else if u.Host != "" || !strings.HasPrefix(u.Path, "/") {
		return nil, errBadOriginal
	}
	u.Fragment, u.RawFragment = "", ""
	return u, nil
}

// handleAuth is the forward-auth check (nginx auth_request, ingress-nginx
// auth-url, Traefik forwardAuth, Caddy forward_auth). Anything but a clear
// yes is a refusal: 401 (or, in redirect mode, a login redirect for browser
// navigations), 403 for a signed-in user the policy refuses, 503 when the
// session store cannot answer. The answer is never a 2xx by default.
//
// Redirect mode (?mode=redirect on the auth URL) is for ingresses that hand
// the auth server's response to the client (Traefik, Caddy).
func (s *Server) handleAuth(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		s.fail(w, r, http.StatusMethodNotAllowed, "Use GET.")
		return
	}
	redirectMode := r.URL.Query().Get("mode") == "redirect"
	orig, err := s.original(r)
	if err != nil {
		s.log.Info("forward-auth: malformed original request", "request_id", requestID(r))
		writeJSONError(w, http.StatusUnauthorized, "unauthorized", "Malformed original request.")
		return
	}
	method := http.MethodGet
	var rt *Route
	if orig != nil {
		method = orig.method
		p, err := normalizePath(orig.url.Path)
		if err != nil {
			writeJSONError(w, http.StatusUnauthorized, "unauthorized", "Malformed original request.")
			return
		}
		host := hostOnly(orig.url.Host)
		if host == "" {
			host = hostOnly(r.Host)
		}
		if rt = match(s.routes, host, p); rt == nil {
			writeJSONError(w, http.StatusUnauthorized, "unauthorized", "No route for the original request.")
			return
		}
		if rs, ok := r.Context().Value(reqStateKey{}).(*reqState); ok {
			rs.route = "auth:" + rt.Name
		}
		if rt.Public {
			w.WriteHeader(http.StatusAccepted)
			return
		}
	}

	p, err := s.authenticate(r)
	switch {
	case errors.Is(err, errInvalidBearer):
		invalidBearer(w)
		return
	case errors.Is(err, errNoSession):
		if redirectMode && wantsHTMLMethod(r, method) {
			s.redirectToLogin(w, r, orig)
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="gatehouse"`)
		writeJSONError(w, http.StatusUnauthorized, "unauthorized", "Sign in at "+s.prefix+"/start.")
		return
	case err != nil:
		s.log.Error("forward-auth: session store unavailable", "request_id", requestID(r), "err", err)
		writeJSONError(w, http.StatusServiceUnavailable, "unavailable", "Session store unavailable.")
		return
	}
	if rs, ok := r.Context().Value(reqStateKey{}).(*reqState); ok {
		rs.user = p.sess.Subject
	}
	permitted := s.userAllowed(p.sess)
	if rt != nil {
		permitted = permitted && allowed(rt.AllowedGroups, p.sess.Groups)
	} else {
		// No trustworthy original URL: the user must pass every route's
		// group rule, and the token is for the catch-all (last) route.
		for _, x := range s.routes {
			permitted = permitted && (x.Public || allowed(x.AllowedGroups, p.sess.Groups))
		}
		rt = s.routes[len(s.routes)-1]
	}
	if !permitted {
		writeJSONError(w, http.StatusForbidden, "forbidden", "You are signed in but not allowed here.")
		return
	}
	if !p.bearer && !s.sameOriginMethod(r, method) {
		writeJSONError(w, http.StatusForbidden, "forbidden", "Cross-origin request refused.")
		return
	}
	fw := &forward{}
	if err := s.identify(r.Context(), fw, rt, p); err != nil {
		s.log.Error("forward-auth: minting token", "request_id", requestID(r), "err", err)
		writeJSONError(w, http.StatusInternalServerError, "error", "Internal error.")
		return
	}
	h := w.Header()
	if s.cfg.TokenScheme != "" {
		h.Set(s.cfg.TokenHeader, s.cfg.TokenScheme+" "+fw.token)
	} else {
		h.Set(s.cfg.TokenHeader, fw.token)
	}
	h.Set(hdrUser, fw.user)
	setIf(h, hdrEmail, fw.email)
	setIf(h, hdrGroups, fw.groups)
	setIf(h, hdrPreferredUsername, fw.preferredUsername)
	w.WriteHeader(http.StatusAccepted)
}

// redirectToLogin sends the browser to Gatehouse's login with the original
// URL as rd, validated exactly like a user-supplied rd (else dropped).
func (s *Server) redirectToLogin(w http.ResponseWriter, r *http.Request, orig *originalRequest) {
	start := strings.TrimSuffix(s.cfg.PublicURL.String(), "/") + s.prefix + "/start"
	if orig != nil {
		target := orig.url.String()
		if rd, err := s.cfg.Redirects.Check(target); err == nil {
			start += "?rd=" + url.QueryEscape(rd)
		}
	}
	http.Redirect(w, r, start, http.StatusFound)
}

// wantsHTMLMethod is wantsHTML for a given method (forward-auth judges the
// original request's method).
func wantsHTMLMethod(r *http.Request, method string) bool {
	if method != http.MethodGet && method != http.MethodHead {
		return false
	}
	if m := r.Header.Get("Sec-Fetch-Mode"); m != "" {
		return m == "navigate"
	}
	if r.Header.Get("X-Requested-With") != "" {
		return false
	}
	return strings.Contains(r.Header.Get("Accept"), "text/html")
}
