package oidcclient

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"
)

// TestVerifyAccessTokenClaims: the claim checks, registered claim types
// (RFC 7519 section 4.1) and header types, against a real JWKS.
func TestVerifyAccessTokenClaims(t *testing.T) {
	k := newTestKey(t, "k1", jose.ES256)
	p := newProvider(t, k)
	clk := newClock()
	c := newClient(t, p, clk, func(cfg *Config) { cfg.AcceptedAudiences = []string{"api", "api2"} })
	now := clk.Now()
	good := accessClaims(p.URL, now)
	tests := []struct {
		name   string
		hdr    map[string]any // header fields (nil value deletes)
		claims map[string]any
		accept bool // default: refused with ErrInvalidToken
	}{
		{name: "valid", claims: good, accept: true},
		{name: "typ JWT", hdr: map[string]any{"typ": "JWT"}, claims: good, accept: true},
		{name: "typ at+jwt", hdr: map[string]any{"typ": "at+jwt"}, claims: good, accept: true},
		{name: "typ application/AT+JWT", hdr: map[string]any{"typ": "application/AT+JWT"}, claims: good, accept: true},
		{name: "aud array with an accepted value", claims: with(good, "aud", []string{"other", "api2"}), accept: true},
		{name: "fractional exp", claims: with(good, "exp", float64(now.Unix())+60.5), accept: true},
		{name: "nbf 0 (old Keycloak)", claims: with(good, "nbf", 0), accept: true},
		{name: "nbf within the skew", claims: with(good, "nbf", now.Add(clockSkew).Unix()), accept: true},
		{name: "no iat, no nbf", claims: with(good, "iat", nil, "nbf", nil), accept: true},

		{name: "typ logout+jwt", hdr: map[string]any{"typ": "logout+jwt"}, claims: good},
		{name: "typ dpop+jwt", hdr: map[string]any{"typ": "dpop+jwt"}, claims: good},
		{name: "typ secevent+jwt", hdr: map[string]any{"typ": "secevent+jwt"}, claims: good},
		{name: "typ a number", hdr: map[string]any{"typ": 1}, claims: good},
		{name: "expired", claims: with(good, "exp", now.Add(-time.Second).Unix())},
		{name: "no exp", claims: with(good, "exp", nil)},
		{name: "exp a string", claims: with(good, "exp", "9999999999")},
		{name: "exp null", claims: with(good, "exp", json.RawMessage("null"))},
		{name: "exp a boolean", claims: with(good, "exp", true)},
		{name: "exp enormous", claims: with(good, "exp", 1e300)},
		{name: "exp negative", claims: with(good, "exp", -1)},
		{name: "iat a string", claims: with(good, "iat", "1767225600")},
		{name: "nbf a string", claims: with(good, "nbf", "1767225600")},
		{name: "nbf in the future", claims: with(good, "nbf", now.Add(clockSkew+time.Second).Unix())},
		{name: "iat in the future", claims: with(good, "iat", now.Add(clockSkew+time.Second).Unix())},
		{name: "wrong issuer", claims: with(good, "iss", p.URL+"/other")},
		{name: "issuer a number", claims: with(good, "iss", 1)},
		{name: "wrong audience", claims: with(good, "aud", "other")},
		{name: "aud array without an accepted value", claims: with(good, "aud", []string{"a", "b"})},
		{name: "aud an object", claims: with(good, "aud", map[string]any{"api": true})},
		{name: "aud array of numbers", claims: with(good, "aud", []any{1, "api"})},
		{name: "no aud", claims: with(good, "aud", nil)},
		{name: "no sub", claims: with(good, "sub", nil)},
		{name: "sub a number", claims: with(good, "sub", 42)},
		{name: "client_id a number", claims: with(good, "client_id", 42)},
		{name: "ID token (nonce)", claims: with(good, "nonce", "n-1")},
		{name: "ID token (at_hash)", claims: with(good, "at_hash", "x")},
		{name: "logout token (events)", claims: with(good, "events", map[string]any{backchannelLogoutEvent: map[string]any{}})},
		{name: "Keycloak refresh token", claims: with(good, "typ", "Refresh")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := c.VerifyAccessToken(t.Context(), k.sign(t, tt.hdr, tt.claims))
			if tt.accept {
				if err != nil {
					t.Fatalf("VerifyAccessToken: %v; want accepted", err)
				}
				if b.Identity.Subject != "user-1" || b.ClientID != "native-app" || b.IDToken {
					t.Errorf("Bearer = %+v; want user-1 via native-app, an access token", b)
				}
				return
			}
			if !errors.Is(err, ErrInvalidToken) || errors.Is(err, ErrUnavailable) {
				t.Errorf("VerifyAccessToken = %v, %v; want ErrInvalidToken", b, err)
			}
		})
	}
	for name, raw := range map[string]string{
		"empty":                        "",
		"garbage":                      "not-a-token",
		"two segments":                 "a.b",
		"payload not object":           k.signRaw(t, `[]`),
		"payload null":                 k.signRaw(t, `null`),
		"payload not JSON":             k.signRaw(t, `{"sub":`),
		"JSON serialization":           `{"payload":"e30","signature":"AA"}`,
		"too large":                    string(make([]byte, maxTokenSize+1)),
		"duplicate exp, last a string": k.signRaw(t, `{"iss":"`+p.URL+`","sub":"u","aud":"api","client_id":"x","exp":9999999999,"exp":"9999999999"}`),
	} {
		if _, err := c.VerifyAccessToken(t.Context(), raw); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("%s: %v; want ErrInvalidToken", name, err)
		}
	}
}

// TestBearerIdentity: the identity and expiry come from the claims.
func TestBearerIdentity(t *testing.T) {
	k := newTestKey(t, "k1", jose.ES256)
	p := newProvider(t, k)
	clk := newClock()
	c := newClient(t, p, clk, nil)
	cl := accessClaims(p.URL, clk.Now())
	b, err := c.VerifyAccessToken(t.Context(), k.sign(t, nil, cl))
	if err != nil {
		t.Fatal(err)
	}
	if b.Identity.Email != "ada@example.com" || !b.Identity.EmailVerified || !slices.Equal(b.Identity.Groups, []string{"staff"}) ||
		!b.Expiry.Equal(clk.Now().Add(5*time.Minute)) || b.Identity.Claims["jti"] != "at-1" {
		t.Errorf("Bearer = %+v", b)
	}
	if _, err := New(Config{Issuer: p.URL}).VerifyAccessToken(t.Context(), "x"); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("without accepted audiences = %v; want ErrInvalidToken", err)
	}
}

// providerSample is one provider's access token and ID token, header typ
// included, as its documentation shows them; iss, and the times, are the
// test's. The ID tokens are in the shape a refresh returns (no nonce, no
// at_hash) unless the provider keeps them there.
type providerSample struct {
	name            string
	accessTyp       any // header typ of the access token; nil = none
	access          map[string]any
	idTyp           any
	id              map[string]any
	accessAudiences []string // what api.accepted_audiences would list
}

func providerSamples(iss string, now time.Time) []providerSample {
	iat, exp := now.Unix(), now.Add(time.Hour).Unix()
	return []providerSample{{
		// Keycloak 25+ (keycloak.org docs; TokenUtil: typ claim Bearer / ID).
		name:      "Keycloak",
		accessTyp: "JWT",
		access: map[string]any{
			"exp": exp, "iat": iat, "auth_time": iat, "jti": "onrtac:6f2c1a9e", "iss": iss, "aud": "account",
			"sub": "f1c4f64e-2c0c-4cda-8c9f-9f3f8f3a2b0e", "typ": "Bearer", "azp": "web-app", "sid": "4c0a3a8a",
			"acr": "1", "allowed-origins": []string{"https://app.example.com"},
			"realm_access":    map[string]any{"roles": []string{"default-roles-demo", "offline_access"}},
			"resource_access": map[string]any{"account": map[string]any{"roles": []string{"manage-account"}}},
			"scope":           "openid profile email", "email_verified": true, "name": "Ada Lovelace",
			"preferred_username": "ada", "given_name": "Ada", "family_name": "Lovelace", "email": "ada@example.com",
		},
		idTyp: "JWT",
		id: map[string]any{
			"exp": exp, "iat": iat, "auth_time": iat, "jti": "6f2c1a9f", "iss": iss, "aud": "web-app",
			"sub": "f1c4f64e-2c0c-4cda-8c9f-9f3f8f3a2b0e", "typ": "ID", "azp": "web-app", "sid": "4c0a3a8a",
			"at_hash": "mQ4yZk3fJ2wq1a", "acr": "1", "email_verified": true, "name": "Ada Lovelace",
			"preferred_username": "ada", "email": "ada@example.com",
		},
		accessAudiences: []string{"account"},
	}, {
		// Keycloak before 25 also put the login's nonce into access tokens
		// (keycloak/keycloak#26893); its typ claim still says Bearer.
		name:      "Keycloak 24",
		accessTyp: "JWT",
		access: map[string]any{
			"exp": exp, "iat": iat, "jti": "1b1d0c3e", "iss": iss, "aud": "account", "sub": "f1c4f64e",
			"typ": "Bearer", "azp": "web-app", "nonce": "n-0S6_WzA2Mj", "session_state": "4c0a3a8a",
			"scope": "openid email profile",
		},
		idTyp: "JWT",
		id: map[string]any{
			"exp": exp, "iat": iat, "jti": "1b1d0c3f", "iss": iss, "aud": "web-app", "sub": "f1c4f64e",
			"typ": "ID", "azp": "web-app", "session_state": "4c0a3a8a",
		},
		accessAudiences: []string{"account"},
	}, {
		// Microsoft Entra ID v2.0 (access-token-claims-reference,
		// id-token-claims-reference): header typ always JWT.
		name:      "Entra ID v2",
		accessTyp: "JWT",
		access: map[string]any{
			"aud": "6e74172b-be56-4843-9ff4-e66a39bb12e3", "iss": iss, "iat": iat, "nbf": iat, "exp": exp,
			"aio": "AXQAi/8I", "azp": "2c4b5d0a-7e35-4a12-9d4f-3f0b1f8e1c2d", "azpacr": "0", "name": "Abe Lincoln",
			"oid": "690222be-ff1a-4d56-abd1-7e4f7d38e474", "preferred_username": "abeli@microsoft.com",
			"rh": "I", "scp": "access_as_user", "sub": "HKZpfaHyWadeOouYlitjrI-KffTm222X5rrV3xDqfKQ",
			"tid": "72f988bf-86f1-41af-91ab-2d7cd011db47", "uti": "fqiBqXLPj0eQa82S-IYFAA", "ver": "2.0",
		},
		idTyp: "JWT",
		id: map[string]any{
			"aud": "2c4b5d0a-7e35-4a12-9d4f-3f0b1f8e1c2d", "iss": iss, "iat": iat, "nbf": iat, "exp": exp,
			"aio": "AXQAi/8I", "name": "Abe Lincoln", "oid": "690222be-ff1a-4d56-abd1-7e4f7d38e474",
			"preferred_username": "abeli@microsoft.com", "rh": "I", "sub": "HKZpfaHyWadeOouYlitjrI-KffTm222X5rrV3xDqfKQ",
			"tid": "72f988bf-86f1-41af-91ab-2d7cd011db47", "uti": "fqiBqXLPj0eQa82S-IYFAA", "ver": "2.0",
		},
		accessAudiences: []string{"6e74172b-be56-4843-9ff4-e66a39bb12e3"},
	}, {
		// Entra ID v2.0, an application's own token (client credentials): no
		// scp, roles instead, and azp is the client.
		name:      "Entra ID v2 app-only",
		accessTyp: "JWT",
		access: map[string]any{
			"aud": "api://payroll", "iss": iss, "iat": iat, "nbf": iat, "exp": exp,
			"azp": "2c4b5d0a-7e35-4a12-9d4f-3f0b1f8e1c2d", "azpacr": "1", "idtyp": "app",
			"oid": "b6f1e2a0-5c3d-4e6f-8a9b-0c1d2e3f4a5b", "roles": []string{"Payroll.Read"},
			"sub": "b6f1e2a0-5c3d-4e6f-8a9b-0c1d2e3f4a5b", "tid": "72f988bf", "ver": "2.0",
		},
		idTyp: "JWT",
		id: map[string]any{
			"aud": "2c4b5d0a-7e35-4a12-9d4f-3f0b1f8e1c2d", "iss": iss, "iat": iat, "nbf": iat, "exp": exp,
			"oid": "690222be", "sub": "HKZpfaHy", "tid": "72f988bf", "ver": "2.0", "roles": []string{"Payroll.Admin"},
		},
		accessAudiences: []string{"api://payroll"},
	}, {
		// Entra ID v1.0: appid instead of azp; amr and unique_name.
		name:      "Entra ID v1",
		accessTyp: "JWT",
		access: map[string]any{
			"aud": "https://service.contoso.com/", "iss": iss, "iat": iat, "nbf": iat, "exp": exp,
			"acr": "1", "aio": "Y2NgYEjJ", "amr": []string{"pwd"}, "appid": "2c4b5d0a-7e35-4a12-9d4f-3f0b1f8e1c2d",
			"appidacr": "0", "family_name": "Lincoln", "given_name": "Abe", "ipaddr": "192.0.2.1",
			"name": "Abe Lincoln", "oid": "690222be", "scp": "user_impersonation", "sub": "HKZpfaHy",
			"tid": "72f988bf", "unique_name": "abeli@microsoft.com", "upn": "abeli@microsoft.com", "ver": "1.0",
		},
		idTyp: "JWT",
		id: map[string]any{
			"aud": "2c4b5d0a-7e35-4a12-9d4f-3f0b1f8e1c2d", "iss": iss, "iat": iat, "nbf": iat, "exp": exp,
			"amr": []string{"pwd"}, "family_name": "Lincoln", "given_name": "Abe", "ipaddr": "192.0.2.1",
			"name": "Abe Lincoln", "oid": "690222be", "sub": "HKZpfaHy", "tid": "72f988bf",
			"unique_name": "abeli@microsoft.com", "upn": "abeli@microsoft.com", "ver": "1.0",
		},
		accessAudiences: []string{"https://service.contoso.com/"},
	}, {
		// Auth0's default token profile (docs: access-token-profiles).
		name:      "Auth0",
		accessTyp: "JWT",
		access: map[string]any{
			"iss": iss, "sub": "auth0|123456", "aud": []string{"https://example.com/health-api", "https://my-domain.auth0.com/userinfo"},
			"azp": "my_client_id", "exp": exp, "iat": iat, "scope": "openid profile read:patients read:admin",
			"my_custom_claim": "my_custom_value",
		},
		idTyp: "JWT",
		id: map[string]any{
			"iss": iss, "sub": "auth0|123456", "aud": "my_client_id", "iat": iat, "exp": exp, "sid": "Kdq1gLhV",
			"name": "Jane Doe", "nickname": "jane", "picture": "https://example.com/jane.png",
			"updated_at": "2026-01-01T00:00:00.000Z", "email": "jane@example.com", "email_verified": true,
		},
		accessAudiences: []string{"https://example.com/health-api"},
	}, {
		// Auth0's RFC 9068 profile: typ at+jwt, client_id instead of azp.
		name:      "Auth0 RFC 9068",
		accessTyp: "at+jwt",
		access: map[string]any{
			"iss": iss, "sub": "auth0|123456", "aud": []string{"https://example.com/health-api", "https://my-domain.auth0.com/userinfo"},
			"client_id": "my_client_id", "exp": exp, "iat": iat, "jti": "73WakrfVbNJBaAmhQtEeDv",
			"scope": "openid profile read:patients read:admin",
		},
		idTyp: "JWT",
		id: map[string]any{
			"iss": iss, "sub": "auth0|123456", "aud": "my_client_id", "iat": iat, "exp": exp,
			"nonce": "n-0S6_WzA2Mj", "email": "jane@example.com",
		},
		accessAudiences: []string{"https://example.com/health-api"},
	}, {
		// Okta's custom authorization server: no typ header; cid, uid, scp.
		name:      "Okta",
		accessTyp: nil,
		access: map[string]any{
			"ver": 1, "jti": "AT.xtjhr8FeMkyMfgLiFzVYOYPbgqWdd6ONULT3ffeK7d4", "iss": iss, "aud": "api://default",
			"iat": iat, "exp": exp, "cid": "0oaosna3ilNxgPTmk0h7", "uid": "00uixa271s6x7qt8I0h7",
			"scp": []string{"openid", "phone"}, "auth_time": iat, "sub": "joe.smith@okta.com",
		},
		idTyp: nil,
		id: map[string]any{
			"sub": "00uixa271s6x7qt8I0h7", "name": "Joe Smith", "email": "joe.smith@okta.com", "ver": 1,
			"iss": iss, "aud": "0oaosna3ilNxgPTmk0h7", "iat": iat, "exp": exp, "jti": "ID.4eAWJOCMB3SX8XewDfVR",
			"amr": []string{"pwd"}, "idp": "00oixa26ycdNcX0VT0h7", "preferred_username": "joe.smith@okta.com",
			"auth_time": iat,
		},
		accessAudiences: []string{"api://default"},
	}, {
		// Ory Hydra with the JWT access-token strategy: client_id, scp, ext.
		name:      "Ory Hydra",
		accessTyp: "JWT",
		access: map[string]any{
			"aud": []string{"https://api.example.com"}, "client_id": "my-client", "exp": exp, "ext": map[string]any{},
			"iat": iat, "iss": iss, "jti": "3b3f5e1a-0d36-4b6c-9a1e-6c0b1e0f8e2d", "nbf": iat,
			"scp": []string{"openid", "offline"}, "sub": "foo@bar.com",
		},
		idTyp: "JWT",
		id: map[string]any{
			"aud": []string{"my-client"}, "auth_time": iat, "exp": exp, "iat": iat, "iss": iss,
			"jti": "ad6fd3c5-1a1e-4c2b-8b3f-3f9d2d3c4b5a", "rat": iat, "sid": "2a5c8b1e", "sub": "foo@bar.com",
		},
		accessAudiences: []string{"https://api.example.com"},
	}, {
		// ZITADEL, which devidp is built on: client_id in both; the ID token's
		// azp is its own aud.
		name:      "ZITADEL",
		accessTyp: "JWT",
		access: map[string]any{
			"iss": iss, "sub": "u-alice", "aud": []string{"native-app"}, "exp": exp, "iat": iat, "nbf": iat,
			"client_id": "native-app", "jti": "V2_123",
		},
		idTyp: "JWT",
		id: map[string]any{
			"iss": iss, "sub": "u-alice", "aud": []string{"native-app"}, "exp": exp, "iat": iat,
			"auth_time": iat, "amr": []string{"pwd"}, "azp": "native-app", "client_id": "native-app",
		},
		accessAudiences: []string{"native-app"},
	}, {
		// Amazon Cognito: token_use says which.
		name:      "Cognito",
		accessTyp: nil,
		access: map[string]any{
			"sub": "aaaaaaaa-bbbb", "iss": iss, "client_id": "1example23456789", "token_use": "access",
			"scope": "aws.cognito.signin.user.admin", "auth_time": iat, "exp": exp, "iat": iat,
			"jti": "jti-1", "username": "jane", "aud": "1example23456789",
		},
		idTyp: nil,
		id: map[string]any{
			"sub": "aaaaaaaa-bbbb", "aud": "1example23456789", "email_verified": true, "token_use": "id",
			"auth_time": iat, "iss": iss, "cognito:username": "jane", "exp": exp, "iat": iat, "email": "jane@example.com",
		},
		accessAudiences: []string{"1example23456789"},
	}}
}

// TestProviderTokenShapes: for each provider, its access token is accepted
// and its ID token refused as a bearer token, though api.accepted_audiences
// lists the ID token's audience too (so only the token's kind refuses it).
// With api.accept_id_tokens listing that audience, the ID token is accepted.
func TestProviderTokenShapes(t *testing.T) {
	k := newTestKey(t, "k1", jose.RS256)
	p := newProvider(t, k)
	clk := newClock()
	for _, s := range providerSamples(p.URL, clk.Now()) {
		t.Run(s.name, func(t *testing.T) {
			idAud, _ := s.id["aud"].(string)
			if list, ok := s.id["aud"].([]string); ok {
				idAud = list[0]
			}
			both := append(slices.Clone(s.accessAudiences), idAud)
			strict := newClient(t, p, clk, func(cfg *Config) { cfg.AcceptedAudiences = both })
			optIn := newClient(t, p, clk, func(cfg *Config) {
				cfg.AcceptedAudiences = s.accessAudiences
				cfg.AcceptIDTokens = []string{idAud}
			})
			access := k.sign(t, map[string]any{"typ": s.accessTyp}, s.access)
			b, err := strict.VerifyAccessToken(t.Context(), access)
			if err != nil {
				t.Fatalf("access token refused: %v", err)
			}
			if b.IDToken || b.Identity.Subject != s.access["sub"] {
				t.Errorf("access token read as %+v", b)
			}
			for variant, claims := range map[string]map[string]any{
				"as issued":    s.id,
				"from refresh": with(s.id, "nonce", nil, "at_hash", nil, "c_hash", nil),
			} {
				id := k.sign(t, map[string]any{"typ": s.idTyp}, claims)
				if _, err := strict.VerifyAccessToken(t.Context(), id); !errors.Is(err, ErrInvalidToken) {
					t.Errorf("ID token (%s) as a bearer token = %v; want ErrInvalidToken", variant, err)
				}
				b, err := optIn.VerifyAccessToken(t.Context(), id)
				if err != nil || !b.IDToken {
					t.Errorf("ID token (%s) with api.accept_id_tokens [%s] = %+v, %v; want accepted as an ID token", variant, idAud, b, err)
				}
			}
			if _, err := optIn.VerifyAccessToken(t.Context(), access); err != nil {
				t.Errorf("access token with the opt-in: %v", err)
			}
		})
	}
}

// TestAcceptIDTokensIsPerAudience: the opt-in accepts ID tokens of the
// audiences it lists only; a logout token never passes.
func TestAcceptIDTokensIsPerAudience(t *testing.T) {
	k := newTestKey(t, "k1", jose.ES256)
	p := newProvider(t, k)
	clk := newClock()
	c := newClient(t, p, clk, func(cfg *Config) { cfg.AcceptedAudiences = nil; cfg.AcceptIDTokens = []string{"mobile"} })
	now := clk.Now()
	id := map[string]any{"iss": p.URL, "sub": "u", "aud": "mobile", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "nonce": "n"}
	if _, err := c.VerifyAccessToken(t.Context(), k.sign(t, nil, id)); err != nil {
		t.Errorf("ID token for mobile: %v", err)
	}
	for name, cl := range map[string]map[string]any{
		"ID token of another client":          with(id, "aud", "web"),
		"access token (no audience accepted)": accessClaims(p.URL, now),
		"logout token":                        with(logoutClaims(p.URL, now), "aud", "mobile", "exp", now.Add(time.Minute).Unix()),
	} {
		if _, err := c.VerifyAccessToken(t.Context(), k.sign(t, nil, cl)); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("%s: %v; want ErrInvalidToken", name, err)
		}
	}
}

// TestIDTokenClaimTypes: the login path's ID tokens get the RFC 7519 type
// checks go-oidc skips (it reads a string "exp" as a date).
func TestIDTokenClaimTypes(t *testing.T) {
	k := newTestKey(t, "k1", jose.ES256)
	p := newProvider(t, k)
	clk := newClock()
	c := newClient(t, p, clk, nil)
	d, _ := c.ready()
	now := clk.Now()
	id := map[string]any{"iss": p.URL, "sub": "u", "aud": testClientID, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "nonce": "n"}
	verify := func(cl map[string]any) error {
		tok := (&oauth2.Token{AccessToken: "at"}).WithExtra(map[string]any{"id_token": k.sign(t, nil, cl)})
		_, err := c.verify(t.Context(), d, tok)
		return err
	}
	if err := verify(id); err != nil {
		t.Fatalf("valid ID token: %v", err)
	}
	for name, cl := range map[string]map[string]any{
		"exp a string": with(id, "exp", "9999999999"),
		"iat a string": with(id, "iat", "1767225600"),
		"nbf a string": with(id, "nbf", "1767225600"),
		"sub a number": with(id, "sub", 7),
	} {
		if err := verify(cl); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestClassifyExplains(t *testing.T) {
	cl := func(m map[string]any) *claimSet {
		c, err := parseClaims(mustJSON(t, m))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	for _, tt := range []struct {
		typ    string
		claims map[string]any
		want   tokenKind
	}{
		{"at+jwt", map[string]any{"nonce": "x"}, accessToken},
		{"at+jwt", map[string]any{"events": map[string]any{}}, otherToken},
		{"", map[string]any{"typ": "Bearer", "nonce": "x"}, accessToken},
		{"", map[string]any{"typ": "ID", "scope": "openid"}, idToken},
		{"", map[string]any{"typ": "Offline", "scope": "openid"}, otherToken},
		{"", map[string]any{"typ": "JWT", "scope": "openid"}, accessToken},
		{"", map[string]any{"azp": "a", "aud": []string{"b", "a"}}, idToken},
		{"", map[string]any{"azp": "a", "aud": "b"}, accessToken},
		{"", map[string]any{"azp": "a", "aud": "a", "scp": "x"}, accessToken},
		{"", map[string]any{"client_id": "a", "azp": "a", "aud": "a"}, idToken},
		{"", map[string]any{"client_id": "a", "aud": "a"}, accessToken},
		{"", map[string]any{"aud": "a", "sub": "u"}, idToken},
	} {
		got, why := classify(tt.typ, cl(tt.claims))
		if got != tt.want || why == "" {
			t.Errorf("classify(%q, %v) = %v (%s); want %v", tt.typ, tt.claims, got, why, tt.want)
		}
	}
}
