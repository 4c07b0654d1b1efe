package testhydra

import (
	"net/http"
	"net/http/cookiejar"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// TestVersionMatchesToolModule: the binary the tests look for is the one
// scripts/build-hydra.sh builds from tools/hydra.
func TestVersionMatchesToolModule(t *testing.T) {
	b, err := os.ReadFile("../../tools/hydra/go.mod")
	if err != nil {
		t.Fatal(err)
	}
	want := "github.com/ory/hydra/v2 " + Version
	if !strings.Contains(string(b), want) {
		t.Errorf("tools/hydra/go.mod does not require %s", want)
	}
}

// TestLoginThroughHydra: a public client signs a user in through Hydra and
// the login-and-consent app with PKCE, and the proxy in front of Hydra saw
// the exchange.
func TestLoginThroughHydra(t *testing.T) {
	h := Start(t, Options{Users: []User{{Username: "alice", Password: "alice-pw", Email: "alice@example.com", EmailVerified: true, Groups: []string{"admins"}}}})
	const redirect = "http://127.0.0.1/callback"
	h.CreateClient(Client{ID: "native", RedirectURIs: []string{redirect}})

	cfg := oauth2.Config{
		ClientID: "native", RedirectURL: redirect, Scopes: []string{"openid", "email", "profile"},
		Endpoint: oauth2.Endpoint{AuthURL: h.Issuer + "/oauth2/auth", TokenURL: h.Issuer + "/oauth2/token", AuthStyle: oauth2.AuthStyleInParams},
	}
	verifier := oauth2.GenerateVerifier()
	jar, _ := cookiejar.New(nil)
	var code string
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		if strings.HasPrefix(req.URL.String(), redirect) {
			code = req.URL.Query().Get("code")
			return http.ErrUseLastResponse
		}
		return nil
	}}
	h.Login(c, cfg.AuthCodeURL("state-0123456789", oauth2.S256ChallengeOption(verifier)), "alice", "alice-pw")
	if code == "" {
		t.Fatal("no code reached the redirect URI")
	}
	tok, err := cfg.Exchange(t.Context(), code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchanging the code: %v", err)
	}
	if _, ok := tok.Extra("id_token").(string); !ok {
		t.Error("no ID token")
	}
	if got := h.Introspect(tok.AccessToken); got["active"] != true || got["sub"] != "alice" {
		t.Errorf("introspection = %v; want active for alice", got)
	}
	if got := h.Introspect("not-a-token"); got["active"] != false {
		t.Errorf("introspection of garbage = %v; want inactive", got)
	}
	if len(h.SessionIDs("alice")) != 1 {
		t.Errorf("login sessions %v; want one", h.SessionIDs("alice"))
	}
	auths, ex := h.AuthRequests(), h.TokenExchanges()
	if len(auths) == 0 || auths[0].Get("code_challenge_method") != "S256" {
		t.Errorf("authorization requests %v; want one with S256", auths)
	}
	if len(ex) != 1 || ex[0].Form.Get("grant_type") != "authorization_code" || ex[0].Status != 200 {
		t.Errorf("token exchanges %+v; want one successful code exchange", ex)
	}
	// Wrong password: the form again, no code. (prompt=login: Hydra
	// remembers the first login and would skip the form.)
	code = ""
	resp, _ := h.Login(c, cfg.AuthCodeURL("state-0123456789", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("prompt", "login")), "alice", "wrong")
	if resp.StatusCode != http.StatusUnauthorized || code != "" {
		t.Errorf("wrong password: %d, code %q; want 401 and no code", resp.StatusCode, code)
	}
}
