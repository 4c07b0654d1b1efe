package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"github.com/gatehouse/gatehouse/internal/e2etest"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/config"
	"github.com/gatehouse/gatehouse/internal/testredis"
)

func TestUnauthenticatedAPIGets401JSON(t *testing.T) {
	e := e2etest.Start(t, e2etest.Options{})
	for _, h := range []map[string]string{
		{"Accept": "application/json"},
		{"Accept": "text/html", "Sec-Fetch-Mode": "cors"},
		{"X-Requested-With": "XMLHttpRequest", "Accept": "*/*"},
	} {
		req, _ := http.NewRequest("GET", e.URL+"/api/items", nil)
		for k, v := range h {
			req.Header.Set(k, v)
		}
		resp := e.Do(req)
		var body map[string]string
		json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") || body["error"] != "unauthorized" {
			t.Errorf("%v: got %d %v %q; want 401 JSON with WWW-Authenticate", h, resp.StatusCode, body, resp.Header.Get("WWW-Authenticate"))
		}
	}
	if e.Up.Count() != 0 {
		t.Errorf("upstream called %d times", e.Up.Count())
	}
}

func TestRoutesPolicies(t *testing.T) {
	e := e2etest.Start(t, e2etest.Options{Routes: func(up string) []config.Route {
		return []config.Route{
			{Name: "public", PathPrefix: "/public/", Upstream: up, Public: true},
			{Name: "admin", PathPrefix: "/admin/", Upstream: up, Audience: "admin", AllowedGroups: []string{"admins"}},
			{Name: "app", PathPrefix: "/", Upstream: up, Audience: "app", Groups: []string{"developers"}},
		}
	}})
	// Public route: no login, and spoofed identity is still stripped.
	req, _ := http.NewRequest("GET", e.URL+"/public/page", nil)
	req.Header.Set("X-Auth-Request-User", "admin")
	resp := e.Do(req)
	resp.Body.Close()
	if resp.StatusCode != 200 || e.Up.LastRequest().Header.Get("X-Auth-Request-User") != "" {
		t.Fatalf("public route got %d, upstream saw user %q", resp.StatusCode, e.Up.LastRequest().Header.Get("X-Auth-Request-User"))
	}
	// A dotted or encoded path cannot reach the admin route through public.
	for _, p := range []string{"/public/../admin/x", "/public/%2e%2e/admin/x", "/public%2F..%2Fadmin/x"} {
		before := e.Up.Count()
		resp := e2etest.RawRequest(t, strings.TrimPrefix(e.URL, "http://"), "GET "+p+" HTTP/1.1\r\nHost: x\r\nAccept: application/json\r\nConnection: close\r\n\r\n")
		resp.Body.Close()
		if resp.StatusCode != 401 || e.Up.Count() != before {
			t.Errorf("GET %s got %d with %d upstream calls; want 401, none", p, resp.StatusCode, e.Up.Count()-before)
		}
	}

	bob := e.Browser()
	e.Login(bob, "/", "bob", "bob-pw")
	if g := e.Up.LastRequest().Header.Get("X-Auth-Request-Groups"); g != "developers" {
		t.Errorf("groups header %q; want only the route's developers", g)
	}
	resp, err := bob.Get(e.URL + "/admin/panel")
	if err != nil {
		t.Fatal(err)
	}
	e2etest.ReadBody(t, resp)
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("bob on /admin/ got %d; want 403", resp.StatusCode)
	}
	alice := e.Browser()
	resp, body := e.Login(alice, "/admin/panel", "alice", "alice-pw")
	if resp.StatusCode != 200 || body != "upstream GET /admin/panel" {
		t.Errorf("alice on /admin/ got %d %q", resp.StatusCode, body)
	}
}

func TestGlobalAuthorization(t *testing.T) {
	e := e2etest.Start(t, e2etest.Options{Env: map[string]string{"GATEHOUSE_AUTHORIZATION_EMAIL_DOMAINS": "example.com"}})
	c := e.Browser()
	resp, body := e.Login(c, "/", "eve", "eve-pw")
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "not allowed") {
		t.Errorf("eve got %d %.100q; want 403", resp.StatusCode, body)
	}
	assertNoSession(t, e, c)
}

func TestCrossOriginWritesRefused(t *testing.T) {
	e := e2etest.Start(t, e2etest.Options{})
	c := e.Browser()
	e.Login(c, "/", "alice", "alice-pw")
	ck := e.SessionCookie(c, "gatehouse")
	tests := []struct {
		name    string
		headers map[string]string
		want    int
	}{
		{"same origin", map[string]string{"Origin": e.URL}, 200},
		{"other origin", map[string]string{"Origin": "https://evil.example"}, 403},
		{"null origin", map[string]string{"Origin": "null"}, 403},
		{"cross-site fetch metadata", map[string]string{"Sec-Fetch-Site": "cross-site"}, 403},
		{"same-site is not same-origin", map[string]string{"Sec-Fetch-Site": "same-site"}, 403},
		{"same-origin fetch metadata", map[string]string{"Sec-Fetch-Site": "same-origin"}, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := e.Up.Count()
			req, _ := http.NewRequest("POST", e.URL+"/api/items", strings.NewReader("x=1"))
			req.AddCookie(ck)
			for k, v := range tt.headers {
				req.Header.Set(k, v)
			}
			resp := e.Do(req)
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Errorf("got %d; want %d", resp.StatusCode, tt.want)
			}
			if reached := e.Up.Count() - before; tt.want == 403 && reached != 0 {
				t.Error("refused request reached the upstream")
			} else if tt.want == 200 && (reached != 1 || e.Up.LastRequest().Method != "POST") {
				t.Errorf("allowed request reached the upstream %d times (last %s); want once, as a POST", reached, e.Up.LastRequest().Method)
			}
		})
	}
}

// TestUpstreamFailures: an upstream that is down gets a 502, one that
// never answers a 504 after upstream_transport.response_header_timeout,
// each with a short body.
func TestUpstreamFailures(t *testing.T) {
	deadURL := e2etest.DeadURL(t)
	e := e2etest.Start(t, e2etest.Options{
		Env: map[string]string{"GATEHOUSE_UPSTREAM_TRANSPORT_RESPONSE_HEADER_TIMEOUT": "300ms"},
		Routes: func(up string) []config.Route {
			return []config.Route{
				{Name: "dead", PathPrefix: "/dead/", Upstream: deadURL, Public: true},
				{Name: "app", PathPrefix: "/", Upstream: up, Public: true},
			}
		},
	})
	for path, want := range map[string]int{"/dead/x": 502, "/slow": 504} {
		req, _ := http.NewRequest("GET", e.URL+path, nil)
		req.Header.Set("Accept", "application/json")
		resp := e.Do(req)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want || len(b) > 200 || len(b) == 0 {
			t.Errorf("%s got %d %q; want %d with a short body", path, resp.StatusCode, b, want)
		}
	}
}

func TestStreamingAndWebSocket(t *testing.T) {
	e := e2etest.Start(t, e2etest.Options{})
	c := e.Browser()
	e.Login(c, "/", "alice", "alice-pw")
	ck := e.SessionCookie(c, "gatehouse")

	// SSE: the first event arrives while the upstream still holds the stream.
	req, _ := http.NewRequest("GET", e.URL+"/sse", nil)
	req.AddCookie(ck)
	req.Header.Set("Accept", "text/event-stream")
	resp := e.Do(req)
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	resp.Body.Close()
	if err != nil || line != "data: first\n" {
		t.Errorf("SSE first line %q, %v", line, err)
	}

	// WebSocket upgrade, byte for byte.
	addr := strings.TrimPrefix(e.URL, "http://")
	conn, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "GET /ws HTTP/1.1\r\nHost: %s\r\nCookie: gatehouse=%s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", addr, ck.Value)
	br := bufio.NewReader(conn)
	wsResp, err := http.ReadResponse(br, nil)
	if err != nil || wsResp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade got %v, %v; want 101", wsResp, err)
	}
	fmt.Fprint(conn, "hello\n")
	echo, err := br.ReadString('\n')
	if err != nil || echo != "echo:hello\n" {
		t.Errorf("websocket echo %q, %v", echo, err)
	}
	// Cross-site WebSocket hijacking: a handshake from another origin with
	// the user's cookie is refused.
	before := e.Up.Count()
	resp = e2etest.RawRequest(t, addr, fmt.Sprintf("GET /ws HTTP/1.1\r\nHost: %s\r\nCookie: gatehouse=%s\r\nOrigin: https://evil.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", addr, ck.Value))
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || e.Up.Count() != before {
		t.Errorf("cross-origin WebSocket got %d with %d upstream calls; want 403, none", resp.StatusCode, e.Up.Count()-before)
	}
}

// TestRedisOutage: Redis down means 503s and /readyz saying why; when Redis
// returns, the same Gatehouse serves again without a restart.
func TestRedisOutage(t *testing.T) {
	// Without the in-process cache, so the very next request needs Redis.
	e := e2etest.Start(t, e2etest.Options{Store: "redis", Env: map[string]string{"GATEHOUSE_SESSION_CACHE_TTL": "0s"}})
	c := e.Browser()
	e.Login(c, "/", "alice", "alice-pw")
	ck := e.SessionCookie(c, "gatehouse")
	get := func() int { return e.APIStatus("/x", ck) }
	e.Redis.Stop()
	if code := get(); code != http.StatusServiceUnavailable {
		t.Errorf("with Redis down got %d; want 503", code)
	}
	resp, err := http.Get(e.MetricsURL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body := e2etest.ReadBody(t, resp)
	if resp.StatusCode != 503 || !strings.Contains(body, "session_store") {
		t.Errorf("/readyz = %d %s; want 503 naming the session store", resp.StatusCode, body)
	}
	e.Redis.Restart(t)
	// The session was in the Redis that died (no persistence): log in again.
	c = e.Browser()
	resp2, b := e.Login(c, "/", "alice", "alice-pw")
	if resp2.StatusCode != 200 || b != "upstream GET /" {
		t.Errorf("after Redis came back, login got %d %q", resp2.StatusCode, b)
	}
	e.WaitReady()
}

func TestOpsEndpoints(t *testing.T) {
	e := e2etest.Start(t, e2etest.Options{})
	c := e.Browser()
	e.Login(c, "/", "alice", "alice-pw")
	for range 3 {
		resp, _ := c.Get(e.URL + "/again")
		e2etest.ReadBody(t, resp)
	}
	resp, err := http.Get(e.MetricsURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body := e2etest.ReadBody(t, resp)
	for _, want := range []string{
		`gatehouse_http_requests_total{code="200",method="GET",route="default"}`,
		`gatehouse_logins_total{outcome="success"} 1`,
		`gatehouse_session_store_duration_seconds_count{op="load"}`,
		`gatehouse_tokens_minted_total 1`,
		`gatehouse_token_cache_hits_total 3`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	resp, _ = http.Get(e.MetricsURL + "/healthz")
	if e2etest.ReadBody(t, resp); resp.StatusCode != 200 {
		t.Errorf("/healthz = %d", resp.StatusCode)
	}
	resp, _ = http.Get(e.URL + "/oauth2/jwks.json")
	var jwks struct {
		Keys []map[string]any `json:"keys"`
	}
	json.NewDecoder(resp.Body).Decode(&jwks)
	resp.Body.Close()
	if len(jwks.Keys) != 1 || jwks.Keys[0]["alg"] != "ES256" || jwks.Keys[0]["d"] != nil || !strings.Contains(resp.Header.Get("Cache-Control"), "max-age") {
		t.Errorf("jwks = %v (Cache-Control %q)", jwks, resp.Header.Get("Cache-Control"))
	}
}

// TestRevocationAcrossReplicas: two Gatehouse instances share one Redis and
// cache sessions in process (cache_ttl 1m, so only the pub/sub invalidation
// can end the session on the other replica). Signing out on A must end the
// session on B promptly.
func TestRevocationAcrossReplicas(t *testing.T) {
	shared := testredis.Start(t, testredis.Options{})
	ttl := map[string]string{"GATEHOUSE_SESSION_CACHE_TTL": "1m"}
	a := e2etest.Start(t, e2etest.Options{Store: "redis", Redis: shared, Env: ttl})
	b := e2etest.Start(t, e2etest.Options{Store: "redis", Redis: shared, Env: ttl})
	c := a.Browser()
	a.Login(c, "/", "alice", "alice-pw")
	ck := a.SessionCookie(c, "gatehouse")
	onB := func() int { return b.APIStatus("/x", ck) }
	if code := onB(); code != 200 {
		t.Fatalf("session from A on B got %d; want 200 (shared Redis)", code)
	}
	req, _ := http.NewRequest("POST", a.URL+"/oauth2/sign_out", nil)
	req.AddCookie(ck)
	a.Do(req).Body.Close()
	// The invalidation reaches B through Redis pub/sub, with nothing to wait
	// on but its effect. Eventually gives up well below the 1m cache TTL, so
	// only the invalidation can end the session on B; the latency itself is
	// measured by bench/, not asserted here.
	e2etest.Eventually(t, "replica B to refuse the session signed out on A", func() error {
		if code := onB(); code != http.StatusUnauthorized {
			return fmt.Errorf("B answered %d", code)
		}
		return nil
	})
}

// TestSignOutCSRF: another site cannot sign a user out; it gets a
// confirmation form (GET) or a 403 (POST), and the session survives.
func TestSignOutCSRF(t *testing.T) {
	e := e2etest.Start(t, e2etest.Options{})
	c := e.Browser()
	e.Login(c, "/", "alice", "alice-pw")
	ck := e.SessionCookie(c, "gatehouse")
	for _, tt := range []struct {
		method, site string
		want         int
	}{
		{"GET", "cross-site", 200},
		{"POST", "cross-site", 403},
		{"GET", "same-site", 200},
	} {
		req, _ := http.NewRequest(tt.method, e.URL+"/oauth2/sign_out?rd=/", nil)
		req.AddCookie(ck)
		req.Header.Set("Sec-Fetch-Site", tt.site)
		req.Header.Set("Sec-Fetch-Mode", "navigate")
		resp := e.Do(req)
		body := e2etest.ReadBody(t, resp)
		if resp.StatusCode != tt.want || len(resp.Cookies()) != 0 {
			t.Errorf("%s from %s: got %d with cookies %v; want %d and the cookie untouched", tt.method, tt.site, resp.StatusCode, resp.Cookies(), tt.want)
		}
		if tt.method == "GET" && !strings.Contains(body, `<form method="post"`) {
			t.Errorf("%s from %s: no confirmation form", tt.method, tt.site)
		}
		if tt.method == "POST" && !strings.Contains(body, "<html") {
			t.Errorf("a refused form POST should show a page, got %.100q", body)
		}
	}
	resp, _ := c.Get(e.URL + "/still")
	if body := e2etest.ReadBody(t, resp); body != "upstream GET /still" {
		t.Fatalf("session did not survive cross-site sign-out attempts: %q", body)
	}
	// Same-origin sign-out works.
	req, _ := http.NewRequest("POST", e.URL+"/oauth2/sign_out", nil)
	req.AddCookie(ck)
	req.Header.Set("Origin", e.URL)
	resp = e.Do(req)
	resp.Body.Close()
	if resp.StatusCode >= 400 || len(resp.Cookies()) != 1 {
		t.Errorf("same-origin sign-out got %d", resp.StatusCode)
	}
	if code := e.APIStatus("/after", ck); code != http.StatusUnauthorized {
		t.Errorf("after the same-origin sign-out the cookie got %d; want 401", code)
	}
}
