package tokenmint_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/tokenmint"
)

const (
	testIssuer   = "https://gatehouse.test"
	testAudience = "api"
)

// algorithms lists every algorithm tokenmint signs with, for per-algorithm subtests.
var algorithms = []string{"ES256", "EdDSA", "RS256"}

// Keys are generated once per test binary: RSA generation is slow.
var (
	keyOnce  sync.Once
	keyCache map[string][]*tokenmint.Key
)

// testKey returns the i-th fixed test key of alg (i < 3).
func testKey(tb testing.TB, alg string, i int) *tokenmint.Key {
	tb.Helper()
	keyOnce.Do(func() {
		keyCache = make(map[string][]*tokenmint.Key)
		for _, a := range algorithms {
			for range 3 {
				k, err := tokenmint.GenerateKey(a)
				if err != nil {
					panic("generating test key: " + err.Error())
				}
				keyCache[a] = append(keyCache[a], k)
			}
		}
	})
	return keyCache[alg][i]
}

// clock is a settable clock for Config.Now and VerifierConfig.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Unix(1_700_000_000, 0)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fullIdentity sets every Identity field.
func fullIdentity() *tokenmint.Identity {
	return &tokenmint.Identity{
		Subject:           "user-123",
		ClientID:          "gatehouse",
		Email:             "ada@example.com",
		EmailVerified:     true,
		Name:              "Ada Lovelace",
		PreferredUsername: "ada",
		Groups:            []string{"admins", "staff"},
		SessionID:         "c2Vzc2lvbi1oYXNo",
		AuthTime:          time.Unix(1_699_999_000, 0),
		Extra:             map[string]any{"tenant": "acme"},
	}
}

func newMinter(tb testing.TB, clk *clock, keys ...*tokenmint.Key) *tokenmint.Minter {
	tb.Helper()
	m, err := tokenmint.NewMinter(tokenmint.Config{Issuer: testIssuer, Keys: keys, Now: clk.Now})
	if err != nil {
		tb.Fatalf("NewMinter: %v", err)
	}
	return m
}

func mint(tb testing.TB, m *tokenmint.Minter, cacheKey, audience string, id *tokenmint.Identity) tokenmint.Token {
	tb.Helper()
	tok, err := m.Mint(tb.Context(), cacheKey, audience, id)
	if err != nil {
		tb.Fatalf("Mint(%q, %q): %v", cacheKey, audience, err)
	}
	return tok
}

// countingServer is an httptest server that counts the requests it receives.
type countingServer struct {
	*httptest.Server
	requests atomic.Int64
}

func serveCounting(tb testing.TB, h http.Handler) *countingServer {
	tb.Helper()
	s := &countingServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		h.ServeHTTP(w, r)
	}))
	tb.Cleanup(s.Close)
	return s
}

func newVerifier(tb testing.TB, cfg tokenmint.VerifierConfig) *tokenmint.Verifier {
	tb.Helper()
	if cfg.Issuer == "" {
		cfg.Issuer = testIssuer
	}
	if cfg.Audience == "" {
		cfg.Audience = testAudience
	}
	v, err := tokenmint.NewVerifier(cfg)
	if err != nil {
		tb.Fatalf("NewVerifier: %v", err)
	}
	return v
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func mustJSON(tb testing.TB, v any) []byte {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatalf("json.Marshal: %v", err)
	}
	return b
}

// privateKey digs the private key out of k through its PEM, as an attacker who stole
// the key file, or a test forging tokens, would.
func privateKey(tb testing.TB, k *tokenmint.Key) crypto.Signer {
	tb.Helper()
	data, err := k.PEM()
	if err != nil {
		tb.Fatalf("PEM: %v", err)
	}
	block, _ := pem.Decode(data)
	priv, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		tb.Fatalf("ParsePKCS8PrivateKey: %v", err)
	}
	return priv.(crypto.Signer)
}

// signJWS builds a compact JWS over any header and claims, signed with k's private
// key by hand, so tests control every byte go-jose would not let them.
func signJWS(tb testing.TB, k *tokenmint.Key, header, claims map[string]any) string {
	tb.Helper()
	input := b64(mustJSON(tb, header)) + "." + b64(mustJSON(tb, claims))
	digest := sha256.Sum256([]byte(input))
	var sig []byte
	switch priv := privateKey(tb, k).(type) {
	case *ecdsa.PrivateKey:
		r, s, err := ecdsa.Sign(rand.Reader, priv, digest[:])
		if err != nil {
			tb.Fatalf("ecdsa.Sign: %v", err)
		}
		sig = make([]byte, 64)
		r.FillBytes(sig[:32])
		s.FillBytes(sig[32:])
	case ed25519.PrivateKey:
		sig = ed25519.Sign(priv, []byte(input))
	case *rsa.PrivateKey:
		var err error
		sig, err = rsa.SignPKCS1v15(rand.Reader, priv, crypto.SHA256, digest[:])
		if err != nil {
			tb.Fatalf("rsa.SignPKCS1v15: %v", err)
		}
	}
	return input + "." + b64(sig)
}

// header returns the header Mint would write for k.
func header(k *tokenmint.Key) map[string]any {
	return map[string]any{"alg": k.Algorithm(), "kid": k.KeyID(), "typ": "at+jwt"}
}

// claims returns valid claims for a token issued at now.
func claims(now time.Time) map[string]any {
	return map[string]any{
		"iss": testIssuer,
		"aud": testAudience,
		"sub": "user-123",
		"iat": now.Unix(),
		"nbf": now.Unix(),
		"exp": now.Add(2 * time.Minute).Unix(),
		"jti": "forged",
	}
}

// with returns a copy of m with the given keys set (or deleted, for a nil value).
func with(m map[string]any, kv ...any) map[string]any {
	out := make(map[string]any, len(m)+len(kv)/2)
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
			continue
		}
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

// selfSignedCert returns a DER certificate for k, for x5c headers an attacker might send.
func selfSignedCert(tb testing.TB, k *tokenmint.Key) []byte {
	tb.Helper()
	priv := privateKey(tb, k)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "attacker"},
		NotBefore:    time.Unix(1_600_000_000, 0),
		NotAfter:     time.Unix(1_900_000_000, 0),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, priv.Public(), priv)
	if err != nil {
		tb.Fatal(err)
	}
	return der
}
