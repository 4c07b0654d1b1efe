package main

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/e2etest"
	"github.com/gatehouse/gatehouse/tokenmint"
)

// TestDevstackSignsInToDjango stands in for Django with a server that
// verifies the token the way the DRF class does (issuer, audience "django",
// JWKS), signs in as the demo user alice, and checks the upstream got her.
func TestDevstackSignsInToDjango(t *testing.T) {
	var mu sync.Mutex
	var gotToken string
	django := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		gotToken = strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		mu.Unlock()
		io.WriteString(w, "django page")
	}))
	defer django.Close()

	ctx, cancel := context.WithCancel(context.Background())
	urls := make(chan string, 1)
	done := make(chan error, 1)
	var out e2etest.SyncBuffer
	go func() {
		done <- run(ctx, []string{"--listen", "127.0.0.1:0", "--django", django.URL}, &out, func(u string) { urls <- u })
	}()
	var gatehouse string
	select {
	case gatehouse = <-urls:
	case err := <-done:
		t.Fatalf("devstack exited: %v\n%s", err, out.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("devstack never became ready:\n%s", out.String())
	}
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("devstack returned %v on shutdown", err)
		}
	}()
	if !strings.Contains(out.String(), "DJANGO_GATEHOUSE_ISSUER="+gatehouse) {
		t.Errorf("the banner does not tell Django the issuer:\n%s", out.String())
	}

	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	req, _ := http.NewRequest("GET", gatehouse+"/", nil)
	req.Header.Set("Accept", "text/html") // a browser navigation: redirected to sign in
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	m := e2etest.AuthRequestID.FindStringSubmatch(e2etest.ReadBody(t, resp))
	if m == nil {
		t.Fatalf("GET / ended at %s, not at the provider's login form", resp.Request.URL)
	}
	loginURL := *resp.Request.URL
	loginURL.Path, loginURL.RawQuery = "/login", ""
	resp, err = c.PostForm(loginURL.String(), url.Values{"auth_request_id": {m[1]}, "username": {"alice"}, "password": {"alice"}})
	if err != nil {
		t.Fatal(err)
	}
	if body := e2etest.ReadBody(t, resp); resp.StatusCode != 200 || body != "django page" {
		t.Fatalf("after signing in: %d %q at %s; want Django's page", resp.StatusCode, body, resp.Request.URL)
	}
	v, err := tokenmint.NewVerifier(tokenmint.VerifierConfig{Issuer: gatehouse, Audience: "django", JWKSURL: gatehouse + "/oauth2/jwks.json"})
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	tok := gotToken
	mu.Unlock()
	claims, err := v.Verify(context.Background(), tok)
	if err != nil {
		t.Fatalf("Django's token does not verify for audience django: %v", err)
	}
	if claims.PreferredUsername != "alice" {
		t.Errorf("token for %q; want alice", claims.PreferredUsername)
	}
}

func TestDevstackRefusesNonLoopback(t *testing.T) {
	for _, args := range [][]string{
		{"--listen", "0.0.0.0:4180"},
		{"--listen", "127.0.0.1:0", "--django", "ftp://127.0.0.1"},
	} {
		if err := run(context.Background(), args, io.Discard, nil); err == nil {
			t.Errorf("run(%q) = nil; want an error", args)
		}
	}
}
