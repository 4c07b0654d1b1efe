package oidcclient

import (
	"context"
	"errors"
	"fmt"
	"strings"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/gatehouse/gatehouse/internal/jwks"
)

// maxTokenSize bounds a token before it is parsed. Real tokens are a few
// KiB; Entra ID's with many groups stay far below this.
const maxTokenSize = 64 << 10

// keySet verifies JWS signatures with the provider's keys, fetched only from
// the jwks_uri of discovery (a token's jku, x5u, jwk or x5c headers are never
// used) and only for the pinned asymmetric algorithms. It serves go-oidc's
// ID-token verifier (oidc.KeySet) and the access- and logout-token checks.
// Safe for concurrent use.
type keySet struct {
	cache *jwks.Cache
	algs  []jose.SignatureAlgorithm
}

// verify checks raw's signature and returns its payload. checkType, if not
// nil, judges the header's typ (lowercased, "" when absent) before any key
// is looked up, so a token of the wrong type costs no fetch. Errors wrap
// ErrInvalidToken when the token is bad and ErrUnavailable when the keys
// cannot be had. With retryUnknown, a kid unknown to a key set too recent
// to fetch again is ErrUnavailable, not ErrInvalidToken: for senders that
// retry, so a key published moments ago is found on their retry.
func (k *keySet) verify(ctx context.Context, raw string, checkType func(typ string) error, retryUnknown bool) ([]byte, error) {
	if len(raw) > maxTokenSize {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrInvalidToken, maxTokenSize)
	}
	jws, err := jose.ParseSignedCompact(raw, k.algs)
	if err != nil {
		return nil, fmt.Errorf("%w: malformed or not signed with a pinned algorithm: %w", ErrInvalidToken, err)
	}
	if len(jws.Signatures) != 1 {
		return nil, fmt.Errorf("%w: %d signatures; want 1", ErrInvalidToken, len(jws.Signatures))
	}
	hdr := jws.Signatures[0].Protected
	if checkType != nil {
		typ, ok := hdr.ExtraHeaders[jose.HeaderType].(string)
		if _, present := hdr.ExtraHeaders[jose.HeaderType]; present && !ok {
			return nil, fmt.Errorf("%w: typ header is not a string", ErrInvalidToken)
		}
		if err := checkType(normalizeType(typ)); err != nil {
			return nil, err
		}
	}
	keys, err := k.cache.Lookup(ctx, hdr.KeyID)
	switch {
	case retryUnknown && errors.Is(err, jwks.ErrNotRefetched):
		return nil, fmt.Errorf("%w: signed by a key not in the provider's key set, fetched moments ago; retry later: %v", ErrUnavailable, err)
	case errors.Is(err, jwks.ErrUnknownKey):
		return nil, fmt.Errorf("%w: signed by a key the provider does not publish: %w", ErrInvalidToken, err)
	case err != nil:
		return nil, fmt.Errorf("%w: provider keys: %w", ErrUnavailable, err)
	}
	for _, key := range keys {
		if key.Algorithm != "" && key.Algorithm != hdr.Algorithm {
			continue
		}
		if payload, err := jws.Verify(key.Key); err == nil {
			return payload, nil
		}
	}
	return nil, fmt.Errorf("%w: signature does not verify", ErrInvalidToken)
}

// VerifySignature implements oidc.KeySet for go-oidc's ID-token verifier.
func (k *keySet) VerifySignature(ctx context.Context, raw string) ([]byte, error) {
	return k.verify(ctx, raw, nil, false)
}

// normalizeType lowercases a typ header and drops the "application/" prefix
// that media type names may carry (RFC 7515 section 4.1.9).
func normalizeType(typ string) string {
	return strings.TrimPrefix(strings.ToLower(typ), "application/")
}
