package e2e

import (
	"net/http"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/e2etest"
)

// refreshes reads gatehouse_session_refreshes_total{outcome} from /metrics.
func refreshes(t *testing.T, e *e2etest.Env, outcome string) int {
	t.Helper()
	resp, err := http.Get(e.MetricsURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body := e2etest.ReadBody(t, resp)
	m := regexp.MustCompile(`gatehouse_session_refreshes_total\{outcome="` + outcome + `"\} (\d+)`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no refresh metric for %s", outcome)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// waitFor polls cond until it holds; the bound only stops a broken test.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRefreshOnceUnderConcurrency: when the provider's tokens near expiry,
// a burst of requests refreshes the session exactly once. devidp rotates
// refresh tokens and revokes the whole grant when one is used twice, so a
// double refresh would end the session: it must survive.
func TestRefreshOnceUnderConcurrency(t *testing.T) {
	// 61s lifetime and a 1m margin: due one second after login.
	e := e2etest.Start(t, e2etest.Options{Store: "redis", AccessTokenLifetime: 61 * time.Second})
	c := e.Browser()
	e.Login(c, "/", "alice", "alice-pw")
	ck := e.SessionCookie(c, "gatehouse")
	get := func() int { return e.APIStatus("/x", ck) }
	time.Sleep(1500 * time.Millisecond) // let the token become due
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if code := get(); code != 200 {
				t.Errorf("request during refresh got %d", code)
			}
		})
	}
	wg.Wait()
	waitFor(t, "the refresh", func() bool { return refreshes(t, e, "success") >= 1 })
	if n := refreshes(t, e, "success"); n != 1 {
		t.Errorf("%d refreshes; want exactly 1", n)
	}
	if n := refreshes(t, e, "revoked") + refreshes(t, e, "error"); n != 0 {
		t.Errorf("%d failed refreshes", n)
	}
	if code := get(); code != 200 {
		t.Errorf("after the refresh the session got %d; want 200", code)
	}
}

// TestRefreshEndsRevokedSession: when the provider revokes the user's grant,
// the next refresh ends the Gatehouse session too.
func TestRefreshEndsRevokedSession(t *testing.T) {
	// 64s lifetime and a 1m margin: due four seconds after login, so the
	// login itself does not refresh.
	e := e2etest.Start(t, e2etest.Options{AccessTokenLifetime: 64 * time.Second})
	c := e.Browser()
	e.Login(c, "/", "alice", "alice-pw")
	e.IDP.RevokeAll()
	time.Sleep(4500 * time.Millisecond) // let the token become due
	status := func() int { return e.APIStatus("/x", e.SessionCookie(c, "gatehouse")) }
	status() // starts the refresh; answered with the session as it is
	waitFor(t, "the session to end", func() bool { return status() == http.StatusUnauthorized })
	if n := refreshes(t, e, "revoked"); n != 1 || refreshes(t, e, "success") != 0 {
		t.Errorf("refreshes: revoked %d, success %d; want 1 and 0", n, refreshes(t, e, "success"))
	}
}
