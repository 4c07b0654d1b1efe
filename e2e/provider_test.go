package e2e

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/devidp"
	"github.com/gatehouse/gatehouse/internal/e2etest"
)

// TestProviderDownExistingSessionsWork: once signed in, a browser keeps
// working while the identity provider is unreachable; only new logins fail,
// with a clear 503 rather than a crash.
func TestProviderDownExistingSessionsWork(t *testing.T) {
	e := e2etest.Start(t, e2etest.Options{})
	c := e.Browser()
	e.Login(c, "/", "alice", "alice-pw")
	e.IDP.Close()
	resp, err := c.Get(e.URL + "/still-works")
	if err != nil {
		t.Fatal(err)
	}
	if body := e2etest.ReadBody(t, resp); resp.StatusCode != 200 || body != "upstream GET /still-works" {
		t.Errorf("with the provider down, an existing session got %d %q", resp.StatusCode, body)
	}
	// A new login still starts: Gatehouse knows the provider from discovery
	// and sends the browser there (where it cannot sign in), or says 503.
	// It never crashes, answers 200 or lets the browser in.
	req, _ := http.NewRequest("GET", e.URL+"/oauth2/start?rd=/", nil)
	req.Header.Set("Accept", "text/html")
	resp = e.Do(req)
	e2etest.ReadBody(t, resp)
	loc := resp.Header.Get("Location")
	switch {
	case resp.StatusCode == http.StatusFound && strings.HasPrefix(loc, e.IDP.URL+"/"):
	case resp.StatusCode == http.StatusServiceUnavailable:
	default:
		t.Errorf("login start with the provider down got %d (Location %q); want a 302 to the provider or a 503", resp.StatusCode, loc)
	}
	assertNoSession(t, e, e.Browser())
}

// TestProviderLateDiscovery: Gatehouse starts while the provider is not up
// yet. It serves, /readyz says the provider is the reason, logins get a 503;
// when the provider appears, discovery succeeds without a restart.
func TestProviderLateDiscovery(t *testing.T) {
	// The provider's address resets every connection until it is up.
	pl := e2etest.NewDownListener(t)
	issuer := pl.URL()

	up := e2etest.NewUpstream(t)
	ln := e2etest.Listen(t)
	gatehouseURL := "http://" + ln.Addr().String()
	p, err := devidp.New(devidp.Config{Issuer: issuer, Users: e2etest.Users, Clients: []devidp.Client{{
		ID: e2etest.ClientID, Secret: e2etest.ClientSecret, RedirectURIs: []string{gatehouseURL + "/oauth2/callback"}}}})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: p, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(pl)
	defer srv.Close()

	vars := map[string]string{
		"GATEHOUSE_PUBLIC_URL": gatehouseURL, "GATEHOUSE_METRICS_LISTEN": "127.0.0.1:0",
		"GATEHOUSE_OIDC_ISSUER": issuer, "GATEHOUSE_OIDC_CLIENT_ID": e2etest.ClientID, "GATEHOUSE_OIDC_CLIENT_SECRET": e2etest.ClientSecret,
		"GATEHOUSE_COOKIE_SECRETS": e2etest.CookieSecret, "GATEHOUSE_COOKIE_SECURE": "false", "GATEHOUSE_UPSTREAM": up.URL,
		"GATEHOUSE_SERVER_SHUTDOWN_TIMEOUT": "2s",
	}
	a := e2etest.NewApp(t, vars, nil, ln)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() { cancel(); <-done }()

	metrics := "http://" + a.MetricsAddr()
	resp, err := http.Get(metrics + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || !strings.Contains(string(body), "identity_provider") {
		t.Errorf("/readyz before discovery = %d %s; want 503 naming the identity provider", resp.StatusCode, body)
	}
	resp, err = http.Get(gatehouseURL + "/oauth2/start")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("login before discovery got %d; want 503", resp.StatusCode)
	}

	// The provider comes up on the configured address.
	pl.Up()
	e2etest.WaitReady(t, metrics)
	// And a browser now reaches its login form through Gatehouse.
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	req, _ := http.NewRequest("GET", gatehouseURL+"/after-discovery", nil)
	req.Header.Set("Accept", "text/html")
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body = []byte(e2etest.ReadBody(t, resp))
	if !strings.HasPrefix(resp.Request.URL.String(), issuer+"/") || !e2etest.AuthRequestID.Match(body) {
		t.Errorf("a login after discovery ended at %s (%d); want the provider's login form", resp.Request.URL, resp.StatusCode)
	}
}

// TestProviderLogout: with oidc.provider_logout, sign-out also visits the
// provider's end_session endpoint and comes back to the validated rd.
func TestProviderLogout(t *testing.T) {
	e := e2etest.Start(t, e2etest.Options{Env: map[string]string{"GATEHOUSE_OIDC_PROVIDER_LOGOUT": "true"}})
	c := e.Browser()
	e.Login(c, "/", "alice", "alice-pw")
	var visited []string
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		visited = append(visited, req.URL.String())
		return nil
	}
	resp, err := c.Get(e.URL + "/oauth2/sign_out?rd=/")
	if err != nil {
		t.Fatal(err)
	}
	e2etest.ReadBody(t, resp)
	sawEndSession := false
	for _, v := range visited {
		if strings.HasPrefix(v, e.IDP.URL) && strings.Contains(v, "id_token_hint=") && strings.Contains(v, "post_logout_redirect_uri=") {
			sawEndSession = true
		}
	}
	if !sawEndSession {
		t.Errorf("sign-out never visited the provider's end_session endpoint: %v", visited)
	}
	// Back at "/" without a session: the login form again.
	if !strings.HasPrefix(resp.Request.URL.String(), e.IDP.URL) || !strings.Contains(resp.Request.URL.Path, "login") {
		t.Errorf("after provider logout landed at %s; want the provider's login form", resp.Request.URL)
	}
}
