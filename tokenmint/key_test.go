package tokenmint_test

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/tokenmint"
)

func TestGenerateKeyPEMRoundTrip(t *testing.T) {
	for _, alg := range algorithms {
		t.Run(alg, func(t *testing.T) {
			k := testKey(t, alg, 0)
			if got := k.Algorithm(); got != alg {
				t.Errorf("Algorithm() = %q; want %q", got, alg)
			}
			// A SHA-256 thumbprint is 32 bytes: 43 base64url characters.
			if got := k.KeyID(); len(got) != 43 {
				t.Errorf("KeyID() = %q (%d chars); want 43 base64url characters", got, len(got))
			}
			data, err := k.PEM()
			if err != nil {
				t.Fatalf("PEM: %v", err)
			}
			if !bytes.HasPrefix(data, []byte("-----BEGIN PRIVATE KEY-----\n")) {
				t.Errorf("PEM() starts %q; want a PKCS#8 PRIVATE KEY block", data[:min(len(data), 40)])
			}
			back, err := tokenmint.ParseKeyPEM(data)
			if err != nil {
				t.Fatalf("ParseKeyPEM(PEM()): %v", err)
			}
			if back.KeyID() != k.KeyID() || back.Algorithm() != k.Algorithm() {
				t.Errorf("round trip got kid %s alg %s; want kid %s alg %s", back.KeyID(), back.Algorithm(), k.KeyID(), k.Algorithm())
			}
			if other := testKey(t, alg, 1); other.KeyID() == k.KeyID() {
				t.Errorf("two generated %s keys share kid %s", alg, k.KeyID())
			}
		})
	}
}

func TestGenerateKeyRejectsUnknownAlgorithm(t *testing.T) {
	for _, alg := range []string{"", "none", "HS256", "ES384", "es256", "PS256"} {
		_, err := tokenmint.GenerateKey(alg)
		if err == nil {
			t.Errorf("GenerateKey(%q) succeeded; want an error", alg)
			continue
		}
		if !strings.Contains(err.Error(), fmt.Sprintf("%q", alg)) {
			t.Errorf("GenerateKey(%q) error %q does not name the value", alg, err)
		}
	}
}

func TestThumbprintRFCVectors(t *testing.T) {
	// RFC 7638 section 3.1.
	n, err := base64.RawURLEncoding.DecodeString("0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAt" +
		"VT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn6" +
		"4tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FD" +
		"W2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n9" +
		"1CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINH" +
		"aQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw")
	if err != nil {
		t.Fatal(err)
	}
	// RFC 8037 appendix A.2 and A.3.
	x, err := base64.RawURLEncoding.DecodeString("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		pub  any
		want string
	}{
		{"RFC 7638 RSA", &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: 65537}, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"},
		{"RFC 8037 Ed25519", ed25519.PublicKey(x), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"},
	}
	for _, tt := range tests {
		got, err := tokenmint.Thumbprint(tt.pub)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got != tt.want {
			t.Errorf("%s: thumbprint = %s; want %s", tt.name, got, tt.want)
		}
	}
}

func TestKeyIDIsThumbprintOfPublishedKey(t *testing.T) {
	for _, alg := range algorithms {
		k := testKey(t, alg, 0)
		m := newMinter(t, newClock(), k)
		jwk := m.JWKS().Keys[0]
		got, err := tokenmint.Thumbprint(jwk.Key)
		if err != nil {
			t.Fatal(err)
		}
		if got != k.KeyID() || jwk.KeyID != k.KeyID() {
			t.Errorf("%s: published kid %s, thumbprint of published key %s; want both %s", alg, jwk.KeyID, got, k.KeyID())
		}
	}
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// mustDER returns der, or fails tb with err.
func mustDER(tb testing.TB) func(der []byte, err error) []byte {
	return func(der []byte, err error) []byte {
		tb.Helper()
		if err != nil {
			tb.Fatal(err)
		}
		return der
	}
}

func TestParseKeyPEMFormats(t *testing.T) {
	ec := privateKey(t, testKey(t, "ES256", 0)).(*ecdsa.PrivateKey)
	rs := privateKey(t, testKey(t, "RS256", 0)).(*rsa.PrivateKey)
	ed := privateKey(t, testKey(t, "EdDSA", 0)).(ed25519.PrivateKey)
	der := mustDER(t)
	ecParams := []byte("-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n")
	tests := []struct {
		name string
		data []byte
		key  *tokenmint.Key
	}{
		{"SEC1 EC", pemBlock("EC PRIVATE KEY", der(x509.MarshalECPrivateKey(ec))), testKey(t, "ES256", 0)},
		{"SEC1 EC after EC PARAMETERS (openssl ecparam -genkey)", append(ecParams, pemBlock("EC PRIVATE KEY", der(x509.MarshalECPrivateKey(ec)))...), testKey(t, "ES256", 0)},
		{"PKCS#8 EC", pemBlock("PRIVATE KEY", der(x509.MarshalPKCS8PrivateKey(ec))), testKey(t, "ES256", 0)},
		{"PKCS#1 RSA", pemBlock("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rs)), testKey(t, "RS256", 0)},
		{"PKCS#8 RSA", pemBlock("PRIVATE KEY", der(x509.MarshalPKCS8PrivateKey(rs))), testKey(t, "RS256", 0)},
		{"PKCS#8 Ed25519", pemBlock("PRIVATE KEY", der(x509.MarshalPKCS8PrivateKey(ed))), testKey(t, "EdDSA", 0)},
		{"text around the block", append([]byte("# signing key\n"), pemBlock("PRIVATE KEY", der(x509.MarshalPKCS8PrivateKey(ed)))...), testKey(t, "EdDSA", 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := tokenmint.ParseKeyPEM(tt.data)
			if err != nil {
				t.Fatalf("ParseKeyPEM: %v", err)
			}
			if k.KeyID() != tt.key.KeyID() || k.Algorithm() != tt.key.Algorithm() {
				t.Errorf("got kid %s alg %s; want kid %s alg %s", k.KeyID(), k.Algorithm(), tt.key.KeyID(), tt.key.Algorithm())
			}
		})
	}
}

func TestParseKeyPEMRejects(t *testing.T) {
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	x25519, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der := mustDER(t)
	ec := privateKey(t, testKey(t, "ES256", 0)).(*ecdsa.PrivateKey)
	ecPKCS8 := pemBlock("PRIVATE KEY", der(x509.MarshalPKCS8PrivateKey(ec)))
	tests := []struct {
		name string
		data []byte
		want string // substring of the error
	}{
		{"empty", nil, "no PEM private key"},
		{"not PEM", []byte("hello"), "no PEM private key"},
		{"only EC PARAMETERS", []byte("-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"), "no PEM private key"},
		{"public key", pemBlock("PUBLIC KEY", der(x509.MarshalPKIXPublicKey(&ec.PublicKey))), `"PUBLIC KEY" holds no private key`},
		{"certificate", pemBlock("CERTIFICATE", []byte{0x30, 0}), `"CERTIFICATE" holds no private key`},
		{"encrypted", pemBlock("ENCRYPTED PRIVATE KEY", []byte{0x30, 0}), "encrypted"},
		{"unknown block", pemBlock("OPENSSH PRIVATE KEY", []byte{1}), `unsupported PEM block "OPENSSH PRIVATE KEY"`},
		{"corrupt PKCS#8", pemBlock("PRIVATE KEY", []byte{0x30, 0x03, 1, 2, 3}), `parsing PEM block "PRIVATE KEY"`},
		{"corrupt SEC1", pemBlock("EC PRIVATE KEY", []byte{1, 2, 3}), `parsing PEM block "EC PRIVATE KEY"`},
		{"P-384 SEC1", pemBlock("EC PRIVATE KEY", der(x509.MarshalECPrivateKey(p384))), "curve P-384"},
		{"P-384 PKCS#8", pemBlock("PRIVATE KEY", der(x509.MarshalPKCS8PrivateKey(p384))), "curve P-384"},
		{"RSA 1024", pemBlock("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsa1024)), "1024 bits; want at least 2048"},
		{"X25519", pemBlock("PRIVATE KEY", der(x509.MarshalPKCS8PrivateKey(x25519))), "unsupported private key type"},
		{"two keys", append(append([]byte{}, ecPKCS8...), ecPKCS8...), "more than one key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := tokenmint.ParseKeyPEM(tt.data)
			if err == nil {
				t.Fatalf("ParseKeyPEM succeeded with kid %s; want an error containing %q", k.KeyID(), tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "tokenmint: ") {
				t.Errorf("error %q; want a tokenmint error containing %q", err, tt.want)
			}
		})
	}
}

func writeKeyFile(t *testing.T, dir, name string, k *tokenmint.Key) string {
	t.Helper()
	data, err := k.PEM()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadKeyFiles(t *testing.T) {
	dir := t.TempDir()
	first := writeKeyFile(t, dir, "first.pem", testKey(t, "ES256", 0))
	second := writeKeyFile(t, dir, "second.pem", testKey(t, "EdDSA", 0))
	again := writeKeyFile(t, dir, "again.pem", testKey(t, "ES256", 0))
	bad := filepath.Join(dir, "bad.pem")
	if err := os.WriteFile(bad, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")

	keys, err := tokenmint.LoadKeyFiles([]string{first, second})
	if err != nil {
		t.Fatalf("LoadKeyFiles: %v", err)
	}
	if len(keys) != 2 || keys[0].KeyID() != testKey(t, "ES256", 0).KeyID() || keys[1].KeyID() != testKey(t, "EdDSA", 0).KeyID() {
		t.Errorf("LoadKeyFiles returned %v; want the ES256 then the EdDSA key", keys)
	}
	if keys, err := tokenmint.LoadKeyFiles(nil); err != nil || len(keys) != 0 {
		t.Errorf("LoadKeyFiles(nil) = %v, %v; want no keys and no error", keys, err)
	}

	for _, tt := range []struct {
		name  string
		paths []string
		want  []string // substrings of the error
	}{
		{"missing file", []string{first, missing}, []string{missing}},
		{"not a key", []string{bad}, []string{bad, "no PEM private key"}},
		{"same key twice", []string{first, again}, []string{again, first, "same key"}},
		{"a directory", []string{dir}, []string{dir}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tokenmint.LoadKeyFiles(tt.paths)
			if err == nil {
				t.Fatalf("LoadKeyFiles(%q) succeeded; want an error", tt.paths)
			}
			for _, want := range tt.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
		})
	}
}

// TestSecretsStayOutOfLogs checks that neither a Key's private material nor a
// Token's bearer value reaches slog or fmt output.
func TestSecretsStayOutOfLogs(t *testing.T) {
	k := testKey(t, "ES256", 0)
	raw, err := privateKey(t, k).(*ecdsa.PrivateKey).Bytes()
	if err != nil {
		t.Fatal(err)
	}
	d := new(big.Int).SetBytes(raw)
	tok := mint(t, newMinter(t, newClock(), k), "", testAudience, fullIdentity())

	var buf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&buf, nil))
	logger.Info("key", "key", k, "token", tok)
	fmt.Fprintf(&buf, "%v %+v %#v %s %v %+v %#v %s", k, k, k, k, tok, tok, tok, tok)
	out := buf.String()

	for _, secret := range []string{d.String(), d.Text(16), b64(d.Bytes()), tok.Raw, strings.Split(tok.Raw, ".")[2]} {
		if strings.Contains(out, secret) {
			t.Errorf("output contains a secret %.16q...: %s", secret, out)
		}
	}
	if !strings.Contains(out, k.KeyID()) || !strings.Contains(out, `"alg":"ES256"`) {
		t.Errorf("log output %s lacks the kid %s and alg", out, k.KeyID())
	}
	if !strings.Contains(out, tok.Expiry.UTC().Format(time.RFC3339)) {
		t.Errorf("output %s lacks the token's expiry", out)
	}
}
