package proxy

import (
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse/gatehouse/sessionstore"
)

// TestBackchannelLogoutAudited: a back-channel logout is counted in
// gatehouse_sessions_revoked_total{source="backchannel_logout"} and is an
// audit line (who, what, how many), like every other revocation.
func TestBackchannelLogoutAudited(t *testing.T) {
	p := newLogoutIDP(t)
	store := sessionstore.NewMemory(sessionstore.MemoryConfig{})
	t.Cleanup(func() { store.Close() })
	srv := newLogoutServer(t, store, p.client(t))
	reg := prometheus.NewRegistry()
	srv.cfg.Metrics = NewMetrics(reg)
	var audit strings.Builder
	srv.log = slog.New(slog.NewTextHandler(&audit, nil))

	plantSession(t, store, "u1", "sid-a")
	plantSession(t, store, "u1", "sid-b")
	if rec := postLogout(srv, p.sign(t, "logout+jwt", p.claims("u1", ""))); rec.Code != http.StatusOK {
		t.Fatalf("status = %d (%s); want 200", rec.Code, rec.Body)
	}
	if n := counterValue(t, reg, "gatehouse_sessions_revoked_total", "backchannel_logout"); n != 2 {
		t.Errorf("gatehouse_sessions_revoked_total{source=backchannel_logout} = %v; want 2", n)
	}
	line := audit.String()
	for _, want := range []string{"audit: sessions revoked", "by=identity_provider", "what=backchannel_logout", "user=u1", "sessions=2"} {
		if !strings.Contains(line, want) {
			t.Errorf("audit line lacks %q: %s", want, line)
		}
	}
}
