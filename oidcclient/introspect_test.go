package oidcclient

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// introProvider is a provider whose introspection endpoint answers what
// the test sets, per token; it counts calls and records how Gatehouse
// authenticated and what it sent.
type introProvider struct {
	*httptest.Server
	key       *testKey
	calls     atomic.Int64
	advertise bool // discovery names the introspection endpoint

	mu      sync.Mutex
	answers map[string]map[string]any // token -> answer; missing = inactive
	status  int                       // answer this status when not 0
	raw     string                    // answer this body when not ""
	user    string                    // Basic auth of the last call
	pass    string
	form    map[string][]string
	hold    chan struct{} // calls wait for it when set
	arrived chan struct{}
}

func newIntroProvider(t *testing.T, advertise bool) *introProvider {
	t.Helper()
	p := &introProvider{key: newTestKey(t, "k1", jose.ES256), advertise: advertise, answers: map[string]map[string]any{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		meta := map[string]any{
			"issuer": p.URL, "authorization_endpoint": p.URL + "/authorize", "token_endpoint": p.URL + "/token",
			"jwks_uri": p.URL + "/keys", "id_token_signing_alg_values_supported": []string{"ES256"},
		}
		if p.advertise {
			meta["introspection_endpoint"] = p.URL + "/introspect"
		}
		_ = json.NewEncoder(w).Encode(meta)
	})
	mux.HandleFunc("GET /keys", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{p.key.jwk()}})
	})
	mux.HandleFunc("POST /introspect", func(w http.ResponseWriter, r *http.Request) {
		p.calls.Add(1)
		_ = r.ParseForm()
		user, pass, _ := r.BasicAuth()
		p.mu.Lock()
		p.user, p.pass, p.form = user, pass, r.PostForm
		answer, ok := p.answers[r.PostForm.Get("token")]
		status, raw, hold, arrived := p.status, p.raw, p.hold, p.arrived
		p.mu.Unlock()
		if hold != nil {
			arrived <- struct{}{}
			<-hold
		}
		if status != 0 {
			http.Error(w, "no", status)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		switch {
		case raw != "":
			_, _ = w.Write([]byte(raw))
		case ok:
			_ = json.NewEncoder(w).Encode(answer)
		default:
			_, _ = w.Write([]byte(`{"active":false}`))
		}
	})
	p.Server = httptest.NewServer(mux)
	t.Cleanup(p.Close)
	return p
}

func (p *introProvider) set(f func(p *introProvider)) { p.mu.Lock(); f(p); p.mu.Unlock() }

// hydraAnswer is an active answer shaped as Ory Hydra's admin API gives it.
func hydraAnswer(iss string, now time.Time) map[string]any {
	return map[string]any{
		"active": true, "client_id": "native-app", "scope": "openid api", "sub": "user-1",
		"aud": []string{"api"}, "iss": iss, "iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		"token_type": "Bearer", "token_use": "access_token", "username": "",
		"ext": map[string]any{"email": "ada@example.com", "email_verified": true, "groups": []string{"staff"}},
	}
}

func newIntrospector(t *testing.T, p *introProvider, clk *clock, cfg IntrospectionConfig) *Introspector {
	t.Helper()
	c := New(Config{
		Issuer: p.URL, ClientID: "gate house", ClientSecret: "s:e cret/+",
		AcceptedAudiences: []string{"api"}, HTTPClient: p.Client(), Now: clk.Now,
	})
	if err := c.Discover(t.Context()); err != nil {
		t.Fatal(err)
	}
	return NewIntrospector(c, cfg)
}

func TestIntrospectActive(t *testing.T) {
	p := newIntroProvider(t, true)
	clk := newClock()
	in := newIntrospector(t, p, clk, IntrospectionConfig{})
	p.set(func(p *introProvider) { p.answers["ory_at_abc.def"] = hydraAnswer(p.URL, clk.Now()) })

	b, err := in.VerifyAccessToken(t.Context(), "ory_at_abc.def")
	if err != nil {
		t.Fatalf("VerifyAccessToken: %v", err)
	}
	id := b.Identity
	if id.Subject != "user-1" || id.Email != "ada@example.com" || !id.EmailVerified || !reflect.DeepEqual(id.Groups, []string{"staff"}) || b.ClientID != "native-app" {
		t.Errorf("bearer %+v; want user-1, Hydra's ext claims, client native-app", b)
	}
	if want := clk.Now().Add(time.Minute); !b.Expiry.Equal(want) {
		t.Errorf("Expiry %s; want now + cache TTL %s (the token lives an hour)", b.Expiry, want)
	}
	// client_secret_basic, form-encoded first (RFC 6749 2.3.1), and the hint.
	if p.user != "gate+house" || p.pass != "s%3Ae+cret%2F%2B" {
		t.Errorf("Basic auth %q:%q; want the form-encoded client id and secret", p.user, p.pass)
	}
	if p.form["token_type_hint"][0] != "access_token" {
		t.Errorf("form %v; want token_type_hint=access_token", p.form)
	}

	// Cached: no second call until the cache TTL has passed.
	if _, err := in.VerifyAccessToken(t.Context(), "ory_at_abc.def"); err != nil || p.calls.Load() != 1 {
		t.Fatalf("second check: %v, %d calls; want a cache hit", err, p.calls.Load())
	}
	clk.Advance(time.Minute)
	if _, err := in.VerifyAccessToken(t.Context(), "ory_at_abc.def"); err != nil || p.calls.Load() != 2 {
		t.Fatalf("after the cache TTL: %v, %d calls; want a new call", err, p.calls.Load())
	}
	// Revoked at the provider: once the cached answer has run out, refused.
	p.set(func(p *introProvider) { delete(p.answers, "ory_at_abc.def") })
	clk.Advance(time.Minute)
	if _, err := in.VerifyAccessToken(t.Context(), "ory_at_abc.def"); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("revoked token: %v; want ErrInvalidToken", err)
	}
}

// TestIntrospectCacheBoundedByExp: an answer is never believed past the
// token's exp, even when the cache TTL is longer.
func TestIntrospectCacheBoundedByExp(t *testing.T) {
	p := newIntroProvider(t, true)
	clk := newClock()
	in := newIntrospector(t, p, clk, IntrospectionConfig{CacheTTL: time.Hour})
	p.set(func(p *introProvider) {
		p.answers["tok"] = with(hydraAnswer(p.URL, clk.Now()), "exp", clk.Now().Add(30*time.Second).Unix())
	})
	b, err := in.Introspect(t.Context(), "tok")
	if err != nil || !b.Expiry.Equal(clk.Now().Add(30*time.Second)) {
		t.Fatalf("Introspect: %v, expiry %v; want the token's exp", err, b)
	}
	clk.Advance(30 * time.Second)
	if _, err := in.Introspect(t.Context(), "tok"); !errors.Is(err, ErrInvalidToken) || p.calls.Load() != 2 {
		t.Errorf("at exp: %v after %d calls; want a new call refusing it as expired", err, p.calls.Load())
	}
}

// TestIntrospectRefusals: what an active answer must also say, and that
// refusals are remembered for RefusedTTL.
func TestIntrospectRefusals(t *testing.T) {
	clk := newClock()
	now := clk.Now()
	for _, tc := range []struct {
		name   string
		answer func(iss string) map[string]any // nil: inactive
	}{
		{"inactive", nil},
		{"active is a string", func(iss string) map[string]any { return with(hydraAnswer(iss, now), "active", "true") }},
		{"no active", func(iss string) map[string]any { return with(hydraAnswer(iss, now), "active", nil) }},
		{"refresh token (Hydra)", func(iss string) map[string]any {
			return with(hydraAnswer(iss, now), "token_use", "refresh_token")
		}},
		{"refresh token (token_type)", func(iss string) map[string]any {
			return with(hydraAnswer(iss, now), "token_use", nil, "token_type", "refresh_token")
		}},
		{"Keycloak refresh token", func(iss string) map[string]any {
			return with(hydraAnswer(iss, now), "token_use", nil, "token_type", nil, "typ", "Refresh")
		}},
		{"DPoP-bound", func(iss string) map[string]any { return with(hydraAnswer(iss, now), "token_type", "DPoP") }},
		{"another issuer", func(string) map[string]any { return hydraAnswer("https://evil.example", now) }},
		{"expired", func(iss string) map[string]any { return with(hydraAnswer(iss, now), "exp", now.Unix()) }},
		{"exp a string", func(iss string) map[string]any { return with(hydraAnswer(iss, now), "exp", "9999999999") }},
		{"not yet valid", func(iss string) map[string]any {
			return with(hydraAnswer(iss, now), "nbf", now.Add(2*clockSkew).Unix())
		}},
		{"no sub", func(iss string) map[string]any { return with(hydraAnswer(iss, now), "sub", nil) }},
		{"sub not a string", func(iss string) map[string]any { return with(hydraAnswer(iss, now), "sub", 7) }},
		{"another audience", func(iss string) map[string]any { return with(hydraAnswer(iss, now), "aud", []string{"other"}) }},
		{"no audience", func(iss string) map[string]any { return with(hydraAnswer(iss, now), "aud", nil) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newIntroProvider(t, true)
			clk := newClock()
			in := newIntrospector(t, p, clk, IntrospectionConfig{})
			if tc.answer != nil {
				p.set(func(p *introProvider) { p.answers["tok"] = tc.answer(p.URL) })
			}
			for range 2 {
				if b, err := in.Introspect(t.Context(), "tok"); !errors.Is(err, ErrInvalidToken) || errors.Is(err, ErrUnavailable) {
					t.Fatalf("Introspect = %+v, %v; want ErrInvalidToken", b, err)
				}
			}
			if n := p.calls.Load(); n != 1 {
				t.Errorf("%d calls for two checks; want the refusal remembered", n)
			}
			clk.Advance(10 * time.Second)
			_, _ = in.Introspect(t.Context(), "tok")
			if n := p.calls.Load(); n != 2 {
				t.Errorf("%d calls; want a new one once RefusedTTL has passed", n)
			}
		})
	}
}

// TestIntrospectUnavailable: when the provider cannot say, the error is not
// the token's fault (503, not 401), and nothing is remembered.
func TestIntrospectUnavailable(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(p *introProvider)
	}{
		{"server error", func(p *introProvider) { p.status = 500 }},
		{"client credentials refused", func(p *introProvider) { p.status = 401 }},
		{"not JSON", func(p *introProvider) { p.raw = "<html>" }},
		{"too long", func(p *introProvider) {
			p.raw = `{"active":true,"x":"` + strings.Repeat("a", maxIntrospectionAnswer) + `"}`
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newIntroProvider(t, true)
			in := newIntrospector(t, p, newClock(), IntrospectionConfig{})
			p.set(tc.set)
			for i := range 2 {
				_, err := in.Introspect(t.Context(), "tok")
				if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrInvalidToken) {
					t.Fatalf("Introspect: %v; want ErrUnavailable only", err)
				}
				if n := p.calls.Load(); n != int64(i+1) {
					t.Fatalf("%d calls after %d checks; a failure must not be remembered", n, i+1)
				}
			}
		})
	}
	t.Run("unreachable", func(t *testing.T) {
		p := newIntroProvider(t, false)
		down := httptest.NewServer(http.NotFoundHandler())
		down.Close()
		in := newIntrospector(t, p, newClock(), IntrospectionConfig{Endpoint: down.URL + "/introspect"})
		if _, err := in.Introspect(t.Context(), "tok"); !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrInvalidToken) {
			t.Errorf("Introspect: %v; want ErrUnavailable only", err)
		}
	})
	t.Run("no endpoint", func(t *testing.T) {
		p := newIntroProvider(t, false)
		in := newIntrospector(t, p, newClock(), IntrospectionConfig{})
		_, err := in.Introspect(t.Context(), "tok")
		if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "api.introspection_endpoint") {
			t.Errorf("Introspect: %v; want ErrUnavailable naming api.introspection_endpoint", err)
		}
	})
	t.Run("configured endpoint", func(t *testing.T) {
		p := newIntroProvider(t, false)
		clk := newClock()
		in := newIntrospector(t, p, clk, IntrospectionConfig{Endpoint: p.URL + "/introspect"})
		p.set(func(p *introProvider) { p.answers["tok"] = hydraAnswer(p.URL, clk.Now()) })
		if _, err := in.Introspect(t.Context(), "tok"); err != nil {
			t.Errorf("Introspect: %v", err)
		}
	})
}

// TestIntrospectNeverSendsGarbage: what cannot be a bearer token is refused
// before any call, and JWT-shaped tokens are verified locally.
func TestIntrospectNeverSendsGarbage(t *testing.T) {
	p := newIntroProvider(t, true)
	clk := newClock()
	in := newIntrospector(t, p, clk, IntrospectionConfig{})
	for _, tok := range []string{"", "a b", "a\"b", "a,b", "tok\x00", "é", "==", "a=b", strings.Repeat("a", maxOpaqueToken+1)} {
		if _, err := in.VerifyAccessToken(t.Context(), tok); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("%.20q: %v; want ErrInvalidToken", tok, err)
		}
	}
	// A JWT signed by the provider goes to local verification; a forged
	// one is refused there; neither reaches the introspection endpoint.
	good := p.key.sign(t, nil, accessClaims(p.URL, clk.Now()))
	if b, err := in.VerifyAccessToken(t.Context(), good); err != nil || b.Identity.Subject != "user-1" {
		t.Errorf("JWT access token: %v", err)
	}
	forged := newTestKey(t, "k1", jose.ES256).sign(t, nil, accessClaims(p.URL, clk.Now()))
	if _, err := in.VerifyAccessToken(t.Context(), forged); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("forged JWT: %v; want ErrInvalidToken", err)
	}
	if n := p.calls.Load(); n != 0 {
		t.Errorf("%d introspection calls; want none", n)
	}
	// Valid b64token characters do reach it.
	if _, err := in.VerifyAccessToken(t.Context(), "aZ09-._~+/=="); !errors.Is(err, ErrInvalidToken) || p.calls.Load() != 1 {
		t.Errorf("b64token: %v after %d calls; want one call, inactive", err, p.calls.Load())
	}
}

func TestLooksLikeJWT(t *testing.T) {
	for tok, want := range map[string]bool{
		"eyJhbGciOiJSUzI1NiJ9.e30.c2ln": true,  // {"alg":"RS256"}.{}.sig
		"eyJ0eXAiOiJKV1QifQ.e30.c2ln":   false, // {"typ":"JWT"}: no alg
		"ory_at_abc.def":                false,
		"abc":                           false,
		"a.b.c":                         false,
		"eyJhbGciOiJSUzI1NiJ9.e30":      false,
		"eyJhbGciOiJSUzI1NiJ9.a.b.c.d":  false, // JWE-shaped: opaque to us
		"W10.e30.c2ln":                  false, // [] is not an object
	} {
		if got := looksLikeJWT(tok); got != want {
			t.Errorf("looksLikeJWT(%q) = %v; want %v", tok, got, want)
		}
	}
}

// TestIntrospectRateLimit: at most Rate calls a second toward the provider;
// cached answers cost nothing; the bucket refills with time.
func TestIntrospectRateLimit(t *testing.T) {
	p := newIntroProvider(t, true)
	clk := newClock()
	in := newIntrospector(t, p, clk, IntrospectionConfig{Rate: 2})
	p.set(func(p *introProvider) {
		for _, tok := range []string{"t1", "t2", "t3"} {
			p.answers[tok] = hydraAnswer(p.URL, clk.Now())
		}
	})
	for _, tok := range []string{"t1", "t2"} {
		if _, err := in.Introspect(t.Context(), tok); err != nil {
			t.Fatalf("%s: %v", tok, err)
		}
	}
	if _, err := in.Introspect(t.Context(), "t3"); !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "rate") {
		t.Fatalf("third token in the same second: %v; want the rate limit (ErrUnavailable)", err)
	}
	if _, err := in.Introspect(t.Context(), "t1"); err != nil {
		t.Errorf("a cached token under the rate limit: %v", err)
	}
	clk.Advance(500 * time.Millisecond) // one call's worth
	if _, err := in.Introspect(t.Context(), "t3"); err != nil {
		t.Errorf("after the bucket refilled: %v", err)
	}
	if n := p.calls.Load(); n != 3 {
		t.Errorf("%d calls; want 3", n)
	}
}

// TestIntrospectOneCallPerToken: concurrent checks of one token wait for
// one call; a waiter whose request ends gives up without ending the call.
func TestIntrospectOneCallPerToken(t *testing.T) {
	p := newIntroProvider(t, true)
	clk := newClock()
	in := newIntrospector(t, p, clk, IntrospectionConfig{Rate: 1})
	hold, arrived := make(chan struct{}), make(chan struct{}, 8)
	p.set(func(p *introProvider) {
		p.answers["tok"] = hydraAnswer(p.URL, clk.Now())
		p.hold, p.arrived = hold, arrived
	})
	const n = 8
	errs := make(chan error, n)
	for range n {
		go func() { _, err := in.Introspect(t.Context(), "tok"); errs <- err }()
	}
	<-arrived
	// A waiter that gives up.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := in.Introspect(ctx, "tok"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("cancelled waiter: %v; want ErrUnavailable", err)
	}
	close(hold)
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("concurrent check: %v", err)
		}
	}
	if c := p.calls.Load(); c != 1 {
		t.Errorf("%d calls for %d concurrent checks; want 1", c, n)
	}
}

// TestIntrospectBounded: each cache holds at most MaxEntries; a flood of
// distinct tokens starts it over instead of growing it.
func TestIntrospectBounded(t *testing.T) {
	p := newIntroProvider(t, true)
	in := newIntrospector(t, p, newClock(), IntrospectionConfig{MaxEntries: 4, Rate: 100})
	for i := range 10 {
		_, _ = in.Introspect(t.Context(), "tok"+strings.Repeat("x", i))
		in.mu.Lock()
		size := len(in.refused)
		in.mu.Unlock()
		if size > 4 {
			t.Fatalf("refused cache holds %d; want at most 4", size)
		}
	}
}

// FuzzIntrospectionAnswer: whatever the provider answers, judge accepts a
// token only when the answer says active: true (the JSON literal), names a
// sub that becomes the identity's, an audience Gatehouse accepts, and
// never lets the answer be believed past the cache TTL; every refusal says
// whose fault it is, exactly one of ErrInvalidToken and ErrUnavailable.
func FuzzIntrospectionAnswer(f *testing.F) {
	now := newClock().Now()
	for _, a := range []map[string]any{
		hydraAnswer("https://idp.example", now),
		with(hydraAnswer("https://idp.example", now), "active", "true"),
		with(hydraAnswer("https://idp.example", now), "aud", "api"),
		with(hydraAnswer("https://idp.example", now), "exp", 1e300),
		{"active": false},
	} {
		b, _ := json.Marshal(a)
		f.Add(b)
	}
	f.Add([]byte(`{"active":true,"sub":"x","aud":"api","ext":{"sub":"y","email":"e"}}`))
	f.Add([]byte(`{"active":true,"active":false}`))
	f.Add([]byte(`null`))
	in := NewIntrospector(New(Config{Issuer: "https://idp.example", AcceptedAudiences: []string{"api"}, Now: func() time.Time { return now }}), IntrospectionConfig{})
	f.Fuzz(func(t *testing.T, body []byte) {
		b, err := in.judge(body)
		if err != nil {
			if errors.Is(err, ErrInvalidToken) == errors.Is(err, ErrUnavailable) {
				t.Fatalf("error %v wraps both or neither of ErrInvalidToken and ErrUnavailable", err)
			}
			return
		}
		var top struct {
			Active json.RawMessage `json:"active"`
			Sub    string          `json:"sub"`
		}
		if json.Unmarshal(body, &top) != nil || string(top.Active) != "true" {
			t.Fatalf("accepted an answer whose active is %s", top.Active)
		}
		if b.Identity.Subject == "" || b.Identity.Subject != top.Sub {
			t.Fatalf("identity %q from an answer with sub %q", b.Identity.Subject, top.Sub)
		}
		var aud struct {
			Aud any `json:"aud"`
		}
		_ = json.Unmarshal(body, &aud)
		if !strings.Contains(string(mustJSON(t, aud.Aud)), `"api"`) {
			t.Fatalf("accepted audience %v", aud.Aud)
		}
		if b.Expiry.After(now.Add(time.Minute)) || !b.Expiry.After(now) {
			t.Fatalf("believed until %s; want within (now, now+1m]", b.Expiry)
		}
	})
}

// FuzzCheckOpaque: a token that checkOpaque lets through to the provider
// is an RFC 6750 b64token of bounded size, nothing else.
func FuzzCheckOpaque(f *testing.F) {
	for _, s := range []string{"ory_at_abc.def", "a b", "abc==", "==", "a=b", "tok\x00", "é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := checkOpaque(s)
		ok := len(s) > 0 && len(s) <= maxOpaqueToken
		trimmed := strings.TrimRight(s, "=")
		ok = ok && trimmed != "" && strings.Trim(trimmed, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~+/") == ""
		if (err == nil) != ok {
			t.Fatalf("checkOpaque(%q) = %v; want accepted %v", s, err, ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidToken) {
			t.Fatalf("checkOpaque(%q) = %v; want ErrInvalidToken", s, err)
		}
	})
}
