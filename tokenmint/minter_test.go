package tokenmint_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/gatehouse/gatehouse/tokenmint"
)

// decodeSegment decodes one base64url JSON segment of a compact JWS into a map.
func decodeSegment(t *testing.T, seg string) map[string]any {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		t.Fatalf("decoding segment %q: %v", seg, err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("decoding segment JSON %s: %v", raw, err)
	}
	return m
}

// parseMinted checks tok's signature with go-jose against m's published keys and
// returns its header and claims as generic JSON.
func parseMinted(t *testing.T, m *tokenmint.Minter, tok tokenmint.Token, alg string) (hdr, cl map[string]any) {
	t.Helper()
	jws, err := jose.ParseSignedCompact(tok.Raw, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)})
	if err != nil {
		t.Fatalf("ParseSignedCompact: %v", err)
	}
	jwks := m.JWKS()
	if _, err := jws.Verify(&jwks); err != nil {
		t.Fatalf("signature does not verify with the published JWKS: %v", err)
	}
	parts := strings.Split(tok.Raw, ".")
	return decodeSegment(t, parts[0]), decodeSegment(t, parts[1])
}

func TestMintHeaderAndClaims(t *testing.T) {
	for _, alg := range algorithms {
		t.Run(alg, func(t *testing.T) {
			clk := newClock()
			k := testKey(t, alg, 0)
			m := newMinter(t, clk, k)
			now := clk.Now()
			tok := mint(t, m, "session-hash", testAudience, fullIdentity())

			hdr, cl := parseMinted(t, m, tok, alg)
			wantHdr := map[string]any{"alg": alg, "kid": k.KeyID(), "typ": "at+jwt"}
			if !reflect.DeepEqual(hdr, wantHdr) {
				t.Errorf("header = %v; want %v", hdr, wantHdr)
			}

			jti, _ := cl["jti"].(string)
			if len(jti) != 22 { // 128 bits, base64url
				t.Errorf("jti = %q; want 22 random base64url characters", jti)
			}
			delete(cl, "jti")
			exp := now.Add(2 * time.Minute)
			want := map[string]any{
				"iss":                testIssuer,
				"aud":                testAudience,
				"sub":                "user-123",
				"client_id":          "gatehouse",
				"email":              "ada@example.com",
				"email_verified":     true,
				"name":               "Ada Lovelace",
				"preferred_username": "ada",
				"groups":             []any{"admins", "staff"},
				"sid":                "c2Vzc2lvbi1oYXNo",
				"auth_time":          float64(1_699_999_000),
				"iat":                float64(now.Unix()),
				"nbf":                float64(now.Unix()),
				"exp":                float64(exp.Unix()),
				"tenant":             "acme",
			}
			if !reflect.DeepEqual(cl, want) {
				t.Errorf("claims = %v;\nwant %v", cl, want)
			}
			if !tok.Expiry.Equal(exp) {
				t.Errorf("Expiry = %s; want %s", tok.Expiry, exp)
			}
		})
	}
}

func TestMintOmitsEmptyClaims(t *testing.T) {
	clk := newClock()
	m := newMinter(t, clk, testKey(t, "ES256", 0))
	tok := mint(t, m, "", testAudience, &tokenmint.Identity{Subject: "user-1", Groups: []string{}, Extra: map[string]any{}})
	_, cl := parseMinted(t, m, tok, "ES256")
	var got []string
	for name := range cl {
		got = append(got, name)
	}
	want := []string{"aud", "exp", "iat", "iss", "jti", "nbf", "sub"}
	if !sameSet(got, want) {
		t.Errorf("claims %v; want exactly %v", got, want)
	}

	// email_verified accompanies email, true or false.
	// An auth_time at or before the epoch is no login time: left out.
	tok = mint(t, m, "", testAudience, &tokenmint.Identity{Subject: "user-1", AuthTime: time.Unix(0, 0)})
	if _, cl := parseMinted(t, m, tok, "ES256"); cl["auth_time"] != nil {
		t.Errorf("auth_time = %v for the epoch; want it omitted", cl["auth_time"])
	}

	tok = mint(t, m, "", testAudience, &tokenmint.Identity{Subject: "user-1", Email: "a@example.com"})
	if _, cl := parseMinted(t, m, tok, "ES256"); cl["email_verified"] != false {
		t.Errorf("email_verified = %v with an unverified email; want false", cl["email_verified"])
	}
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	seen := make(map[string]bool, len(a))
	for _, s := range a {
		seen[s] = true
	}
	for _, s := range b {
		if !seen[s] {
			return false
		}
	}
	return true
}

func TestMintRejectsBadInput(t *testing.T) {
	m := newMinter(t, newClock(), testKey(t, "ES256", 0))
	canceled, cancel := context.WithCancel(t.Context())
	cancel()
	tests := []struct {
		name     string
		ctx      context.Context // default t.Context()
		audience string          // default testAudience
		id       *tokenmint.Identity
		want     string
	}{
		{name: "empty audience", audience: "-", id: fullIdentity(), want: "empty audience"},
		{name: "nil identity", want: "no subject"},
		{name: "no subject", id: &tokenmint.Identity{Email: "a@example.com"}, want: "no subject"},
		{name: "canceled context", ctx: canceled, id: fullIdentity(), want: "context canceled"},
		{name: "unencodable extra claim", id: &tokenmint.Identity{Subject: "u", Extra: map[string]any{"ch": make(chan int)}}, want: `extra claim "ch"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, aud := tt.ctx, tt.audience
			if ctx == nil {
				ctx = t.Context()
			}
			switch aud {
			case "":
				aud = testAudience
			case "-":
				aud = ""
			}
			_, err := m.Mint(ctx, "session", aud, tt.id)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Mint error = %v; want one containing %q", err, tt.want)
			}
		})
	}
}

func TestMintExtraCannotOverrideClaims(t *testing.T) {
	clk := newClock()
	m := newMinter(t, clk, testKey(t, "ES256", 0))
	id := fullIdentity()
	id.Extra = map[string]any{
		"sub": "admin", "iss": "https://evil.test", "aud": []string{"api", "billing"}, "exp": 9_999_999_999,
		"iat": 1, "nbf": 1, "jti": "fixed", "groups": []string{"root"}, "email": "ceo@corp.test",
		"cnf": map[string]any{"jkt": "attacker"}, "nonce": "n", "azp": "other", "typ": "id",
		"department": "R&D",
	}
	tok := mint(t, m, "", testAudience, id)
	_, cl := parseMinted(t, m, tok, "ES256")
	for name, want := range map[string]any{
		"sub": "user-123", "iss": testIssuer, "aud": testAudience,
		"exp": float64(clk.Now().Add(2 * time.Minute).Unix()), "iat": float64(clk.Now().Unix()),
		"groups": []any{"admins", "staff"}, "email": "ada@example.com", "department": "R&D",
	} {
		if !reflect.DeepEqual(cl[name], want) {
			t.Errorf("claim %s = %v; want %v", name, cl[name], want)
		}
	}
	for _, name := range []string{"cnf", "nonce", "azp", "typ"} {
		if v, ok := cl[name]; ok {
			t.Errorf("claim %s = %v; want it absent", name, v)
		}
	}
	if cl["jti"] == "fixed" {
		t.Error(`jti = "fixed"; want a random one`)
	}
}

func TestMintCache(t *testing.T) {
	clk := newClock()
	m := newMinter(t, clk, testKey(t, "ES256", 0))
	id := fullIdentity()

	first := mint(t, m, "s1", "api", id)
	if again := mint(t, m, "s1", "api", id); again.Raw != first.Raw {
		t.Error("second Mint for the same session and audience signed a new token; want the cached one")
	}
	if minted, hits := m.Stats(); minted != 1 || hits != 1 {
		t.Errorf("Stats() = %d minted, %d hits; want 1, 1", minted, hits)
	}
	if other := mint(t, m, "s1", "billing", id); other.Raw == first.Raw {
		t.Error("another audience got the same token")
	}
	if other := mint(t, m, "s2", "api", id); other.Raw == first.Raw {
		t.Error("another session got the same token")
	}
	if fresh := mint(t, m, "", "api", id); fresh.Raw == first.Raw {
		t.Error("an empty cacheKey got the cached token; want a new signature every time")
	}

	// Reused while more than half of the 2-minute lifetime remains.
	clk.Advance(time.Minute - time.Second)
	if again := mint(t, m, "s1", "api", id); again.Raw != first.Raw {
		t.Error("token re-minted with 61s of 120s left; want it reused")
	}
	clk.Advance(time.Second)
	renewed := mint(t, m, "s1", "api", id)
	if renewed.Raw == first.Raw {
		t.Error("token reused with half its lifetime left; want a new one")
	}
	if want := clk.Now().Add(2 * time.Minute); !renewed.Expiry.Equal(want) {
		t.Errorf("renewed Expiry = %s; want %s", renewed.Expiry, want)
	}
	if again := mint(t, m, "s1", "api", id); again.Raw != renewed.Raw {
		t.Error("renewed token not cached")
	}

	// A clock that went back before the token's iat does not get a not-yet-valid token.
	clk.Advance(-time.Hour)
	if back := mint(t, m, "s1", "api", id); back.Raw == renewed.Raw {
		t.Error("clock went back an hour and the cached token was reused; want a new one")
	}
}

func TestForget(t *testing.T) {
	m := newMinter(t, newClock(), testKey(t, "ES256", 0))
	id := fullIdentity()
	api := mint(t, m, "s1", "api", id)
	billing := mint(t, m, "s1", "billing", id)
	other := mint(t, m, "s2", "api", id)

	m.Forget("s1")
	if got := mint(t, m, "s1", "api", id); got.Raw == api.Raw {
		t.Error("after Forget the api token was still cached")
	}
	if got := mint(t, m, "s1", "billing", id); got.Raw == billing.Raw {
		t.Error("after Forget the billing token was still cached")
	}
	if got := mint(t, m, "s2", "api", id); got.Raw != other.Raw {
		t.Error("Forget(s1) dropped s2's token too")
	}
	m.Forget("never-seen") // no panic, no effect
}

func TestMintConcurrentMissesSignOnce(t *testing.T) {
	// RS256 signs slowly, so the goroutines overlap in the miss.
	m := newMinter(t, newClock(), testKey(t, "RS256", 0))
	const n = 16
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		raws  = make([]string, n)
		errs  = make([]error, n)
	)
	for i := range n {
		wg.Go(func() {
			<-start
			tok, err := m.Mint(t.Context(), "session", "api", fullIdentity())
			raws[i], errs[i] = tok.Raw, err
		})
	}
	close(start)
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("Mint #%d: %v", i, errs[i])
		}
		if raws[i] != raws[0] {
			t.Fatalf("Mint #%d returned another token than #0; want one shared signature", i)
		}
	}
	if minted, hits := m.Stats(); minted != 1 || hits != n-1 {
		t.Errorf("Stats() = %d minted, %d hits; want 1, %d", minted, hits, n-1)
	}
}

func TestSetKeys(t *testing.T) {
	clk := newClock()
	oldKey, newKey := testKey(t, "ES256", 0), testKey(t, "EdDSA", 0)
	m := newMinter(t, clk, oldKey)
	id := fullIdentity()
	old := mint(t, m, "s1", "api", id)

	// Promote the new key, keep the old one published.
	if err := m.SetKeys([]*tokenmint.Key{newKey, oldKey}); err != nil {
		t.Fatalf("SetKeys: %v", err)
	}
	rotated := mint(t, m, "s1", "api", id)
	if rotated.Raw == old.Raw {
		t.Fatal("after SetKeys the cached token was handed out; want the cache dropped")
	}
	if hdr, _ := parseMinted(t, m, rotated, "EdDSA"); hdr["kid"] != newKey.KeyID() {
		t.Errorf("rotated token kid = %v; want the new key %s", hdr["kid"], newKey.KeyID())
	}
	if _, cl := parseMinted(t, m, old, "ES256"); cl["sub"] != "user-123" {
		t.Errorf("old token no longer verifies against the JWKS")
	}
	if got := kids(m.JWKS()); !reflect.DeepEqual(got, []string{newKey.KeyID(), oldKey.KeyID()}) {
		t.Errorf("JWKS kids = %v; want new then old", got)
	}

	// Retire the old key.
	if err := m.SetKeys([]*tokenmint.Key{newKey}); err != nil {
		t.Fatalf("SetKeys: %v", err)
	}
	if got := kids(m.JWKS()); !reflect.DeepEqual(got, []string{newKey.KeyID()}) {
		t.Errorf("JWKS kids after retirement = %v; want only %s", got, newKey.KeyID())
	}
	body := get(t, m.JWKSHandler(), http.MethodGet).body
	if strings.Contains(body, oldKey.KeyID()) {
		t.Errorf("served JWKS %s still lists the retired key", body)
	}

	for name, keys := range map[string][]*tokenmint.Key{
		"none":      nil,
		"nil key":   {newKey, nil},
		"duplicate": {newKey, oldKey, newKey},
	} {
		if err := m.SetKeys(keys); err == nil {
			t.Errorf("SetKeys(%s) succeeded; want an error", name)
		}
	}
	if got := kids(m.JWKS()); !reflect.DeepEqual(got, []string{newKey.KeyID()}) {
		t.Errorf("a failed SetKeys changed the JWKS to %v", got)
	}
}

func kids(set jose.JSONWebKeySet) []string {
	var out []string
	for _, k := range set.Keys {
		out = append(out, k.KeyID)
	}
	return out
}

func TestCacheIsBounded(t *testing.T) {
	clk := newClock()
	m, err := tokenmint.NewMinter(tokenmint.Config{Issuer: testIssuer, Keys: []*tokenmint.Key{testKey(t, "EdDSA", 0)}, Now: clk.Now, CacheSize: 3})
	if err != nil {
		t.Fatal(err)
	}
	id := fullIdentity()
	sessions := []string{"a", "b", "c", "d", "e", "f", "g", "h"}
	for _, s := range sessions {
		mint(t, m, s, "api", id)
	}
	for _, s := range sessions {
		mint(t, m, s, "api", id)
	}
	// The second round can hit at most the 3 entries the cache holds when it starts;
	// each miss evicts one more.
	if _, hits := m.Stats(); hits > 3 {
		t.Errorf("cache of size 3 served %d hits out of %d sessions; want at most 3", hits, len(sessions))
	}

	// A full cache evicts a token past its reuse time before a fresh one.
	m, err = tokenmint.NewMinter(tokenmint.Config{Issuer: testIssuer, Keys: []*tokenmint.Key{testKey(t, "EdDSA", 0)}, Now: clk.Now, CacheSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	mint(t, m, "old", "api", id)
	clk.Advance(time.Minute)
	fresh := mint(t, m, "fresh", "api", id)
	mint(t, m, "new", "api", id) // full: evicts "old", which is due for renewal
	if got := mint(t, m, "fresh", "api", id); got.Raw != fresh.Raw {
		t.Error("a fresh token was evicted while an outdated one was cached")
	}
}

func TestNewMinterConfig(t *testing.T) {
	k := testKey(t, "ES256", 0)
	tests := []struct {
		name string
		cfg  tokenmint.Config
		want []string // substrings of the error; none means valid
	}{
		{name: "valid, defaults", cfg: tokenmint.Config{Issuer: testIssuer, Keys: []*tokenmint.Key{k}}},
		{name: "shortest TTL", cfg: tokenmint.Config{Issuer: testIssuer, Keys: []*tokenmint.Key{k}, TTL: 10 * time.Second}},
		{name: "longest TTL", cfg: tokenmint.Config{Issuer: testIssuer, Keys: []*tokenmint.Key{k}, TTL: time.Hour}},
		{name: "no issuer", cfg: tokenmint.Config{Keys: []*tokenmint.Key{k}}, want: []string{"Issuer is empty"}},
		{name: "TTL too short", cfg: tokenmint.Config{Issuer: testIssuer, Keys: []*tokenmint.Key{k}, TTL: 9 * time.Second}, want: []string{"TTL 9s"}},
		{name: "TTL too long", cfg: tokenmint.Config{Issuer: testIssuer, Keys: []*tokenmint.Key{k}, TTL: 2 * time.Hour}, want: []string{"TTL 2h0m0s"}},
		{name: "no keys", cfg: tokenmint.Config{Issuer: testIssuer}, want: []string{"keys is empty"}},
		{name: "nil key", cfg: tokenmint.Config{Issuer: testIssuer, Keys: []*tokenmint.Key{k, nil}}, want: []string{"keys[1] is nil"}},
		{name: "duplicate key", cfg: tokenmint.Config{Issuer: testIssuer, Keys: []*tokenmint.Key{k, k}}, want: []string{"keys[1] is the same key as keys[0]"}},
		{name: "negative cache", cfg: tokenmint.Config{Issuer: testIssuer, Keys: []*tokenmint.Key{k}, CacheSize: -1}, want: []string{"CacheSize -1"}},
		{name: "every problem at once", cfg: tokenmint.Config{TTL: time.Second, CacheSize: -5}, want: []string{"Issuer is empty", "TTL 1s", "keys is empty", "CacheSize -5"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tokenmint.NewMinter(tt.cfg)
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("NewMinter: %v; want success", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("NewMinter succeeded; want an error containing %q", tt.want)
			}
			for _, want := range tt.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
		})
	}
}

func TestMintTTL(t *testing.T) {
	clk := newClock()
	m, err := tokenmint.NewMinter(tokenmint.Config{Issuer: testIssuer, Keys: []*tokenmint.Key{testKey(t, "ES256", 0)}, Now: clk.Now, TTL: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	tok := mint(t, m, "", "api", fullIdentity())
	if want := clk.Now().Add(10 * time.Minute); !tok.Expiry.Equal(want) {
		t.Errorf("Expiry = %s; want %s", tok.Expiry, want)
	}
}

type response struct {
	status int
	header http.Header
	body   string
}

func get(t *testing.T, h http.Handler, method string) response {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, "/oauth2/jwks.json", nil))
	body, _ := io.ReadAll(rec.Result().Body)
	return response{rec.Code, rec.Result().Header, string(body)}
}

func TestJWKSHandler(t *testing.T) {
	keys := []*tokenmint.Key{testKey(t, "ES256", 0), testKey(t, "EdDSA", 0), testKey(t, "RS256", 0)}
	m := newMinter(t, newClock(), keys...)
	h := m.JWKSHandler()

	res := get(t, h, http.MethodGet)
	if res.status != http.StatusOK {
		t.Fatalf("GET status %d; want 200", res.status)
	}
	for name, want := range map[string]string{"Content-Type": "application/json", "Cache-Control": "public, max-age=300"} {
		if got := res.header.Get(name); got != want {
			t.Errorf("%s = %q; want %q", name, got, want)
		}
	}
	var raw struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal([]byte(res.body), &raw); err != nil {
		t.Fatalf("body %s: %v", res.body, err)
	}
	if len(raw.Keys) != len(keys) {
		t.Fatalf("JWKS has %d keys; want %d", len(raw.Keys), len(keys))
	}
	for i, k := range raw.Keys {
		if k["kid"] != keys[i].KeyID() || k["alg"] != keys[i].Algorithm() || k["use"] != "sig" {
			t.Errorf("key %d: kid %v alg %v use %v; want %s %s sig", i, k["kid"], k["alg"], k["use"], keys[i].KeyID(), keys[i].Algorithm())
		}
		for _, private := range []string{"d", "p", "q", "dp", "dq", "qi"} {
			if _, ok := k[private]; ok {
				t.Errorf("key %d publishes private member %q", i, private)
			}
		}
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal([]byte(res.body), &set); err != nil {
		t.Fatalf("go-jose cannot read the JWKS: %v", err)
	}
	for i := range set.Keys {
		if !set.Keys[i].IsPublic() {
			t.Errorf("key %d is not a public key", i)
		}
	}
	if !reflect.DeepEqual(kids(set), kids(m.JWKS())) {
		t.Errorf("served kids %v differ from JWKS() %v", kids(set), kids(m.JWKS()))
	}

	head := get(t, h, http.MethodHead)
	if head.status != http.StatusOK || head.body != "" || head.header.Get("Content-Length") != res.header.Get("Content-Length") {
		t.Errorf("HEAD: status %d, body %q, Content-Length %q; want 200, no body, %q", head.status, head.body, head.header.Get("Content-Length"), res.header.Get("Content-Length"))
	}
	for _, method := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodOptions} {
		res := get(t, h, method)
		if res.status != http.StatusMethodNotAllowed || res.header.Get("Allow") != "GET, HEAD" {
			t.Errorf("%s: status %d Allow %q; want 405 with Allow: GET, HEAD", method, res.status, res.header.Get("Allow"))
		}
	}
}

// gate is an Extra claim value whose encoding blocks until released: a hook into the
// middle of a signing.
type gate struct {
	entered, release chan struct{}
	panics           bool
}

func newGate() *gate { return &gate{entered: make(chan struct{}), release: make(chan struct{})} }

func (g *gate) MarshalJSON() ([]byte, error) {
	close(g.entered)
	<-g.release
	if g.panics {
		panic("claim encoder exploded")
	}
	return []byte(`"gated"`), nil
}

// doneWatcher is a context that reports when a caller starts waiting on Done.
type doneWatcher struct {
	context.Context
	waiting chan struct{}
	once    sync.Once
}

func watchDone(ctx context.Context) *doneWatcher {
	return &doneWatcher{Context: ctx, waiting: make(chan struct{})}
}

func (c *doneWatcher) Done() <-chan struct{} {
	c.once.Do(func() { close(c.waiting) })
	return c.Context.Done()
}

type mintResult struct {
	tok tokenmint.Token
	err error
}

// mintGated starts a Mint whose signing blocks in g, and waits until it does.
func mintGated(t *testing.T, m *tokenmint.Minter, g *gate) <-chan mintResult {
	t.Helper()
	id := fullIdentity()
	id.Extra = map[string]any{"gate": g}
	res := make(chan mintResult, 1)
	go func() {
		tok, err := m.Mint(context.Background(), "s1", "api", id)
		res <- mintResult{tok, err}
	}()
	<-g.entered
	return res
}

func TestChangesDuringSigningAreNotUndone(t *testing.T) {
	for name, change := range map[string]func(*tokenmint.Minter) error{
		"Forget":  func(m *tokenmint.Minter) error { m.Forget("s1"); return nil },
		"SetKeys": func(m *tokenmint.Minter) error { return m.SetKeys([]*tokenmint.Key{testKey(t, "ES256", 1)}) },
	} {
		t.Run(name, func(t *testing.T) {
			m := newMinter(t, newClock(), testKey(t, "ES256", 0))
			g := newGate()
			res := mintGated(t, m, g)
			if err := change(m); err != nil {
				t.Fatal(err)
			}
			close(g.release)
			during := <-res
			if during.err != nil {
				t.Fatalf("Mint in flight: %v", during.err)
			}
			after := mint(t, m, "s1", "api", fullIdentity())
			if after.Raw == during.tok.Raw {
				t.Errorf("the token signed across %s was cached and handed out again", name)
			}
		})
	}
}

func TestMintWaiterHonoursContext(t *testing.T) {
	m := newMinter(t, newClock(), testKey(t, "ES256", 0))
	g := newGate()
	res := mintGated(t, m, g)

	ctx, cancel := context.WithCancel(t.Context())
	w := watchDone(ctx)
	waiterErr := make(chan error, 1)
	go func() {
		_, err := m.Mint(w, "s1", "api", fullIdentity())
		waiterErr <- err
	}()
	select {
	case <-w.waiting:
	case err := <-waiterErr:
		t.Fatalf("second Mint returned (%v) without waiting for the signing in flight", err)
	}
	cancel()
	if err := <-waiterErr; !errors.Is(err, context.Canceled) {
		t.Errorf("waiting Mint with a canceled context = %v; want context.Canceled", err)
	}
	close(g.release)
	first := <-res
	if first.err != nil {
		t.Fatal(first.err)
	}
	if again := mint(t, m, "s1", "api", fullIdentity()); again.Raw != first.tok.Raw {
		t.Error("the signing a waiter gave up on was not cached")
	}
}

func TestMintPanicReleasesWaiters(t *testing.T) {
	m := newMinter(t, newClock(), testKey(t, "ES256", 0))
	g := newGate()
	g.panics = true
	id := fullIdentity()
	id.Extra = map[string]any{"gate": g}
	recovered := make(chan any, 1)
	go func() {
		defer func() { recovered <- recover() }()
		_, _ = m.Mint(context.Background(), "s1", "api", id)
	}()
	<-g.entered

	w := watchDone(t.Context())
	waiterErr := make(chan error, 1)
	go func() {
		_, err := m.Mint(w, "s1", "api", fullIdentity())
		waiterErr <- err
	}()
	select {
	case <-w.waiting:
	case err := <-waiterErr:
		t.Fatalf("second Mint returned (%v) without waiting for the signing in flight", err)
	}
	close(g.release)
	if r := <-recovered; r != "claim encoder exploded" {
		t.Errorf("signer's panic = %v; want it to reach the caller", r)
	}
	if err := <-waiterErr; err == nil || !strings.Contains(err.Error(), "panicked") {
		t.Errorf("waiter got %v; want a signing panicked error", err)
	}
	if _, err := m.Mint(t.Context(), "s1", "api", fullIdentity()); err != nil {
		t.Errorf("Mint after a panicked signing: %v", err)
	}
}

func TestMintConcurrentSessions(t *testing.T) {
	m := newMinter(t, newClock(), testKey(t, "EdDSA", 0))
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 20 {
				key := fmt.Sprintf("s%d", (i+j)%5)
				if _, err := m.Mint(t.Context(), key, "api", fullIdentity()); err != nil {
					t.Error(err)
				}
				if j%7 == 0 {
					m.Forget(key)
				}
			}
		})
	}
	wg.Wait()
	minted, hits := m.Stats()
	if minted+hits != 160 {
		t.Errorf("Stats() = %d minted + %d hits; want 160 calls in all", minted, hits)
	}
}
