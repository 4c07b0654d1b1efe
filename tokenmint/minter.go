package tokenmint

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// tokenType is the JWS "typ" of minted tokens (RFC 9068 section 2.1): it keeps them
// apart from ID tokens, logout tokens and other JWTs signed by related keys.
const tokenType = "at+jwt"

// Config defaults and limits.
const (
	defaultTTL       = 2 * time.Minute
	minTTL           = 10 * time.Second
	maxTTL           = time.Hour
	defaultCacheSize = 100000
	// evictProbe is how many cache entries an insertion into a full cache looks at
	// for one past its reuse time before it evicts whichever it saw first.
	evictProbe = 8
	// jwksMaxAge is the JWKS response's Cache-Control max-age, in seconds.
	jwksMaxAge = 300
)

// reservedClaims are the claims Mint sets itself, plus claims that would change how a
// verifier reads the token (proof-of-possession, delegation, scopes, an ID or logout
// token's markers). Identity.Extra entries with these names are ignored. This table
// is the one list: configuration validation asks ReservedClaim.
var reservedClaims = map[string]bool{
	"iss": true, "sub": true, "aud": true, "exp": true, "nbf": true, "iat": true, "jti": true,
	"client_id": true, "email": true, "email_verified": true, "name": true,
	"preferred_username": true, "groups": true, "sid": true, "auth_time": true,
	"cnf": true, "act": true, "may_act": true, "azp": true, "nonce": true, "typ": true,
	"events": true, "at_hash": true, "c_hash": true, "s_hash": true, "scope": true, "scp": true,
}

// ReservedClaim reports whether Mint sets the claim name itself or refuses to
// carry it as an extra claim, so that a claim mapping can be refused at
// startup instead of being dropped silently at every request.
func ReservedClaim(name string) bool { return reservedClaims[name] }

// Identity is who a minted token speaks for.
type Identity struct {
	// Subject is the user's stable identifier, the `sub` claim. Required.
	Subject string
	// ClientID is the OAuth client the session was obtained through (`client_id`).
	ClientID string
	// Email and EmailVerified become `email` and `email_verified`; `email_verified`
	// is present exactly when Email is.
	Email         string
	EmailVerified bool
	// Name and PreferredUsername become `name` and `preferred_username`.
	Name              string
	PreferredUsername string
	// Groups becomes `groups`, in the given order.
	Groups []string
	// SessionID goes to `sid` as given: it is already a hash of the session id, and
	// tokenmint does not hash it again.
	SessionID string
	// AuthTime is when the user last authenticated (`auth_time`); zero (or any time
	// not after 1970) omits it.
	AuthTime time.Time
	// Extra holds further claims. Entries named like a claim Mint sets itself (or
	// one that would change the token's meaning, such as cnf, azp or nonce) are
	// ignored. Values must marshal to JSON.
	Extra map[string]any
}

// Token is one minted token.
type Token struct {
	// Raw is the compact JWS, for the upstream's Authorization header. It is a
	// bearer credential: never log it.
	Raw string
	// Expiry is the token's `exp`.
	Expiry time.Time
}

// LogValue implements slog.LogValuer: the token itself is never logged.
func (t Token) LogValue() slog.Value {
	return slog.GroupValue(slog.String("raw", "REDACTED"), slog.Time("expiry", t.Expiry))
}

// String keeps fmt's %v from printing the bearer token.
func (t Token) String() string {
	return "tokenmint.Token{Raw: REDACTED, Expiry: " + t.Expiry.UTC().Format(time.RFC3339) + "}"
}

// GoString keeps fmt's %#v from printing the bearer token.
func (t Token) GoString() string { return t.String() }

// Config configures a Minter.
type Config struct {
	// Issuer is the `iss` of every token, usually Gatehouse's public URL. Required.
	Issuer string
	// TTL is every token's lifetime. Zero means 2 minutes; otherwise it must lie
	// between 10 seconds and 1 hour.
	TTL time.Duration
	// Keys are the signing keys: the first signs and all are published in the JWKS.
	// At least one; no key twice.
	Keys []*Key
	// Now returns the current time. If nil, time.Now is used.
	Now func() time.Time
	// CacheSize is how many minted tokens the cache holds at most; beyond it, entries
	// are evicted (those past their reuse time first). Zero means 100000.
	CacheSize int
}

// Minter mints and caches tokens and serves the JWKS that verifies them. It is safe
// for concurrent use.
type Minter struct {
	now       func() time.Time
	cacheSize int

	mu       sync.RWMutex
	issuer   string
	ttl      time.Duration
	keys     []*Key // keys[0] signs
	jwks     jose.JSONWebKeySet
	jwksBody []byte
	cache    map[string]map[string]cachedToken // cacheKey -> audience -> token
	cached   int                               // entries in cache, for the bound
	inflight map[flightKey]*flight

	minted atomic.Uint64
	hits   atomic.Uint64
}

type cachedToken struct {
	tok       Token
	issuedAt  time.Time
	refreshAt time.Time // issuedAt + half the lifetime: reused strictly before
}

// fresh reports whether the token may still be handed out at now. A clock that went
// backwards past the token's iat re-mints rather than hand out a not-yet-valid token.
func (c cachedToken) fresh(now time.Time) bool {
	return !now.Before(c.issuedAt) && now.Before(c.refreshAt)
}

type flightKey struct{ cacheKey, audience string }

// flight is one signing in progress that concurrent misses for the same key wait on.
type flight struct {
	done chan struct{}
	tok  Token // set before done closes
	err  error
	// forgotten is set (under Minter.mu) by Forget or Reconfigure while the signing
	// runs, so its result is handed to the waiting callers but not cached.
	forgotten bool
}

// NewMinter checks cfg and returns a Minter. Every problem in cfg is reported at once.
func NewMinter(cfg Config) (*Minter, error) {
	var problems []string
	ttl, err := checkClaims(cfg.Issuer, cfg.TTL)
	if err != nil {
		problems = append(problems, err.Error())
	}
	if err := checkKeys(cfg.Keys); err != nil {
		problems = append(problems, err.Error())
	}
	size := cfg.CacheSize
	switch {
	case size == 0:
		size = defaultCacheSize
	case size < 0:
		problems = append(problems, fmt.Sprintf("CacheSize %d is negative", cfg.CacheSize))
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("tokenmint: invalid config:\n  %s", strings.Join(problems, "\n  "))
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	m := &Minter{
		now:       now,
		cacheSize: size,
		cache:     make(map[string]map[string]cachedToken),
		inflight:  make(map[flightKey]*flight),
	}
	if err := m.reconfigure(cfg.Issuer, ttl, cfg.Keys); err != nil {
		return nil, fmt.Errorf("tokenmint: %w", err)
	}
	return m, nil
}

// checkClaims checks an issuer and a lifetime and returns the lifetime with its
// default applied. Both problems are reported together.
func checkClaims(issuer string, ttl time.Duration) (time.Duration, error) {
	var problems []string
	if strings.TrimSpace(issuer) == "" {
		problems = append(problems, "Issuer is empty")
	}
	switch {
	case ttl == 0:
		ttl = defaultTTL
	case ttl < minTTL || ttl > maxTTL:
		problems = append(problems, fmt.Sprintf("TTL %s is outside %s..%s", ttl, minTTL, maxTTL))
	}
	if len(problems) > 0 {
		return 0, errors.New(strings.Join(problems, "\n  "))
	}
	return ttl, nil
}

func checkKeys(keys []*Key) error {
	if len(keys) == 0 {
		return errors.New("keys is empty; want at least one signing key")
	}
	seen := make(map[string]int, len(keys))
	for i, k := range keys {
		if k == nil {
			return fmt.Errorf("keys[%d] is nil", i)
		}
		if j, dup := seen[k.kid]; dup {
			return fmt.Errorf("keys[%d] is the same key as keys[%d] (kid %s)", i, j, k.kid)
		}
		seen[k.kid] = i
	}
	return nil
}

// SetKeys replaces the signing keys at run time: keys[0] signs from now on and all of
// keys are published, in this order, from the same instant. This is how a key is
// rotated (see Reconfigure).
func (m *Minter) SetKeys(keys []*Key) error {
	m.mu.RLock()
	issuer, ttl := m.issuer, m.ttl
	m.mu.RUnlock()
	if err := m.reconfigure(issuer, ttl, keys); err != nil {
		return fmt.Errorf("tokenmint: set keys: %w", err)
	}
	return nil
}

// Reconfigure replaces the issuer, the token lifetime (zero means 2 minutes) and the
// signing keys at run time, atomically: no token is signed with a mix of old and new
// settings, and the JWKS lists keys from the instant keys[0] may sign with it. On an
// error nothing changes.
//
// A key rotation is three calls, each after the one before has had its effect:
//
//   - publish: append the new key ([old, new]); tokens are still signed by old, and
//     verifiers that fetch the JWKS learn new;
//   - promote: put the new key first ([new, old]) once every verifier could have
//     fetched the JWKS (its Cache-Control max-age, 5 minutes, plus the verifiers' own
//     refresh interval);
//   - retire: drop the old key ([new]) once the last token it signed has expired (the
//     TTL after promotion).
//
// Cached tokens are dropped whenever the signing key (keys[0]), the issuer or the TTL
// changes, so no token of a demoted key or of the old claims is handed out again;
// publishing or retiring a key that does not sign keeps the cache. Every cached token
// was signed by the keys[0] of its time, which is why retiring a key that no longer
// signs cannot strand one.
func (m *Minter) Reconfigure(issuer string, ttl time.Duration, keys []*Key) error {
	if err := m.reconfigure(issuer, ttl, keys); err != nil {
		return fmt.Errorf("tokenmint: reconfigure: %w", err)
	}
	return nil
}

func (m *Minter) reconfigure(issuer string, ttl time.Duration, keys []*Key) error {
	ttl, err := checkClaims(issuer, ttl)
	if err != nil {
		return err
	}
	if err := checkKeys(keys); err != nil {
		return err
	}
	keys = slices.Clone(keys)
	set := jose.JSONWebKeySet{Keys: make([]jose.JSONWebKey, len(keys))}
	for i, k := range keys {
		set.Keys[i] = k.public
	}
	body, err := json.Marshal(set)
	if err != nil {
		return fmt.Errorf("encoding JWKS: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	// Keys loaded again from the same files are new values with the same kid.
	resign := len(m.keys) == 0 || m.keys[0].kid != keys[0].kid || m.issuer != issuer || m.ttl != ttl
	m.issuer, m.ttl = issuer, ttl
	m.keys = keys
	m.jwks = set
	m.jwksBody = body
	if resign {
		clear(m.cache)
		m.cached = 0
		for _, f := range m.inflight {
			f.forgotten = true
		}
		clear(m.inflight)
	}
	return nil
}

// signing is what one signing uses, read together under Minter.mu.
type signing struct {
	key    *Key
	issuer string
	ttl    time.Duration
}

// signingLocked returns the current signing settings; m.mu must be held.
func (m *Minter) signingLocked() signing { return signing{m.keys[0], m.issuer, m.ttl} }

// Mint returns a token for id, to be sent to audience: a JWS with header
// {alg, kid, typ: "at+jwt"} and claims iss, aud (audience, a single string), sub,
// client_id, email, email_verified, name, preferred_username, groups, sid, auth_time,
// iat, nbf, exp and a random jti. Empty optional claims are omitted; Subject and
// audience are required.
//
// With a non-empty cacheKey the token is cached per (cacheKey, audience) and handed
// out again while more than half of its lifetime remains, and concurrent misses for
// the same pair sign once. The cache trusts that a cacheKey stands for one identity:
// callers must Forget it when the identity changes (refresh, sign-out), and fold into
// it anything else id depends on (a route's Extra claims, for instance). An empty
// cacheKey signs every time.
//
// ctx bounds only the wait for another caller's signing of the same token.
func (m *Minter) Mint(ctx context.Context, cacheKey, audience string, id *Identity) (Token, error) {
	if audience == "" {
		return Token{}, errors.New("tokenmint: mint: empty audience")
	}
	if id == nil || id.Subject == "" {
		return Token{}, errors.New("tokenmint: mint: identity has no subject")
	}
	if err := ctx.Err(); err != nil {
		return Token{}, fmt.Errorf("tokenmint: mint: %w", err)
	}
	if cacheKey == "" {
		m.mu.RLock()
		sg := m.signingLocked()
		m.mu.RUnlock()
		return m.sign(sg, audience, id, m.now())
	}

	m.mu.RLock()
	c, ok := m.cache[cacheKey][audience]
	m.mu.RUnlock()
	if ok && c.fresh(m.now()) {
		m.hits.Add(1)
		return c.tok, nil
	}
	return m.mintShared(ctx, flightKey{cacheKey, audience}, id)
}

// mintShared signs a token for fk, or waits for the signing another caller started.
func (m *Minter) mintShared(ctx context.Context, fk flightKey, id *Identity) (Token, error) {
	m.mu.Lock()
	now := m.now()
	// Another caller may have stored a fresh token since the read-locked look-up.
	if c, ok := m.cache[fk.cacheKey][fk.audience]; ok && c.fresh(now) {
		m.mu.Unlock()
		m.hits.Add(1)
		return c.tok, nil
	}
	if f := m.inflight[fk]; f != nil {
		m.mu.Unlock()
		select {
		case <-f.done:
			if f.err != nil {
				return Token{}, f.err
			}
			m.hits.Add(1)
			return f.tok, nil
		case <-ctx.Done():
			return Token{}, fmt.Errorf("tokenmint: mint: waiting for a concurrent signing: %w", ctx.Err())
		}
	}
	f := &flight{done: make(chan struct{})}
	m.inflight[fk] = f
	sg := m.signingLocked()
	m.mu.Unlock()

	finished := false
	defer func() {
		if !finished { // sign panicked: release the waiters before the panic goes on
			m.land(fk, f, Token{}, now, errors.New("tokenmint: mint: signing panicked"))
		}
	}()
	tok, err := m.sign(sg, fk.audience, id, now)
	finished = true
	m.land(fk, f, tok, now, err)
	return tok, err
}

// land ends flight f: it caches a successful token unless f was forgotten meanwhile,
// then wakes the callers waiting on f.
func (m *Minter) land(fk flightKey, f *flight, tok Token, now time.Time, err error) {
	m.mu.Lock()
	if m.inflight[fk] == f {
		delete(m.inflight, fk)
	}
	if err == nil && !f.forgotten {
		m.store(fk, tok, now)
	}
	m.mu.Unlock()
	f.tok, f.err = tok, err
	close(f.done)
}

// store caches tok; m.mu must be held.
func (m *Minter) store(fk flightKey, tok Token, issued time.Time) {
	issued = issued.Truncate(time.Second)
	entry := cachedToken{tok: tok, issuedAt: issued, refreshAt: issued.Add(tok.Expiry.Sub(issued) / 2)}
	byAud := m.cache[fk.cacheKey]
	if _, replacing := byAud[fk.audience]; replacing {
		byAud[fk.audience] = entry
		return
	}
	if m.cached >= m.cacheSize {
		m.evict(issued)
	}
	if byAud == nil {
		byAud = make(map[string]cachedToken, 1)
		m.cache[fk.cacheKey] = byAud
	}
	byAud[fk.audience] = entry
	m.cached++
}

// evict drops one cache entry: the first of up to evictProbe entries that is past
// its reuse time, or else the first one seen. Go's randomized map iteration makes the
// latter a random eviction, which needs no bookkeeping on the hit path. m.mu must be
// held.
func (m *Minter) evict(now time.Time) {
	var (
		victim flightKey
		found  bool
		probed int
	)
probe:
	for ck, byAud := range m.cache {
		for aud, c := range byAud {
			if !found {
				victim, found = flightKey{ck, aud}, true
			}
			if !c.fresh(now) {
				victim = flightKey{ck, aud}
				break probe
			}
			if probed++; probed >= evictProbe {
				break probe
			}
		}
	}
	if !found {
		return
	}
	byAud := m.cache[victim.cacheKey]
	delete(byAud, victim.audience)
	if len(byAud) == 0 {
		delete(m.cache, victim.cacheKey)
	}
	m.cached--
}

// Forget drops every cached token of cacheKey, whatever its audience; a signing for
// cacheKey still in progress is not cached. Call it at sign-out and when the session's
// identity changes.
func (m *Minter) Forget(cacheKey string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cached -= len(m.cache[cacheKey])
	delete(m.cache, cacheKey)
	for fk, f := range m.inflight {
		if fk.cacheKey == cacheKey {
			f.forgotten = true
			delete(m.inflight, fk)
		}
	}
}

// sign builds the claims and signs them with sg's key.
func (m *Minter) sign(sg signing, audience string, id *Identity, now time.Time) (Token, error) {
	key := sg.key
	payload, exp, err := claims(sg, audience, id, now)
	if err != nil {
		return Token{}, err
	}
	jws, err := key.signer.Sign(payload)
	if err != nil {
		return Token{}, fmt.Errorf("tokenmint: mint: signing with %s key %s: %w", key.alg, key.kid, err)
	}
	raw, err := jws.CompactSerialize()
	if err != nil {
		return Token{}, fmt.Errorf("tokenmint: mint: serializing: %w", err)
	}
	m.minted.Add(1)
	return Token{Raw: raw, Expiry: exp}, nil
}

// mintedClaims is the JSON of a token's claims, in the order RFC 9068 lists them.
type mintedClaims struct {
	Issuer            string   `json:"iss"`
	Audience          string   `json:"aud"`
	Subject           string   `json:"sub"`
	ClientID          string   `json:"client_id,omitempty"`
	Email             string   `json:"email,omitempty"`
	EmailVerified     *bool    `json:"email_verified,omitempty"`
	Name              string   `json:"name,omitempty"`
	PreferredUsername string   `json:"preferred_username,omitempty"`
	Groups            []string `json:"groups,omitempty"`
	SessionID         string   `json:"sid,omitempty"`
	AuthTime          int64    `json:"auth_time,omitempty"`
	IssuedAt          int64    `json:"iat"`
	NotBefore         int64    `json:"nbf"`
	Expiry            int64    `json:"exp"`
	ID                string   `json:"jti"`
}

// claims returns the JSON claims of a token minted at now with sg, and its expiry.
func claims(sg signing, audience string, id *Identity, now time.Time) ([]byte, time.Time, error) {
	jti, err := randomID()
	if err != nil {
		return nil, time.Time{}, err
	}
	iat := now.Unix()
	exp := now.Add(sg.ttl).Unix()
	c := mintedClaims{
		Issuer:            sg.issuer,
		Audience:          audience,
		Subject:           id.Subject,
		ClientID:          id.ClientID,
		Email:             id.Email,
		Name:              id.Name,
		PreferredUsername: id.PreferredUsername,
		Groups:            id.Groups,
		SessionID:         id.SessionID,
		IssuedAt:          iat,
		NotBefore:         iat,
		Expiry:            exp,
		ID:                jti,
	}
	if id.Email != "" {
		c.EmailVerified = &id.EmailVerified
	}
	// A NumericDate at or before the epoch is no real login time, and verifiers
	// (this package's included) reject it: leave it out instead.
	if t := id.AuthTime.Unix(); !id.AuthTime.IsZero() && t > 0 {
		c.AuthTime = t
	}
	body, err := json.Marshal(c)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("tokenmint: mint: encoding claims: %w", err)
	}
	if len(id.Extra) > 0 {
		if body, err = appendExtra(body, id.Extra); err != nil {
			return nil, time.Time{}, err
		}
	}
	return body, time.Unix(exp, 0), nil
}

// appendExtra splices extra's non-reserved claims, sorted by name, into the JSON
// object body.
func appendExtra(body []byte, extra map[string]any) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(len(body) + 64*len(extra))
	buf.Write(body[:len(body)-1]) // drop the closing brace
	for _, name := range slices.Sorted(maps.Keys(extra)) {
		if reservedClaims[name] {
			continue
		}
		k, err := json.Marshal(name)
		if err != nil {
			return nil, fmt.Errorf("tokenmint: mint: encoding extra claim name %q: %w", name, err)
		}
		v, err := json.Marshal(extra[name])
		if err != nil {
			return nil, fmt.Errorf("tokenmint: mint: encoding extra claim %q: %w", name, err)
		}
		buf.WriteByte(',')
		buf.Write(k)
		buf.WriteByte(':')
		buf.Write(v)
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// randomID returns 128 random bits, base64url-encoded, for `jti`.
func randomID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("tokenmint: mint: generating jti: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// JWKS returns the public keys that verify minted tokens, in signing order, each with
// kid, alg and use "sig".
func (m *Minter) JWKS() jose.JSONWebKeySet {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return jose.JSONWebKeySet{Keys: slices.Clone(m.jwks.Keys)}
}

// JWKSHandler serves the JWKS as application/json to GET and HEAD (405 otherwise),
// cacheable for 5 minutes. The body is encoded once per key change, not per request.
func (m *Minter) JWKSHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			h.Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusMethodNotAllowed)
			_, _ = w.Write([]byte(`{"error":"method_not_allowed"}` + "\n"))
			return
		}
		m.mu.RLock()
		body := m.jwksBody
		m.mu.RUnlock()
		h.Set("Content-Type", "application/json")
		h.Set("Cache-Control", "public, max-age="+strconv.Itoa(jwksMaxAge))
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			_, _ = w.Write(body)
		}
	})
}

// Stats returns how many tokens were signed and how many Mint calls were served
// without signing (from the cache or from a concurrent caller's signing).
func (m *Minter) Stats() (minted, cacheHits uint64) {
	return m.minted.Load(), m.hits.Load()
}

var (
	_ slog.LogValuer = Token{}
	_ fmt.Stringer   = Token{}
)
