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

var errBadOriginal = errors.New("proxy: malformed original request")

// original reads the request an ingress is asking about: X-Original-URL and
// X-Original-Method (nginx, ingress-nginx), else X-Forwarded-Method, -Proto,
// -Host and -Uri (Traefik, Caddy). Only a trusted proxy is believed; from
// anyone else, or without these headers, it returns nil and the check is
// judged against the strictest policy. A malformed URL is an error (401).
//
// Each ingress replaces one family of headers and passes the client's copies
// of the other through: nginx sets X-Original-URL but forwards a client's
// X-Forwarded-Uri, Caddy and Traefik set X-Forwarded-* but forward a client's
// X-Original-URL. So an X-Original-URL that arrives with X-Forwarded-Uri or
// -Method must describe the same request, and a header that is read may not
// come twice; otherwise one copy was forged and the answer is a 401.
func (s *Server) original(r *http.Request) (*originalRequest, error) {
	if !s.trustedPeer(r.RemoteAddr) {
		return nil, nil
	}
	h := r.Header
	if _, ok := h["X-Original-Url"]; ok {
		raw, err := single(h, "X-Original-Url")
		if err != nil {
			return nil, err
		}
		u, err := parseOriginal(raw)
		if err != nil {
			return nil, err
		}
		m, err := single(h, "X-Original-Method")
		if err != nil {
			return nil, err
		}
		o := &originalRequest{method: methodOr(m), url: u}
		if err := agrees(h, raw, o); err != nil {
			return nil, err
		}
		return o, nil
	}
	var v [4]string
	for i, k := range [...]string{"X-Forwarded-Uri", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Forwarded-Method"} {
		var err error
		if v[i], err = single(h, k); err != nil {
			return nil, err
		}
	}
	uri, host, proto, method := v[0], v[1], strings.ToLower(v[2]), v[3]
	if uri == "" {
		// A host alone (a load balancer's X-Forwarded-Host) says nothing
		// about the path: no original request, the strictest policy.
		return nil, nil
	}
	if uri[0] != '/' {
		return nil, errBadOriginal
	}
	if host == "" {
		u, err := parseOriginal(uri)
		if err != nil {
			return nil, err
		}
		return &originalRequest{method: methodOr(method), url: u}, nil
	}
	if proto == "" {
		proto = "http"
	}
	if proto != "http" && proto != "https" {
		return nil, errBadOriginal
	}
	u, err := parseOriginal(proto + "://" + host + uri)
	if err != nil {
		return nil, err
	}
	// The host must be all host: "a.example/public" would move into the path.
	if !strings.EqualFold(u.Host, host) {
		return nil, errBadOriginal
	}
	return &originalRequest{method: methodOr(method), url: u}, nil
}

// single returns a header's value, "" when absent, and an error when the
// header came more than once.
func single(h http.Header, k string) (string, error) {
	switch v := h[k]; len(v) {
	case 0:
		return "", nil
	case 1:
		return v[0], nil
	}
	return "", errBadOriginal
}

// agrees checks that X-Forwarded-Uri, -Method and -Host, when they arrive
// with an X-Original-URL (raw, parsed into o) and X-Forwarded-Uri or -Method
// is among them, name the same request. A load balancer's lone
// X-Forwarded-Host or -Proto in front of nginx is not compared.
func agrees(h http.Header, raw string, o *originalRequest) error {
	uri, uriOK := h["X-Forwarded-Uri"]
	method, methodOK := h["X-Forwarded-Method"]
	if !uriOK && !methodOK {
		return nil
	}
	if len(uri) > 1 || len(method) > 1 {
		return errBadOriginal
	}
	if uriOK && uri[0] != requestURI(raw, o.url) {
		return errBadOriginal
	}
	if methodOK && methodOr(method[0]) != o.method {
		return errBadOriginal
	}
	if host, ok := h["X-Forwarded-Host"]; ok && o.url.Host != "" {
		if len(host) > 1 || !strings.EqualFold(host[0], o.url.Host) {
			return errBadOriginal
		}
	}
	return nil
}

// requestURI is the path and query of an original URL as the client wrote
// them (what an ingress puts in X-Forwarded-Uri), without any fragment.
func requestURI(raw string, u *url.URL) string {
	if u.IsAbs() {
		raw = raw[len(u.Scheme)+len("://"):]
		i := strings.IndexAny(raw, "/?#")
		if i < 0 {
			return "/"
		}
		raw = raw[i:]
	}
	raw, _, _ = strings.Cut(raw, "#")
	if raw == "" || raw[0] == '?' {
		raw = "/" + raw
	}
	return raw
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
	orig, err := s.original(r)
	s.decide(w, r, orig, err, r.URL.Query().Get("mode") == "redirect", http.StatusAccepted)
}

// handleEnvoyAuth is the check for Envoy's ext_authz HTTP service, which
// sends the original request's method, headers and path (appended to the
// configured path_prefix, /oauth2/auth) and lets the request through only
// on 200; any other answer goes to the client, so browser navigations get
// the login redirect. Like the headers of handleAuth, the path is believed
// only from a trusted proxy.
func (s *Server) handleEnvoyAuth(w http.ResponseWriter, r *http.Request) {
	var orig *originalRequest
	var err error
	if s.trustedPeer(r.RemoteAddr) {
		suffix := strings.TrimPrefix(r.URL.EscapedPath(), s.prefix+"/auth")
		raw := suffix
		if r.URL.RawQuery != "" {
			raw += "?" + r.URL.RawQuery
		}
		var u *url.URL
		if u, err = parseOriginal(raw); err == nil {
			u.Scheme, u.Host = "http", r.Host
			if strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https") {
				u.Scheme = "https"
			}
			orig = &originalRequest{method: r.Method, url: u}
		}
	}
	s.decide(w, r, orig, err, true, http.StatusOK)
}

// decide answers a forward-auth check about orig (nil: no trustworthy
// original request; origErr: a malformed one), with yes as status yes.
func (s *Server) decide(w http.ResponseWriter, r *http.Request, orig *originalRequest, origErr error, redirectMode bool, yes int) {
	err := origErr
	if err != nil {
		s.log.Info("forward-auth: malformed original request", "request_id", requestID(r))
		writeJSONError(w, http.StatusUnauthorized, "unauthorized", "Malformed original request.")
		return
	}
	method := http.MethodGet
	var rt *Route
	strict := orig == nil // judged against every route's rules
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
		// The ingress forwards the path as the client wrote it, not the
		// normalized one this decision is made on. Where upstreams may read
		// it differently, the request is never public and must pass every
		// route's rules.
		strict = ambiguousPath(orig.url.Path)
		if rt.Public && !strict {
			w.WriteHeader(yes)
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
		s.log.Error("forward-auth: cannot authenticate: dependency unavailable", "request_id", requestID(r), "err", err)
		writeJSONError(w, http.StatusServiceUnavailable, "unavailable", "Authentication is temporarily unavailable; try again shortly.")
		return
	}
	if rs, ok := r.Context().Value(reqStateKey{}).(*reqState); ok {
		rs.user = p.sess.Subject
	}
	permitted := s.userAllowed(p.sess)
	if rt != nil {
		permitted = permitted && allowed(rt.AllowedGroups, p.sess.Groups)
	}
	if strict {
		for _, x := range s.routes {
			permitted = permitted && (x.Public || allowed(x.AllowedGroups, p.sess.Groups))
		}
	}
	if rt == nil {
		// No trustworthy original URL: the token is for the catch-all
		// (last) route.
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
	s.setIdentity(w.Header(), fw)
	w.WriteHeader(yes)
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
