package sessionstore

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

const cookieName = "__Host-gatehouse"

func secret(fill byte) []byte { return bytes.Repeat([]byte{fill}, MinSecretLen) }

func mustCodec(t testing.TB, maxAge time.Duration, secrets ...[]byte) *Codec {
	t.Helper()
	c, err := NewCodec(secrets, maxAge)
	if err != nil {
		t.Fatalf("NewCodec: %v", err)
	}
	return c
}

func TestCodecRoundTrip(t *testing.T) {
	c := mustCodec(t, time.Hour, secret('a'))
	if _, err := c.Encode(cookieName, nil); err == nil {
		t.Error("Encode of an empty value: err = nil; want an error (it could never be decoded)")
	}
	for _, value := range [][]byte{[]byte("hello"), {0}, bytes.Repeat([]byte{0, 0xff, '|'}, 100)} {
		orig := bytes.Clone(value)
		enc, err := c.Encode(cookieName, value)
		if err != nil {
			t.Fatalf("Encode(%d bytes): %v", len(value), err)
		}
		if !bytes.Equal(value, orig) {
			t.Fatalf("Encode modified its argument: got %x; want %x", value, orig)
		}
		got, err := c.Decode(cookieName, enc)
		if err != nil {
			t.Fatalf("Decode: %v", err)
		}
		if !bytes.Equal(got, value) {
			t.Fatalf("Decode(Encode(%x)) = %x", value, got)
		}
	}

	tk := mustTicket(t)
	enc, err := c.EncodeTicket(cookieName, tk)
	if err != nil {
		t.Fatalf("EncodeTicket: %v", err)
	}
	if len(enc) > maxTicketCookieLen {
		t.Fatalf("encoded ticket is %d bytes; want at most maxTicketCookieLen (%d)", len(enc), maxTicketCookieLen)
	}
	got, err := c.DecodeTicket(cookieName, enc)
	if err != nil {
		t.Fatalf("DecodeTicket: %v", err)
	}
	if got != tk {
		t.Fatal("DecodeTicket(EncodeTicket(t)) != t")
	}
	// Encoding is randomized: the same ticket never gives the same cookie twice.
	if enc2, _ := c.EncodeTicket(cookieName, tk); enc2 == enc {
		t.Error("two encodings of one ticket are identical; want a fresh IV each time")
	}
}

func TestCodecTooLongToEncode(t *testing.T) {
	c := mustCodec(t, 0, secret('a'))
	if _, err := c.Encode(cookieName, make([]byte, 4000)); err == nil {
		t.Fatal("Encode of a value whose cookie exceeds 4096 bytes: err = nil; want an error")
	}
}

func TestCodecRotation(t *testing.T) {
	oldS, newS := secret('o'), secret('n')
	tk := mustTicket(t)
	oldCookie, err := mustCodec(t, 0, oldS).EncodeTicket(cookieName, tk)
	if err != nil {
		t.Fatalf("EncodeTicket: %v", err)
	}

	rotated := mustCodec(t, 0, newS, oldS)
	if got, err := rotated.DecodeTicket(cookieName, oldCookie); err != nil || got != tk {
		t.Fatalf("DecodeTicket of a cookie made with the previous secret: err = %v, same ticket = %v; want it accepted",
			err, got == tk)
	}
	newCookie, err := rotated.EncodeTicket(cookieName, tk)
	if err != nil {
		t.Fatalf("EncodeTicket after rotation: %v", err)
	}
	if _, err := mustCodec(t, 0, oldS).DecodeTicket(cookieName, newCookie); !errors.Is(err, ErrInvalidCookie) {
		t.Fatalf("old-secret codec decoding a new cookie: err = %v; want ErrInvalidCookie (new cookies use secrets[0])", err)
	}

	retired := mustCodec(t, 0, newS)
	if _, err := retired.DecodeTicket(cookieName, oldCookie); !errors.Is(err, ErrInvalidCookie) {
		t.Fatalf("DecodeTicket after removing the old secret: err = %v; want ErrInvalidCookie", err)
	}
	if got, err := retired.DecodeTicket(cookieName, newCookie); err != nil || got != tk {
		t.Fatalf("DecodeTicket of a current cookie after retiring the old secret: err = %v; want it accepted", err)
	}
}

// TestCodecDecodeTicketStale: only a cookie sealed with the newest secret is fresh; one sealed with any older secret
// is reported stale, and encoding its ticket again makes it fresh.
func TestCodecDecodeTicketStale(t *testing.T) {
	newest, middle, oldest := secret('n'), secret('m'), secret('o')
	c := mustCodec(t, time.Hour, newest, middle, oldest)
	tk := mustTicket(t)
	for _, tc := range []struct {
		name      string
		sealedBy  []byte
		wantStale bool
	}{
		{"newest secret", newest, false},
		{"second secret", middle, true},
		{"oldest secret", oldest, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			value := mustEncodeTicket(t, mustCodec(t, time.Hour, tc.sealedBy), tk)
			got, stale, err := c.DecodeTicketStale(cookieName, value)
			if err != nil || got != tk {
				t.Fatalf("DecodeTicketStale: err = %v, same ticket = %v; want it accepted", err, got == tk)
			}
			if stale != tc.wantStale {
				t.Fatalf("stale = %v; want %v", stale, tc.wantStale)
			}
			again := mustEncodeTicket(t, c, got)
			if _, stale, err := c.DecodeTicketStale(cookieName, again); err != nil || stale {
				t.Fatalf("the ticket encoded again: stale = %v, err = %v; want fresh", stale, err)
			}
		})
	}
	foreign := mustEncodeTicket(t, mustCodec(t, time.Hour, secret('x')), tk)
	if got, stale, err := c.DecodeTicketStale(cookieName, foreign); !errors.Is(err, ErrInvalidCookie) || stale || got != (Ticket{}) {
		t.Fatalf("a cookie of an unknown secret: err = %v, stale = %v; want ErrInvalidCookie, not stale, no ticket", err, stale)
	}
}

// forge builds a securecookie value by hand with the codec's derived keys and a chosen timestamp, to test what only
// time could otherwise produce.
func forge(t *testing.T, secret []byte, name string, value []byte, timestamp int64) string {
	t.Helper()
	hashKey, err := deriveKey(secret, hashKeyInfo)
	if err != nil {
		t.Fatal(err)
	}
	blockKey, err := deriveKey(secret, blockKeyInfo)
	if err != nil {
		t.Fatal(err)
	}
	block, err := aes.NewCipher(blockKey)
	if err != nil {
		t.Fatal(err)
	}
	ct := make([]byte, aes.BlockSize+len(value))
	if _, err := rand.Read(ct[:aes.BlockSize]); err != nil {
		t.Fatal(err)
	}
	cipher.NewCTR(block, ct[:aes.BlockSize]).XORKeyStream(ct[aes.BlockSize:], value)
	payload := fmt.Sprintf("%s|%d|%s", name, timestamp, base64.URLEncoding.EncodeToString(ct))
	mac := hmac.New(sha256.New, hashKey)
	mac.Write([]byte(payload))
	signed := payload[len(name)+1:] + "|" + string(mac.Sum(nil))
	return base64.URLEncoding.EncodeToString([]byte(signed))
}

func TestCodecMaxAge(t *testing.T) {
	s := secret('a')
	c := mustCodec(t, time.Hour, s)
	tk := mustTicket(t)
	payload := append(tk.ID[:], tk.Key[:]...)
	now := time.Now().Unix()

	if got, err := c.DecodeTicket(cookieName, forge(t, s, cookieName, payload, now-60)); err != nil || got != tk {
		t.Fatalf("DecodeTicket of a hand-made cookie a minute old: err = %v; want it accepted", err)
	}
	if _, err := c.DecodeTicket(cookieName, forge(t, s, cookieName, payload, now-2*3600)); !errors.Is(err, ErrInvalidCookie) {
		t.Fatalf("DecodeTicket of a cookie older than maxAge: err = %v; want ErrInvalidCookie", err)
	}
	noLimit := mustCodec(t, 0, s)
	if _, err := noLimit.DecodeTicket(cookieName, forge(t, s, cookieName, payload, now-400*24*3600)); err != nil {
		t.Fatalf("DecodeTicket of an old cookie with maxAge 0: err = %v; want it accepted (no limit)", err)
	}
}

func TestCodecRejects(t *testing.T) {
	s := secret('a')
	c := mustCodec(t, time.Hour, s)
	tk := mustTicket(t)
	good, err := c.EncodeTicket(cookieName, tk)
	if err != nil {
		t.Fatalf("EncodeTicket: %v", err)
	}
	short, err := c.Encode(cookieName, []byte("only 20 bytes here.."))
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	long, err := c.Encode(cookieName, bytes.Repeat([]byte{1}, ticketLen+1))
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	raw, _ := base64.URLEncoding.DecodeString(good)
	mid := len(good) / 2
	tests := []struct {
		name, cookie, value string
	}{
		{"empty", cookieName, ""},
		{"truncated", cookieName, good[:len(good)-4]},
		{"truncated to half", cookieName, good[:mid]},
		{"one character changed", cookieName, good[:mid] + flip(good[mid]) + good[mid+1:]},
		{"MAC byte changed", cookieName, base64.URLEncoding.EncodeToString(append(bytes.Clone(raw[:len(raw)-1]), raw[len(raw)-1]^1))},
		{"timestamp changed", cookieName, base64.URLEncoding.EncodeToString(append([]byte("1"), raw...))},
		{"appended garbage", cookieName, good + "AAAA"},
		{"foreign name", "other", good},
		{"name prefix swapped", "gatehouse", good},
		{"other secret", cookieName, mustEncodeTicket(t, mustCodec(t, 0, secret('b')), tk)},
		{"payload too short", cookieName, short},
		{"payload too long", cookieName, long},
		{"not base64", cookieName, "!!!!****"},
		{"huge", cookieName, strings.Repeat("A", 1<<20)},
		{"just over a ticket's size", cookieName, strings.Repeat("A", maxTicketCookieLen+1)},
		{"pipes", cookieName, base64.URLEncoding.EncodeToString([]byte("||"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := c.DecodeTicket(tt.cookie, tt.value)
			if !errors.Is(err, ErrInvalidCookie) {
				t.Fatalf("DecodeTicket = (%v, %v); want ErrInvalidCookie", got, err)
			}
			if got != (Ticket{}) {
				t.Errorf("DecodeTicket returned a non-zero ticket with its error")
			}
		})
	}
	// Decode (no ticket length check) rejects the same garbage, and huge values up front.
	for _, v := range []string{"", good[:mid], strings.Repeat("A", 5000), "!!!!"} {
		if _, err := c.Decode(cookieName, v); !errors.Is(err, ErrInvalidCookie) {
			t.Errorf("Decode(%.20q...) err = %v; want ErrInvalidCookie", v, err)
		}
	}
}

func flip(b byte) string {
	if b == 'A' {
		return "B"
	}
	return "A"
}

func mustEncodeTicket(t testing.TB, c *Codec, tk Ticket) string {
	t.Helper()
	s, err := c.EncodeTicket(cookieName, tk)
	if err != nil {
		t.Fatalf("EncodeTicket: %v", err)
	}
	return s
}

func TestNewCodecErrors(t *testing.T) {
	tests := []struct {
		name    string
		secrets [][]byte
		maxAge  time.Duration
		wantErr []string // substrings the error must contain
	}{
		{"no secrets", nil, 0, []string{"no secrets"}},
		{"short secret", [][]byte{[]byte("too short")}, 0, []string{"secret #1", "9 bytes", "at least 32 bytes"}},
		{"second secret short", [][]byte{secret('a'), make([]byte, 31)}, 0, []string{"secret #2", "31 bytes"}},
		{"empty secret", [][]byte{secret('a'), {}}, 0, []string{"secret #2", "0 bytes"}},
		{"negative max age", [][]byte{secret('a')}, -time.Second, []string{"max age", "-1s"}},
		{"sub-second max age", [][]byte{secret('a')}, time.Millisecond, []string{"max age", "at least 1s"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewCodec(tt.secrets, tt.maxAge)
			if err == nil {
				t.Fatalf("NewCodec = %v, nil; want an error", c)
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("NewCodec error = %q; want it to mention %q", err, want)
				}
			}
		})
	}
	if _, err := NewCodec([][]byte{make([]byte, 64)}, 90*time.Minute); err != nil {
		t.Errorf("NewCodec with a 64-byte secret: %v; want success", err)
	}
}

// FuzzDecodeTicket checks that no cookie value makes decoding panic, and that whatever decodes is a real ticket:
// encoding it again gives a cookie that decodes to the same ticket, sealed with the newest secret. A value is reported
// stale exactly when the newest secret alone cannot decode it.
func FuzzDecodeTicket(f *testing.F) {
	c := mustCodec(f, time.Hour, secret('f'), secret('g'))
	newestOnly := mustCodec(f, time.Hour, secret('f'))
	var tk Ticket
	for i := range tk.ID {
		tk.ID[i], tk.Key[i] = byte(i), byte(255-i)
	}
	good := mustEncodeTicket(f, c, tk)
	oldSecret := mustEncodeTicket(f, mustCodec(f, 0, secret('g')), tk)
	shortPayload, _ := c.Encode(cookieName, []byte("short"))
	seeds := []struct{ name, value string }{
		{cookieName, good},                     // a valid cookie
		{cookieName, oldSecret},                // valid, made with the second (older) secret
		{"other", good},                        // valid for another cookie name
		{cookieName, good[:len(good)/2]},       // truncated
		{cookieName, good + "="},               // extra padding
		{cookieName, shortPayload},             // authentic but not a ticket
		{cookieName, ""},                       // empty
		{cookieName, "fA=="},                   // a lone pipe
		{cookieName, "MTIzfGFiY3xkZWY="},       // "123|abc|def": right shape, no valid MAC
		{cookieName, strings.Repeat("A", 300)}, // longer than any ticket
		{"", good},                             // empty name
	}
	for _, s := range seeds {
		f.Add(s.name, s.value)
	}
	f.Fuzz(func(t *testing.T, name, value string) {
		got, stale, err := c.DecodeTicketStale(name, value)
		if err != nil {
			if !errors.Is(err, ErrInvalidCookie) {
				t.Fatalf("DecodeTicket error %v does not wrap ErrInvalidCookie", err)
			}
			if got != (Ticket{}) || stale {
				t.Fatal("DecodeTicketStale returned a ticket or stale along with an error")
			}
			return
		}
		if _, errNewest := newestOnly.DecodeTicket(name, value); stale != (errNewest != nil) {
			t.Fatalf("stale = %v, but the newest secret alone decodes it: %v", stale, errNewest == nil)
		}
		again, err := c.EncodeTicket(name, got)
		if err != nil {
			t.Fatalf("EncodeTicket of an accepted ticket: %v", err)
		}
		back, stale, err := c.DecodeTicketStale(name, again)
		if err != nil {
			t.Fatalf("DecodeTicket of a re-encoded accepted ticket: %v", err)
		}
		if back != got {
			t.Fatal("re-encoded ticket decodes to a different ticket")
		}
		if stale {
			t.Fatal("a re-encoded ticket is stale; want it sealed with the newest secret")
		}
	})
}

func BenchmarkDecodeTicket(b *testing.B) {
	c := mustCodec(b, time.Hour, secret('a'), secret('b'))
	tk := mustTicket(b)
	enc, err := c.EncodeTicket(cookieName, tk)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.DecodeTicket(cookieName, enc); err != nil {
			b.Fatal(err)
		}
	}
}
