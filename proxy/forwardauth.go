package proxy

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// This file is the forward-auth front end: it reads what an ingress says
// about the original request into a query, asks decide, and renders the
// verdict for the ingress (renderAuth).

// handleAuth is the forward-auth check (nginx auth_request, ingress-nginx
// auth-url, Traefik forwardAuth, Caddy forward_auth): 202 with the identity
// headers and the minted token, or a refusal.
//
// Redirect mode (?mode=redirect on the auth URL) is for ingresses that hand
// the auth server's response to the client (Traefik, Caddy).
func (s *Server) handleAuth(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		s.fail(w, r, http.StatusMethodNotAllowed, "Use GET.")
		return
	}
	q := s.original(r)
	s.renderAuth(w, r, q, s.decide(r, q), r.URL.Query().Get("mode") == "redirect", http.StatusAccepted)
}

// handleEnvoyAuth is the check for Envoy's ext_authz HTTP service, which
// sends the original request's method, headers and path (appended to the
// configured path_prefix, /oauth2/auth) and lets the request through only
// on 200; any other answer goes to the client, so browser navigations get
// the login redirect. Like the headers of handleAuth, the path is believed
// only from a trusted proxy.
func (s *Server) handleEnvoyAuth(w http.ResponseWriter, r *http.Request) {
	q := &query{header: r.Header}
	if !stateOf(r).trusted {
		q.problem = errUntrustedPeer
	} else {
		raw := strings.TrimPrefix(r.URL.EscapedPath(), s.prefix+"/auth")
		if r.URL.RawQuery != "" {
			raw += "?" + r.URL.RawQuery
		}
		u, err := parseOriginal(raw)
		if err == nil {
			u.Scheme, u.Host = "http", r.Host
			if strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https") {
				u.Scheme = "https"
			}
			s.describe(q, r.Method, u)
		} else {
			q.problem = err
		}
	}
	s.renderAuth(w, r, q, s.decide(r, q), true, http.StatusOK)
}

var errBadOriginal = errors.New("proxy: malformed original request")

// originalHeaders are the headers an ingress describes the original request
// with. From a peer outside trusted_proxies any of them is refused, so a
// misconfiguration shows at once instead of silently judging strictly.
var originalHeaders = [...]string{"X-Original-Url", "X-Original-Method", "X-Forwarded-Uri", "X-Forwarded-Method"}

// original reads the request an ingress is asking about: X-Original-URL and
// X-Original-Method (nginx, ingress-nginx), else X-Forwarded-Method, -Proto,
// -Host and -Uri (Traefik, Caddy). Only a trusted proxy is believed. Without
// these headers the query is unknown and judged against every route's rules.
//
// Each ingress replaces one family of headers and passes the client's copies
// of the other through: nginx sets X-Original-URL but forwards a client's
// X-Forwarded-Uri, Caddy and Traefik set X-Forwarded-* but forward a client's
// X-Original-URL. So an X-Original-URL that arrives with X-Forwarded-Uri or
// -Method must describe the same request, and a header that is read may not
// come twice; otherwise one copy was forged and the answer is a 401.
//
// The host is only ever the one the ingress names in an absolute URL (or in
// X-Forwarded-Host beside X-Forwarded-Uri), never Gatehouse's own Host: a
// relative X-Original-URL leaves the host unknown, and the decision then
// holds for every host the path could be on.
func (s *Server) original(r *http.Request) *query {
	h := r.Header
	q := &query{header: h}
	if !stateOf(r).trusted {
		for _, k := range originalHeaders {
			if _, ok := h[k]; ok {
				q.problem = errUntrustedPeer
				break
			}
		}
		return q
	}
	if _, ok := h["X-Original-Url"]; ok {
		raw, err := single(h, "X-Original-Url")
		if err != nil {
			q.problem = err
			return q
		}
		u, err := parseOriginal(raw)
		if err != nil {
			q.problem = err
			return q
		}
		m, err := single(h, "X-Original-Method")
		if err != nil {
			q.problem = err
			return q
		}
		if err := agrees(h, raw, u, strings.ToUpper(m)); err != nil {
			q.problem = err
			return q
		}
		s.describe(q, m, u)
		return q
	}
	var v [4]string
	for i, k := range [...]string{"X-Forwarded-Uri", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Forwarded-Method"} {
		var err error
		if v[i], err = single(h, k); err != nil {
			q.problem = err
			return q
		}
	}
	uri, host, proto, method := v[0], v[1], strings.ToLower(v[2]), v[3]
	if uri == "" {
		// A host alone (a load balancer's X-Forwarded-Host) says nothing
		// about the path: no original request, the strictest policy.
		if method != "" {
			q.method = strings.ToUpper(method)
		}
		return q
	}
	if uri[0] != '/' {
		q.problem = errBadOriginal
		return q
	}
	raw := uri
	if host != "" {
		if proto == "" {
			proto = "http"
		}
		if proto != "http" && proto != "https" {
			q.problem = errBadOriginal
			return q
		}
		raw = proto + "://" + host + uri
	}
	u, err := parseOriginal(raw)
	if err == nil && host != "" && !strings.EqualFold(u.Host, host) {
		// The host must be all host: "a.example/public" would move into the path.
		err = errBadOriginal
	}
	if err != nil {
		q.problem = err
		return q
	}
	s.describe(q, method, u)
	return q
}

// describe fills q from an original request's method and URL.
func (s *Server) describe(q *query, method string, u *url.URL) {
	q.method = strings.ToUpper(method)
	p, err := readPath(u)
	if err != nil {
		q.problem = err
		return
	}
	q.path, q.known = p, true
	if u.Host != "" {
		q.hostport, q.host = u.Host, hostOnly(u.Host)
	}
	q.target = u.String()
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
// with an X-Original-URL (raw, parsed into u, with method) and X-Forwarded-Uri
// or -Method is among them, name the same request. A load balancer's lone
// X-Forwarded-Host or -Proto in front of nginx is not compared.
func agrees(h http.Header, raw string, u *url.URL, method string) error {
	uri, uriOK := h["X-Forwarded-Uri"]
	fm, methodOK := h["X-Forwarded-Method"]
	if !uriOK && !methodOK {
		return nil
	}
	if len(uri) > 1 || len(fm) > 1 {
		return errBadOriginal
	}
	if uriOK && uri[0] != requestURI(raw, u) {
		return errBadOriginal
	}
	if methodOK && !strings.EqualFold(fm[0], method) {
		return errBadOriginal
	}
	if host, ok := h["X-Forwarded-Host"]; ok {
		// A relative X-Original-URL beside forwarded host headers is what
		// Traefik passes on from a client that added its own: the two must
		// agree on an absolute URL.
		if u.Host == "" || len(host) > 1 || !strings.EqualFold(host[0], u.Host) {
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

// untrustedWarnEvery bounds the log lines about untrusted peers sending
// original-request headers: a misconfiguration is reported, a flood is not
// amplified into the log.
const untrustedWarnEvery = time.Minute

// warnUntrusted logs, at most once per untrustedWarnEvery, a peer that sent
// original-request headers without being in trusted_proxies, with what to
// put there. Every such request is counted in the decisions metric.
func (s *Server) warnUntrusted(r *http.Request) {
	now := s.now().UnixNano()
	last := s.untrustedWarned.Load()
	if now-last < int64(untrustedWarnEvery) || !s.untrustedWarned.CompareAndSwap(last, now) {
		return
	}
	s.log.Warn("forward-auth: original-request headers from a peer outside trusted_proxies were refused; if this peer is your ingress, add it to trusted_proxies",
		"request_id", requestID(r), "peer", r.RemoteAddr, "trusted_proxies_entry", peerPrefix(r.RemoteAddr))
}
