package oidcclient

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// FuzzVerifyAccessToken feeds arbitrary strings to VerifyAccessToken of a
// Client whose provider (a real JWKS server) has one ES256 key. Whatever the
// input: no panic; an error wraps ErrInvalidToken (the JWKS is up, so never
// ErrUnavailable) and comes without a Bearer; and an accepted token is one
// that an independent check finds signed by the provider's key with the
// provider's issuer, an accepted audience, a sub, a numeric exp in the
// future and no logout event.
func FuzzVerifyAccessToken(f *testing.F) {
	k := newTestKey(f, "k1", jose.ES256)
	p := newProvider(f, k)
	clk := newClock()
	c := newClient(f, p, clk, nil)
	now := clk.Now()
	good := accessClaims(p.URL, now)
	for _, seed := range []string{
		k.sign(f, nil, good),
		k.sign(f, map[string]any{"typ": "at+jwt"}, with(good, "nonce", "n")),
		k.sign(f, map[string]any{"typ": "logout+jwt"}, good),
		k.sign(f, nil, with(good, "exp", "9999999999")),
		k.sign(f, nil, with(good, "exp", now.Add(-time.Hour).Unix())),
		k.sign(f, nil, with(good, "aud", []any{"api", 1})),
		k.sign(f, nil, with(good, "events", map[string]any{})),
		k.sign(f, map[string]any{"kid": "other"}, good),
		k.sign(f, map[string]any{"kid": nil}, good),
		k.signRaw(f, `{"iss":"`+p.URL+`","sub":"u","aud":"api","client_id":"x","exp":9999999999,"exp":"1"}`),
		hs256(f, mustJSON(f, k.jwk()), good),
		b64([]byte(`{"alg":"none"}`)) + "." + b64(mustJSON(f, good)) + ".",
		"", ".", "..", "a.b.c", "eyJhbGciOiJFUzI1NiJ9.e30.",
	} {
		f.Add(seed)
	}
	pub := k.signer.Public()
	f.Fuzz(func(t *testing.T, raw string) {
		b, err := c.VerifyAccessToken(t.Context(), raw)
		if err != nil {
			if b != nil {
				t.Fatalf("a Bearer and an error %v", err)
			}
			if !errors.Is(err, ErrInvalidToken) || errors.Is(err, ErrUnavailable) {
				t.Fatalf("error %v does not wrap ErrInvalidToken alone", err)
			}
			return
		}
		jws, err := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{jose.ES256})
		if err != nil {
			t.Fatalf("accepted %q, which is not an ES256 compact JWS: %v", raw, err)
		}
		payload, err := jws.Verify(pub)
		if err != nil {
			t.Fatalf("accepted %q, which the provider's key did not sign", raw)
		}
		var cl map[string]json.RawMessage
		if err := json.Unmarshal(payload, &cl); err != nil {
			t.Fatalf("accepted a payload that is not an object: %s", payload)
		}
		var iss, sub string
		var exp float64
		var aud any
		if json.Unmarshal(cl["iss"], &iss) != nil || iss != p.URL {
			t.Fatalf("accepted iss %s", cl["iss"])
		}
		if json.Unmarshal(cl["sub"], &sub) != nil || sub == "" || sub != b.Identity.Subject {
			t.Fatalf("accepted sub %s as %q", cl["sub"], b.Identity.Subject)
		}
		if s := strings.TrimSpace(string(cl["exp"])); s == "" || s[0] == '"' || json.Unmarshal(cl["exp"], &exp) != nil || !time.Unix(int64(exp), 0).Add(time.Second).After(now) {
			t.Fatalf("accepted exp %s", cl["exp"])
		}
		_ = json.Unmarshal(cl["aud"], &aud)
		switch a := aud.(type) {
		case string:
			if a != "api" {
				t.Fatalf("accepted aud %q", a)
			}
		case []any:
			if !slices.Contains(a, any("api")) {
				t.Fatalf("accepted aud %v", a)
			}
		default:
			t.Fatalf("accepted aud %s", cl["aud"])
		}
		if _, ok := cl["events"]; ok {
			t.Fatalf("accepted a token with events")
		}
	})
}
