// Package testhydra runs Ory Hydra, an OpenID Certified provider, for the
// end-to-end tests: the binary scripts/build-hydra.sh builds, serving on
// 127.0.0.1 with DSN=memory, and a small login-and-consent app that signs
// configured users in through Hydra's admin API, as a real deployment's
// login UI does.
//
// Hydra's public endpoints are reached through a recording reverse proxy
// that the test owns; its URL is the issuer. The proxy lets a test see what
// a relying party really sent (PKCE parameters, which refresh token) and
// what Hydra answered.
package testhydra

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/e2etest"
)

// Version is the Hydra release the tests run; tools/hydra/go.mod pins the
// same one (TestVersionMatchesToolModule).
const Version = "v2.3.0"

// Binary returns the path of the Hydra binary: $GATEHOUSE_HYDRA if set,
// else the one scripts/build-hydra.sh builds in the user's cache
// directory. A missing binary fails the test: it is a component the suite
// needs, never a reason to skip.
func Binary(t testing.TB) string {
	t.Helper()
	p := os.Getenv("GATEHOUSE_HYDRA")
	if p == "" {
		dir, err := os.UserCacheDir()
		if err != nil {
			t.Fatalf("Ory Hydra: no cache directory to find it in (%v); set GATEHOUSE_HYDRA to the binary", err)
		}
		p = filepath.Join(dir, "gatehouse", "hydra-"+Version, "hydra")
	}
	if fi, err := os.Stat(p); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		t.Fatalf("Ory Hydra %s is not built at %s: run ./scripts/build-hydra.sh (make test does), or set GATEHOUSE_HYDRA", Version, p)
	}
	return p
}

// User can sign in at the login app.
type User struct {
	// Subject is the sub claim. Empty means Username.
	Subject string
	// Username and Password are what the login form accepts.
	Username, Password string
	// Email and EmailVerified are ID-token claims with the email scope.
	Email         string
	EmailVerified bool
	// Name is the name claim with the profile scope.
	Name string
	// Groups is the groups claim with the profile scope; nil omits it.
	Groups []string
	// IDTokenClaims are further ID-token claims, with any scope (nested
	// roles, namespaced claims). Hydra's userinfo answers the same claims.
	IDTokenClaims map[string]any
	// AccessTokenClaims go into the access token's session: Hydra shows
	// them under "ext" in JWT access tokens and introspection answers.
	AccessTokenClaims map[string]any
}

func (u User) subject() string {
	if u.Subject != "" {
		return u.Subject
	}
	return u.Username
}

// Options configures Start.
type Options struct {
	// Users can sign in; at least one.
	Users []User
	// AccessTokenTTL and IDTokenTTL are Hydra's token lifetimes; zero
	// means Hydra's default (1h).
	AccessTokenTTL, IDTokenTTL time.Duration
}

// Hydra is a running Hydra with its login-and-consent app.
type Hydra struct {
	// Issuer is the issuer and public base URL: the recording proxy in
	// front of Hydra's public port.
	Issuer string
	// AdminURL is Hydra's admin API (clients, introspection, sessions).
	// Its introspection endpoint is AdminURL + "/admin/oauth2/introspect".
	AdminURL string
	// LoginURL is the login-and-consent app's base URL.
	LoginURL string

	t      testing.TB
	daemon *e2etest.Daemon
	admin  *http.Client
	users  map[string]User

	mu       sync.Mutex
	sessions map[string][]string // subject -> Hydra login session ids (the sid claim)
	auths    []url.Values        // query of every authorization request
	tokens   []TokenExchange     // every token endpoint call
}

// TokenExchange is one call to Hydra's token endpoint as the proxy saw it.
type TokenExchange struct {
	// Form is the request body (grant_type, code_verifier, refresh_token...).
	Form url.Values
	// Status and Response are Hydra's answer.
	Status   int
	Response map[string]any
}

// Start runs Hydra and its login-and-consent app until the test ends, and
// returns once Hydra answers discovery with its signing keys generated.
func Start(t testing.TB, o Options) *Hydra {
	t.Helper()
	if len(o.Users) == 0 {
		t.Fatal("testhydra: no users")
	}
	bin := Binary(t)
	h := &Hydra{
		t:        t,
		admin:    &http.Client{Timeout: 10 * time.Second},
		users:    map[string]User{},
		sessions: map[string][]string{},
	}
	for _, u := range o.Users {
		h.users[u.Username] = u
	}

	app := e2etest.Listen(t)
	h.LoginURL = "http://" + app.Addr().String()
	front := e2etest.Listen(t)
	h.Issuer = "http://" + front.Addr().String()

	secret := make([]byte, 16)
	if _, err := rand.Read(secret); err != nil {
		t.Fatal(err)
	}
	var adminAddr string
	h.daemon = e2etest.StartDaemon(t, "hydra", func(addr string) *exec.Cmd {
		// The admin port is picked like StartDaemon picks the public one;
		// if another process takes it first, Hydra exits saying so and
		// StartDaemon tries again with new ports.
		adminAddr = freeAddr(t)
		pubHost, pubPort, _ := net.SplitHostPort(addr)
		admHost, admPort, _ := net.SplitHostPort(adminAddr)
		cmd := exec.Command(bin, "serve", "all", "--dev", "--sqa-opt-out")
		// Only what is set here: a DSN or URLS_* in the caller's
		// environment must not change what the tests run against.
		cmd.Env = []string{
			"PATH=" + os.Getenv("PATH"),
			"HOME=" + t.TempDir(),
			"DSN=memory",
			"SECRETS_SYSTEM=" + hex.EncodeToString(secret),
			"SERVE_PUBLIC_HOST=" + pubHost, "SERVE_PUBLIC_PORT=" + pubPort,
			"SERVE_ADMIN_HOST=" + admHost, "SERVE_ADMIN_PORT=" + admPort,
			"URLS_SELF_ISSUER=" + h.Issuer,
			"URLS_SELF_PUBLIC=" + h.Issuer,
			"URLS_LOGIN=" + h.LoginURL + "/login",
			"URLS_CONSENT=" + h.LoginURL + "/consent",
			"URLS_LOGOUT=" + h.LoginURL + "/logout",
			"URLS_ERROR=" + h.LoginURL + "/error",
			"URLS_POST_LOGOUT_REDIRECT=" + h.LoginURL + "/logged-out",
			"LOG_LEVEL=warn",
		}
		if o.AccessTokenTTL > 0 {
			cmd.Env = append(cmd.Env, "TTL_ACCESS_TOKEN="+o.AccessTokenTTL.String())
		}
		if o.IDTokenTTL > 0 {
			cmd.Env = append(cmd.Env, "TTL_ID_TOKEN="+o.IDTokenTTL.String())
		}
		return cmd
	})
	h.AdminURL = "http://" + adminAddr
	public := &url.URL{Scheme: "http", Host: h.daemon.Addr}

	serve(t, app, http.HandlerFunc(h.serveLogin))
	serve(t, front, h.recorder(public))

	// Hydra generates its signing keys on the first request that needs
	// them; have that happen now, not inside a relying party's discovery.
	ready := &http.Client{Timeout: 10 * time.Second}
	e2etest.Eventually(t, "Hydra to answer discovery, its JWKS and /health/ready", func() error {
		for _, u := range []string{
			h.AdminURL + "/health/ready",
			h.Issuer + "/health/ready",
			h.Issuer + "/.well-known/openid-configuration",
			h.Issuer + "/.well-known/jwks.json",
		} {
			resp, err := ready.Get(u)
			if err != nil {
				return err
			}
			io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("GET %s: %s", u, resp.Status)
			}
		}
		return nil
	})
	return h
}

// Output is what Hydra wrote so far (warnings and errors).
func (h *Hydra) Output() string { return h.daemon.Output() }

func freeAddr(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// serve runs handler on ln until the test ends.
func serve(t testing.TB, ln net.Listener, handler http.Handler) {
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close(); <-done })
}

// recorder is the reverse proxy in front of Hydra's public port: it passes
// everything through and remembers authorization requests and token
// endpoint calls.
func (h *Hydra) recorder(public *url.URL) http.Handler {
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(public)
			// Hydra builds its URLs from urls.self, not from Host, but keep
			// the host the browser used anyway.
			r.Out.Host = r.In.Host
		},
		ModifyResponse: func(resp *http.Response) error {
			if resp.Request.URL.Path != "/oauth2/token" {
				return nil
			}
			body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			if err != nil {
				return err
			}
			resp.Body = io.NopCloser(bytes.NewReader(body))
			var m map[string]any
			_ = json.Unmarshal(body, &m)
			form, _ := resp.Request.Context().Value(formKey{}).(url.Values)
			h.mu.Lock()
			h.tokens = append(h.tokens, TokenExchange{Form: form, Status: resp.StatusCode, Response: m})
			h.mu.Unlock()
			return nil
		},
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/oauth2/auth":
			h.mu.Lock()
			h.auths = append(h.auths, r.URL.Query())
			h.mu.Unlock()
		case r.URL.Path == "/oauth2/token" && r.Method == http.MethodPost:
			body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
			if err != nil {
				http.Error(w, "bad body", http.StatusBadRequest)
				return
			}
			form, _ := url.ParseQuery(string(body))
			r.Body = io.NopCloser(bytes.NewReader(body))
			r = r.WithContext(context.WithValue(r.Context(), formKey{}, form))
		}
		rp.ServeHTTP(w, r)
	})
}

type formKey struct{}

// AuthRequests returns the query of every authorization request so far.
func (h *Hydra) AuthRequests() []url.Values {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.auths)
}

// TokenExchanges returns every token endpoint call so far, in order.
func (h *Hydra) TokenExchanges() []TokenExchange {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.tokens)
}

// SessionIDs returns the Hydra login session ids (the sid of ID and logout
// tokens) of subject's logins so far.
func (h *Hydra) SessionIDs(subject string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.sessions[subject])
}

// Client is an OAuth 2.0 client registered at Hydra.
type Client struct {
	ID string
	// Secret makes a confidential client authenticating with
	// client_secret_basic; empty makes a public client (PKCE, no secret).
	Secret                 string
	RedirectURIs           []string
	PostLogoutRedirectURIs []string
	// BackchannelLogoutURI receives Hydra's logout tokens.
	BackchannelLogoutURI string
	// Scopes the client may ask for. Empty = openid offline_access email
	// profile.
	Scopes []string
	// Audience the client may ask access tokens for (the audience
	// parameter of the authorization request).
	Audience []string
	// AccessTokenStrategy is "jwt" or "opaque" (Hydra's default).
	AccessTokenStrategy string
	// GrantTypes; empty = authorization_code and refresh_token.
	GrantTypes []string
}

// CreateClient registers c through the admin API.
func (h *Hydra) CreateClient(c Client) {
	h.t.Helper()
	scopes := c.Scopes
	if len(scopes) == 0 {
		scopes = []string{"openid", "offline_access", "email", "profile"}
	}
	grants := c.GrantTypes
	if len(grants) == 0 {
		grants = []string{"authorization_code", "refresh_token"}
	}
	body := map[string]any{
		"client_id":                 c.ID,
		"redirect_uris":             c.RedirectURIs,
		"post_logout_redirect_uris": c.PostLogoutRedirectURIs,
		"grant_types":               grants,
		"response_types":            []string{"code"},
		"scope":                     strings.Join(scopes, " "),
		"audience":                  c.Audience,
		"skip_consent":              false,
	}
	if c.Secret != "" {
		body["client_secret"] = c.Secret
		body["token_endpoint_auth_method"] = "client_secret_basic"
	} else {
		body["token_endpoint_auth_method"] = "none"
	}
	if c.BackchannelLogoutURI != "" {
		body["backchannel_logout_uri"] = c.BackchannelLogoutURI
		body["backchannel_logout_session_required"] = true
	}
	if c.AccessTokenStrategy != "" {
		body["access_token_strategy"] = c.AccessTokenStrategy
	}
	if err := h.adminDo(context.Background(), http.MethodPost, "/admin/clients", nil, body, nil); err != nil {
		h.t.Fatalf("registering client %s at Hydra: %v", c.ID, err)
	}
}

// Introspect asks Hydra's admin API about a token, as a resource server
// would, and returns its answer.
func (h *Hydra) Introspect(token string) map[string]any {
	h.t.Helper()
	resp, err := h.admin.PostForm(h.AdminURL+"/admin/oauth2/introspect", url.Values{"token": {token}})
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&m); err != nil {
		h.t.Fatalf("introspection answer: %v", err)
	}
	return m
}

// LogoutSession ends Hydra login session sid (headless logout): Hydra
// sends a back-channel logout token, asynchronously, to every client of
// that session that registered a BackchannelLogoutURI.
func (h *Hydra) LogoutSession(sid string) {
	h.t.Helper()
	if err := h.adminDo(context.Background(), http.MethodDelete, "/admin/oauth2/auth/sessions/login", url.Values{"sid": {sid}}, nil, nil); err != nil {
		h.t.Fatalf("ending Hydra login session: %v", err)
	}
}

// RevokeTokens deletes every access and refresh token Hydra issued to
// clientID: introspection says inactive and refreshes fail from then on.
func (h *Hydra) RevokeTokens(clientID string) {
	h.t.Helper()
	if err := h.adminDo(context.Background(), http.MethodDelete, "/admin/oauth2/tokens", url.Values{"client_id": {clientID}}, nil, nil); err != nil {
		h.t.Fatalf("revoking %s's tokens: %v", clientID, err)
	}
}

// adminDo calls the admin API with a JSON body (if any) and decodes a JSON
// answer into out (if not nil). Any status but 2xx is an error.
func (h *Hydra) adminDo(ctx context.Context, method, path string, q url.Values, in, out any) error {
	u := h.AdminURL + path
	if q != nil {
		u += "?" + q.Encode()
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := h.admin.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %.500s", method, path, resp.Status, b)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// challenge finds the login challenge in the login app's form.
var challenge = regexp.MustCompile(`name="login_challenge" value="([^"]+)"`)

// Login completes a login that c (a browser-like client with a cookie jar
// that follows redirects) starts by GETting start: it expects to land on
// the login app's form, posts username and password like a person would,
// and returns the final response (body read into the string).
func (h *Hydra) Login(c *http.Client, start, username, password string) (*http.Response, string) {
	h.t.Helper()
	resp, err := c.Get(start)
	if err != nil {
		h.t.Fatalf("GET %s: %v", start, err)
	}
	body := e2etest.ReadBody(h.t, resp)
	if !strings.HasPrefix(resp.Request.URL.String(), h.LoginURL+"/login") {
		h.t.Fatalf("GET %s ended at %s (%d), not at Hydra's login form: %.300s", start, resp.Request.URL, resp.StatusCode, body)
	}
	m := challenge.FindStringSubmatch(body)
	if m == nil {
		h.t.Fatalf("no login form at %s: %.300s", resp.Request.URL, body)
	}
	resp, err = c.PostForm(h.LoginURL+"/login", url.Values{
		"login_challenge": {m[1]}, "username": {username}, "password": {password},
	})
	if err != nil {
		h.t.Fatalf("posting the login form: %v", err)
	}
	return resp, e2etest.ReadBody(h.t, resp)
}

var loginForm = template.Must(template.New("login").Parse(`<!doctype html>
<title>Sign in</title>
{{if .Error}}<p>{{.Error}}</p>{{end}}
<form method="post" action="/login">
<input type="hidden" name="login_challenge" value="{{.Challenge}}">
<input name="username"> <input name="password" type="password">
<button>Sign in</button>
</form>
`))

// serveLogin is the login-and-consent app: Hydra sends the browser to
// /login, /consent and /logout with a challenge; the app asks the admin API
// about it, accepts it, and sends the browser where Hydra says.
func (h *Hydra) serveLogin(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	var redirect struct {
		To string `json:"redirect_to"`
	}
	switch {
	case r.URL.Path == "/login" && r.Method == http.MethodGet:
		ch := r.URL.Query().Get("login_challenge")
		var lr struct {
			Skip      bool   `json:"skip"`
			Subject   string `json:"subject"`
			SessionID string `json:"session_id"`
		}
		if err := h.adminDo(ctx, http.MethodGet, "/admin/oauth2/auth/requests/login", url.Values{"login_challenge": {ch}}, nil, &lr); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		if lr.Skip {
			// Hydra remembers this browser's login: accept it as is.
			if err := h.adminDo(ctx, http.MethodPut, "/admin/oauth2/auth/requests/login/accept", url.Values{"login_challenge": {ch}},
				map[string]any{"subject": lr.Subject}, &redirect); err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			http.Redirect(w, r, redirect.To, http.StatusFound)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = loginForm.Execute(w, map[string]string{"Challenge": ch})
	case r.URL.Path == "/login" && r.Method == http.MethodPost:
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		if err := r.ParseForm(); err != nil {
			http.Error(w, "bad form", http.StatusBadRequest)
			return
		}
		ch := r.PostForm.Get("login_challenge")
		u, ok := h.users[r.PostForm.Get("username")]
		if !ok || u.Password != r.PostForm.Get("password") {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.WriteHeader(http.StatusUnauthorized)
			_ = loginForm.Execute(w, map[string]string{"Challenge": ch, "Error": "Wrong username or password."})
			return
		}
		var lr struct {
			SessionID string `json:"session_id"`
		}
		if err := h.adminDo(ctx, http.MethodGet, "/admin/oauth2/auth/requests/login", url.Values{"login_challenge": {ch}}, nil, &lr); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		// remember: Hydra keeps a login session (its cookie in the
		// browser), which RP-initiated and headless logout end, sending
		// back-channel logout tokens.
		if err := h.adminDo(ctx, http.MethodPut, "/admin/oauth2/auth/requests/login/accept", url.Values{"login_challenge": {ch}},
			map[string]any{"subject": u.subject(), "remember": true, "remember_for": 3600}, &redirect); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		if lr.SessionID != "" {
			h.mu.Lock()
			h.sessions[u.subject()] = append(h.sessions[u.subject()], lr.SessionID)
			h.mu.Unlock()
		}
		http.Redirect(w, r, redirect.To, http.StatusFound)
	case r.URL.Path == "/consent":
		ch := r.URL.Query().Get("consent_challenge")
		var cr struct {
			Subject  string   `json:"subject"`
			Scope    []string `json:"requested_scope"`
			Audience []string `json:"requested_access_token_audience"`
		}
		if err := h.adminDo(ctx, http.MethodGet, "/admin/oauth2/auth/requests/consent", url.Values{"consent_challenge": {ch}}, nil, &cr); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		var user *User
		for _, u := range h.users {
			if u.subject() == cr.Subject {
				user = &u
				break
			}
		}
		if user == nil {
			http.Error(w, "unknown subject", http.StatusBadRequest)
			return
		}
		accept := map[string]any{
			"grant_scope":                 cr.Scope,
			"grant_access_token_audience": cr.Audience,
			"session": map[string]any{
				"id_token":     idTokenClaims(*user, cr.Scope),
				"access_token": user.AccessTokenClaims,
			},
		}
		if err := h.adminDo(ctx, http.MethodPut, "/admin/oauth2/auth/requests/consent/accept", url.Values{"consent_challenge": {ch}}, accept, &redirect); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		http.Redirect(w, r, redirect.To, http.StatusFound)
	case r.URL.Path == "/logout":
		ch := r.URL.Query().Get("logout_challenge")
		if err := h.adminDo(ctx, http.MethodPut, "/admin/oauth2/auth/requests/logout/accept", url.Values{"logout_challenge": {ch}}, nil, &redirect); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		http.Redirect(w, r, redirect.To, http.StatusFound)
	case r.URL.Path == "/logged-out":
		fmt.Fprintln(w, "Signed out.")
	case r.URL.Path == "/error":
		// Hydra's errors that cannot go back to the client land here.
		http.Error(w, "Hydra error: "+r.URL.Query().Get("error")+": "+r.URL.Query().Get("error_description"), http.StatusBadRequest)
	default:
		http.NotFound(w, r)
	}
}

// idTokenClaims are the ID-token claims of u for the granted scopes.
func idTokenClaims(u User, scopes []string) map[string]any {
	c := map[string]any{}
	for k, v := range u.IDTokenClaims {
		c[k] = v
	}
	if slices.Contains(scopes, "email") && u.Email != "" {
		c["email"], c["email_verified"] = u.Email, u.EmailVerified
	}
	if slices.Contains(scopes, "profile") {
		if u.Name != "" {
			c["name"] = u.Name
		}
		c["preferred_username"] = u.Username
		if u.Groups != nil {
			c["groups"] = u.Groups
		}
	}
	return c
}
