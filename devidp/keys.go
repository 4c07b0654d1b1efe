package devidp

import (
	"crypto"
	"crypto/rsa"
	"encoding/base64"
	"fmt"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// signingKey is the provider's one RS256 key. It serves as both op.SigningKey
// (private half) and, through publicKey, op.Key for the JWKS.
type signingKey struct {
	id      string
	private *rsa.PrivateKey
}

var (
	_ op.SigningKey = (*signingKey)(nil)
	_ op.Key        = publicKey{}
)

// newSigningKey names the key by its RFC 7638 thumbprint, so the kid is
// stable for the key and says nothing else.
func newSigningKey(private *rsa.PrivateKey) (*signingKey, error) {
	jwk := jose.JSONWebKey{Key: &private.PublicKey}
	thumb, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("devidp: key thumbprint: %w", err)
	}
	return &signingKey{id: base64.RawURLEncoding.EncodeToString(thumb), private: private}, nil
}

func (k *signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k *signingKey) Key() any                                    { return k.private }
func (k *signingKey) ID() string                                  { return k.id }

// signer returns a go-jose signer for this key with the given typ header.
func (k *signingKey) signer(typ jose.ContentType) (jose.Signer, error) {
	s, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.RS256, Key: &jose.JSONWebKey{Key: k.private, KeyID: k.id}},
		(&jose.SignerOptions{}).WithType(typ),
	)
	if err != nil {
		return nil, fmt.Errorf("devidp: building signer: %w", err)
	}
	return s, nil
}

// publicKey is the JWKS view of a signingKey.
type publicKey struct{ k *signingKey }

func (p publicKey) ID() string                         { return p.k.id }
func (p publicKey) Algorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (p publicKey) Use() string                        { return "sig" }
func (p publicKey) Key() any                           { return &p.k.private.PublicKey }
