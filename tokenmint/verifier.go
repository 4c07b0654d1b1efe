package tokenmint

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/gatehouse/gatehouse/internal/jwks"
)

// Verifier defaults and limits.
const (
	defaultMinRefresh  = 10 * time.Second
	defaultLeeway      = 30 * time.Second
	defaultHTTPTimeout = 10 * time.Second
	// keySetMaxAge is how long a fetched JWKS is used before a Verify starts a
	// background refetch, so a key retired from the JWKS stops verifying tokens
	// even when no unknown kid ever forces a refresh. It matches JWKSHandler's
	// max-age.
	keySetMaxAge = jwksMaxAge * time.Second
	// maxTokenSize bounds the token Verify parses; minted tokens are far smaller.
	maxTokenSize = 64 << 10
)

var (
	// ErrInvalidToken is wrapped by every error Verify returns for a token that is
	// malformed, forged, expired or not meant for this verifier.
	ErrInvalidToken = errors.New("tokenmint: invalid token")
	// ErrJWKSUnavailable is wrapped by the error Verify returns when the token's key
	// is not known and the JWKS could not be fetched: the token may well be valid,
	// so this is the verifier's problem (503), not the client's (401).
	ErrJWKSUnavailable = errors.New("tokenmint: JWKS unavailable")
)

// VerifierConfig configures a Verifier. Everything a token is checked against is
// pinned here; nothing in the token says where its keys are.
type VerifierConfig struct {
	// Issuer is the exact `iss` tokens must carry. Required.
	Issuer string
	// Audience must be the token's `aud`, or one of its values when `aud` is an
	// array (RFC 7519 section 4.1.3). Required.
	Audience string
	// JWKSURL is the http(s) URL of the issuer's JWKS. Required.
	JWKSURL string
	// Algorithms are the accepted JWS algorithms, from ES256, EdDSA and RS256. If
	// empty, only ES256 is accepted. "none" and HMAC algorithms are refused.
	Algorithms []string
	// HTTPClient fetches the JWKS. If nil, a client with a 10-second timeout that
	// does not follow redirects is used, so the keys come from JWKSURL itself.
	HTTPClient *http.Client
	// MinRefreshInterval is how often, at most, a token with an unknown kid makes
	// the verifier fetch the JWKS again; concurrent fetches are merged into one.
	// After a failed fetch the next one may come sooner: after a second, doubling
	// while fetches keep failing, up to this interval. Zero means 10 seconds.
	MinRefreshInterval time.Duration
	// Leeway is the clock skew allowed when checking exp, nbf and iat. Zero means
	// 30 seconds.
	Leeway time.Duration
	// Now returns the current time. If nil, time.Now is used.
	Now func() time.Time
}

// Verifier checks tokens minted by a Minter. It fetches the JWKS on the first Verify
// and again when a token names an unknown kid (at most once per
// MinRefreshInterval). Keys older than 5 minutes keep verifying while a background
// fetch replaces them, and keys it has keep verifying while the JWKS cannot be
// fetched. A fetch never runs on a caller's context, so a client that hangs up
// does not fail it for the others. It is safe for concurrent use.
type Verifier struct {
	issuer   string
	audience string
	algs     []jose.SignatureAlgorithm
	leeway   time.Duration
	now      func() time.Time
	keys     *jwks.Cache
}

// NewVerifier checks cfg and returns a Verifier. It does not fetch the JWKS: the
// first Verify does. Every problem in cfg is reported at once.
func NewVerifier(cfg VerifierConfig) (*Verifier, error) {
	var problems []string
	if cfg.Issuer == "" {
		problems = append(problems, "Issuer is empty")
	}
	if cfg.Audience == "" {
		problems = append(problems, "Audience is empty")
	}
	if cfg.JWKSURL == "" {
		problems = append(problems, "JWKSURL is empty")
	} else if u, err := url.Parse(cfg.JWKSURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		problems = append(problems, fmt.Sprintf("JWKSURL %q is not an absolute http(s) URL", cfg.JWKSURL))
	}
	names := cfg.Algorithms
	if len(names) == 0 {
		names = []string{algES256}
	}
	var algs []jose.SignatureAlgorithm
	for _, name := range names {
		switch name {
		case algES256, algEdDSA, algRS256:
			if !slices.Contains(algs, jose.SignatureAlgorithm(name)) {
				algs = append(algs, jose.SignatureAlgorithm(name))
			}
		default:
			problems = append(problems, fmt.Sprintf("Algorithms: %q is not allowed (want ES256, EdDSA or RS256)", name))
		}
	}
	minRefresh := cfg.MinRefreshInterval
	switch {
	case minRefresh == 0:
		minRefresh = defaultMinRefresh
	case minRefresh < 0:
		problems = append(problems, fmt.Sprintf("MinRefreshInterval %s is negative", minRefresh))
	}
	leeway := cfg.Leeway
	switch {
	case leeway == 0:
		leeway = defaultLeeway
	case leeway < 0:
		problems = append(problems, fmt.Sprintf("Leeway %s is negative", leeway))
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("tokenmint: invalid verifier config:\n  %s", strings.Join(problems, "\n  "))
	}
	client := cfg.HTTPClient
	if client == nil {
		client = &http.Client{
			Timeout: defaultHTTPTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		}
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	keys, err := jwks.New(jwks.Config{
		URL:         cfg.JWKSURL,
		Client:      client,
		Accept:      func(k jose.JSONWebKey) bool { return k.KeyID != "" },
		MinInterval: minRefresh,
		MaxAge:      keySetMaxAge,
		Now:         now,
	})
	if err != nil {
		return nil, fmt.Errorf("tokenmint: invalid verifier config: %w", err)
	}
	return &Verifier{
		issuer:   cfg.Issuer,
		audience: cfg.Audience,
		algs:     algs,
		leeway:   leeway,
		now:      now,
		keys:     keys,
	}, nil
}

// Claims are the claims of a verified token, named after the Identity fields they
// were minted from.
type Claims struct {
	Issuer            string    // iss
	Subject           string    // sub
	Audience          []string  // aud, one element when it was a string
	ClientID          string    // client_id
	Email             string    // email
	EmailVerified     bool      // email_verified
	Name              string    // name
	PreferredUsername string    // preferred_username
	Groups            []string  // groups
	SessionID         string    // sid: a hash of Gatehouse's session id
	AuthTime          time.Time // auth_time; zero when absent
	IssuedAt          time.Time // iat
	NotBefore         time.Time // nbf; zero when absent
	Expiry            time.Time // exp
	ID                string    // jti
	// Extra holds every other claim, decoded as encoding/json does into an any;
	// nil when there are none.
	Extra map[string]any
}

// Verify checks raw and returns its claims. It accepts a token only if:
//   - it is a compact JWS whose segments are canonical base64url;
//   - its header has typ "at+jwt" or "application/at+jwt" (any case), an alg from
//     VerifierConfig.Algorithms and a kid found in the JWKS at JWKSURL, whose key
//     fits that alg (jku, x5u, jwk and x5c headers are never used);
//   - the signature verifies with that key;
//   - iss equals Issuer exactly, aud is Audience or an array that contains it, sub
//     is not empty, exp is in the future and iat and nbf (if present) are not,
//     each give or take Leeway.
//
// Errors wrap ErrInvalidToken, or ErrJWKSUnavailable when the key could not be
// looked up (also wrapping ctx's error when ctx ended while the JWKS was being
// fetched).
func (v *Verifier) Verify(ctx context.Context, raw string) (*Claims, error) {
	if raw == "" {
		return nil, fmt.Errorf("%w: empty", ErrInvalidToken)
	}
	if len(raw) > maxTokenSize {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrInvalidToken, maxTokenSize)
	}
	if !canonicalCompact(raw) {
		return nil, fmt.Errorf("%w: not a compact JWS in canonical base64url", ErrInvalidToken)
	}
	jws, err := jose.ParseSignedCompact(raw, v.algs)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	if len(jws.Signatures) != 1 {
		return nil, fmt.Errorf("%w: %d signatures; want 1", ErrInvalidToken, len(jws.Signatures))
	}
	hdr := jws.Signatures[0].Protected
	if typ, _ := hdr.ExtraHeaders[jose.HeaderType].(string); !isAccessTokenType(typ) {
		return nil, fmt.Errorf("%w: typ %q; want %q", ErrInvalidToken, clip(typ), tokenType)
	}
	if hdr.KeyID == "" {
		return nil, fmt.Errorf("%w: no kid", ErrInvalidToken)
	}
	key, err := v.key(ctx, hdr.KeyID, hdr.Algorithm)
	if err != nil {
		return nil, err
	}
	payload, err := jws.Verify(key.Key)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	c, err := parseClaims(payload)
	if err != nil {
		return nil, err
	}
	if err := v.check(c); err != nil {
		return nil, err
	}
	return c, nil
}

// check applies the claim rules to signature-verified claims.
func (v *Verifier) check(c *Claims) error {
	now := v.now()
	switch {
	case c.Issuer != v.issuer:
		return fmt.Errorf("%w: issuer %q; want %q", ErrInvalidToken, c.Issuer, v.issuer)
	case !slices.Contains(c.Audience, v.audience):
		return fmt.Errorf("%w: audience %q does not include %q", ErrInvalidToken, c.Audience, v.audience)
	case c.Subject == "":
		return fmt.Errorf("%w: no sub", ErrInvalidToken)
	case c.Expiry.IsZero():
		return fmt.Errorf("%w: no exp", ErrInvalidToken)
	case !now.Before(c.Expiry.Add(v.leeway)):
		return fmt.Errorf("%w: expired at %s", ErrInvalidToken, c.Expiry.UTC().Format(time.RFC3339))
	case c.IssuedAt.IsZero():
		return fmt.Errorf("%w: no iat", ErrInvalidToken)
	case now.Add(v.leeway).Before(c.IssuedAt):
		return fmt.Errorf("%w: issued in the future, at %s", ErrInvalidToken, c.IssuedAt.UTC().Format(time.RFC3339))
	case !c.NotBefore.IsZero() && now.Add(v.leeway).Before(c.NotBefore):
		return fmt.Errorf("%w: not valid before %s", ErrInvalidToken, c.NotBefore.UTC().Format(time.RFC3339))
	}
	return nil
}

// maxQuoted bounds how much of an unverified header value an error message repeats:
// such errors end up in logs, and the value is whatever the sender chose.
const maxQuoted = 64

// clip shortens s to maxQuoted bytes for an error message.
func clip(s string) string {
	if len(s) <= maxQuoted {
		return s
	}
	return s[:maxQuoted] + "..."
}

// isAccessTokenType reports whether typ marks an RFC 9068 access token. Media type
// names are case-insensitive and may carry the "application/" prefix (RFC 7515
// section 4.1.9).
func isAccessTokenType(typ string) bool {
	return strings.EqualFold(typ, tokenType) || strings.EqualFold(typ, "application/"+tokenType)
}

// canonicalCompact reports whether raw is three base64url segments without padding
// whose unused trailing bits are zero. Go's decoder would otherwise skip line breaks
// and ignore trailing bits, so many strings would decode to one token.
func canonicalCompact(raw string) bool {
	segments, start := 0, 0
	for i := 0; i <= len(raw); i++ {
		if i < len(raw) && raw[i] != '.' {
			if !isBase64URL(raw[i]) {
				return false
			}
			continue
		}
		if !canonicalSegment(raw[start:i]) {
			return false
		}
		segments++
		start = i + 1
	}
	return segments == 3
}

func isBase64URL(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}

// canonicalSegment checks a segment's length and trailing bits; isBase64URL has
// checked its characters.
func canonicalSegment(s string) bool {
	if len(s) == 0 {
		return false
	}
	last := base64URLValue(s[len(s)-1])
	switch len(s) % 4 {
	case 1:
		return false
	case 2: // 12 bits encode one byte: the last 4 are unused
		return last&0x0f == 0
	case 3: // 18 bits encode two bytes: the last 2 are unused
		return last&0x03 == 0
	}
	return true
}

func base64URLValue(c byte) byte {
	switch {
	case 'A' <= c && c <= 'Z':
		return c - 'A'
	case 'a' <= c && c <= 'z':
		return c - 'a' + 26
	case '0' <= c && c <= '9':
		return c - '0' + 52
	case c == '-':
		return 62
	default:
		return 63
	}
}

// keyFits reports whether key may verify alg: its own alg (if published) matches and
// its type and size are the ones alg uses.
func keyFits(key jose.JSONWebKey, alg string) bool {
	if key.Algorithm != "" && key.Algorithm != alg {
		return false
	}
	switch pub := key.Key.(type) {
	case *ecdsa.PublicKey:
		return alg == algES256 && pub.Curve == elliptic.P256()
	case ed25519.PublicKey:
		return alg == algEdDSA
	case *rsa.PublicKey:
		return alg == algRS256 && pub.N.BitLen() >= minRSABits
	default:
		return false
	}
}

// key returns the key named kid that may verify alg. It never waits for a
// refresh of keys it has: keys older than keySetMaxAge serve while a background
// fetch replaces them (see internal/jwks).
func (v *Verifier) key(ctx context.Context, kid, alg string) (jose.JSONWebKey, error) {
	keys, err := v.keys.Lookup(ctx, kid)
	switch {
	case errors.Is(err, jwks.ErrUnknownKey):
		return jose.JSONWebKey{}, fmt.Errorf("%w: unknown kid %q", ErrInvalidToken, clip(kid))
	case err != nil:
		return jose.JSONWebKey{}, fmt.Errorf("%w: key %q not known: %w", ErrJWKSUnavailable, clip(kid), err)
	}
	for _, k := range keys {
		if keyFits(k, alg) {
			return k, nil
		}
	}
	return jose.JSONWebKey{}, fmt.Errorf("%w: key %q does not sign %s", ErrInvalidToken, clip(kid), alg)
}

// parseClaims decodes a verified payload. Every registered claim must have its
// registered type; anything else goes to Extra.
func parseClaims(payload []byte) (*Claims, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(payload, &raw); err != nil {
		return nil, fmt.Errorf("%w: claims: %w", ErrInvalidToken, err)
	}
	c := &Claims{}
	for name, val := range raw {
		var err error
		switch name {
		case "iss":
			err = unmarshalString(val, &c.Issuer)
		case "sub":
			err = unmarshalString(val, &c.Subject)
		case "aud":
			c.Audience, err = parseAudience(val)
		case "client_id":
			err = unmarshalString(val, &c.ClientID)
		case "email":
			err = unmarshalString(val, &c.Email)
		case "email_verified":
			err = json.Unmarshal(val, &c.EmailVerified)
		case "name":
			err = unmarshalString(val, &c.Name)
		case "preferred_username":
			err = unmarshalString(val, &c.PreferredUsername)
		case "groups":
			err = json.Unmarshal(val, &c.Groups)
		case "sid":
			err = unmarshalString(val, &c.SessionID)
		case "jti":
			err = unmarshalString(val, &c.ID)
		case "auth_time":
			c.AuthTime, err = parseNumericDate(val)
		case "iat":
			c.IssuedAt, err = parseNumericDate(val)
		case "nbf":
			c.NotBefore, err = parseNumericDate(val)
		case "exp":
			c.Expiry, err = parseNumericDate(val)
		default:
			var x any
			if err = json.Unmarshal(val, &x); err == nil {
				if c.Extra == nil {
					c.Extra = make(map[string]any)
				}
				c.Extra[name] = x
			}
		}
		if err != nil {
			return nil, fmt.Errorf("%w: claim %q: %w", ErrInvalidToken, name, err)
		}
	}
	return c, nil
}

var jsonNull = []byte("null")

func unmarshalString(val json.RawMessage, dst *string) error {
	if bytes.Equal(val, jsonNull) {
		return errors.New("null; want a string")
	}
	return json.Unmarshal(val, dst)
}

// parseAudience accepts a string or an array of strings (RFC 7519 section 4.1.3).
func parseAudience(val json.RawMessage) ([]string, error) {
	if len(val) > 0 && val[0] == '"' {
		var s string
		if err := json.Unmarshal(val, &s); err != nil {
			return nil, err
		}
		return []string{s}, nil
	}
	var list []string
	if err := json.Unmarshal(val, &list); err != nil {
		return nil, err
	}
	return list, nil
}

// maxNumericDate keeps seconds where float64 is exact and time.Unix cannot overflow.
const maxNumericDate = 1 << 53

// parseNumericDate decodes an RFC 7519 NumericDate: seconds since the epoch, possibly
// fractional.
func parseNumericDate(val json.RawMessage) (time.Time, error) {
	if bytes.Equal(val, jsonNull) {
		return time.Time{}, errors.New("null; want a number")
	}
	var f float64
	if err := json.Unmarshal(val, &f); err != nil {
		return time.Time{}, err
	}
	if f <= 0 || f > maxNumericDate {
		return time.Time{}, fmt.Errorf("%v is out of range", f)
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), nil
}
