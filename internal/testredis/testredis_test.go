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

func TestStartSentinel(t *testing.T) {
	d := testredis.StartSentinel(t, testredis.SentinelOptions{Password: "data", SentinelPassword: "sent"})
	if len(d.Sentinels) != 3 {
		t.Fatalf("Sentinels = %d; want 3", len(d.Sentinels))
	}
	ctx := context.Background()
	for _, s := range d.Sentinels {
		c := redis.NewSentinelClient(&redis.Options{Addr: s.Addr, Password: d.SentinelPassword, MaxRetries: -1})
		got, err := c.GetMasterAddrByName(ctx, d.MasterName).Result()
		c.Close()
		if err != nil || len(got) != 2 || got[0]+":"+got[1] != d.Master.Addr {
			t.Errorf("Sentinel %s: master = %v, %v; want %s", s.Addr, got, err, d.Master.Addr)
		}
		if err := ping(client(t, s, "wrong", false)); err == nil {
			t.Errorf("Sentinel %s answers a wrong password", s.Addr)
		}
	}
	if err := ping(client(t, d.Replica, d.Password, false)); err != nil {
		t.Errorf("replica: %v", err)
	}
}

func TestStartCluster(t *testing.T) {
	c := testredis.StartCluster(t, testredis.ClusterOptions{Password: "clu"})
	if len(c.Nodes) != 3 {
		t.Fatalf("Nodes = %d; want 3 masters", len(c.Nodes))
	}
	for _, n := range c.Nodes {
		info, err := client(t, n, c.Password, false).ClusterInfo(context.Background()).Result()
		if err != nil || !strings.Contains(info, "cluster_slots_ok:16384") || !strings.Contains(info, "cluster_known_nodes:3") {
			t.Errorf("node %s: CLUSTER INFO = %q, %v; want every slot served by 3 nodes", n.Addr, info, err)
		}
	}
}
