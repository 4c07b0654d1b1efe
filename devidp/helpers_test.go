package devidp

import (
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// Test clients. The redirect URIs point at ports nothing listens on: the
// test browser stops at the redirect to them and reads code and state from
// the Location header.
const (
	webClientID     = "web"
	webClientSecret = "web-secret"
	webRedirectURI  = "http://127.0.0.1:1/oauth2/callback"
	webPostLogout   = "http://127.0.0.1:1/signed-out"

	nativeClientID    = "native"
	nativeRedirectURI = "http://127.0.0.1/callback" // loopback: any port matches
)

func testConfig() Config {
	return Config{
		Users: DemoUsers(),
		Clients: []Client{
			{ID: webClientID, Secret: webClientSecret, RedirectURIs: []string{webRedirectURI}, PostLogoutRedirectURIs: []string{webPostLogout}},
			{ID: nativeClientID, RedirectURIs: []string{nativeRedirectURI}},
		},
		Logger: slog.New(slog.DiscardHandler),
	}
}

// startIdP starts a provider for the test, after letting mutate adjust the
// configuration, and closes it when the test ends.
func startIdP(t testing.TB, mutate func(*Config)) *Server {
	t.Helper()
	cfg := testConfig()
	if mutate != nil {
		mutate(&cfg)
	}
	s, err := Start(cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// shared is one provider with testConfig for the tests that need no other
// configuration; generating an RSA key per test adds up. TestMain closes it.
var shared struct {
	once sync.Once
	s    *Server
	err  error
}

func sharedIdP(t testing.TB) *Server {
	t.Helper()
	shared.once.Do(func() { shared.s, shared.err = Start(testConfig()) })
	if shared.err != nil {
		t.Fatalf("Start: %v", shared.err)
	}
	return shared.s
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.s != nil {
		if err := shared.s.Close(); err != nil && code == 0 {
			fmt.Fprintln(os.Stderr, "closing the shared provider:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// clientCtx carries an HTTP client with a timeout to go-oidc and oauth2.
func clientCtx(t testing.TB) context.Context {
	return oidc.ClientContext(t.Context(), &http.Client{Timeout: 10 * time.Second})
}

// discover runs OIDC discovery against the server.
func discover(t testing.TB, s *Server) *oidc.Provider {
	t.Helper()
	p, err := oidc.NewProvider(clientCtx(t), s.Issuer())
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	return p
}

// newBrowser is a cookie-keeping client that follows redirects within the
// provider and stops at the first redirect that leaves it, as a browser
// would hand over to the relying party.
func newBrowser(t testing.TB, s *Server) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	idp, _ := url.Parse(s.URL)
	return &http.Client{
		Jar:     jar,
		Timeout: 10 * time.Second,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if req.URL.Host != idp.Host {
				return http.ErrUseLastResponse
			}
			if len(via) > 10 {
				return errors.New("too many redirects")
			}
			return nil
		},
	}
}

// page is a fetched HTML page.
type page struct {
	status int
	url    *url.URL // after redirects
	header http.Header
	body   string
}

func readPage(t testing.TB, resp *http.Response) page {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading %s: %v", resp.Request.URL, err)
	}
	return page{status: resp.StatusCode, url: resp.Request.URL, header: resp.Header, body: string(b)}
}

func get(t testing.TB, c *http.Client, u string) *http.Response {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	return resp
}

var (
	formRE   = regexp.MustCompile(`(?is)<form\b([^>]*)>`)
	inputRE  = regexp.MustCompile(`(?is)<input\b([^>]*)>`)
	attrRE   = regexp.MustCompile(`(?is)\b([a-z_-]+)="([^"]*)"`)
	errorRE  = regexp.MustCompile(`(?is)<p class="error"[^>]*>(.*?)</p>`)
	attrsOf  = func(s string) map[string]string { return attrMap(attrRE.FindAllStringSubmatch(s, -1)) }
	hintsRE  = regexp.MustCompile(`(?is)<p class="hint">`)
	userValE = regexp.MustCompile(`(?is)<input\b[^>]*name="username"[^>]*value="([^"]*)"`)
)

func attrMap(m [][]string) map[string]string {
	out := make(map[string]string, len(m))
	for _, kv := range m {
		out[strings.ToLower(kv[1])] = html.UnescapeString(kv[2])
	}
	return out
}

// loginForm is what a test client needs from the login page: where to post
// and the hidden fields to send back.
type loginForm struct {
	action *url.URL
	hidden url.Values
}

// parseLoginForm finds the form on a login page the way any end-to-end
// test can: the first <form method="post">, its action resolved against
// the page URL, and its hidden inputs.
func parseLoginForm(t testing.TB, p page) loginForm {
	t.Helper()
	fm := formRE.FindStringSubmatch(p.body)
	if fm == nil {
		t.Fatalf("no <form> on %s (status %d):\n%s", p.url, p.status, p.body)
	}
	fa := attrsOf(fm[1])
	if !strings.EqualFold(fa["method"], "post") {
		t.Fatalf("form method = %q; want post", fa["method"])
	}
	action, err := p.url.Parse(fa["action"])
	if err != nil {
		t.Fatalf("form action %q: %v", fa["action"], err)
	}
	hidden := url.Values{}
	for _, in := range inputRE.FindAllStringSubmatch(p.body, -1) {
		a := attrsOf(in[1])
		if strings.EqualFold(a["type"], "hidden") {
			hidden.Set(a["name"], a["value"])
		}
	}
	return loginForm{action: action, hidden: hidden}
}

// submit posts the form with the credentials.
func (f loginForm) submit(t testing.TB, c *http.Client, username, password string) *http.Response {
	t.Helper()
	v := url.Values{}
	for k, vs := range f.hidden {
		v[k] = vs
	}
	v.Set("username", username)
	v.Set("password", password)
	resp, err := c.PostForm(f.action.String(), v)
	if err != nil {
		t.Fatalf("POST %s: %v", f.action, err)
	}
	return resp
}

// openLogin follows authURL to the login page and checks it is one.
func openLogin(t testing.TB, c *http.Client, authURL string) page {
	t.Helper()
	p := readPage(t, get(t, c, authURL))
	if p.status != http.StatusOK || p.url.Path != "/login" {
		t.Fatalf("authorize landed on %s with status %d; want the login page with 200:\n%s", p.url, p.status, p.body)
	}
	return p
}

// rpRedirect returns where the provider sent the browser back to the
// client, failing the test if it did not.
func rpRedirect(t testing.TB, resp *http.Response) *url.URL {
	t.Helper()
	defer resp.Body.Close()
	loc, err := resp.Location()
	if err != nil || resp.StatusCode < 300 || resp.StatusCode > 399 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("got status %d at %s; want a redirect to the client:\n%s", resp.StatusCode, resp.Request.URL, b)
	}
	return loc
}

// login runs the browser part of the code flow and returns the redirect
// back to the client.
func login(t testing.TB, c *http.Client, authURL, username, password string) *url.URL {
	t.Helper()
	form := parseLoginForm(t, openLogin(t, c, authURL))
	return rpRedirect(t, form.submit(t, c, username, password))
}

// oauthConfig is the relying party's oauth2 configuration.
func oauthConfig(p *oidc.Provider, clientID, secret, redirect string, style oauth2.AuthStyle, scopes ...string) *oauth2.Config {
	ep := p.Endpoint()
	ep.AuthStyle = style
	return &oauth2.Config{ClientID: clientID, ClientSecret: secret, Endpoint: ep, RedirectURL: redirect, Scopes: scopes}
}

// codeFlow logs username in through cfg and exchanges the code, with PKCE
// S256 and a nonce, checking state on the way.
func codeFlow(t testing.TB, s *Server, cfg *oauth2.Config, username, password string) (*oauth2.Token, string) {
	t.Helper()
	verifier := oauth2.GenerateVerifier()
	state, nonce := oauth2.GenerateVerifier(), oauth2.GenerateVerifier()
	authURL := cfg.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce))
	back := login(t, newBrowser(t, s), authURL, username, password)
	q := back.Query()
	if q.Get("error") != "" {
		t.Fatalf("provider answered error=%q (%s)", q.Get("error"), q.Get("error_description"))
	}
	if got := q.Get("state"); got != state {
		t.Fatalf("state = %q; want %q", got, state)
	}
	tok, err := cfg.Exchange(clientCtx(t), q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("code exchange: %v", err)
	}
	return tok, nonce
}

// claimsOf returns the verified token's claims as a map.
func claimsOf(t testing.TB, tok *oidc.IDToken) map[string]any {
	t.Helper()
	var m map[string]any
	if err := tok.Claims(&m); err != nil {
		t.Fatalf("claims: %v", err)
	}
	return m
}

func retrieveErrorCode(err error) string {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		return re.ErrorCode
	}
	return ""
}
