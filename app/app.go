// Package app wires a validated configuration into a running Gatehouse: the
// session store, the token minter, the OpenID client, the proxy and both
// listeners. main and the end-to-end tests share it.
package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/trace"

	"github.com/gatehouse/gatehouse/config"
	"github.com/gatehouse/gatehouse/oidcclient"
	"github.com/gatehouse/gatehouse/proxy"
	"github.com/gatehouse/gatehouse/redirect"
	"github.com/gatehouse/gatehouse/sessionstore"
	"github.com/gatehouse/gatehouse/tokenmint"
	"github.com/gatehouse/gatehouse/tracing"
)

// store is what the app needs of a session store beyond the proxy's use.
type store interface {
	proxy.Store
	Ping(ctx context.Context) error
	Close() error
}

// Every store offers everything the proxy relies on: a store or wrapper
// that lacked a capability would not compile here, rather than switch a
// feature off at run time.
var (
	_ store = (*sessionstore.Memory)(nil)
	_ store = (*sessionstore.Redis)(nil)
	_ store = (*sessionstore.Cached)(nil)
)

// App is one Gatehouse instance.
//
// Its long-lived parts (the session store, the token minter, the metrics)
// are built once; everything else a configuration says (routes, policies,
// upstreams, cookie secrets, the OpenID client's settings) lives in a
// generation that a reload replaces as a whole: the listener's handler
// loads the current generation once per request, so a request in flight
// finishes on the generation it started with.
type App struct {
	// cfg is the configuration the App started with. The keys a reload
	// cannot change (listeners, server.*, the session store) are read from
	// it; see restartOnly.
	cfg     *config.Config
	log     *slog.Logger
	opts    Options
	store   store
	minter  *tokenmint.Minter
	reg     *prometheus.Registry
	metrics *proxy.Metrics
	reloads *reloadMetrics
	// providerCalls times and counts every call to the identity provider.
	providerCalls *providerMetrics
	// tracing is the OpenTelemetry provider, nil when tracing is off;
	// stopTracing flushes it at shutdown.
	tracing     trace.TracerProvider
	stopTracing func(context.Context) error

	gen     atomic.Pointer[generation] // what serves now
	handler http.Handler               // the listener's: one atomic load per request

	// reloadMu serializes reloads and guards the fields below it.
	reloadMu       sync.Mutex
	lastAttempt    string                    // hash (or error) of the last configuration loaded
	attemptedFiles []string                  // the files it named, watched too
	ephemeral      map[string]*tokenmint.Key // development keys by algorithm, kept across reloads

	srv, metricsSrv *http.Server
	ln, metricsLn   net.Listener
	wg              sync.WaitGroup
}

// generation is everything built from one configuration.
type generation struct {
	cfg       *config.Config
	server    *proxy.Server
	login     *oidcclient.Client
	transport proxy.UpstreamTransport
	keys      []*tokenmint.Key
	hash      string // gatehouse_config_info's label
}

// Options are the parts a caller may supply instead of the configuration.
type Options struct {
	// Keys sign minted tokens instead of token.signing_key_files (the demo's
	// ephemeral key). Nil with no files configured = an ephemeral key.
	Keys []*tokenmint.Key
	// HTTPClient talks to the identity provider. Nil = a client with
	// oidc.discovery_timeout as its timeout.
	HTTPClient *http.Client
	// Listener, if set, is used instead of binding the listen key (tests
	// and the demo learn the address before the app is built).
	Listener net.Listener
	// Version is the release this binary is, for gatehouse_build_info
	// (the command line's version). Empty = "unknown".
	Version string

	// ConfigFile and Getenv are where the configuration came from
	// (config.Load's arguments): a reload loads it from them again. While
	// Run runs, ConfigFile and every file the configuration names (secrets,
	// keys) are watched, and a change reloads. Both empty = reloading is
	// off (a configuration built in code).
	ConfigFile string
	Getenv     func(string) string
	// ReloadSignals, if set, reloads once per value received while Run
	// runs: serve hands it SIGHUP.
	ReloadSignals <-chan os.Signal
	// OnReload, if set, is called after every reload attempt with its
	// outcome (not for a file event that changed nothing). It runs before
	// the next reload can start, so it must not call Reload.
	OnReload func(ReloadResult)
}

// New builds an App from a validated configuration. It does not listen yet.
func New(cfg *config.Config, log *slog.Logger, opts Options) (*App, error) {
	a := &App{cfg: cfg, log: log, opts: opts, reg: prometheus.NewRegistry(), ln: opts.Listener, ephemeral: map[string]*tokenmint.Key{}}
	getenv := opts.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	var err error
	a.tracing, a.stopTracing, err = tracing.Setup(context.Background(), tracing.Config{
		Endpoint: cfg.Tracing.Endpoint, SampleRatio: cfg.Tracing.SampleRatio,
		ServiceName: cfg.Tracing.ServiceName, Version: opts.Version,
	}, getenv)
	if err != nil {
		return nil, err
	}
	if a.tracing != nil {
		log.Info("tracing: exporting spans over OTLP/HTTP")
	}
	a.providerCalls = newProviderMetrics(a.reg)
	a.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), buildInfo(opts.Version))

	if cfg.Session.Store == "redis" {
		// go-redis logs pool trouble through a process-wide logger; send it
		// to ours so it is structured and leveled like everything else.
		redis.SetLogger(redisLogger{log.With("component", "redis")})
	}
	// Replicas sharing a Redis must sign alike; each ephemeral key is its
	// own. (The memory store is one replica's; see docs/kubernetes.md.)
	if cfg.Session.Store == "redis" && len(opts.Keys) == 0 && len(cfg.Token.SigningKeyFiles) == 0 {
		return nil, errors.New("token.signing_key_files: required with session.store: redis: every replica must sign minted tokens with the same key; write one with `gatehouse keys generate` (an ephemeral key is for one development instance only)")
	}
	keys, err := a.signingKeys(cfg)
	if err != nil {
		return nil, err
	}
	if a.minter, err = tokenmint.NewMinter(tokenmint.Config{Issuer: tokenIssuer(cfg), TTL: cfg.Token.TTL, Keys: keys}); err != nil {
		return nil, fmt.Errorf("token: %w", err)
	}
	// The store comes last of the fallible steps: it may hold connections.
	if a.store, err = newStore(cfg, log); err != nil {
		return nil, err
	}
	if c, ok := a.store.(*sessionstore.Cached); ok {
		a.reg.MustRegister(sessionCacheMetrics(c)...)
	}
	a.reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "gatehouse_tokens_minted_total", Help: "Upstream tokens signed."},
			func() float64 { m, _ := a.minter.Stats(); return float64(m) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "gatehouse_token_cache_hits_total", Help: "Upstream tokens served from the cache."},
			func() float64 { _, h := a.minter.Stats(); return float64(h) }),
	)
	a.metrics = proxy.NewMetrics(a.reg)
	a.reloads = newReloadMetrics(a.reg)

	gen, err := a.build(cfg, keys, nil)
	if err != nil {
		a.store.Close()
		return nil, err
	}
	a.gen.Store(gen)
	a.lastAttempt = gen.hash
	a.reloads.applied(gen, time.Now())
	a.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.gen.Load().server.ServeHTTP(w, r)
	})
	return a, nil
}

// build makes a generation of cfg, signing with keys. Parts whose settings
// did not change since prev (the OpenID client, the upstream transport) are
// carried over, so their caches and connections survive a reload. A new
// OpenID client is not discovered yet.
func (a *App) build(cfg *config.Config, keys []*tokenmint.Key, prev *generation) (*generation, error) {
	g := &generation{cfg: cfg, keys: keys, hash: configHash(cfg, keys)}
	pub, err := url.Parse(cfg.PublicURL)
	if err != nil {
		return nil, fmt.Errorf("public_url: %w", err)
	}
	codec, err := sessionstore.NewCodec(cfg.CookieSecrets(), cfg.Session.MaxLifetime)
	if err != nil {
		return nil, fmt.Errorf("cookie.secrets: %w", err)
	}
	flowCodec, err := sessionstore.NewCodec(cfg.CookieSecrets(), 10*time.Minute)
	if err != nil {
		return nil, fmt.Errorf("cookie.secrets: %w", err)
	}
	meta, err := sessionstore.NewMetaKeys(cfg.CookieSecrets())
	if err != nil {
		return nil, fmt.Errorf("cookie.secrets: %w", err)
	}

	lc := a.loginConfig(cfg)
	if prev != nil && sameLogin(prev.cfg, cfg) {
		g.login = prev.login
	} else {
		g.login = oidcclient.New(lc)
	}
	var bearer proxy.BearerVerifier
	if len(cfg.API.AcceptedAudiences) > 0 || len(cfg.API.AcceptIDTokens) > 0 {
		bearer = g.login
	}
	if cfg.API.Introspection {
		// Opaque tokens are checked at the provider; JWTs as before.
		bearer = oidcclient.NewIntrospector(g.login, oidcclient.IntrospectionConfig{
			Endpoint: cfg.API.IntrospectionEndpoint,
			CacheTTL: cfg.API.IntrospectionCacheTTL,
			Rate:     cfg.API.IntrospectionRate,
		})
	}
	policy, err := redirect.NewPolicy(cfg.PublicURL, cfg.Redirect.AllowedDomains)
	if err != nil {
		return nil, fmt.Errorf("redirect.allowed_domains: %w", err)
	}
	routes, err := buildRoutes(cfg)
	if err != nil {
		return nil, err
	}
	trusted, err := parsePrefixes(cfg.TrustedProxies)
	if err != nil {
		return nil, err
	}
	if prev != nil && prev.cfg.UpstreamTransport == cfg.UpstreamTransport {
		g.transport = prev.transport
	} else {
		g.transport = proxy.NewTransport(proxy.TransportConfig{
			DialTimeout:           cfg.UpstreamTransport.DialTimeout,
			ResponseHeaderTimeout: cfg.UpstreamTransport.ResponseHeaderTimeout,
			IdleConnTimeout:       cfg.UpstreamTransport.IdleConnTimeout,
			MaxIdleConnsPerHost:   cfg.UpstreamTransport.MaxIdleConnsPerHost,
			Client:                cfg.UpstreamTransport.Client,
		})
	}
	g.server, err = proxy.New(proxy.Config{
		PublicURL: pub,
		Cookie:    proxy.CookieConfig{Name: cfg.Cookie.Name, Secure: cfg.Cookie.Secure, Codec: codec, FlowCodec: flowCodec},
		Session:   proxy.SessionConfig{Store: a.store, IdleTimeout: cfg.Session.IdleTimeout, MaxLifetime: cfg.Session.MaxLifetime, Meta: meta},
		Token:     proxy.TokenConfig{Minter: a.minter, JWKS: a.minter.JWKSHandler(), Header: cfg.Token.Header, Scheme: cfg.Token.Scheme},
		Login: proxy.LoginConfig{
			Client: g.login, ClientID: cfg.OIDC.ClientID, ProviderLogout: cfg.OIDC.ProviderLogout,
			Bearer: bearer, Redirects: policy,
		},
		Policy: proxy.Policy{
			EmailDomains:         cfg.Authorization.EmailDomains,
			AllowedEmails:        cfg.Authorization.AllowedEmails,
			AllowedGroups:        cfg.Authorization.AllowedGroups,
			RequireVerifiedEmail: cfg.Authorization.RequireVerifiedEmail,
			AllowedOrigins:       cfg.AllowedOrigins,
		},
		Routes:         routes,
		TrustedProxies: trusted,
		Transport:      g.transport,
		Logger:         a.log,
		AccessLog:      cfg.Log.AccessLog,
		Metrics:        a.metrics,
		Tracing:        a.tracing,
	})
	if err != nil {
		return nil, err
	}
	return g, nil
}

// loginConfig is the OpenID client's configuration from cfg.
func (a *App) loginConfig(cfg *config.Config) oidcclient.Config {
	providerClient := a.opts.HTTPClient
	if providerClient == nil {
		// Every call to the provider (discovery, keys, code exchange) is
		// bounded by oidc.discovery_timeout.
		providerClient = &http.Client{Timeout: cfg.OIDC.DiscoveryTimeout}
	}
	// Every provider call is timed and counted (gatehouse_provider_*).
	instrumented := *providerClient
	instrumented.Transport = a.providerCalls.wrap(providerClient.Transport)
	providerClient = &instrumented
	return oidcclient.Config{
		Issuer:       cfg.OIDC.Issuer,
		ClientID:     cfg.OIDC.ClientID,
		ClientSecret: cfg.OIDC.ClientSecret,
		RedirectURL:  strings.TrimSuffix(cfg.PublicURL, "/") + "/oauth2/callback",
		Scopes:       cfg.OIDC.Scopes,
		GroupsClaim:  cfg.OIDC.GroupsClaim,
		GroupsClaims: cfg.OIDC.GroupsClaims,
		HTTPClient:   providerClient,
		Logger:       a.log,

		AcceptedAudiences: cfg.API.AcceptedAudiences,
		AcceptIDTokens:    cfg.API.AcceptIDTokens,
	}
}

// sameLogin reports whether the OpenID client of a and of b would be
// configured alike (loginConfig's inputs).
func sameLogin(a, b *config.Config) bool {
	return a.OIDC.Issuer == b.OIDC.Issuer && a.OIDC.ClientID == b.OIDC.ClientID &&
		a.OIDC.ClientSecret == b.OIDC.ClientSecret && a.PublicURL == b.PublicURL &&
		slices.Equal(a.OIDC.Scopes, b.OIDC.Scopes) && a.OIDC.GroupsClaim == b.OIDC.GroupsClaim &&
		slices.Equal(a.OIDC.GroupsClaims, b.OIDC.GroupsClaims) &&
		a.OIDC.DiscoveryTimeout == b.OIDC.DiscoveryTimeout &&
		slices.Equal(a.API.AcceptedAudiences, b.API.AcceptedAudiences) &&
		slices.Equal(a.API.AcceptIDTokens, b.API.AcceptIDTokens)
}

// tokenIssuer is the iss of minted tokens: token.issuer, else public_url.
func tokenIssuer(cfg *config.Config) string {
	if cfg.Token.Issuer != "" {
		return cfg.Token.Issuer
	}
	return strings.TrimSuffix(cfg.PublicURL, "/")
}

// signingKeys returns the keys cfg signs with: Options.Keys, else the
// token.signing_key_files, else one ephemeral key per algorithm, made once
// and kept across reloads. Callers hold reloadMu (or are New).
func (a *App) signingKeys(cfg *config.Config) ([]*tokenmint.Key, error) {
	if len(a.opts.Keys) > 0 {
		return a.opts.Keys, nil
	}
	if len(cfg.Token.SigningKeyFiles) > 0 {
		keys, err := tokenmint.LoadKeyFiles(cfg.Token.SigningKeyFiles)
		if err != nil {
			return nil, fmt.Errorf("token.signing_key_files: %w", err)
		}
		if alg := cfg.Token.Algorithm; alg != "" && keys[0].Algorithm() != alg {
			return nil, fmt.Errorf("token.algorithm: %q, but the first signing key is an %s key", alg, keys[0].Algorithm())
		}
		return keys, nil
	}
	alg := cfg.Token.Algorithm
	if alg == "" {
		alg = "ES256"
	}
	if k := a.ephemeral[alg]; k != nil {
		return []*tokenmint.Key{k}, nil
	}
	k, err := tokenmint.GenerateKey(alg)
	if err != nil {
		return nil, fmt.Errorf("token.algorithm: %w", err)
	}
	a.ephemeral[alg] = k
	a.log.Warn("EPHEMERAL SIGNING KEY: token.signing_key_files is empty, so minted tokens are signed with a key that dies with this process and differs between replicas; for development only",
		"kid", k.KeyID(), "alg", alg)
	return []*tokenmint.Key{k}, nil
}

func newStore(cfg *config.Config, log *slog.Logger) (store, error) {
	switch cfg.Session.Store {
	case "redis":
		s, err := RedisStore(cfg)
		if err != nil {
			return nil, err
		}
		// A too-old server is refused now, naming its version, rather than
		// failing every login later. An unreachable one is not fatal: the
		// store recovers by itself, /readyz says why meanwhile, and Ping
		// repeats this check until it has passed.
		ctx, cancel := context.WithTimeout(context.Background(), cfg.Redis.DialTimeout+cfg.Redis.Timeout)
		err = s.Check(ctx)
		cancel()
		if ve := (*sessionstore.VersionError)(nil); errors.As(err, &ve) {
			s.Close()
			return nil, fmt.Errorf("redis: %w", err)
		} else if err != nil {
			log.Warn("redis: cannot check the server version at startup; retried by /readyz", "err", err)
		}
		if cfg.Session.CacheTTL > 0 {
			return sessionstore.NewCached(s, sessionstore.CacheConfig{TTL: cfg.Session.CacheTTL, MaxEntries: cfg.Session.CacheMaxEntries, Logger: log}), nil
		}
		return s, nil
	default:
		return sessionstore.NewMemory(sessionstore.MemoryConfig{MaxSessions: cfg.Session.MemoryMaxSessions}), nil
	}
}

// RedisStore connects to the Redis that cfg's redis.* keys describe (it
// does not contact it yet): the serving replicas' store, and the one
// `gatehouse sessions` works on.
func RedisStore(cfg *config.Config) (*sessionstore.Redis, error) {
	var tlsCfg *tls.Config
	if cfg.Redis.TLS {
		tlsCfg = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: cfg.Redis.TLSServerName}
		if cfg.Redis.TLSCAFile != "" {
			pem, err := os.ReadFile(cfg.Redis.TLSCAFile)
			if err != nil {
				return nil, fmt.Errorf("redis.tls_ca_file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("redis.tls_ca_file: %s: no PEM certificates", cfg.Redis.TLSCAFile)
			}
			tlsCfg.RootCAs = pool
		}
	}
	s, err := sessionstore.NewRedis(sessionstore.RedisConfig{
		Mode:             cfg.Redis.EffectiveMode(),
		Addrs:            cfg.Redis.Addrs,
		MasterName:       cfg.Redis.MasterName,
		SentinelUsername: cfg.Redis.SentinelUsername,
		SentinelPassword: cfg.Redis.SentinelPassword,
		Username:         cfg.Redis.Username,
		Password:         cfg.Redis.Password,
		DB:               cfg.Redis.DB,
		TLSConfig:        tlsCfg,
		KeyPrefix:        cfg.Redis.KeyPrefix,
		DialTimeout:      cfg.Redis.DialTimeout,
		OpTimeout:        cfg.Redis.Timeout,
		PoolSize:         cfg.Redis.PoolSize,
	})
	if err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	return s, nil
}

// sessionCacheMetrics exports a Cached store's counters: its hit rate and
// the health of the invalidations between replicas.
func sessionCacheMetrics(c *sessionstore.Cached) []prometheus.Collector {
	counter := func(name, help string, v func(sessionstore.CacheStats) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(v(c.Stats())) })
	}
	gauge := func(name, help string, v func(sessionstore.CacheStats) int) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return float64(v(c.Stats())) })
	}
	return []prometheus.Collector{
		counter("gatehouse_session_cache_hits_total", "Session reads served from this replica's cache.",
			func(s sessionstore.CacheStats) uint64 { return s.Hits }),
		counter("gatehouse_session_cache_misses_total", "Session reads that went to Redis.",
			func(s sessionstore.CacheStats) uint64 { return s.Misses }),
		gauge("gatehouse_session_cache_entries", "Sessions in this replica's cache.",
			func(s sessionstore.CacheStats) int { return s.Entries }),
		counter("gatehouse_session_invalidations_received_total", "Invalidation messages received from any replica.",
			func(s sessionstore.CacheStats) uint64 { return s.InvalidationsReceived }),
		counter("gatehouse_session_invalidation_subscriptions_total", "Invalidation subscriptions established; each one after the first follows a lost connection.",
			func(s sessionstore.CacheStats) uint64 { return s.Subscriptions }),
		counter("gatehouse_session_invalidation_publish_failures_total", "Invalidation publishes Redis refused or did not answer (each retry counts).",
			func(s sessionstore.CacheStats) uint64 { return s.PublishFailures }),
		gauge("gatehouse_session_invalidations_pending", "Invalidations waiting to be published again.",
			func(s sessionstore.CacheStats) int { return s.PendingInvalidations }),
		counter("gatehouse_session_invalidations_dropped_total", "Invalidations given up: the retry queue was full or the cache TTL had made them moot.",
			func(s sessionstore.CacheStats) uint64 { return s.LostInvalidations + s.ExpiredInvalidations }),
		// The command line has no /metrics: every replica counts what it announces (use max, not sum).
		counter("gatehouse_sessions_revoked_by_operator_total", "Sessions operators ended with gatehouse sessions revoke, as announced to this replica (every replica counts each).",
			func(s sessionstore.CacheStats) uint64 { return s.OperatorRevocations }),
	}
}

func buildRoutes(cfg *config.Config) ([]*proxy.Route, error) {
	var routes []*proxy.Route
	for i, r := range cfg.EffectiveRoutes() {
		u, err := url.Parse(r.Upstream)
		if err != nil {
			return nil, fmt.Errorf("routes[%d].upstream: %w", i, err)
		}
		routes = append(routes, &proxy.Route{
			Name:          r.Name,
			Host:          strings.Trim(strings.ToLower(r.Host), "[]"), // as proxy's hostOnly reads Host
			PathPrefix:    r.PathPrefix,
			Upstream:      u,
			Audience:      r.Audience,
			Public:        r.Public,
			AllowedGroups: r.AllowedGroups,
			Groups:        r.Groups,
			Claims:        r.Claims,
			// The upstream serves paths in any case.
			CaseInsensitive: r.CaseInsensitive,
		})
	}
	return routes, nil
}

func parsePrefixes(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for i, s := range list {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		ip, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("trusted_proxies[%d]: %q is neither a CIDR nor an IP", i, s)
		}
		out = append(out, netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen()))
	}
	return out, nil
}

// Discover runs OpenID discovery once, now. Run retries it in the
// background anyway; callers that must not serve a login before the provider
// is known (the demo) call this first.
func (a *App) Discover(ctx context.Context) error { return a.gen.Load().login.Discover(ctx) }

// Handler is the proxy listener's handler. It serves every request with
// the configuration current when the request arrives.
func (a *App) Handler() http.Handler { return a.handler }

// Minter is the app's token minter (its JWKS verifies minted tokens).
func (a *App) Minter() *tokenmint.Minter { return a.minter }

// OpsHandler serves /healthz, /readyz and /metrics.
func (a *App) OpsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		checks := map[string]string{"session_store": "ok", "identity_provider": "ok"}
		ready := true
		if err := a.store.Ping(ctx); err != nil {
			checks["session_store"], ready = err.Error(), false
		}
		if err := a.gen.Load().login.Ready(); err != nil {
			checks["identity_provider"], ready = err.Error(), false
		}
		body := map[string]any{"ready": ready, "checks": checks}
		// Invalidations that cannot reach other replicas (or this one)
		// degrade revocation to the cache TTL's bound but not serving:
		// reported, not a 503, which on every replica at once would turn a
		// pub/sub problem into an outage.
		if h, ok := a.store.(interface{ Health(context.Context) error }); ok {
			checks["session_invalidation"] = "ok"
			if err := h.Health(ctx); err != nil {
				checks["session_invalidation"], body["degraded"] = err.Error(), true
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if !ready {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(body)
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{Registry: a.reg}))
	return mux
}

func (a *App) server(h http.Handler) *http.Server {
	s := a.cfg.Server
	return &http.Server{
		Handler: h,
		// Slowloris: a client gets ReadHeaderTimeout to send its headers.
		ReadHeaderTimeout: s.ReadHeaderTimeout,
		ReadTimeout:       s.ReadTimeout,
		// Zero by default: streamed responses (SSE, downloads) may run long.
		WriteTimeout:   s.WriteTimeout,
		IdleTimeout:    s.IdleTimeout,
		MaxHeaderBytes: s.MaxHeaderBytes,
		ErrorLog:       slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
	}
}

// Listen binds both listeners (":0" ports allowed) so bind errors surface
// before serving starts.
func (a *App) Listen() error {
	var err error
	if a.ln == nil {
		if a.ln, err = net.Listen("tcp", a.cfg.Listen); err != nil {
			return fmt.Errorf("listen: %w", err)
		}
	}
	if a.metricsLn, err = net.Listen("tcp", a.cfg.MetricsListen); err != nil {
		a.ln.Close()
		return fmt.Errorf("metrics_listen: %w", err)
	}
	return nil
}

// Addr is the proxy listener's address (after Listen).
func (a *App) Addr() string { return a.ln.Addr().String() }

// MetricsAddr is the metrics listener's address (after Listen).
func (a *App) MetricsAddr() string { return a.metricsLn.Addr().String() }

// Run serves until ctx ends, then drains in-flight requests for up to
// server.shutdown_timeout and closes the store.
func (a *App) Run(ctx context.Context) error {
	if a.metricsLn == nil {
		if err := a.Listen(); err != nil {
			return err
		}
	}
	loginCtx, stopLogin := context.WithCancel(context.WithoutCancel(ctx))
	defer stopLogin()
	// A client a reload makes is discovered before it serves; only the
	// first one retries in the background.
	go a.gen.Load().login.Run(loginCtx)
	if a.reloadable() || a.opts.ReloadSignals != nil {
		a.wg.Go(func() { a.watch(loginCtx) })
	}

	a.srv, a.metricsSrv = a.server(a.handler), a.server(a.OpsHandler())
	errc := make(chan error, 2)
	for _, p := range []struct {
		s *http.Server
		l net.Listener
	}{{a.srv, a.ln}, {a.metricsSrv, a.metricsLn}} {
		a.wg.Go(func() {
			if err := p.s.Serve(p.l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		})
	}
	a.log.Info("gatehouse listening", "addr", a.Addr(), "metrics_addr", a.MetricsAddr(), "public_url", a.cfg.PublicURL)
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	a.log.Info("shutting down: draining in-flight requests", "timeout", a.cfg.Server.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), a.cfg.Server.ShutdownTimeout)
	defer cancel()
	if err := a.srv.Shutdown(sctx); err != nil && runErr == nil {
		runErr = fmt.Errorf("shutdown: %w", err)
	}
	_ = a.metricsSrv.Shutdown(sctx)
	if err := a.stopTracing(sctx); err != nil {
		a.log.Warn("tracing: flushing spans at shutdown", "err", err)
	}
	stopLogin() // and the watcher
	a.wg.Wait()
	if err := a.store.Close(); err != nil && runErr == nil {
		runErr = err
	}
	return runErr
}

// buildInfo is gatehouse_build_info: 1, labelled with what is running, so
// dashboards can show versions side by side during a rollout and join them
// onto other series.
func buildInfo(version string) prometheus.Collector {
	if version == "" {
		version = "unknown"
	}
	revision, goVersion := "unknown", runtime.Version()
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && s.Value != "" {
				revision = s.Value
			}
		}
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "gatehouse_build_info",
		Help:        "Always 1; the labels say which build is running.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": goVersion, "revision": revision},
	})
	g.Set(1)
	return g
}

// Registry is the Prometheus registry /metrics serves, for tests that list
// every series Gatehouse registers, including those with no samples yet.
func (a *App) Registry() *prometheus.Registry { return a.reg }

type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.WarnContext(ctx, fmt.Sprintf(format, v...))
}

// NewLogger builds the process logger from log.format and log.level.
func NewLogger(w io.Writer, format, level string) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: lv}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
