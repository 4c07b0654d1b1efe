package e2e

import (
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/e2etest"
)

// refreshes reads gatehouse_session_refreshes_total{outcome} from /metrics;
// a counter not yet created is 0.
func refreshes(t *testing.T, e *e2etest.Env, outcome string) int {
	t.Helper()
	resp, err := http.Get(e.MetricsURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body := e2etest.ReadBody(t, resp)
	m := regexp.MustCompile(`gatehouse_session_refreshes_total\{outcome="` + outcome + `"\} (\d+)`).FindStringSubmatch(body)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// dueLifetime is a provider token lifetime within Gatehouse's refresh
// margin (a minute): the session's tokens are due for refresh from the
// moment they are issued, so no test waits for them to become due.
const dueLifetime = time.Minute

// loginWithoutLanding signs in and stops at the callback's redirect, so no
// request has used the new session yet (the landing request would start a
// refresh of due tokens itself). It returns the session cookie.
func loginWithoutLanding(t *testing.T, e *e2etest.Env) *http.Cookie {
	t.Helper()
	c := e.Browser()
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if via[len(via)-1].URL.Path == "/oauth2/callback" {
			return http.ErrUseLastResponse
		}
		return nil
	}
	resp, _ := e.Login(c, "/", "alice", "alice-pw")
	if resp.StatusCode != http.StatusFound || resp.Request.URL.Path != "/oauth2/callback" {
		t.Fatalf("login ended with %d at %s; want the callback's redirect", resp.StatusCode, resp.Request.URL)
	}
	ck := e.SessionCookie(c, "gatehouse")
	if ck == nil {
		t.Fatal("no session cookie after the callback")
	}
	return ck
}

// TestRefreshOnceUnderConcurrency: when the provider's tokens near expiry,
// a burst of requests refreshes the session exactly once. devidp rotates
// refresh tokens and revokes the whole grant when one is used twice, so a
// double refresh would end the session: it must survive.
func TestRefreshOnceUnderConcurrency(t *testing.T) {
	e := e2etest.Start(t, e2etest.Options{Store: "redis", AccessTokenLifetime: dueLifetime})
	ck := loginWithoutLanding(t, e)
	if n := refreshes(t, e, "success"); n != 0 {
		t.Fatalf("%d refreshes before any request used the session; want 0", n)
	}
	get := func() int { return e.APIStatus("/x", ck) }
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if code := get(); code != 200 {
				t.Errorf("request during refresh got %d", code)
			}
		})
	}
	wg.Wait()
	e2etest.Eventually(t, "the refresh", func() error {
		if n := refreshes(t, e, "success"); n < 1 {
			return fmt.Errorf("%d successful refreshes", n)
		}
		return nil
	})
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
	e := e2etest.Start(t, e2etest.Options{AccessTokenLifetime: dueLifetime})
	ck := loginWithoutLanding(t, e)
	e.IDP.RevokeAll()
	if code := e.APIStatus("/x", ck); code != 200 {
		// The refresh runs in the background; this request is answered
		// with the session as it is.
		t.Fatalf("the request that starts the refresh got %d; want 200", code)
	}
	e2etest.Eventually(t, "the session to end", func() error {
		if code := e.APIStatus("/x", ck); code != http.StatusUnauthorized {
			return fmt.Errorf("got %d; want 401", code)
		}
		return nil
	})
	if n, ok := refreshes(t, e, "revoked"), refreshes(t, e, "success"); n != 1 || ok != 0 {
		t.Errorf("refreshes: revoked %d, success %d; want 1 and 0", n, ok)
	}
}
