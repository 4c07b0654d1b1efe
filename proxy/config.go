package proxy

import (
	"context"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/gatehouse/gatehouse/oidcclient"
	"github.com/gatehouse/gatehouse/redirect"
	"github.com/gatehouse/gatehouse/sessionstore"
	"github.com/gatehouse/gatehouse/tokenmint"
)

// Config is everything the proxy needs, already parsed and validated,
// grouped by concern. Zero values take the defaults their comments give.
type Config struct {
	PublicURL *url.URL // Gatehouse's external base URL; required
	Prefix    string   // endpoint prefix; default "/oauth2"

	Cookie  CookieConfig
	Session SessionConfig
	Token   TokenConfig
	Login   LoginConfig
	Policy  Policy

	// Routes: the first match wins; at least one.
	Routes []*Route
	// TrustedProxies are the peers whose forwarding headers (X-Forwarded-*,
	// Forwarded, X-Real-IP) and forward-auth original-request headers are
	// believed. Empty = nobody.
	TrustedProxies []netip.Prefix

	// Transport reaches the upstreams. If nil, NewTransport's defaults are used.
	Transport http.RoundTripper
	Logger    *slog.Logger // nil = discard
	AccessLog bool
	Metrics   *Metrics // nil = no metrics
	// Tracing records a span per request, with children for the session
	// store, the provider and minting; nil = off, at no cost.
	Tracing trace.TracerProvider
	Now     func() time.Time
}

// CookieConfig is the browser side of sessions.
type CookieConfig struct {
	Name      string              // base name; "__Host-" is prepended when Secure
	Secure    bool                // Secure cookies (public URL is https)
	Codec     *sessionstore.Codec // session cookies; its max age should equal Session.MaxLifetime
	FlowCodec *sessionstore.Codec // login-flow cookies; short max age (10m)
}

// SessionConfig is the server side of sessions.
type SessionConfig struct {
	Store       Store
	IdleTimeout time.Duration // required
	MaxLifetime time.Duration // required
	// Meta seals what `gatehouse sessions list` shows of each session,
	// written at login; nil = nothing is recorded (operators then list and
	// end sessions by subject only).
	Meta *sessionstore.MetaKeys
}

// TokenConfig is the token handed to upstreams.
type TokenConfig struct {
	Minter Minter
	JWKS   http.Handler // serves /oauth2/jwks.json; nil = 404
	Header string       // default "Authorization"
	Scheme string       // default "Bearer" when Header is Authorization; "" = raw token
}

// LoginConfig is the OpenID Connect side: browser logins and native clients'
// bearer tokens.
type LoginConfig struct {
	Client LoginClient
	// ClientID is the client_id claim of browser sessions' minted tokens and
	// the client_id of RP-initiated logout.
	ClientID string
	// ProviderLogout: sign-out also ends the session at the provider.
	ProviderLogout bool
	// Bearer verifies native clients' access tokens. Nil = bearer tokens are
	// not accepted (a client's Authorization header is then just removed).
	Bearer BearerVerifier
	// Redirects validates rd after login and sign-out; required.
	Redirects *redirect.Policy
}

// Policy is the global authorization policy, applied on every route
// besides the route's own groups.
type Policy struct {
	EmailDomains  []string // the email's domain must be one of these; empty = any
	AllowedEmails []string // the email must be one of these; empty = any
	AllowedGroups []string // the user needs one of them; empty = any
	// RequireVerifiedEmail refuses a user whose provider sent an email
	// without email_verified: true (an upstream keyed by email could
	// otherwise be fooled by an unverified address).
	RequireVerifiedEmail bool
	// AllowedOrigins may send cookie-authenticated writes besides the
	// request's own origin and PublicURL's.
	AllowedOrigins []string
}

// Store keeps sessions server-side. It is every capability the proxy relies
// on, in one contract, so that no store and no wrapper around one can switch
// a feature off by lacking a method (sessionstore.Memory, Redis and Cached
// implement it; app checks that at compile time). Safe for concurrent use.
type Store interface {
	Save(ctx context.Context, t sessionstore.Ticket, s *sessionstore.Session) error
	// Load returns a copy the caller may modify; sessionstore.ErrNotFound
	// when there is no valid session.
	Load(ctx context.Context, t sessionstore.Ticket) (*sessionstore.Session, error)
	// LoadFresh is Load from the backing store, never a replica's cache:
	// the read of writers such as a refresh.
	LoadFresh(ctx context.Context, t sessionstore.Ticket) (*sessionstore.Session, error)
	// View is Load for readers: the session may be shared and must not be
	// modified (the copy-free read on the request path).
	View(ctx context.Context, t sessionstore.Ticket) (*sessionstore.Session, error)
	Touch(ctx context.Context, t sessionstore.Ticket, seen time.Time) error
	Delete(ctx context.Context, t sessionstore.Ticket) error
	// DeleteIfIdle ends the session only if the backing store, re-read,
	// also finds it idle at now (another replica may have seen it since
	// this one's copy); it reports whether it ended it.
	DeleteIfIdle(ctx context.Context, t sessionstore.Ticket, idle time.Duration, now time.Time) (bool, error)
	// Replace writes s only while the session still exists, so a refresh
	// cannot resurrect a revoked session.
	Replace(ctx context.Context, t sessionstore.Ticket, s *sessionstore.Session) error
	// TryLock takes a lock shared by every replica for ttl: one refresh per
	// session at a time (providers that rotate refresh tokens revoke the
	// grant on reuse).
	TryLock(ctx context.Context, t sessionstore.Ticket, ttl time.Duration) (bool, error)
	// DeleteBySubject and DeleteByProviderSID end sessions without their
	// cookie (back-channel logout, sign-out everywhere).
	DeleteBySubject(ctx context.Context, subject string) (int, error)
	DeleteByProviderSID(ctx context.Context, sid string) (int, error)
	// SaveMeta records, next to a session just saved, what an operator's
	// `gatehouse sessions` shows of it (sealed under a server-held key) and
	// indexes it by sid and email; sessionstore.ErrNotFound when the
	// session is gone. The memory store keeps nothing.
	SaveMeta(ctx context.Context, t sessionstore.Ticket, m sessionstore.SealedMeta) error
	// PutOnce keeps a value that TakeOnce returns once, on any replica,
	// within ttl (the multi-host sign-in's codes); TakeOnce answers
	// sessionstore.ErrNotFound when it is unknown, taken or expired.
	PutOnce(ctx context.Context, key string, value []byte, ttl time.Duration) error
	TakeOnce(ctx context.Context, key string) ([]byte, error)
	// MarkUsed and UnmarkUsed remember one-shot tokens (back-channel logout
	// tokens' jti) on every replica until they expire; see backchannel.go.
	oneShotStore
}

// Minter signs the tokens upstreams receive. Safe for concurrent use.
type Minter interface {
	Mint(ctx context.Context, cacheKey, audience string, id *tokenmint.Identity) (tokenmint.Token, error)
	Forget(cacheKey string)
}

// LoginClient is the OpenID Connect relying party (oidcclient.Client).
// Safe for concurrent use.
type LoginClient interface {
	AuthCodeURL(state, nonce, verifier string) (string, error)
	Exchange(ctx context.Context, code, verifier, nonce string) (*oidcclient.Result, error)
	// Refresh renews a session's provider tokens.
	Refresh(ctx context.Context, refreshToken string, prev oidcclient.Identity) (*oidcclient.Result, error)
	// VerifyLogout verifies a back-channel logout token.
	VerifyLogout(ctx context.Context, raw string) (*oidcclient.Logout, error)
	// EndSessionURL is the provider's RP-initiated logout endpoint, or "".
	EndSessionURL() string
}

// BearerVerifier verifies the identity provider's access tokens that native
// and API clients present (oidcclient.Client). Errors wrapping
// oidcclient.ErrInvalidToken mean the token is bad (401); any other error
// means it could not be checked (503). Safe for concurrent use.
type BearerVerifier interface {
	VerifyAccessToken(ctx context.Context, raw string) (*oidcclient.Bearer, error)
}
