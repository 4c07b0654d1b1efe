package sessionstore

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/gorilla/securecookie"
	"golang.org/x/crypto/hkdf"
)

// ErrInvalidCookie reports a cookie value that does not decode: tampered, truncated, expired, made for another cookie
// name or with a retired secret, or simply garbage. It is the client's fault (a 401), never a server error.
var ErrInvalidCookie = errors.New("sessionstore: invalid cookie")

const (
	// MinSecretLen is the shortest cookie secret NewCodec accepts: 256 bits, the strength of the derived keys.
	MinSecretLen = 32

	// maxCookieLen is the longest encoded value Encode produces or Decode considers; browsers do not keep cookies
	// longer than 4096 bytes anyway (RFC 6265 section 6.1).
	maxCookieLen = 4096

	// maxTicketCookieLen bounds encoded tickets. A ticket encodes to about 200 bytes; anything much longer is
	// rejected before any base64 or HMAC work.
	maxTicketCookieLen = 256

	ticketLen = len(ID{}) + 32

	// HKDF info strings keep the two derived keys independent of each other and of any other use of the secret.
	hashKeyInfo  = "gatehouse cookie hmac-sha256 v1"
	blockKeyInfo = "gatehouse cookie aes-256 v1"
)

// Codec encodes and decodes cookie values with gorilla/securecookie: AES-256-CTR encryption authenticated by
// HMAC-SHA256 over the cookie name, a timestamp and the ciphertext. It is safe for concurrent use.
type Codec struct {
	codecs []securecookie.Codec // codecs[0] encodes; all decode, newest first
}

// NewCodec returns a Codec for secrets, newest first: secrets[0] encodes, every secret decodes, so a secret can be
// rotated in by prepending it and retired by removing it. Each secret must be at least MinSecretLen bytes of
// high-entropy data; the HMAC and AES keys are derived from it with HKDF-SHA256.
//
// maxAge bounds how old an encoded value may be when decoded, in whole seconds; zero means no limit (the server-side
// session then decides). NewCodec round-trips a value through every secret so a bad key fails here, at startup.
func NewCodec(secrets [][]byte, maxAge time.Duration) (*Codec, error) {
	if len(secrets) == 0 {
		return nil, errors.New("sessionstore: cookie codec: no secrets: at least one is required")
	}
	if maxAge < 0 || (maxAge > 0 && maxAge < time.Second) {
		return nil, fmt.Errorf("sessionstore: cookie codec: max age %v: must be zero (no limit) or at least 1s", maxAge)
	}
	maxAgeSec := int(math.Ceil(maxAge.Seconds()))

	c := &Codec{}
	for i, secret := range secrets {
		if len(secret) < MinSecretLen {
			return nil, fmt.Errorf("sessionstore: cookie codec: secret #%d is %d bytes: must be at least %d bytes",
				i+1, len(secret), MinSecretLen)
		}
		hashKey, err := deriveKey(secret, hashKeyInfo)
		if err != nil {
			return nil, err
		}
		blockKey, err := deriveKey(secret, blockKeyInfo)
		if err != nil {
			return nil, err
		}
		sc := securecookie.New(hashKey, blockKey).
			MaxLength(maxCookieLen).
			MaxAge(maxAgeSec).
			SetSerializer(securecookie.NopEncoder{})
		c.codecs = append(c.codecs, sc)
	}

	// securecookie.New defers key errors to the first Encode/Decode; surface them now, for every secret.
	probe := []byte("gatehouse codec self-test")
	for i, sc := range c.codecs {
		enc, err := sc.Encode("probe", bytes.Clone(probe)) // Encode encrypts its argument in place
		if err != nil {
			return nil, fmt.Errorf("sessionstore: cookie codec: secret #%d: self-test encode: %w", i+1, err)
		}
		var dec []byte
		if err := sc.Decode("probe", enc, &dec); err != nil {
			return nil, fmt.Errorf("sessionstore: cookie codec: secret #%d: self-test decode: %w", i+1, err)
		}
		if !bytes.Equal(dec, probe) {
			return nil, fmt.Errorf("sessionstore: cookie codec: secret #%d: self-test decoded a different value", i+1)
		}
	}
	return c, nil
}

func deriveKey(secret []byte, info string) ([]byte, error) {
	key := make([]byte, 32)
	if _, err := io.ReadFull(hkdf.New(sha256.New, secret, nil, []byte(info)), key); err != nil {
		return nil, fmt.Errorf("sessionstore: cookie codec: deriving key: %w", err)
	}
	return key, nil
}

// Encode encrypts and authenticates value for the cookie called name, with the newest secret. value must not be
// empty, and the result must fit a cookie: at most 4096 bytes, which leaves room for about 2.2 KB of value.
func (c *Codec) Encode(name string, value []byte) (string, error) {
	if len(value) == 0 {
		// securecookie cannot decode an empty encrypted value; refuse to make a cookie that would never work.
		return "", fmt.Errorf("sessionstore: encoding cookie %q: empty value", name)
	}
	// securecookie encrypts the serialized bytes in place, and NopEncoder serializes to the caller's own slice: copy
	// so the caller's value survives.
	buf := make([]byte, len(value))
	copy(buf, value)
	return c.encodeOwned(name, buf)
}

// encodeOwned encodes value, which it may overwrite.
func (c *Codec) encodeOwned(name string, value []byte) (string, error) {
	s, err := c.codecs[0].Encode(name, value)
	if err != nil {
		return "", fmt.Errorf("sessionstore: encoding cookie %q: %w", name, err)
	}
	return s, nil
}

// Decode authenticates and decrypts a value made by Encode for the same name with any of the secrets. Every failure
// wraps ErrInvalidCookie.
func (c *Codec) Decode(name, value string) ([]byte, error) {
	b, _, err := c.decode(name, value, maxCookieLen)
	return b, err
}

// decode returns the decoded value and the index of the secret that decoded it (0 = the newest).
func (c *Codec) decode(name, value string, maxLen int) ([]byte, int, error) {
	// Checked once here rather than once per secret inside securecookie.
	if value == "" {
		return nil, 0, fmt.Errorf("%w: empty", ErrInvalidCookie)
	}
	if len(value) > maxLen {
		return nil, 0, fmt.Errorf("%w: %d bytes is longer than %d", ErrInvalidCookie, len(value), maxLen)
	}
	var dst []byte
	for i, sc := range c.codecs {
		if err := sc.Decode(name, value, &dst); err == nil {
			return dst, i, nil
		}
	}
	// Which check failed is deliberately not reported: it would only help someone probing.
	return nil, 0, ErrInvalidCookie
}

// EncodeTicket encodes t for the cookie called name.
func (c *Codec) EncodeTicket(name string, t Ticket) (string, error) {
	b := make([]byte, ticketLen)
	copy(b[:len(t.ID)], t.ID[:])
	copy(b[len(t.ID):], t.Key[:])
	return c.encodeOwned(name, b)
}

// DecodeTicket decodes a value made by EncodeTicket for the same name. Every failure, including a payload of the
// wrong length, wraps ErrInvalidCookie.
func (c *Codec) DecodeTicket(name, value string) (Ticket, error) {
	t, _, err := c.DecodeTicketStale(name, value)
	return t, err
}

// DecodeTicketStale is DecodeTicket that also reports whether value was sealed with an older secret than the newest.
// A stale cookie should be encoded again (EncodeTicket) and sent back to the browser at once, so that by the time the
// older secret is removed every session still in use carries a cookie of the newest: rotation then signs nobody out.
// stale is false whenever err is not nil.
func (c *Codec) DecodeTicketStale(name, value string) (t Ticket, stale bool, err error) {
	b, secret, err := c.decode(name, value, maxTicketCookieLen)
	if err != nil {
		return Ticket{}, false, err
	}
	if len(b) != ticketLen {
		return Ticket{}, false, fmt.Errorf("%w: ticket payload is %d bytes, want %d", ErrInvalidCookie, len(b), ticketLen)
	}
	copy(t.ID[:], b[:len(t.ID)])
	copy(t.Key[:], b[len(t.ID):])
	return t, secret > 0, nil
}
