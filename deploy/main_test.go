package deploy

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// helmVersion is the helm the tests build from the Go module proxy.
const helmVersion = "v3.22.0"

// testVersion is the VERSION build argument the tests stamp into gatehouse.
const testVersion = "v0.0.0-deploytest+abc1234"

// workDir holds what the tests build once for all of them.
var workDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gatehouse-deploy-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "deploy:", err)
		os.Exit(1)
	}
	workDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// repoRoot is the module's root directory: tests run in deploy/.
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

var gatehouseBuild struct {
	once sync.Once
	path string
	err  error
}

// gatehouseBinary builds gatehouse once, with the Dockerfile's own go build
// command (see dockerfileBuild), and returns its path.
func gatehouseBinary(t testing.TB) string {
	t.Helper()
	b := &gatehouseBuild
	b.once.Do(func() {
		b.path, b.err = dockerfileBuild(repoRoot(t), filepath.Join(workDir, "bin"), testVersion, runtime.GOARCH)
	})
	if b.err != nil {
		t.Fatalf("building gatehouse with the Dockerfile's command: %v", b.err)
	}
	return b.path
}

var helmBuild struct {
	once sync.Once
	path string
	err  error
}

// helmBinary returns helm, building it with `go install` from the Go module
// proxy the first time and caching it under the user cache directory, since
// the first build takes a minute or two. A missing helm fails the test:
// `make test` needs network access to proxy.golang.org once.
func helmBinary(t testing.TB) string {
	t.Helper()
	b := &helmBuild
	b.once.Do(func() { b.path, b.err = installHelm() })
	if b.err != nil {
		t.Fatalf("helm %s is needed to test the chart, and `make test` builds it from the Go module proxy (go install helm.sh/helm/v3/cmd/helm@%s), which failed: %v", helmVersion, helmVersion, b.err)
	}
	return b.path
}

func installHelm() (string, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cache, "gatehouse-deploy-test", "helm-"+helmVersion)
	bin := filepath.Join(dir, "helm")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	// Install into a private directory, then rename: a concurrent or
	// interrupted run never sees a half-written binary.
	tmp, err := os.MkdirTemp(dir, "install-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	cmd := exec.Command("go", "install", "helm.sh/helm/v3/cmd/helm@"+helmVersion)
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), "GOBIN="+tmp, "GOWORK=off")
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%w\n%s", err, out)
	}
	fmt.Fprintf(os.Stderr, "deploy: built helm %s into %s in %s\n", helmVersion, dir, time.Since(start).Round(time.Second))
	if err := os.Rename(filepath.Join(tmp, "helm"), bin); err != nil {
		return "", err
	}
	return bin, nil
}

// runHelm runs helm with its caches and configuration in a temporary
// directory, so the user's repositories and plugins play no part. The error
// includes helm's output.
func runHelm(t testing.TB, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	home := t.TempDir()
	cmd := exec.Command(helmBinary(t), args...)
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
	)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return out.String(), errOut.String(), fmt.Errorf("helm %s: %w\n%s%s", strings.Join(args, " "), err, out.String(), errOut.String())
	}
	return out.String(), errOut.String(), nil
}

// runGatehouse runs the gatehouse binary with no GATEHOUSE_* variables in its
// environment, so only the files it is given count.
func runGatehouse(t testing.TB, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(gatehouseBinary(t), args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	out, err := cmd.CombinedOutput()
	return string(out), err
}
