package oidcclient

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

const testClientID = "gatehouse"

// clock is a settable time source shared by a test and its Client.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Unix(1_767_225_600, 0)} } // 2026-01-01

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// testKey is a provider signing key.
type testKey struct {
	kid    string
	alg    jose.SignatureAlgorithm
	signer crypto.Signer
}

func newTestKey(t testing.TB, kid string, alg jose.SignatureAlgorithm) *testKey {
	t.Helper()
	var s crypto.Signer
	var err error
	switch alg {
	case jose.ES256:
		s, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jose.RS256:
		s, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		t.Fatalf("no test key for %s", alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	return &testKey{kid: kid, alg: alg, signer: s}
}

func (k *testKey) jwk() jose.JSONWebKey {
	return jose.JSONWebKey{Key: k.signer.Public(), KeyID: k.kid, Algorithm: string(k.alg), Use: "sig"}
}

// sign makes a compact JWS of claims with header fields hdr (alg and kid are
// the key's unless hdr sets them; a nil value removes a field).
func (k *testKey) sign(t testing.TB, hdr, claims map[string]any) string {
	t.Helper()
	h := map[string]any{"alg": string(k.alg), "kid": k.kid}
	for name, v := range hdr {
		if v == nil {
			delete(h, name)
		} else {
			h[name] = v
		}
	}
	input := b64(mustJSON(t, h)) + "." + b64(mustJSON(t, claims))
	sig, err := rawSign(k, []byte(input))
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + b64(sig)
}

// signRaw signs payload as given (any bytes) under the key's usual header.
func (k *testKey) signRaw(t testing.TB, payload string) string {
	t.Helper()
	input := b64(mustJSON(t, map[string]any{"alg": string(k.alg), "kid": k.kid})) + "." + b64([]byte(payload))
	sig, err := rawSign(k, []byte(input))
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + b64(sig)
}

// rawSign signs input as JWS alg k.alg does (RFC 7518 section 3), without
// go-jose, so a test's header can be anything.
func rawSign(k *testKey, input []byte) ([]byte, error) {
	sum := sha256.Sum256(input)
	switch key := k.signer.(type) {
	case *ecdsa.PrivateKey:
		r, s, err := ecdsa.Sign(rand.Reader, key, sum[:])
		if err != nil {
			return nil, err
		}
		out := make([]byte, 64)
		r.FillBytes(out[:32])
		s.FillBytes(out[32:])
		return out, nil
	case *rsa.PrivateKey:
		return rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	}
	return nil, errors.New("unsupported key")
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// provider is an OpenID provider on 127.0.0.1 serving discovery and a JWKS
// the test controls; it counts JWKS requests.
type provider struct {
	*httptest.Server
	jwksRequests atomic.Int64

	mu      sync.Mutex
	keys    []*testKey
	status  int           // JWKS answers this status when not 0
	hold    chan struct{} // JWKS requests wait for it when set
	arrived chan struct{} // receives once per held JWKS request
}

func newProvider(t testing.TB, keys ...*testKey) *provider {
	t.Helper()
	p := &provider{keys: keys}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer":                                p.URL,
			"authorization_endpoint":                p.URL + "/authorize",
			"token_endpoint":                        p.URL + "/token",
			"jwks_uri":                              p.URL + "/keys",
			"end_session_endpoint":                  p.URL + "/end_session",
			"id_token_signing_alg_values_supported": []string{"RS256", "ES256", "HS256", "none"},
		})
	})
	mux.HandleFunc("GET /keys", func(w http.ResponseWriter, r *http.Request) {
		p.jwksRequests.Add(1)
		p.mu.Lock()
		status, hold, arrived := p.status, p.hold, p.arrived
		var set jose.JSONWebKeySet
		for _, k := range p.keys {
			set.Keys = append(set.Keys, k.jwk())
		}
		p.mu.Unlock()
		if hold != nil {
			arrived <- struct{}{}
			select {
			case <-hold:
			case <-r.Context().Done():
				return
			}
		}
		if status != 0 {
			http.Error(w, "unavailable", status)
			return
		}
		_ = json.NewEncoder(w).Encode(set)
	})
	p.Server = httptest.NewServer(mux)
	t.Cleanup(p.Close)
	return p
}

func (p *provider) publish(k *testKey) { p.mu.Lock(); p.keys = append(p.keys, k); p.mu.Unlock() }

func (p *provider) setStatus(code int) { p.mu.Lock(); p.status = code; p.mu.Unlock() }

// holdJWKS makes JWKS requests wait until release; arrived receives once per
// request.
func (p *provider) holdJWKS() (arrived <-chan struct{}, release func()) {
	hold, arr := make(chan struct{}), make(chan struct{}, 64)
	p.mu.Lock()
	p.hold, p.arrived = hold, arr
	p.mu.Unlock()
	return arr, func() {
		p.mu.Lock()
		p.hold, p.arrived = nil, nil
		p.mu.Unlock()
		close(hold)
	}
}

// newClient returns a Client of p, discovered, on clk.
func newClient(t testing.TB, p *provider, clk *clock, change func(*Config)) *Client {
	t.Helper()
	cfg := Config{
		Issuer:            p.URL,
		ClientID:          testClientID,
		AcceptedAudiences: []string{"api"},
		HTTPClient:        p.Client(),
		Now:               clk.Now,
	}
	if change != nil {
		change(&cfg)
	}
	c := New(cfg)
	if err := c.Discover(t.Context()); err != nil {
		t.Fatalf("Discover: %v", err)
	}
	return c
}

// accessClaims is a valid access token's claims for audience "api" at now.
func accessClaims(iss string, now time.Time) map[string]any {
	return map[string]any{
		"iss": iss, "sub": "user-1", "aud": "api", "client_id": "native-app", "scope": "openid api",
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(), "jti": "at-1",
		"email": "ada@example.com", "email_verified": true, "groups": []string{"staff"},
	}
}

// with returns a copy of m with the key/value pairs set (a nil value deletes).
func with(m map[string]any, kv ...any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
		} else {
			out[kv[i].(string)] = kv[i+1]
		}
	}
	return out
}

// hs256 signs claims with HMAC-SHA256 keyed by secret: the attack of keying
// HMAC with the provider's public key.
func hs256(t testing.TB, secret []byte, claims map[string]any) string {
	t.Helper()
	input := b64([]byte(`{"alg":"HS256","kid":"k1"}`)) + "." + b64(mustJSON(t, claims))
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(input))
	return input + "." + b64(mac.Sum(nil))
}

// logoutClaims is a valid back-channel logout token's claims at now.
func logoutClaims(iss string, now time.Time) map[string]any {
	return map[string]any{
		"iss": iss, "aud": testClientID, "iat": now.Unix(), "exp": now.Add(2 * time.Minute).Unix(),
		"jti": "lt-1", "sub": "user-1", "sid": "sid-1",
		"events": map[string]any{backchannelLogoutEvent: map[string]any{}},
	}
}
