package ingress

import (
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/e2etest"
)

// nginxConf is the data of testdata/nginx.conf.
type nginxConf struct {
	Dir       string // nginx's prefix: pid, logs and temporary files
	Listen    string // host:port nginx serves on
	Gatehouse string // host:port of Gatehouse
	App       string // host:port of the protected upstream
	// IngressNginx swaps the sign-in location for the one ingress-nginx
	// generates from auth-signin (every 401 becomes a redirect) and adds an
	// API location without it, as a second Ingress would.
	IngressNginx bool
}

// startNginx runs nginx on conf (its Listen picked by e2etest.StartDaemon)
// until the test ends, and returns its base URL.
func startNginx(t *testing.T, conf nginxConf) string {
	t.Helper()
	bin := binary(t, "nginx", "/usr/sbin/nginx")
	path := filepath.Join(conf.Dir, "nginx.conf")
	d := e2etest.StartDaemon(t, "nginx", func(addr string) *exec.Cmd {
		conf.Listen = addr
		if err := os.WriteFile(path, []byte(render(t, "nginx.conf", conf)), 0o600); err != nil {
			t.Fatal(err)
		}
		// -e: nginx opens its error log before reading the configuration.
		cmd := exec.Command(bin, "-p", conf.Dir, "-c", path, "-e", filepath.Join(conf.Dir, "error.log"))
		cmd.Dir = conf.Dir
		return cmd
	})
	return "http://" + d.Addr
}

// TestNginxAuthRequest is the user's journey through nginx with auth_request
// in front of the upstream and Gatehouse beside it, as docs/ingress.md
// shows it; and through the configuration ingress-nginx generates for the
// annotations the docs give.
func TestNginxAuthRequest(t *testing.T) {
	for _, tt := range []struct {
		name         string
		ingressNginx bool
		landing      string
		apiPath      string
	}{
		// Gatehouse builds the login URL, so the query survives whole and
		// fetch/XHR calls keep their 401 on every path.
		{name: "nginx", landing: "/dashboard?tab=1&view=a%2Fb+c", apiPath: "/items"},
		// ingress-nginx escapes rd with $escaped_request_uri, which plain
		// nginx lacks (see testdata/nginx.conf): a query without '&', '+' or
		// '%' lands identically in both.
		{name: "ingress-nginx", ingressNginx: true, landing: "/dashboard?tab=1", apiPath: "/api/items"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e, front := behindIngress(t, func(gatehouse, app string) string {
				return startNginx(t, nginxConf{Dir: t.TempDir(), Gatehouse: gatehouse, App: app, IngressNginx: tt.ingressNginx})
			})
			journey{front: front, landing: tt.landing, apiPath: tt.apiPath, passesSessionCookie: tt.ingressNginx}.run(t, e)
		})
	}
}

// TestGatehouseBelievesOnlyTrustedProxies talks to Gatehouse directly, once
// from the ingress's address and once from another one: only the trusted
// peer's X-Original-URL decides, an untrusted one's is ignored and the
// check is judged as if no URL had been given (never public).
func TestGatehouseBelievesOnlyTrustedProxies(t *testing.T) {
	e := startGatehouse(t, "http://app.example.test")
	for _, tt := range []struct {
		name string
		from string // source address of the connection
		want int
	}{
		{"trusted proxy", "127.0.0.1", http.StatusAccepted},
		{"untrusted peer: refused, and told why", "127.0.0.2", http.StatusForbidden},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dialer := &net.Dialer{Timeout: 3 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(tt.from)}}
			c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
				DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
					return dialer.DialContext(ctx, network, addr)
				},
			}}
			defer c.CloseIdleConnections()
			for _, h := range []map[string]string{
				{"X-Original-URL": "http://app.example.test/public/x", "X-Original-Method": "GET"},
				{"X-Forwarded-Uri": "/public/x", "X-Forwarded-Host": "app.example.test", "X-Forwarded-Proto": "http"},
			} {
				req, _ := http.NewRequest("GET", e.URL+"/oauth2/auth", nil)
				for k, v := range h {
					req.Header.Set(k, v)
				}
				resp, body := do(t, c, req)
				if resp.StatusCode != tt.want {
					t.Errorf("%v: got %d %q; want %d", h, resp.StatusCode, body, tt.want)
				}
			}
		})
	}
}
