package oidcclient

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// IntrospectionConfig configures RFC 7662 token introspection of opaque
// access tokens (api.introspection). The zero value uses the defaults noted
// on each field.
type IntrospectionConfig struct {
	// Endpoint is the introspection endpoint. Empty = the provider's
	// introspection_endpoint from discovery. (Ory Hydra serves it on its
	// admin API only, /admin/oauth2/introspect, and does not advertise it.)
	Endpoint string
	// CacheTTL bounds how long an active answer is believed without asking
	// again; never past the token's exp. Zero = 1m.
	CacheTTL time.Duration
	// RefusedTTL is how long a refused token is remembered, so one bad
	// token sent again and again costs the provider one call. Zero = 10s;
	// never longer than CacheTTL.
	RefusedTTL time.Duration
	// Rate bounds the calls to the provider: at most Rate a second, in
	// bursts of up to Rate. A token that would exceed it is not checked
	// (an error wrapping ErrUnavailable: 503, retry). Tokens already
	// cached cost nothing. Zero = 20.
	Rate int
	// MaxEntries bounds each of the two caches (active, refused). Zero =
	// 10000.
	MaxEntries int
}

// Introspector verifies the bearer tokens of native and API clients
// (proxy.BearerVerifier): a JWT as Client.VerifyAccessToken does, any other
// token with the provider's introspection endpoint. Safe for concurrent use.
type Introspector struct {
	c   *Client
	cfg IntrospectionConfig

	endpoint atomic.Pointer[endpointFor]

	mu       sync.Mutex
	active   map[[32]byte]activeEntry
	refused  map[[32]byte]time.Time
	inflight map[[32]byte]*flight
	tokens   float64   // rate bucket
	filled   time.Time // when tokens was last topped up
}

type activeEntry struct {
	b     Bearer
	until time.Time
}

// flight is one introspection call that every request for the same token
// waits on.
type flight struct {
	done chan struct{}
	b    *Bearer
	err  error
}

// endpointFor remembers the endpoint found in one discovery.
type endpointFor struct {
	d   *discovered
	url string
}

const (
	// maxOpaqueToken bounds a token sent to the provider.
	maxOpaqueToken = 8 << 10
	// maxIntrospectionAnswer bounds the provider's answer.
	maxIntrospectionAnswer = 256 << 10
)

// NewIntrospector returns an Introspector checking tokens for c's provider,
// authenticated as c's client (client_secret_basic).
func NewIntrospector(c *Client, cfg IntrospectionConfig) *Introspector {
	if cfg.CacheTTL <= 0 {
		cfg.CacheTTL = time.Minute
	}
	if cfg.RefusedTTL <= 0 {
		cfg.RefusedTTL = 10 * time.Second
	}
	cfg.RefusedTTL = min(cfg.RefusedTTL, cfg.CacheTTL)
	if cfg.Rate <= 0 {
		cfg.Rate = 20
	}
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = 10000
	}
	return &Introspector{
		c: c, cfg: cfg,
		active:   map[[32]byte]activeEntry{},
		refused:  map[[32]byte]time.Time{},
		inflight: map[[32]byte]*flight{},
		tokens:   float64(cfg.Rate),
	}
}

// VerifyAccessToken verifies a bearer token: one shaped as a JWS (three
// dot-separated parts, the first a JSON header with alg) as
// Client.VerifyAccessToken does, any other with Introspect.
func (in *Introspector) VerifyAccessToken(ctx context.Context, raw string) (*Bearer, error) {
	if looksLikeJWT(raw) {
		return in.c.VerifyAccessToken(ctx, raw)
	}
	return in.Introspect(ctx, raw)
}

// Introspect asks the provider about an opaque access token (RFC 7662) and
// accepts it when the answer says active: true and, where the answer has
// them: token_use access_token (Hydra), token_type Bearer, Keycloak's typ
// Bearer, iss the provider, exp not passed, nbf reached; and it has a sub
// and an aud among Config.AcceptedAudiences. Extension claims that Ory
// Hydra nests under "ext" count as top-level claims where those are absent.
//
// Answers are cached: active ones until Expiry, which is the token's exp or
// CacheTTL from now, whichever is first (callers that cache the Bearer
// must not keep it longer); refused ones for RefusedTTL. Concurrent checks
// of one token make one call.
//
// A refusal for the token's own sake wraps ErrInvalidToken (401). Not being
// able to ask (no discovery, no endpoint, the provider unreachable or
// answering an error, the rate limit) wraps ErrUnavailable (503).
func (in *Introspector) Introspect(ctx context.Context, raw string) (*Bearer, error) {
	if len(in.c.cfg.AcceptedAudiences) == 0 {
		return nil, fmt.Errorf("%w: bearer tokens are not accepted (api.accepted_audiences is empty)", ErrInvalidToken)
	}
	if err := checkOpaque(raw); err != nil {
		return nil, err
	}
	d, err := in.c.ready()
	if err != nil {
		return nil, err
	}
	key := sha256.Sum256([]byte(raw))
	now := in.c.cfg.Now()

	in.mu.Lock()
	if e, ok := in.active[key]; ok && now.Before(e.until) {
		in.mu.Unlock()
		b := e.b
		return &b, nil
	}
	if until, ok := in.refused[key]; ok && now.Before(until) {
		in.mu.Unlock()
		return nil, fmt.Errorf("%w: refused by the provider's introspection (remembered)", ErrInvalidToken)
	}
	f, ok := in.inflight[key]
	if !ok {
		if !in.take(now) {
			in.mu.Unlock()
			return nil, fmt.Errorf("%w: token introspection rate limit (%d/s, api.introspection_rate) reached", ErrUnavailable, in.cfg.Rate)
		}
		f = &flight{done: make(chan struct{})}
		in.inflight[key] = f
		// The call is everyone's: it must not end with the request that
		// happened to start it. The HTTP client's timeout bounds it.
		go in.run(context.WithoutCancel(ctx), d, raw, key, f)
	}
	in.mu.Unlock()

	select {
	case <-f.done:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: token introspection: %w", ErrUnavailable, ctx.Err())
	}
	if f.err != nil {
		return nil, f.err
	}
	b := *f.b
	return &b, nil
}

func (in *Introspector) run(ctx context.Context, d *discovered, raw string, key [32]byte, f *flight) {
	b, err := in.introspect(ctx, d, raw)
	now := in.c.cfg.Now()
	in.mu.Lock()
	delete(in.inflight, key)
	switch {
	case err == nil:
		if len(in.active) >= in.cfg.MaxEntries {
			in.active = sweep(in.active, in.cfg.MaxEntries, now, func(e activeEntry) time.Time { return e.until })
		}
		in.active[key] = activeEntry{*b, b.Expiry}
	case errors.Is(err, ErrInvalidToken):
		if len(in.refused) >= in.cfg.MaxEntries {
			in.refused = sweep(in.refused, in.cfg.MaxEntries, now, func(t time.Time) time.Time { return t })
		}
		in.refused[key] = now.Add(in.cfg.RefusedTTL)
	}
	in.mu.Unlock()
	f.b, f.err = b, err
	close(f.done)
}

// sweep drops m's expired entries; if m still holds max of them, it starts
// over with an empty map, so a flood of distinct tokens costs bounded
// memory (and at worst a call per token, under the rate limit).
func sweep[V any](m map[[32]byte]V, max int, now time.Time, until func(V) time.Time) map[[32]byte]V {
	for k, v := range m {
		if !now.Before(until(v)) {
			delete(m, k)
		}
	}
	if len(m) >= max {
		return map[[32]byte]V{}
	}
	return m
}

// take takes one call from the rate bucket; the caller holds in.mu.
func (in *Introspector) take(now time.Time) bool {
	rate := float64(in.cfg.Rate)
	if !in.filled.IsZero() && now.After(in.filled) {
		in.tokens = min(rate, in.tokens+now.Sub(in.filled).Seconds()*rate)
	}
	in.filled = now
	if in.tokens < 1 {
		return false
	}
	in.tokens--
	return true
}

// endpointURL is the configured endpoint, else discovery's.
func (in *Introspector) endpointURL(d *discovered) (string, error) {
	if in.cfg.Endpoint != "" {
		return in.cfg.Endpoint, nil
	}
	if e := in.endpoint.Load(); e != nil && e.d == d {
		return e.url, nil
	}
	var meta struct {
		URL string `json:"introspection_endpoint"`
	}
	if err := d.provider.Claims(&meta); err != nil || meta.URL == "" {
		return "", fmt.Errorf("%w: the provider advertises no introspection_endpoint; set api.introspection_endpoint", ErrUnavailable)
	}
	in.endpoint.Store(&endpointFor{d, meta.URL})
	return meta.URL, nil
}

// introspect makes the call and judges the answer.
func (in *Introspector) introspect(ctx context.Context, d *discovered, raw string) (*Bearer, error) {
	endpoint, err := in.endpointURL(d)
	if err != nil {
		return nil, err
	}
	form := url.Values{"token": {raw}, "token_type_hint": {"access_token"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("%w: token introspection: %w", ErrUnavailable, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	// client_secret_basic: RFC 6749 2.3.1 form-encodes both parts first.
	req.SetBasicAuth(url.QueryEscape(in.c.cfg.ClientID), url.QueryEscape(in.c.cfg.ClientSecret))
	resp, err := in.c.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: token introspection: %w", ErrUnavailable, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxIntrospectionAnswer+1))
	switch {
	case err != nil:
		return nil, fmt.Errorf("%w: token introspection: %w", ErrUnavailable, err)
	case resp.StatusCode != http.StatusOK:
		// 401: the provider does not accept Gatehouse's client
		// credentials; 5xx: it is in trouble. Neither is the token's fault.
		return nil, fmt.Errorf("%w: token introspection answered %s", ErrUnavailable, resp.Status)
	case len(body) > maxIntrospectionAnswer:
		return nil, fmt.Errorf("%w: token introspection answer longer than %d bytes", ErrUnavailable, maxIntrospectionAnswer)
	}
	return in.judge(body)
}

// judge turns an introspection answer into a Bearer or a refusal.
func (in *Introspector) judge(body []byte) (*Bearer, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil || top == nil {
		return nil, fmt.Errorf("%w: token introspection answer is not a JSON object", ErrUnavailable)
	}
	if string(top["active"]) != "true" {
		return nil, fmt.Errorf("%w: the provider says the token is not active", ErrInvalidToken)
	}
	cl, err := parseClaims(body)
	if err != nil {
		return nil, fmt.Errorf("%w: introspection: %w", ErrInvalidToken, err)
	}
	now := in.c.cfg.Now()
	use, typ, kc := cl.string("token_use"), strings.ToLower(cl.string("token_type")), strings.ToLower(cl.string("typ"))
	switch {
	case cl.has("token_use") && use != "access_token":
		return nil, fmt.Errorf("%w: introspection: token_use %q is not an access token", ErrInvalidToken, clip(use))
	case cl.has("token_type") && typ != "bearer" && typ != "access_token" && typ != "urn:ietf:params:oauth:token-type:access_token":
		return nil, fmt.Errorf("%w: introspection: token_type %q is not a bearer access token", ErrInvalidToken, clip(typ))
	case cl.has("typ") && kc != "bearer":
		return nil, fmt.Errorf("%w: introspection: typ %q is not an access token", ErrInvalidToken, clip(kc))
	case cl.has("iss") && cl.iss != in.c.cfg.Issuer:
		return nil, fmt.Errorf("%w: introspection: issuer %q; want %q", ErrInvalidToken, clip(cl.iss), in.c.cfg.Issuer)
	case cl.hasExp && !now.Before(cl.exp):
		return nil, fmt.Errorf("%w: introspection: expired at %s", ErrInvalidToken, cl.exp.UTC().Format(time.RFC3339))
	case cl.hasNbf && now.Add(clockSkew).Before(cl.nbf):
		return nil, fmt.Errorf("%w: introspection: not valid before %s", ErrInvalidToken, cl.nbf.UTC().Format(time.RFC3339))
	case cl.sub == "":
		return nil, fmt.Errorf("%w: introspection: no sub", ErrInvalidToken)
	case !anyOf(cl.aud, in.c.cfg.AcceptedAudiences):
		return nil, fmt.Errorf("%w: introspection: audience %q is not in api.accepted_audiences", ErrInvalidToken, clipAll(cl.aud))
	}
	claims := cl.all
	delete(claims, "active")
	if ext, ok := claims["ext"].(map[string]any); ok {
		for k, v := range ext {
			if _, taken := claims[k]; !taken {
				claims[k] = v
			}
		}
	}
	if _, ok := claims["preferred_username"]; !ok {
		if u, ok := claims["username"].(string); ok {
			claims["preferred_username"] = u
		}
	}
	b := &Bearer{Expiry: now.Add(in.cfg.CacheTTL)}
	if cl.hasExp && cl.exp.Before(b.Expiry) {
		b.Expiry = cl.exp
	}
	b.Identity, _ = in.c.identity(claims)
	b.Identity.Subject = cl.sub
	for _, k := range []string{"client_id", "azp"} {
		if b.ClientID = cl.string(k); b.ClientID != "" {
			break
		}
	}
	return b, nil
}

// checkOpaque refuses, before any call, what cannot be a bearer token:
// RFC 6750's b64token is 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" /
// "/" ) *"=". Nothing else reaches the provider.
func checkOpaque(raw string) error {
	if raw == "" || len(raw) > maxOpaqueToken {
		return fmt.Errorf("%w: empty or longer than %d bytes", ErrInvalidToken, maxOpaqueToken)
	}
	body := strings.TrimRight(raw, "=")
	if body == "" {
		return fmt.Errorf("%w: not a bearer token", ErrInvalidToken)
	}
	for i := 0; i < len(body); i++ {
		switch c := body[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '-', c == '.', c == '_', c == '~', c == '+', c == '/':
		default:
			return fmt.Errorf("%w: a character a bearer token cannot hold", ErrInvalidToken)
		}
	}
	return nil
}

// looksLikeJWT reports whether raw is shaped as a compact JWS: three
// dot-separated parts, the first a base64url JSON object with an alg.
// Hydra's opaque tokens (ory_at_...) have one dot.
func looksLikeJWT(raw string) bool {
	head, rest, ok := strings.Cut(raw, ".")
	if !ok || strings.Count(rest, ".") != 1 || len(head) > 4096 {
		return false
	}
	b, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return false
	}
	var h map[string]json.RawMessage
	if json.Unmarshal(b, &h) != nil {
		return false
	}
	_, ok = h["alg"]
	return ok
}
