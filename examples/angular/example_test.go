// Package angular holds no Go code: its tests run the Angular example's own
// tests and build it with the Angular CLI, so `go test ./...` (and so
// `make test`) covers the example. scripts/install-deps.sh installs its
// npm packages once (npm ci); these tests download nothing.
package angular

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// installedLock is where scripts/install-deps.sh keeps a copy of the
// package-lock.json it installed, to tell a stale node_modules.
const installedLock = "node_modules/.gatehouse-package-lock.json"

// requireInstalled fails the test unless Node 20.19 or later is on PATH and
// node_modules holds exactly what package-lock.json pins.
func requireInstalled(t *testing.T) {
	t.Helper()
	out, err := exec.Command("node", "--version").Output()
	if err != nil {
		t.Fatalf("node is missing (%v): the Angular example needs Node 20.19 or later", err)
	}
	if v := strings.TrimSpace(string(out)); !nodeAtLeast(v, 20, 19) {
		t.Fatalf("node %s is too old: Angular 21 needs 20.19 or later", v)
	}
	want, err := os.ReadFile("package-lock.json")
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(installedLock)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("examples/angular/node_modules is missing or older than package-lock.json; " +
			"`make test` installs it (scripts/install-deps.sh runs npm ci there)")
	}
}

// nodeAtLeast reports whether a `node --version` string ("v20.20.2") is at
// least major.minor.
func nodeAtLeast(v string, major, minor int) bool {
	m := regexp.MustCompile(`^v(\d+)\.(\d+)\.`).FindStringSubmatch(v)
	if m == nil {
		return false
	}
	gotMajor, _ := strconv.Atoi(m[1])
	gotMinor, _ := strconv.Atoi(m[2])
	return gotMajor > major || gotMajor == major && gotMinor >= minor
}

func TestNodeAtLeast(t *testing.T) {
	for _, c := range []struct {
		v    string
		want bool
	}{
		{"v20.19.0", true}, {"v20.20.2", true}, {"v22.1.0", true},
		{"v20.18.9", false}, {"v18.19.0", false}, {"20.19.0", false}, {"", false},
	} {
		if got := nodeAtLeast(c.v, 20, 19); got != c.want {
			t.Errorf("nodeAtLeast(%q, 20, 19) = %v; want %v", c.v, got, c.want)
		}
	}
}

func env() []string {
	// No telemetry prompt, no colors in the failure output.
	return append(os.Environ(), "NG_CLI_ANALYTICS=false", "NO_COLOR=1", "FORCE_COLOR=0")
}

// TestInterceptorAndUserService compiles src/app/gatehouse.ts and its tests
// with tsc and runs them with Node's test runner: the interceptor and the
// user service through Angular's real HttpClient and dependency injection
// (see src/app/gatehouse.test.ts). The output goes to a directory of its own
// under out-tsc, so Node finds node_modules and runs in parallel do not mix.
func TestInterceptorAndUserService(t *testing.T) {
	requireInstalled(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out := filepath.Join("out-tsc", "go-test-"+rand.Text())
	t.Cleanup(func() {
		os.RemoveAll(out)
		os.Remove("out-tsc") // only if no other run is using it
	})

	tsc := exec.CommandContext(ctx, filepath.Join("node_modules", ".bin", "tsc"), "-p", "tsconfig.spec.json", "--outDir", out)
	tsc.Env = env()
	if b, err := tsc.CombinedOutput(); err != nil {
		t.Fatalf("tsc -p tsconfig.spec.json: %v\n%s", err, b)
	}
	test := exec.CommandContext(ctx, "node", "--test", "--test-reporter=tap", filepath.Join(out, "app", "gatehouse.test.js"))
	test.Env = env()
	b, err := test.CombinedOutput()
	if err != nil {
		t.Fatalf("node --test: %v\n%s", err, b)
	}
	pass := regexp.MustCompile(`(?m)^# pass (\d+)$`).FindSubmatch(b)
	fail := regexp.MustCompile(`(?m)^# fail (\d+)$`).FindSubmatch(b)
	if pass == nil || fail == nil || string(fail[1]) != "0" || string(pass[1]) == "0" {
		t.Fatalf("node --test did not report passing tests and no failures:\n%s", b)
	}
	t.Logf("node --test: %s passed", pass[1])
}

// TestBuild builds the example with the Angular CLI (AOT, strict templates),
// so the component, the configuration and gatehouse.ts compile as an app.
func TestBuild(t *testing.T) {
	requireInstalled(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dist := t.TempDir()
	build := exec.CommandContext(ctx, filepath.Join("node_modules", ".bin", "ng"), "build", "--output-path", dist)
	build.Env = append(env(), "CI=true") // no build cache left in the work tree
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("ng build: %v\n%s", err, b)
	}
	index, err := os.ReadFile(filepath.Join(dist, "browser", "index.html"))
	if err != nil {
		t.Fatalf("ng build wrote no browser/index.html: %v", err)
	}
	if !regexp.MustCompile(`<script src="main-[A-Z0-9]+\.js" type="module">`).Match(index) {
		t.Errorf("index.html does not load the built main script:\n%s", index)
	}
}
