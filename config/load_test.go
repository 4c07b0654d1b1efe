package config

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// validYAML is the smallest configuration that validates.
const validYAML = `public_url: https://app.example.com
oidc:
  issuer: https://idp.example.com
  client_id: gatehouse
  client_secret: not-a-real-client-secret
cookie:
  secrets: [0123456789abcdef0123456789abcdef]
upstream: http://127.0.0.1:8000
`

// writeFile writes content to name in a fresh temporary directory.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// env returns a getenv reading from m.
func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func mustLoad(t *testing.T, yaml string, vars map[string]string) *Config {
	t.Helper()
	path := ""
	if yaml != "" {
		path = writeFile(t, "config.yaml", yaml)
	}
	c, err := Load(path, env(vars))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return c
}

func TestLoadDefaults(t *testing.T) {
	got, err := Load("", nil)
	if err != nil {
		t.Fatalf("Load(\"\", nil): %v", err)
	}
	want := defaults()
	if !reflect.DeepEqual(*got, want) {
		t.Errorf("Load(\"\", nil):\ngot  %+v\nwant %+v", *got, want)
	}
	// Spot-check the documented defaults, so a wrong defaults() cannot pass.
	checks := []struct {
		key       string
		got, want any
	}{
		{"listen", got.Listen, "127.0.0.1:4180"},
		{"metrics_listen", got.MetricsListen, "127.0.0.1:9180"},
		{"oidc.scopes", got.OIDC.Scopes, []string{"openid", "email", "profile", "offline_access"}},
		{"oidc.groups_claim", got.OIDC.GroupsClaim, "groups"},
		{"oidc.discovery_timeout", got.OIDC.DiscoveryTimeout, 10 * time.Second},
		{"oidc.provider_logout", got.OIDC.ProviderLogout, false},
		{"cookie.name", got.Cookie.Name, "gatehouse"},
		{"cookie.secure", got.Cookie.Secure, true},
		{"session.store", got.Session.Store, "memory"},
		{"session.idle_timeout", got.Session.IdleTimeout, 30 * time.Minute},
		{"session.max_lifetime", got.Session.MaxLifetime, 12 * time.Hour},
		{"session.memory_max_sessions", got.Session.MemoryMaxSessions, 100000},
		{"session.cache_ttl", got.Session.CacheTTL, 5 * time.Second},
		{"redis.key_prefix", got.Redis.KeyPrefix, "gatehouse"},
		{"redis.dial_timeout", got.Redis.DialTimeout, 3 * time.Second},
		{"redis.timeout", got.Redis.Timeout, time.Second},
		{"token.ttl", got.Token.TTL, 2 * time.Minute},
		{"token.algorithm", got.Token.Algorithm, "ES256"},
		{"token.header", got.Token.Header, "Authorization"},
		{"token.scheme", got.Token.Scheme, "Bearer"},
		{"log.format", got.Log.Format, "json"},
		{"log.level", got.Log.Level, "info"},
		{"log.access_log", got.Log.AccessLog, true},
		{"server.read_header_timeout", got.Server.ReadHeaderTimeout, 10 * time.Second},
		{"server.read_timeout", got.Server.ReadTimeout, 60 * time.Second},
		{"server.write_timeout", got.Server.WriteTimeout, time.Duration(0)},
		{"server.idle_timeout", got.Server.IdleTimeout, 120 * time.Second},
		{"server.shutdown_timeout", got.Server.ShutdownTimeout, 25 * time.Second},
		{"server.max_header_bytes", got.Server.MaxHeaderBytes, 32768},
		{"upstream_transport.dial_timeout", got.UpstreamTransport.DialTimeout, 3 * time.Second},
		{"upstream_transport.response_header_timeout", got.UpstreamTransport.ResponseHeaderTimeout, 30 * time.Second},
		{"upstream_transport.idle_conn_timeout", got.UpstreamTransport.IdleConnTimeout, 90 * time.Second},
		{"upstream_transport.max_idle_conns_per_host", got.UpstreamTransport.MaxIdleConnsPerHost, 256},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("default %s = %v; want %v", c.key, c.got, c.want)
		}
	}
}

// A file that sets some keys of a section keeps the defaults of the others.
func TestLoadFileKeepsOtherDefaults(t *testing.T) {
	c := mustLoad(t, validYAML+"session:\n  idle_timeout: 1h\n", nil)
	if c.Session.IdleTimeout != time.Hour {
		t.Errorf("session.idle_timeout = %v; want 1h", c.Session.IdleTimeout)
	}
	if c.Session.MaxLifetime != 12*time.Hour || c.Session.Store != "memory" {
		t.Errorf("session = %+v; want max_lifetime 12h and store memory kept", c.Session)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

// envSample returns an environment value for a key of type typ, different
// from its default def, and the value Load must decode it to.
func envSample(typ reflect.Type, def any) (string, any) {
	switch {
	case typ == durationType:
		return "42s", 42 * time.Second
	case typ.Kind() == reflect.String:
		return "from-env", "from-env"
	case typ.Kind() == reflect.Bool:
		if def.(bool) {
			return "false", false
		}
		return "true", true
	case typ.Kind() == reflect.Int:
		return "7", 7
	case typ.Kind() == reflect.Float64:
		return "0.25", 0.25
	case typ.Kind() == reflect.Slice && typ.Elem().Kind() == reflect.String:
		return " a, b ,,c", []string{"a", "b", "c"}
	}
	panic(fmt.Sprintf("no sample for %v", typ))
}

// Every key but routes is settable through its GATEHOUSE_ variable, even with
// no file and no default naming it (spf13/viper#761).
func TestLoadEnvEveryKey(t *testing.T) {
	if len(leaves) < 56 {
		t.Fatalf("only %d keys found by reflection; want every key of Config", len(leaves))
	}
	def := reflect.ValueOf(defaults())
	for _, l := range leaves {
		t.Run(l.env, func(t *testing.T) {
			raw, want := envSample(l.typ, def.FieldByIndex(l.index).Interface())
			c, err := Load("", env(map[string]string{l.env: raw}))
			if err != nil {
				t.Fatalf("Load with %s=%q: %v", l.env, raw, err)
			}
			got := reflect.ValueOf(*c).FieldByIndex(l.index).Interface()
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s=%q: %s = %#v; want %#v", l.env, raw, l.key, got, want)
			}
		})
	}
}

func TestLoadEnvOverridesFile(t *testing.T) {
	yaml := strings.Replace(validYAML, "cookie:\n", "cookie:\n  secure: true\n", 1) + `session:
  idle_timeout: 1h
log:
  access_log: true
routes:
  - name: api
    path_prefix: /api/
    upstream: http://127.0.0.1:8000
`
	c := mustLoad(t, yaml, map[string]string{
		"GATEHOUSE_PUBLIC_URL":                                 "https://env.example.com/",
		"GATEHOUSE_SESSION_IDLE_TIMEOUT":                       "45m",
		"GATEHOUSE_COOKIE_SECURE":                              "false",
		"GATEHOUSE_LOG_ACCESS_LOG":                             "0",
		"GATEHOUSE_OIDC_SCOPES":                                "openid, groups",
		"GATEHOUSE_COOKIE_SECRETS":                             "env-secret-1-0123456789abcdef0123456789,env-secret-2-0123456789abcdef0123456789",
		"GATEHOUSE_UPSTREAM_TRANSPORT_MAX_IDLE_CONNS_PER_HOST": "8",
		"GATEHOUSE_OIDC_CLIENT_ID":                             "", // empty counts as unset
		"GATEHOUSE_ROUTES":                                     "[]",
		"GATEHOUSE_ROUTES_0_NAME":                              "other",
	})
	checks := []struct {
		key       string
		got, want any
	}{
		{"public_url", c.PublicURL, "https://env.example.com"},
		{"token.issuer", c.Token.Issuer, "https://env.example.com"},
		{"session.idle_timeout", c.Session.IdleTimeout, 45 * time.Minute},
		{"session.max_lifetime", c.Session.MaxLifetime, 12 * time.Hour},
		{"cookie.secure", c.Cookie.Secure, false},
		{"log.access_log", c.Log.AccessLog, false},
		{"oidc.scopes", c.OIDC.Scopes, []string{"openid", "groups"}},
		{"cookie.secrets", c.Cookie.Secrets, []string{"env-secret-1-0123456789abcdef0123456789", "env-secret-2-0123456789abcdef0123456789"}},
		{"upstream_transport.max_idle_conns_per_host", c.UpstreamTransport.MaxIdleConnsPerHost, 8},
		{"oidc.client_id", c.OIDC.ClientID, "gatehouse"},
		{"routes[0].name", c.Routes[0].Name, "api"},
		{"len(routes)", len(c.Routes), 1},
	}
	for _, ch := range checks {
		if !reflect.DeepEqual(ch.got, ch.want) {
			t.Errorf("%s = %#v; want %#v", ch.key, ch.got, ch.want)
		}
	}
}

func TestLoadEnvBadValueNamesKey(t *testing.T) {
	tests := map[string]string{
		"GATEHOUSE_SESSION_IDLE_TIMEOUT":    "session.idle_timeout",
		"GATEHOUSE_SERVER_MAX_HEADER_BYTES": "server.max_header_bytes",
		"GATEHOUSE_COOKIE_SECURE":           "cookie.secure",
	}
	for name, key := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := Load("", env(map[string]string{name: "not-valid"}))
			if err == nil || !strings.Contains(err.Error(), key+": ") {
				t.Errorf("Load with %s=not-valid: error %v; want it to name %s", name, err, key)
			}
		})
	}
}

func TestLoadSecretFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	clientSecret := write("client-secret", "s3cret with spaces inside\r\n\n")
	cookieSecrets := write("cookie-secrets", "# rotated 2024-05\n\nnewest-0123456789abcdef0123456789abcdef\n  previous-0123456789abcdef0123456789abcdef  \n# oldest, retired\n")
	redisPassword := write("redis-password", "redis-pw\n")
	c := mustLoad(t, "", map[string]string{
		"GATEHOUSE_PUBLIC_URL":              "https://app.example.com",
		"GATEHOUSE_OIDC_ISSUER":             "https://idp.example.com",
		"GATEHOUSE_OIDC_CLIENT_ID":          "gatehouse",
		"GATEHOUSE_OIDC_CLIENT_SECRET_FILE": clientSecret,
		"GATEHOUSE_COOKIE_SECRETS_FILE":     cookieSecrets,
		"GATEHOUSE_REDIS_PASSWORD_FILE":     redisPassword,
		"GATEHOUSE_UPSTREAM":                "http://127.0.0.1:8000",
	})
	if got, want := c.OIDC.ClientSecret, "s3cret with spaces inside"; got != want {
		t.Errorf("oidc.client_secret = %q; want %q", got, want)
	}
	if got, want := c.Cookie.Secrets, []string{"newest-0123456789abcdef0123456789abcdef", "previous-0123456789abcdef0123456789abcdef"}; !slices.Equal(got, want) {
		t.Errorf("cookie.secrets = %q; want %q", got, want)
	}
	if got, want := c.CookieSecrets(), [][]byte{[]byte("newest-0123456789abcdef0123456789abcdef"), []byte("previous-0123456789abcdef0123456789abcdef")}; !reflect.DeepEqual(got, want) {
		t.Errorf("CookieSecrets() = %q; want %q", got, want)
	}
	if got, want := c.Redis.Password, "redis-pw"; got != want {
		t.Errorf("redis.password = %q; want %q", got, want)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

// A Config built by hand (no Load) still gets its *_file keys checked.
func TestValidateHandBuiltSecretFiles(t *testing.T) {
	c := defaults()
	c.PublicURL = "https://app.example.com"
	c.Token.Issuer = c.PublicURL
	c.OIDC.Issuer = "https://idp.example.com"
	c.OIDC.ClientID = "gatehouse"
	c.OIDC.ClientSecretFile = "testdata/secrets/client-secret"
	c.Cookie.Secrets = []string{"0123456789abcdef0123456789abcdef"}
	c.Upstream = "http://127.0.0.1:8000"
	if err := c.Validate(); err != nil {
		t.Errorf("Validate with a readable client_secret_file: %v", err)
	}
	c.OIDC.ClientSecretFile = "testdata/no-such-file"
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "oidc.client_secret_file: open testdata/no-such-file") {
		t.Errorf("Validate with a missing client_secret_file: %v; want it named", err)
	}
}

func TestLoadRouteClaimsKeepCase(t *testing.T) {
	c := mustLoad(t, validYAML+`routes:
  - name: api
    path_prefix: /api/
    upstream: http://127.0.0.1:8000
    claims:
      employeeNumber: employee_id
      Dept: departmentName
`, nil)
	want := map[string]string{"employeeNumber": "employee_id", "Dept": "departmentName"}
	if got := c.Routes[0].Claims; !reflect.DeepEqual(got, want) {
		t.Errorf("routes[0].claims = %v; want %v (case kept)", got, want)
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       string // substring of the error
	}{
		{"typo", "oidc:\n  isuer: x\n", `line 2: unknown key "oidc.isuer" (did you mean "oidc.issuer"?)`},
		{"top-level typo", "listne: x\n", `unknown key "listne" (did you mean "listen"?)`},
		{"far from any key", "frobnicate: 1\n", `unknown key "frobnicate"`},
		{"route typo", "routes:\n  - nmae: x\n", `unknown key "routes[0].nmae" (did you mean "routes[0].name"?)`},
		{"wrong case", "OIDC:\n  issuer: x\n", `unknown key "OIDC"`},
		{"non-string key", "oidc:\n  1: x\n", `unknown key "oidc.1"`},
		{"merge of unknown key", "base: &b {isuer: x}\noidc:\n  <<: *b\n", `unknown key "base"`},
		{"scalar section", "oidc: x\n", "oidc: must be a mapping"},
		{"list for scalar", "listen: [a]\n", "listen: must be a single value"},
		{"map for list", "oidc:\n  scopes: {a: b}\n", "oidc.scopes: must be a list"},
		{"bare number duration", "token:\n  ttl: 120\n", "token.ttl: 120 has no unit"},
		{"bad duration", "token:\n  ttl: 2 minutes\n", `token.ttl: "2 minutes" is not a duration`},
		{"bad int", "redis:\n  db: one\n", "redis.db: cannot parse"},
		{"bad bool in route", "routes:\n  - public: perhaps\n", "routes[0].public: cannot parse"},
		{"two documents", "listen: a\n---\nlisten: b\n", "more than one YAML document"},
		{"syntax", "oidc: [\n", "yaml: "},
		{"top-level scalar", "hello\n", "the top level: must be a mapping"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := writeFile(t, "config.yaml", tt.yaml)
			c, err := Load(p, nil)
			if err == nil {
				t.Fatalf("Load(%q) = %+v; want an error mentioning %q", tt.yaml, c, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "config: ") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Load(%q) error:\n%v\nwant it to start with \"config: \" and mention %q", tt.yaml, err, tt.want)
			}
		})
	}
}

func TestLoadFiles(t *testing.T) {
	t.Run("missing", func(t *testing.T) {
		if _, err := Load("testdata/no-such-config.yaml", nil); err == nil || !strings.Contains(err.Error(), "no-such-config.yaml") {
			t.Errorf("Load of a missing file: %v; want an error naming it", err)
		}
	})
	t.Run("empty", func(t *testing.T) {
		c := mustLoad(t, "\n# nothing but a comment\n", nil)
		if c.Listen != "127.0.0.1:4180" {
			t.Errorf("listen = %q; want the default", c.Listen)
		}
	})
	t.Run("nulls mean defaults", func(t *testing.T) {
		c := mustLoad(t, "oidc:\nsession:\n  store: ~\nlisten: null\n", nil)
		if c.Session.Store != "memory" || c.Listen != "127.0.0.1:4180" || c.OIDC.GroupsClaim != "groups" {
			t.Errorf("store %q listen %q groups_claim %q; want the defaults", c.Session.Store, c.Listen, c.OIDC.GroupsClaim)
		}
	})
	t.Run("anchors and merges", func(t *testing.T) {
		c := mustLoad(t, validYAML+`routes:
  - &api {name: api, path_prefix: /api/, upstream: "http://127.0.0.1:8000"}
  - <<: *api
    name: admin
    path_prefix: /admin/
`, nil)
		if len(c.Routes) != 2 || c.Routes[1].Upstream != "http://127.0.0.1:8000" || c.Routes[1].Name != "admin" {
			t.Errorf("routes = %+v; want the merged admin route", c.Routes)
		}
	})
	t.Run("too large", func(t *testing.T) {
		p := writeFile(t, "config.yaml", "# "+strings.Repeat("x", maxFileSize)+"\n")
		if _, err := Load(p, nil); err == nil || !strings.Contains(err.Error(), "larger than") {
			t.Errorf("Load of a %d-byte file: %v; want a size error", maxFileSize+3, err)
		}
	})
	t.Run("public_url trailing slash", func(t *testing.T) {
		c := mustLoad(t, strings.Replace(validYAML, "https://app.example.com", "https://app.example.com/", 1), nil)
		if c.PublicURL != "https://app.example.com" || c.Token.Issuer != "https://app.example.com" {
			t.Errorf("public_url %q, token.issuer %q; want both https://app.example.com", c.PublicURL, c.Token.Issuer)
		}
	})
}

func TestEffectiveRoutes(t *testing.T) {
	tests := []struct {
		name string
		c    Config
		want []Route
	}{
		{
			name: "catch-all from upstream",
			c:    Config{PublicURL: "https://app.example.com", Upstream: "http://127.0.0.1:8000"},
			want: []Route{{Name: "default", PathPrefix: "/", Upstream: "http://127.0.0.1:8000", Audience: "app.example.com"}},
		},
		{
			name: "catch-all keeps the port in its audience",
			c:    Config{PublicURL: "http://127.0.0.1:4180", Upstream: "http://127.0.0.1:8000"},
			want: []Route{{Name: "default", PathPrefix: "/", Upstream: "http://127.0.0.1:8000", Audience: "127.0.0.1:4180"}},
		},
		{
			name: "catch-all without a public URL",
			c:    Config{Upstream: "http://127.0.0.1:8000"},
			want: []Route{{Name: "default", PathPrefix: "/", Upstream: "http://127.0.0.1:8000", Audience: "default"}},
		},
		{
			name: "routes, audience defaulting to the name",
			c: Config{Upstream: "http://ignored", Routes: []Route{
				{Name: "api", PathPrefix: "/api/", Upstream: "http://a", Audience: "django"},
				{Name: "web", PathPrefix: "/", Upstream: "http://w"},
			}},
			want: []Route{
				{Name: "api", PathPrefix: "/api/", Upstream: "http://a", Audience: "django"},
				{Name: "web", PathPrefix: "/", Upstream: "http://w", Audience: "web"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.c.EffectiveRoutes()
			for i := range got { // compare nil and empty alike
				if len(got[i].AllowedGroups) == 0 {
					got[i].AllowedGroups = nil
				}
				if len(got[i].Groups) == 0 {
					got[i].Groups = nil
				}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("EffectiveRoutes() = %+v; want %+v", got, tt.want)
			}
		})
	}
	// The result is a copy: changing it leaves the Config alone.
	c := Config{Routes: []Route{{Name: "api", Groups: []string{"a"}, Claims: map[string]string{"x": "y"}}}}
	r := c.EffectiveRoutes()
	r[0].Groups[0], r[0].Claims["x"], r[0].Name = "changed", "changed", "changed"
	if c.Routes[0].Groups[0] != "a" || c.Routes[0].Claims["x"] != "y" || c.Routes[0].Name != "api" {
		t.Errorf("changing EffectiveRoutes' result changed the Config: %+v", c.Routes[0])
	}
}

// No secret reaches a log line, a %v, or Redacted.
func TestSecretsNeverPrinted(t *testing.T) {
	const (
		clientSecret  = "client-secret-do-not-print"
		cookieSecret  = "cookie-secret-do-not-print-0123456789"
		redisPassword = "redis-password-do-not-print"
	)
	c := mustLoad(t, validYAML, map[string]string{
		"GATEHOUSE_OIDC_CLIENT_SECRET": clientSecret,
		"GATEHOUSE_COOKIE_SECRETS":     cookieSecret,
		"GATEHOUSE_REDIS_PASSWORD":     redisPassword,
	})
	var logs bytes.Buffer
	for _, h := range []slog.Handler{slog.NewJSONHandler(&logs, nil), slog.NewTextHandler(&logs, nil)} {
		slog.New(h).Info("config", "config", c, "oidc", c.OIDC, "cookie", c.Cookie, "redis", c.Redis)
	}
	outputs := map[string]string{
		"slog":         logs.String(),
		"%v":           fmt.Sprintf("%v", c),
		"%+v":          fmt.Sprintf("%+v", *c),
		"%#v":          fmt.Sprintf("%#v", *c),
		"%v of OIDC":   fmt.Sprintf("%v", c.OIDC),
		"%s of Cookie": c.Cookie.String(),
		"Redacted":     fmt.Sprintf("%v", c.Redacted()),
	}
	for name, out := range outputs {
		for _, secret := range []string{clientSecret, cookieSecret, redisPassword} {
			if strings.Contains(out, secret) {
				t.Errorf("%s output contains a secret: %s", name, out)
			}
		}
		if !strings.Contains(out, "REDACTED") {
			t.Errorf("%s output does not say REDACTED: %s", name, out)
		}
	}
	red := c.Redacted()
	if got := red["oidc"].(map[string]any)["client_secret"]; got != "REDACTED" {
		t.Errorf(`Redacted()["oidc"]["client_secret"] = %v; want REDACTED`, got)
	}
	if got := red["redis"].(map[string]any)["password_file"]; got != "" {
		t.Errorf(`Redacted()["redis"]["password_file"] = %v; want "" (paths are not secret, and it is unset)`, got)
	}
}

func BenchmarkLoad(b *testing.B) {
	p := filepath.Join(b.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte(validYAML), 0o600); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		c, err := Load(p, nil)
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Validate(); err != nil {
			b.Fatal(err)
		}
	}
}

func TestEnvName(t *testing.T) {
	for key, want := range map[string]string{
		"session.store":      "GATEHOUSE_SESSION_STORE",
		"oidc.client_secret": "GATEHOUSE_OIDC_CLIENT_SECRET",
		"public_url":         "GATEHOUSE_PUBLIC_URL",
		"redis.addrs":        "GATEHOUSE_REDIS_ADDRS",
		"routes":             "",
		"session.nope":       "",
		"":                   "",
	} {
		got, ok := EnvName(key)
		if got != want || ok != (want != "") {
			t.Errorf("EnvName(%q) = %q, %v; want %q", key, got, ok, want)
		}
	}
}

// TestClaimMappingsTheMinterDrops: a route may not map a claim the minter
// sets itself or refuses to carry (tokenmint.ReservedClaim is the one list),
// so a mapping is never accepted at startup and dropped at every request.
func TestClaimMappingsTheMinterDrops(t *testing.T) {
	for _, name := range []string{"sub", "azp", "nonce", "events", "at_hash", "scope", "scp", "cnf", "act"} {
		c := mustLoad(t, validYAML+"routes:\n  - {name: r, path_prefix: /, upstream: http://127.0.0.1:8000, claims: {"+name+": department}}\n", nil)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), "routes[0].claims."+name) {
			t.Errorf("mapping %q: Validate() = %v; want it refused, by key", name, err)
		}
	}
	c := mustLoad(t, validYAML+"routes:\n  - {name: r, path_prefix: /, upstream: http://127.0.0.1:8000, claims: {department: dept}}\n", nil)
	if err := c.Validate(); err != nil {
		t.Errorf("an ordinary mapping: %v", err)
	}
}
