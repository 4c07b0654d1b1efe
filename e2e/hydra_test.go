package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/gatehouse/gatehouse/app"
	"github.com/gatehouse/gatehouse/config"
	"github.com/gatehouse/gatehouse/internal/e2etest"
	"github.com/gatehouse/gatehouse/internal/testhydra"
	"github.com/gatehouse/gatehouse/internal/testredis"
	"github.com/gatehouse/gatehouse/tokenmint"
)

// These tests run Gatehouse against Ory Hydra v2.3.0, an OpenID Certified
// provider (internal/testhydra), beside the development provider the rest
// of the suite uses. docs/providers/hydra.md describes the same setup.

// Hydra users. Alice's groups come from several claims, as Keycloak-style
// and namespaced providers send them; her access token session carries
// claims Hydra nests under "ext".
var hydraUsers = []testhydra.User{
	{
		Subject: "u-alice", Username: "alice", Password: "alice-pw",
		Email: "alice@example.com", EmailVerified: true, Name: "Alice Admin",
		Groups: []string{"developers"},
		IDTokenClaims: map[string]any{
			"realm_access":               map[string]any{"roles": []string{"admins", "offline_access"}},
			"resource_access":            map[string]any{"gatehouse": map[string]any{"roles": []string{"editor", "admins"}}},
			"https://example.com/groups": []string{"ns-team"},
		},
		AccessTokenClaims: map[string]any{
			"email": "alice@example.com", "email_verified": true, "groups": []string{"api-users"},
		},
	},
	{
		Subject: "u-bob", Username: "bob", Password: "bob-pw",
		Email: "bob@example.com", EmailVerified: true, Name: "Bob Builder",
		Groups: []string{"developers"},
	},
}

const (
	hydraClientID     = "gatehouse"
	hydraClientSecret = "hydra-client-secret-0123456789abcdef"
	// hydraNativeRedirect is the loopback redirect URI of the native
	// clients; the test catches the redirect, nothing listens there.
	hydraNativeRedirect = "http://127.0.0.1/callback"
)

// hydraEnv is one Gatehouse signing users in through Hydra.
type hydraEnv struct {
	t          *testing.T
	hydra      *testhydra.Hydra
	up         *e2etest.Upstream
	URL        string
	MetricsURL string
	logs       *e2etest.SyncBuffer
	// backchannel receives the status of every back-channel logout POST
	// Gatehouse has answered: the event that Hydra's asynchronous delivery
	// has happened.
	backchannel chan int
}

// startHydra runs Hydra with hydraUsers and one Gatehouse registered at it
// as a confidential client (redirect, post-logout and back-channel logout
// URIs), configured by vars on top of the defaults.
func startHydra(t *testing.T, o testhydra.Options, vars map[string]string) *hydraEnv {
	t.Helper()
	if o.Users == nil {
		o.Users = hydraUsers
	}
	h := testhydra.Start(t, o)
	e := startGatehouseAt(t, h.Issuer, nil, vars)
	e.hydra = h
	h.CreateClient(testhydra.Client{
		ID: hydraClientID, Secret: hydraClientSecret,
		RedirectURIs:           []string{e.URL + "/oauth2/callback"},
		PostLogoutRedirectURIs: []string{e.URL + "/"},
		BackchannelLogoutURI:   e.URL + "/oauth2/backchannel_logout",
	})
	return e
}

// startGatehouseAt runs a Gatehouse on ln (nil: a new listener) with its
// own upstream for the provider at issuer (client hydraClientID), logging at
// debug level into e.logs, and returns once it has discovered the provider.
// The provider may register the client after.
func startGatehouseAt(t *testing.T, issuer string, ln net.Listener, vars map[string]string) *hydraEnv {
	t.Helper()
	e := &hydraEnv{t: t, up: e2etest.NewUpstream(t), logs: &e2etest.SyncBuffer{}, backchannel: make(chan int, 16)}
	if ln == nil {
		ln = e2etest.Listen(t)
	}
	e.URL = "http://" + ln.Addr().String()
	all := map[string]string{
		"GATEHOUSE_PUBLIC_URL":              e.URL,
		"GATEHOUSE_LISTEN":                  "127.0.0.1:0",
		"GATEHOUSE_METRICS_LISTEN":          "127.0.0.1:0",
		"GATEHOUSE_OIDC_ISSUER":             issuer,
		"GATEHOUSE_OIDC_CLIENT_ID":          hydraClientID,
		"GATEHOUSE_OIDC_CLIENT_SECRET":      hydraClientSecret,
		"GATEHOUSE_COOKIE_SECRETS":          e2etest.CookieSecret,
		"GATEHOUSE_COOKIE_SECURE":           "false",
		"GATEHOUSE_UPSTREAM":                e.up.URL,
		"GATEHOUSE_LOG_ACCESS_LOG":          "false",
		"GATEHOUSE_SERVER_SHUTDOWN_TIMEOUT": "2s",
	}
	for k, v := range vars {
		all[k] = v
	}
	cfg, err := config.Load("", func(k string) string { return all[k] })
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	// The app binds a listener of its own that goes unused: its handler is
	// served on ln behind a wrapper that reports back-channel logouts.
	a, err := app.New(cfg, logger, app.Options{Listener: e2etest.Listen(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Listen(); err != nil {
		t.Fatal(err)
	}
	e.MetricsURL = "http://" + a.MetricsAddr()
	srv := &http.Server{Handler: e.watch(a.Handler()), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan struct{})
	go func() { defer close(served); _ = srv.Serve(ln) }()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		srv.Close()
		<-served
		cancel()
		if err := <-done; err != nil {
			t.Errorf("gatehouse exited with %v", err)
		}
		if t.Failed() {
			t.Logf("gatehouse's log:\n%s", e.logs.String())
		}
	})
	e2etest.WaitReady(t, e.MetricsURL)
	return e
}

// watch reports the status of every back-channel logout request h answers.
func (e *hydraEnv) watch(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/oauth2/backchannel_logout" {
			h.ServeHTTP(w, r)
			return
		}
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(sw, r)
		select {
		case e.backchannel <- sw.status:
		default:
		}
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) { s.status = code; s.ResponseWriter.WriteHeader(code) }

// waitBackchannel waits for Gatehouse to answer a back-channel logout and
// returns its status.
func (e *hydraEnv) waitBackchannel() int {
	e.t.Helper()
	select {
	case code := <-e.backchannel:
		return code
	case <-time.After(30 * time.Second):
		e.t.Fatalf("no back-channel logout reached Gatehouse within 30s; Hydra says:\n%s", e.hydra.Output())
		return 0
	}
}

// browser is a cookie-keeping client that follows redirects like a
// browser navigation.
func (e *hydraEnv) browser() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 10 * time.Second, Transport: navigation{http.DefaultTransport}}
}

type navigation struct{ rt http.RoundTripper }

func (n navigation) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Header.Get("Accept") == "" {
		r.Header.Set("Accept", "text/html")
	}
	return n.rt.RoundTrip(r)
}

// login signs user in through Gatehouse and Hydra's login form, starting at
// path, and returns the final response and body.
func (e *hydraEnv) login(c *http.Client, path, user, password string) (*http.Response, string) {
	e.t.Helper()
	return e.hydra.Login(c, e.URL+path, user, password)
}

func (e *hydraEnv) cookie(c *http.Client) *http.Cookie {
	u, _ := url.Parse(e.URL)
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == "gatehouse" {
			return ck
		}
	}
	e.t.Fatal("no session cookie")
	return nil
}

// get sends an API-style GET with a session cookie or an Authorization
// header and returns the status and body.
func (e *hydraEnv) get(path string, ck *http.Cookie, auth string) (int, string) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.URL+path, nil)
	req.Header.Set("Accept", "application/json")
	if ck != nil {
		req.AddCookie(ck)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.StatusCode, e2etest.ReadBody(e.t, resp)
}

// userinfo is Gatehouse's /oauth2/userinfo for the session ck.
func (e *hydraEnv) userinfo(ck *http.Cookie) (user string, groups []string) {
	e.t.Helper()
	code, body := e.get("/oauth2/userinfo", ck, "")
	var u struct {
		User   string   `json:"user"`
		Groups []string `json:"groups"`
	}
	if code != 200 || json.Unmarshal([]byte(body), &u) != nil {
		e.t.Fatalf("/oauth2/userinfo: %d %s", code, body)
	}
	return u.User, u.Groups
}

// metric reads one sample of /metrics; absent is 0.
func (e *hydraEnv) metric(name string) int {
	e.t.Helper()
	resp, err := http.Get(e.MetricsURL + "/metrics")
	if err != nil {
		e.t.Fatal(err)
	}
	body := e2etest.ReadBody(e.t, resp)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\d+)`).FindStringSubmatch(body)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// nativeLogin obtains tokens as a native app does from Hydra: the
// authorization code flow with PKCE as public client clientID, asking for
// audience, the user typing their password into the login form.
func (e *hydraEnv) nativeLogin(clientID, audience, user, password string) *oauth2.Token {
	e.t.Helper()
	cfg := oauth2.Config{
		ClientID: clientID, RedirectURL: hydraNativeRedirect, Scopes: []string{"openid", "offline_access", "email", "profile"},
		Endpoint: oauth2.Endpoint{AuthURL: e.hydra.Issuer + "/oauth2/auth", TokenURL: e.hydra.Issuer + "/oauth2/token", AuthStyle: oauth2.AuthStyleInParams},
	}
	verifier := oauth2.GenerateVerifier()
	jar, _ := cookiejar.New(nil)
	var code string
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		if strings.HasPrefix(req.URL.String(), hydraNativeRedirect) {
			code = req.URL.Query().Get("code")
			return http.ErrUseLastResponse
		}
		return nil
	}}
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier)}
	if audience != "" {
		opts = append(opts, oauth2.SetAuthURLParam("audience", audience))
	}
	e.hydra.Login(c, cfg.AuthCodeURL("native-state-0123456789", opts...), user, password)
	if code == "" {
		e.t.Fatal("native login: no code reached the redirect URI")
	}
	tok, err := cfg.Exchange(context.Background(), code, oauth2.VerifierOption(verifier))
	if err != nil {
		e.t.Fatalf("native login: %v", err)
	}
	return tok
}

// TestHydraLogin: a browser signs in to Gatehouse through Hydra with the
// authorization code flow and PKCE S256; the upstream sees the identity.
func TestHydraLogin(t *testing.T) {
	e := startHydra(t, testhydra.Options{}, nil)
	c := e.browser()
	resp, body := e.login(c, "/app/page", "alice", "alice-pw")
	if resp.StatusCode != 200 || body != "upstream GET /app/page" || resp.Request.URL.String() != e.URL+"/app/page" {
		t.Fatalf("login ended at %s with %d %q; want the upstream's /app/page", resp.Request.URL, resp.StatusCode, body)
	}
	got := e.up.LastRequest()
	if got.Header.Get("X-Auth-Request-User") != "u-alice" || got.Header.Get("X-Auth-Request-Email") != "alice@example.com" ||
		got.Header.Get("X-Auth-Request-Groups") != "developers" {
		t.Errorf("user %q, email %q, groups %q; want alice with the groups claim", got.Header.Get("X-Auth-Request-User"), got.Header.Get("X-Auth-Request-Email"), got.Header.Get("X-Auth-Request-Groups"))
	}
	host := strings.TrimPrefix(e.URL, "http://")
	v, _ := tokenmint.NewVerifier(tokenmint.VerifierConfig{Issuer: e.URL, Audience: host, JWKSURL: e.URL + "/oauth2/jwks.json"})
	if claims, err := v.Verify(context.Background(), strings.TrimPrefix(got.Header.Get("Authorization"), "Bearer ")); err != nil || claims.Subject != "u-alice" {
		t.Errorf("minted token: %v, %+v", err, claims)
	}

	// What Hydra saw: S256 PKCE, a nonce and a state, and the verifier at
	// the token endpoint, authenticated with client_secret_basic.
	auths := e.hydra.AuthRequests()
	if len(auths) == 0 {
		t.Fatal("no authorization request reached Hydra")
	}
	a := auths[0]
	if a.Get("client_id") != hydraClientID || a.Get("code_challenge_method") != "S256" || len(a.Get("code_challenge")) != 43 ||
		a.Get("nonce") == "" || a.Get("state") == "" || a.Get("redirect_uri") != e.URL+"/oauth2/callback" {
		t.Errorf("authorization request %v; want PKCE S256, nonce, state and the callback", a)
	}
	ex := e.hydra.TokenExchanges()
	if len(ex) != 1 || ex[0].Form.Get("grant_type") != "authorization_code" || len(ex[0].Form.Get("code_verifier")) < 43 || ex[0].Status != 200 {
		t.Fatalf("token endpoint calls %+v; want one code exchange with the PKCE verifier", ex)
	}
	if ex[0].Form.Get("client_secret") != "" {
		t.Error("the client secret was sent in the form; want client_secret_basic")
	}
	if _, ok := ex[0].Response["refresh_token"].(string); !ok {
		t.Error("Hydra issued no refresh token for offline_access")
	}
}

// TestHydraRefreshRotation: Hydra rotates refresh tokens on every use.
// Gatehouse refreshes a session whose tokens near expiry once, with the
// login's refresh token, and the session goes on; Hydra has retired the
// old refresh token and the new one is live.
func TestHydraRefreshRotation(t *testing.T) {
	e := startHydra(t, testhydra.Options{AccessTokenTTL: dueLifetime, IDTokenTTL: dueLifetime}, map[string]string{
		"GATEHOUSE_OIDC_GROUPS_CLAIMS": "realm_access.roles",
	})
	c := e.browser()
	e.login(c, "/", "alice", "alice-pw")
	ck := e.cookie(c)
	e2etest.Eventually(t, "the refresh", func() error {
		if code, _ := e.get("/x", ck, ""); code != 200 {
			return fmt.Errorf("session got %d during refresh", code)
		}
		if n := e.metric(`gatehouse_session_refreshes_total{outcome="success"}`); n < 1 {
			return fmt.Errorf("%d successful refreshes", n)
		}
		return nil
	})
	for _, outcome := range []string{"revoked", "error"} {
		if n := e.metric(`gatehouse_session_refreshes_total{outcome="` + outcome + `"}`); n != 0 {
			t.Errorf("%d refreshes ended %s", n, outcome)
		}
	}
	// The code exchange, then the refresh with the login's refresh token.
	// (On a machine slow enough to outlast the refresh lock, more refreshes
	// may follow; each must use the refresh token the one before got.)
	ex := e.hydra.TokenExchanges()
	if len(ex) < 2 || ex[0].Form.Get("grant_type") != "authorization_code" {
		t.Fatalf("token endpoint calls %+v; want the code exchange, then a refresh", ex)
	}
	var retired []string
	for i, x := range ex[1:] {
		prev, _ := ex[i].Response["refresh_token"].(string)
		next, _ := x.Response["refresh_token"].(string)
		if x.Form.Get("grant_type") != "refresh_token" || x.Status != 200 || x.Form.Get("refresh_token") != prev || next == "" || next == prev {
			t.Fatalf("token endpoint call %d: grant %q, status %d; want a refresh with the previous refresh token, rotated", i+2, x.Form.Get("grant_type"), x.Status)
		}
		retired = append(retired, prev)
	}
	for _, old := range retired {
		if got := e.hydra.Introspect(old); got["active"] != false {
			t.Errorf("a used refresh token is still active: %v", got["active"])
		}
	}
	last, _ := ex[len(ex)-1].Response["refresh_token"].(string)
	if got := e.hydra.Introspect(last); got["active"] != true || got["token_use"] != "refresh_token" {
		t.Errorf("the rotated refresh token: active %v, token_use %v; want active", got["active"], got["token_use"])
	}
	// The session carries on with the refreshed identity and groups.
	if code, _ := e.get("/after", ck, ""); code != 200 {
		t.Errorf("after the refresh the session got %d", code)
	}
	if user, groups := e.userinfo(ck); user != "u-alice" || !slices.Equal(groups, []string{"developers", "admins", "offline_access"}) {
		t.Errorf("after the refresh: %s in %q", user, groups)
	}
}

// TestHydraRPInitiatedLogout: with oidc.provider_logout, signing out of
// Gatehouse also ends the login at Hydra (end_session with the ID token as
// hint), comes back to the validated rd, and Hydra then tells Gatehouse
// through back-channel logout too.
func TestHydraRPInitiatedLogout(t *testing.T) {
	e := startHydra(t, testhydra.Options{}, map[string]string{"GATEHOUSE_OIDC_PROVIDER_LOGOUT": "true"})
	c := e.browser()
	e.login(c, "/", "alice", "alice-pw")
	ck := e.cookie(c)
	var visited []*url.URL
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		visited = append(visited, req.URL)
		if req.URL.String() == e.URL+"/" {
			return http.ErrUseLastResponse // back home: stop before a new login starts
		}
		return nil
	}
	resp, err := c.Get(e.URL + "/oauth2/sign_out?rd=/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	sawEnd := false
	for _, u := range visited {
		q := u.Query()
		if strings.HasPrefix(u.String(), e.hydra.Issuer+"/oauth2/sessions/logout") && q.Get("id_token_hint") != "" && q.Get("post_logout_redirect_uri") == e.URL+"/" {
			sawEnd = true
		}
	}
	if !sawEnd || len(visited) == 0 || visited[len(visited)-1].String() != e.URL+"/" {
		t.Fatalf("sign-out visited %v; want Hydra's end_session endpoint with the ID token, then %s/", visited, e.URL)
	}
	if code, _ := e.get("/x", ck, ""); code != http.StatusUnauthorized {
		t.Errorf("the old session cookie after sign-out got %d; want 401", code)
	}
	// Hydra's back-channel logout for the same login reaches Gatehouse
	// (its session is gone already: still a 200, as the spec asks).
	if code := e.waitBackchannel(); code != http.StatusOK {
		t.Errorf("back-channel logout after RP-initiated logout got %d; want 200", code)
	}
	// The login at Hydra is over: signing in again shows the form.
	c.CheckRedirect = nil
	if resp, body := e.login(c, "/again", "alice", "alice-pw"); resp.StatusCode != 200 || body != "upstream GET /again" {
		t.Errorf("signing in again: %d %q", resp.StatusCode, body)
	}
}

// TestHydraBackchannelLogout: ending a login at Hydra (its admin API,
// which is how an account console or an admin signs a user out) makes
// Hydra itself deliver a logout token for that sid; Gatehouse ends that
// session and no other.
func TestHydraBackchannelLogout(t *testing.T) {
	e := startHydra(t, testhydra.Options{}, map[string]string{"GATEHOUSE_SESSION_STORE": "redis", "GATEHOUSE_REDIS_ADDRS": testredis.Start(t, testredis.Options{}).Addr,
		"GATEHOUSE_TOKEN_SIGNING_KEY_FILES": e2etest.KeyFile(t)})
	alice, bob := e.browser(), e.browser()
	e.login(alice, "/", "alice", "alice-pw")
	e.login(bob, "/", "bob", "bob-pw")
	aliceCk, bobCk := e.cookie(alice), e.cookie(bob)
	sids := e.hydra.SessionIDs("u-alice")
	if len(sids) != 1 {
		t.Fatalf("alice's Hydra login sessions: %v; want one", sids)
	}
	e.hydra.LogoutSession(sids[0])
	if code := e.waitBackchannel(); code != http.StatusOK {
		t.Fatalf("Hydra's logout token got %d; want 200; Gatehouse's log:\n%s", code, e.logs.String())
	}
	if code, _ := e.get("/x", aliceCk, ""); code != http.StatusUnauthorized {
		t.Errorf("alice after Hydra's back-channel logout got %d; want 401", code)
	}
	if code, _ := e.get("/x", bobCk, ""); code != 200 {
		t.Errorf("bob after alice's logout got %d; want 200", code)
	}
	// Replayed by someone who caught it: the same token is refused.
	// (Hydra does not let us see it; a forged one is refused instead.)
	resp, err := http.PostForm(e.URL+"/oauth2/backchannel_logout", url.Values{"logout_token": {"eyJhbGciOiJSUzI1NiJ9.e30.c2ln"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a forged logout token got %d; want 400", resp.StatusCode)
	}
	<-e.backchannel
	if code, _ := e.get("/x", bobCk, ""); code != 200 {
		t.Errorf("bob after a forged logout token got %d; want 200", code)
	}
}

// TestHydraJWTAccessTokens: with Hydra's jwt access token strategy, a native
// client's access token is a bearer token Gatehouse verifies with Hydra's
// keys; its groups are read from ext.groups (Hydra nests custom claims
// there); ID tokens, refresh tokens and tokens for another audience are not
// bearer tokens.
func TestHydraJWTAccessTokens(t *testing.T) {
	e := startHydra(t, testhydra.Options{}, map[string]string{
		"GATEHOUSE_API_ACCEPTED_AUDIENCES": "api",
		"GATEHOUSE_OIDC_GROUPS_CLAIMS":     "ext.groups",
	})
	e.hydra.CreateClient(testhydra.Client{ID: "native-jwt", RedirectURIs: []string{hydraNativeRedirect}, Audience: []string{"api", "other"}, AccessTokenStrategy: "jwt"})
	tok := e.nativeLogin("native-jwt", "api", "alice", "alice-pw")
	if strings.Count(tok.AccessToken, ".") != 2 {
		t.Fatal("Hydra did not issue a JWT access token")
	}
	code, body := e.get("/api/items", nil, "Bearer "+tok.AccessToken)
	if code != 200 || body != "upstream GET /api/items" {
		t.Fatalf("JWT access token got %d %q", code, body)
	}
	got := e.up.LastRequest()
	if got.Header.Get("X-Auth-Request-User") != "u-alice" || got.Header.Get("X-Auth-Request-Groups") != "api-users" {
		t.Errorf("user %q, groups %q; want alice in ext.groups' api-users", got.Header.Get("X-Auth-Request-User"), got.Header.Get("X-Auth-Request-Groups"))
	}
	other := e.nativeLogin("native-jwt", "other", "alice", "alice-pw")
	idToken, _ := tok.Extra("id_token").(string)
	for name, bad := range map[string]string{
		"ID token":         idToken,
		"refresh token":    tok.RefreshToken,
		"another audience": other.AccessToken,
		"garbage":          "not-a-token",
	} {
		if code, _ := e.get("/api/items", nil, "Bearer "+bad); code != http.StatusUnauthorized {
			t.Errorf("%s as a bearer token got %d; want 401", name, code)
		}
	}
}

// TestHydraIntrospection: Hydra's default opaque access tokens are checked
// with RFC 7662 token introspection at Hydra's admin endpoint: an active
// token for an accepted audience passes with the claims Hydra nests under
// ext; a refresh token, a token for another audience and garbage get 401; a
// revoked token stops working once its cached answer has run out; an
// introspection endpoint that cannot be reached is a 503, not a 401.
func TestHydraIntrospection(t *testing.T) {
	h := testhydra.Start(t, testhydra.Options{Users: hydraUsers})
	vars := map[string]string{
		"GATEHOUSE_API_ACCEPTED_AUDIENCES":      "api",
		"GATEHOUSE_API_INTROSPECTION":           "true",
		"GATEHOUSE_API_INTROSPECTION_ENDPOINT":  h.AdminURL + "/admin/oauth2/introspect",
		"GATEHOUSE_API_INTROSPECTION_CACHE_TTL": "1s",
		"GATEHOUSE_API_INTROSPECTION_RATE":      "50",
	}
	e := startGatehouseAt(t, h.Issuer, nil, vars)
	e.hydra = h
	h.CreateClient(testhydra.Client{ID: "native-opaque", RedirectURIs: []string{hydraNativeRedirect}, Audience: []string{"api", "other"}})

	tok := e.nativeLogin("native-opaque", "api", "alice", "alice-pw")
	if !strings.HasPrefix(tok.AccessToken, "ory_at_") {
		t.Fatal("Hydra did not issue an opaque access token")
	}
	code, body := e.get("/api/items", nil, "Bearer "+tok.AccessToken)
	if code != 200 || body != "upstream GET /api/items" {
		t.Fatalf("opaque access token got %d %q", code, body)
	}
	got := e.up.LastRequest()
	if got.Header.Get("X-Auth-Request-User") != "u-alice" || got.Header.Get("X-Auth-Request-Email") != "alice@example.com" ||
		got.Header.Get("X-Auth-Request-Groups") != "api-users" {
		t.Errorf("user %q, email %q, groups %q; want alice with the ext claims", got.Header.Get("X-Auth-Request-User"), got.Header.Get("X-Auth-Request-Email"), got.Header.Get("X-Auth-Request-Groups"))
	}
	other := e.nativeLogin("native-opaque", "other", "alice", "alice-pw")
	for name, bad := range map[string]string{
		"refresh token":    tok.RefreshToken,
		"another audience": other.AccessToken,
		"garbage":          "ory_at_garbage.garbage",
	} {
		if code, _ := e.get("/api/items", nil, "Bearer "+bad); code != http.StatusUnauthorized {
			t.Errorf("%s as a bearer token got %d; want 401", name, code)
		}
	}
	// Revoked at Hydra: refused once the cached answer (api.introspection_cache_ttl) has run out.
	h.RevokeTokens("native-opaque")
	e2etest.Eventually(t, "the revoked token to be refused", func() error {
		if code, _ := e.get("/api/items", nil, "Bearer "+tok.AccessToken); code != http.StatusUnauthorized {
			return fmt.Errorf("got %d; want 401", code)
		}
		return nil
	})

	// The introspection endpoint down: 503, so the client retries, never 401.
	vars["GATEHOUSE_API_INTROSPECTION_ENDPOINT"] = e2etest.DeadURL(t) + "/admin/oauth2/introspect"
	down := startGatehouseAt(t, h.Issuer, nil, vars)
	fresh := e.nativeLogin("native-opaque", "api", "alice", "alice-pw")
	if code, _ := down.get("/api/items", nil, "Bearer "+fresh.AccessToken); code != http.StatusServiceUnavailable {
		t.Errorf("with the introspection endpoint down got %d; want 503", code)
	}
	if n := down.up.Count(); n != 0 {
		t.Errorf("%d requests reached the upstream", n)
	}
}

// TestHydraClaimPaths: groups and roles from several claims, merged:
// oidc.groups_claim a nested path, oidc.groups_claims a namespaced claim
// URL, a client's roles, and the plain groups claim. allowed_groups then
// decides on the merged list.
func TestHydraClaimPaths(t *testing.T) {
	e := startHydra(t, testhydra.Options{}, map[string]string{
		"GATEHOUSE_OIDC_GROUPS_CLAIM":            "realm_access.roles",
		"GATEHOUSE_OIDC_GROUPS_CLAIMS":           `https://example.com/groups,resource_access["gatehouse"].roles,groups`,
		"GATEHOUSE_AUTHORIZATION_ALLOWED_GROUPS": "editor",
	})
	alice := e.browser()
	if resp, body := e.login(alice, "/", "alice", "alice-pw"); resp.StatusCode != 200 || body != "upstream GET /" {
		t.Fatalf("alice (editor through resource_access) got %d %q", resp.StatusCode, body)
	}
	want := []string{"admins", "offline_access", "ns-team", "editor", "developers"}
	if user, groups := e.userinfo(e.cookie(alice)); user != "u-alice" || !slices.Equal(groups, want) {
		t.Errorf("alice's groups %q; want %q, merged in order without duplicates", groups, want)
	}
	if h := e.up.LastRequest().Header.Get("X-Auth-Request-Groups"); h != strings.Join(want, ",") {
		t.Errorf("groups header %q", h)
	}
	bob := e.browser()
	if resp, _ := e.login(bob, "/", "bob", "bob-pw"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("bob (no editor role) got %d; want 403", resp.StatusCode)
	}
	if !strings.Contains(e.logs.String(), `"rule":"allowed_groups"`) {
		t.Error("bob's refusal does not name the rule in the log")
	}
}
