package oidcclient

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// TestVerifyLogout: every check of Back-Channel Logout 1.0 section 2.6, the
// iat window that also bounds tokens without exp, and explicit typing.
func TestVerifyLogout(t *testing.T) {
	k := newTestKey(t, "k1", jose.RS256)
	p := newProvider(t, k)
	clk := newClock()
	c := newClient(t, p, clk, nil)
	now := clk.Now()
	good := logoutClaims(p.URL, now)
	tests := []struct {
		name   string
		hdr    map[string]any
		claims map[string]any
		accept bool // default: refused with ErrInvalidToken
	}{
		{name: "valid", claims: good, accept: true},
		{name: "no exp (the final spec does not require it)", claims: with(good, "exp", nil), accept: true},
		{name: "typ logout+jwt", hdr: map[string]any{"typ": "logout+jwt"}, claims: good, accept: true},
		{name: "typ Logout+JWT", hdr: map[string]any{"typ": "Logout+JWT"}, claims: good, accept: true},
		{name: "typ application/logout+jwt", hdr: map[string]any{"typ": "application/logout+jwt"}, claims: good, accept: true},
		{name: "typ JWT", hdr: map[string]any{"typ": "JWT"}, claims: good, accept: true},
		{name: "typ jwt", hdr: map[string]any{"typ": "jwt"}, claims: good, accept: true},
		{name: "sid only", claims: with(good, "sub", nil), accept: true},
		{name: "sub only", claims: with(good, "sid", nil), accept: true},
		{name: "aud array", claims: with(good, "aud", []string{"other", testClientID}), accept: true},
		{name: "iat 4m59s ago", claims: with(good, "iat", now.Add(-logoutMaxAge+time.Second).Unix(), "exp", nil), accept: true},
		{name: "iat 30s ahead", claims: with(good, "iat", now.Add(30*time.Second).Unix()), accept: true},
		{name: "event with members", claims: with(good, "events", map[string]any{backchannelLogoutEvent: map[string]any{"reason": "x"}}), accept: true},
		{name: "Keycloak typ claim Logout", claims: with(good, "typ", "Logout"), accept: true},

		{name: "typ at+jwt", hdr: map[string]any{"typ": "at+jwt"}, claims: good},
		{name: "typ secevent+jwt", hdr: map[string]any{"typ": "secevent+jwt"}, claims: good},
		{name: "typ id_token+jwt", hdr: map[string]any{"typ": "id_token+jwt"}, claims: good},
		{name: "no iat", claims: with(good, "iat", nil)},
		{name: "iat a string", claims: with(good, "iat", "1767225600")},
		{name: "iat too old", claims: with(good, "iat", now.Add(-logoutMaxAge-time.Second).Unix(), "exp", nil)},
		{name: "iat too old though exp is later", claims: with(good, "iat", now.Add(-time.Hour).Unix(), "exp", now.Add(time.Hour).Unix())},
		{name: "iat too far ahead", claims: with(good, "iat", now.Add(clockSkew+time.Second).Unix())},
		{name: "expired", claims: with(good, "exp", now.Add(-time.Second).Unix())},
		{name: "exp a string", claims: with(good, "exp", "9999999999")},
		{name: "nbf ahead", claims: with(good, "nbf", now.Add(time.Hour).Unix())},
		{name: "no jti", claims: with(good, "jti", nil)},
		{name: "empty jti", claims: with(good, "jti", "")},
		{name: "jti a number", claims: with(good, "jti", 7)},
		{name: "neither sub nor sid", claims: with(good, "sub", nil, "sid", nil)},
		{name: "sid a number", claims: with(good, "sid", 7)},
		{name: "nonce", claims: with(good, "nonce", "n-1")},
		{name: "nonce null", claims: with(good, "nonce", json.RawMessage("null"))},
		{name: "no events", claims: with(good, "events", nil)},
		{name: "events an array (an old draft)", claims: with(good, "events", []string{backchannelLogoutEvent})},
		{name: "events null", claims: with(good, "events", json.RawMessage("null"))},
		{name: "events without the logout event", claims: with(good, "events", map[string]any{"http://schemas.openid.net/event/other": map[string]any{}})},
		{name: "event a string", claims: with(good, "events", map[string]any{backchannelLogoutEvent: "yes"})},
		{name: "event true", claims: with(good, "events", map[string]any{backchannelLogoutEvent: true})},
		{name: "event an array", claims: with(good, "events", map[string]any{backchannelLogoutEvent: []any{}})},
		{name: "event null", claims: with(good, "events", map[string]any{backchannelLogoutEvent: nil})},
		{name: "wrong audience", claims: with(good, "aud", "other-client")},
		{name: "wrong issuer", claims: with(good, "iss", "https://evil.example")},
		{name: "Keycloak typ claim ID", claims: with(good, "typ", "ID")},
		{name: "alg none", hdr: map[string]any{"alg": "none"}, claims: good},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := c.VerifyLogout(t.Context(), k.sign(t, tt.hdr, tt.claims))
			if tt.accept {
				if err != nil {
					t.Fatalf("VerifyLogout: %v; want accepted", err)
				}
				if l.JTI != "lt-1" {
					t.Errorf("JTI = %q", l.JTI)
				}
				return
			}
			if !errors.Is(err, ErrInvalidToken) || errors.Is(err, ErrUnavailable) {
				t.Errorf("VerifyLogout = %+v, %v; want ErrInvalidToken", l, err)
			}
		})
	}
}

// TestLogoutUntil: Until is the end of the acceptance window (iat + 5m, or
// exp if sooner) plus the skew, the time a replay memory must keep the jti.
func TestLogoutUntil(t *testing.T) {
	k := newTestKey(t, "k1", jose.ES256)
	p := newProvider(t, k)
	clk := newClock()
	c := newClient(t, p, clk, nil)
	now := clk.Now()
	for _, tt := range []struct {
		name   string
		claims map[string]any
		want   time.Time
	}{
		{"exp sooner", logoutClaims(p.URL, now), now.Add(2*time.Minute + clockSkew)},
		{"no exp", with(logoutClaims(p.URL, now), "exp", nil), now.Add(logoutMaxAge + clockSkew)},
		{"exp later", with(logoutClaims(p.URL, now), "exp", now.Add(time.Hour).Unix()), now.Add(logoutMaxAge + clockSkew)},
	} {
		l, err := c.VerifyLogout(t.Context(), k.sign(t, nil, tt.claims))
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if !l.Until.Equal(tt.want) {
			t.Errorf("%s: Until = %s; want %s", tt.name, l.Until, tt.want)
		}
		// Never shorter than the time the token stays acceptable.
		clk.Advance(l.Until.Sub(now))
		if _, err := c.VerifyLogout(t.Context(), k.sign(t, nil, tt.claims)); err == nil {
			t.Errorf("%s: the token is still accepted at Until", tt.name)
		}
		clk.Advance(now.Sub(clk.Now()))
	}
}

// TestLogoutWithAKeyRotatedMomentsAgo: a provider that rotates its key and
// at once sends a logout token signed with it, less than KeyRefreshInterval
// after our last JWKS fetch, gets ErrUnavailable (a 5xx: it retries), not
// ErrInvalidToken (a 400 it would not retry, leaving the session alive);
// its retry after the interval succeeds. A bearer token in the same spot
// stays invalid: clients do not retry 401s, strangers send made-up kids.
func TestLogoutWithAKeyRotatedMomentsAgo(t *testing.T) {
	k1 := newTestKey(t, "k1", jose.ES256)
	p := newProvider(t, k1)
	clk := newClock()
	c := newClient(t, p, clk, nil)
	k2 := newTestKey(t, "k2", jose.ES256)
	p.publish(k2)
	clk.Advance(time.Second)
	logout := k2.sign(t, nil, logoutClaims(p.URL, clk.Now()))
	if _, err := c.VerifyLogout(t.Context(), logout); !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrInvalidToken) {
		t.Fatalf("logout token with a key rotated moments ago = %v; want ErrUnavailable only", err)
	}
	if _, err := c.VerifyAccessToken(t.Context(), k2.sign(t, nil, accessClaims(p.URL, clk.Now()))); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("access token in the same spot = %v; want ErrInvalidToken", err)
	}
	clk.Advance(10 * time.Second)
	if _, err := c.VerifyLogout(t.Context(), logout); err != nil {
		t.Errorf("the provider's retry after the interval: %v", err)
	}
}
