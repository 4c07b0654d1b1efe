package oidcclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// TestDiscoverLoadsKeys: discovery fetches the JWKS, so the first token
// needs no fetch; a provider whose JWKS cannot be had fails discovery (and
// Run retries), with ErrUnavailable.
func TestDiscoverLoadsKeys(t *testing.T) {
	k := newTestKey(t, "k1", jose.ES256)
	p := newProvider(t, k)
	clk := newClock()

	p.setStatus(http.StatusServiceUnavailable)
	c := New(Config{Issuer: p.URL, ClientID: testClientID, AcceptedAudiences: []string{"api"}, HTTPClient: p.Client(), Now: clk.Now})
	err := c.Discover(t.Context())
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "503") {
		t.Fatalf("Discover with the JWKS down = %v; want ErrUnavailable saying 503", err)
	}
	if err := c.Ready(); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Ready = %v; want the discovery error", err)
	}
	tok := k.sign(t, nil, accessClaims(p.URL, clk.Now()))
	if _, err := c.VerifyAccessToken(t.Context(), tok); !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrInvalidToken) {
		t.Errorf("VerifyAccessToken before discovery = %v; want ErrUnavailable only", err)
	}

	p.setStatus(0)
	if err := c.Discover(t.Context()); err != nil {
		t.Fatal(err)
	}
	before := p.jwksRequests.Load()
	if _, err := c.VerifyAccessToken(t.Context(), tok); err != nil {
		t.Fatalf("VerifyAccessToken after discovery: %v", err)
	}
	if got := p.jwksRequests.Load(); got != before {
		t.Errorf("the first token fetched the JWKS again (%d fetches); discovery should have loaded it", got-before)
	}
}

// TestNotDiscoveredIsUnavailable: every verifier says ErrUnavailable (503),
// never ErrInvalidToken, while the provider has not been discovered.
func TestNotDiscoveredIsUnavailable(t *testing.T) {
	c := New(Config{Issuer: "http://127.0.0.1:1", ClientID: testClientID, AcceptedAudiences: []string{"api"}})
	if err := c.Ready(); !errors.Is(err, ErrNotReady) || !errors.Is(err, ErrUnavailable) {
		t.Errorf("Ready = %v; want ErrNotReady wrapping ErrUnavailable", err)
	}
	if _, err := c.VerifyAccessToken(t.Context(), "a.b.c"); !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrInvalidToken) {
		t.Errorf("VerifyAccessToken = %v; want ErrUnavailable only", err)
	}
	if _, err := c.VerifyLogout(t.Context(), "a.b.c"); !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrInvalidToken) {
		t.Errorf("VerifyLogout = %v; want ErrUnavailable only", err)
	}
}

// TestRotatedKeyWithJWKSDown: a token signed with a key the provider has
// just rotated in, while its JWKS cannot be fetched, is unavailable (503),
// not invalid; a made-up kid with the JWKS up is invalid (401).
func TestRotatedKeyWithJWKSDown(t *testing.T) {
	k1 := newTestKey(t, "k1", jose.ES256)
	p := newProvider(t, k1)
	clk := newClock()
	c := newClient(t, p, clk, nil)

	k2 := newTestKey(t, "k2", jose.RS256)
	p.publish(k2)
	p.setStatus(http.StatusBadGateway)
	clk.Advance(time.Minute)
	tok := k2.sign(t, nil, accessClaims(p.URL, clk.Now()))
	if _, err := c.VerifyAccessToken(t.Context(), tok); !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrInvalidToken) {
		t.Errorf("rotated key, JWKS down = %v; want ErrUnavailable only", err)
	}
	logout := k2.sign(t, nil, logoutClaims(p.URL, clk.Now()))
	if _, err := c.VerifyLogout(t.Context(), logout); !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrInvalidToken) {
		t.Errorf("logout token with a rotated key, JWKS down = %v; want ErrUnavailable only", err)
	}
	// Known keys keep verifying during the outage.
	if _, err := c.VerifyAccessToken(t.Context(), k1.sign(t, nil, accessClaims(p.URL, clk.Now()))); err != nil {
		t.Errorf("known key during the JWKS outage: %v", err)
	}

	p.setStatus(0)
	clk.Advance(time.Minute)
	stranger := newTestKey(t, "made-up", jose.ES256)
	if _, err := c.VerifyAccessToken(t.Context(), stranger.sign(t, nil, accessClaims(p.URL, clk.Now()))); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("made-up kid with the JWKS up = %v; want ErrInvalidToken", err)
	}
	if _, err := c.VerifyAccessToken(t.Context(), tok); err != nil {
		t.Errorf("rotated key once the JWKS is back: %v", err)
	}
}

// TestHungUpStrangerDoesNotBlockRotation: a stranger's token with an unknown
// kid starts a JWKS fetch and hangs up; the fetch completes anyway, and the
// next request, bearing the provider's newly rotated key, verifies at once:
// no new fetch, no waiting for the refresh interval.
func TestHungUpStrangerDoesNotBlockRotation(t *testing.T) {
	k1 := newTestKey(t, "k1", jose.ES256)
	p := newProvider(t, k1)
	clk := newClock()
	c := newClient(t, p, clk, nil)
	k2 := newTestKey(t, "k2", jose.ES256)
	p.publish(k2)
	clk.Advance(time.Minute)
	before := p.jwksRequests.Load()

	arrived, release := p.holdJWKS()
	ctx, hangUp := context.WithCancel(t.Context())
	go func() {
		<-arrived
		hangUp()
	}()
	stranger := newTestKey(t, "stranger", jose.ES256)
	_, err := c.VerifyAccessToken(ctx, stranger.sign(t, nil, accessClaims(p.URL, clk.Now())))
	if errors.Is(err, ErrInvalidToken) || !errors.Is(err, context.Canceled) {
		t.Fatalf("stranger who hung up = %v; want ErrUnavailable wrapping context.Canceled", err)
	}
	release()
	if _, err := c.VerifyAccessToken(t.Context(), k2.sign(t, nil, accessClaims(p.URL, clk.Now()))); err != nil {
		t.Fatalf("rotated key right after the stranger hung up: %v", err)
	}
	if got := p.jwksRequests.Load() - before; got != 1 {
		t.Errorf("JWKS fetches = %d; want 1 (the stranger's, completed for everyone)", got)
	}
}

// TestFailedKeyFetchRecoversWithoutWaitingTheInterval: after a failed JWKS
// fetch the next is allowed a second later, not after KeyRefreshInterval.
func TestFailedKeyFetchRecoversWithoutWaitingTheInterval(t *testing.T) {
	k1 := newTestKey(t, "k1", jose.ES256)
	p := newProvider(t, k1)
	clk := newClock()
	c := newClient(t, p, clk, func(cfg *Config) { cfg.KeyRefreshInterval = time.Hour })
	k2 := newTestKey(t, "k2", jose.ES256)
	p.publish(k2)
	clk.Advance(time.Hour)
	tok := func() string { return k2.sign(t, nil, accessClaims(p.URL, clk.Now())) }

	p.setStatus(http.StatusInternalServerError)
	if _, err := c.VerifyAccessToken(t.Context(), tok()); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("JWKS failing = %v; want ErrUnavailable", err)
	}
	p.setStatus(0)
	if _, err := c.VerifyAccessToken(t.Context(), tok()); !errors.Is(err, ErrUnavailable) {
		t.Errorf("within the retry backoff = %v; want ErrUnavailable (no fetch yet)", err)
	}
	clk.Advance(time.Second)
	if _, err := c.VerifyAccessToken(t.Context(), tok()); err != nil {
		t.Errorf("a second after the failed fetch, the JWKS back: %v; want the key loaded", err)
	}
}

// TestUnknownKidStormFetchesBounded: a minute of requests with made-up kids
// fetches the JWKS at most once per KeyRefreshInterval (10s): 6 times.
func TestUnknownKidStormFetchesBounded(t *testing.T) {
	k1 := newTestKey(t, "k1", jose.ES256)
	p := newProvider(t, k1)
	clk := newClock()
	c := newClient(t, p, clk, nil)
	before := p.jwksRequests.Load()
	stranger := newTestKey(t, "x", jose.ES256)
	for i := range 300 { // one request every 200ms
		var wg sync.WaitGroup
		for j := range 3 {
			tok := stranger.sign(t, map[string]any{"kid": fmt.Sprintf("made-up-%d-%d", i, j)}, accessClaims(p.URL, clk.Now()))
			wg.Go(func() {
				if _, err := c.VerifyAccessToken(t.Context(), tok); !errors.Is(err, ErrInvalidToken) {
					t.Errorf("made-up kid = %v; want ErrInvalidToken", err)
				}
			})
		}
		wg.Wait()
		clk.Advance(200 * time.Millisecond)
	}
	if got := p.jwksRequests.Load() - before; got < 1 || got > 6 {
		t.Errorf("JWKS fetches during a one-minute storm of made-up kids = %d; want 1 to 6", got)
	}
}

// TestKeysOnlyFromTheJWKS: headers naming other keys (jku, x5u, jwk, x5c)
// are never followed or used, and unpinned algorithms never verify.
func TestKeysOnlyFromTheJWKS(t *testing.T) {
	k1 := newTestKey(t, "k1", jose.ES256)
	p := newProvider(t, k1)
	clk := newClock()
	c := newClient(t, p, clk, nil)
	attacker := newProvider(t)
	evil := newTestKey(t, "k1", jose.ES256) // same kid, another key
	evilJWK := evil.jwk()
	cl := accessClaims(p.URL, clk.Now())
	for name, tok := range map[string]string{
		"jku":           evil.sign(t, map[string]any{"jku": attacker.URL + "/keys"}, cl),
		"x5u":           evil.sign(t, map[string]any{"x5u": attacker.URL + "/cert.pem"}, cl),
		"embedded jwk":  evil.sign(t, map[string]any{"jwk": evilJWK}, cl),
		"alg none":      b64([]byte(`{"alg":"none","kid":"k1"}`)) + "." + b64(mustJSON(t, cl)) + ".",
		"HS256 pub key": hs256(t, mustJSON(t, k1.jwk()), cl),
		"ES512 claimed": b64([]byte(`{"alg":"ES512","kid":"k1"}`)) + "." + b64(mustJSON(t, cl)) + ".AAAA",
	} {
		if _, err := c.VerifyAccessToken(t.Context(), tok); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("%s: %v; want ErrInvalidToken", name, err)
		}
	}
	if n := attacker.jwksRequests.Load(); n != 0 {
		t.Errorf("the attacker's key server received %d requests", n)
	}
}
