// Package devidp is a development OpenID Provider, built on zitadel/oidc's op
// package, that `gatehouse demo` and the end-to-end tests log in against.
//
// It is a real provider, not a canned-JSON fake: discovery, a browser login
// page, the authorization code grant with PKCE, refresh token rotation, JWT
// access tokens, userinfo, JWKS, RP-initiated and back-channel logout,
// revocation, introspection and the device authorization grant all run
// through the op package's protocol code. Users, clients, grants and the RS256
// signing key live in memory and vanish with the process, so it must never
// stand in for a production identity provider.
//
// A public client (no secret) must use PKCE, and any client that sends a
// code_challenge must use S256. There is no single sign-on session: every
// authorization request shows the login form, and prompt=none is answered
// with login_required. Refresh tokens rotate on every use, and presenting a
// rotated-out one again revokes the whole grant (RFC 9700 4.14.2), so a
// relying party that refreshes one grant twice concurrently loses it.
//
// Paths, relative to the issuer (which must have no path of its own):
//
//	/.well-known/openid-configuration   discovery
//	/authorize                          authorization endpoint; redirects to /login
//	/login?auth_request_id=ID           the login form (GET) and its submission (POST)
//	/authorize/callback?id=ID           where a successful login continues
//	/oauth/token                        token endpoint
//	/userinfo, /keys                    userinfo, JWKS
//	/end_session                        RP-initiated logout; /logged-out is the default landing page
//	/revoke, /oauth/introspect          RFC 7009 revocation, RFC 7662 introspection
//	/device_authorization, /device      RFC 8628 device grant and its user page
//	/healthz, /ready                    probes
package devidp

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// Defaults for the zero values of Config's lifetimes.
const (
	DefaultAccessTokenLifetime  = 5 * time.Minute
	DefaultIDTokenLifetime      = 5 * time.Minute
	DefaultRefreshTokenLifetime = 24 * time.Hour
)

const (
	// ScopeGroups asks for the groups claim; the profile scope implies it.
	ScopeGroups = "groups"
	// ClaimGroups is the claim that lists a user's groups.
	ClaimGroups = "groups"

	// maxBodyBytes bounds every request body the provider reads; the op
	// package parses forms without a limit of its own.
	maxBodyBytes = 64 << 10
	// deviceGrantLifetime is how long a device code waits for its user.
	deviceGrantLifetime = 5 * time.Minute
	// devicePollInterval is short because a development provider answers at
	// once and tests should not sit out RFC 8628's default of five seconds.
	devicePollInterval = time.Second
)

// User is an account that can sign in at the provider.
type User struct {
	// ID is the stable subject (sub claim). Empty means Username.
	ID string
	// Username and Password are what the login form accepts; both are
	// required and compared exactly.
	Username, Password string
	// Email is emitted as email, EmailVerified as email_verified, with the
	// email scope.
	Email         string
	EmailVerified bool
	// Name, GivenName, FamilyName and PreferredUsername are emitted with the
	// profile scope. An empty Name is GivenName and FamilyName joined; an
	// empty PreferredUsername is Username.
	Name, GivenName, FamilyName, PreferredUsername string
	// Groups is emitted as the groups claim in the ID token, userinfo and
	// JWT access tokens when the scope includes "groups" or "profile"; as an
	// empty list when the user has none.
	Groups []string
	// GroupsInUserinfoOnly leaves the groups claim out of ID tokens, as
	// Okta's org authorization server and others do: a relying party must
	// ask the userinfo endpoint.
	GroupsInUserinfoOnly bool
}

// LogValue implements slog.LogValuer so a logged User never shows its password.
func (u User) LogValue() slog.Value {
	return slog.GroupValue(slog.String("id", u.ID), slog.String("username", u.Username))
}

// Client is a registered relying party.
type Client struct {
	// ID is the client_id; required and unique.
	ID string
	// Secret authenticates a confidential client with client_secret_basic or
	// client_secret_post. Empty makes a public native client: no secret
	// (token_endpoint_auth_method none) and PKCE with S256 required.
	Secret string
	// RedirectURIs are the exact redirect_uri values accepted; a public
	// client's loopback URIs match on any port (RFC 8252). A client without
	// any can still use the device grant.
	RedirectURIs []string
	// PostLogoutRedirectURIs are the exact post_logout_redirect_uri values
	// accepted at end_session.
	PostLogoutRedirectURIs []string
	// BackchannelLogoutURI, if set, receives an OpenID Connect Back-Channel
	// Logout token (a form POST with logout_token) whenever a session of this
	// client ends at the provider: end_session with an id_token_hint, or
	// Provider.SignOutUser. Empty means the client is not told.
	BackchannelLogoutURI string
}

// LogValue implements slog.LogValuer so a logged Client never shows its secret.
func (c Client) LogValue() slog.Value {
	return slog.GroupValue(slog.String("id", c.ID), slog.Bool("public", c.Secret == ""))
}

// Config configures a Provider. Users and Clients are copied by New; later
// changes to the slices have no effect.
type Config struct {
	// Issuer is the provider's absolute base URL, http or https, without a
	// path or trailing slash, e.g. "http://127.0.0.1:43123". Required by
	// New; Start fills it from its listener when empty.
	Issuer string
	// Users can sign in; at least one is required.
	Users []User
	// Clients may ask for tokens; at least one is required.
	Clients []Client
	// AccessTokenLifetime is the lifetime of the JWT access tokens (aud is
	// the client_id). Zero means DefaultAccessTokenLifetime.
	AccessTokenLifetime time.Duration
	// IDTokenLifetime is the lifetime of ID tokens. Zero means
	// DefaultIDTokenLifetime.
	IDTokenLifetime time.Duration
	// RefreshTokenLifetime is how long a refresh token stays usable; every
	// use rotates it and starts a new lifetime. Zero means
	// DefaultRefreshTokenLifetime.
	RefreshTokenLifetime time.Duration
	// ShowHints prints the configured usernames and passwords on the login
	// page, for demos. Never set it where the accounts mean anything.
	ShowHints bool
	// Logger receives the provider's own events (logins, logouts,
	// back-channel deliveries), never a password, token or secret. Nil
	// discards them. The op package logs protocol errors to slog.Default.
	Logger *slog.Logger
}

// LogValue implements slog.LogValuer so a logged Config shows no passwords or secrets.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("issuer", c.Issuer),
		slog.Int("users", len(c.Users)),
		slog.Int("clients", len(c.Clients)),
		slog.Bool("show_hints", c.ShowHints),
	)
}

// Provider is an OpenID Provider. It is an http.Handler serving every
// endpoint under its issuer; build it with New, or run it with Start.
// It is safe for concurrent use.
type Provider struct {
	issuer  string
	log     *slog.Logger
	op      *op.Provider
	store   *storage
	key     *signingKey
	handler http.Handler
	login   *loginUI
	// backchannel delivers logout tokens; it never follows redirects.
	backchannel *http.Client
}

var _ http.Handler = (*Provider)(nil)

// New validates cfg, generates a fresh RS256 signing key and returns the
// Provider. Every problem in cfg is reported together.
func New(cfg Config) (*Provider, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("devidp: generating signing key: %w", err)
	}
	key, err := newSigningKey(rsaKey)
	if err != nil {
		return nil, err
	}
	// The op package encrypts authorization codes with this key; nothing
	// outlives the process, so a random one per Provider is right.
	var cryptoKey [32]byte
	if _, err := rand.Read(cryptoKey[:]); err != nil {
		return nil, fmt.Errorf("devidp: generating code encryption key: %w", err)
	}

	p := &Provider{
		issuer: cfg.Issuer,
		log:    logger,
		key:    key,
		backchannel: &http.Client{
			Timeout: 5 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		},
	}
	p.store = newStorage(cfg, key, logger)

	opConfig := &op.Config{
		CryptoKey:                         cryptoKey,
		CryptoKeyId:                       "devidp",
		DefaultLogoutRedirectURI:          pathLoggedOut,
		CodeMethodS256:                    true,
		AuthMethodPost:                    true,
		GrantTypeRefreshToken:             true,
		SupportedScopes:                   []string{oidc.ScopeOpenID, oidc.ScopeProfile, oidc.ScopeEmail, oidc.ScopeOfflineAccess, ScopeGroups},
		SupportedClaims:                   append(append([]string(nil), op.DefaultSupportedClaims...), ClaimGroups, "sid"),
		BackChannelLogoutSupported:        true,
		BackChannelLogoutSessionSupported: true,
		DeviceAuthorization: op.DeviceAuthorizationConfig{
			Lifetime:     deviceGrantLifetime,
			PollInterval: devicePollInterval,
			UserFormPath: pathDevice,
			UserCode:     op.UserCodeBase20,
		},
	}
	p.op, err = op.NewProvider(opConfig, p.store, op.StaticIssuer(cfg.Issuer), op.WithAllowInsecure())
	if err != nil {
		return nil, fmt.Errorf("devidp: building provider: %w", err)
	}
	p.store.sessionsEnded = p.deliverLogouts

	p.login = newLoginUI(p, cfg)
	mux := http.NewServeMux()
	mux.HandleFunc(pathLogin, p.login.serveLogin)
	mux.HandleFunc(pathDevice, p.login.serveDevice)
	mux.HandleFunc(pathLoggedOut, p.login.serveLoggedOut)
	mux.Handle("/", p.op)
	p.handler = mux
	return p, nil
}

// ServeHTTP serves every endpoint of the provider.
func (p *Provider) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Body != nil {
		r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
	}
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	p.handler.ServeHTTP(rec, r)
	// The path only: queries carry codes, states and auth request ids.
	p.log.LogAttrs(r.Context(), slog.LevelDebug, "devidp: request",
		slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Int("status", rec.status))
}

// Issuer returns the issuer URL, as in discovery and the iss claim.
func (p *Provider) Issuer() string { return p.issuer }

// RevokeAll forgets every grant: refresh tokens, the records behind access
// tokens (so userinfo and introspection reject them; the JWTs themselves
// stay verifiable until they expire, as with any provider) and sessions.
// Logins in progress are unaffected. No back-channel logout is sent.
func (p *Provider) RevokeAll() { p.store.revokeAll() }

// SignOutUser ends every session of the user with this username, as if they
// had signed out at the provider: their refresh tokens stop working and
// every client with a BackchannelLogoutURI that holds one of the sessions
// receives a logout token before SignOutUser returns. It reports delivery
// failures; an unknown username is an error.
func (p *Provider) SignOutUser(ctx context.Context, username string) error {
	ended, err := p.store.endUserSessions(username)
	if err != nil {
		return err
	}
	return p.deliverLogouts(ctx, ended)
}

// DemoUsers returns the demo accounts: alice/alice (groups admins and
// developers), bob/bob (developers) and carol/carol (no groups, email not
// verified).
func DemoUsers() []User {
	return []User{
		{
			ID:       "5f3c1b9e-8a2d-4c71-9e64-0b7d2a1f4c01",
			Username: "alice", Password: "alice",
			Email: "alice@example.com", EmailVerified: true,
			Name: "Alice Liddell", GivenName: "Alice", FamilyName: "Liddell", PreferredUsername: "alice",
			Groups: []string{"admins", "developers"},
		},
		{
			ID:       "9b2e7d40-3f1a-4e8c-b5d6-71c0e9a3b202",
			Username: "bob", Password: "bob",
			Email: "bob@example.com", EmailVerified: true,
			Name: "Bob Builder", GivenName: "Bob", FamilyName: "Builder", PreferredUsername: "bob",
			Groups: []string{"developers"},
		},
		{
			ID:       "c4a81f6d-2b9e-4d03-8f75-e6b1d0c2a303",
			Username: "carol", Password: "carol",
			Email: "carol@example.com", EmailVerified: false,
			Name: "Carol Danvers", GivenName: "Carol", FamilyName: "Danvers", PreferredUsername: "carol",
		},
	}
}

// validate reports every problem in c at once, naming the field.
func (c Config) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if c.Issuer == "" {
		bad("issuer: required")
	} else if u, err := url.Parse(c.Issuer); err != nil {
		bad("issuer %q: %w", c.Issuer, err)
	} else if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		u.Path != "" || strings.ContainsAny(c.Issuer, "?#") {
		bad("issuer %q: must be an absolute http(s) URL without userinfo, path, query or trailing slash", c.Issuer)
	}

	if len(c.Users) == 0 {
		bad("users: at least one is required")
	}
	usernames := make(map[string]bool, len(c.Users))
	ids := make(map[string]bool, len(c.Users))
	for i, u := range c.Users {
		if u.Username == "" {
			bad("users[%d].username: required", i)
		} else if usernames[u.Username] {
			bad("users[%d].username %q: duplicate", i, u.Username)
		}
		usernames[u.Username] = true
		if u.Password == "" {
			bad("users[%d].password: required", i)
		}
		id := u.ID
		if id == "" {
			id = u.Username
		}
		if id != "" && ids[id] {
			bad("users[%d].id %q: duplicate", i, id)
		}
		ids[id] = true
	}

	if len(c.Clients) == 0 {
		bad("clients: at least one is required")
	}
	clientIDs := make(map[string]bool, len(c.Clients))
	for i, cl := range c.Clients {
		if cl.ID == "" {
			bad("clients[%d].id: required", i)
		} else if clientIDs[cl.ID] {
			bad("clients[%d].id %q: duplicate", i, cl.ID)
		}
		clientIDs[cl.ID] = true
		for j, uri := range cl.RedirectURIs {
			if err := checkClientURI(uri); err != nil {
				bad("clients[%d].redirect_uris[%d] %q: %w", i, j, uri, err)
			}
		}
		for j, uri := range cl.PostLogoutRedirectURIs {
			if err := checkClientURI(uri); err != nil {
				bad("clients[%d].post_logout_redirect_uris[%d] %q: %w", i, j, uri, err)
			}
		}
		if cl.BackchannelLogoutURI != "" {
			if u, err := url.Parse(cl.BackchannelLogoutURI); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Fragment != "" {
				bad("clients[%d].backchannel_logout_uri %q: must be an absolute http(s) URL without fragment", i, cl.BackchannelLogoutURI)
			}
		}
	}

	for name, d := range map[string]time.Duration{
		"access_token_lifetime":  c.AccessTokenLifetime,
		"id_token_lifetime":      c.IDTokenLifetime,
		"refresh_token_lifetime": c.RefreshTokenLifetime,
	} {
		if d < 0 {
			bad("%s %v: must not be negative", name, d)
		}
	}

	if len(errs) > 0 {
		return fmt.Errorf("devidp: invalid configuration: %w", errors.Join(errs...))
	}
	return nil
}

// checkClientURI accepts an absolute URI without a fragment (RFC 6749 3.1.2);
// a native client's custom scheme such as com.example.app:/cb is absolute too.
func checkClientURI(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	if u.Scheme == "" {
		return errors.New("must be absolute")
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return errors.New("must not have a fragment")
	}
	if (u.Scheme == "http" || u.Scheme == "https") && u.Host == "" {
		return errors.New("must have a host")
	}
	return nil
}

// statusRecorder remembers the status code for the request log.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
