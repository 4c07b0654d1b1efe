package e2e

import (
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/internal/e2etest"
)

// TestGroupsFromUserinfo: a provider that leaves groups out of the ID token
// (olga's, like Okta's org server) has them read from its userinfo endpoint
// at login: the upstream and the minted token see them.
func TestGroupsFromUserinfo(t *testing.T) {
	e := e2etest.Start(t, e2etest.Options{})
	c := e.Browser()
	if resp, body := e.Login(c, "/whoami", "olga", "olga-pw"); resp.StatusCode != 200 {
		t.Fatalf("login: %d %.200s", resp.StatusCode, body)
	}
	h := e.Up.LastRequest().Header
	if got := h.Get("X-Auth-Request-Groups"); got != "ops" {
		t.Errorf("X-Auth-Request-Groups = %q; want ops (from userinfo)", got)
	}
	if !strings.HasPrefix(h.Get("Authorization"), "Bearer ") {
		t.Error("no minted token")
	}
}
