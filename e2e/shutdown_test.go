package e2e

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/e2etest"

	"github.com/gatehouse/gatehouse/config"
)

// TestLogsNeverLeakSecrets runs a login, proxied requests, bad input and a
// sign-out with access logs at debug level, then searches the logs for every
// secret involved.
func TestLogsNeverLeakSecrets(t *testing.T) {
	logs := &e2etest.SyncBuffer{}
	e := e2etest.Start(t, e2etest.Options{Store: "redis", Logs: logs, Env: map[string]string{"GATEHOUSE_LOG_ACCESS_LOG": "true"}})
	c := e.Browser()
	e.Login(c, "/secret-page?token=abc", "alice", "alice-pw")
	ck := e.SessionCookie(c, "gatehouse")
	minted := strings.TrimPrefix(e.Up.LastRequest().Header.Get("Authorization"), "Bearer ")
	req, _ := http.NewRequest("GET", e.URL+"/x", nil)
	req.Header.Set("Cookie", "gatehouse="+ck.Value[:len(ck.Value)-3]+"AAA")
	e.Do(req).Body.Close()
	resp, _ := c.Get(e.URL + "/oauth2/sign_out")
	e2etest.ReadBody(t, resp)

	out := logs.String()
	if !strings.Contains(out, `"msg":"login"`) || !strings.Contains(out, `"msg":"request"`) {
		t.Fatalf("expected login and access log lines, got:\n%.2000s", out)
	}
	for name, secret := range map[string]string{
		"session cookie": ck.Value,
		"minted token":   minted,
		"client secret":  e2etest.ClientSecret,
		"cookie secret":  e2etest.CookieSecret,
		"query string":   "token=abc",
		"any JWT":        "eyJ",
	} {
		if secret != "" && strings.Contains(out, secret) {
			t.Errorf("logs contain the %s", name)
		}
	}
}

// TestShutdownDrains: cancelling Run (what SIGTERM does) lets an in-flight
// request finish before the process exits.
func TestShutdownDrains(t *testing.T) {
	up := e2etest.NewUpstream(t)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	vars := map[string]string{
		"GATEHOUSE_PUBLIC_URL": "http://" + addr, "GATEHOUSE_METRICS_LISTEN": "127.0.0.1:0",
		"GATEHOUSE_OIDC_ISSUER": "http://127.0.0.1:1", "GATEHOUSE_OIDC_CLIENT_ID": "x", "GATEHOUSE_OIDC_CLIENT_SECRET": "y",
		"GATEHOUSE_COOKIE_SECRETS": e2etest.CookieSecret, "GATEHOUSE_COOKIE_SECURE": "false", "GATEHOUSE_UPSTREAM": up.URL,
		"GATEHOUSE_SERVER_SHUTDOWN_TIMEOUT": "10s",
	}
	a := e2etest.NewApp(t, vars, []config.Route{{Name: "hold", PathPrefix: "/", Upstream: up.URL, Public: true}}, ln)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()

	result := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + addr + "/hold")
		if err != nil {
			result <- "error: " + err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		result <- resp.Status + " " + string(b)
	}()
	for up.Count() == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	cancel() // SIGTERM
	time.Sleep(100 * time.Millisecond)
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Error("still accepting new connections after shutdown began")
	}
	up.Release()
	if got := <-result; got != "200 OK upstream GET /hold" {
		t.Errorf("in-flight request got %q; want it completed", got)
	}
	if err := <-done; err != nil {
		t.Errorf("Run returned %v", err)
	}
}
