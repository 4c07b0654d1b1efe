// Package config loads and validates Gatehouse's configuration: one YAML file,
// overridden by GATEHOUSE_* environment variables, with secrets readable from
// files.
//
// Load reads and decodes; Validate reports every problem at once, each naming
// its key. main calls both at startup, so a bad configuration never reaches
// the first request.
package config

import (
	"log/slog"
	"net/url"
	"time"
)

// Config is Gatehouse's whole configuration, as the YAML file spells it.
// The zero value is not useful: use Load, which applies the defaults noted on
// each field.
type Config struct {
	// Listen is the proxy listener, host:port. Default "127.0.0.1:4180".
	Listen string `mapstructure:"listen"`
	// MetricsListen serves /metrics, /healthz and /readyz. Default "127.0.0.1:9180".
	MetricsListen string `mapstructure:"metrics_listen"`
	// PublicURL is Gatehouse's external base URL, such as
	// "https://app.example.com". Required; the callback is
	// PublicURL + "/oauth2/callback". Load removes a trailing "/".
	PublicURL string `mapstructure:"public_url"`

	// OIDC is the identity provider.
	OIDC OIDC `mapstructure:"oidc"`
	// Cookie is the session cookie.
	Cookie Cookie `mapstructure:"cookie"`
	// Session sets where sessions live and how long.
	Session Session `mapstructure:"session"`
	// Redis is the session store when Session.Store is "redis".
	Redis Redis `mapstructure:"redis"`
	// Token is the JWT minted for upstreams.
	Token Token `mapstructure:"token"`
	// Authorization restricts who may pass, on every route.
	Authorization Authorization `mapstructure:"authorization"`
	// Redirect lists where rd may point besides PublicURL's host.
	Redirect Redirect `mapstructure:"redirect"`
	// API configures bearer tokens from native clients.
	API API `mapstructure:"api"`

	// Routes map requests to upstreams; the first match wins. Empty means one
	// catch-all route to Upstream (see EffectiveRoutes). Routes are read from
	// the file only, never from the environment.
	Routes []Route `mapstructure:"routes"`
	// Upstream is the catch-all upstream URL used when Routes is empty, and
	// ignored otherwise.
	Upstream string `mapstructure:"upstream"`
	// TrustedProxies are CIDRs or IP addresses whose X-Forwarded-* and
	// X-Original-* headers are believed. Empty believes nobody.
	TrustedProxies []string `mapstructure:"trusted_proxies"`
	// AllowedOrigins are origins (scheme://host[:port]) besides PublicURL's
	// that may send cookie-authenticated state-changing requests.
	AllowedOrigins []string `mapstructure:"allowed_origins"`

	// Log configures logging.
	Log Log `mapstructure:"log"`
	// Tracing exports OpenTelemetry spans; the OTEL_* variables configure
	// it too, and without an endpoint it is off.
	Tracing Tracing `mapstructure:"tracing"`
	// Server configures the proxy listener.
	Server Server `mapstructure:"server"`
	// UpstreamTransport configures connections to upstreams.
	UpstreamTransport UpstreamTransport `mapstructure:"upstream_transport"`

	// loaded records what Load did with the *_file keys, for Validate.
	loaded loadState
}

// OIDC configures the identity provider.
type OIDC struct {
	// Issuer is the provider's issuer URL; discovery reads
	// Issuer + "/.well-known/openid-configuration". Required; https, or http
	// for a loopback host.
	Issuer string `mapstructure:"issuer"`
	// ClientID is Gatehouse's client id at the provider. Required.
	ClientID string `mapstructure:"client_id"`
	// ClientSecret is the client secret. Exactly one of ClientSecret and
	// ClientSecretFile must be set; after Load it holds the file's content.
	ClientSecret string `mapstructure:"client_secret" secret:"true"`
	// ClientSecretFile names a file holding the client secret.
	ClientSecretFile string `mapstructure:"client_secret_file"`
	// Scopes requested at login; must include "openid".
	// Default openid, email, profile, offline_access.
	Scopes []string `mapstructure:"scopes"`
	// GroupsClaim is the claim path (oidcclient.ClaimPath) of the user's
	// groups: a claim name, a nested path such as realm_access.roles, a
	// name with dots in brackets such as resource_access["my.app"].roles,
	// or a claim URL such as https://example.com/groups. Default "groups".
	GroupsClaim string `mapstructure:"groups_claim"`
	// GroupsClaims are more claim paths, read after GroupsClaim; their
	// groups are merged in order, without duplicates. When none of the
	// paths is in the ID token, the groups come from the userinfo endpoint.
	// Default none.
	GroupsClaims []string `mapstructure:"groups_claims"`
	// DiscoveryTimeout bounds each call to the provider's discovery and JWKS
	// endpoints. Default 10s.
	DiscoveryTimeout time.Duration `mapstructure:"discovery_timeout"`
	// ProviderLogout makes sign-out also end the user's session at the
	// provider (RP-initiated logout via its end_session_endpoint, with the
	// ID token as hint and the validated rd as post_logout_redirect_uri).
	// Default false: sign-out ends only Gatehouse's session.
	ProviderLogout bool `mapstructure:"provider_logout"`
}

// Cookie configures the session cookie.
type Cookie struct {
	// Name of the cookie; it becomes "__Host-" + Name when Secure.
	// Default "gatehouse".
	Name string `mapstructure:"name"`
	// Secrets encrypt and authenticate the cookie, newest first: the first
	// one encodes, all of them decode, so rotation is prepend, then drop the
	// oldest. Each is at least 32 bytes. Exactly one of Secrets and
	// SecretsFile must be set; after Load it holds the file's lines.
	Secrets []string `mapstructure:"secrets" secret:"true"`
	// SecretsFile names a file with one secret a line, newest first; blank
	// lines and lines starting with "#" are ignored.
	SecretsFile string `mapstructure:"secrets_file"`
	// Secure marks the cookie Secure and adds the __Host- prefix; it requires
	// an https PublicURL. Default true.
	Secure bool `mapstructure:"secure"`
}

// Session configures server-side sessions.
type Session struct {
	// Store is "memory" (one replica) or "redis". Default "memory".
	Store string `mapstructure:"store"`
	// IdleTimeout ends a session this long after its last request. Default 30m.
	IdleTimeout time.Duration `mapstructure:"idle_timeout"`
	// MaxLifetime ends a session this long after login, whatever its
	// activity; at least IdleTimeout. Default 12h.
	MaxLifetime time.Duration `mapstructure:"max_lifetime"`
	// MemoryMaxSessions bounds how many sessions the memory store holds.
	// Default 100000.
	MemoryMaxSessions int `mapstructure:"memory_max_sessions"`
	// CacheTTL (redis store only) lets each replica reuse a session it read
	// from Redis for this long without asking again; revocations reach every
	// replica at once over Redis pub/sub, and this bounds the damage of a
	// lost message. 0 disables the cache. Default 5s; at most 1m.
	CacheTTL time.Duration `mapstructure:"cache_ttl"`
	// CacheMaxEntries (redis store only) bounds each replica's session
	// cache; when full, entries past cache_ttl go first. Default 100000.
	CacheMaxEntries int `mapstructure:"cache_max_entries"`
}

// Redis configures the Redis session store: Redis 6.2 or later, or Valkey.
type Redis struct {
	// Mode is standalone, sentinel or cluster. Empty means sentinel when
	// MasterName is set, else standalone; it is never guessed from the
	// number of addresses (one address can be a whole Cluster's endpoint).
	Mode string `mapstructure:"mode"`
	// Addrs are host:port addresses: the server (standalone: exactly one),
	// the Sentinels, or Cluster seed nodes. Required when session.store is
	// redis.
	Addrs []string `mapstructure:"addrs"`
	// MasterName is the name of the master the Sentinels monitor; sentinel
	// mode only, and required there.
	MasterName string `mapstructure:"master_name"`
	// SentinelUsername and SentinelPassword authenticate to the Sentinels
	// themselves (Sentinel's own requirepass or ACL user); empty = none. At
	// most one of SentinelPassword and SentinelPasswordFile may be set.
	SentinelUsername     string `mapstructure:"sentinel_username"`
	SentinelPassword     string `mapstructure:"sentinel_password" secret:"true"`
	SentinelPasswordFile string `mapstructure:"sentinel_password_file"`
	// Username for Redis ACLs; empty uses the default user.
	Username string `mapstructure:"username"`
	// Password for Redis AUTH. At most one of Password and PasswordFile may be
	// set; after Load it holds the file's content.
	Password string `mapstructure:"password" secret:"true"`
	// PasswordFile names a file holding the password.
	PasswordFile string `mapstructure:"password_file"`
	// DB is the database number; it must be 0 for a Cluster.
	DB int `mapstructure:"db"`
	// TLS connects with TLS: to the data nodes and, in sentinel mode, to the
	// Sentinels, all verified with the same CA and server name.
	TLS bool `mapstructure:"tls"`
	// TLSCAFile is a PEM bundle to verify the server with, instead of the
	// system roots. Requires TLS.
	TLSCAFile string `mapstructure:"tls_ca_file"`
	// TLSServerName overrides the name verified in the server's certificate.
	// Requires TLS.
	TLSServerName string `mapstructure:"tls_server_name"`
	// KeyPrefix starts every key Gatehouse writes. Default "gatehouse".
	KeyPrefix string `mapstructure:"key_prefix"`
	// DialTimeout bounds connecting. Default 3s.
	DialTimeout time.Duration `mapstructure:"dial_timeout"`
	// Timeout bounds each command. Default 1s.
	Timeout time.Duration `mapstructure:"timeout"`
	// PoolSize is the number of connections per Redis node; 0 = go-redis's
	// default (10 per CPU).
	PoolSize int `mapstructure:"pool_size"`
}

// EffectiveMode is Mode with its default applied: sentinel when MasterName
// is set, else standalone.
func (r Redis) EffectiveMode() string {
	switch {
	case r.Mode != "":
		return r.Mode
	case r.MasterName != "":
		return "sentinel"
	}
	return "standalone"
}

// Token configures the JWT minted for upstreams.
type Token struct {
	// Issuer is the minted tokens' iss claim. Default: PublicURL.
	Issuer string `mapstructure:"issuer"`
	// TTL is the minted tokens' lifetime, from 10s to 1h. Default 2m.
	TTL time.Duration `mapstructure:"ttl"`
	// Algorithm is ES256, EdDSA or RS256. Default ES256.
	Algorithm string `mapstructure:"algorithm"`
	// SigningKeyFiles are PEM private keys; the first signs and all are
	// published in the JWKS. Empty means an ephemeral key, for development
	// only: tokens stop verifying at every restart and differ per replica.
	SigningKeyFiles []string `mapstructure:"signing_key_files"`
	// Header carries the token to the upstream. Default "Authorization".
	Header string `mapstructure:"header"`
	// Scheme prefixes the token in Header ("Bearer <jwt>"); empty sends the
	// bare token. Default "Bearer".
	Scheme string `mapstructure:"scheme"`
}

// Authorization restricts who may use Gatehouse once authenticated.
type Authorization struct {
	// EmailDomains allowed, such as "example.com"; empty allows any.
	EmailDomains []string `mapstructure:"email_domains"`
	// AllowedEmails: the user's email must be one of these (compared
	// case-insensitively); empty allows any.
	AllowedEmails []string `mapstructure:"allowed_emails"`
	// AllowedGroups: the user must be in at least one; empty allows any.
	AllowedGroups []string `mapstructure:"allowed_groups"`
	// RequireVerifiedEmail refuses users whose provider sends an email
	// without email_verified: true. Default true. Email rules
	// (email_domains, allowed_emails) always need a verified email.
	RequireVerifiedEmail bool `mapstructure:"require_verified_email"`
}

// Redirect configures where rd may point after login and logout.
type Redirect struct {
	// AllowedDomains besides PublicURL's host: "app.example.com" exactly, or
	// ".example.com" for example.com and its subdomains, optionally ":port".
	AllowedDomains []string `mapstructure:"allowed_domains"`
}

// API configures bearer-token access for native and mobile clients.
type API struct {
	// AcceptedAudiences are the aud values accepted in the provider's bearer
	// tokens. Empty accepts no bearer tokens.
	AcceptedAudiences []string `mapstructure:"accepted_audiences"`
	// Introspection checks bearer tokens that are not JWTs (opaque access
	// tokens) with the provider's RFC 7662 introspection endpoint,
	// authenticated as oidc.client_id. Default false: only JWT access
	// tokens are accepted. Requires AcceptedAudiences: an introspected
	// token must name one of them too.
	Introspection bool `mapstructure:"introspection"`
	// IntrospectionEndpoint is the introspection URL; empty (the default)
	// takes introspection_endpoint from discovery. Ory Hydra advertises
	// none: its endpoint is /admin/oauth2/introspect on the admin API.
	// https, or http for a loopback host.
	IntrospectionEndpoint string `mapstructure:"introspection_endpoint"`
	// IntrospectionCacheTTL bounds how long an active answer is believed
	// without asking again, never past the token's exp; a token revoked at
	// the provider works at most this long. From 1s to 1h. Default 1m.
	IntrospectionCacheTTL time.Duration `mapstructure:"introspection_cache_ttl"`
	// IntrospectionRate bounds the calls to the introspection endpoint, per
	// second; a token that would exceed it gets 503 (retry). Cached
	// answers cost nothing. From 1 to 10000. Default 20.
	IntrospectionRate int `mapstructure:"introspection_rate"`
	// AcceptIDTokens are audiences (client ids) whose ID tokens are accepted
	// as bearer tokens, for providers whose access tokens are opaque. Empty
	// (the default) refuses ID tokens as bearer tokens. An ID token says who
	// signed in to that client, not what the bearer may call: accept it only
	// for your own clients, whose ID tokens never leave them.
	AcceptIDTokens []string `mapstructure:"accept_id_tokens"`
}

// Route sends matching requests to one upstream.
type Route struct {
	// Name identifies the route in logs and metrics; unique, made of letters,
	// digits, "-", "_" and ".".
	Name string `mapstructure:"name"`
	// PathPrefix matches the normalized request path; it starts with "/".
	// "/x/" and "/x" both match "/x" itself and everything below "/x/".
	PathPrefix string `mapstructure:"path_prefix"`
	// CaseInsensitive: the upstream serves paths in any case ("/ADMIN" as
	// "/admin", as IIS and case-insensitive frameworks do). PathPrefix then
	// matches in any case, and a path that a protected route matches in any
	// case is never given to a less specific route. Default false.
	CaseInsensitive bool `mapstructure:"case_insensitive"`
	// Host matches the request's host name, whatever its port; empty
	// matches any. It carries no port (config check refuses one).
	Host string `mapstructure:"host"`
	// Upstream is the http or https URL requests are proxied to.
	Upstream string `mapstructure:"upstream"`
	// Audience is the aud claim of tokens minted for this route.
	// Default: Name (see EffectiveRoutes).
	Audience string `mapstructure:"audience"`
	// Public routes are served without a session; identity headers are still
	// stripped from the request.
	Public bool `mapstructure:"public"`
	// AllowedGroups: the user must be in one of them, besides the global
	// authorization rules; empty allows any.
	AllowedGroups []string `mapstructure:"allowed_groups"`
	// Groups filters the groups put into the token and the groups header;
	// empty passes them all.
	Groups []string `mapstructure:"groups"`
	// Claims adds claims to the minted token: minted claim name -> provider
	// claim name. Registered and standard claims cannot be overridden.
	Claims map[string]string `mapstructure:"claims"`
}

// Log configures logging.
type Log struct {
	// Format is "json" or "text". Default "json".
	Format string `mapstructure:"format"`
	// Level is debug, info, warn or error. Default "info".
	Level string `mapstructure:"level"`
	// AccessLog logs one line per request. Default true.
	AccessLog bool `mapstructure:"access_log"`
}

// Tracing configures OpenTelemetry tracing (OTLP over HTTP). Every key is
// optional: the standard OTEL_* environment variables apply when it is empty.
type Tracing struct {
	// Endpoint is the OTLP/HTTP traces URL, e.g.
	// http://otel-collector:4318/v1/traces. Empty: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
	// else OTEL_EXPORTER_OTLP_ENDPOINT + /v1/traces; none = tracing off.
	Endpoint string `mapstructure:"endpoint"`
	// SampleRatio of new traces recorded, 0 to 1; a trusted caller's
	// decision is followed. 0: OTEL_TRACES_SAMPLER_ARG, else 1.
	SampleRatio float64 `mapstructure:"sample_ratio"`
	// ServiceName; empty: OTEL_SERVICE_NAME, else "gatehouse".
	ServiceName string `mapstructure:"service_name"`
}

// Server configures the proxy listener's http.Server.
type Server struct {
	// ReadHeaderTimeout bounds reading request headers, against slowloris
	// clients. Default 10s.
	ReadHeaderTimeout time.Duration `mapstructure:"read_header_timeout"`
	// ReadTimeout bounds reading a whole request, body included; 0 means no
	// limit. Default 60s.
	ReadTimeout time.Duration `mapstructure:"read_timeout"`
	// WriteTimeout bounds writing a response; 0 (the default) means no limit,
	// so streaming responses and websockets keep working.
	WriteTimeout time.Duration `mapstructure:"write_timeout"`
	// IdleTimeout closes idle keep-alive connections. Default 120s.
	IdleTimeout time.Duration `mapstructure:"idle_timeout"`
	// ShutdownTimeout bounds the graceful shutdown on SIGTERM; keep it below
	// Kubernetes' 30s grace period. Default 25s.
	ShutdownTimeout time.Duration `mapstructure:"shutdown_timeout"`
	// MaxHeaderBytes bounds request headers. Default 32768.
	MaxHeaderBytes int `mapstructure:"max_header_bytes"`
}

// UpstreamTransport configures the http.Transport that reaches upstreams.
type UpstreamTransport struct {
	// DialTimeout bounds connecting to an upstream. Default 3s.
	DialTimeout time.Duration `mapstructure:"dial_timeout"`
	// ResponseHeaderTimeout bounds waiting for an upstream's response
	// headers; a slower upstream gets a 504. Default 30s.
	ResponseHeaderTimeout time.Duration `mapstructure:"response_header_timeout"`
	// IdleConnTimeout closes idle upstream connections. Default 90s.
	IdleConnTimeout time.Duration `mapstructure:"idle_conn_timeout"`
	// MaxIdleConnsPerHost bounds the idle connections kept per upstream.
	// Default 256.
	MaxIdleConnsPerHost int `mapstructure:"max_idle_conns_per_host"`
	// Client is the HTTP client for http:// upstreams: "lean", Gatehouse's
	// own connection pool around net/http's request writer and response
	// parser (package upstream), or "stdlib", net/http's http.Transport.
	// https:// upstreams always use http.Transport. The settings above
	// mean the same in both. Default lean.
	Client string `mapstructure:"client"`
}

// defaults returns the configuration Load starts from.
func defaults() Config {
	return Config{
		Listen:        "127.0.0.1:4180",
		MetricsListen: "127.0.0.1:9180",
		OIDC: OIDC{
			Scopes:           []string{"openid", "email", "profile", "offline_access"},
			GroupsClaim:      "groups",
			DiscoveryTimeout: 10 * time.Second,
		},
		Cookie:        Cookie{Name: "gatehouse", Secure: true},
		Session:       Session{Store: "memory", IdleTimeout: 30 * time.Minute, MaxLifetime: 12 * time.Hour, MemoryMaxSessions: 100000, CacheTTL: 5 * time.Second, CacheMaxEntries: 100000},
		Redis:         Redis{KeyPrefix: "gatehouse", DialTimeout: 3 * time.Second, Timeout: time.Second},
		Token:         Token{TTL: 2 * time.Minute, Algorithm: "ES256", Header: "Authorization", Scheme: "Bearer"},
		Authorization: Authorization{RequireVerifiedEmail: true},
		API:           API{IntrospectionCacheTTL: time.Minute, IntrospectionRate: 20},
		Log:           Log{Format: "json", Level: "info", AccessLog: true},
		Server: Server{
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       60 * time.Second,
			IdleTimeout:       120 * time.Second,
			ShutdownTimeout:   25 * time.Second,
			MaxHeaderBytes:    32768,
		},
		UpstreamTransport: UpstreamTransport{
			DialTimeout:           3 * time.Second,
			ResponseHeaderTimeout: 30 * time.Second,
			IdleConnTimeout:       90 * time.Second,
			MaxIdleConnsPerHost:   256,
			Client:                "lean",
		},
	}
}

// CookieSecrets returns the cookie secrets, newest first, as bytes.
func (c *Config) CookieSecrets() [][]byte {
	out := make([][]byte, len(c.Cookie.Secrets))
	for i, s := range c.Cookie.Secrets {
		out[i] = []byte(s)
	}
	return out
}

// EffectiveRoutes returns the routes Gatehouse serves: the configured ones,
// each with Audience defaulted to its Name, or, when none are configured, one
// catch-all {Name: "default", PathPrefix: "/", Upstream: Upstream} whose
// audience is PublicURL's host (host:port), or "default" if it has none.
// The result is a copy.
func (c *Config) EffectiveRoutes() []Route {
	if len(c.Routes) == 0 {
		aud := "default"
		if u, err := url.Parse(c.PublicURL); err == nil && u.Host != "" {
			aud = u.Host
		}
		return []Route{{Name: "default", PathPrefix: "/", Upstream: c.Upstream, Audience: aud}}
	}
	out := make([]Route, len(c.Routes))
	for i, r := range c.Routes {
		r.AllowedGroups = append([]string(nil), r.AllowedGroups...)
		r.Groups = append([]string(nil), r.Groups...)
		if r.Claims != nil {
			claims := make(map[string]string, len(r.Claims))
			for k, v := range r.Claims {
				claims[k] = v
			}
			r.Claims = claims
		}
		if r.Audience == "" {
			r.Audience = r.Name
		}
		out[i] = r
	}
	return out
}

// LogValue logs the configuration with its secrets redacted.
func (c *Config) LogValue() slog.Value { return slog.AnyValue(c.Redacted()) }

// LogValue logs the OIDC settings with the client secret redacted.
func (o OIDC) LogValue() slog.Value { return slog.AnyValue(redactStruct(o)) }

// String formats the OIDC settings with the client secret redacted, so that
// printing a Config with %v or %+v does not leak it.
func (o OIDC) String() string { return formatRedacted(o) }

// GoString is String, for %#v.
func (o OIDC) GoString() string { return o.String() }

// LogValue logs the cookie settings with the secrets redacted.
func (c Cookie) LogValue() slog.Value { return slog.AnyValue(redactStruct(c)) }

// String formats the cookie settings with the secrets redacted.
func (c Cookie) String() string { return formatRedacted(c) }

// GoString is String, for %#v.
func (c Cookie) GoString() string { return c.String() }

// LogValue logs the Redis settings with the password redacted.
func (r Redis) LogValue() slog.Value { return slog.AnyValue(redactStruct(r)) }

// String formats the Redis settings with the password redacted.
func (r Redis) String() string { return formatRedacted(r) }

// GoString is String, for %#v.
func (r Redis) GoString() string { return r.String() }
