package tokenmint_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/gatehouse/gatehouse/tokenmint"
)

// verifyEnv is a Minter publishing one key of each algorithm (ES256 signs) behind a
// real JWKS server that counts its requests, and a clock shared by both sides.
type verifyEnv struct {
	clk        *clock
	es, ed, rs *tokenmint.Key
	minter     *tokenmint.Minter
	jwks       *countingServer
}

func newVerifyEnv(t testing.TB) *verifyEnv {
	t.Helper()
	e := &verifyEnv{clk: newClock(), es: testKey(t, "ES256", 0), ed: testKey(t, "EdDSA", 0), rs: testKey(t, "RS256", 0)}
	e.minter = newMinter(t, e.clk, e.es, e.ed, e.rs)
	e.jwks = serveCounting(t, e.minter.JWKSHandler())
	return e
}

// verifier returns a Verifier of e's JWKS accepting algs (default ES256).
func (e *verifyEnv) verifier(t testing.TB, algs ...string) *tokenmint.Verifier {
	t.Helper()
	return newVerifier(t, tokenmint.VerifierConfig{JWKSURL: e.jwks.URL + "/oauth2/jwks.json", Algorithms: algs, Now: e.clk.Now})
}

// minterFor returns a Minter on e's clock that signs with k.
func (e *verifyEnv) minterFor(t testing.TB, k *tokenmint.Key) *tokenmint.Minter {
	t.Helper()
	return newMinter(t, e.clk, k)
}

func TestVerifyValid(t *testing.T) {
	for _, alg := range algorithms {
		t.Run(alg, func(t *testing.T) {
			e := newVerifyEnv(t)
			v := e.verifier(t, alg)
			if n := e.jwks.requests.Load(); n != 0 {
				t.Errorf("NewVerifier fetched the JWKS %d times; want 0 until the first Verify", n)
			}
			tok := mint(t, e.minterFor(t, testKey(t, alg, 0)), "s", testAudience, fullIdentity())
			got, err := v.Verify(t.Context(), tok.Raw)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			now := e.clk.Now()
			want := &tokenmint.Claims{
				Issuer:            testIssuer,
				Subject:           "user-123",
				Audience:          []string{testAudience},
				ClientID:          "gatehouse",
				Email:             "ada@example.com",
				EmailVerified:     true,
				Name:              "Ada Lovelace",
				PreferredUsername: "ada",
				Groups:            []string{"admins", "staff"},
				SessionID:         "c2Vzc2lvbi1oYXNo",
				AuthTime:          time.Unix(1_699_999_000, 0),
				IssuedAt:          now,
				NotBefore:         now,
				Expiry:            now.Add(2 * time.Minute),
				ID:                got.ID,
				Extra:             map[string]any{"tenant": "acme"},
			}
			if len(got.ID) != 22 {
				t.Errorf("ID = %q; want the 22-character jti", got.ID)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Verify claims = %+v;\nwant %+v", got, want)
			}
			if n := e.jwks.requests.Load(); n != 1 {
				t.Errorf("JWKS fetched %d times; want 1", n)
			}
			// Later tokens verify from the cached keys.
			for range 3 {
				if _, err := v.Verify(t.Context(), tok.Raw); err != nil {
					t.Fatalf("Verify again: %v", err)
				}
			}
			if n := e.jwks.requests.Load(); n != 1 {
				t.Errorf("JWKS fetched %d times after 4 verifications; want 1", n)
			}
		})
	}
}

// hmacJWS signs header and claims with HS256 keyed by secret: the classic attack of
// keying HMAC with the verifier's own public key.
func hmacJWS(t testing.TB, secret []byte, hdr, cl map[string]any) string {
	input := b64(mustJSON(t, hdr)) + "." + b64(mustJSON(t, cl))
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(input))
	return input + "." + b64(mac.Sum(nil))
}

// setLowBit returns s with its last base64url character's lowest bit set: the same
// bytes to a lenient decoder, a different string to anyone else.
func setLowBit(s string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	i := strings.IndexByte(alphabet, s[len(s)-1])
	return s[:len(s)-1] + string(alphabet[i|1])
}

// TestVerifyRejectsAttacks runs the token-verification attack classes of
// SECURITY.md against a verifier of a real JWKS server. The verifier accepts an
// `aud` array only when it contains the verifier's Audience (RFC 7519 section
// 4.1.3); Gatehouse itself always mints a single-string `aud`.
func TestVerifyRejectsAttacks(t *testing.T) {
	e := newVerifyEnv(t)
	now := e.clk.Now()
	leeway := 30 * time.Second
	valid := mint(t, e.minter, "", testAudience, fullIdentity()).Raw
	parts := strings.Split(valid, ".")
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: must(x509.MarshalPKIXPublicKey(&privateKey(t, e.es).(*ecdsa.PrivateKey).PublicKey))})
	jwkJSON := mustJSON(t, e.minter.JWKS().Keys[0])
	unpublished := testKey(t, "ES256", 1)
	es := func(cl map[string]any) string { return signJWS(t, e.es, header(e.es), cl) }
	esHdr := func(kv ...any) string { return signJWS(t, e.es, with(header(e.es), kv...), claims(now)) }
	// A token with a '-' or '_', which the standard base64 alphabet spells '+' or '/'.
	urlSafe := es(claims(now))
	for !strings.ContainsAny(urlSafe, "-_") {
		urlSafe = es(claims(now))
	}

	tests := []struct {
		name   string
		token  string
		algs   []string // verifier algorithms; default ES256
		accept bool     // default: must fail with ErrInvalidToken
	}{
		{name: "control: minted token", token: valid, accept: true},
		{name: "control: forged with the real key and valid claims", token: es(claims(now)), accept: true},

		// alg confusion
		{name: "alg none, no signature", token: b64(mustJSON(t, with(header(e.es), "alg", "none"))) + "." + b64(mustJSON(t, claims(now))) + "."},
		{name: "alg none, junk signature", token: b64(mustJSON(t, with(header(e.es), "alg", "none"))) + "." + b64(mustJSON(t, claims(now))) + ".AAAA", algs: algorithms},
		{name: "alg None", token: b64(mustJSON(t, with(header(e.es), "alg", "None"))) + "." + parts[1] + "." + parts[2], algs: algorithms},
		{name: "HS256 keyed with the public key PEM", token: hmacJWS(t, pubPEM, with(header(e.es), "alg", "HS256"), claims(now)), algs: algorithms},
		{name: "HS256 keyed with the public JWK", token: hmacJWS(t, jwkJSON, with(header(e.es), "alg", "HS256"), claims(now)), algs: algorithms},
		{name: "EdDSA token, verifier pinned to ES256", token: signJWS(t, e.ed, header(e.ed), claims(now))},
		{name: "RS256 token, verifier pinned to ES256", token: signJWS(t, e.rs, header(e.rs), claims(now))},
		{name: "ES256 header naming the EdDSA key", token: signJWS(t, e.es, with(header(e.es), "kid", e.ed.KeyID()), claims(now)), algs: algorithms},
		{name: "ES384 header", token: esHdr("alg", "ES384"), algs: algorithms},
		{name: "no alg", token: esHdr("alg", nil)},

		// time
		{name: "expired beyond leeway", token: es(with(claims(now.Add(-10*time.Minute)), "exp", now.Add(-leeway).Unix()))},
		{name: "expired within leeway", token: es(with(claims(now.Add(-10*time.Minute)), "exp", now.Add(-leeway+time.Second).Unix())), accept: true},
		{name: "not yet valid beyond leeway", token: es(with(claims(now), "nbf", now.Add(leeway+time.Second).Unix()))},
		{name: "not yet valid within leeway", token: es(with(claims(now), "nbf", now.Add(leeway).Unix())), accept: true},
		{name: "issued in the future", token: es(claims(now.Add(leeway + time.Second)))},
		{name: "no exp", token: es(with(claims(now), "exp", nil))},
		{name: "no iat", token: es(with(claims(now), "iat", nil))},
		{name: "exp as a string", token: es(with(claims(now), "exp", "9999999999"))},
		{name: "iat as a string", token: es(with(claims(now), "iat", fmt.Sprint(now.Unix())))},
		{name: "nbf as a string", token: es(with(claims(now), "nbf", fmt.Sprint(now.Unix())))},
		{name: "exp as a boolean", token: es(with(claims(now), "exp", true))},
		{name: "exp null", token: es(with(claims(now), "exp", json.RawMessage("null")))},
		{name: "exp enormous", token: es(with(claims(now), "exp", 1e300))},

		// issuer and audience
		{name: "wrong issuer", token: es(with(claims(now), "iss", "https://evil.test"))},
		{name: "issuer with trailing slash", token: es(with(claims(now), "iss", testIssuer+"/"))},
		{name: "issuer in another case", token: es(with(claims(now), "iss", strings.ToUpper(testIssuer)))},
		{name: "no issuer", token: es(with(claims(now), "iss", nil))},
		{name: "wrong audience", token: es(with(claims(now), "aud", "billing"))},
		{name: "audience in another case", token: es(with(claims(now), "aud", "API"))},
		{name: "aud array without ours", token: es(with(claims(now), "aud", []string{"billing", "admin"}))},
		{name: "aud array containing ours among others", token: es(with(claims(now), "aud", []string{"billing", testAudience})), accept: true},
		{name: "aud empty array", token: es(with(claims(now), "aud", []string{}))},
		{name: "no aud", token: es(with(claims(now), "aud", nil))},
		{name: "aud as a number", token: es(with(claims(now), "aud", 7))},
		{name: "no sub", token: es(with(claims(now), "sub", nil))},
		{name: "sub as a number", token: es(with(claims(now), "sub", 123))},

		// token type: an ID token, a logout token or a plain JWT is not an access token
		{name: "typ missing", token: esHdr("typ", nil)},
		{name: "typ JWT (an ID token)", token: signJWS(t, e.es, with(header(e.es), "typ", "JWT"), with(claims(now), "nonce", "n", "azp", "gatehouse"))},
		{name: "typ logout+jwt", token: esHdr("typ", "logout+jwt")},
		{name: "typ application/jwt", token: esHdr("typ", "application/jwt")},
		{name: "typ with a trailing space", token: esHdr("typ", "at+jwt ")},
		{name: "typ not a string", token: esHdr("typ", 1)},
		{name: "typ AT+JWT", token: esHdr("typ", "AT+JWT"), accept: true},
		{name: "typ application/at+jwt", token: esHdr("typ", "application/at+jwt"), accept: true},
		{name: "typ Application/AT+JWT", token: esHdr("typ", "Application/AT+JWT"), accept: true},

		// keys
		{name: "no kid", token: esHdr("kid", nil)},
		{name: "unknown kid", token: signJWS(t, unpublished, header(unpublished), claims(now))},
		{name: "published kid, signed by another key", token: signJWS(t, unpublished, header(e.es), claims(now))},
		{name: "unknown critical header", token: esHdr("crit", []string{"exp"}, "exp", 1)},

		// tampering and malformation
		{name: "tampered payload", token: parts[0] + "." + b64(mustJSON(t, with(claims(now), "sub", "admin"))) + "." + parts[2]},
		{name: "tampered signature", token: parts[0] + "." + parts[1] + "." + flipFirst(parts[2])},
		{name: "tampered header", token: b64(mustJSON(t, with(header(e.es), "typ", "AT+JWT"))) + "." + parts[1] + "." + parts[2]},
		{name: "signature of another token", token: parts[0] + "." + parts[1] + "." + strings.Split(es(claims(now)), ".")[2]},
		{name: "truncated by one", token: valid[:len(valid)-1]},
		{name: "truncated by ten", token: valid[:len(valid)-10]},
		{name: "no signature", token: parts[0] + "." + parts[1] + "."},
		{name: "no signature segment", token: parts[0] + "." + parts[1]},
		{name: "header only", token: parts[0]},
		{name: "four segments", token: valid + "." + parts[2]},
		{name: "empty", token: ""},
		{name: "dots", token: ".."},
		{name: "line break inside", token: valid[:20] + "\n" + valid[20:]},
		{name: "padding", token: valid + "=="},
		{name: "non-canonical base64 trailing bits", token: parts[0] + "." + parts[1] + "." + setLowBit(parts[2])},
		{name: "standard base64 alphabet", token: strings.NewReplacer("-", "+", "_", "/").Replace(urlSafe)},
		{name: "JWS JSON serialization", token: `{"payload":"` + parts[1] + `","protected":"` + parts[0] + `","signature":"` + parts[2] + `"}`},
		{name: "payload not JSON", token: signJWS(t, e.es, header(e.es), nil)},
		{name: "oversized", token: parts[0] + "." + b64(mustJSON(t, with(claims(now), "pad", strings.Repeat("x", 70000)))) + "." + parts[2]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := e.verifier(t, tt.algs...)
			c, err := v.Verify(t.Context(), tt.token)
			if tt.accept {
				if err != nil {
					t.Fatalf("Verify: %v; want the token accepted", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Verify accepted the token (sub %q); want it rejected", c.Subject)
			}
			if !errors.Is(err, tokenmint.ErrInvalidToken) {
				t.Errorf("Verify error %q does not wrap ErrInvalidToken", err)
			}
			t.Logf("rejected: %v", err)
			if c != nil {
				t.Errorf("Verify returned claims %+v with an error", c)
			}
		})
	}
}

// flipFirst changes s's first base64url character to another one.
func flipFirst(s string) string {
	if s[0] == 'A' {
		return "B" + s[1:]
	}
	return "A" + s[1:]
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestVerifyNeverFetchesKeysNamedByToken sends tokens whose headers point at an
// attacker's keys (jku, x5u) or carry them (jwk, x5c). None may verify, and the
// attacker's server must never be asked for anything.
func TestVerifyNeverFetchesKeysNamedByToken(t *testing.T) {
	e := newVerifyEnv(t)
	now := e.clk.Now()
	attackerKey := testKey(t, "ES256", 2)
	attackerJWKS := newMinter(t, e.clk, attackerKey).JWKSHandler()
	attacker := serveCounting(t, attackerJWKS)
	attackerJWK := newMinter(t, e.clk, attackerKey).JWKS().Keys[0]
	cert := base64.StdEncoding.EncodeToString(selfSignedCert(t, attackerKey))

	v := e.verifier(t, algorithms...)
	for name, hdr := range map[string]map[string]any{
		"jku, attacker's kid":       with(header(attackerKey), "jku", attacker.URL+"/jwks.json"),
		"jku, published kid":        with(header(e.es), "jku", attacker.URL+"/jwks.json"),
		"x5u, attacker's kid":       with(header(attackerKey), "x5u", attacker.URL+"/cert.pem"),
		"x5u, published kid":        with(header(e.es), "x5u", attacker.URL+"/cert.pem"),
		"embedded jwk":              with(header(attackerKey), "jwk", attackerJWK, "kid", nil),
		"embedded jwk and kid":      with(header(attackerKey), "jwk", attackerJWK),
		"x5c, published kid":        with(header(e.es), "x5c", []string{cert}),
		"x5c and jku, no kid":       with(header(attackerKey), "x5c", []string{cert}, "jku", attacker.URL, "kid", nil),
		"kid is the attacker's URL": with(header(attackerKey), "kid", attacker.URL+"/jwks.json"),
	} {
		token := signJWS(t, attackerKey, hdr, claims(now))
		if c, err := v.Verify(t.Context(), token); err == nil {
			t.Errorf("%s: accepted (sub %q); want rejected", name, c.Subject)
		}
	}
	if n := attacker.requests.Load(); n != 0 {
		t.Errorf("attacker's server received %d requests; want 0", n)
	}
}

// TestVerifyUnknownKidRefetch checks that an unknown kid refetches the pinned JWKS at
// most once per MinRefreshInterval, that concurrent refreshes are merged, and that a
// newly published key is picked up.
func TestVerifyUnknownKidRefetch(t *testing.T) {
	e := newVerifyEnv(t)
	v := e.verifier(t)
	valid := mint(t, e.minter, "", testAudience, fullIdentity()).Raw
	stranger := testKey(t, "ES256", 1)
	unknown := signJWS(t, stranger, header(stranger), claims(e.clk.Now()))
	fetches := func() int64 { return e.jwks.requests.Load() }

	verifyUnknown := func() {
		t.Helper()
		_, err := v.Verify(t.Context(), unknown)
		if !errors.Is(err, tokenmint.ErrInvalidToken) || !strings.Contains(err.Error(), "unknown kid") {
			t.Fatalf("Verify(unknown kid) = %v; want an unknown kid error", err)
		}
	}

	if _, err := v.Verify(t.Context(), valid); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if got := fetches(); got != 1 {
		t.Fatalf("fetches after the first Verify = %d; want 1", got)
	}
	for range 5 {
		verifyUnknown()
	}
	e.clk.Advance(9 * time.Second)
	verifyUnknown()
	if got := fetches(); got != 1 {
		t.Errorf("fetches after unknown kids within 10s = %d; want 1", got)
	}
	e.clk.Advance(time.Second)
	verifyUnknown()
	verifyUnknown()
	if got := fetches(); got != 2 {
		t.Errorf("fetches after an unknown kid 10s later = %d; want 2", got)
	}

	// Many concurrent unknown kids: one fetch.
	e.clk.Advance(10 * time.Second)
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() { _, _ = v.Verify(context.Background(), unknown) })
	}
	wg.Wait()
	if got := fetches(); got != 3 {
		t.Errorf("fetches after 20 concurrent unknown kids = %d; want 3", got)
	}

	// The minter publishes the stranger's key: its tokens verify after the next refetch.
	if err := e.minter.SetKeys([]*tokenmint.Key{e.es, e.ed, e.rs, stranger}); err != nil {
		t.Fatal(err)
	}
	e.clk.Advance(10 * time.Second)
	fresh := signJWS(t, stranger, header(stranger), claims(e.clk.Now()))
	if _, err := v.Verify(t.Context(), fresh); err != nil {
		t.Errorf("Verify with a newly published key: %v", err)
	}
	if got := fetches(); got != 4 {
		t.Errorf("fetches = %d; want 4", got)
	}
}

func TestVerifyMinRefreshInterval(t *testing.T) {
	e := newVerifyEnv(t)
	v := newVerifier(t, tokenmint.VerifierConfig{JWKSURL: e.jwks.URL, Now: e.clk.Now, MinRefreshInterval: time.Minute})
	stranger := testKey(t, "ES256", 1)
	unknown := signJWS(t, stranger, header(stranger), claims(e.clk.Now()))
	for _, step := range []struct {
		advance time.Duration
		fetches int64
	}{{0, 1}, {30 * time.Second, 1}, {29 * time.Second, 1}, {time.Second, 2}, {0, 2}} {
		e.clk.Advance(step.advance)
		_, _ = v.Verify(t.Context(), unknown)
		if got := e.jwks.requests.Load(); got != step.fetches {
			t.Errorf("after advancing %s: fetches = %d; want %d", step.advance, got, step.fetches)
		}
	}
}

func TestVerifyJWKSOutage(t *testing.T) {
	e := newVerifyEnv(t)
	var down atomic.Bool
	down.Store(true)
	jwks := serveCounting(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "upstream unavailable", http.StatusBadGateway)
			return
		}
		e.minter.JWKSHandler().ServeHTTP(w, r)
	}))
	v := newVerifier(t, tokenmint.VerifierConfig{JWKSURL: jwks.URL, Now: e.clk.Now})
	tok := func() string { return mint(t, e.minter, "", testAudience, fullIdentity()).Raw }

	_, err := v.Verify(t.Context(), tok())
	if !errors.Is(err, tokenmint.ErrJWKSUnavailable) || errors.Is(err, tokenmint.ErrInvalidToken) {
		t.Fatalf("Verify with the JWKS down = %v; want ErrJWKSUnavailable only", err)
	}
	if !strings.Contains(err.Error(), "502") {
		t.Errorf("error %q does not say what the JWKS server answered", err)
	}

	down.Store(false)
	if _, err := v.Verify(t.Context(), tok()); !errors.Is(err, tokenmint.ErrJWKSUnavailable) {
		t.Errorf("Verify right after the failed fetch = %v; want ErrJWKSUnavailable until the 1s retry backoff passes", err)
	}
	// The retry comes after a second, not after the whole MinRefreshInterval.
	e.clk.Advance(time.Second)
	if _, err := v.Verify(t.Context(), tok()); err != nil {
		t.Fatalf("Verify a second after the failed fetch, the JWKS back: %v", err)
	}

	// Keys past their 5-minute age are refetched in the background, and kept if
	// the refetch fails.
	down.Store(true)
	before := jwks.requests.Load()
	e.clk.Advance(6 * time.Minute)
	for range 3 {
		if _, err := v.Verify(t.Context(), tok()); err != nil {
			t.Errorf("Verify with stale keys and the JWKS down: %v; want the stale keys used", err)
		}
		if err := tokenmint.WaitForKeys(t.Context(), v); err != nil {
			t.Fatal(err)
		}
	}
	if got := jwks.requests.Load(); got != before+1 {
		t.Errorf("fetches = %d; want %d (one refresh of the stale keys within the retry backoff)", got, before+1)
	}
}

// TestVerifyServesStaleKeysWhileRefreshing: once the keys are older than 5
// minutes, Verify starts a refetch but does not wait for it. The JWKS server
// here holds the refetch and the caller's context ends when the refetch
// arrives: a Verify that waited would fail with context.Canceled.
func TestVerifyServesStaleKeysWhileRefreshing(t *testing.T) {
	e := newVerifyEnv(t)
	var held atomic.Bool
	arrived, release := make(chan struct{}, 1), make(chan struct{})
	jwks := serveCounting(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if held.Load() {
			arrived <- struct{}{}
			select {
			case <-release:
			case <-r.Context().Done():
				return
			}
		}
		e.minter.JWKSHandler().ServeHTTP(w, r)
	}))
	v := newVerifier(t, tokenmint.VerifierConfig{JWKSURL: jwks.URL, Now: e.clk.Now})
	tok := mint(t, e.minter, "", testAudience, fullIdentity()).Raw
	if _, err := v.Verify(t.Context(), tok); err != nil {
		t.Fatal(err)
	}
	held.Store(true)
	e.clk.Advance(5 * time.Minute)
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		<-arrived
		cancel()
	}()
	if _, err := v.Verify(ctx, mint(t, e.minter, "", testAudience, fullIdentity()).Raw); err != nil {
		t.Errorf("Verify with stale keys during a refetch: %v; want the stale keys used at once", err)
	}
	close(release)
	if err := tokenmint.WaitForKeys(t.Context(), v); err != nil {
		t.Fatal(err)
	}
	if n := jwks.requests.Load(); n != 2 {
		t.Errorf("fetches = %d; want 2", n)
	}
}

func TestVerifyRetiredKeyStopsVerifying(t *testing.T) {
	e := newVerifyEnv(t)
	v := e.verifier(t, algorithms...)
	oldSigner := e.minterFor(t, e.ed)
	if _, err := v.Verify(t.Context(), mint(t, oldSigner, "", testAudience, fullIdentity()).Raw); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if err := e.minter.SetKeys([]*tokenmint.Key{e.es, e.rs}); err != nil {
		t.Fatal(err)
	}
	e.clk.Advance(4 * time.Minute)
	if _, err := v.Verify(t.Context(), mint(t, oldSigner, "", testAudience, fullIdentity()).Raw); err != nil {
		t.Errorf("Verify 4 minutes after retirement: %v; want the cached key still used", err)
	}
	// At 5 minutes the keys are stale: the Verify that notices still uses them
	// and starts the refetch; once it lands, the retired key is refused.
	e.clk.Advance(time.Minute)
	if _, err := v.Verify(t.Context(), mint(t, oldSigner, "", testAudience, fullIdentity()).Raw); err != nil {
		t.Errorf("Verify that starts the refetch of stale keys: %v; want them used meanwhile", err)
	}
	if err := tokenmint.WaitForKeys(t.Context(), v); err != nil {
		t.Fatal(err)
	}
	_, err := v.Verify(t.Context(), mint(t, oldSigner, "", testAudience, fullIdentity()).Raw)
	if !errors.Is(err, tokenmint.ErrInvalidToken) {
		t.Errorf("Verify after the refetch = %v; want the retired key rejected", err)
	}
}

func TestVerifyDoesNotFollowRedirects(t *testing.T) {
	e := newVerifyEnv(t)
	redirector := serveCounting(t, http.RedirectHandler(e.jwks.URL+"/jwks.json", http.StatusFound))
	v := newVerifier(t, tokenmint.VerifierConfig{JWKSURL: redirector.URL, Now: e.clk.Now})
	_, err := v.Verify(t.Context(), mint(t, e.minter, "", testAudience, fullIdentity()).Raw)
	if !errors.Is(err, tokenmint.ErrJWKSUnavailable) {
		t.Errorf("Verify through a redirecting JWKS URL = %v; want ErrJWKSUnavailable", err)
	}
	if n := e.jwks.requests.Load(); n != 0 {
		t.Errorf("the redirect target received %d requests; want 0", n)
	}
}

func TestVerifyContextCanceledWhileFetching(t *testing.T) {
	e := newVerifyEnv(t)
	arrived, release := make(chan struct{}), make(chan struct{})
	jwks := serveCounting(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-release
		e.minter.JWKSHandler().ServeHTTP(w, r)
	}))
	v := newVerifier(t, tokenmint.VerifierConfig{JWKSURL: jwks.URL, Now: e.clk.Now})
	tok := mint(t, e.minter, "", testAudience, fullIdentity()).Raw

	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		<-arrived
		cancel()
	}()
	if _, err := v.Verify(ctx, tok); !errors.Is(err, context.Canceled) {
		t.Errorf("Verify with a canceled context = %v; want context.Canceled", err)
	}
	// The fetch goes on for others: the next caller gets its result.
	close(release)
	if _, err := v.Verify(t.Context(), tok); err != nil {
		t.Errorf("Verify after the fetch completed: %v", err)
	}
	if n := jwks.requests.Load(); n != 1 {
		t.Errorf("fetches = %d; want 1", n)
	}
}

func TestVerifySkipsUnusableJWKSEntries(t *testing.T) {
	e := newVerifyEnv(t)
	pub := e.minter.JWKS().Keys[0]
	priv := jose.JSONWebKey{Key: privateKey(t, e.ed), KeyID: e.ed.KeyID(), Algorithm: "EdDSA"}
	body := `{"keys":[` +
		`{"kty":"oct","kid":"hmac","k":"c2VjcmV0"},` +
		`{"kty":"EC","kid":"bad","crv":"P-256","x":"AA","y":"AA"},` +
		`{"kty":"QKD","kid":"future"},` +
		string(mustJSON(t, priv)) + `,` +
		string(mustJSON(t, with(jwkMap(t, pub), "use", "enc", "kid", "enc-"+pub.KeyID))) + `,` +
		string(mustJSON(t, pub)) + `]}`
	jwks := serveCounting(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(body))
	}))
	v := newVerifier(t, tokenmint.VerifierConfig{JWKSURL: jwks.URL, Now: e.clk.Now, Algorithms: algorithms})
	if _, err := v.Verify(t.Context(), mint(t, e.minter, "", testAudience, fullIdentity()).Raw); err != nil {
		t.Errorf("Verify with a usable key among unusable ones: %v", err)
	}
	// A key published only with its private half is not used.
	edTok := mint(t, e.minterFor(t, e.ed), "", testAudience, fullIdentity()).Raw
	if _, err := v.Verify(t.Context(), edTok); !errors.Is(err, tokenmint.ErrInvalidToken) {
		t.Errorf("Verify with a key the JWKS published as private = %v; want ErrInvalidToken", err)
	}
}

func jwkMap(t *testing.T, k jose.JSONWebKey) map[string]any {
	var m map[string]any
	if err := json.Unmarshal(mustJSON(t, k), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestNewVerifierConfig(t *testing.T) {
	base := tokenmint.VerifierConfig{Issuer: testIssuer, Audience: testAudience, JWKSURL: "https://gatehouse.test/oauth2/jwks.json"}
	tests := []struct {
		name   string
		change func(*tokenmint.VerifierConfig)
		want   []string // substrings of the error; none means valid
	}{
		{name: "valid", change: func(*tokenmint.VerifierConfig) {}},
		{name: "all algorithms", change: func(c *tokenmint.VerifierConfig) { c.Algorithms = []string{"ES256", "EdDSA", "RS256", "ES256"} }},
		{name: "no issuer", change: func(c *tokenmint.VerifierConfig) { c.Issuer = "" }, want: []string{"Issuer is empty"}},
		{name: "no audience", change: func(c *tokenmint.VerifierConfig) { c.Audience = "" }, want: []string{"Audience is empty"}},
		{name: "no JWKS URL", change: func(c *tokenmint.VerifierConfig) { c.JWKSURL = "" }, want: []string{"JWKSURL is empty"}},
		{name: "relative JWKS URL", change: func(c *tokenmint.VerifierConfig) { c.JWKSURL = "/jwks.json" }, want: []string{`JWKSURL "/jwks.json"`}},
		{name: "file JWKS URL", change: func(c *tokenmint.VerifierConfig) { c.JWKSURL = "file:///etc/jwks.json" }, want: []string{`JWKSURL "file:///etc/jwks.json"`}},
		{name: "alg none", change: func(c *tokenmint.VerifierConfig) { c.Algorithms = []string{"none"} }, want: []string{`"none" is not allowed`}},
		{name: "HS256", change: func(c *tokenmint.VerifierConfig) { c.Algorithms = []string{"ES256", "HS256"} }, want: []string{`"HS256" is not allowed`}},
		{name: "HS512", change: func(c *tokenmint.VerifierConfig) { c.Algorithms = []string{"HS512"} }, want: []string{`"HS512" is not allowed`}},
		{name: "ES384", change: func(c *tokenmint.VerifierConfig) { c.Algorithms = []string{"ES384"} }, want: []string{`"ES384" is not allowed`}},
		{name: "negative refresh", change: func(c *tokenmint.VerifierConfig) { c.MinRefreshInterval = -time.Second }, want: []string{"MinRefreshInterval -1s"}},
		{name: "negative leeway", change: func(c *tokenmint.VerifierConfig) { c.Leeway = -time.Second }, want: []string{"Leeway -1s"}},
		{name: "every problem at once", change: func(c *tokenmint.VerifierConfig) { *c = tokenmint.VerifierConfig{Algorithms: []string{"none"}} },
			want: []string{"Issuer is empty", "Audience is empty", "JWKSURL is empty", `"none"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := base
			tt.change(&cfg)
			_, err := tokenmint.NewVerifier(cfg)
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("NewVerifier: %v; want success", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("NewVerifier succeeded; want an error containing %q", tt.want)
			}
			for _, want := range tt.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
		})
	}
}

func TestVerifyLeeway(t *testing.T) {
	e := newVerifyEnv(t)
	v := newVerifier(t, tokenmint.VerifierConfig{JWKSURL: e.jwks.URL, Now: e.clk.Now, Leeway: 5 * time.Second})
	tok := mint(t, e.minter, "", testAudience, fullIdentity()).Raw
	e.clk.Advance(2*time.Minute + 4*time.Second)
	if _, err := v.Verify(t.Context(), tok); err != nil {
		t.Errorf("Verify 4s after exp with 5s leeway: %v", err)
	}
	e.clk.Advance(time.Second)
	if _, err := v.Verify(t.Context(), tok); !errors.Is(err, tokenmint.ErrInvalidToken) {
		t.Errorf("Verify 5s after exp with 5s leeway = %v; want rejected", err)
	}
}
