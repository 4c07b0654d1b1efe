package e2e

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/devidp"
	"github.com/gatehouse/gatehouse/internal/e2etest"
	"github.com/gatehouse/gatehouse/internal/testhydra"
)

// policyProvider is a provider the email-policy journeys sign in through.
type policyProvider struct {
	name string
	// start runs the provider and a Gatehouse configured by vars for it,
	// with users alice and bob (verified emails) and carol (email not
	// verified), passwords as the name; it returns Gatehouse and carol's sub.
	start func(t *testing.T, vars map[string]string) (e *hydraEnv, login func(c *http.Client, user string) (*http.Response, string), carol string)
}

var policyProviders = []policyProvider{
	{"devidp", startDevIDPGatehouse},
	{"hydra", startHydraGatehouse},
}

// startDevIDPGatehouse runs the development provider with its demo users
// (carol's email is not verified) and a Gatehouse for it.
func startDevIDPGatehouse(t *testing.T, vars map[string]string) (*hydraEnv, func(*http.Client, string) (*http.Response, string), string) {
	t.Helper()
	ln := e2etest.Listen(t)
	gatehouse := "http://" + ln.Addr().String()
	users := devidp.DemoUsers()
	idp, err := devidp.Start(devidp.Config{
		Users: users,
		Clients: []devidp.Client{{
			ID: hydraClientID, Secret: hydraClientSecret, RedirectURIs: []string{gatehouse + "/oauth2/callback"},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idp.Close() })
	e := startGatehouseAt(t, idp.URL, ln, vars)
	login := func(c *http.Client, user string) (*http.Response, string) {
		t.Helper()
		resp, err := c.Get(e.URL + "/")
		if err != nil {
			t.Fatal(err)
		}
		m := e2etest.AuthRequestID.FindStringSubmatch(e2etest.ReadBody(t, resp))
		if m == nil {
			t.Fatalf("no devidp login form at %s", resp.Request.URL)
		}
		resp, err = c.PostForm(idp.URL+"/login", url.Values{"auth_request_id": {m[1]}, "username": {user}, "password": {user}})
		if err != nil {
			t.Fatal(err)
		}
		return resp, e2etest.ReadBody(t, resp)
	}
	var carol string
	for _, u := range users {
		if u.Username == "carol" {
			if u.EmailVerified {
				t.Fatal("devidp's carol has a verified email; this test needs one that is not")
			}
			carol = u.ID
		}
	}
	return e, login, carol
}

// startHydraGatehouse is the same journey through Ory Hydra.
func startHydraGatehouse(t *testing.T, vars map[string]string) (*hydraEnv, func(*http.Client, string) (*http.Response, string), string) {
	t.Helper()
	users := []testhydra.User{
		{Subject: "u-alice", Username: "alice", Password: "alice", Email: "alice@example.com", EmailVerified: true},
		{Subject: "u-bob", Username: "bob", Password: "bob", Email: "bob@example.com", EmailVerified: true},
		{Subject: "u-carol", Username: "carol", Password: "carol", Email: "carol@example.com", EmailVerified: false},
	}
	e := startHydra(t, testhydra.Options{Users: users}, vars)
	return e, func(c *http.Client, user string) (*http.Response, string) { return e.login(c, "/", user, user) }, "u-carol"
}

// TestEmailPolicyThroughProviders: a user whose provider has not verified
// their email is refused at login, the refusal naming the rule and the
// user; authorization.require_verified_email: false lets them in; and
// authorization.allowed_emails admits only the listed addresses, verified
// ones only, whatever require_verified_email says.
func TestEmailPolicyThroughProviders(t *testing.T) {
	for _, p := range policyProviders {
		t.Run(p.name, func(t *testing.T) {
			t.Run("require_verified_email", func(t *testing.T) {
				e, login, carol := p.start(t, nil)
				resp, _ := login(e.browser(), "carol")
				if resp.StatusCode != http.StatusForbidden || e.up.Count() != 0 {
					t.Fatalf("carol (email not verified) got %d, %d upstream requests; want 403 and none", resp.StatusCode, e.up.Count())
				}
				refusedFor(t, e, carol, "email_unverified")
				if resp, body := login(e.browser(), "alice"); resp.StatusCode != 200 || body != "upstream GET /" {
					t.Errorf("alice got %d %q", resp.StatusCode, body)
				}
			})
			t.Run("require_verified_email false", func(t *testing.T) {
				e, login, _ := p.start(t, map[string]string{"GATEHOUSE_AUTHORIZATION_REQUIRE_VERIFIED_EMAIL": "false"})
				resp, body := login(e.browser(), "carol")
				if resp.StatusCode != 200 || body != "upstream GET /" {
					t.Fatalf("carol with require_verified_email false got %d %q; want the upstream", resp.StatusCode, body)
				}
				if got := e.up.LastRequest().Header.Get("X-Auth-Request-Email"); got != "carol@example.com" {
					t.Errorf("email header %q", got)
				}
			})
			t.Run("allowed_emails", func(t *testing.T) {
				e, login, carol := p.start(t, map[string]string{
					"GATEHOUSE_AUTHORIZATION_REQUIRE_VERIFIED_EMAIL": "false",
					"GATEHOUSE_AUTHORIZATION_ALLOWED_EMAILS":         "ALICE@example.com,carol@example.com",
				})
				if resp, body := login(e.browser(), "alice"); resp.StatusCode != 200 || body != "upstream GET /" {
					t.Errorf("alice (listed, in another case) got %d %q", resp.StatusCode, body)
				}
				if resp, _ := login(e.browser(), "bob"); resp.StatusCode != http.StatusForbidden {
					t.Errorf("bob (not listed) got %d; want 403", resp.StatusCode)
				}
				refusedFor(t, e, "", "allowed_emails")
				// An unverified address never satisfies an email rule.
				if resp, _ := login(e.browser(), "carol"); resp.StatusCode != http.StatusForbidden {
					t.Errorf("carol (listed, not verified) got %d; want 403", resp.StatusCode)
				}
				refusedFor(t, e, carol, "email_unverified")
			})
		})
	}
}

// refusedFor checks that Gatehouse logged a login refusal naming rule (and
// user, if not empty) on one line.
func refusedFor(t *testing.T, e *hydraEnv, user, rule string) {
	t.Helper()
	for _, line := range strings.Split(e.logs.String(), "\n") {
		if strings.Contains(line, `"msg":"login: user not allowed by policy"`) && strings.Contains(line, `"rule":"`+rule+`"`) &&
			(user == "" || strings.Contains(line, `"user":"`+user+`"`)) {
			return
		}
	}
	t.Errorf("no log line refusing %q by rule %s", user, rule)
}
