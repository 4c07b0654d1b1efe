// Package oidcclient is Gatehouse's OpenID Connect relying party: discovery with
// retries, the authorization-code flow with PKCE, ID-token verification and
// refresh, on top of coreos/go-oidc and golang.org/x/oauth2.
package oidcclient

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"
)

// ErrNotReady is returned while discovery has not succeeded yet.
var ErrNotReady = errors.New("oidcclient: provider not discovered yet")

// Config configures a Client.
type Config struct {
	Issuer       string
	ClientID     string
	ClientSecret string
	RedirectURL  string   // Gatehouse's callback URL
	Scopes       []string // "openid" is added when missing
	GroupsClaim  string   // default "groups"
	// AcceptedAudiences are the aud values a bearer access token from a
	// native client may carry (api.accepted_audiences). Empty = bearer
	// tokens are refused.
	AcceptedAudiences []string
	// KeyRefreshInterval bounds how often an unknown kid refetches the
	// provider's JWKS. Zero = 10s.
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
	verifier *oidc.IDTokenVerifier
	bearer   *oidc.IDTokenVerifier // checks iss, exp and signature; aud checked by VerifyAccessToken
	oauth2   oauth2.Config
	endSess  string
}

// Client is safe for concurrent use. It becomes usable once Discover succeeds.
type Client struct {
	cfg   Config
	log   *slog.Logger
	state atomic.Pointer[discovered]
	err   atomic.Pointer[error]
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

// Discover fetches the provider's metadata once. The keys are fetched later,
// through a context derived from ctx, so ctx must live as long as the Client.
func (c *Client) Discover(ctx context.Context) error {
	ctx = oidc.ClientContext(ctx, c.cfg.HTTPClient)
	p, err := oidc.NewProvider(ctx, c.cfg.Issuer)
	if err != nil {
		err = fmt.Errorf("oidcclient: discovery of %s: %w", c.cfg.Issuer, err)
		c.setErr(err)
		return err
	}
	var meta struct {
		EndSession string   `json:"end_session_endpoint"`
		JWKSURL    string   `json:"jwks_uri"`
		Algs       []string `json:"id_token_signing_alg_values_supported"`
	}
	if err := p.Claims(&meta); err != nil || meta.JWKSURL == "" {
		err = fmt.Errorf("oidcclient: discovery of %s: no jwks_uri", c.cfg.Issuer)
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
	ks := &keySet{url: meta.JWKSURL, client: c.cfg.HTTPClient, algs: joseAlgs, minInterval: c.cfg.KeyRefreshInterval, now: c.cfg.Now}
	d := &discovered{
		provider: p,
		verifier: oidc.NewVerifier(c.cfg.Issuer, ks, &oidc.Config{ClientID: c.cfg.ClientID, Now: c.cfg.Now, SupportedSigningAlgs: algs}),
		bearer:   oidc.NewVerifier(c.cfg.Issuer, ks, &oidc.Config{SkipClientIDCheck: true, Now: c.cfg.Now, SupportedSigningAlgs: algs}),
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
	return &res.Result, nil
}

// Refresh uses a refresh token. The provider may omit a new ID token; then
// prev's identity is kept.
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
		return &Result{Identity: prev, AccessToken: tok.AccessToken, RefreshToken: keep(tok.RefreshToken, refreshToken), Expiry: tok.Expiry}, nil
	}
	res, err := c.verify(ctx, d, tok)
	if err != nil {
		return nil, err
	}
	if res.Identity.Subject != prev.Subject {
		return nil, errors.New("oidcclient: refreshed ID token names another subject")
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
	nonce string
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
	if idt.AccessTokenHash != "" {
		if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
			return nil, fmt.Errorf("oidcclient: at_hash: %w", err)
		}
	}
	var all map[string]any
	if err := idt.Claims(&all); err != nil {
		return nil, fmt.Errorf("oidcclient: decoding claims: %w", err)
	}
	id := IdentityFromClaims(all, c.cfg.GroupsClaim)
	id.Subject = idt.Subject
	return &verified{
		Result: Result{
			Identity:     id,
			IDToken:      raw,
			AccessToken:  tok.AccessToken,
			RefreshToken: tok.RefreshToken,
			Expiry:       tok.Expiry,
		},
		nonce: idt.Nonce,
	}, nil
}

// IdentityFromClaims reads the standard claims from a decoded JWT claim set.
// The groups claim may be an array of strings or one string.
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
	switch g := all[groupsClaim].(type) {
	case []any:
		for _, v := range g {
			if s, ok := v.(string); ok && s != "" {
				id.Groups = append(id.Groups, s)
			}
		}
	case string:
		if g != "" {
			id.Groups = []string{g}
		}
	}
	return id
}

var asymmetric = map[string]bool{
	"RS256": true, "RS384": true, "RS512": true, "PS256": true, "PS384": true, "PS512": true,
	"ES256": true, "ES384": true, "ES512": true, "EdDSA": true,
}

// ErrInvalidToken is wrapped by every bearer-token refusal.
var ErrInvalidToken = errors.New("oidcclient: invalid bearer token")

// Bearer is a verified access token from a native or API client.
type Bearer struct {
	Identity Identity
	ClientID string // client_id, else azp
	Expiry   time.Time
}

// VerifyAccessToken verifies an access token a native client presents:
// signature by the provider's keys with its pinned algorithms, issuer,
// expiry, and an aud among AcceptedAudiences. ID tokens and logout tokens
// are refused: they are not meant to authorize API calls.
func (c *Client) VerifyAccessToken(ctx context.Context, raw string) (*Bearer, error) {
	if len(c.cfg.AcceptedAudiences) == 0 {
		return nil, fmt.Errorf("%w: bearer tokens are not accepted (api.accepted_audiences is empty)", ErrInvalidToken)
	}
	d, err := c.ready()
	if err != nil {
		return nil, err
	}
	if typ := tokenType(raw); typ != "" && typ != "jwt" && typ != "at+jwt" && typ != "application/at+jwt" {
		return nil, fmt.Errorf("%w: token type %q", ErrInvalidToken, typ)
	}
	tok, err := d.bearer.Verify(oidc.ClientContext(ctx, c.cfg.HTTPClient), raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	ok := false
	for _, a := range tok.Audience {
		for _, want := range c.cfg.AcceptedAudiences {
			ok = ok || a == want
		}
	}
	if !ok {
		return nil, fmt.Errorf("%w: audience %v not accepted", ErrInvalidToken, tok.Audience)
	}
	var all map[string]any
	if err := tok.Claims(&all); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	// An ID token (nonce, at_hash, c_hash) or a logout token (events) is not
	// an access token, whatever its audience.
	for _, k := range []string{"nonce", "at_hash", "c_hash", "s_hash", "events"} {
		if _, found := all[k]; found {
			return nil, fmt.Errorf("%w: not an access token (has %s)", ErrInvalidToken, k)
		}
	}
	id := IdentityFromClaims(all, c.cfg.GroupsClaim)
	id.Subject = tok.Subject
	b := &Bearer{Identity: id, Expiry: tok.Expiry}
	b.ClientID, _ = all["client_id"].(string)
	if b.ClientID == "" {
		b.ClientID, _ = all["azp"].(string)
	}
	return b, nil
}

// tokenType returns the lowercased typ header of a JWS, or "".
func tokenType(raw string) string {
	head, _, ok := strings.Cut(raw, ".")
	if !ok || len(head) > 4096 {
		return ""
	}
	b, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return ""
	}
	var h struct {
		Typ string `json:"typ"`
	}
	_ = json.Unmarshal(b, &h)
	return strings.ToLower(h.Typ)
}

// Logout is a verified OpenID Connect Back-Channel Logout token.
type Logout struct {
	Subject string // may be empty when SessionID is set
	// SessionID is the provider's sid: the one login to end. Empty means
	// every session of Subject.
	SessionID string
}

// VerifyLogout verifies a back-channel logout token: the provider's keys and
// algorithms, issuer, audience (our client id), the logout event, no nonce,
// and at least one of sub and sid.
func (c *Client) VerifyLogout(ctx context.Context, raw string) (*Logout, error) {
	d, err := c.ready()
	if err != nil {
		return nil, err
	}
	tok, err := d.verifier.VerifyLogout(oidc.ClientContext(ctx, c.cfg.HTTPClient), raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	if tok.Subject == "" && tok.SessionID == "" {
		return nil, fmt.Errorf("%w: logout token names neither sub nor sid", ErrInvalidToken)
	}
	return &Logout{Subject: tok.Subject, SessionID: tok.SessionID}, nil
}
