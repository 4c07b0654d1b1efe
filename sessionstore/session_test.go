package sessionstore

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestNewTicket(t *testing.T) {
	a, b := mustTicket(t), mustTicket(t)
	if a == b {
		t.Fatal("two NewTicket calls returned the same ticket")
	}
	if a.ID == (ID{}) || a.Key == [32]byte{} {
		t.Fatal("NewTicket left the id or key zero")
	}
	if a.ID == ID(a.Key) {
		t.Fatal("NewTicket used the same bytes for id and key")
	}
}

func TestSID(t *testing.T) {
	tk := mustTicket(t)
	sum := sha256.Sum256(append([]byte("gatehouse-sid\x00"), tk.ID[:]...))
	want := base64.RawURLEncoding.EncodeToString(sum[:])
	if got := tk.SID(); got != want {
		t.Fatalf("SID() = %q; want base64url(SHA-256(label||id)) = %q", got, want)
	}
	if got := tk.SID(); got != tk.SID() || len(got) != 43 || strings.ContainsAny(got, "=+/") {
		t.Fatalf("SID() = %q; want a stable 43-character unpadded base64url string", got)
	}
	other := tk
	other.Key[0] ^= 1
	if other.SID() != tk.SID() {
		t.Error("SID depends on the key; want it to depend on the id only")
	}
	other.ID[0] ^= 1
	if other.SID() == tk.SID() {
		t.Error("different ids have the same SID")
	}
	if storeHash(tk.ID) == hex.EncodeToString(sum[:]) {
		t.Error("store key hash equals the SID hash; want separate labels so one cannot be derived from the other")
	}
}

// TestRedaction checks that no way of printing a ticket or id shows its bytes.
func TestRedaction(t *testing.T) {
	tk := mustTicket(t)
	leaks := map[string]string{
		"id hex":        hex.EncodeToString(tk.ID[:]),
		"key hex":       hex.EncodeToString(tk.Key[:]),
		"id HEX":        strings.ToUpper(hex.EncodeToString(tk.ID[:])),
		"id base64url":  base64.RawURLEncoding.EncodeToString(tk.ID[:]),
		"id base64":     base64.StdEncoding.EncodeToString(tk.ID[:]),
		"key base64url": base64.RawURLEncoding.EncodeToString(tk.Key[:]),
		"id bytes":      strings.Trim(fmt.Sprint([32]byte(tk.ID)), "[]"),
		"key bytes":     strings.Trim(fmt.Sprint(tk.Key), "[]"),
	}
	type holder struct {
		T  Ticket
		PT *Ticket
		I  ID
	}
	var outputs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%o", "%b"} {
		for _, v := range []any{tk, &tk, tk.ID, &tk.ID, holder{tk, &tk, tk.ID}, []Ticket{tk}} {
			outputs = append(outputs, fmt.Sprintf(verb, v))
		}
	}
	outputs = append(outputs, tk.String(), tk.ID.String(), fmt.Sprint(tk), fmt.Sprintln(tk.ID))

	var logs bytes.Buffer
	for _, h := range []slog.Handler{slog.NewJSONHandler(&logs, nil), slog.NewTextHandler(&logs, nil)} {
		l := slog.New(h)
		l.Info("session", "ticket", tk, "id", tk.ID, "ptr", &tk)
		l.Info("session", slog.Any("ticket", tk), slog.Group("g", "id", tk.ID))
	}
	outputs = append(outputs, logs.String())

	for _, out := range outputs {
		for what, leak := range leaks {
			if strings.Contains(out, leak) {
				t.Errorf("output %q shows the %s", out, what)
			}
		}
	}
	if !strings.Contains(logs.String(), tk.SID()) {
		t.Errorf("logs = %s; want them to name the SID so a session can be followed", logs.String())
	}
}

func TestExpired(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name      string
		expiresIn time.Duration // ExpiresAt - now
		seenAgo   time.Duration // now - LastSeen
		idle      time.Duration
		want      bool
	}{
		{"live", time.Hour, time.Minute, 30 * time.Minute, false},
		{"at ExpiresAt", 0, 0, 0, true},
		{"past ExpiresAt", -time.Second, 0, 0, true},
		{"just before ExpiresAt", time.Nanosecond, 0, 0, false},
		{"idle exceeded", time.Hour, 31 * time.Minute, 30 * time.Minute, true},
		{"idle exactly reached", time.Hour, 30 * time.Minute, 30 * time.Minute, false},
		{"no idle check", time.Hour, 100 * time.Hour, 0, false},
		{"negative idle is no idle check", time.Hour, 100 * time.Hour, -time.Second, false},
		{"idle check does not save an expired session", -time.Second, 0, time.Hour, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Session{ExpiresAt: now.Add(tt.expiresIn), LastSeen: now.Add(-tt.seenAgo)}
			if got := s.Expired(now, tt.idle); got != tt.want {
				t.Errorf("Expired = %v; want %v", got, tt.want)
			}
		})
	}
	if !(&Session{}).Expired(now, 0) {
		t.Error("a session without ExpiresAt is not expired; want expired")
	}
}

func TestClone(t *testing.T) {
	if (*Session)(nil).Clone() != nil {
		t.Error("nil.Clone() != nil")
	}
	orig := fullSession(time.Now())
	orig.Claims["strs"] = []string{"a"}
	c := orig.Clone()
	if d := diffSessions(c, orig); d != "" {
		t.Fatalf("Clone differs:\n%s", d)
	}
	c.Groups[0] = "x"
	c.Claims["tenant"] = "x"
	c.Claims["roles"].([]any)[0] = "x"
	c.Claims["nested"].(map[string]any)["k"].([]any)[1] = "x"
	c.Claims["strs"].([]string)[0] = "x"
	checks := []struct {
		what      string
		got, want any
	}{
		{"Groups[0]", orig.Groups[0], "admins"},
		{"Claims[tenant]", orig.Claims["tenant"], "acme"},
		{"Claims[roles][0]", orig.Claims["roles"].([]any)[0], "reader"},
		{"Claims[nested][k][1]", orig.Claims["nested"].(map[string]any)["k"].([]any)[1], "x-original"},
		{"Claims[strs][0]", orig.Claims["strs"].([]string)[0], "a"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("original %s after changing the clone = %v; want %v", c.what, c.got, c.want)
		}
	}
}
