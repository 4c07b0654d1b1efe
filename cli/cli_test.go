package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/internal/e2etest"
	"github.com/gatehouse/gatehouse/tokenmint"
)

func run(t *testing.T, env map[string]string, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := Run(context.Background(), append([]string{"gatehouse"}, args...), func(k string) string { return env[k] }, &out, &errOut)
	return out.String() + errOut.String(), err
}

func TestConfigCheckListsEveryProblemByKey(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bad.yaml")
	os.WriteFile(path, []byte(`
public_url: ftp://app.example.com
session:
  store: postgres
token:
  ttl: 5h
routes:
  - name: api
    path_prefix: api/
    upstream: http://127.0.0.1:8000
`), 0o600)
	_, err := run(t, nil, "config", "check", "--config", path)
	if err == nil {
		t.Fatal("config check accepted a bad configuration")
	}
	for _, key := range []string{"public_url", "oidc.issuer", "oidc.client_id", "session.store", "token.ttl", "routes[0].path_prefix", "cookie"} {
		if !strings.Contains(err.Error(), key) {
			t.Errorf("error does not name %s:\n%v", key, err)
		}
	}
}

func TestConfigCheckUnknownKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "typo.yaml")
	os.WriteFile(path, []byte("public_url: https://a.example\nsesion:\n  store: memory\n"), 0o600)
	_, err := run(t, nil, "config", "check", "--config", path)
	if err == nil || !strings.Contains(err.Error(), "sesion") {
		t.Fatalf("got %v; want an error naming the unknown key 'sesion'", err)
	}
}

func TestConfigCheckOKAndPrintRedacts(t *testing.T) {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "client-secret")
	os.WriteFile(secretFile, []byte("super-secret-client-value\n"), 0o600)
	keyFile := filepath.Join(dir, "key.pem")
	if _, err := run(t, nil, "keys", "generate", "--alg", "EdDSA", "--out", keyFile); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "ok.yaml")
	os.WriteFile(path, []byte(`
public_url: https://app.example.com
oidc:
  issuer: https://idp.example.com
  client_id: gatehouse
  client_secret_file: `+secretFile+`
token:
  algorithm: EdDSA
  signing_key_files: [`+keyFile+`]
upstream: http://127.0.0.1:8000
`), 0o600)
	env := map[string]string{"GATEHOUSE_COOKIE_SECRETS": "cookie-secret-0123456789abcdef0123456789"}
	out, err := run(t, env, "config", "check", "--config", path, "--print")
	if err != nil {
		t.Fatalf("config check: %v", err)
	}
	if !strings.Contains(out, "configuration OK") || strings.Contains(out, "super-secret-client-value") || strings.Contains(out, "cookie-secret-0123") {
		t.Errorf("output leaks a secret or lacks OK:\n%s", out)
	}
	// A key of another type than token.algorithm is refused, naming the key.
	env["GATEHOUSE_TOKEN_ALGORITHM"] = "ES256"
	if _, err := run(t, env, "config", "check", "--config", path); err == nil || !strings.Contains(err.Error(), "token.algorithm") {
		t.Errorf("got %v; want an error naming token.algorithm", err)
	}
}

func TestKeysGenerate(t *testing.T) {
	for _, alg := range []string{"ES256", "EdDSA", "RS256"} {
		out, err := run(t, nil, "keys", "generate", "--alg", alg)
		if err != nil {
			t.Fatal(err)
		}
		k, err := tokenmint.ParseKeyPEM([]byte(out))
		if err != nil || k.Algorithm() != alg {
			t.Errorf("%s: generated key parses as %v, %v", alg, k, err)
		}
	}
	if _, err := run(t, nil, "keys", "generate", "--alg", "HS256"); err == nil {
		t.Error("HS256 accepted")
	}
}

func TestVersionAndUnknownCommand(t *testing.T) {
	Version = "v1.2.3-test"
	defer func() { Version = "" }()
	if out, err := run(t, nil, "version"); err != nil || !strings.Contains(out, "v1.2.3-test") {
		t.Errorf("version printed %q, %v", out, err)
	}
	if _, err := run(t, nil, "frobnicate"); err == nil {
		t.Error("unknown command accepted")
	}
}

func TestHealthcheckFailsWhenNothingListens(t *testing.T) {
	if _, err := run(t, nil, "healthcheck", "--url", e2etest.DeadURL(t)+"/healthz"); err == nil {
		t.Error("healthcheck succeeded against a server that is down")
	}
}

// TestHealthcheckAgainstAServingGatehouse: the container's HEALTHCHECK
// passes against a running Gatehouse however it finds the metrics listener
// (--url, --config's metrics_listen, GATEHOUSE_METRICS_LISTEN).
func TestHealthcheckAgainstAServingGatehouse(t *testing.T) {
	e := e2etest.Start(t, e2etest.Options{})
	addr := e.App.MetricsAddr()
	config := filepath.Join(t.TempDir(), "gatehouse.yaml")
	if err := os.WriteFile(config, []byte("metrics_listen: "+addr+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		env  map[string]string
		args []string
	}{
		{"--url /healthz", nil, []string{"--url", e.MetricsURL + "/healthz"}},
		{"--url /readyz", nil, []string{"--url", e.MetricsURL + "/readyz"}},
		{"--config", nil, []string{"--config", config}},
		{"GATEHOUSE_CONFIG", map[string]string{"GATEHOUSE_CONFIG": config}, nil},
		{"GATEHOUSE_METRICS_LISTEN", map[string]string{"GATEHOUSE_METRICS_LISTEN": addr}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if out, err := run(t, tt.env, append([]string{"healthcheck"}, tt.args...)...); err != nil {
				t.Errorf("healthcheck against a serving Gatehouse: %v\n%s", err, out)
			}
		})
	}
}

// TestHealthcheckWhenNotReady: a Gatehouse whose provider is down is alive
// (/healthz, what the container's HEALTHCHECK probes, passes: restarting it
// would not bring the provider back) but not ready: healthcheck --url
// .../readyz exits non-zero, naming the status.
func TestHealthcheckWhenNotReady(t *testing.T) {
	up := e2etest.NewUpstream(t)
	ln := e2etest.Listen(t)
	a := e2etest.NewApp(t, map[string]string{
		"GATEHOUSE_PUBLIC_URL": "http://" + ln.Addr().String(), "GATEHOUSE_METRICS_LISTEN": "127.0.0.1:0",
		"GATEHOUSE_OIDC_ISSUER": e2etest.DeadURL(t), "GATEHOUSE_OIDC_CLIENT_ID": "gatehouse", "GATEHOUSE_OIDC_CLIENT_SECRET": "secret",
		"GATEHOUSE_COOKIE_SECRETS": e2etest.CookieSecret, "GATEHOUSE_COOKIE_SECURE": "false", "GATEHOUSE_UPSTREAM": up.URL,
		"GATEHOUSE_SERVER_SHUTDOWN_TIMEOUT": "2s",
	}, nil, ln)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() { cancel(); <-done }()
	metrics := "http://" + a.MetricsAddr()

	out, err := run(t, nil, "healthcheck", "--url", metrics+"/readyz")
	if err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("healthcheck of /readyz with the provider down: %v; want an error naming 503\n%s", err, out)
	}
	if out, err := run(t, map[string]string{"GATEHOUSE_METRICS_LISTEN": a.MetricsAddr()}, "healthcheck"); err != nil {
		t.Errorf("healthcheck (liveness) with the provider down: %v; want success\n%s", err, out)
	}
}

// TestSetFlags: --set overrides the environment, which overrides the file;
// an unknown key is refused by name.
func TestSetFlags(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.yaml")
	os.WriteFile(path, []byte(`
public_url: https://app.example.com
oidc: {issuer: https://idp.example.com, client_id: gatehouse, client_secret: from-file}
upstream: http://127.0.0.1:8000
session: {store: memory}
`), 0o600)
	env := map[string]string{
		"GATEHOUSE_COOKIE_SECRETS": "cookie-secret-0123456789abcdef0123456789",
		"GATEHOUSE_SESSION_STORE":  "postgres", // invalid unless --set wins
		// The Redis store needs a signing key every replica shares.
		"GATEHOUSE_TOKEN_SIGNING_KEY_FILES": e2etest.KeyFile(t),
	}
	out, err := run(t, env, "config", "check", "--config", path, "--print",
		"--set", "session.store=redis", "--set", "redis.mode=cluster", "--set", "redis.addrs=127.0.0.1:6379,127.0.0.1:6380")
	if err != nil {
		t.Fatalf("config check with --set: %v", err)
	}
	if !strings.Contains(out, "store: redis") || !strings.Contains(out, "127.0.0.1:6380") {
		t.Errorf("--set did not take effect:\n%s", out)
	}
	if _, err := run(t, env, "config", "check", "--config", path, "--set", "sesion.store=redis"); err == nil || !strings.Contains(err.Error(), "sesion.store") {
		t.Errorf("got %v; want an error naming sesion.store", err)
	}
	if _, err := run(t, env, "config", "check", "--config", path, "--set", "no-equals"); err == nil {
		t.Error("--set without = accepted")
	}
}
