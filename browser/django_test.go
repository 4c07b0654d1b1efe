package browser

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/e2etest"
)

const (
	// python is Debian's interpreter: the python3-django and friends
	// packages install for it, whatever python3 comes first on PATH.
	python    = "/usr/bin/python3"
	djangoDir = "../examples/django"
	// djangoAudience is the audience of the Gatehouse route to Django.
	djangoAudience = "django"
)

// requireDjango fails the test when Python or a package the example needs is
// missing.
func requireDjango(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(python); err != nil {
		t.Fatalf("%s is missing (%v); `make test` installs it (scripts/install-deps.sh)", python, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, python, "-c", "import django, rest_framework, jwt, cryptography").CombinedOutput()
	if err != nil {
		t.Fatalf("the Django example needs python3-django, python3-djangorestframework, python3-jwt and python3-cryptography "+
			"for %s: %v\n%s\n`make test` installs them (scripts/install-deps.sh)", python, err, out)
	}
}

// pythonEnv is the environment for the example's commands: the caller's,
// minus anything that could point Debian's Python at another installation's
// packages or settings, plus vars.
func pythonEnv(vars map[string]string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case name == "PYTHONPATH", name == "PYTHONHOME", name == "PYTHONSTARTUP", name == "VIRTUAL_ENV",
			strings.HasPrefix(name, "DJANGO_"):
			continue
		}
		env = append(env, kv)
	}
	// No __pycache__ in the source tree; output as it happens.
	env = append(env, "PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1")
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	return env
}

// TestDjangoUnitTests runs the example's own tests (manage.py test): the DRF
// authentication class against a real JWKS server, user and group mapping,
// and the views. They are Python, so this is how `go test ./...` runs them.
func TestDjangoUnitTests(t *testing.T) {
	requireDjango(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, "manage.py", "test", "--noinput", "-v", "2")
	cmd.Dir = djangoDir
	cmd.Env = pythonEnv(map[string]string{"DJANGO_DB_PATH": filepath.Join(t.TempDir(), "unused.sqlite3")})
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("manage.py test failed: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "\nOK") {
		t.Fatalf("manage.py test did not report OK:\n%s", out)
	}
	t.Logf("%s", lastLines(string(out), 4))
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// django is the example project served by Django's development server.
type django struct {
	URL string
	d   *e2etest.Daemon // its output: request lines and errors
}

// startDjango migrates a fresh SQLite database and serves the example with
// `manage.py runserver` on a port it binds itself (see
// e2etest.StartDaemon), trusting tokens from the Gatehouse at gatehouseURL
// for djangoAudience. It returns once Django answers HTTP, and stops the
// server when the test ends.
func startDjango(t testing.TB, gatehouseURL string) *django {
	t.Helper()
	requireDjango(t)
	env := pythonEnv(map[string]string{
		"DJANGO_SECRET_KEY":         rand.Text(),
		"DJANGO_ALLOWED_HOSTS":      "127.0.0.1",
		"DJANGO_DB_PATH":            filepath.Join(t.TempDir(), "db.sqlite3"),
		"DJANGO_GATEHOUSE_JWKS_URL": gatehouseURL + "/oauth2/jwks.json",
		"DJANGO_GATEHOUSE_ISSUER":   gatehouseURL,
		"DJANGO_GATEHOUSE_AUDIENCE": djangoAudience,
	})

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	migrate := exec.CommandContext(ctx, python, "manage.py", "migrate", "--noinput")
	migrate.Dir, migrate.Env = djangoDir, env
	if out, err := migrate.CombinedOutput(); err != nil {
		t.Fatalf("manage.py migrate: %v\n%s", err, out)
	}

	d := e2etest.StartDaemon(t, "django", func(addr string) *exec.Cmd {
		cmd := exec.Command(python, "manage.py", "runserver", addr, "--noreload")
		cmd.Dir, cmd.Env = djangoDir, env
		return cmd
	})
	dj := &django{URL: "http://" + d.Addr, d: d}
	// Straight to Django, without Gatehouse's token: refused.
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(dj.URL + "/api/whoami")
	if err != nil {
		t.Fatalf("Django listens on %s but does not answer: %v", d.Addr, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("GET %s/api/whoami without a token: got %d; want 401", dj.URL, resp.StatusCode)
	}
	return dj
}

// requests counts the request lines Django logged for method and path.
func (d *django) requests(method, path string) int {
	return strings.Count(d.d.Output(), fmt.Sprintf("\"%s %s HTTP/", method, path))
}
