package e2e

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/internal/e2etest"
)

// TestBackchannelLogout: signing out at the provider ends the Gatehouse
// session through OpenID Connect Back-Channel Logout (devidp POSTs a signed
// logout token), in each store; forged tokens change nothing.
func TestBackchannelLogout(t *testing.T) {
	for _, store := range []string{"memory", "redis"} {
		t.Run(store, func(t *testing.T) {
			e := e2etest.Start(t, e2etest.Options{Store: store})
			alice, bob := e.Browser(), e.Browser()
			e.Login(alice, "/", "alice", "alice-pw")
			e.Login(bob, "/", "bob", "bob-pw")
			aliceCk, bobCk := e.SessionCookie(alice, "gatehouse"), e.SessionCookie(bob, "gatehouse")

			post := func(token string) int {
				resp, err := http.PostForm(e.URL+"/oauth2/backchannel_logout", url.Values{"logout_token": {token}})
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				return resp.StatusCode
			}
			// Forged: a logout token for another client, garbage, an ID token.
			other, _ := e.IDP.LogoutToken(e2etest.NativeClientID, "u-alice", "")
			for name, tok := range map[string]string{"other audience": other, "garbage": "a.b.c", "empty": ""} {
				if code := post(tok); code != http.StatusBadRequest {
					t.Errorf("%s: got %d; want 400", name, code)
				}
			}
			if code := e.APIStatus("/x", aliceCk); code != 200 {
				t.Fatalf("alice after forged logout tokens got %d; want 200", code)
			}

			if err := e.IDP.SignOutUser(context.Background(), "alice"); err != nil {
				t.Fatalf("provider sign-out (delivers the logout token): %v", err)
			}
			if code := e.APIStatus("/x", aliceCk); code != http.StatusUnauthorized {
				t.Errorf("alice after back-channel logout got %d; want 401", code)
			}
			if code := e.APIStatus("/x", bobCk); code != 200 {
				t.Errorf("bob after alice's logout got %d; want 200", code)
			}
			// A direct logout token by subject only (no sid) ends every session.
			tok, err := e.IDP.LogoutToken(e2etest.ClientID, "u-bob", "")
			if err != nil {
				t.Fatal(err)
			}
			if code := post(tok); code != 200 {
				t.Fatalf("valid logout token got %d", code)
			}
			if code := e.APIStatus("/x", bobCk); code != http.StatusUnauthorized {
				t.Errorf("bob after a subject logout token got %d; want 401", code)
			}
			resp, _ := http.Get(e.URL + "/oauth2/backchannel_logout")
			if resp.Body.Close(); resp.StatusCode != http.StatusMethodNotAllowed || !strings.Contains(resp.Header.Get("Allow"), "POST") {
				t.Errorf("GET got %d", resp.StatusCode)
			}
		})
	}
}
