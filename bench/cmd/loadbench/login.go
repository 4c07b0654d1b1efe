package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// authRequestID finds the hidden field of devidp's login form.
var authRequestID = regexp.MustCompile(`name="auth_request_id" value="([^"]+)"`)

// browserTransport sends Accept: text/html like a browser navigation, so
// both proxies answer a missing session with a redirect to the login.
type browserTransport struct{ rt http.RoundTripper }

func (b browserTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Header.Get("Accept") == "" {
		r = r.Clone(r.Context())
		r.Header.Set("Accept", "text/html,application/xhtml+xml")
	}
	return b.rt.RoundTrip(r)
}

func readBody(resp *http.Response) (string, error) {
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", fmt.Errorf("loadbench: reading %s: %w", resp.Request.URL.Redacted(), err)
	}
	return string(b), nil
}

// login signs in at a proxy through its /oauth2/start flow, posting the
// provider's login form like a person would, and returns the proxy's session
// cookie value. Every login gets its own cookie jar: jars do not separate
// ports, and the proxies share 127.0.0.1.
func login(ctx context.Context, px *proxy, idp, user, password string) (string, error) {
	jar, err := cookiejar.New(nil)
	if err != nil {
		return "", fmt.Errorf("loadbench: cookie jar: %w", err)
	}
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second, Transport: browserTransport{http.DefaultTransport}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, px.url+"/oauth2/start?rd=%2F", nil)
	if err != nil {
		return "", fmt.Errorf("loadbench: %w", err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", fmt.Errorf("loadbench: %s: starting the login: %w", px.name, err)
	}
	body, err := readBody(resp)
	if err != nil {
		return "", err
	}
	m := authRequestID.FindStringSubmatch(body)
	if !strings.HasPrefix(resp.Request.URL.String(), idp) || m == nil {
		return "", fmt.Errorf("loadbench: %s: /oauth2/start ended at %s (%d), not at the provider's login form",
			px.name, resp.Request.URL.Redacted(), resp.StatusCode)
	}
	form := url.Values{"auth_request_id": {m[1]}, "username": {user}, "password": {password}}
	req, err = http.NewRequestWithContext(ctx, http.MethodPost, idp+"/login", strings.NewReader(form.Encode()))
	if err != nil {
		return "", fmt.Errorf("loadbench: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err = c.Do(req)
	if err != nil {
		return "", fmt.Errorf("loadbench: %s: posting the login form: %w", px.name, err)
	}
	if _, err := readBody(resp); err != nil {
		return "", err
	}
	// The flow ends at the proxy's "/" served by the upstream.
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Request.URL.String(), px.url) {
		return "", fmt.Errorf("loadbench: %s: login ended at %s with %d; want 200 from the upstream",
			px.name, resp.Request.URL.Redacted(), resp.StatusCode)
	}
	u, _ := url.Parse(px.url)
	for _, ck := range jar.Cookies(u) {
		if ck.Name == px.cookie {
			return ck.Value, nil
		}
	}
	return "", fmt.Errorf("loadbench: %s: no %s cookie after the login", px.name, px.cookie)
}

// nativeRedirect is the loopback redirect URI of the native client; the code
// is caught before anything is sent to it (RFC 8252 loopback redirect).
const nativeRedirect = "http://127.0.0.1/callback"

// nativeLogin obtains tokens as a native app does: authorization code with
// PKCE S256 as a public client, the user typing their credentials into the
// provider's form.
func nativeLogin(ctx context.Context, idp, clientID, user, password string) (*oauth2.Token, error) {
	cfg := oauth2.Config{
		ClientID:    clientID,
		RedirectURL: nativeRedirect,
		Scopes:      []string{"openid", "email", "profile", "offline_access"},
		Endpoint: oauth2.Endpoint{
			AuthURL: idp + "/authorize", TokenURL: idp + "/oauth/token", AuthStyle: oauth2.AuthStyleInParams,
		},
	}
	verifier := oauth2.GenerateVerifier()
	jar, err := cookiejar.New(nil)
	if err != nil {
		return nil, fmt.Errorf("loadbench: cookie jar: %w", err)
	}
	var code string
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		if strings.HasPrefix(req.URL.String(), nativeRedirect) {
			code = req.URL.Query().Get("code")
			return http.ErrUseLastResponse
		}
		return nil
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, cfg.AuthCodeURL(randomSecret(16), oauth2.S256ChallengeOption(verifier)), nil)
	if err != nil {
		return nil, fmt.Errorf("loadbench: %w", err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("loadbench: native login: %w", err)
	}
	body, err := readBody(resp)
	if err != nil {
		return nil, err
	}
	m := authRequestID.FindStringSubmatch(body)
	if m == nil {
		return nil, fmt.Errorf("loadbench: native login: no login form at %s", resp.Request.URL.Redacted())
	}
	resp, err = c.PostForm(idp+"/login", url.Values{"auth_request_id": {m[1]}, "username": {user}, "password": {password}})
	if err != nil {
		return nil, fmt.Errorf("loadbench: native login: posting the form: %w", err)
	}
	if _, err := readBody(resp); err != nil {
		return nil, err
	}
	if code == "" {
		return nil, fmt.Errorf("loadbench: native login: no code reached %s", nativeRedirect)
	}
	xctx := context.WithValue(ctx, oauth2.HTTPClient, &http.Client{Timeout: 10 * time.Second})
	tok, err := cfg.Exchange(xctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		return nil, fmt.Errorf("loadbench: native login: exchanging the code: %w", err)
	}
	return tok, nil
}
