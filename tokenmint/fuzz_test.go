package tokenmint_test

import (
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/tokenmint"
)

// FuzzVerify feeds arbitrary strings to a Verifier of a real JWKS server. Whatever the
// input, Verify must not panic, and nothing may verify unless its header and payload
// are exactly those of a token the Minter signed (only its signature may differ, as
// ECDSA signatures come in two valid forms).
func FuzzVerify(f *testing.F) {
	e := newVerifyEnv(f)
	v := e.verifier(f, algorithms...)
	now := e.clk.Now()
	valid := []string{
		mint(f, e.minter, "", testAudience, fullIdentity()).Raw,
		mint(f, e.minterFor(f, e.ed), "", testAudience, fullIdentity()).Raw,
		mint(f, e.minterFor(f, e.rs), "", testAudience, &tokenmint.Identity{Subject: "u"}).Raw,
	}
	signed := make(map[string]bool)
	for _, tok := range valid {
		i := strings.LastIndexByte(tok, '.')
		signed[tok[:i]] = true
		f.Add(tok)
	}
	parts := strings.Split(valid[0], ".")
	for _, seed := range []string{
		// malformed structure
		"", ".", "..", "...", "a.b.c", parts[0], parts[0] + "." + parts[1],
		valid[0] + ".", valid[0][:len(valid[0])-1], " " + valid[0], valid[0] + "\n",
		// alg confusion and foreign keys
		b64([]byte(`{"alg":"none","typ":"at+jwt"}`)) + "." + parts[1] + ".",
		b64([]byte(`{"alg":"HS256","typ":"at+jwt","kid":"`+e.es.KeyID()+`"}`)) + "." + parts[1] + "." + parts[2],
		b64([]byte(`{"alg":"ES256","typ":"at+jwt","jku":"http://127.0.0.1:1/"}`)) + "." + parts[1] + "." + parts[2],
		signJWS(f, testKey(f, "ES256", 1), header(testKey(f, "ES256", 1)), claims(now)),
		// claim types and JSON edge cases
		b64([]byte(`{"alg":"ES256","typ":"at+jwt","kid":"`+e.es.KeyID()+`","crit":["b64"],"b64":false}`)) + "." + parts[1] + "." + parts[2],
		b64([]byte(`{"alg":"ES256","alg":"none"}`)) + "." + b64([]byte(`{"exp":1e999}`)) + "." + parts[2],
		b64([]byte(`[]`)) + "." + b64([]byte(`null`)) + "." + parts[2],
		// JSON serialization
		`{"payload":"` + parts[1] + `","protected":"` + parts[0] + `","signature":"` + parts[2] + `"}`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		c, err := v.Verify(t.Context(), raw)
		if err != nil {
			if c != nil {
				t.Fatalf("Verify returned claims and error %v", err)
			}
			return
		}
		i := strings.LastIndexByte(raw, '.')
		if i < 0 || !signed[raw[:i]] {
			t.Fatalf("Verify accepted %q, which the Minter never signed", raw)
		}
		if c.Subject == "" || c.Issuer != testIssuer || c.Expiry.Before(now) || c.Expiry.After(now.Add(time.Hour)) {
			t.Fatalf("Verify accepted %q with claims %+v", raw, c)
		}
	})
}
