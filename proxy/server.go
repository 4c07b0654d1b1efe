// Package proxy is Gatehouse's HTTP surface: the login flow, the session
// check, token minting for upstreams and the reverse proxy itself.
package proxy

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse/gatehouse/redirect"
	"github.com/gatehouse/gatehouse/sessionstore"
	"github.com/gatehouse/gatehouse/tokenmint"
)

// Store keeps sessions server-side. Implementations must be safe for
// concurrent use; Load returns a copy the caller may modify and
// sessionstore.ErrNotFound when there is no valid session.
type Store interface {
	Save(ctx context.Context, t sessionstore.Ticket, s *sessionstore.Session) error
	Load(ctx context.Context, t sessionstore.Ticket) (*sessionstore.Session, error)
	Touch(ctx context.Context, t sessionstore.Ticket, seen time.Time) error
	Delete(ctx context.Context, t sessionstore.Ticket) error
}

// Minter signs the tokens upstreams receive. Safe for concurrent use.
type Minter interface {
	Mint(ctx context.Context, cacheKey, audience string, id *tokenmint.Identity) (tokenmint.Token, error)
	Forget(cacheKey string)
}

// Config is everything the proxy needs, already parsed and validated.
type Config struct {
	PublicURL *url.URL // Gatehouse's external base URL
	Prefix    string   // endpoint prefix; default "/oauth2"

	CookieName string              // base name; "__Host-" is prepended when Secure
	Secure     bool                // Secure cookies (public URL is https)
	Codec      *sessionstore.Codec // session cookies; its max age should equal MaxLifetime
	FlowCodec  *sessionstore.Codec // login-flow cookies; short max age (10m)

	Store  Store
	Minter Minter
	// Bearer verifies native clients' access tokens. Nil = bearer tokens are
	// not accepted (a client's Authorization header is then just removed).
	Bearer      BearerVerifier
	JWKS        http.Handler // serves /oauth2/jwks.json
	Login       LoginClient
	Redirects   *redirect.Policy
	Routes      []*Route // first match wins; at least one
	IdleTimeout time.Duration
	MaxLifetime time.Duration

	TokenHeader string // default "Authorization"
	TokenScheme string // default "Bearer" when TokenHeader is Authorization; "" = raw token
	ClientID    string // client_id claim of minted tokens for browser sessions

	// ProviderLogout: sign-out also ends the session at the provider.
	ProviderLogout bool

	EmailDomains   []string // login and request policy; empty = any
	AllowedGroups  []string // empty = any
	AllowedOrigins []string // origins besides PublicURL's allowed to send cookie-authenticated writes
	TrustedProxies []netip.Prefix

	// Transport reaches the upstreams. If nil, NewTransport's defaults are used.
	Transport http.RoundTripper
	Logger    *slog.Logger // nil = discard
	AccessLog bool
	Metrics   *Metrics // nil = no metrics
	Now       func() time.Time
}

// Server is the proxy's http.Handler.
type Server struct {
	cfg          Config
	log          *slog.Logger
	now          func() time.Time
	prefix       string
	cookieName   string
	flowPrefix   string
	tokenHdrNorm string
	origin       string
	origins      map[string]bool
	touchEvery   time.Duration
	routes       []*Route
	mux          map[string]http.HandlerFunc
	bearers      bearerCache
	tickets      ticketCache

	view         viewer       // nil: the store has no copy-free read
	refresher    refresher    // nil: the login client cannot refresh
	refreshStore refreshStore // nil: the store cannot refresh safely
	refreshing   sync.Map     // sid -> struct{}: refreshes running here
}

// New checks cfg and builds the per-route reverse proxies.
func New(cfg Config) (*Server, error) {
	switch {
	case cfg.PublicURL == nil:
		return nil, errors.New("proxy: PublicURL is required")
	case cfg.Codec == nil || cfg.FlowCodec == nil:
		return nil, errors.New("proxy: Codec and FlowCodec are required")
	case cfg.Store == nil || cfg.Minter == nil || cfg.Login == nil || cfg.Redirects == nil:
		return nil, errors.New("proxy: Store, Minter, Login and Redirects are required")
	case len(cfg.Routes) == 0:
		return nil, errors.New("proxy: at least one route is required")
	case cfg.IdleTimeout <= 0 || cfg.MaxLifetime <= 0:
		return nil, errors.New("proxy: IdleTimeout and MaxLifetime must be positive")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "/oauth2"
	}
	cfg.Prefix = "/" + strings.Trim(cfg.Prefix, "/")
	if cfg.TokenHeader == "" {
		cfg.TokenHeader = "Authorization"
		if cfg.TokenScheme == "" {
			cfg.TokenScheme = "Bearer"
		}
	}
	cfg.TokenHeader = http.CanonicalHeaderKey(cfg.TokenHeader)
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
		cookieName:   cfg.CookieName,
		flowPrefix:   cfg.CookieName + "-flow-",
		tokenHdrNorm: normHeader(cfg.TokenHeader),
		origin:       cfg.PublicURL.Scheme + "://" + cfg.PublicURL.Host,
		origins:      map[string]bool{},
		routes:       cfg.Routes,
	}
	if cfg.Secure {
		s.cookieName = "__Host-" + cfg.CookieName
		s.flowPrefix = "__Secure-" + cfg.CookieName + "-flow-"
	}
	s.view, _ = cfg.Store.(viewer)
	s.refresher, _ = cfg.Login.(refresher)
	s.refreshStore, _ = cfg.Store.(refreshStore)
	for _, o := range cfg.AllowedOrigins {
		s.origins[strings.ToLower(strings.TrimSuffix(o, "/"))] = true
	}
	// Touch the store at most every idle/10 (1s..1m) per session: activity
	// keeps the session alive without a store write on every request.
	s.touchEvery = min(max(cfg.IdleTimeout/10, time.Second), time.Minute)
	for _, rt := range cfg.Routes {
		if rt.Upstream == nil {
			return nil, fmt.Errorf("proxy: route %q has no upstream", rt.Name)
		}
		rt.proxy = s.reverseProxy(rt)
	}
	s.mux = map[string]http.HandlerFunc{
		"/start":     s.handleStart,
		"/callback":  s.handleCallback,
		"/sign_out":  s.handleSignOut,
		"/userinfo":  s.handleUserinfo,
		"/jwks.json": s.handleJWKS,
		"/auth":      s.handleAuth,

		"/backchannel_logout": s.handleBackchannelLogout,
	}
	return s, nil
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := s.now()
	sw := &statusWriter{ResponseWriter: w}
	reqID := newRequestID()
	sw.Header().Set("X-Request-Id", reqID)
	rs := &reqState{id: reqID, route: "none"}
	rs.bearer, rs.bearerPresent = bearerToken(r.Header)
	// Identity headers are removed before anything else looks at the
	// request, whatever happens to it next; a client's bearer token too.
	stripIdentity(r.Header, s.tokenHdrNorm)
	if rs.bearerPresent {
		r.Header.Del("Authorization")
	}
	r = r.WithContext(context.WithValue(r.Context(), reqStateKey{}, rs))
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
		s.cfg.Metrics.request(rs.route, sw.code(), elapsed.Seconds())
		if s.cfg.AccessLog {
			s.log.LogAttrs(r.Context(), slog.LevelInfo, "request",
				slog.String("request_id", reqID),
				slog.String("method", r.Method),
				slog.String("host", r.Host),
				slog.String("path", r.URL.Path),
				slog.String("route", rs.route),
				slog.Int("status", sw.code()),
				slog.Duration("duration", elapsed),
				slog.String("user", rs.user),
				slog.String("remote", r.RemoteAddr),
			)
		}
	}()
	s.serve(sw, r, rs)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request, rs *reqState) {
	p, err := normalizePath(r.URL.Path)
	if err != nil {
		s.fail(w, r, http.StatusBadRequest, "Bad request: invalid path.")
		return
	}
	if rest, ok := strings.CutPrefix(p, s.prefix); ok && (rest == "" || rest[0] == '/') {
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
	rt := match(s.routes, hostOnly(r.Host), p)
	if rt == nil {
		s.fail(w, r, http.StatusNotFound, "No route for this request.")
		return
	}
	rs.route = rt.Name
	fw := &forward{path: p}
	if !rt.Public {
		p, err := s.authenticate(r)
		switch {
		case errors.Is(err, errInvalidBearer):
			invalidBearer(w)
			return
		case errors.Is(err, errNoSession):
			s.unauthenticated(w, r)
			return
		case err != nil:
			s.log.Error("cannot authenticate: dependency unavailable", "request_id", rs.id, "err", err)
			s.fail(w, r, http.StatusServiceUnavailable, "Authentication is temporarily unavailable; try again shortly.")
			return
		}
		rs.user = p.sess.Subject
		if !s.userAllowed(p.sess) || !allowed(rt.AllowedGroups, p.sess.Groups) {
			s.fail(w, r, http.StatusForbidden, "You are signed in but not allowed here.")
			return
		}
		// Cookies ride along on cross-site requests; bearer tokens do not.
		if !p.bearer && !s.sameOrigin(r) {
			s.fail(w, r, http.StatusForbidden, "Cross-origin request refused.")
			return
		}
		if err := s.identify(r.Context(), fw, rt, p); err != nil {
			s.log.Error("minting upstream token", "request_id", rs.id, "err", err)
			s.fail(w, r, http.StatusInternalServerError, "Internal error.")
			return
		}
	}
	rs.fw = fw
	rt.proxy.ServeHTTP(w, r)
}

// identify fills fw with the identity headers and the minted token.
func (s *Server) identify(ctx context.Context, fw *forward, rt *Route, p *principal) error {
	sess := p.sess
	groups := filterGroups(sess.Groups, rt.Groups)
	id := &tokenmint.Identity{
		Subject:           sess.Subject,
		ClientID:          p.clientID,
		Email:             sess.Email,
		EmailVerified:     sess.EmailVerified,
		Name:              sess.Name,
		PreferredUsername: sess.PreferredUsername,
		Groups:            groups,
		SessionID:         p.sid,
		AuthTime:          sess.AuthTime,
	}
	if len(rt.Claims) > 0 {
		id.Extra = make(map[string]any, len(rt.Claims))
		for to, from := range rt.Claims {
			if v, ok := sess.Claims[from]; ok {
				id.Extra[to] = v
			}
		}
	}
	// Cached per session (or bearer token) and route: routes differ in
	// group filters and claim mappings even when they share an audience.
	// Whoever changes a session's identity calls forgetTokens.
	tok, err := s.cfg.Minter.Mint(ctx, tokenCacheKey(p.cacheKey, rt), rt.Audience, id)
	if err != nil {
		return err
	}
	fw.authenticated = true
	fw.token = tok.Raw
	fw.user = sess.Subject
	fw.email = sess.Email
	fw.groups = strings.Join(groups, ",")
	fw.preferredUsername = sess.PreferredUsername
	return nil
}

func tokenCacheKey(principal string, rt *Route) string {
	return principal + "\x00" + rt.Name
}

// userAllowed applies the global authorization policy.
func (s *Server) userAllowed(sess *sessionstore.Session) bool {
	if len(s.cfg.EmailDomains) > 0 {
		_, domain, ok := strings.Cut(sess.Email, "@")
		if !ok || !sess.EmailVerified {
			return false
		}
		found := false
		for _, d := range s.cfg.EmailDomains {
			found = found || strings.EqualFold(d, domain)
		}
		if !found {
			return false
		}
	}
	return allowed(s.cfg.AllowedGroups, sess.Groups)
}

// sameOrigin refuses cookie-authenticated state-changing requests that a
// page on another origin made the browser send.
func (s *Server) sameOrigin(r *http.Request) bool {
	return s.sameOriginMethod(r, r.Method)
}

// sameOriginMethod is sameOrigin for a given method (forward-auth judges the
// original request's method, not the check's).
func (s *Server) sameOriginMethod(r *http.Request, method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		// A WebSocket handshake is a GET, but it opens a two-way channel
		// with the user's cookie: cross-site WebSocket hijacking.
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			return true
		}
	}
	if o := r.Header.Get("Origin"); o != "" {
		o = strings.ToLower(o)
		return o == s.origin || s.origins[o]
	}
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
		return true // no Origin and no fetch metadata: not a modern cross-site browser request
	}
	return false
}

type reqStateKey struct{}

// reqState is per-request bookkeeping for logs and metrics.
type reqState struct {
	id            string
	route         string
	user          string
	bearer        string // the client's bearer token, if any (never logged)
	bearerPresent bool
	fw            *forward // what Rewrite sets on the upstream request
}

// forward is what the Rewrite hook sets on the upstream request.
type forward struct {
	path                                          string
	authenticated                                 bool
	token, user, email, groups, preferredUsername string
}

func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// statusWriter records the status code. Unwrap lets http.ResponseController
// reach Flush and Hijack (SSE and WebSocket upgrades).
type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote && code >= 200 || code == http.StatusSwitchingProtocols {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.status, w.wrote = http.StatusOK, true
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if !w.wrote {
		w.status, w.wrote = http.StatusOK, true
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) code() int {
	if !w.wrote {
		return http.StatusOK
	}
	return w.status
}

var _ http.Handler = (*Server)(nil)
