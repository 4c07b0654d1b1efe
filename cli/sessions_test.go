package cli

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/internal/e2etest"
	"github.com/gatehouse/gatehouse/internal/testredis"
)

// uaTransport sends a fixed User-Agent, as a given browser would.
type uaTransport struct {
	rt http.RoundTripper
	ua string
}

func (u uaTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("User-Agent", u.ua)
	return u.rt.RoundTrip(r)
}

// signedIn is one browser signed in to Gatehouse.
type signedIn struct {
	client *http.Client
	cookie *http.Cookie
	sid    string // the public sid, from the token the upstream received
}

func signIn(t *testing.T, e *e2etest.Env, user, password, ua string) signedIn {
	t.Helper()
	c := e.Browser()
	c.Transport = uaTransport{c.Transport, ua}
	if resp, body := e.Login(c, "/", user, password); resp.StatusCode != http.StatusOK {
		t.Fatalf("login of %s ended with %d: %.200s", user, resp.StatusCode, body)
	}
	token, ok := strings.CutPrefix(e.Up.LastRequest().Header.Get("Authorization"), "Bearer ")
	if !ok {
		t.Fatal("the upstream got no minted token")
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("minted token has %d parts", len(parts))
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims struct {
		SID string `json:"sid"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil || claims.SID == "" {
		t.Fatalf("minted token's sid: %q, %v", claims.SID, err)
	}
	ck := e.SessionCookie(c, "gatehouse")
	if ck == nil {
		t.Fatal("no session cookie after login")
	}
	return signedIn{client: c, cookie: ck, sid: claims.SID}
}

// status is what Gatehouse answers the browser's session with, as a script's
// fetch (401 rather than a login redirect when it is gone).
func status(t *testing.T, e *e2etest.Env, b signedIn) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.URL+"/oauth2/userinfo", nil)
	req.AddCookie(b.cookie)
	resp := e.Do(req)
	resp.Body.Close()
	return resp.StatusCode
}

// TestSessionsCommand signs users in through a running Gatehouse on a real
// Redis, then lists and ends their sessions with the command line, by
// sid, by email and by subject: each ends exactly the sessions named, and
// the running Gatehouse refuses their cookies although its cache (a minute
// here) still held them, since the command announces what it ends.
func TestSessionsCommand(t *testing.T) {
	shared := testredis.Start(t, testredis.Options{})
	e := e2etest.Start(t, e2etest.Options{Store: "redis", Redis: shared,
		Env: map[string]string{"GATEHOUSE_SESSION_CACHE_TTL": "1m"}})
	env := map[string]string{
		"GATEHOUSE_PUBLIC_URL":         e.URL,
		"GATEHOUSE_OIDC_ISSUER":        e.IDP.URL,
		"GATEHOUSE_OIDC_CLIENT_ID":     e2etest.ClientID,
		"GATEHOUSE_OIDC_CLIENT_SECRET": e2etest.ClientSecret,
		"GATEHOUSE_COOKIE_SECRETS":     e2etest.CookieSecret,
		"GATEHOUSE_COOKIE_SECURE":      "false",
		"GATEHOUSE_UPSTREAM":           e.Up.URL,
		"GATEHOUSE_SESSION_STORE":      "redis",
		"GATEHOUSE_REDIS_ADDRS":        shared.Addr,
	}
	const (
		firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
		iphone  = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
	)
	laptop := signIn(t, e, "alice", "alice-pw", firefox)
	phone := signIn(t, e, "alice", "alice-pw", iphone)
	bob := signIn(t, e, "bob", "bob-pw", firefox)
	for _, b := range []signedIn{laptop, phone, bob} {
		if got := status(t, e, b); got != http.StatusOK { // now in the replica's cache
			t.Fatalf("a fresh session answers %d; want 200", got)
		}
	}
	secrets := []string{laptop.cookie.Value, phone.cookie.Value, bob.cookie.Value, e2etest.CookieSecret, e2etest.ClientSecret, "eyJ"}
	noSecrets := func(what, out string) {
		t.Helper()
		for _, s := range secrets {
			if strings.Contains(out, s) {
				t.Errorf("%s shows a secret, cookie or token (%.12s...):\n%s", what, s, out)
			}
		}
	}

	// list, as a table: every session of the user, what it was signed in
	// from, and nothing secret.
	stdout, stderr, err := runSplit(t, env, "sessions", "list", "--sub", "u-alice")
	if err != nil {
		t.Fatalf("sessions list --sub: %v\n%s", err, stderr)
	}
	for _, want := range []string{laptop.sid, phone.sid, "alice@example.com", "browser", "Firefox on Linux", "Safari on iOS", "127.0.0.0/24", "2 live session(s)"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("sessions list --sub lacks %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout, bob.sid) {
		t.Errorf("sessions list --sub u-alice shows bob's session:\n%s", stdout)
	}
	noSecrets("sessions list", stdout+stderr)

	// list --json, by email (any case) and by sid.
	listJSON := func(args ...string) []sessionJSON {
		t.Helper()
		stdout, stderr, err := runSplit(t, env, append([]string{"sessions", "list", "--json"}, args...)...)
		if err != nil {
			t.Fatalf("sessions list %v: %v\n%s", args, err, stderr)
		}
		noSecrets("sessions list --json", stdout)
		var out []sessionJSON
		if err := json.Unmarshal([]byte(stdout), &out); err != nil {
			t.Fatalf("sessions list --json %v: %v\n%s", args, err, stdout)
		}
		return out
	}
	sids := func(list []sessionJSON) []string {
		var out []string
		for _, s := range list {
			out = append(out, s.SID)
		}
		slices.Sort(out)
		return out
	}
	want := []string{laptop.sid, phone.sid}
	slices.Sort(want)
	if got := sids(listJSON("--email", "ALICE@example.com")); !slices.Equal(got, want) {
		t.Errorf("list --email = %v; want %v", got, want)
	}
	one := listJSON("--session", bob.sid)
	if len(one) != 1 || one[0].Subject != "u-bob" || one[0].Device != "Firefox on Linux" || one[0].CreatedAt == nil ||
		one[0].LastSeen == nil || one[0].ExpiresAt == nil || !one[0].ExpiresAt.After(*one[0].CreatedAt) {
		t.Errorf("list --session = %+v; want bob's session, with its times", one)
	}

	// revoke: each selector ends exactly its sessions, on the running
	// replica too, and writes one audit line.
	revoke := func(flag, value string, n int) {
		t.Helper()
		stdout, stderr, err := runSplit(t, env, "sessions", "revoke", flag, value, "--reason", "ticket 42")
		if err != nil {
			t.Fatalf("sessions revoke %s: %v\n%s", flag, err, stderr)
		}
		want := fmt.Sprintf("ended %d session(s) on every replica", n)
		if n == 0 {
			want = "no live session matched; nothing ended"
		}
		if !strings.Contains(stdout, want) {
			t.Errorf("sessions revoke %s printed %q; want %q", flag, stdout, want)
		}
		var audit map[string]any
		if err := json.Unmarshal([]byte(stderr), &audit); err != nil {
			t.Fatalf("audit line %q: %v", stderr, err)
		}
		if audit["msg"] != "audit: sessions revoked" || audit["what"] != "cli_revoke" || audit["by"] == "" ||
			audit["sessions"] != float64(n) || audit["reason"] != "ticket 42" {
			t.Errorf("audit line %v; want who, what and how many (%d)", audit, n)
		}
		noSecrets("the audit line", stderr)
	}
	gone := func(b signedIn, who string) {
		t.Helper()
		e2etest.Eventually(t, who+"'s revoked session to be refused", func() error {
			if got := status(t, e, b); got != http.StatusUnauthorized {
				return fmt.Errorf("answered %d", got)
			}
			return nil
		})
	}
	alive := func(b signedIn, who string) {
		t.Helper()
		if got := status(t, e, b); got != http.StatusOK {
			t.Errorf("%s's session answers %d; want 200: it was not named", who, got)
		}
	}

	revoke("--session", laptop.sid, 1)
	if got := sids(listJSON("--sub", "u-alice")); !slices.Equal(got, []string{phone.sid}) {
		t.Errorf("after revoke --session, alice's sessions = %v; want only the phone's", got)
	}
	gone(laptop, "alice's laptop")
	alive(phone, "alice's phone")
	alive(bob, "bob")

	revoke("--email", "alice@EXAMPLE.com", 1)
	gone(phone, "alice's phone")
	alive(bob, "bob")

	revoke("--sub", "u-bob", 1)
	gone(bob, "bob")

	// The command line has no /metrics; the replica counts what it announced.
	e2etest.Eventually(t, "the replica to count the operator's revocations", func() error {
		resp, err := http.Get(e.MetricsURL + "/metrics")
		if err != nil {
			return err
		}
		body := e2etest.ReadBody(t, resp)
		if want := "gatehouse_sessions_revoked_by_operator_total 3\n"; !strings.Contains(body, want) {
			return fmt.Errorf("/metrics lacks %q", want)
		}
		return nil
	})

	revoke("--sub", "u-bob", 0)
	if out, _, _ := runSplit(t, env, "sessions", "list", "--sub", "u-bob"); !strings.Contains(out, "no live sessions") {
		t.Errorf("list after the revocations: %q; want no live sessions", out)
	}
}

// TestSessionsCommandRefusals: the memory store, a bad selector, an
// unreachable Redis and a Redis store without a shared signing key are each
// refused with a message that says what to do.
func TestSessionsCommandRefusals(t *testing.T) {
	base := map[string]string{
		"GATEHOUSE_PUBLIC_URL":         "http://127.0.0.1:4180",
		"GATEHOUSE_OIDC_ISSUER":        "http://127.0.0.1:1",
		"GATEHOUSE_OIDC_CLIENT_ID":     "gatehouse",
		"GATEHOUSE_OIDC_CLIENT_SECRET": "secret",
		"GATEHOUSE_COOKIE_SECRETS":     e2etest.CookieSecret,
		"GATEHOUSE_COOKIE_SECURE":      "false",
		"GATEHOUSE_UPSTREAM":           "http://127.0.0.1:1",
	}
	with := func(extra map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	redis := with(map[string]string{"GATEHOUSE_SESSION_STORE": "redis", "GATEHOUSE_REDIS_ADDRS": e2etest.DeadURL(t)[len("http://"):]})

	tests := []struct {
		name  string
		env   map[string]string
		args  []string
		want  string
		usage bool // exit status 2
	}{
		{"memory store", base, []string{"sessions", "list", "--sub", "u-alice"}, "sessions live in the serving process's memory; use the Redis store", false},
		{"no selector", redis, []string{"sessions", "revoke"}, "exactly one of --sub, --email or --session", true},
		{"two selectors", redis, []string{"sessions", "list", "--sub", "a", "--email", "b"}, "exactly one of", true},
		{"no verb", redis, []string{"sessions"}, "gatehouse sessions list|revoke", true},
		{"unknown verb", redis, []string{"sessions", "kill", "--sub", "a"}, "gatehouse sessions list|revoke", true},
		{"list has no --reason", redis, []string{"sessions", "list", "--sub", "a", "--reason", "x"}, "gatehouse sessions list -h", true},
		{"Redis down", redis, []string{"sessions", "revoke", "--sub", "u-alice"}, "redis.addrs", false},
		{"config check: Redis without a signing key", redis, []string{"config", "check"}, "token.signing_key_files: required with session.store: redis", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := runSplit(t, tt.env, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v; want an error containing %q", err, tt.want)
			}
			var coded interface{ ExitCode() int }
			if isUsage := errors.As(err, &coded) && coded.ExitCode() == 2; isUsage != tt.usage {
				t.Errorf("usage error (exit 2) = %v; want %v", isUsage, tt.usage)
			}
		})
	}

	for _, args := range [][]string{{"sessions", "-h"}, {"sessions", "list", "-h"}, {"sessions", "revoke", "--help"}, {"help", "sessions", "revoke"}} {
		var out bytes.Buffer
		if err := Run(context.Background(), append([]string{"gatehouse"}, args...), func(string) string { return "" }, &out, &out); err != nil {
			t.Errorf("%q: %v; want the help page", args, err)
		}
		if !strings.Contains(out.String(), "--session") && !strings.Contains(out.String(), "-session sid") {
			t.Errorf("%q printed %q; want the selectors", args, out.String())
		}
	}
}
