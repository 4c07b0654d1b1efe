// Package proxy is Gatehouse's HTTP surface: the login flow, the one
// authorization decision, token minting for upstreams, the reverse proxy
// and the forward-auth endpoints.
//
// A request flows through three steps, each in its own file: the entry
// (ServeHTTP here: strip what a client may not say, dispatch), the decision
// (decide.go: one function for every front end, answering a typed verdict)
// and the rendering (render.go: the reverse proxy's and forward-auth's
// answers). The front ends are the reverse proxy (here), /oauth2/auth and
// /oauth2/auth/<path> (forwardauth.go); each only describes the request it
// is asked about and renders the verdict.
package proxy

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// Server is the proxy's http.Handler.
type Server struct {
	cfg          Config
	log          *slog.Logger
	now          func() time.Time
	prefix       string
	publicHost   string // the sign-in host: public_url's, lower case, no port
	cookieName   string
	flowPrefix   string
	tokenHdrNorm string
	rules        rules
	csrf         *http.CrossOriginProtection
	touchEvery   time.Duration
	routes       []*Route
	// anyCaseInsensitive: some route has CaseInsensitive set.
	anyCaseInsensitive bool
	mux                map[string]http.HandlerFunc
	bearers            bearerCache
	tickets            ticketCache

	tracer          trace.Tracer // nil: tracing is off
	refreshing      sync.Map     // sid -> struct{}: refreshes running here
	refreshes       *refreshGate // bounds them
	refreshRetryNow bool         // tests: retry a failed write at once
	untrustedWarned atomic.Int64 // unix nanos of the last untrusted-peer warning
}

// New checks cfg and builds the per-route reverse proxies.
func New(cfg Config) (*Server, error) {
	switch {
	case cfg.PublicURL == nil:
		return nil, errors.New("proxy: PublicURL is required")
	case cfg.Cookie.Codec == nil || cfg.Cookie.FlowCodec == nil:
		return nil, errors.New("proxy: Cookie.Codec and Cookie.FlowCodec are required")
	case cfg.Session.Store == nil || cfg.Token.Minter == nil || cfg.Login.Client == nil || cfg.Login.Redirects == nil:
		return nil, errors.New("proxy: Session.Store, Token.Minter, Login.Client and Login.Redirects are required")
	case len(cfg.Routes) == 0:
		return nil, errors.New("proxy: at least one route is required")
	case cfg.Session.IdleTimeout <= 0 || cfg.Session.MaxLifetime <= 0:
		return nil, errors.New("proxy: Session.IdleTimeout and Session.MaxLifetime must be positive")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "/oauth2"
	}
	cfg.Prefix = "/" + strings.Trim(cfg.Prefix, "/")
	if cfg.Token.Header == "" {
		cfg.Token.Header = "Authorization"
		if cfg.Token.Scheme == "" {
			cfg.Token.Scheme = "Bearer"
		}
	}
	cfg.Token.Header = http.CanonicalHeaderKey(cfg.Token.Header)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Transport == nil {
		cfg.Transport = NewTransport(TransportConfig{})
	}
	s := &Server{
		cfg:          cfg,
		log:          cfg.Logger,
		now:          cfg.Now,
		prefix:       cfg.Prefix,
		publicHost:   hostOnly(cfg.PublicURL.Host),
		cookieName:   cfg.Cookie.Name,
		flowPrefix:   cfg.Cookie.Name + "-flow-",
		tokenHdrNorm: normHeader(cfg.Token.Header),
		rules:        compilePolicy(cfg.Policy),
		csrf:         http.NewCrossOriginProtection(),
		refreshes:    newRefreshGate(),
		routes:       cfg.Routes,
	}
	if cfg.Cookie.Secure {
		s.cookieName = "__Host-" + cfg.Cookie.Name
		s.flowPrefix = "__Secure-" + cfg.Cookie.Name + "-flow-"
	}
	// Browsers send Origin normalized (lower case, no default port); so is
	// every trusted origin, or a public_url written otherwise never matches.
	for _, o := range append([]string{cfg.PublicURL.String()}, cfg.Policy.AllowedOrigins...) {
		origin, err := normalizeOrigin(o)
		if err == nil {
			err = s.csrf.AddTrustedOrigin(origin)
		}
		if err != nil {
			return nil, fmt.Errorf("proxy: allowed origin %q: %w", o, err)
		}
	}
	if cfg.Tracing != nil {
		s.tracer = cfg.Tracing.Tracer("github.com/gatehouse/gatehouse/proxy")
	}
	// Touch the store at most every idle/10 (1s..1m) per session: activity
	// keeps the session alive without a store write on every request.
	s.touchEvery = min(max(cfg.Session.IdleTimeout/10, time.Second), time.Minute)
	for _, rt := range cfg.Routes {
		if rt.Upstream == nil {
			return nil, fmt.Errorf("proxy: route %q has no upstream", rt.Name)
		}
		rt.proxy = s.reverseProxy(rt)
		rt.self = []*Route{rt}
		s.anyCaseInsensitive = s.anyCaseInsensitive || rt.CaseInsensitive
	}
	s.mux = map[string]http.HandlerFunc{
		"/start":     s.handleStart,
		"/callback":  s.handleCallback,
		"/sign_out":  s.handleSignOut,
		"/userinfo":  s.handleUserinfo,
		"/jwks.json": s.handleJWKS,
		"/auth":      s.handleAuth,

		"/backchannel_logout":  s.handleBackchannelLogout,
		"/sign_out_everywhere": s.handleSignOutEverywhere,
		"/handoff":             s.handleHandoff,
	}
	return s, nil
}

// normalizeOrigin returns the origin of an http(s) URL as browsers
// serialize it: scheme://host[:port], lower case, without a default port.
func normalizeOrigin(raw string) (string, error) {
	u, err := url.Parse(strings.TrimSuffix(raw, "/"))
	if err != nil {
		return "", err
	}
	scheme := strings.ToLower(u.Scheme)
	if (scheme != "http" && scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
		return "", errors.New("want scheme://host[:port]")
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if (scheme == "https" && port == "443") || (scheme == "http" && port == "80") {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		host += ":" + port
	}
	return scheme + "://" + host, nil
}

// ServeHTTP implements http.Handler: the entry of every request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := s.now()
	s.cfg.Metrics.inFlight(1)
	sw := &statusWriter{ResponseWriter: w}
	trusted := s.trustedPeer(r.RemoteAddr)
	// A trusted proxy's request id is kept, so one id follows the request
	// through every hop's logs; anyone else's is replaced.
	reqID := r.Header.Get("X-Request-Id")
	if !trusted || !validRequestID(reqID) {
		reqID = newRequestID()
	}
	sw.Header().Set("X-Request-Id", reqID)
	rs := &reqState{id: reqID, route: "none", respHeader: sw.Header(), trusted: trusted}
	rs.bearer, rs.bearerPresent = bearerToken(r.Header)
	// Identity headers are removed before anything else looks at the
	// request, whatever happens to it next; a client's bearer token too.
	stripIdentity(r.Header, s.tokenHdrNorm)
	if rs.bearerPresent {
		r.Header.Del("Authorization")
	}
	r = withState(r, rs)
	var span trace.Span
	if s.tracer != nil {
		r, span = s.startRequestSpan(r, trusted)
	}
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			s.log.Error("panic serving request", "request_id", reqID, "panic", fmt.Sprint(p))
			if !sw.wrote {
				s.fail(sw, r, http.StatusInternalServerError, "Internal error.")
			}
		}
		elapsed := s.now().Sub(start)
		s.cfg.Metrics.inFlight(-1)
		s.cfg.Metrics.request(rs.route, r.Method, sw.code(), elapsed.Seconds())
		if span != nil {
			endRequestSpan(span, rs, sw.code())
		}
		if s.cfg.AccessLog {
			s.accessLog(r, rs, sw.code(), elapsed)
		}
	}()
	s.serve(sw, r, rs)
}

func (s *Server) accessLog(r *http.Request, rs *reqState, code int, elapsed time.Duration) {
	attrs := []slog.Attr{
		slog.String("request_id", rs.id),
		slog.String("method", r.Method),
		slog.String("host", r.Host),
		slog.String("path", r.URL.Path),
		slog.String("route", rs.route),
		slog.Int("status", code),
		slog.Float64("duration_ms", float64(elapsed.Microseconds())/1000),
		slog.String("user", userHash(rs.user)),
		slog.String("client", s.clientIP(r, rs.trusted)),
		slog.String("peer", r.RemoteAddr),
	}
	if rs.reason != "" {
		attrs = append(attrs, slog.String("decision", rs.decision.String()), slog.String("reason", rs.reason))
	}
	s.log.LogAttrs(r.Context(), slog.LevelInfo, "request", attrs...)
}

// serve dispatches to Gatehouse's own endpoints or the reverse proxy.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, rs *reqState) {
	p, err := readPath(r.URL)
	if err == nil {
		if rest, ok := strings.CutPrefix(p.clean, s.prefix); ok && (rest == "" || rest[0] == '/') {
			rs.route = "gatehouse"
			w.Header().Set("Cache-Control", "no-store")
			if h := s.mux[rest]; h != nil {
				h(w, r)
				return
			}
			if strings.HasPrefix(rest, "/auth/") {
				s.handleEnvoyAuth(w, r)
				return
			}
			s.fail(w, r, http.StatusNotFound, "Not found.")
			return
		}
	}
	// The reverse proxy front end: the request is its own original.
	q := &query{
		method:   r.Method,
		hostport: r.Host,
		host:     hostOnly(r.Host),
		path:     p,
		known:    true,
		problem:  err,
		header:   r.Header,
	}
	v := s.decide(r, q)
	if v.route != nil {
		rs.route = v.route.Name
	}
	s.renderProxy(w, r, q, v)
}

var _ http.Handler = (*Server)(nil)
