package testredis_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/gatehouse/gatehouse/internal/testredis"
)

func client(t *testing.T, srv *testredis.Server, password string, withTLS bool) *redis.Client {
	t.Helper()
	opts := &redis.Options{
		Addr:                     srv.Addr,
		Password:                 password,
		DialTimeout:              time.Second,
		MaxRetries:               -1,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	}
	if withTLS {
		opts.TLSConfig = srv.TLSConfig
	}
	c := redis.NewClient(opts)
	t.Cleanup(func() { c.Close() })
	return c
}

func ping(c *redis.Client) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return c.Ping(ctx).Err()
}

func TestStart(t *testing.T) {
	tests := []struct {
		name string
		opts testredis.Options
	}{
		{"plain", testredis.Options{}},
		{"password", testredis.Options{Password: "s3cret with spaces"}},
		{"tls", testredis.Options{TLS: true}},
		{"tls and password", testredis.Options{TLS: true, Password: "s3cret"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := testredis.Start(t, tt.opts)
			if !strings.HasPrefix(srv.Addr, "127.0.0.1:") {
				t.Errorf("Addr = %q; want 127.0.0.1:port", srv.Addr)
			}
			if got := srv.TLSConfig != nil; got != tt.opts.TLS {
				t.Errorf("TLSConfig set = %v; want %v", got, tt.opts.TLS)
			}
			if err := ping(client(t, srv, srv.Password, tt.opts.TLS)); err != nil {
				t.Fatalf("PING with the server's settings: %v; want PONG", err)
			}
			if tt.opts.Password != "" {
				if err := ping(client(t, srv, "wrong", tt.opts.TLS)); err == nil {
					t.Error("PING with a wrong password succeeded; want an authentication error")
				}
			}
			if tt.opts.TLS {
				if err := ping(client(t, srv, srv.Password, false)); err == nil {
					t.Error("plain-text PING to a TLS server succeeded; want an error")
				}
			}
		})
	}
}

func TestStopRestart(t *testing.T) {
	srv := testredis.Start(t, testredis.Options{Password: "pw"})
	c := client(t, srv, srv.Password, false)
	ctx := context.Background()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}

	srv.Stop()
	srv.Stop() // idempotent
	if err := ping(c); err == nil {
		t.Fatal("PING after Stop succeeded; want a connection error")
	}

	addr := srv.Addr
	srv.Restart(t)
	if srv.Addr != addr {
		t.Errorf("Addr after Restart = %q; want %q", srv.Addr, addr)
	}
	// The same client recovers without being recreated.
	if err := ping(c); err != nil {
		t.Fatalf("PING after Restart: %v; want PONG", err)
	}
	if err := c.Get(ctx, "k").Err(); err != redis.Nil {
		t.Errorf("GET k after Restart: err = %v; want redis.Nil (nothing is kept on disk)", err)
	}

	// Restart of a running server replaces it.
	srv.Restart(t)
	if err := ping(c); err != nil {
		t.Fatalf("PING after second Restart: %v; want PONG", err)
	}
}
