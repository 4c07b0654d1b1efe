package ingress

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// caddyConf is the data of testdata/Caddyfile.
type caddyConf struct {
	Dir       string // Caddy's storage
	Site      string // the site address, e.g. http://127.0.0.1:8080
	Listen    string // host:port the site address makes Caddy serve on
	Gatehouse string // host:port of Gatehouse
	App       string // host:port of the protected upstream
}

// startCaddy writes the Caddyfile and runs Caddy on it until the test ends,
// with its home and XDG directories in the test's temporary directory.
func startCaddy(t *testing.T, conf caddyConf) {
	t.Helper()
	bin := binary(t, "caddy", "/usr/bin/caddy")
	path := filepath.Join(conf.Dir, "Caddyfile")
	if err := os.WriteFile(path, []byte(render(t, "Caddyfile", conf)), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"HOME=" + conf.Dir, "XDG_DATA_HOME=" + conf.Dir, "XDG_CONFIG_HOME=" + conf.Dir, "PATH=/usr/bin:/bin"}
	daemon(t, conf.Dir, "caddy", conf.Listen, env, bin, "run", "--config", path, "--adapter", "caddyfile")
}

// TestCaddyForwardAuth is the user's journey through Caddy's forward_auth
// in redirect mode: the browser gets Gatehouse's own 302 to the login.
func TestCaddyForwardAuth(t *testing.T) {
	listen := reserveAddr(t)
	front := "http://" + listen
	e := startGatehouse(t, front)
	startCaddy(t, caddyConf{
		Dir:       t.TempDir(),
		Site:      front,
		Listen:    listen,
		Gatehouse: strings.TrimPrefix(e.URL, "http://"),
		App:       strings.TrimPrefix(e.Up.URL, "http://"),
	})
	journey{front: front, landing: "/dashboard?tab=1&view=a%2Fb+c", apiPath: "/items"}.run(t, e)
}
