// Package oidcclient is Gatehouse's OpenID Connect relying party: discovery with
// retries, the authorization-code flow with PKCE, ID-token verification and
// refresh, on top of coreos/go-oidc and golang.org/x/oauth2; and the checks of
// the tokens the provider's other clients present: access tokens of native
// clients (VerifyAccessToken) and back-channel logout tokens (VerifyLogout).
//
// Errors of the verifiers say whose fault a refusal is: ErrInvalidToken when
// the token itself is bad (401 or 400), ErrUnavailable when it could not be
// checked because the provider or its keys cannot be reached (503).
package oidcclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"

	"github.com/gatehouse/gatehouse/internal/jwks"
)

var (
	// ErrUnavailable is wrapped by every error that means the provider could
	// not be asked: discovery has not succeeded, or its keys cannot be
	// fetched. A token refused with it may well be good: answer 503, so a
	// client (or a provider delivering a logout token) retries.
	ErrUnavailable = errors.New("oidcclient: identity provider unavailable")
	// ErrNotReady is returned while discovery has not succeeded yet. It wraps
	// ErrUnavailable.
	ErrNotReady = fmt.Errorf("%w: not discovered yet", ErrUnavailable)
	// ErrInvalidToken is wrapped by every refusal of an access or logout
	// token that is the token's fault: malformed, forged, expired, of the
	// wrong type or audience. Never by a refusal for want of keys.
	ErrInvalidToken = errors.New("oidcclient: invalid token")
)

// Config configures a Client.
type Config struct {
	Issuer       string
	ClientID     string
	ClientSecret string
	RedirectURL  string   // Gatehouse's callback URL
	Scopes       []string // "openid" is added when missing
	// GroupsClaim is the claim path (see ClaimPath) of the user's groups;
	// default "groups". GroupsClaims are more paths, merged with it
	// without duplicates (Keycloak's realm and client roles, say). When
	// none of them is in the ID token, the groups come from the userinfo
	// endpoint, at login and at every refresh.
	GroupsClaim  string
	GroupsClaims []string
	// AcceptedAudiences are the aud values a bearer access token from a
	// native client may carry (api.accepted_audiences). Empty = only ID
	// tokens of AcceptIDTokens, if any, are accepted as bearer tokens.
	AcceptedAudiences []string
	// AcceptIDTokens are audiences (client ids) whose ID tokens are accepted
	// as bearer tokens (api.accept_id_tokens), for providers whose access
	// tokens are opaque. Empty = ID tokens are refused as bearer tokens.
	AcceptIDTokens []string
	// KeyRefreshInterval bounds how often tokens with unknown kids refetch
	// the provider's JWKS; a failed fetch is retried sooner (after 1s,
	// doubling up to this). Zero = 10s.
	KeyRefreshInterval time.Duration
	// HTTPClient talks to the provider. If nil, a client with a 10s timeout is used.
	HTTPClient *http.Client
	Logger     *slog.Logger // nil = discard
	Now        func() time.Time
}

// Identity is what Gatehouse keeps of a verified login.
type Identity struct {
	Subject, Email    string
	EmailVerified     bool
	Name              string
	PreferredUsername string
	Groups            []string
	ProviderSID       string
	AuthTime          time.Time
	Claims            map[string]any // every ID-token claim, for claim mappings
}

// Result is a verified login or refresh: the identity and the provider's tokens.
type Result struct {
	Identity     Identity
	IDToken      string
	AccessToken  string
	RefreshToken string
	Expiry       time.Time
}

type discovered struct {
	provider *oidc.Provider
	verifier *oidc.IDTokenVerifier // ID tokens of logins and refreshes
	keys     *keySet               // the provider's keys, for every token
	oauth2   oauth2.Config
	endSess  string
}

// Client is safe for concurrent use. It becomes usable once Discover succeeds.
type Client struct {
	cfg   Config
	log   *slog.Logger
	state atomic.Pointer[discovered]
	err   atomic.Pointer[error]
	// groups are GroupsClaim and GroupsClaims, parsed.
	groups []ClaimPath
}

// New returns a Client; call Discover (or Run) before use.
func New(cfg Config) *Client {
	if cfg.GroupsClaim == "" {
		cfg.GroupsClaim = "groups"
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.KeyRefreshInterval <= 0 {
		cfg.KeyRefreshInterval = 10 * time.Second
	}
	hasOpenID := false
	for _, s := range cfg.Scopes {
		hasOpenID = hasOpenID || s == oidc.ScopeOpenID
	}
	if !hasOpenID {
		cfg.Scopes = append([]string{oidc.ScopeOpenID}, cfg.Scopes...)
	}
	c := &Client{cfg: cfg, log: cfg.Logger}
	c.groups = mustClaimPaths(append([]string{cfg.GroupsClaim}, cfg.GroupsClaims...))
	c.setErr(ErrNotReady)
	return c
}

func (c *Client) setErr(err error) { c.err.Store(&err) }

// Ready reports nil once the provider has been discovered, else why not.
func (c *Client) Ready() error {
	if c.state.Load() != nil {
		return nil
	}
	return *c.err.Load()
}

// Discover fetches the provider's metadata and its signing keys once; it
// succeeds only when both could be had, so a fresh replica never serves
// with a key set that a stranger's requests could keep from loading. Later
// key fetches (rotation, refresh) run on their own contexts: ctx is only
// used until Discover returns. Errors wrap ErrUnavailable.
func (c *Client) Discover(ctx context.Context) error {
	ctx = oidc.ClientContext(ctx, c.cfg.HTTPClient)
	p, err := oidc.NewProvider(ctx, c.cfg.Issuer)
	if err != nil {
		err = fmt.Errorf("%w: discovery of %s: %w", ErrUnavailable, c.cfg.Issuer, err)
		c.setErr(err)
		return err
	}
	var meta struct {
		EndSession string   `json:"end_session_endpoint"`
		JWKSURL    string   `json:"jwks_uri"`
		Algs       []string `json:"id_token_signing_alg_values_supported"`
	}
	if err := p.Claims(&meta); err != nil || meta.JWKSURL == "" {
		err = fmt.Errorf("%w: discovery of %s: no jwks_uri", ErrUnavailable, c.cfg.Issuer)
		c.setErr(err)
		return err
	}
	// Pinned algorithms: what the provider advertises, asymmetric only
	// (an HS256 token "signed" with a public key must never verify).
	var algs []string
	var joseAlgs []jose.SignatureAlgorithm
	for _, a := range meta.Algs {
		if asymmetric[a] {
			algs = append(algs, a)
			joseAlgs = append(joseAlgs, jose.SignatureAlgorithm(a))
		}
	}
	if len(algs) == 0 {
		algs, joseAlgs = []string{"RS256"}, []jose.SignatureAlgorithm{jose.RS256}
	}
	cache, err := jwks.New(jwks.Config{
		URL:         meta.JWKSURL,
		Client:      c.cfg.HTTPClient,
		MinInterval: c.cfg.KeyRefreshInterval,
		Logger:      c.log,
		Now:         c.cfg.Now,
	})
	if err == nil {
		err = cache.Refresh(ctx)
	}
	if err != nil {
		err = fmt.Errorf("%w: discovery of %s: signing keys: %w", ErrUnavailable, c.cfg.Issuer, err)
		c.setErr(err)
		return err
	}
	ks := &keySet{cache: cache, algs: joseAlgs}
	d := &discovered{
		provider: p,
		verifier: oidc.NewVerifier(c.cfg.Issuer, ks, &oidc.Config{ClientID: c.cfg.ClientID, Now: c.cfg.Now, SupportedSigningAlgs: algs}),
		keys:     ks,
		oauth2: oauth2.Config{
			ClientID:     c.cfg.ClientID,
			ClientSecret: c.cfg.ClientSecret,
			RedirectURL:  c.cfg.RedirectURL,
			Endpoint:     p.Endpoint(),
			Scopes:       c.cfg.Scopes,
		},
		endSess: meta.EndSession,
	}
	c.state.Store(d)
	return nil
}

// Run retries discovery with capped exponential backoff until it succeeds or
// ctx ends. Gatehouse starts serving meanwhile; /readyz reports the reason.
func (c *Client) Run(ctx context.Context) {
	if c.state.Load() != nil {
		return // already discovered
	}
	backoff := 500 * time.Millisecond
	for {
		err := c.Discover(ctx)
		if err == nil {
			c.log.Info("openid provider discovered", "issuer", c.cfg.Issuer)
			return
		}
		c.log.Error("openid provider discovery failed; retrying", "issuer", c.cfg.Issuer, "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 30*time.Second)
	}
}

func (c *Client) ready() (*discovered, error) {
	d := c.state.Load()
	if d == nil {
		return nil, c.Ready()
	}
	return d, nil
}

// AuthCodeURL returns the provider URL that starts a login, with state, nonce
// and the PKCE S256 challenge of verifier.
func (c *Client) AuthCodeURL(state, nonce, verifier string) (string, error) {
	d, err := c.ready()
	if err != nil {
		return "", err
	}
	return d.oauth2.AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)), nil
}

// Exchange redeems code, verifies the ID token (signature, issuer, audience,
// expiry, nonce) and returns the identity and tokens.
func (c *Client) Exchange(ctx context.Context, code, verifier, nonce string) (*Result, error) {
	d, err := c.ready()
	if err != nil {
		return nil, err
	}
	ctx = oidc.ClientContext(ctx, c.cfg.HTTPClient)
	tok, err := d.oauth2.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		return nil, fmt.Errorf("oidcclient: redeeming code: %w", err)
	}
	res, err := c.verify(ctx, d, tok)
	if err != nil {
		return nil, err
	}
	if res.nonce != nonce || nonce == "" {
		return nil, errors.New("oidcclient: ID token nonce does not match the login flow")
	}
	if !res.groupsFound {
		c.groupsFromUserinfo(ctx, d, &res.Result, false)
	}
	return &res.Result, nil
}

// Refresh uses a refresh token. The provider may omit a new ID token; then
// prev's identity is kept, but for groups the userinfo endpoint answers.
func (c *Client) Refresh(ctx context.Context, refreshToken string, prev Identity) (*Result, error) {
	d, err := c.ready()
	if err != nil {
		return nil, err
	}
	ctx = oidc.ClientContext(ctx, c.cfg.HTTPClient)
	tok, err := d.oauth2.TokenSource(ctx, &oauth2.Token{RefreshToken: refreshToken}).Token()
	if err != nil {
		return nil, fmt.Errorf("oidcclient: refreshing: %w", err)
	}
	if _, ok := tok.Extra("id_token").(string); !ok {
		r := &Result{Identity: prev, AccessToken: tok.AccessToken, RefreshToken: keep(tok.RefreshToken, refreshToken), Expiry: tok.Expiry}
		c.groupsFromUserinfo(ctx, d, r, true)
		return r, nil
	}
	res, err := c.verify(ctx, d, tok)
	if err != nil {
		return nil, err
	}
	if res.Identity.Subject != prev.Subject {
		return nil, errors.New("oidcclient: refreshed ID token names another subject")
	}
	if !res.groupsFound {
		res.Identity.Groups = prev.Groups
		c.groupsFromUserinfo(ctx, d, &res.Result, false)
	}
	res.RefreshToken = keep(res.RefreshToken, refreshToken)
	return &res.Result, nil
}

func keep(newTok, old string) string {
	if newTok != "" {
		return newTok
	}
	return old
}

// EndSessionURL is the provider's RP-initiated logout URL, or "" when the
// provider does not advertise one.
func (c *Client) EndSessionURL() string {
	if d := c.state.Load(); d != nil {
		return d.endSess
	}
	return ""
}

type verified struct {
	Result
	nonce       string
	groupsFound bool // a group path was in the ID token
}

func (c *Client) verify(ctx context.Context, d *discovered, tok *oauth2.Token) (*verified, error) {
	raw, ok := tok.Extra("id_token").(string)
	if !ok || raw == "" {
		return nil, errors.New("oidcclient: token response has no id_token")
	}
	idt, err := d.verifier.Verify(ctx, raw)
	if err != nil {
		return nil, fmt.Errorf("oidcclient: verifying ID token: %w", err)
	}
	// go-oidc reads a string "exp" as a date; RFC 7519 does not.
	var payload json.RawMessage
	if err := idt.Claims(&payload); err != nil {
		return nil, fmt.Errorf("oidcclient: decoding claims: %w", err)
	}
	if _, err := parseClaims(payload); err != nil {
		return nil, fmt.Errorf("oidcclient: ID token: %w", err)
	}
	if idt.AccessTokenHash != "" {
		if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
			return nil, fmt.Errorf("oidcclient: at_hash: %w", err)
		}
	}
	var all map[string]any
	if err := idt.Claims(&all); err != nil {
		return nil, fmt.Errorf("oidcclient: decoding claims: %w", err)
	}
	id, groupsFound := c.identity(all)
	id.Subject = idt.Subject
	return &verified{
		Result: Result{
			Identity:     id,
			IDToken:      raw,
			AccessToken:  tok.AccessToken,
			RefreshToken: tok.RefreshToken,
			Expiry:       tok.Expiry,
		},
		nonce:       idt.Nonce,
		groupsFound: groupsFound,
	}, nil
}

// IdentityFromClaims reads the standard claims from a decoded JWT claim set.
// groupsClaim is a claim path (see ClaimPath); the value there may be an
// array of strings or one string.
func IdentityFromClaims(all map[string]any, groupsClaim string) Identity {
	str := func(k string) string { s, _ := all[k].(string); return s }
	id := Identity{
		Subject:           str("sub"),
		Email:             str("email"),
		Name:              str("name"),
		PreferredUsername: str("preferred_username"),
		ProviderSID:       str("sid"),
		Claims:            all,
	}
	switch v := all["email_verified"].(type) {
	case bool:
		id.EmailVerified = v
	case string:
		id.EmailVerified = v == "true"
	}
	if at, ok := all["auth_time"].(float64); ok && at > 0 {
		id.AuthTime = time.Unix(int64(at), 0)
	}
	id.Groups, _ = groupsAt(all, mustClaimPaths([]string{groupsClaim}))
	return id
}

var asymmetric = map[string]bool{
	"RS256": true, "RS384": true, "RS512": true, "PS256": true, "PS384": true, "PS512": true,
	"ES256": true, "ES384": true, "ES512": true, "EdDSA": true,
}
