package browser

import (
	"archive/zip"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/gatehouse/gatehouse/config"
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

// kitScript uses gatehouse_auth as installed, in a project of its own: the
// package's system checks pass, its migration applies, its middleware and
// DRF class import. It prints where the package was imported from.
const kitScript = `
import json, sys
import django
from django.conf import settings
settings.configure(
    SECRET_KEY="wheel-test",
    INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes", "gatehouse_auth"],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
    MIDDLEWARE=[
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "gatehouse_auth.middleware.GatehouseUserMiddleware",
    ],
    GATEHOUSE_AUTH={"JWKS_URL": "https://app.example.com/oauth2/jwks.json",
                    "ISSUER": "https://app.example.com", "AUDIENCE": "api"},
    GATEHOUSE_SUPERUSER_GROUPS=["admins"],
    DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
    USE_TZ=True,
)
django.setup()
from django.core.management import call_command
call_command("check", fail_level="ERROR")
call_command("migrate", verbosity=0)
import gatehouse_auth, gatehouse_auth.middleware, gatehouse_auth.authentication, gatehouse_auth.testing
from gatehouse_auth.models import Identity
print(json.dumps({"file": gatehouse_auth.__file__, "version": gatehouse_auth.__version__,
                  "identities": Identity.objects.count()}))
`

// TestDjangoKitWheel builds gatehouse_auth into a wheel from
// examples/django/pyproject.toml the way a machine without network would
// (pip wheel --no-deps --no-build-isolation --no-index, with Debian's
// setuptools and wheel), checks that it ships the package and nothing of
// the example project, installs it into a fresh virtual environment and
// uses it from there, outside the source tree.
func TestDjangoKitWheel(t *testing.T) {
	requireDjango(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, python, "-c", "import setuptools, wheel, pip, venv").CombinedOutput(); err != nil {
		t.Fatalf("building the Django kit needs python3-pip, python3-setuptools and python3-wheel for %s: %v\n%s\n"+
			"`make test` installs them (scripts/install-deps.sh)", python, err, out)
	}
	tmp := t.TempDir()
	run := func(dir, name string, args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Dir, cmd.Env = dir, pythonEnv(nil)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return string(out)
	}

	// setuptools writes build/ and *.egg-info next to the sources: build a
	// copy, so the test leaves the work tree as it found it.
	src := filepath.Join(tmp, "src")
	for _, name := range []string{"pyproject.toml", "PACKAGE.md", "gatehouse_auth"} {
		copyTree(t, filepath.Join(djangoDir, name), filepath.Join(src, name))
	}
	dist := filepath.Join(tmp, "dist")
	run(tmp, python, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "--wheel-dir", dist, src)
	wheels, _ := filepath.Glob(filepath.Join(dist, "gatehouse_auth-*-py3-none-any.whl"))
	if len(wheels) != 1 {
		entries, _ := os.ReadDir(dist)
		t.Fatalf("got wheels %v in %s (%v); want one gatehouse_auth-*-py3-none-any.whl", wheels, dist, entries)
	}

	zr, err := zip.OpenReader(wheels[0])
	if err != nil {
		t.Fatal(err)
	}
	shipped := map[string]bool{}
	for _, f := range zr.File {
		shipped[f.Name] = true
		if !strings.HasPrefix(f.Name, "gatehouse_auth/") && !strings.HasPrefix(f.Name, "gatehouse_auth-") {
			t.Errorf("the wheel ships %s; want gatehouse_auth only (not the example project or its tests)", f.Name)
		}
		if strings.Contains(f.Name, "__pycache__") || strings.HasSuffix(f.Name, ".pyc") {
			t.Errorf("the wheel ships bytecode: %s", f.Name)
		}
	}
	zr.Close()
	for _, want := range []string{
		"gatehouse_auth/__init__.py", "gatehouse_auth/apps.py", "gatehouse_auth/authentication.py",
		"gatehouse_auth/middleware.py", "gatehouse_auth/tokens.py", "gatehouse_auth/testing.py",
		"gatehouse_auth/migrations/__init__.py", "gatehouse_auth/migrations/0001_initial.py",
	} {
		if !shipped[want] {
			t.Errorf("the wheel lacks %s", want)
		}
	}

	// A venv that sees Debian's Django, DRF and PyJWT but nothing of the
	// source tree; its pip is the system's, so nothing is downloaded.
	venv := filepath.Join(tmp, "venv")
	run(tmp, python, "-m", "venv", "--system-site-packages", "--without-pip", venv)
	vpy := filepath.Join(venv, "bin", "python")
	run(tmp, vpy, "-m", "pip", "install", "--no-deps", "--no-index", wheels[0])
	out := run(tmp, vpy, "-c", kitScript)

	var got struct {
		File       string `json:"file"`
		Version    string `json:"version"`
		Identities int    `json:"identities"`
	}
	if err := json.Unmarshal([]byte(lastLines(out, 1)), &got); err != nil {
		t.Fatalf("the script's output is not its JSON line: %v\n%s", err, out)
	}
	if !strings.HasPrefix(got.File, venv+string(filepath.Separator)) {
		t.Errorf("gatehouse_auth imported from %s; want the venv %s", got.File, venv)
	}
	initPy, err := os.ReadFile(filepath.Join(djangoDir, "gatehouse_auth", "__init__.py"))
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("__version__ = %q", got.Version); !strings.Contains(string(initPy), want) {
		t.Errorf("installed version %q is not the source's (%s)", got.Version, "gatehouse_auth/__init__.py")
	}
	if got.Identities != 0 {
		t.Errorf("a fresh database holds %d identities; want 0", got.Identities)
	}
}

// copyTree copies a file or a directory, leaving out Python bytecode.
func copyTree(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Name() == "__pycache__" {
			return filepath.SkipDir
		}
		rel, err := filepath.Rel(from, path)
		if err != nil {
			return err
		}
		dst := filepath.Join(to, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		if strings.HasSuffix(path, ".pyc") {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		return os.WriteFile(dst, data, 0o644)
	})
	if err != nil {
		t.Fatalf("copying %s: %v", from, err)
	}
}

// TestDjangoAdminThroughGatehouse signs in to the Django admin the way a
// person does: Chromium opens /admin/ behind Gatehouse, signs in once at the
// provider and lands in the admin as a superuser (alice, group admins)
// without Django asking again. The admin's "Log out" ends Gatehouse's
// session, after which /admin/ leads to the provider's login again: no Django
// session outlived Gatehouse's. Bob (developers) then enters as staff with
// no permissions.
func TestDjangoAdminThroughGatehouse(t *testing.T) {
	requireDjango(t)
	ln := e2etest.Listen(t)
	dj := startDjango(t, "http://"+ln.Addr().String())
	e := e2etest.Start(t, e2etest.Options{
		Listener: ln,
		Routes: func(string) []config.Route {
			return []config.Route{{Name: "django", PathPrefix: "/", Upstream: dj.URL, Audience: djangoAudience}}
		},
	})
	b := newTab(t)
	admin := e.URL + "/admin/"
	loginForm := fmt.Sprintf(`location.href.startsWith(%q) && !!document.querySelector("input[name=password]")`, e.IDP.URL)
	signIn := func(user, password string) {
		t.Helper()
		b.do("signing in as "+user,
			chromedp.SendKeys(chromedp.CSS(`input[name=username]`), user),
			chromedp.SendKeys(chromedp.CSS(`input[name=password]`), password),
			chromedp.Click(chromedp.CSS(`button[type=submit]`)),
		)
	}
	inAdmin := func(what, cond string) {
		t.Helper()
		b.waitUntil(what, fmt.Sprintf(`location.href === %q && !!document.getElementById("user-tools") && (%s)`, admin, cond))
	}

	b.do("opening the admin", chromedp.Navigate(admin))
	b.waitUntil("the provider's login form", loginForm)
	signIn("alice", "alice-pw")
	// Superusers see the auth app; Django's own login form never shows.
	inAdmin("the admin's index as a superuser", `!!document.querySelector('a[href="/admin/auth/user/"]')`)
	b.do("opening the users list", chromedp.Navigate(e.URL+"/admin/auth/user/"))
	b.waitUntil("alice in the users list",
		`location.pathname === "/admin/auth/user/" && [...document.querySelectorAll("#result_list th a")].some(a => a.textContent === "alice")`)

	// Django 3.2's "Log out" is a link, later versions' a form's button.
	mustEval[bool](b, `document.querySelector('#logout-form button, #user-tools a[href="/admin/logout/"]').click(), true`)
	b.waitUntil("the provider's login form after logging out", loginForm)
	b.do("opening the admin again", chromedp.Navigate(admin))
	b.waitUntil("the provider's login form, not the admin", loginForm)
	if n := dj.requests("GET", "/admin/logout/"); n != 1 {
		t.Errorf("Django logged %d GET /admin/logout/; want 1", n)
	}

	signIn("bob", "bob-pw")
	inAdmin("the admin's index as staff without permissions",
		`document.body.innerText.includes("permission to view or edit anything") && !document.querySelector('a[href="/admin/auth/user/"]')`)
}
