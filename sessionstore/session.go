// Package sessionstore keeps browser sessions server-side, in memory or in Redis, and encodes the cookie ticket that
// points to them.
//
// The browser holds only a Ticket: a random session id plus a per-session key. The store finds a session by a hash of
// the id and, in Redis, encrypts it with the key, so neither a copy of Redis nor the store's key names reveal who is
// signed in or the identity provider's tokens.
package sessionstore

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"time"
)

// ErrNotFound reports that a session is absent, expired, or cannot be decrypted with the ticket's key. Callers treat
// it as "not signed in"; any other store error means the store itself is failing.
var ErrNotFound = errors.New("sessionstore: session not found")

// ID is a random 256-bit session id. It is as secret as a password: it never appears in logs, store keys or tokens.
// String, Format and LogValue show only the public SID derived from it.
type ID [32]byte

// sid is base64url(SHA-256("gatehouse-sid\x00" || id)).
func (id ID) sid() string {
	h := sha256.New()
	h.Write([]byte("gatehouse-sid\x00"))
	h.Write(id[:])
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil))
}

// String returns a redacted form naming only the session's public SID.
func (id ID) String() string { return "sessionstore.ID(sid=" + id.sid() + ")" }

// Format prints the redacted String for every verb, so %x or %d cannot print the id's bytes.
func (id ID) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, id.String()) }

// LogValue implements slog.LogValuer: logs get the public SID, never the id.
func (id ID) LogValue() slog.Value { return slog.GroupValue(slog.String("sid", id.sid())) }

// Ticket is what the browser's cookie carries: the session id and the per-session key that encrypts the session at
// rest. String, Format and LogValue redact both and show only the public SID.
type Ticket struct {
	ID  ID
	Key [32]byte
}

// NewTicket returns a ticket with a fresh random id and key from crypto/rand.
func NewTicket() (Ticket, error) {
	var t Ticket
	if _, err := rand.Read(t.ID[:]); err != nil {
		return Ticket{}, fmt.Errorf("sessionstore: generating session id: %w", err)
	}
	if _, err := rand.Read(t.Key[:]); err != nil {
		return Ticket{}, fmt.Errorf("sessionstore: generating session key: %w", err)
	}
	return t, nil
}

// SID returns the stable public handle of the session: base64url(SHA-256("gatehouse-sid\x00" || id)) without
// padding. It is safe in a JWT `sid` claim and in logs; the id cannot be recovered from it.
func (t Ticket) SID() string { return t.ID.sid() }

// String returns a redacted form naming only the session's public SID.
func (t Ticket) String() string { return "sessionstore.Ticket(sid=" + t.SID() + ")" }

// Format prints the redacted String for every verb, including %#v and %x.
func (t Ticket) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, t.String()) }

// LogValue implements slog.LogValuer: logs get the public SID, never the id or the key.
func (t Ticket) LogValue() slog.Value { return slog.GroupValue(slog.String("sid", t.SID())) }

// Session is what the store keeps for a signed-in browser.
type Session struct {
	Subject           string
	Email             string
	EmailVerified     bool
	Name              string
	PreferredUsername string
	Groups            []string
	// Claims holds raw extra ID-token claims kept for claim mappings. Values must be JSON-compatible, and come back
	// from the Redis store as encoding/json decodes them (numbers as float64, arrays as []any, objects as
	// map[string]any).
	Claims map[string]any
	// ProviderSID is the provider's `sid` claim, empty if it sent none.
	ProviderSID string

	// The provider's tokens. The Redis store encrypts them, with the rest of the session, under Ticket.Key.
	IDToken      string
	AccessToken  string
	RefreshToken string
	// TokenExpiry is when AccessToken expires; zero if unknown.
	TokenExpiry time.Time

	AuthTime  time.Time
	CreatedAt time.Time
	LastSeen  time.Time
	// ExpiresAt is the absolute end of the session (its maximum lifetime). Stores refuse a session without one.
	ExpiresAt time.Time
	// Version is bumped by the caller whenever identity or tokens change, so caches keyed on it are dropped.
	Version uint64
}

// Expired reports whether the session is over at now: at or after ExpiresAt, or more than idle after LastSeen.
// An idle of zero or less disables the idle check.
func (s *Session) Expired(now time.Time, idle time.Duration) bool {
	if !now.Before(s.ExpiresAt) {
		return true
	}
	return idle > 0 && now.Sub(s.LastSeen) > idle
}

// Clone returns a deep copy of s: changing the copy's Groups or Claims, at any depth, leaves s untouched.
func (s *Session) Clone() *Session {
	if s == nil {
		return nil
	}
	c := *s
	c.Groups = slices.Clone(s.Groups)
	c.Claims = cloneClaims(s.Claims)
	return &c
}

func cloneClaims(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	c := maps.Clone(m)
	for k, v := range c {
		c[k] = cloneValue(v)
	}
	return c
}

// cloneValue deep-copies the mutable shapes JSON claims take; other values (strings, numbers, bools, nil) are
// immutable and shared.
func cloneValue(v any) any {
	switch v := v.(type) {
	case map[string]any:
		return cloneClaims(v)
	case []any:
		if v == nil {
			return v
		}
		c := make([]any, len(v))
		for i, e := range v {
			c[i] = cloneValue(e)
		}
		return c
	case []string:
		return slices.Clone(v)
	default:
		return v
	}
}
