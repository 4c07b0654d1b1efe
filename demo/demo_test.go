package demo

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/e2etest"
)

// TestDemo runs `gatehouse demo` as a newcomer would and signs in as alice:
// the echo upstream must report a token that verified against the JWKS.
func TestDemo(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	out := &e2etest.SyncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{Listen: "127.0.0.1:0", Out: out, Ready: func(u string) { ready <- u }})
	}()
	var base string
	select {
	case base = <-ready:
	case err := <-done:
		t.Fatalf("demo exited early: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("demo did not start")
	}
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("demo exited with %v", err)
		}
	}()
	if !strings.Contains(out.String(), "alice / alice") || !strings.Contains(out.String(), base) {
		t.Errorf("demo banner lacks the URL or the credentials:\n%s", out.String())
	}

	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	req, _ := http.NewRequest("GET", base+"/hello", nil)
	req.Header.Set("Accept", "text/html")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`name="auth_request_id" value="([^"]+)"`).FindSubmatch(body)
	if m == nil {
		t.Fatalf("no login form at %s", resp.Request.URL)
	}
	idp := resp.Request.URL.Scheme + "://" + resp.Request.URL.Host
	form := url.Values{"auth_request_id": {string(m[1])}, "username": {"alice"}, "password": {"alice"}}
	req, _ = http.NewRequest("POST", idp+"/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var rec Received
	if err := json.NewDecoder(resp.Body).Decode(&rec); err != nil {
		t.Fatalf("echo answer at %s: %v", resp.Request.URL, err)
	}
	if !rec.Verified || rec.Path != "/hello" || rec.Claims["email"] != "alice@example.com" || rec.Headers["X-Auth-Request-User"] == "" {
		t.Errorf("echo saw %+v; want a verified token for alice at /hello", rec)
	}
	if _, ok := rec.Headers["Cookie"]; ok {
		t.Errorf("the upstream received a cookie: %q", rec.Headers["Cookie"])
	}
}

func TestDemoRefusesNonLoopback(t *testing.T) {
	if err := Run(context.Background(), Options{Listen: "0.0.0.0:0", Out: io.Discard}); err == nil {
		t.Fatal("demo accepted a non-loopback listen address")
	}
}
