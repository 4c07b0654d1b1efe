package proxy

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse/gatehouse/sessionstore"
)

// TestSignOutEverywhere: a same-origin POST ends every session of the user
// (and only theirs), is counted and audited; another site's POST changes
// nothing; a GET only shows the page with the button.
func TestSignOutEverywhere(t *testing.T) {
	f := newFixture(t, nil)
	reg := prometheus.NewRegistry()
	var audit strings.Builder
	f.srv.cfg.Metrics = NewMetrics(reg)
	f.srv.log = slog.New(slog.NewTextHandler(&audit, nil))
	laptop, phone := f.plant(t), f.plant(t) // the same user, u1
	other := f.plantUser(t, "u2")

	post := func(cookie, origin string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("POST", "https://app.example.com/oauth2/sign_out_everywhere", nil)
		req.Header.Set("Cookie", "gatehouse="+cookie)
		req.Header.Set("Origin", origin)
		req.Header.Set("Accept", "application/json")
		rec := httptest.NewRecorder()
		f.srv.ServeHTTP(rec, req)
		return rec
	}
	if rec := post(laptop, "https://evil.test"); rec.Code != http.StatusForbidden {
		t.Fatalf("cross-site POST: got %d; want 403", rec.Code)
	}
	if f.get(phone).Code != http.StatusOK || f.get(laptop).Code != http.StatusOK {
		t.Fatal("a refused request ended a session")
	}

	req := httptest.NewRequest("GET", "https://app.example.com/oauth2/sign_out_everywhere", nil)
	req.Header.Set("Cookie", "gatehouse="+laptop)
	rec := httptest.NewRecorder()
	f.srv.ServeHTTP(rec, req)
	body, _ := io.ReadAll(rec.Body)
	if rec.Code != http.StatusOK || !strings.Contains(string(body), `action="/oauth2/sign_out_everywhere"`) || f.get(laptop).Code != http.StatusOK {
		t.Fatalf("GET: got %d %q; want the page with the button, nothing ended", rec.Code, body)
	}

	rec = post(laptop, "https://app.example.com")
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"sessions":2`) {
		t.Fatalf("same-origin POST: got %d %s; want 200 with 2 sessions", rec.Code, rec.Body)
	}
	if f.get(laptop).Code != http.StatusUnauthorized || f.get(phone).Code != http.StatusUnauthorized {
		t.Error("a session of the user survived sign-out everywhere")
	}
	if f.get(other).Code != http.StatusOK {
		t.Error("another user's session ended")
	}
	if n := counterValue(t, reg, "gatehouse_sessions_revoked_total", "sign_out_everywhere"); n != 2 {
		t.Errorf("gatehouse_sessions_revoked_total{source=sign_out_everywhere} = %v; want 2", n)
	}
	if !strings.Contains(audit.String(), "audit: sessions revoked") || !strings.Contains(audit.String(), "sessions=2") {
		t.Errorf("no audit line: %s", audit.String())
	}
	if rec := post(laptop, "https://app.example.com"); rec.Code != http.StatusUnauthorized {
		t.Errorf("again, signed out: got %d; want 401", rec.Code)
	}
}

func (f *fixture) plantUser(t testing.TB, sub string) string {
	t.Helper()
	tk, _ := sessionstore.NewTicket()
	now := f.clock.Now()
	s := &sessionstore.Session{Subject: sub, CreatedAt: now, LastSeen: now, AuthTime: now, ExpiresAt: now.Add(time.Hour), Version: 1}
	if err := f.store.Save(context.Background(), tk, s); err != nil {
		t.Fatal(err)
	}
	v, err := f.codec.EncodeTicket("gatehouse", tk)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
