// Package tokenmint mints the short-lived signed JWTs (RFC 9068 access tokens) that
// Gatehouse hands to upstreams, publishes the keys that verify them as a JWKS, and
// offers a Verifier with which a Go upstream checks them.
//
// Signing keys form an ordered list: the first signs and all are published, so a key
// rotation is publish, then promote, then retire after the longest token lifetime.
// Minted tokens are cached per session and audience and the cache is dropped when the
// keys change.
//
// A Go upstream verifies tokens with a Verifier pinned to one issuer, one audience, one
// JWKS URL and a short list of algorithms; it never follows a key location named by the
// token itself:
//
//	v, err := tokenmint.NewVerifier(tokenmint.VerifierConfig{
//		Issuer:   "https://app.example.com",
//		Audience: "api",
//		JWKSURL:  "https://app.example.com/oauth2/jwks.json",
//	})
//	if err != nil {
//		return err
//	}
//	http.Handle("/api/", v.Middleware(apiHandler))
package tokenmint
