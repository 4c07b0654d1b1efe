package proxy

import (
	"errors"
	"net/http"
	"strings"
)

// This file is the one authorization decision. Every front end (the reverse
// proxy, /oauth2/auth, /oauth2/auth/<path>) describes the request it is
// asked about as a query, calls decide, and only renders the verdict.

// query is what a front end knows about the request to be judged, and how
// far that knowledge is trusted.
type query struct {
	// method of the request; "" when the front end could not learn it (a
	// forward-auth check whose ingress did not say).
	method string
	// hostport is the request's host as sent (with any port), host the
	// same lower-cased without port; both "" when unknown.
	hostport, host string
	// path of the request; known is false when the front end could not
	// learn it, and then every route's rules apply.
	path  requestPath
	known bool
	// problem: the front end could not read the request (a malformed path
	// or original URL: errBadOriginal, errBadPath; original-request headers
	// from an untrusted peer: errUntrustedPeer).
	problem error
	// header holds the client's headers (Origin, Sec-Fetch-*, WebSocket).
	header http.Header
	// target is the original URL to return to after signing in, as the
	// ingress gave it ("" = none); it is validated like any rd.
	target string
}

// outcome is what a verdict says to do.
type outcome uint8

const (
	allow           outcome = iota // pass, with the identity when there is one
	unauthenticated                // no usable session: sign in
	invalidToken                   // a bearer token was presented and refused
	forbidden                      // a known user the policy refuses
	crossSite                      // cookie-authenticated use from another site
	unavailable                    // the session store or the provider cannot answer
	badRequest                     // the request cannot be judged as sent
	untrustedPeer                  // original-request headers from a peer not in trusted_proxies
	noRoute                        // no route takes the request
	failed                         // an internal error (minting)
)

var outcomeNames = [...]string{
	allow: "allow", unauthenticated: "unauthenticated", invalidToken: "invalid_token",
	forbidden: "forbidden", crossSite: "cross_origin", unavailable: "unavailable",
	badRequest: "bad_request", untrustedPeer: "untrusted_peer", noRoute: "no_route", failed: "error",
}

func (o outcome) String() string { return outcomeNames[o] }

// verdict is the decision about one request.
type verdict struct {
	outcome outcome
	// reason is a short, bounded label: which rule decided (a metric label,
	// in the access log, and in 403 answers).
	reason string
	// route is the route whose upstream and audience apply; nil when none.
	route *Route
	// who is the authenticated principal; nil when none was needed or found.
	who *principal
	// fw is what the upstream (or the ingress) receives: set when allowed
	// with an identity.
	fw *forward
	// err is the dependency error behind unavailable and failed, for the log.
	err error
}

var errUntrustedPeer = errors.New("proxy: original-request headers from a peer outside trusted_proxies")

// decide judges q for the credentials r carries (its session cookie or
// bearer token), records the verdict for the access log and the metrics,
// and returns it.
func (s *Server) decide(r *http.Request, q *query) verdict {
	v := s.judge(r, q)
	rs := stateOf(r)
	rs.decision, rs.reason = v.outcome, v.reason
	if v.who != nil {
		rs.user = v.who.sess.Subject
	}
	route := "none"
	if v.route != nil {
		route = v.route.Name
	}
	s.cfg.Metrics.decision(route, v.outcome.String(), v.reason)
	return v
}

func (s *Server) judge(r *http.Request, q *query) verdict {
	switch {
	case errors.Is(q.problem, errUntrustedPeer):
		return verdict{outcome: untrustedPeer, reason: "untrusted_peer"}
	case errors.Is(q.problem, errBadPath):
		return verdict{outcome: badRequest, reason: "bad_path"}
	case q.problem != nil:
		return verdict{outcome: badRequest, reason: "bad_original"}
	}
	rt, scope := s.scope(q)
	if len(scope) == 0 {
		// Nobody may pass, but a signed-in user is told so (403) rather
		// than sent to sign in again: an ingress turns 401 into a login.
		v := verdict{outcome: noRoute, reason: "no_route"}
		if p, err := s.authenticate(r); err == nil {
			v.who = p
		}
		return v
	}
	if everyPublic(scope) {
		return verdict{outcome: allow, reason: "public", route: rt}
	}
	p, err := s.authenticate(r)
	switch {
	case errors.Is(err, errInvalidBearer):
		return verdict{outcome: invalidToken, reason: "invalid_bearer", route: rt}
	case errors.Is(err, errNoSession):
		return verdict{outcome: unauthenticated, reason: "no_session", route: rt}
	case err != nil:
		reason := "store_unavailable"
		if p == nil && stateOf(r).bearerPresent && s.cfg.Login.Bearer != nil {
			reason = "provider_unavailable"
		}
		return verdict{outcome: unavailable, reason: reason, route: rt, err: err}
	}
	if why := s.rules.refuse(p.sess); why != "" {
		return verdict{outcome: forbidden, reason: why, route: rt, who: p}
	}
	for _, x := range scope {
		if !x.Public && !allowed(x.AllowedGroups, p.sess.Groups) {
			return verdict{outcome: forbidden, reason: "route_groups", route: rt, who: p}
		}
	}
	// Cookies ride along on cross-site requests; bearer tokens do not.
	if !p.bearer && s.crossSite(q.method, q.hostport, q.header) {
		return verdict{outcome: crossSite, reason: "cross_origin", route: rt, who: p}
	}
	fw, err := s.identify(r, rt, p)
	if err != nil {
		return verdict{outcome: failed, reason: "mint_failed", route: rt, who: p, err: err}
	}
	reason := "session"
	if p.bearer {
		reason = "bearer"
	}
	return verdict{outcome: allow, reason: reason, route: rt, who: p, fw: fw}
}

// scope returns the route whose upstream and audience apply to q, and every
// route whose rules the decision must satisfy. What is not known for sure
// widens the scope, never narrows it:
//   - host and path known and unambiguous: the first matching route alone;
//   - an ambiguous path (an upstream may read it otherwise): the matching
//     route for the token, every route's rules;
//   - the path known but not the host: every route the path matches on some
//     host, up to the first route for any host (nothing after it can be
//     reached), the first of them for the token;
//   - nothing known: every route's rules, the token for the catch-all (last)
//     route.
//
// A request is public only when every route in scope is.
func (s *Server) scope(q *query) (*Route, []*Route) {
	switch {
	case !q.known:
		return s.routes[len(s.routes)-1], s.routes
	case q.host == "":
		// Every route the path may be on, on some host. With a
		// case-insensitive route, a more specific protected route may take a
		// path from an earlier one (see match): then every route whose path
		// matches folded is in scope, not only those up to the first for
		// any host.
		var scope []*Route
		for _, rt := range s.routes {
			if rt.matchesPath(q.path.clean, rt.CaseInsensitive || s.anyCaseInsensitive) {
				scope = append(scope, rt)
				if rt.Host == "" && !s.anyCaseInsensitive {
					break
				}
			}
		}
		if len(scope) == 0 {
			return nil, nil
		}
		if q.path.ambiguous {
			return scope[0], s.routes
		}
		return scope[0], scope
	}
	rt := s.route(q.host, q.path.clean)
	switch {
	case rt == nil:
		return nil, nil
	case q.path.ambiguous:
		return rt, s.routes
	}
	if rt.self == nil { // a route New did not prepare (tests)
		return rt, []*Route{rt}
	}
	return rt, rt.self
}

// route is match for the configured routes: first match wins, and only
// with a case-insensitive route does a protected route take a path from an
// earlier one (the search for that costs nothing when there is none).
func (s *Server) route(host, path string) *Route {
	if s.anyCaseInsensitive {
		return match(s.routes, host, path)
	}
	for _, rt := range s.routes {
		if rt.matches(host, path) {
			return rt
		}
	}
	return nil
}

func everyPublic(routes []*Route) bool {
	for _, rt := range routes {
		if !rt.Public {
			return false
		}
	}
	return true
}

// crossSite reports whether a cookie-authenticated request is a cross-site
// use of the cookie, judged by Go's http.CrossOriginProtection (Sec-Fetch-Site,
// else Origin against the request's own host, PublicURL's origin and
// Policy.AllowedOrigins). method is the request's, "" when unknown; hostport
// its Host, "" when unknown.
//
// A WebSocket handshake is a GET, but it opens a two-way channel with the
// user's cookie (cross-site WebSocket hijacking), so it is judged like a
// write. It is recognised by Sec-WebSocket-Key or Sec-Fetch-Mode, which
// reach a forward-auth check, not by Upgrade, which ingresses drop before
// the subrequest. When the method is unknown, a request that carries Origin
// is judged like a write: browsers send Origin on every cross-site write.
func (s *Server) crossSite(method, hostport string, h http.Header) bool {
	switch {
	case isWebSocket(h):
		method = http.MethodPost
	case method == "":
		if h.Get("Origin") == "" {
			return false
		}
		method = http.MethodPost
	}
	return s.csrf.Check(&http.Request{Method: method, Host: hostport, Header: h}) != nil
}

func isWebSocket(h http.Header) bool {
	return h.Get("Sec-Websocket-Key") != "" ||
		strings.EqualFold(h.Get("Sec-Fetch-Mode"), "websocket") ||
		strings.EqualFold(h.Get("Upgrade"), "websocket")
}
