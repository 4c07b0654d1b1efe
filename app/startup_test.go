package app_test

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/app"
	"github.com/gatehouse/gatehouse/config"
	"github.com/gatehouse/gatehouse/internal/e2etest"
)

// TestEphemeralKeyRefusedWithRedis: replicas sharing a Redis each make
// their own ephemeral key, so tokens one signs fail at another's JWKS;
// startup refuses that, naming the key to set. The memory store (one
// instance, as the demo runs it) still starts with an ephemeral key.
func TestEphemeralKeyRefusedWithRedis(t *testing.T) {
	vars := map[string]string{
		"GATEHOUSE_PUBLIC_URL":         "http://127.0.0.1:4180",
		"GATEHOUSE_LISTEN":             "127.0.0.1:0",
		"GATEHOUSE_METRICS_LISTEN":     "127.0.0.1:0",
		"GATEHOUSE_OIDC_ISSUER":        "http://127.0.0.1:1",
		"GATEHOUSE_OIDC_CLIENT_ID":     "gatehouse",
		"GATEHOUSE_OIDC_CLIENT_SECRET": "client-secret",
		"GATEHOUSE_COOKIE_SECRETS":     e2etest.CookieSecret,
		"GATEHOUSE_UPSTREAM":           "http://127.0.0.1:1",
		"GATEHOUSE_COOKIE_SECURE":      "false",
	}
	load := func(extra map[string]string) *config.Config {
		t.Helper()
		cfg, err := config.Load("", func(k string) string {
			if v, ok := extra[k]; ok {
				return v
			}
			return vars[k]
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	log := slog.New(slog.DiscardHandler)

	redis := load(map[string]string{"GATEHOUSE_SESSION_STORE": "redis", "GATEHOUSE_REDIS_ADDRS": "127.0.0.1:1"})
	_, err := app.New(redis, log, app.Options{})
	if err == nil || !strings.Contains(err.Error(), "token.signing_key_files") {
		t.Fatalf("app.New with Redis and no signing key: %v; want an error naming token.signing_key_files", err)
	}

	if _, err := app.New(load(nil), log, app.Options{}); err != nil {
		t.Errorf("app.New with the memory store and no signing key: %v; want it to start", err)
	}
}
