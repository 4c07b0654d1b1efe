package tokenmint_test

import (
	"testing"

	"github.com/gatehouse/gatehouse/tokenmint"
)

// BenchmarkMintCacheHit is the steady state: a session's token for a route is cached.
func BenchmarkMintCacheHit(b *testing.B) {
	// The real clock, as in production: the token stays fresh for a minute.
	m, err := tokenmint.NewMinter(tokenmint.Config{Issuer: testIssuer, Keys: []*tokenmint.Key{testKey(b, "ES256", 0)}})
	if err != nil {
		b.Fatal(err)
	}
	id := fullIdentity()
	ctx := b.Context()
	mint(b, m, "session", testAudience, id)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := m.Mint(ctx, "session", testAudience, id); err != nil {
			b.Fatal(err)
		}
	}
	if minted, _ := m.Stats(); minted != 1 {
		b.Fatalf("minted %d tokens; want every iteration served from the cache", minted)
	}
}

// BenchmarkMintCacheMiss signs every time: the session's token is forgotten first, as
// after a refresh, so the whole miss path (claims, signature, cache insert) runs.
func BenchmarkMintCacheMiss(b *testing.B) {
	for _, alg := range algorithms {
		b.Run(alg, func(b *testing.B) {
			m := newMinter(b, newClock(), testKey(b, alg, 0))
			id := fullIdentity()
			ctx := b.Context()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				m.Forget("session")
				if _, err := m.Mint(ctx, "session", testAudience, id); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkVerify is an upstream checking one token per request, with the keys cached.
func BenchmarkVerify(b *testing.B) {
	for _, alg := range algorithms {
		b.Run(alg, func(b *testing.B) {
			e := newVerifyEnv(b)
			v := e.verifier(b, alg)
			raw := mint(b, e.minterFor(b, testKey(b, alg, 0)), "", testAudience, fullIdentity()).Raw
			ctx := b.Context()
			if _, err := v.Verify(ctx, raw); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := v.Verify(ctx, raw); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
