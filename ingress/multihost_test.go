package ingress

import (
	"context"
	"net"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/e2etest"
)

// hostsClient is a browser for which every *.example.test name resolves to
// nginx's loopback address: one ingress serving three host names, as DNS
// would point them. It records every URL it visits.
type hostsClient struct {
	*http.Client
	mu      sync.Mutex
	visited []string
}

func newHostsClient(nginx string, follow bool) *hostsClient {
	jar, _ := cookiejar.New(nil)
	d := &net.Dialer{Timeout: 3 * time.Second}
	hc := &hostsClient{}
	hc.Client = &http.Client{Jar: jar, Timeout: 10 * time.Second, Transport: navigations{&http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if strings.Contains(addr, ".example.test:") {
				addr = nginx
			}
			return d.DialContext(ctx, network, addr)
		},
	}}}
	hc.CheckRedirect = func(req *http.Request, _ []*http.Request) error {
		hc.mu.Lock()
		hc.visited = append(hc.visited, req.URL.String())
		hc.mu.Unlock()
		if !follow {
			return http.ErrUseLastResponse
		}
		return nil
	}
	return hc
}

// navigations sends Accept: text/html where a request names no Accept, as
// a browser's navigations do.
type navigations struct{ rt http.RoundTripper }

func (n navigations) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Header.Get("Accept") == "" {
		r.Header.Set("Accept", "text/html,application/xhtml+xml")
	}
	return n.rt.RoundTrip(r)
}

func (c *hostsClient) get(t *testing.T, rawURL string, accept string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", rawURL, nil)
	req.Header.Set("Accept", accept)
	return do(t, c.Client, req)
}

// TestManyHostsBehindNginx: one nginx serving three host names in front of
// one Gatehouse (docs/multi-host.md). A browser signs in on one, opens the
// other two without signing in again, and one sign-out signs it out of all
// three. A code that is replayed, or redeemed on another host, is refused.
func TestManyHostsBehindNginx(t *testing.T) {
	up := e2etest.NewUpstream(t)
	ln := e2etest.Listen(t)
	nginx := strings.TrimPrefix(startNginx(t, nginxConf{Dir: t.TempDir(), Gatehouse: ln.Addr().String(),
		App: strings.TrimPrefix(up.URL, "http://")}), "http://")
	_, port, _ := net.SplitHostPort(nginx)
	app, api, grafana := "http://app.example.test:"+port, "http://api.example.test:"+port, "http://grafana.example.test:"+port
	e := e2etest.Start(t, e2etest.Options{
		Listener:  ln,
		Upstream:  up,
		PublicURL: app,
		Env: map[string]string{
			"GATEHOUSE_TRUSTED_PROXIES":          "127.0.0.1/32",
			"GATEHOUSE_REDIRECT_ALLOWED_DOMAINS": "api.example.test:" + port + ",grafana.example.test:" + port,
		},
		Routes: routes,
	})
	const html = "text/html,application/xhtml+xml"

	b := newHostsClient(nginx, true)
	if resp, body := signIn(t, e, b.Client, app+"/dashboard", "alice", "alice-pw"); resp.StatusCode != http.StatusOK || resp.Request.URL.String() != app+"/dashboard" {
		t.Fatalf("sign-in on app: got %d at %s: %.200s", resp.StatusCode, resp.Request.URL, body)
	}
	for _, host := range []string{api, grafana} {
		b.visited = nil
		resp, body := b.get(t, host+"/reports?week=2", html)
		if resp.StatusCode != http.StatusOK || resp.Request.URL.String() != host+"/reports?week=2" {
			t.Fatalf("%s: got %d at %s after %v: %.200s", host, resp.StatusCode, resp.Request.URL, b.visited, body)
		}
		for _, v := range b.visited {
			if strings.HasPrefix(v, e.IDP.URL) {
				t.Errorf("%s: the browser went to the provider again: %v", host, b.visited)
			}
		}
		if got := up.LastRequest().Header.Get("X-Auth-Request-User"); got != e2etest.Users[0].ID {
			t.Errorf("%s: the app saw user %q; want %q", host, got, e2etest.Users[0].ID)
		}
	}

	// A code is for one host and one use: replay the journey with a client
	// that stops at each redirect.
	nb := &hostsClient{Client: &http.Client{Jar: b.Jar, Timeout: 10 * time.Second, Transport: b.Transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	resp, _ := nb.get(t, api+"/oauth2/start?rd=/x", html)
	resp, _ = nb.get(t, resp.Header.Get("Location"), html)
	code := resp.Header.Get("Location")
	if !strings.HasPrefix(code, api+"/oauth2/handoff?code=") {
		t.Fatalf("no handoff to api: %d %q", resp.StatusCode, code)
	}
	if resp, _ := nb.get(t, strings.Replace(code, api, grafana, 1), html); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("api's code on grafana: got %d; want 400", resp.StatusCode)
	}
	if resp, _ := nb.get(t, code, html); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a code already taken (by the refused attempt on grafana): got %d; want 400", resp.StatusCode)
	}

	req, _ := http.NewRequest("POST", grafana+"/oauth2/sign_out", nil)
	req.Header.Set("Accept", "application/json")
	if resp, _ := do(t, nb.Client, req); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("sign-out on grafana: got %d; want 204", resp.StatusCode)
	}
	for _, host := range []string{app, api, grafana} {
		if resp, _ := nb.get(t, host+"/reports", "application/json"); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s after one sign-out: got %d; want 401", host, resp.StatusCode)
		}
	}
}
