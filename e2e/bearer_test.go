package e2e

import (
	"context"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/internal/e2etest"
	"github.com/gatehouse/gatehouse/tokenmint"
)

// TestNativeClientBearer: a native app's access token from the provider is
// verified and re-minted, so the upstream sees the same kind of identity as
// for a browser session, and never the client's own token.
func TestNativeClientBearer(t *testing.T) {
	e := e2etest.Start(t, e2etest.Options{Env: map[string]string{"GATEHOUSE_API_ACCEPTED_AUDIENCES": e2etest.NativeClientID}})
	tok := e.NativeLogin("alice", "alice-pw")

	call := func(auth string, cookie *http.Cookie, origin string) (*http.Response, int) {
		before := e.Up.Count()
		req, _ := http.NewRequest("POST", e.URL+"/api/items", strings.NewReader("{}"))
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		if cookie != nil {
			req.AddCookie(cookie)
		}
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp := e.Do(req)
		resp.Body.Close()
		return resp, e.Up.Count() - before
	}

	// Valid token; a cross-origin Origin does not matter for bearer calls.
	resp, hits := call("Bearer "+tok.AccessToken, nil, "https://other.example")
	if resp.StatusCode != 200 || hits != 1 {
		t.Fatalf("valid bearer got %d with %d upstream calls", resp.StatusCode, hits)
	}
	got := e.Up.LastRequest()
	minted := strings.TrimPrefix(got.Header.Get("Authorization"), "Bearer ")
	if minted == tok.AccessToken {
		t.Fatal("the client's own token reached the upstream")
	}
	host := strings.TrimPrefix(e.URL, "http://")
	v, _ := tokenmint.NewVerifier(tokenmint.VerifierConfig{Issuer: e.URL, Audience: host, JWKSURL: e.URL + "/oauth2/jwks.json"})
	claims, err := v.Verify(context.Background(), minted)
	if err != nil {
		t.Fatalf("minted token does not verify: %v", err)
	}
	if claims.Subject != "u-alice" || claims.Email != "alice@example.com" || claims.ClientID != e2etest.NativeClientID ||
		got.Header.Get("X-Auth-Request-User") != "u-alice" {
		t.Errorf("claims %+v, user header %q; want alice via native-app", claims, got.Header.Get("X-Auth-Request-User"))
	}

	// A browser session of bob alongside an invalid bearer: no fallback.
	bob := e.Browser()
	e.Login(bob, "/", "bob", "bob-pw")
	bobCookie := e.SessionCookie(bob, "gatehouse")

	idToken, _ := tok.Extra("id_token").(string)
	logoutToken, err := e.IDP.LogoutToken(e2etest.NativeClientID, "u-alice", "sid-1")
	if err != nil {
		t.Fatal(err)
	}
	browserTok := e.NativeLogin("alice", "alice-pw") // still valid, used for tampering below
	parts := strings.Split(browserTok.AccessToken, ".")
	noneTok := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + "."
	tampered := parts[0] + "." + parts[1][:len(parts[1])-4] + "AAAA." + parts[2]

	bad := map[string]string{
		"garbage":          "Bearer not-a-token",
		"empty":            "Bearer ",
		"tampered payload": "Bearer " + tampered,
		"alg none":         "Bearer " + noneTok,
		"ID token":         "Bearer " + idToken,
		"logout token":     "Bearer " + logoutToken,
		"our minted token": "Bearer " + minted,
		"lowercase scheme": "bearer " + tampered,
	}
	for name, auth := range bad {
		t.Run(name, func(t *testing.T) {
			resp, hits := call(auth, bobCookie, "")
			if resp.StatusCode != 401 || hits != 0 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
				t.Errorf("got %d (%q) with %d upstream calls; want 401 invalid_token, none", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), hits)
			}
		})
	}

	// A token for another audience (the confidential web client) is refused.
	t.Run("wrong audience", func(t *testing.T) {
		other := e2etest.Start(t, e2etest.Options{Env: map[string]string{"GATEHOUSE_API_ACCEPTED_AUDIENCES": "some-other-api"}})
		tok := other.NativeLogin("alice", "alice-pw")
		req, _ := http.NewRequest("GET", other.URL+"/api/items", nil)
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		resp := other.Do(req)
		resp.Body.Close()
		if resp.StatusCode != 401 || other.Up.Count() != 0 {
			t.Errorf("got %d; want 401", resp.StatusCode)
		}
	})
}

// TestBearerRefusedWhenNotConfigured: without api.accepted_audiences a
// bearer token is not an identity: the request is judged by its cookie.
func TestBearerRefusedWhenNotConfigured(t *testing.T) {
	e := e2etest.Start(t, e2etest.Options{})
	tok := e.NativeLogin("alice", "alice-pw")
	req, _ := http.NewRequest("GET", e.URL+"/api/items", nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	req.Header.Set("Accept", "application/json")
	resp := e.Do(req)
	resp.Body.Close()
	if resp.StatusCode != 401 || e.Up.Count() != 0 {
		t.Errorf("got %d with %d upstream calls; want 401, none", resp.StatusCode, e.Up.Count())
	}
}
