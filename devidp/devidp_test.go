package devidp

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

func TestDiscovery(t *testing.T) {
	s := sharedIdP(t)
	if s.Issuer() != s.URL {
		t.Errorf("Issuer() = %q; want the listener URL %q", s.Issuer(), s.URL)
	}
	resp := get(t, http.DefaultClient, s.URL+"/.well-known/openid-configuration")
	defer resp.Body.Close()
	var d map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
		t.Fatalf("decoding discovery: %v", err)
	}
	if d["issuer"] != s.URL {
		t.Errorf("issuer = %v; want %q", d["issuer"], s.URL)
	}
	for field, want := range map[string]string{
		"authorization_endpoint":        s.URL + "/authorize",
		"token_endpoint":                s.URL + "/oauth/token",
		"userinfo_endpoint":             s.URL + "/userinfo",
		"jwks_uri":                      s.URL + "/keys",
		"end_session_endpoint":          s.URL + "/end_session",
		"revocation_endpoint":           s.URL + "/revoke",
		"introspection_endpoint":        s.URL + "/oauth/introspect",
		"device_authorization_endpoint": s.URL + "/device_authorization",
	} {
		if d[field] != want {
			t.Errorf("%s = %v; want %q", field, d[field], want)
		}
	}
	for field, want := range map[string][]string{
		"code_challenge_methods_supported":      {"S256"},
		"token_endpoint_auth_methods_supported": {"none", "client_secret_basic", "client_secret_post"},
		"scopes_supported":                      {"openid", "profile", "email", "offline_access", "groups"},
		"claims_supported":                      {"groups", "sid", "email_verified", "preferred_username"},
		"id_token_signing_alg_values_supported": {"RS256"},
		"grant_types_supported":                 {"authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:device_code"},
	} {
		list, _ := d[field].([]any)
		for _, w := range want {
			if !slices.Contains(list, any(w)) {
				t.Errorf("%s = %v; want it to contain %q", field, list, w)
			}
		}
	}
	if d["backchannel_logout_supported"] != true || d["backchannel_logout_session_supported"] != true {
		t.Errorf("backchannel_logout_supported/session = %v/%v; want true/true", d["backchannel_logout_supported"], d["backchannel_logout_session_supported"])
	}
}

// TestCodeFlow drives the authorization code flow end to end for each kind
// of client and checks what a relying party sees.
func TestCodeFlow(t *testing.T) {
	s := sharedIdP(t)
	p := discover(t, s)
	alice := DemoUsers()[0]

	tests := []struct {
		name     string
		clientID string
		secret   string
		redirect string
		style    oauth2.AuthStyle
	}{
		{"confidential client_secret_basic", webClientID, webClientSecret, webRedirectURI, oauth2.AuthStyleInHeader},
		{"confidential client_secret_post", webClientID, webClientSecret, webRedirectURI, oauth2.AuthStyleInParams},
		// A native app picks its loopback port at run time (RFC 8252 7.3).
		{"public native with PKCE", nativeClientID, "", "http://127.0.0.1:53682/callback", oauth2.AuthStyleInParams},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := oauthConfig(p, tt.clientID, tt.secret, tt.redirect, tt.style, "openid", "profile", "email", "offline_access")
			before := time.Now().Add(-time.Second).Unix()
			tok, nonce := codeFlow(t, s, cfg, alice.Username, alice.Password)

			rawID, _ := tok.Extra("id_token").(string)
			idTok, err := p.Verifier(&oidc.Config{ClientID: tt.clientID}).Verify(clientCtx(t), rawID)
			if err != nil {
				t.Fatalf("verifying ID token: %v", err)
			}
			if idTok.Nonce != nonce {
				t.Errorf("nonce = %q; want %q", idTok.Nonce, nonce)
			}
			id := claimsOf(t, idTok)
			for claim, want := range map[string]any{
				"sub":                alice.ID,
				"email":              alice.Email,
				"email_verified":     true,
				"name":               alice.Name,
				"given_name":         alice.GivenName,
				"family_name":        alice.FamilyName,
				"preferred_username": alice.PreferredUsername,
			} {
				if id[claim] != want {
					t.Errorf("ID token %s = %v; want %v", claim, id[claim], want)
				}
			}
			if got := stringsOf(id["groups"]); !slices.Equal(got, alice.Groups) {
				t.Errorf("ID token groups = %v; want %v", got, alice.Groups)
			}
			if at, _ := id["auth_time"].(float64); int64(at) < before || int64(at) > time.Now().Unix()+1 {
				t.Errorf("ID token auth_time = %v; want about now", id["auth_time"])
			}
			sid, _ := id["sid"].(string)
			if sid == "" {
				t.Errorf("ID token has no sid")
			}

			// The access token is a JWT for this client only.
			atTok, err := p.Verifier(&oidc.Config{ClientID: tt.clientID}).Verify(clientCtx(t), tok.AccessToken)
			if err != nil {
				t.Fatalf("verifying access token as a JWT with aud %q: %v", tt.clientID, err)
			}
			if !slices.Equal(atTok.Audience, []string{tt.clientID}) {
				t.Errorf("access token aud = %v; want [%s]", atTok.Audience, tt.clientID)
			}
			if _, err := p.Verifier(&oidc.Config{ClientID: "someone-else"}).Verify(clientCtx(t), tok.AccessToken); err == nil {
				t.Errorf("access token verified for another audience; want an error")
			}
			at := claimsOf(t, atTok)
			if at["sub"] != alice.ID || at["client_id"] != tt.clientID || at["sid"] != sid || at["email"] != alice.Email {
				t.Errorf("access token sub/client_id/sid/email = %v/%v/%v/%v; want %v/%v/%v/%v",
					at["sub"], at["client_id"], at["sid"], at["email"], alice.ID, tt.clientID, sid, alice.Email)
			}
			if got := stringsOf(at["groups"]); !slices.Equal(got, alice.Groups) {
				t.Errorf("access token groups = %v; want %v", got, alice.Groups)
			}
			if got, _ := at["scope"].(string); got != "openid profile email offline_access" {
				t.Errorf("access token scope = %q; want %q", got, "openid profile email offline_access")
			}

			ui, err := p.UserInfo(clientCtx(t), oauth2.StaticTokenSource(tok))
			if err != nil {
				t.Fatalf("userinfo: %v", err)
			}
			var uiClaims map[string]any
			if err := ui.Claims(&uiClaims); err != nil {
				t.Fatal(err)
			}
			if ui.Subject != alice.ID || ui.Email != alice.Email || !ui.EmailVerified || !slices.Equal(stringsOf(uiClaims["groups"]), alice.Groups) {
				t.Errorf("userinfo = %v; want sub %s, email %s verified, groups %v", uiClaims, alice.ID, alice.Email, alice.Groups)
			}

			// Refresh with offline_access: new tokens, same session.
			if tok.RefreshToken == "" {
				t.Fatal("no refresh token despite offline_access")
			}
			stale := *tok
			stale.Expiry = time.Now().Add(-time.Minute)
			fresh, err := cfg.TokenSource(clientCtx(t), &stale).Token()
			if err != nil {
				t.Fatalf("refresh: %v", err)
			}
			if fresh.AccessToken == tok.AccessToken || fresh.RefreshToken == "" || fresh.RefreshToken == tok.RefreshToken {
				t.Errorf("refresh returned the same tokens; want a new access token and a rotated refresh token")
			}
			rawID2, _ := fresh.Extra("id_token").(string)
			idTok2, err := p.Verifier(&oidc.Config{ClientID: tt.clientID}).Verify(clientCtx(t), rawID2)
			if err != nil {
				t.Fatalf("verifying refreshed ID token: %v", err)
			}
			id2 := claimsOf(t, idTok2)
			if id2["sid"] != sid || id2["auth_time"] != id["auth_time"] || id2["sub"] != alice.ID {
				t.Errorf("refreshed ID token sid/auth_time/sub = %v/%v/%v; want %v/%v/%v", id2["sid"], id2["auth_time"], id2["sub"], sid, id["auth_time"], alice.ID)
			}
		})
	}
}

// TestRefreshTokenReuse checks rotation: an old refresh token is refused
// and presenting it revokes the grant.
func TestRefreshTokenReuse(t *testing.T) {
	s := sharedIdP(t)
	p := discover(t, s)
	cfg := oauthConfig(p, webClientID, webClientSecret, webRedirectURI, oauth2.AuthStyleInHeader, "openid", "offline_access")
	tok, _ := codeFlow(t, s, cfg, "bob", "bob")

	refresh := func(rt string) (*oauth2.Token, error) {
		return cfg.TokenSource(clientCtx(t), &oauth2.Token{RefreshToken: rt, Expiry: time.Now().Add(-time.Minute)}).Token()
	}
	second, err := refresh(tok.RefreshToken)
	if err != nil {
		t.Fatalf("first refresh: %v", err)
	}
	if _, err := refresh(tok.RefreshToken); retrieveErrorCode(err) != "invalid_grant" {
		t.Errorf("reusing a rotated-out refresh token: got %v; want invalid_grant", err)
	}
	if _, err := refresh(second.RefreshToken); retrieveErrorCode(err) != "invalid_grant" {
		t.Errorf("refresh after reuse was detected: got %v; want invalid_grant (grant revoked)", err)
	}
}

func TestScopesDecideClaims(t *testing.T) {
	s := sharedIdP(t)
	p := discover(t, s)
	alice := DemoUsers()[0]
	tests := []struct {
		scopes     []string
		wantGroups bool
		wantEmail  bool
		wantName   bool
	}{
		{scopes: []string{"openid"}},
		{scopes: []string{"openid", "groups"}, wantGroups: true},
		{scopes: []string{"openid", "profile"}, wantGroups: true, wantName: true},
		{scopes: []string{"openid", "email"}, wantEmail: true},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.scopes, "+"), func(t *testing.T) {
			cfg := oauthConfig(p, webClientID, webClientSecret, webRedirectURI, oauth2.AuthStyleInHeader, tt.scopes...)
			tok, _ := codeFlow(t, s, cfg, alice.Username, alice.Password)
			if tok.RefreshToken != "" {
				t.Errorf("got a refresh token without offline_access")
			}
			rawID, _ := tok.Extra("id_token").(string)
			idTok, err := p.Verifier(&oidc.Config{ClientID: webClientID}).Verify(clientCtx(t), rawID)
			if err != nil {
				t.Fatal(err)
			}
			atTok, err := p.Verifier(&oidc.Config{ClientID: webClientID}).Verify(clientCtx(t), tok.AccessToken)
			if err != nil {
				t.Fatal(err)
			}
			for name, c := range map[string]map[string]any{"ID token": claimsOf(t, idTok), "access token": claimsOf(t, atTok)} {
				if _, ok := c["groups"]; ok != tt.wantGroups {
					t.Errorf("%s has groups: %v; want %v", name, ok, tt.wantGroups)
				}
				if _, ok := c["email"]; ok != tt.wantEmail {
					t.Errorf("%s has email: %v; want %v", name, ok, tt.wantEmail)
				}
				if _, ok := c["name"]; ok != tt.wantName {
					t.Errorf("%s has name: %v; want %v", name, ok, tt.wantName)
				}
			}
		})
	}
}

// TestUnverifiedEmailAndNoGroups checks the claims are present with their
// "empty" values rather than missing.
func TestUnverifiedEmailAndNoGroups(t *testing.T) {
	s := sharedIdP(t)
	p := discover(t, s)
	cfg := oauthConfig(p, webClientID, webClientSecret, webRedirectURI, oauth2.AuthStyleInHeader, "openid", "email", "groups")
	tok, _ := codeFlow(t, s, cfg, "carol", "carol")
	rawID, _ := tok.Extra("id_token").(string)
	idTok, err := p.Verifier(&oidc.Config{ClientID: webClientID}).Verify(clientCtx(t), rawID)
	if err != nil {
		t.Fatal(err)
	}
	c := claimsOf(t, idTok)
	if v, ok := c["email_verified"]; !ok || v != false {
		t.Errorf("email_verified = %v (present %v); want false, present", v, ok)
	}
	if g, ok := c["groups"].([]any); !ok || len(g) != 0 {
		t.Errorf("groups = %#v; want an empty list", c["groups"])
	}
}

func TestWrongPasswordRerendersForm(t *testing.T) {
	s := sharedIdP(t)
	p := discover(t, s)
	cfg := oauthConfig(p, webClientID, webClientSecret, webRedirectURI, oauth2.AuthStyleInHeader, "openid")
	b := newBrowser(t, s)
	verifier := oauth2.GenerateVerifier()
	login := openLogin(t, b, cfg.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier)))
	form := parseLoginForm(t, login)

	for _, creds := range [][2]string{{"alice", "wrong"}, {"nobody", "alice"}, {"", ""}} {
		again := readPage(t, form.submit(t, b, creds[0], creds[1]))
		if again.status != http.StatusOK && again.status != http.StatusUnauthorized {
			t.Fatalf("wrong credentials %q: status %d; want 200 or 401 with the form again", creds, again.status)
		}
		if m := errorRE.FindStringSubmatch(again.body); m == nil || !strings.Contains(m[1], "Wrong username or password") {
			t.Errorf("wrong credentials %q: page has no error message:\n%s", creds, again.body)
		}
		if got := parseLoginForm(t, again); got.hidden.Get("auth_request_id") != form.hidden.Get("auth_request_id") {
			t.Errorf("re-rendered form carries auth_request_id %q; want %q", got.hidden.Get("auth_request_id"), form.hidden.Get("auth_request_id"))
		}
	}
	back := rpRedirect(t, form.submit(t, b, "alice", "alice"))
	if back.Query().Get("code") == "" || back.Query().Get("state") != "st" {
		t.Errorf("after the right password: redirected to %s; want code and state=st", back)
	}
}

func TestPKCE(t *testing.T) {
	s := sharedIdP(t)
	p := discover(t, s)
	native := oauthConfig(p, nativeClientID, "", "http://127.0.0.1:8765/callback", oauth2.AuthStyleInParams, "openid")

	t.Run("public client without PKCE is refused at authorize", func(t *testing.T) {
		for name, opts := range map[string][]oauth2.AuthCodeOption{
			"no challenge":    nil,
			"plain challenge": {oauth2.SetAuthURLParam("code_challenge", strings.Repeat("a", 43)), oauth2.SetAuthURLParam("code_challenge_method", "plain")},
		} {
			resp := get(t, newBrowser(t, s), native.AuthCodeURL("st", opts...))
			back := rpRedirect(t, resp)
			if back.Query().Get("error") != "invalid_request" || back.Query().Get("code") != "" || back.Query().Get("state") != "st" {
				t.Errorf("%s: redirected to %s; want error=invalid_request, state=st and no code", name, back)
			}
		}
	})

	t.Run("code exchange needs the right verifier", func(t *testing.T) {
		verifier := oauth2.GenerateVerifier()
		authURL := native.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier))
		for _, tt := range []struct {
			name     string
			verifier string // empty: none sent
			want     string
		}{
			{"missing verifier", "", "invalid_request"},
			{"wrong verifier", oauth2.GenerateVerifier(), "invalid_grant"},
		} {
			back := login(t, newBrowser(t, s), authURL, "alice", "alice")
			var opts []oauth2.AuthCodeOption
			if tt.verifier != "" {
				opts = append(opts, oauth2.VerifierOption(tt.verifier))
			}
			_, err := native.Exchange(clientCtx(t), back.Query().Get("code"), opts...)
			if got := retrieveErrorCode(err); got != tt.want {
				t.Errorf("%s: got error %v; want %s", tt.name, err, tt.want)
			}
		}
	})
}

func TestTokenEndpointRefusals(t *testing.T) {
	s := sharedIdP(t)
	p := discover(t, s)
	good := oauthConfig(p, webClientID, webClientSecret, webRedirectURI, oauth2.AuthStyleInHeader, "openid")

	issueCode := func(t *testing.T) (code, verifier string) {
		verifier = oauth2.GenerateVerifier()
		back := login(t, newBrowser(t, s), good.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier)), "alice", "alice")
		return back.Query().Get("code"), verifier
	}

	t.Run("wrong client secret", func(t *testing.T) {
		for _, style := range []oauth2.AuthStyle{oauth2.AuthStyleInHeader, oauth2.AuthStyleInParams} {
			code, verifier := issueCode(t)
			bad := oauthConfig(p, webClientID, "not-the-secret", webRedirectURI, style, "openid")
			_, err := bad.Exchange(clientCtx(t), code, oauth2.VerifierOption(verifier))
			if got := retrieveErrorCode(err); got != "invalid_client" {
				t.Errorf("auth style %d: got %v; want invalid_client", style, err)
			}
		}
	})
	t.Run("code works once", func(t *testing.T) {
		code, verifier := issueCode(t)
		if _, err := good.Exchange(clientCtx(t), code, oauth2.VerifierOption(verifier)); err != nil {
			t.Fatalf("first exchange: %v", err)
		}
		if _, err := good.Exchange(clientCtx(t), code, oauth2.VerifierOption(verifier)); retrieveErrorCode(err) != "invalid_grant" {
			t.Errorf("second exchange: got %v; want invalid_grant", err)
		}
	})
	t.Run("unregistered redirect_uri is not redirected to", func(t *testing.T) {
		evil := oauthConfig(p, webClientID, webClientSecret, "http://127.0.0.1:1/evil", oauth2.AuthStyleInHeader, "openid")
		pg := readPage(t, get(t, newBrowser(t, s), evil.AuthCodeURL("st", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))))
		if pg.status != http.StatusBadRequest || pg.url.Host != strings.TrimPrefix(s.URL, "http://") {
			t.Errorf("got status %d at %s; want 400 from the provider", pg.status, pg.url)
		}
	})
	t.Run("prompt=none needs a session the provider does not keep", func(t *testing.T) {
		back := rpRedirect(t, get(t, newBrowser(t, s), good.AuthCodeURL("st", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("prompt", "none"))))
		if back.Query().Get("error") != "login_required" {
			t.Errorf("redirected to %s; want error=login_required", back)
		}
	})
}

func TestEndSessionAndBackchannelLogout(t *testing.T) {
	received := make(chan string, 4)
	rp := newBackchannelReceiver(t, received)
	s := startIdP(t, func(c *Config) { c.Clients[0].BackchannelLogoutURI = rp + "/backchannel" })
	p := discover(t, s)
	cfg := oauthConfig(p, webClientID, webClientSecret, webRedirectURI, oauth2.AuthStyleInHeader, "openid", "offline_access")
	tok, _ := codeFlow(t, s, cfg, "alice", "alice")
	rawID, _ := tok.Extra("id_token").(string)
	idTok, err := p.Verifier(&oidc.Config{ClientID: webClientID}).Verify(clientCtx(t), rawID)
	if err != nil {
		t.Fatal(err)
	}
	sid, _ := claimsOf(t, idTok)["sid"].(string)

	b := newBrowser(t, s)
	t.Run("unregistered post_logout_redirect_uri", func(t *testing.T) {
		q := url.Values{"id_token_hint": {rawID}, "post_logout_redirect_uri": {"http://127.0.0.1:1/elsewhere"}}
		pg := readPage(t, get(t, b, s.URL+"/end_session?"+q.Encode()))
		if pg.status != http.StatusBadRequest {
			t.Errorf("status %d; want 400", pg.status)
		}
	})

	q := url.Values{"id_token_hint": {rawID}, "post_logout_redirect_uri": {webPostLogout}, "state": {"bye"}}
	back := rpRedirect(t, get(t, b, s.URL+"/end_session?"+q.Encode()))
	if got := back.Scheme + "://" + back.Host + back.Path; got != webPostLogout || back.Query().Get("state") != "bye" {
		t.Errorf("end_session redirected to %s; want %s?state=bye", back, webPostLogout)
	}

	select {
	case raw := <-received:
		lt, err := p.Verifier(&oidc.Config{ClientID: webClientID}).VerifyLogout(clientCtx(t), raw)
		if err != nil {
			t.Fatalf("verifying the delivered logout token: %v", err)
		}
		if lt.SessionID != sid || lt.Subject != idTok.Subject {
			t.Errorf("logout token sid/sub = %q/%q; want %q/%q", lt.SessionID, lt.Subject, sid, idTok.Subject)
		}
	default:
		t.Fatal("no back-channel logout token was delivered before the redirect")
	}

	_, err = cfg.TokenSource(clientCtx(t), &oauth2.Token{RefreshToken: tok.RefreshToken, Expiry: time.Now().Add(-time.Minute)}).Token()
	if retrieveErrorCode(err) != "invalid_grant" {
		t.Errorf("refresh after logout: got %v; want invalid_grant", err)
	}

	t.Run("without a post_logout_redirect_uri", func(t *testing.T) {
		pg := readPage(t, get(t, b, s.URL+"/end_session"))
		if pg.status != http.StatusOK || pg.url.Path != "/logged-out" || !strings.Contains(pg.body, "signed out") {
			t.Errorf("got status %d at %s; want the signed-out page", pg.status, pg.url)
		}
	})
}

func TestSignOutUserAndRevokeAll(t *testing.T) {
	received := make(chan string, 4)
	rp := newBackchannelReceiver(t, received)
	s := startIdP(t, func(c *Config) { c.Clients[0].BackchannelLogoutURI = rp + "/backchannel" })
	p := discover(t, s)
	cfg := oauthConfig(p, webClientID, webClientSecret, webRedirectURI, oauth2.AuthStyleInHeader, "openid", "offline_access")
	refreshFails := func(t *testing.T, rt string) {
		t.Helper()
		_, err := cfg.TokenSource(clientCtx(t), &oauth2.Token{RefreshToken: rt, Expiry: time.Now().Add(-time.Minute)}).Token()
		if retrieveErrorCode(err) != "invalid_grant" {
			t.Errorf("refresh: got %v; want invalid_grant", err)
		}
	}

	aliceTok, _ := codeFlow(t, s, cfg, "alice", "alice")
	bobTok, _ := codeFlow(t, s, cfg, "bob", "bob")
	if err := s.SignOutUser(t.Context(), "alice"); err != nil {
		t.Fatalf("SignOutUser: %v", err)
	}
	if len(received) != 1 {
		t.Errorf("%d logout tokens delivered; want 1", len(received))
	}
	refreshFails(t, aliceTok.RefreshToken)
	bobTok, err := cfg.TokenSource(clientCtx(t), &oauth2.Token{RefreshToken: bobTok.RefreshToken, Expiry: time.Now().Add(-time.Minute)}).Token()
	if err != nil {
		t.Fatalf("bob's refresh after alice signed out: %v", err)
	}
	if err := s.SignOutUser(t.Context(), "mallory"); err == nil {
		t.Errorf("SignOutUser(unknown): got nil; want an error")
	}

	s.RevokeAll()
	refreshFails(t, bobTok.RefreshToken)
	if _, err := p.UserInfo(clientCtx(t), oauth2.StaticTokenSource(bobTok)); err == nil {
		t.Errorf("userinfo after RevokeAll: got nil error; want the token refused")
	}
}

// TestLogoutToken checks the helper's tokens pass go-oidc's logout verifier.
func TestLogoutToken(t *testing.T) {
	s := sharedIdP(t)
	p := discover(t, s)
	raw, err := s.LogoutToken(webClientID, "sub-1", "sid-1")
	if err != nil {
		t.Fatal(err)
	}
	lt, err := p.Verifier(&oidc.Config{ClientID: webClientID}).VerifyLogout(clientCtx(t), raw)
	if err != nil {
		t.Fatalf("VerifyLogout: %v", err)
	}
	if lt.Subject != "sub-1" || lt.SessionID != "sid-1" || lt.TokenID == "" {
		t.Errorf("sub/sid/jti = %q/%q/%q; want sub-1/sid-1/non-empty", lt.Subject, lt.SessionID, lt.TokenID)
	}
	if _, err := p.Verifier(&oidc.Config{ClientID: "other"}).VerifyLogout(clientCtx(t), raw); err == nil {
		t.Errorf("logout token verified for another client; want an error")
	}
	if _, err := s.LogoutToken(webClientID, "", ""); err == nil {
		t.Errorf("LogoutToken without sub and sid: got nil; want an error")
	}
}

func TestRevocationAndIntrospection(t *testing.T) {
	s := sharedIdP(t)
	p := discover(t, s)
	cfg := oauthConfig(p, webClientID, webClientSecret, webRedirectURI, oauth2.AuthStyleInHeader, "openid", "profile", "offline_access")
	tok, _ := codeFlow(t, s, cfg, "alice", "alice")

	introspect := func(t *testing.T, token string) map[string]any {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, s.URL+"/oauth/introspect", strings.NewReader(url.Values{"token": {token}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(webClientID, webClientSecret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
			t.Fatalf("introspection status %d: %v", resp.StatusCode, err)
		}
		return m
	}
	revoke := func(t *testing.T, token, hint string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, s.URL+"/revoke", strings.NewReader(url.Values{"token": {token}, "token_type_hint": {hint}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(webClientID, webClientSecret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("revoke: status %d; want 200", resp.StatusCode)
		}
	}

	if m := introspect(t, tok.AccessToken); m["active"] != true || m["sub"] != DemoUsers()[0].ID || m["client_id"] != webClientID {
		t.Errorf("introspection = %v; want active for alice and %s", m, webClientID)
	}
	revoke(t, tok.AccessToken, "access_token")
	if m := introspect(t, tok.AccessToken); m["active"] != false {
		t.Errorf("introspection after revocation = %v; want inactive", m)
	}
	revoke(t, tok.RefreshToken, "refresh_token")
	_, err := cfg.TokenSource(clientCtx(t), &oauth2.Token{RefreshToken: tok.RefreshToken, Expiry: time.Now().Add(-time.Minute)}).Token()
	if retrieveErrorCode(err) != "invalid_grant" {
		t.Errorf("refresh after revocation: got %v; want invalid_grant", err)
	}
}

func TestDeviceFlow(t *testing.T) {
	s := sharedIdP(t)
	p := discover(t, s)
	cfg := oauthConfig(p, nativeClientID, "", "", oauth2.AuthStyleInParams, "openid", "profile", "bogus-scope")
	da, err := cfg.DeviceAuth(clientCtx(t))
	if err != nil {
		t.Fatalf("device authorization: %v", err)
	}
	if da.VerificationURI != s.URL+"/device" || !strings.Contains(da.VerificationURIComplete, "user_code=") {
		t.Errorf("verification URIs = %q, %q; want %s/device and a complete one", da.VerificationURI, da.VerificationURIComplete, s.URL)
	}

	b := newBrowser(t, s)
	pg := readPage(t, get(t, b, da.VerificationURIComplete))
	if pg.status != http.StatusOK || !strings.Contains(pg.body, `value="`+da.UserCode+`"`) {
		t.Fatalf("device page status %d; want 200 with the user code filled in:\n%s", pg.status, pg.body)
	}
	post := func(code, username, password, action string) page {
		resp, err := b.PostForm(s.URL+"/device", url.Values{"user_code": {code}, "username": {username}, "password": {password}, "action": {action}})
		if err != nil {
			t.Fatal(err)
		}
		return readPage(t, resp)
	}
	if got := post(da.UserCode, "bob", "nope", "allow"); !strings.Contains(got.body, "Wrong username or password") {
		t.Errorf("wrong password on the device page: status %d, no error shown", got.status)
	}
	// Typed in lower case without the dash, as people do.
	typed := strings.ToLower(strings.ReplaceAll(da.UserCode, "-", ""))
	if got := post(typed, "bob", "bob", "allow"); got.status != http.StatusOK || !strings.Contains(got.body, "Device connected") {
		t.Fatalf("approving: status %d:\n%s", got.status, got.body)
	}

	tok, err := cfg.DeviceAccessToken(clientCtx(t), da)
	if err != nil {
		t.Fatalf("device access token: %v", err)
	}
	atTok, err := p.Verifier(&oidc.Config{ClientID: nativeClientID}).Verify(clientCtx(t), tok.AccessToken)
	if err != nil {
		t.Fatalf("verifying access token: %v", err)
	}
	at := claimsOf(t, atTok)
	if at["sub"] != DemoUsers()[1].ID || at["scope"] != "openid profile" {
		t.Errorf("access token sub/scope = %v/%v; want %s/\"openid profile\"", at["sub"], at["scope"], DemoUsers()[1].ID)
	}
	rawID, _ := tok.Extra("id_token").(string)
	if _, err := p.Verifier(&oidc.Config{ClientID: nativeClientID}).Verify(clientCtx(t), rawID); err != nil {
		t.Errorf("verifying ID token: %v", err)
	}
	// The device code is spent: polling again is refused at once.
	resp, err := http.PostForm(s.URL+"/oauth/token", url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"},
		"device_code": {da.DeviceCode}, "client_id": {nativeClientID}})
	if err != nil {
		t.Fatal(err)
	}
	var oerr struct{ Error string }
	json.NewDecoder(resp.Body).Decode(&oerr)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || oerr.Error != "access_denied" {
		t.Errorf("polling with a used device code: status %d, error %q; want 400 access_denied", resp.StatusCode, oerr.Error)
	}
}

// newBackchannelReceiver is a relying party's back-channel logout endpoint
// that hands each logout_token to received.
func newBackchannelReceiver(t *testing.T, received chan<- string) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /backchannel", func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil || r.PostForm.Get("logout_token") == "" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		received <- r.PostForm.Get("logout_token")
		w.WriteHeader(http.StatusOK)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

func stringsOf(v any) []string {
	list, ok := v.([]any)
	if !ok {
		return nil
	}
	out := make([]string, 0, len(list))
	for _, x := range list {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

// TestGroupsInUserinfoOnly: such a user's ID token carries no groups claim,
// and userinfo (with the access token) does, as Okta's org server answers.
func TestGroupsInUserinfoOnly(t *testing.T) {
	cfg := testConfig()
	cfg.Users = append(cfg.Users, User{Username: "olga", Password: "olga", Email: "olga@example.com", EmailVerified: true,
		Groups: []string{"ops"}, GroupsInUserinfoOnly: true})
	s, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	p := discover(t, s)
	oc := oauthConfig(p, webClientID, webClientSecret, webRedirectURI, oauth2.AuthStyleInHeader, "openid", "email", "groups")
	tok, _ := codeFlow(t, s, oc, "olga", "olga")
	rawID, _ := tok.Extra("id_token").(string)
	idTok, err := p.Verifier(&oidc.Config{ClientID: webClientID}).Verify(clientCtx(t), rawID)
	if err != nil {
		t.Fatal(err)
	}
	if g, ok := claimsOf(t, idTok)["groups"]; ok {
		t.Errorf("ID token groups = %v; want no groups claim", g)
	}
	ui, err := p.UserInfo(clientCtx(t), oauth2.StaticTokenSource(tok))
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Groups []string `json:"groups"`
	}
	if err := ui.Claims(&c); err != nil || len(c.Groups) != 1 || c.Groups[0] != "ops" {
		t.Errorf("userinfo groups = %v, %v; want [ops]", c.Groups, err)
	}
}
