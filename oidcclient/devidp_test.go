package oidcclient

import (
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/devidp"
)

const (
	idpClientID     = "web-app"
	idpClientSecret = "web-app-secret-0123456789"
	idpRedirect     = "http://127.0.0.1:9/oauth2/callback" // never dialled: the test catches the redirect
)

var authRequestID = regexp.MustCompile(`name="auth_request_id" value="([^"]+)"`)

// startDevIDP runs the development provider (a real zitadel/oidc op
// provider) on 127.0.0.1 with one confidential client.
func startDevIDP(t *testing.T) *devidp.Server {
	t.Helper()
	s, err := devidp.Start(devidp.Config{
		Users:   devidp.DemoUsers(),
		Clients: []devidp.Client{{ID: idpClientID, Secret: idpClientSecret, RedirectURIs: []string{idpRedirect}}},
	})
	if err != nil {
		t.Fatalf("devidp: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// login signs alice in at the provider through c's authorization URL and
// exchanges the code through c, as Gatehouse's login flow does.
func login(t *testing.T, s *devidp.Server, c *Client) *Result {
	t.Helper()
	state, nonce, verifier := "state-1", "nonce-"+t.Name(), "verifier-0123456789012345678901234567890123456789"
	authURL, err := c.AuthCodeURL(state, nonce, verifier)
	if err != nil {
		t.Fatal(err)
	}
	jar, _ := cookiejar.New(nil)
	var back *url.URL
	browser := &http.Client{Jar: jar, Timeout: 10 * time.Second, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		if strings.HasPrefix(req.URL.String(), idpRedirect) {
			back = req.URL
			return http.ErrUseLastResponse
		}
		return nil
	}}
	resp, err := browser.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(t, resp)
	m := authRequestID.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no login form at %s", resp.Request.URL)
	}
	resp, err = browser.PostForm(s.URL+"/login", url.Values{"auth_request_id": {m[1]}, "username": {"alice"}, "password": {"alice"}})
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	if back == nil || back.Query().Get("code") == "" {
		t.Fatalf("the provider sent no code back (%v)", back)
	}
	res, err := c.Exchange(t.Context(), back.Query().Get("code"), verifier, nonce)
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	return res
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestDevIDPTokens runs the real provider's tokens through the Client: a
// login and a refresh (ID tokens verified with the keys discovery loaded),
// the access token accepted as a bearer token, the ID tokens of the login
// and of the refresh (which has no nonce) refused unless the opt-in lists
// the client, and the provider's back-channel logout token verified.
func TestDevIDPTokens(t *testing.T) {
	s := startDevIDP(t)
	newC := func(change func(*Config)) *Client {
		cfg := Config{
			Issuer: s.URL, ClientID: idpClientID, ClientSecret: idpClientSecret, RedirectURL: idpRedirect,
			Scopes: []string{"openid", "email", "profile", "offline_access"}, AcceptedAudiences: []string{idpClientID},
		}
		if change != nil {
			change(&cfg)
		}
		c := New(cfg)
		if err := c.Discover(t.Context()); err != nil {
			t.Fatalf("Discover: %v", err)
		}
		return c
	}
	c := newC(nil)
	res := login(t, s, c)
	if res.Identity.Email != "alice@example.com" || res.Identity.ProviderSID == "" {
		t.Fatalf("login identity = %+v", res.Identity)
	}
	refreshed, err := c.Refresh(t.Context(), res.RefreshToken, res.Identity)
	if err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	if refreshed.IDToken == "" || refreshed.IDToken == res.IDToken {
		t.Fatal("the refresh returned no new ID token")
	}

	b, err := c.VerifyAccessToken(t.Context(), res.AccessToken)
	if err != nil {
		t.Fatalf("the provider's access token: %v", err)
	}
	if b.Identity.Subject != res.Identity.Subject || b.ClientID != idpClientID || b.IDToken {
		t.Errorf("Bearer = %+v", b)
	}
	if _, err := c.VerifyAccessToken(t.Context(), refreshed.AccessToken); err != nil {
		t.Errorf("the refreshed access token: %v", err)
	}
	for name, raw := range map[string]string{"login ID token": res.IDToken, "refreshed ID token": refreshed.IDToken} {
		if _, err := c.VerifyAccessToken(t.Context(), raw); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("%s as a bearer token = %v; want ErrInvalidToken", name, err)
		}
	}
	optIn := newC(func(cfg *Config) { cfg.AcceptedAudiences = nil; cfg.AcceptIDTokens = []string{idpClientID} })
	for name, raw := range map[string]string{"login ID token": res.IDToken, "refreshed ID token": refreshed.IDToken} {
		if b, err := optIn.VerifyAccessToken(t.Context(), raw); err != nil || !b.IDToken {
			t.Errorf("%s with api.accept_id_tokens = %+v, %v; want accepted", name, b, err)
		}
	}

	lt, err := s.LogoutToken(idpClientID, res.Identity.Subject, res.Identity.ProviderSID)
	if err != nil {
		t.Fatal(err)
	}
	l, err := c.VerifyLogout(t.Context(), lt)
	if err != nil {
		t.Fatalf("VerifyLogout of the provider's token: %v", err)
	}
	if l.Subject != res.Identity.Subject || l.SessionID != res.Identity.ProviderSID || l.JTI == "" || !l.Until.After(time.Now()) {
		t.Errorf("Logout = %+v", l)
	}
	if _, err := c.VerifyAccessToken(t.Context(), lt); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("logout token as a bearer token = %v; want ErrInvalidToken", err)
	}
	if _, err := c.VerifyLogout(t.Context(), res.IDToken); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("ID token as a logout token = %v; want ErrInvalidToken", err)
	}
	if _, err := c.VerifyLogout(t.Context(), res.AccessToken); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("access token as a logout token = %v; want ErrInvalidToken", err)
	}
}
