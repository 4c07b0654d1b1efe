package proxy

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/gatehouse/gatehouse/devidp"
	"github.com/gatehouse/gatehouse/internal/testredis"
	"github.com/gatehouse/gatehouse/oidcclient"
	"github.com/gatehouse/gatehouse/redirect"
	"github.com/gatehouse/gatehouse/sessionstore"
	"github.com/gatehouse/gatehouse/tokenmint"
)

const (
	logoutClientID = "gatehouse"
	logoutEvent    = "http://schemas.openid.net/event/backchannel-logout"
)

// logoutIDP is an OpenID provider on 127.0.0.1 (discovery and a JWKS) whose
// signing key the test holds, to sign logout tokens of any shape.
type logoutIDP struct {
	*httptest.Server
	key    *ecdsa.PrivateKey
	kid    string
	jwksUp atomic.Bool
}

func newLogoutIDP(t *testing.T) *logoutIDP {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p := &logoutIDP{key: key, kid: "k1"}
	p.jwksUp.Store(true)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer": p.URL, "authorization_endpoint": p.URL + "/authorize", "token_endpoint": p.URL + "/token",
			"jwks_uri": p.URL + "/keys", "id_token_signing_alg_values_supported": []string{"ES256"},
		})
	})
	mux.HandleFunc("GET /keys", func(w http.ResponseWriter, r *http.Request) {
		if !p.jwksUp.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: p.kid, Algorithm: "ES256", Use: "sig"}}})
	})
	p.Server = httptest.NewServer(mux)
	t.Cleanup(p.Close)
	return p
}

// client is a discovered oidcclient.Client of p: the real verifier.
func (p *logoutIDP) client(t *testing.T) *oidcclient.Client {
	t.Helper()
	c := oidcclient.New(oidcclient.Config{Issuer: p.URL, ClientID: logoutClientID, HTTPClient: p.Client()})
	if err := c.Discover(t.Context()); err != nil {
		t.Fatalf("Discover: %v", err)
	}
	return c
}

// claims is a valid logout token's claims for sub (and sid, if not empty).
func (p *logoutIDP) claims(sub, sid string) map[string]any {
	now := time.Now()
	c := map[string]any{
		"iss": p.URL, "aud": logoutClientID, "iat": now.Unix(), "exp": now.Add(2 * time.Minute).Unix(),
		"jti": fmt.Sprintf("jti-%d", jtiSeq.Add(1)), "sub": sub,
		"events": map[string]any{logoutEvent: map[string]any{}},
	}
	if sid != "" {
		c["sid"] = sid
	}
	return c
}

var jtiSeq atomic.Int64

// sign signs claims with p's key under typ ("" = no typ header).
func (p *logoutIDP) sign(t *testing.T, typ string, claims map[string]any) string {
	t.Helper()
	return p.signWith(t, p.key, p.kid, typ, claims)
}

// signWith signs claims with key, naming it kid.
func (p *logoutIDP) signWith(t *testing.T, k *ecdsa.PrivateKey, kid, typ string, claims map[string]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithHeader("kid", kid)
	if typ != "" {
		opts = opts.WithType(jose.ContentType(typ))
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: k}, opts)
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := jws.CompactSerialize()
	return raw
}

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

// newLogoutServer is a proxy Server with store and login client c, as a
// Gatehouse replica runs it.
func newLogoutServer(t *testing.T, store Store, c LoginClient) *Server {
	t.Helper()
	secret := [][]byte{[]byte("proxy-test-secret-0123456789abcdef0123")}
	codec, err := sessionstore.NewCodec(secret, 12*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	flow, _ := sessionstore.NewCodec(secret, 10*time.Minute)
	key, _ := tokenmint.GenerateKey("ES256")
	minter, err := tokenmint.NewMinter(tokenmint.Config{Issuer: "https://app.example.com", Keys: []*tokenmint.Key{key}})
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := url.Parse("https://app.example.com")
	up, _ := url.Parse("http://127.0.0.1:9")
	policy, _ := redirect.NewPolicy("https://app.example.com", nil)
	srv, err := New(Config{
		PublicURL: pub,
		Cookie:    CookieConfig{Name: "gatehouse", Codec: codec, FlowCodec: flow},
		Session:   SessionConfig{Store: store, IdleTimeout: 30 * time.Minute, MaxLifetime: 12 * time.Hour},
		Token:     TokenConfig{Minter: minter},
		Login:     LoginConfig{Client: c, ClientID: logoutClientID, Redirects: policy},
		Routes:    []*Route{{Name: "app", PathPrefix: "/", Upstream: up, Audience: "app"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return srv
}

// plantSession stores a session of sub from provider login sid.
func plantSession(t *testing.T, store Store, sub, sid string) sessionstore.Ticket {
	t.Helper()
	tk, err := sessionstore.NewTicket()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	s := &sessionstore.Session{Subject: sub, ProviderSID: sid, Email: sub + "@example.com", CreatedAt: now, LastSeen: now,
		AuthTime: now, ExpiresAt: now.Add(time.Hour), Version: 1}
	if err := store.Save(context.Background(), tk, s); err != nil {
		t.Fatal(err)
	}
	return tk
}

func alive(t *testing.T, store Store, tk sessionstore.Ticket) bool {
	t.Helper()
	_, err := store.Load(context.Background(), tk)
	if err != nil && !errors.Is(err, sessionstore.ErrNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

// postLogout sends a form POST of logout_token to srv.
func postLogout(srv http.Handler, token string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "https://app.example.com/oauth2/backchannel_logout",
		strings.NewReader(url.Values{"logout_token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, req)
	return rec
}

// TestBackchannelLogoutRequestShape: exactly one logout_token, in an
// application/x-www-form-urlencoded body. Anything else is a 400 (413 when
// too large, 405 for another method) and ends no session.
func TestBackchannelLogoutRequestShape(t *testing.T) {
	p := newLogoutIDP(t)
	store := sessionstore.NewMemory(sessionstore.MemoryConfig{})
	t.Cleanup(func() { store.Close() })
	srv := newLogoutServer(t, store, p.client(t))
	good := func() string { return p.sign(t, "logout+jwt", p.claims("u1", "")) }
	form := func(v url.Values) string { return v.Encode() }
	var mp bytes.Buffer
	mw := multipart.NewWriter(&mp)
	_ = mw.WriteField("logout_token", good())
	_ = mw.Close()

	tests := []struct {
		name        string
		method      string
		query       string
		contentType string
		body        string
		want        int
	}{
		{"GET", http.MethodGet, "", "", "", http.StatusMethodNotAllowed},
		{"PUT", http.MethodPut, "", "application/x-www-form-urlencoded", form(url.Values{"logout_token": {good()}}), http.StatusMethodNotAllowed},
		{"JSON body", http.MethodPost, "", "application/json", `{"logout_token":"` + good() + `"}`, http.StatusBadRequest},
		{"multipart body", http.MethodPost, "", mw.FormDataContentType(), mp.String(), http.StatusBadRequest},
		{"no content type", http.MethodPost, "", "", form(url.Values{"logout_token": {good()}}), http.StatusBadRequest},
		{"text/plain", http.MethodPost, "", "text/plain", form(url.Values{"logout_token": {good()}}), http.StatusBadRequest},
		{"token in the query", http.MethodPost, "logout_token=" + good(), "application/x-www-form-urlencoded", "", http.StatusBadRequest},
		{"token in query and body", http.MethodPost, "logout_token=" + good(), "application/x-www-form-urlencoded", form(url.Values{"logout_token": {good()}}), http.StatusBadRequest},
		{"two tokens", http.MethodPost, "", "application/x-www-form-urlencoded", form(url.Values{"logout_token": {good(), good()}}), http.StatusBadRequest},
		{"the same token twice", http.MethodPost, "", "application/x-www-form-urlencoded", "logout_token=" + good() + "&logout_token=" + good(), http.StatusBadRequest},
		{"empty token", http.MethodPost, "", "application/x-www-form-urlencoded", "logout_token=", http.StatusBadRequest},
		{"no token", http.MethodPost, "", "application/x-www-form-urlencoded", "other=1", http.StatusBadRequest},
		{"malformed form", http.MethodPost, "", "application/x-www-form-urlencoded", "logout_token=%zz", http.StatusBadRequest},
		{"malformed query", http.MethodPost, "%zz", "application/x-www-form-urlencoded", form(url.Values{"logout_token": {good()}}), http.StatusBadRequest},
		{"too large", http.MethodPost, "", "application/x-www-form-urlencoded", "logout_token=" + good() + "&pad=" + strings.Repeat("a", maxLogoutBody), http.StatusRequestEntityTooLarge},
		{"charset parameter", http.MethodPost, "", "application/x-www-form-urlencoded; charset=UTF-8", form(url.Values{"logout_token": {good()}}), http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tk := plantSession(t, store, "u1", "")
			target := "https://app.example.com/oauth2/backchannel_logout"
			if tt.query != "" {
				target += "?" + tt.query
			}
			req := httptest.NewRequest(tt.method, target, strings.NewReader(tt.body))
			if tt.contentType != "" {
				req.Header.Set("Content-Type", tt.contentType)
			}
			rec := httptest.NewRecorder()
			srv.ServeHTTP(rec, req)
			if rec.Code != tt.want {
				t.Fatalf("status = %d (%s); want %d", rec.Code, rec.Body, tt.want)
			}
			if got := rec.Header().Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control = %q; want no-store", got)
			}
			if tt.want != http.StatusOK {
				if !alive(t, store, tk) {
					t.Error("a refused request ended the session")
				}
				if !strings.Contains(rec.Body.String(), `"invalid_request"`) {
					t.Errorf("body = %s; want a JSON invalid_request error", rec.Body)
				}
			} else if alive(t, store, tk) {
				t.Error("the session survived a valid logout")
			}
		})
	}
}

// TestBackchannelLogoutTokens: a real oidcclient.Client judges each token;
// every refusal is a 400 and ends no session; a valid token ends the
// sessions of its provider login (sid), or of its user (sub only).
func TestBackchannelLogoutTokens(t *testing.T) {
	p := newLogoutIDP(t)
	store := sessionstore.NewMemory(sessionstore.MemoryConfig{})
	t.Cleanup(func() { store.Close() })
	srv := newLogoutServer(t, store, p.client(t))
	stranger, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	c := p.claims("u1", "sid-1")

	for name, tok := range map[string]string{
		"forged signature":                p.signWith(t, stranger, p.kid, "logout+jwt", c),
		"events missing":                  p.sign(t, "logout+jwt", with(c, "events", nil)),
		"events an array":                 p.sign(t, "logout+jwt", with(c, "events", []string{logoutEvent})),
		"event not an object":             p.sign(t, "logout+jwt", with(c, "events", map[string]any{logoutEvent: "yes"})),
		"nonce":                           p.sign(t, "logout+jwt", with(c, "nonce", "n")),
		"typ at+jwt":                      p.sign(t, "at+jwt", c),
		"typ secevent+jwt":                p.sign(t, "secevent+jwt", c),
		"iat outside the window":          p.sign(t, "logout+jwt", with(c, "iat", now.Add(-10*time.Minute).Unix(), "exp", nil)),
		"iat a string":                    p.sign(t, "logout+jwt", with(c, "iat", fmt.Sprint(now.Unix()))),
		"expired":                         p.sign(t, "logout+jwt", with(c, "exp", now.Add(-time.Minute).Unix())),
		"no jti":                          p.sign(t, "logout+jwt", with(c, "jti", nil)),
		"neither sub nor sid":             p.sign(t, "logout+jwt", with(c, "sub", nil, "sid", nil)),
		"another client's":                p.sign(t, "logout+jwt", with(c, "aud", "other-client")),
		"another issuer's":                p.sign(t, "logout+jwt", with(c, "iss", "https://idp.evil.example")),
		"an access token":                 p.sign(t, "at+jwt", with(c, "events", nil, "scope", "openid")),
		"not a JWT":                       "not-a-jwt",
		"alg none":                        "eyJhbGciOiJub25lIn0." + strings.Split(p.sign(t, "", c), ".")[1] + ".",
		"valid but for the old draft typ": p.sign(t, "JOSE", c),
	} {
		t.Run(name, func(t *testing.T) {
			tk := plantSession(t, store, "u1", "sid-1")
			rec := postLogout(srv, tok)
			if rec.Code != http.StatusBadRequest {
				t.Errorf("status = %d (%s); want 400", rec.Code, rec.Body)
			}
			if !alive(t, store, tk) {
				t.Error("a refused token ended the session")
			}
		})
	}

	t.Run("sid ends that login only", func(t *testing.T) {
		one, two, other := plantSession(t, store, "u2", "sid-a"), plantSession(t, store, "u2", "sid-b"), plantSession(t, store, "u3", "sid-c")
		if rec := postLogout(srv, p.sign(t, "logout+jwt", p.claims("u2", "sid-a"))); rec.Code != http.StatusOK {
			t.Fatalf("status = %d (%s); want 200", rec.Code, rec.Body)
		}
		if alive(t, store, one) || !alive(t, store, two) || !alive(t, store, other) {
			t.Errorf("alive after logout of sid-a: %v %v %v; want false true true", alive(t, store, one), alive(t, store, two), alive(t, store, other))
		}
	})
	t.Run("sub alone ends every session of the user; no exp, untyped", func(t *testing.T) {
		one, two, other := plantSession(t, store, "u4", "sid-d"), plantSession(t, store, "u4", "sid-e"), plantSession(t, store, "u5", "sid-f")
		if rec := postLogout(srv, p.sign(t, "", with(p.claims("u4", ""), "exp", nil))); rec.Code != http.StatusOK {
			t.Fatalf("status = %d (%s); want 200", rec.Code, rec.Body)
		}
		if alive(t, store, one) || alive(t, store, two) || !alive(t, store, other) {
			t.Error("want both of u4's sessions ended and u5's kept")
		}
	})
	t.Run("typ JWT", func(t *testing.T) {
		if rec := postLogout(srv, p.sign(t, "JWT", p.claims("u6", ""))); rec.Code != http.StatusOK {
			t.Errorf("status = %d (%s); want 200", rec.Code, rec.Body)
		}
	})
}

// TestBackchannelLogoutProviderUnreachable: a token that cannot be checked
// (provider not discovered; a rotated key while the JWKS is down) is a 503,
// so the provider retries, and ends no session.
func TestBackchannelLogoutProviderUnreachable(t *testing.T) {
	p := newLogoutIDP(t)
	store := sessionstore.NewMemory(sessionstore.MemoryConfig{})
	t.Cleanup(func() { store.Close() })
	tok := p.sign(t, "logout+jwt", p.claims("u1", ""))

	undiscovered := newLogoutServer(t, store, oidcclient.New(oidcclient.Config{Issuer: p.URL, ClientID: logoutClientID}))
	tk := plantSession(t, store, "u1", "")
	if rec := postLogout(undiscovered, tok); rec.Code != http.StatusServiceUnavailable {
		t.Errorf("provider not discovered: status = %d (%s); want 503", rec.Code, rec.Body)
	}

	// A replica whose clock runs a minute ahead once the keys are loaded, so
	// the JWKS may be fetched again (at most every 10s) without waiting.
	var ahead atomic.Bool
	c := oidcclient.New(oidcclient.Config{Issuer: p.URL, ClientID: logoutClientID, HTTPClient: p.Client(), Now: func() time.Time {
		if ahead.Load() {
			return time.Now().Add(time.Minute)
		}
		return time.Now()
	}})
	if err := c.Discover(t.Context()); err != nil {
		t.Fatal(err)
	}
	ahead.Store(true)
	srv := newLogoutServer(t, store, c)
	rotated, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p.jwksUp.Store(false)
	// Signed with a key the provider has just started using.
	if rec := postLogout(srv, p.signWith(t, rotated, "k2", "logout+jwt", p.claims("u1", ""))); rec.Code != http.StatusServiceUnavailable {
		t.Errorf("rotated key, JWKS down: status = %d (%s); want 503", rec.Code, rec.Body)
	}
	if !alive(t, store, tk) {
		t.Error("a token that could not be checked ended the session")
	}
}

// failingEnder fails to end sessions, as Redis going away mid-request would.
type failingEnder struct{ sessionEnder }

func (failingEnder) DeleteBySubject(context.Context, string) (int, error) {
	return 0, errors.New("redis: connection refused")
}

// TestBackchannelLogoutRetryAfterFailure: when the sessions cannot be ended
// the answer is 503 and the token is forgotten, so the provider's retry
// (same jti) is not refused as a replay.
func TestBackchannelLogoutRetryAfterFailure(t *testing.T) {
	p := newLogoutIDP(t)
	store := sessionstore.NewMemory(sessionstore.MemoryConfig{})
	t.Cleanup(func() { store.Close() })
	c := p.client(t)
	tok := p.sign(t, "logout+jwt", p.claims("u1", ""))
	tk := plantSession(t, store, "u1", "")

	broken := backchannelLogout{verifier: c, sessions: failingEnder{store}, used: store, log: slog.New(slog.DiscardHandler)}
	if rec := postLogout(broken, tok); rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("sessions could not be ended: status = %d; want 503", rec.Code)
	}
	if rec := postLogout(newLogoutServer(t, store, c), tok); rec.Code != http.StatusOK {
		t.Fatalf("the provider's retry: status = %d (%s); want 200", rec.Code, rec.Body)
	}
	if alive(t, store, tk) {
		t.Error("the retry did not end the session")
	}
}

// TestBackchannelLogoutReplayAcrossReplicas: two Gatehouse replicas share
// one Redis (one behind the in-process cache). A logout token accepted by
// one is refused by both afterwards, and the replay ends no session, not
// even one the user started after the logout.
func TestBackchannelLogoutReplayAcrossReplicas(t *testing.T) {
	p := newLogoutIDP(t)
	rs := testredis.Start(t, testredis.Options{})
	prefix := fmt.Sprintf("bcl%d", time.Now().UnixNano())
	newRedis := func() *sessionstore.Redis {
		r, err := sessionstore.NewRedis(sessionstore.RedisConfig{Addrs: []string{rs.Addr}, KeyPrefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		return r
	}
	storeA := sessionstore.NewCached(newRedis(), sessionstore.CacheConfig{TTL: time.Minute})
	t.Cleanup(func() { storeA.Close() })
	storeB := newRedis()
	a, b := newLogoutServer(t, storeA, p.client(t)), newLogoutServer(t, storeB, p.client(t))

	tok := p.sign(t, "logout+jwt", p.claims("u1", ""))
	before := plantSession(t, storeB, "u1", "sid-1")
	if rec := postLogout(a, tok); rec.Code != http.StatusOK {
		t.Fatalf("replica a: status = %d (%s); want 200", rec.Code, rec.Body)
	}
	if alive(t, storeB, before) {
		t.Fatal("the session survived the logout")
	}
	after := plantSession(t, storeA, "u1", "sid-2") // the user signs in again
	for name, srv := range map[string]*Server{"replica b": b, "replica a": a} {
		if rec := postLogout(srv, tok); rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "already used") {
			t.Errorf("%s, the replay: status = %d (%s); want 400 already used", name, rec.Code, rec.Body)
		}
	}
	if !alive(t, storeB, after) {
		t.Error("the replayed token ended the new session")
	}

	// The same token sent to both replicas at once is accepted once.
	tok2 := p.sign(t, "logout+jwt", p.claims("u7", ""))
	var wg sync.WaitGroup
	var ok atomic.Int32
	for _, srv := range []*Server{a, b, a, b} {
		wg.Go(func() {
			if postLogout(srv, tok2).Code == http.StatusOK {
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	if n := ok.Load(); n != 1 {
		t.Errorf("one token posted to both replicas four times: %d accepted; want 1", n)
	}
}

// TestBackchannelLogoutDevIDP: the development provider's own logout
// delivery (a real zitadel/oidc op provider signing the token) ends the
// session, and the same token replayed is refused.
func TestBackchannelLogoutDevIDP(t *testing.T) {
	idp, err := devidp.Start(devidp.Config{
		Users:   devidp.DemoUsers(),
		Clients: []devidp.Client{{ID: logoutClientID, Secret: "secret-0123456789", RedirectURIs: []string{"https://app.example.com/oauth2/callback"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idp.Close() })
	c := oidcclient.New(oidcclient.Config{Issuer: idp.URL, ClientID: logoutClientID})
	if err := c.Discover(t.Context()); err != nil {
		t.Fatal(err)
	}
	store := sessionstore.NewMemory(sessionstore.MemoryConfig{})
	t.Cleanup(func() { store.Close() })
	srv := newLogoutServer(t, store, c)

	alice := devidp.DemoUsers()[0]
	tk := plantSession(t, store, alice.ID, "")
	tok, err := idp.LogoutToken(logoutClientID, alice.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	if rec := postLogout(srv, tok); rec.Code != http.StatusOK {
		t.Fatalf("devidp's logout token: status = %d (%s); want 200", rec.Code, rec.Body)
	}
	if alive(t, store, tk) {
		t.Error("the session survived")
	}
	if rec := postLogout(srv, tok); rec.Code != http.StatusBadRequest {
		t.Errorf("devidp's logout token replayed: status = %d; want 400", rec.Code)
	}
}
