package ingress

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/gatehouse/gatehouse/internal/e2etest"
)

// caddyConf is the data of testdata/Caddyfile.
type caddyConf struct {
	Dir       string // Caddy's storage
	Site      string // the site address, e.g. http://127.0.0.1:8080
	Listen    string // host:port the site address makes Caddy serve on
	Gatehouse string // host:port of Gatehouse
	App       string // host:port of the protected upstream
}

// startCaddy runs Caddy on conf (its Listen and Site picked by
// e2etest.StartDaemon) until the test ends, with its home and XDG
// directories in the test's temporary directory, and returns its base URL.
func startCaddy(t *testing.T, conf caddyConf) string {
	t.Helper()
	bin := binary(t, "caddy", "/usr/bin/caddy")
	path := filepath.Join(conf.Dir, "Caddyfile")
	d := e2etest.StartDaemon(t, "caddy", func(addr string) *exec.Cmd {
		conf.Listen, conf.Site = addr, "http://"+addr
		if err := os.WriteFile(path, []byte(render(t, "Caddyfile", conf)), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "run", "--config", path, "--adapter", "caddyfile")
		cmd.Dir = conf.Dir
		cmd.Env = []string{"HOME=" + conf.Dir, "XDG_DATA_HOME=" + conf.Dir, "XDG_CONFIG_HOME=" + conf.Dir, "PATH=/usr/bin:/bin"}
		return cmd
	})
	return "http://" + d.Addr
}

// TestCaddyForwardAuth is the user's journey through Caddy's forward_auth
// in redirect mode: the browser gets Gatehouse's own 302 to the login.
func TestCaddyForwardAuth(t *testing.T) {
	e, front := behindIngress(t, func(gatehouse, app string) string {
		return startCaddy(t, caddyConf{Dir: t.TempDir(), Gatehouse: gatehouse, App: app})
	})
	journey{front: front, landing: "/dashboard?tab=1&view=a%2Fb+c", apiPath: "/items"}.run(t, e)
}
