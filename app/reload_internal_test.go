package app

import (
	"slices"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/config"
	"github.com/gatehouse/gatehouse/tokenmint"
)

func loadConfig(t *testing.T, vars map[string]string) *config.Config {
	t.Helper()
	base := map[string]string{
		"GATEHOUSE_PUBLIC_URL":         "https://app.example.com",
		"GATEHOUSE_OIDC_ISSUER":        "https://idp.example.com",
		"GATEHOUSE_OIDC_CLIENT_ID":     "gatehouse",
		"GATEHOUSE_OIDC_CLIENT_SECRET": "client-secret-one",
		"GATEHOUSE_COOKIE_SECRETS":     "cookie-secret-one-0123456789abcdef0123",
		"GATEHOUSE_UPSTREAM":           "http://127.0.0.1:8000",
	}
	for k, v := range vars {
		base[k] = v
	}
	cfg, err := config.Load("", func(k string) string { return base[k] })
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestPinRestartOnly: the keys read only at startup keep their running
// values and are reported; every other change stays.
func TestPinRestartOnly(t *testing.T) {
	running := loadConfig(t, nil)
	next := loadConfig(t, map[string]string{
		"GATEHOUSE_LISTEN":              "127.0.0.1:4999",
		"GATEHOUSE_REDIS_ADDRS":         "10.0.0.1:6379,10.0.0.2:6379",
		"GATEHOUSE_SERVER_IDLE_TIMEOUT": "5m",
		"GATEHOUSE_OIDC_ISSUER":         "https://other-idp.example.com",
		"GATEHOUSE_UPSTREAM":            "http://127.0.0.1:9000",
		"GATEHOUSE_COOKIE_SECRETS":      "cookie-secret-two-0123456789abcdef0123",
		"GATEHOUSE_LOG_ACCESS_LOG":      "false",
	})
	pinned := pinRestartOnly(running, next)
	slices.Sort(pinned)
	if want := []string{"listen", "oidc.issuer", "redis.addrs", "server.idle_timeout"}; !slices.Equal(pinned, want) {
		t.Errorf("pinned %v; want %v", pinned, want)
	}
	if next.Listen != running.Listen || !slices.Equal(next.Redis.Addrs, running.Redis.Addrs) ||
		next.Server.IdleTimeout != running.Server.IdleTimeout || next.OIDC.Issuer != running.OIDC.Issuer {
		t.Error("a restart-only key kept its new value")
	}
	changed := changedKeys(running, next)
	if want := []string{"cookie.secrets", "upstream", "log.access_log"}; !sameSet(changed, want) {
		t.Errorf("changed after pinning: %v; want %v", changed, want)
	}
	if next.Upstream != "http://127.0.0.1:9000" || next.Log.AccessLog {
		t.Error("a reloadable key lost its new value")
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func TestIsRestartOnly(t *testing.T) {
	for key, want := range map[string]bool{
		"listen": true, "metrics_listen": true, "server.shutdown_timeout": true, "redis.password": true,
		"session.store": true, "session.cache_ttl": true, "log.level": true, "oidc.issuer": true,
		"session.idle_timeout": false, "oidc.client_secret": false, "token.signing_key_files": false,
		"log.access_log": false, "routes": false, "redisx": false, "listener": false,
	} {
		if got := isRestartOnly(key); got != want {
			t.Errorf("isRestartOnly(%q) = %v; want %v", key, got, want)
		}
	}
}

// TestConfigHash: equal configurations and keys hash alike; a secret or a
// key that differs changes the hash, which never shows the secret.
func TestConfigHash(t *testing.T) {
	k1, _ := tokenmint.GenerateKey("ES256")
	k2, _ := tokenmint.GenerateKey("ES256")
	a := loadConfig(t, nil)
	h := configHash(a, []*tokenmint.Key{k1})
	if len(h) != 16 {
		t.Errorf("hash %q; want 16 hex digits", h)
	}
	if configHash(loadConfig(t, nil), []*tokenmint.Key{k1}) != h {
		t.Error("the same configuration and key hash differently")
	}
	if configHash(a, []*tokenmint.Key{k2}) == h {
		t.Error("another signing key hashes alike")
	}
	if configHash(a, []*tokenmint.Key{k1, k2}) == h {
		t.Error("a published key more hashes alike")
	}
	if configHash(loadConfig(t, map[string]string{"GATEHOUSE_OIDC_CLIENT_SECRET": "client-secret-two"}), []*tokenmint.Key{k1}) == h {
		t.Error("another client secret hashes alike")
	}
	if configHash(loadConfig(t, map[string]string{"GATEHOUSE_SESSION_IDLE_TIMEOUT": time.Hour.String()}), []*tokenmint.Key{k1}) == h {
		t.Error("another idle timeout hashes alike")
	}
}
