package app_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/app"
	"github.com/gatehouse/gatehouse/internal/e2etest"
	"github.com/gatehouse/gatehouse/sessionstore"
)

// publicRoute is one public catch-all route to upstream.
func publicRoute(upstream string) string {
	return fmt.Sprintf("  - name: home\n    path_prefix: /\n    upstream: %s\n    public: true\n", upstream)
}

// TestReloadFollowsRewrittenRoutesAndPolicies: rewriting the configuration
// file moves a route to another upstream and tightens a route's policy for
// the next requests of a signed-in user, without a restart, and the reload
// is counted and the configuration's hash changes.
func TestReloadFollowsRewrittenRoutesAndPolicies(t *testing.T) {
	a, b := named(t, "A"), named(t, "B")
	routes := func(appUpstream, opsGroup string) string {
		return fmt.Sprintf(`  - name: app
    path_prefix: /app/
    upstream: %s
  - name: ops
    path_prefix: /ops/
    upstream: %s
    allowed_groups: [%s]
`, appUpstream, a, opsGroup)
	}
	g := startGatehouse(t, settings{Routes: routes(a, "developers")}, nil)
	c := g.Browser()
	if _, body := g.Login(c, "/app/x", "alice", "alice-pw"); body != "A /app/x" {
		t.Fatalf("after login: %q; want A's answer", body)
	}
	if code, body := g.Get(c, "/ops/y"); code != 200 || body != "A /ops/y" {
		t.Fatalf("/ops/y before the reload: %d %q; want 200 from A (alice is a developer)", code, body)
	}
	before := g.ConfigHash()

	g.WriteConfig(settings{Routes: routes(b, "auditors")})
	r := g.WaitReload("the new routes", changed("routes"))
	if r.Trigger != app.TriggerFile {
		t.Errorf("trigger = %q; want %q", r.Trigger, app.TriggerFile)
	}
	if code, body := g.Get(c, "/app/x"); code != 200 || body != "B /app/x" {
		t.Errorf("/app/x after the reload: %d %q; want 200 from B", code, body)
	}
	if code, _ := g.Get(c, "/ops/y"); code != http.StatusForbidden {
		t.Errorf("/ops/y after the reload: %d; want 403 (only auditors now)", code)
	}
	if got := g.ConfigHash(); got == before || got != r.Hash {
		t.Errorf("gatehouse_config_info hash = %s (before %s, reload said %s); want the reload's new hash", got, before, r.Hash)
	}
	for series, want := range map[string]string{
		`gatehouse_config_reloads_total{result="success"}`: "1",
		`gatehouse_config_reloads_total{result="failure"}`: "0",
		`gatehouse_config_last_reload_successful`:          "1",
		`gatehouse_config_restart_required`:                "0",
	} {
		if got := g.Metric(series); got != want {
			t.Errorf("%s = %q; want %s", series, got, want)
		}
	}
	if !strings.Contains(g.Logs.String(), `"msg":"configuration reloaded"`) {
		t.Error(`no "configuration reloaded" log line`)
	}
}

// TestReloadRefusesInvalidConfiguration: a configuration that fails
// validation, or does not parse, is refused with every problem logged and
// counted as a failure; the running configuration keeps serving, until a
// good one is written.
func TestReloadRefusesInvalidConfiguration(t *testing.T) {
	a, b := named(t, "A"), named(t, "B")
	g := startGatehouse(t, settings{Routes: publicRoute(a)}, nil)
	before := g.ConfigHash()
	beforeSuccess := g.Metric("gatehouse_config_last_reload_success_timestamp_seconds")

	g.WriteConfig(settings{
		Routes: publicRoute("ftp://127.0.0.1/"),
		Extra:  "authorization:\n  allowed_emails: [not-an-email]\n",
	})
	r := g.NextReload()
	if r.Err == nil {
		t.Fatal("a configuration with two problems was applied; want it refused")
	}
	for _, key := range []string{"routes[0].upstream", "authorization.allowed_emails[0]"} {
		if !strings.Contains(r.Err.Error(), key) {
			t.Errorf("refusal %q does not name %s", r.Err, key)
		}
		if !strings.Contains(g.Logs.String(), key) {
			t.Errorf("the log does not name %s", key)
		}
	}
	if code, body := g.Get(http.DefaultClient, "/x"); code != 200 || body != "A /x" {
		t.Errorf("after the refused reload: %d %q; want the old route to A", code, body)
	}

	g.WriteRaw("routes: [\n")
	if r := g.NextReload(); r.Err == nil {
		t.Fatal("a file that does not parse was applied; want it refused")
	}
	for series, want := range map[string]string{
		`gatehouse_config_reloads_total{result="failure"}`:       "2",
		`gatehouse_config_reloads_total{result="success"}`:       "0",
		`gatehouse_config_last_reload_successful`:                "0",
		`gatehouse_config_last_reload_success_timestamp_seconds`: beforeSuccess,
	} {
		if got := g.Metric(series); got != want {
			t.Errorf("%s = %q; want %s", series, got, want)
		}
	}
	if got := g.ConfigHash(); got != before {
		t.Errorf("config hash = %s after refused reloads; want the running one, %s", got, before)
	}
	if !strings.Contains(g.Logs.String(), `"msg":"configuration reload refused; the running configuration keeps serving"`) {
		t.Error("no log line for the refused reload")
	}

	g.WriteConfig(settings{Routes: publicRoute(b)})
	g.WaitReload("the fixed configuration", changed("routes"))
	if code, body := g.Get(http.DefaultClient, "/x"); code != 200 || body != "B /x" {
		t.Errorf("after the fixed configuration: %d %q; want B", code, body)
	}
	if got := g.Metric("gatehouse_config_last_reload_successful"); got != "1" {
		t.Errorf("gatehouse_config_last_reload_successful = %s after a good reload; want 1", got)
	}
}

// TestReloadLetsInFlightRequestsFinish: a request held by the old upstream
// during a reload finishes there, with its answer, while new requests go to
// the new upstream.
func TestReloadLetsInFlightRequestsFinish(t *testing.T) {
	old := e2etest.NewUpstream(t)
	g := startGatehouse(t, settings{Routes: publicRoute(old.URL)}, nil)
	result := make(chan string, 1)
	go func() {
		c := &http.Client{Timeout: guard}
		resp, err := c.Get(g.URL + "/hold")
		if err != nil {
			result <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		result <- fmt.Sprintf("%d %s", resp.StatusCode, b)
	}()
	old.WaitHeld(t)

	g.WriteConfig(settings{Routes: publicRoute(named(t, "new"))})
	if err := g.App.Reload(t.Context()); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if r := g.NextReload(); r.Trigger != app.TriggerCall || !changed("routes")(r) {
		t.Fatalf("reload result %+v; want a call that changed routes", r)
	}
	if code, body := g.Get(http.DefaultClient, "/next"); code != 200 || body != "new /next" {
		t.Fatalf("a request after the reload: %d %q; want the new upstream", code, body)
	}
	select {
	case got := <-result:
		t.Fatalf("the held request ended before its upstream answered: %s", got)
	default:
	}
	old.Release()
	select {
	case got := <-result:
		if got != "200 upstream GET /hold" {
			t.Errorf("the request in flight during the reload got %q; want the old upstream's answer", got)
		}
	case <-time.After(guard):
		t.Fatal("the request in flight never finished")
	}
}

// TestReloadOnSIGHUP sends the process a real SIGHUP: Gatehouse reloads
// (and is not killed, SIGHUP's default), and says so.
func TestReloadOnSIGHUP(t *testing.T) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	g := startGatehouse(t, settings{Routes: publicRoute(named(t, "A"))}, hup)

	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	r := g.NextReload()
	if r.Trigger != app.TriggerSignal || r.Err != nil || len(r.Changed) != 0 {
		t.Fatalf("after SIGHUP: %+v; want a successful signal reload that changed nothing", r)
	}
	if got := g.Metric(`gatehouse_config_reloads_total{result="success"}`); got != "1" {
		t.Errorf("successful reloads = %s; want 1", got)
	}
	if code, _ := g.Get(http.DefaultClient, "/x"); code != 200 {
		t.Errorf("after SIGHUP: %d; want 200", code)
	}
}

// TestReloadKeepsRestartOnlyKeys: a reload that also changes keys only a
// restart applies (the metrics listener, the session store, Redis, the
// OpenID issuer) applies the rest, keeps those keys' running values, says
// which need a restart, and sets gatehouse_config_restart_required until
// they are changed back.
func TestReloadKeepsRestartOnlyKeys(t *testing.T) {
	a, b := named(t, "A"), named(t, "B")
	protected := func(upstream string) string {
		return fmt.Sprintf("  - name: app\n    path_prefix: /\n    upstream: %s\n", upstream)
	}
	g := startGatehouse(t, settings{Routes: protected(a)}, nil)
	g.WriteConfig(settings{
		Routes:        protected(b),
		MetricsListen: "127.0.0.1:1",
		Issuer:        "http://127.0.0.1:1",
		Extra:         "session:\n  store: redis\nredis:\n  addrs: [127.0.0.1:1]\n",
	})
	r := g.WaitReload("the new route", changed("routes"))
	want := []string{"metrics_listen", "oidc.issuer", "redis.addrs", "session.store"}
	if !slices.Equal(r.Restart, want) {
		t.Errorf("Restart = %v; want %v", r.Restart, want)
	}
	// Still the first metrics listener, the memory store and the first
	// provider: a login works, and lands on the new route.
	if got := g.Metric("gatehouse_config_restart_required"); got != "1" {
		t.Errorf("gatehouse_config_restart_required = %q; want 1", got)
	}
	c := g.Browser()
	if _, body := g.Login(c, "/x", "alice", "alice-pw"); body != "B /x" {
		t.Errorf("a login after the reload: %q; want it to work against the running issuer and reach B", body)
	}
	if !strings.Contains(g.Logs.String(), "need a restart") {
		t.Error("no log line naming the keys that need a restart")
	}

	g.WriteConfig(settings{Routes: protected(a)})
	r = g.WaitReload("the route back to A", changed("routes"))
	if len(r.Restart) != 0 {
		t.Errorf("Restart = %v after changing them back; want none", r.Restart)
	}
	if got := g.Metric("gatehouse_config_restart_required"); got != "0" {
		t.Errorf("gatehouse_config_restart_required = %q after changing them back; want 0", got)
	}
}

// TestReloadRotatesClientSecret: the OpenID client secret is read again
// from its file: a wrong one makes logins fail at the code exchange, the
// right one makes them work again, without a restart.
func TestReloadRotatesClientSecret(t *testing.T) {
	g := startGatehouse(t, settings{Routes: fmt.Sprintf("  - name: app\n    path_prefix: /\n    upstream: %s\n", named(t, "A"))}, nil)
	g.WriteFile("client-secret", "not-the-client-secret-0123456789\n")
	g.WaitReload("the wrong secret", changed("oidc.client_secret"))
	if _, body := g.Login(g.Browser(), "/x", "alice", "alice-pw"); body == "A /x" {
		t.Fatal("a login with the wrong client secret reached the upstream")
	}
	if got := g.Metric(`gatehouse_logins_total{outcome="exchange_failed"}`); got != "1" {
		t.Errorf("exchange failures = %q; want 1", got)
	}
	g.WriteFile("client-secret", e2etest.ClientSecret+"\n")
	g.WaitReload("the right secret", changed("oidc.client_secret"))
	if _, body := g.Login(g.Browser(), "/x", "alice", "alice-pw"); body != "A /x" {
		t.Errorf("a login with the right client secret again: %q; want A", body)
	}
}

// TestCookieSecretRotation: a session signed in under secret A survives
// the rotation to [B, A] (its next response re-issues the cookie under B)
// and the retirement of A: nobody is signed out, and the old cookie value
// no longer works once A is gone.
func TestCookieSecretRotation(t *testing.T) {
	g := startGatehouse(t, settings{Routes: fmt.Sprintf("  - name: app\n    path_prefix: /\n    upstream: %s\n", named(t, "A"))}, nil)
	c := g.Browser()
	if _, body := g.Login(c, "/x", "alice", "alice-pw"); body != "A /x" {
		t.Fatalf("login: %q", body)
	}
	cookie := func() string {
		u, _ := http.NewRequest("GET", g.URL, nil)
		for _, ck := range c.Jar.Cookies(u.URL) {
			if ck.Name == "gatehouse" {
				return ck.Value
			}
		}
		t.Fatal("no session cookie in the jar")
		return ""
	}
	old := cookie()
	codecOf := func(secrets ...string) *sessionstore.Codec {
		var b [][]byte
		for _, s := range secrets {
			b = append(b, []byte(s))
		}
		c, err := sessionstore.NewCodec(b, 0)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	g.WriteFile("cookie-secrets", secretB+"\n"+secretA+"\n")
	g.WaitReload("secrets B, A", changed("cookie.secrets"))
	if code, body := g.Get(c, "/y"); code != 200 || body != "A /y" {
		t.Fatalf("the first request after prepending B: %d %q; want 200", code, body)
	}
	reissued := cookie()
	if reissued == old {
		t.Fatal("the cookie was not re-issued on its first use after the rotation")
	}
	if _, err := codecOf(secretB).DecodeTicket("gatehouse", reissued); err != nil {
		t.Fatalf("the re-issued cookie does not decode with B alone: %v", err)
	}
	if _, err := codecOf(secretA).DecodeTicket("gatehouse", reissued); err == nil {
		t.Fatal("the re-issued cookie decodes with A; want it sealed with B")
	}

	g.WriteFile("cookie-secrets", secretB+"\n")
	g.WaitReload("secret B alone", changed("cookie.secrets"))
	if code, body := g.Get(c, "/z"); code != 200 || body != "A /z" {
		t.Errorf("after retiring A: %d %q; want still signed in", code, body)
	}
	if cookie() != reissued {
		t.Error("a current cookie was re-issued again")
	}
	req, _ := http.NewRequest("GET", g.URL+"/z", nil)
	req.Header.Set("Accept", "application/json")
	req.AddCookie(&http.Cookie{Name: "gatehouse", Value: old})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("the cookie sealed with the retired secret A: %d; want 401", resp.StatusCode)
	}
}

// TestReloadFollowsKubernetesSecretSwap: a Secret volume replaces its files
// by pointing the "..data" symlink at a new directory; the files' own
// symlinks never change. Gatehouse still notices and reloads.
func TestReloadFollowsKubernetesSecretSwap(t *testing.T) {
	vol := t.TempDir()
	version := func(name, content string) {
		if err := os.Mkdir(filepath.Join(vol, name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(vol, name, "cookie-secrets"), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	swap := func(name string) {
		tmp := filepath.Join(vol, "..data_tmp")
		if err := os.Symlink(name, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(vol, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	version("..2026_01_01_00_00_00.1", secretA+"\n")
	swap("..2026_01_01_00_00_00.1")
	if err := os.Symlink("..data/cookie-secrets", filepath.Join(vol, "cookie-secrets")); err != nil {
		t.Fatal(err)
	}
	s := settings{Routes: publicRoute(named(t, "A")), CookieSecretsFile: filepath.Join(vol, "cookie-secrets")}
	g := startGatehouse(t, s, nil)

	version("..2026_01_01_00_00_00.2", secretB+"\n"+secretA+"\n")
	swap("..2026_01_01_00_00_00.2")
	if err := os.RemoveAll(filepath.Join(vol, "..2026_01_01_00_00_00.1")); err != nil {
		t.Fatal(err)
	}
	r := g.WaitReload("the swapped secret", changed("cookie.secrets"))
	if r.Trigger != app.TriggerFile {
		t.Errorf("trigger = %q; want file", r.Trigger)
	}
}
