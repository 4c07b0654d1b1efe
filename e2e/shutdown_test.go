package e2e

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
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

// TestShutdownDrains: cancelling Run (what SIGTERM does) closes the
// listener at once, lets an in-flight request finish, and only then
// returns.
func TestShutdownDrains(t *testing.T) {
	up := e2etest.NewUpstream(t)
	ln := &closeNotifier{Listener: e2etest.Listen(t), closed: make(chan struct{})}
	addr := ln.Addr().String()
	vars := map[string]string{
		"GATEHOUSE_PUBLIC_URL": "http://" + addr, "GATEHOUSE_METRICS_LISTEN": "127.0.0.1:0",
		"GATEHOUSE_OIDC_ISSUER": e2etest.DeadURL(t), "GATEHOUSE_OIDC_CLIENT_ID": "x", "GATEHOUSE_OIDC_CLIENT_SECRET": "y",
		"GATEHOUSE_COOKIE_SECRETS": e2etest.CookieSecret, "GATEHOUSE_COOKIE_SECURE": "false", "GATEHOUSE_UPSTREAM": up.URL,
		"GATEHOUSE_SERVER_SHUTDOWN_TIMEOUT": "1m",
	}
	a := e2etest.NewApp(t, vars, []config.Route{{Name: "hold", PathPrefix: "/", Upstream: up.URL, Public: true}}, ln)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()

	result := make(chan string, 1)
	go func() {
		c := &http.Client{Timeout: time.Minute}
		resp, err := c.Get("http://" + addr + "/hold")
		if err != nil {
			result <- "error: " + err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		result <- resp.Status + " " + string(b)
	}()
	up.WaitHeld(t) // the request is in flight, held by the upstream
	cancel()       // SIGTERM
	select {
	case <-ln.closed:
	case err := <-done:
		t.Fatalf("Run returned %v with a request in flight", err)
	}
	if c, err := net.DialTimeout("tcp", addr, 5*time.Second); err == nil {
		c.Close()
		t.Error("still accepting new connections after shutdown began")
	}
	select {
	case err := <-done:
		t.Fatalf("Run returned %v before the in-flight request finished", err)
	case got := <-result:
		t.Fatalf("the in-flight request ended with %q before the upstream answered", got)
	default:
	}
	up.Release()
	if got := <-result; got != "200 OK upstream GET /hold" {
		t.Errorf("in-flight request got %q; want it completed", got)
	}
	if err := <-done; err != nil {
		t.Errorf("Run returned %v", err)
	}
}

// closeNotifier is a listener that closes closed when it is closed: the
// event that shutdown has stopped accepting.
type closeNotifier struct {
	net.Listener
	once   sync.Once
	closed chan struct{}
}

func (l *closeNotifier) Close() error {
	err := l.Listener.Close()
	l.once.Do(func() { close(l.closed) })
	return err
}
