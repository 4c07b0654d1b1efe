package oidcclient

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
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

type jwksServer struct {
	*httptest.Server
	fetches atomic.Int32
	mu      sync.Mutex
	keys    []jose.JSONWebKey
}

func newJWKSServer(t *testing.T) *jwksServer {
	s := &jwksServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
		s.mu.Lock()
		defer s.mu.Unlock()
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: s.keys})
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) addKey(t *testing.T, kid string) jose.Signer {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	s.mu.Lock()
	s.keys = append(s.keys, jose.JSONWebKey{Key: &k.PublicKey, KeyID: kid, Algorithm: "ES256", Use: "sig"})
	s.mu.Unlock()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: k, KeyID: kid}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return signer
}

func sign(t *testing.T, s jose.Signer) string {
	jws, err := s.Sign([]byte(`{"sub":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := jws.CompactSerialize()
	return raw
}

// TestKeySetRefetchIsRateLimited: tokens naming unknown kids cannot make
// Gatehouse fetch the provider's JWKS more than once per interval; a key
// the provider adds (rotation) is found after the interval.
func TestKeySetRefetchIsRateLimited(t *testing.T) {
	srv := newJWKSServer(t)
	known := srv.addKey(t, "k1")
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	ks := &keySet{url: srv.URL, client: srv.Client(), algs: []jose.SignatureAlgorithm{jose.ES256}, minInterval: 10 * time.Second, now: clock}
	ctx := context.Background()

	if _, err := ks.VerifySignature(ctx, sign(t, known)); err != nil {
		t.Fatalf("known key: %v", err)
	}
	stranger, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for i := range 50 {
		s, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: stranger, KeyID: "unknown-" + string(rune('a'+i%26))}}, nil)
		if _, err := ks.VerifySignature(ctx, sign(t, s)); !errors.Is(err, errUnknownKey) {
			t.Fatalf("unknown kid: got %v; want errUnknownKey", err)
		}
	}
	if n := srv.fetches.Load(); n != 1 {
		t.Errorf("JWKS fetched %d times for 50 unknown kids within the interval; want 1", n)
	}

	rotated := srv.addKey(t, "k2")
	if _, err := ks.VerifySignature(ctx, sign(t, rotated)); err == nil {
		t.Error("new key verified before the refresh interval passed")
	}
	mu.Lock()
	now = now.Add(11 * time.Second)
	mu.Unlock()
	if _, err := ks.VerifySignature(ctx, sign(t, rotated)); err != nil {
		t.Errorf("rotated key after the interval: %v", err)
	}
	if n := srv.fetches.Load(); n != 2 {
		t.Errorf("fetches = %d; want 2", n)
	}
}

func TestKeySetRefusesUnpinnedAlgorithms(t *testing.T) {
	srv := newJWKSServer(t)
	srv.addKey(t, "k1")
	ks := &keySet{url: srv.URL, client: srv.Client(), algs: []jose.SignatureAlgorithm{jose.RS256}, minInterval: time.Second, now: time.Now}
	hs, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: []byte("0123456789abcdef0123456789abcdef")}, nil)
	for name, raw := range map[string]string{
		"HS256":     sign(t, hs),
		"alg none":  "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
		"garbage":   "a.b.c",
		"not a jws": "hello",
	} {
		if _, err := ks.VerifySignature(context.Background(), raw); err == nil {
			t.Errorf("%s verified", name)
		}
	}
	if srv.fetches.Load() != 0 {
		t.Errorf("malformed or unpinned tokens caused %d JWKS fetches; want 0", srv.fetches.Load())
	}
}

func TestTokenType(t *testing.T) {
	for raw, want := range map[string]string{
		"eyJ0eXAiOiJhdCtqd3QifQ.x.y":      "at+jwt",
		"eyJ0eXAiOiJsb2dvdXQrand0In0.x.y": "logout+jwt",
		"eyJhbGciOiJSUzI1NiJ9.x.y":        "",
		"!!.x.y":                          "",
		"nodots":                          "",
	} {
		if got := tokenType(raw); got != want {
			t.Errorf("tokenType(%q) = %q; want %q", raw, got, want)
		}
	}
}

// FuzzVerifyAccessTokenInput: whatever a client sends as a bearer token,
// the key set never panics and nothing unsigned by a known key verifies.
func FuzzVerifyAccessTokenInput(f *testing.F) {
	for _, s := range []string{"", "a.b.c", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", "eyJ0eXAiOiJhdCtqd3QifQ.x.y"} {
		f.Add(s)
	}
	ks := &keySet{url: "http://127.0.0.1:1/keys", client: &http.Client{Timeout: 100 * time.Millisecond},
		algs: []jose.SignatureAlgorithm{jose.ES256}, minInterval: time.Hour, now: time.Now}
	ks.lastFetch = time.Now() // no network in the fuzz loop
	f.Fuzz(func(t *testing.T, raw string) {
		_ = tokenType(raw)
		if _, err := ks.VerifySignature(context.Background(), raw); err == nil {
			t.Fatalf("verified %q with an empty key set", raw)
		}
	})
}
