package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/gatehouse/gatehouse/internal/e2etest"
)

// TestServeReloadsOnSIGHUPAndFileChange runs `gatehouse serve --config
// FILE` in this process, sends it a real SIGHUP, then rewrites its file:
// both reload the configuration (the log says so), and the process lives on.
func TestServeReloadsOnSIGHUPAndFileChange(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "gatehouse.yaml")
	// The provider is down: serving (and reloading) does not wait for it.
	issuer := e2etest.DeadURL(t)
	write := func(upstream string) {
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, fmt.Appendf(nil, `listen: 127.0.0.1:0
metrics_listen: 127.0.0.1:0
public_url: http://127.0.0.1:4180
oidc:
  issuer: %s
  client_id: gatehouse
  client_secret: reload-test-client-secret
cookie:
  secrets: [reload-test-cookie-secret-0123456789abcdef]
  secure: false
upstream: %s
`, issuer, upstream), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	write("http://127.0.0.1:8001")

	logs := &e2etest.SyncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, []string{"gatehouse", "serve", "--config", path}, func(string) string { return "" }, &e2etest.SyncBuffer{}, logs)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		if t.Failed() {
			t.Logf("serve's log:\n%s", logs.String())
		}
	}()
	waitLog := func(what, line string) {
		t.Helper()
		e2etest.Eventually(t, what, func() error {
			select {
			case err := <-done:
				done <- err
				t.Fatalf("serve ended while waiting for %s: %v", what, err)
			default:
			}
			if !strings.Contains(logs.String(), line) {
				return fmt.Errorf("no %s in the log", line)
			}
			return nil
		})
	}
	// serve catches SIGHUP before it listens: from here a SIGHUP is its.
	waitLog("serve to listen", `"msg":"gatehouse listening"`)

	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLog("the SIGHUP reload", `"msg":"configuration reloaded","trigger":"signal"`)

	write("http://127.0.0.1:8002")
	waitLog("the file reload", `"msg":"configuration reloaded","trigger":"file","changed":["upstream"]`)
}
