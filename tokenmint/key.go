package tokenmint

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	jose "github.com/go-jose/go-jose/v4"
)

// Algorithm names accepted by GenerateKey and by VerifierConfig.Algorithms.
const (
	algES256 = "ES256"
	algEdDSA = "EdDSA"
	algRS256 = "RS256"
)

// Key sizes and limits.
const (
	minRSABits = 2048
	// genRSABits is what GenerateKey("RS256") makes: the minimum RFC 8725 and NIST
	// accept, and the cheapest to sign with.
	genRSABits = 2048
	// maxKeyFileSize bounds LoadKeyFiles so a wrong path (a device, a log) fails
	// fast instead of filling memory.
	maxKeyFileSize = 1 << 20
)

// Key is one signing key. Its algorithm follows the key type: an EC P-256 key signs
// with ES256, an Ed25519 key with EdDSA and an RSA key of at least 2048 bits with
// RS256. A Key is immutable and safe for concurrent use.
//
// Key redacts itself in logs and fmt output: only the key ID and algorithm show.
type Key struct {
	priv   crypto.Signer
	alg    string
	kid    string
	signer jose.Signer     // header {alg, kid, typ: at+jwt}; safe for concurrent use
	public jose.JSONWebKey // what the JWKS publishes
}

// GenerateKey returns a new random key for alg, one of "ES256", "EdDSA" or "RS256".
func GenerateKey(alg string) (*Key, error) {
	var (
		priv crypto.Signer
		err  error
	)
	switch alg {
	case algES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case algEdDSA:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	case algRS256:
		priv, err = rsa.GenerateKey(rand.Reader, genRSABits)
	default:
		return nil, fmt.Errorf("tokenmint: unsupported algorithm %q (want ES256, EdDSA or RS256)", alg)
	}
	if err != nil {
		return nil, fmt.Errorf("tokenmint: generating %s key: %w", alg, err)
	}
	return newKey(priv)
}

// ParseKeyPEM parses a PEM-encoded private key: PKCS#8 ("PRIVATE KEY"), SEC1
// ("EC PRIVATE KEY") or PKCS#1 ("RSA PRIVATE KEY"). "EC PARAMETERS" blocks, as
// written by `openssl ecparam -genkey`, are skipped. It rejects public keys,
// certificates, encrypted keys, EC curves other than P-256, RSA keys under 2048 bits
// and data holding more than one key.
func ParseKeyPEM(data []byte) (*Key, error) {
	var (
		priv  crypto.Signer
		found bool
		rest  = data
	)
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type == "EC PARAMETERS" {
			continue
		}
		if found {
			return nil, errors.New("tokenmint: PEM data holds more than one key; want exactly one")
		}
		found = true
		var err error
		priv, err = parsePEMBlock(block)
		if err != nil {
			return nil, err
		}
	}
	if !found {
		return nil, errors.New("tokenmint: no PEM private key found")
	}
	return newKey(priv)
}

func parsePEMBlock(block *pem.Block) (crypto.Signer, error) {
	var (
		parsed any
		err    error
	)
	switch block.Type {
	case "PRIVATE KEY":
		parsed, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		parsed, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		parsed, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "PUBLIC KEY", "RSA PUBLIC KEY", "EC PUBLIC KEY", "CERTIFICATE":
		return nil, fmt.Errorf("tokenmint: PEM block %q holds no private key; a signing key must be private", block.Type)
	case "ENCRYPTED PRIVATE KEY":
		return nil, errors.New(`tokenmint: PEM block "ENCRYPTED PRIVATE KEY" is encrypted; decrypt it first (openssl pkcs8 -nocrypt)`)
	default:
		return nil, fmt.Errorf("tokenmint: unsupported PEM block %q (want PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY)", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("tokenmint: parsing PEM block %q: %w", block.Type, err)
	}
	switch k := parsed.(type) {
	case *ecdsa.PrivateKey:
		return k, nil
	case ed25519.PrivateKey:
		return k, nil
	case *rsa.PrivateKey:
		return k, nil
	default:
		return nil, fmt.Errorf("tokenmint: unsupported private key type %T in PEM block %q", parsed, block.Type)
	}
}

// newKey checks priv against the algorithms tokenmint signs with and precomputes
// everything signing and publishing need.
func newKey(priv crypto.Signer) (*Key, error) {
	var alg string
	switch k := priv.(type) {
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("tokenmint: unsupported EC curve %s (want P-256)", k.Curve.Params().Name)
		}
		alg = algES256
	case ed25519.PrivateKey:
		if len(k) != ed25519.PrivateKeySize {
			return nil, fmt.Errorf("tokenmint: Ed25519 private key has %d bytes; want %d", len(k), ed25519.PrivateKeySize)
		}
		alg = algEdDSA
	case *rsa.PrivateKey:
		if bits := k.N.BitLen(); bits < minRSABits {
			return nil, fmt.Errorf("tokenmint: RSA key has %d bits; want at least %d", bits, minRSABits)
		}
		alg = algRS256
	default:
		return nil, fmt.Errorf("tokenmint: unsupported private key type %T", priv)
	}
	kid, err := thumbprint(priv.Public())
	if err != nil {
		return nil, err
	}
	signer, err := jose.NewSigner(
		jose.SigningKey{
			Algorithm: jose.SignatureAlgorithm(alg),
			Key:       jose.JSONWebKey{Key: priv, KeyID: kid, Algorithm: alg},
		},
		(&jose.SignerOptions{}).WithType(tokenType),
	)
	if err != nil {
		return nil, fmt.Errorf("tokenmint: preparing %s signer: %w", alg, err)
	}
	return &Key{
		priv:   priv,
		alg:    alg,
		kid:    kid,
		signer: signer,
		public: jose.JSONWebKey{Key: priv.Public(), KeyID: kid, Algorithm: alg, Use: "sig"},
	}, nil
}

// thumbprint returns the RFC 7638 SHA-256 JWK thumbprint of pub, base64url without
// padding.
func thumbprint(pub crypto.PublicKey) (string, error) {
	jwk := jose.JSONWebKey{Key: pub}
	sum, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("tokenmint: computing key thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(sum), nil
}

// LoadKeyFiles reads one PEM private key from each path, in order. An error names the
// file. Two files holding the same key are an error too, since a key published twice
// under one kid would make rotation ambiguous. No paths returns no keys.
func LoadKeyFiles(paths []string) ([]*Key, error) {
	keys := make([]*Key, 0, len(paths))
	seen := make(map[string]string, len(paths)) // kid -> path
	for _, path := range paths {
		data, err := readKeyFile(path)
		if err != nil {
			return nil, err
		}
		k, err := ParseKeyPEM(data)
		if err != nil {
			return nil, fmt.Errorf("tokenmint: key file %q: %w", path, err)
		}
		if first, dup := seen[k.kid]; dup {
			return nil, fmt.Errorf("tokenmint: key file %q holds the same key as %q", path, first)
		}
		seen[k.kid] = path
		keys = append(keys, k)
	}
	return keys, nil
}

func readKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("tokenmint: key file %q: %w", path, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("tokenmint: key file %q: %w", path, err)
	}
	if len(data) > maxKeyFileSize {
		return nil, fmt.Errorf("tokenmint: key file %q is larger than %d bytes; not a PEM key", path, maxKeyFileSize)
	}
	return data, nil
}

// PEM returns the private key as PKCS#8 PEM ("PRIVATE KEY"), the format
// ParseKeyPEM and LoadKeyFiles read back.
func (k *Key) PEM() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k.priv)
	if err != nil {
		return nil, fmt.Errorf("tokenmint: encoding %s key %s: %w", k.alg, k.kid, err)
	}
	var buf bytes.Buffer
	if err := pem.Encode(&buf, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		return nil, fmt.Errorf("tokenmint: encoding %s key %s: %w", k.alg, k.kid, err)
	}
	return buf.Bytes(), nil
}

// KeyID returns the key's RFC 7638 SHA-256 thumbprint, base64url-encoded: the `kid`
// of the tokens it signs and of its JWKS entry.
func (k *Key) KeyID() string { return k.kid }

// Algorithm returns the JWS algorithm the key signs with: "ES256", "EdDSA" or "RS256".
func (k *Key) Algorithm() string { return k.alg }

// LogValue implements slog.LogValuer: only the key ID and algorithm are logged.
func (k *Key) LogValue() slog.Value {
	return slog.GroupValue(slog.String("kid", k.kid), slog.String("alg", k.alg))
}

// String keeps fmt's %v from printing private key material.
func (k *Key) String() string { return "tokenmint.Key{kid: " + k.kid + ", alg: " + k.alg + "}" }

// GoString keeps fmt's %#v from printing private key material.
func (k *Key) GoString() string { return k.String() }

var (
	_ slog.LogValuer = (*Key)(nil)
	_ fmt.Stringer   = (*Key)(nil)
)
