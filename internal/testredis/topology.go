package testredis

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// Failure detection is tuned down so failovers complete in a few seconds:
// production values are tens of seconds.
const (
	// sentinelDownAfter is how long a master must be silent before a Sentinel
	// calls it down (down-after-milliseconds).
	sentinelDownAfter = 1000
	// clusterNodeTimeout is a Cluster node's cluster-node-timeout.
	clusterNodeTimeout = 1000
	// topologyTimeout bounds waiting for a topology to settle at start.
	topologyTimeout = 30 * time.Second
)

// SentinelOptions selects how StartSentinel builds its deployment. The zero
// value has no authentication anywhere.
type SentinelOptions struct {
	// Password is the data nodes' requirepass (and the replica's masterauth).
	Password string
	// SentinelUsername and SentinelPassword protect the Sentinels themselves:
	// with a username an ACL user (the default user is switched off), with
	// only a password requirepass.
	SentinelUsername, SentinelPassword string
}

// Sentinel is a master, one replica and three Sentinels monitoring them
// under MasterName, all on 127.0.0.1, owned by one test.
type Sentinel struct {
	// MasterName is the name the Sentinels monitor.
	MasterName string
	// Master and Replica are the data nodes as started; after a failover the
	// Replica is the master.
	Master, Replica *Server
	// Sentinels are the three Sentinel processes.
	Sentinels []*Server
	// Password, SentinelUsername and SentinelPassword are what clients send.
	Password, SentinelUsername, SentinelPassword string
}

// SentinelAddrs are the Sentinels' host:port addresses.
func (s *Sentinel) SentinelAddrs() []string {
	out := make([]string, len(s.Sentinels))
	for i, n := range s.Sentinels {
		out[i] = n.Addr
	}
	return out
}

// StartSentinel starts a master, a replica of it and three Sentinels with a
// quorum of two, and returns once the replica is in sync and every Sentinel
// knows the replica and the two other Sentinels. A failover (after Stop of
// the master) takes a few seconds.
func StartSentinel(t testing.TB, opts SentinelOptions) *Sentinel {
	t.Helper()
	d := &Sentinel{MasterName: "gatehouse", Password: opts.Password, SentinelUsername: opts.SentinelUsername, SentinelPassword: opts.SentinelPassword}
	d.Master = Start(t, Options{Password: opts.Password})
	d.Replica = startReplica(t, d.Master)

	for range 3 {
		s := newServer(t, Options{Password: opts.SentinelPassword})
		s.authUser = opts.SentinelUsername
		var conf strings.Builder
		fmt.Fprintf(&conf, "sentinel resolve-hostnames no\n")
		fmt.Fprintf(&conf, "sentinel monitor %s 127.0.0.1 %d 2\n", d.MasterName, d.Master.port)
		fmt.Fprintf(&conf, "sentinel down-after-milliseconds %s %d\n", d.MasterName, sentinelDownAfter)
		fmt.Fprintf(&conf, "sentinel failover-timeout %s 10000\n", d.MasterName)
		fmt.Fprintf(&conf, "sentinel parallel-syncs %s 1\n", d.MasterName)
		if opts.Password != "" {
			fmt.Fprintf(&conf, "sentinel auth-pass %s %s\n", d.MasterName, opts.Password)
		}
		switch {
		case opts.SentinelUsername != "":
			// Sentinels talk to each other as this user too.
			fmt.Fprintf(&conf, "user %s on >%s allchannels +@all\nuser default off\n", opts.SentinelUsername, opts.SentinelPassword)
			fmt.Fprintf(&conf, "sentinel sentinel-user %s\nsentinel sentinel-pass %s\n", opts.SentinelUsername, opts.SentinelPassword)
		case opts.SentinelPassword != "":
			fmt.Fprintf(&conf, "requirepass %s\nsentinel sentinel-pass %s\n", opts.SentinelPassword, opts.SentinelPassword)
		}
		s.sentinelConf = conf.String()
		s.run(t)
		d.Sentinels = append(d.Sentinels, s)
	}

	// Every Sentinel must know the replica and its peers before a failover
	// can be agreed on.
	for _, s := range d.Sentinels {
		c := s.client()
		err := waitUntil(topologyTimeout, func(ctx context.Context) error {
			m, err := c.Do(ctx, "SENTINEL", "MASTER", d.MasterName).Result()
			if err != nil {
				return err
			}
			info := fieldMap(m)
			if info["num-slaves"] != "1" || info["num-other-sentinels"] != "2" {
				return fmt.Errorf("sentinel sees %s replicas and %s other sentinels", info["num-slaves"], info["num-other-sentinels"])
			}
			return nil
		})
		c.Close()
		if err != nil {
			t.Fatalf("testredis: Sentinel %s did not learn the topology: %v\n%s", s.Addr, err, s.log())
		}
	}
	return d
}

// startReplica starts a replica of master and waits until it is in sync.
func startReplica(t testing.TB, master *Server, extra ...string) *Server {
	t.Helper()
	r := newServer(t, Options{Password: master.Password})
	r.args = append([]string{"--replicaof", "127.0.0.1", strconv.Itoa(master.port)}, extra...)
	if master.Password != "" {
		r.args = append(r.args, "--masterauth", master.Password)
	}
	r.run(t)
	c := r.client()
	defer c.Close()
	if err := waitUntil(topologyTimeout, func(ctx context.Context) error {
		info, err := c.Info(ctx, "replication").Result()
		if err != nil {
			return err
		}
		if !strings.Contains(info, "master_link_status:up") {
			return fmt.Errorf("replication link not up")
		}
		return nil
	}); err != nil {
		t.Fatalf("testredis: replica %s of %s: %v\n%s", r.Addr, master.Addr, err, r.log())
	}
	return r
}

// ClusterOptions selects how StartCluster builds its Cluster.
type ClusterOptions struct {
	// Password is every node's requirepass and masterauth.
	Password string
	// Replicas gives each of the three masters one replica.
	Replicas bool
}

// Cluster is a Redis Cluster of three masters (and, with
// ClusterOptions.Replicas, one replica each) on 127.0.0.1, owned by one
// test.
type Cluster struct {
	// Nodes are every node as started, masters first. Roles change on
	// failover: ask the nodes (ROLE) rather than trusting the order later.
	Nodes []*Server
	// Password is what clients send.
	Password string
}

// Addrs are the nodes' host:port addresses, any of which seeds a client.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		out[i] = n.Addr
	}
	return out
}

// StartCluster starts the nodes, joins them with `redis-cli --cluster
// create`, and returns once every node reports cluster_state:ok and every
// replica is in sync.
func StartCluster(t testing.TB, opts ClusterOptions) *Cluster {
	t.Helper()
	if _, err := exec.LookPath("redis-cli"); err != nil {
		t.Fatalf("testredis: redis-cli not found on PATH (%v): run `make test`, which installs it", err)
	}
	n := 3
	if opts.Replicas {
		n = 6
	}
	c := &Cluster{Password: opts.Password}
	for range n {
		s := newServer(t, Options{Password: opts.Password})
		s.args = []string{
			"--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", strconv.Itoa(clusterNodeTimeout),
			// A replica takes over however long it was cut off: tests kill masters at will.
			"--cluster-replica-validity-factor", "0",
		}
		if opts.Password != "" {
			s.args = append(s.args, "--masterauth", opts.Password)
		}
		s.run(t)
		c.Nodes = append(c.Nodes, s)
	}
	args := []string{"--cluster", "create"}
	args = append(args, c.Addrs()...)
	args = append(args, "--cluster-replicas", map[bool]string{true: "1", false: "0"}[opts.Replicas], "--cluster-yes")
	cmd := exec.Command("redis-cli", args...)
	if opts.Password != "" {
		// In the environment, not on the command line other processes can read.
		cmd.Env = append(cmd.Environ(), "REDISCLI_AUTH="+opts.Password)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	ctx, cancel := context.WithTimeout(context.Background(), topologyTimeout)
	defer cancel()
	if err := runCtx(ctx, cmd); err != nil {
		t.Fatalf("testredis: redis-cli --cluster create: %v\n%s", err, out.String())
	}
	for _, s := range c.Nodes {
		cl := s.client()
		err := waitUntil(topologyTimeout, func(ctx context.Context) error {
			info, err := cl.ClusterInfo(ctx).Result()
			if err != nil {
				return err
			}
			if !strings.Contains(info, "cluster_state:ok") {
				return fmt.Errorf("cluster_state not ok")
			}
			// A replica counts once it is in sync: tests WAIT for it before killing its master.
			repl, err := cl.Info(ctx, "replication").Result()
			if err != nil {
				return err
			}
			if strings.Contains(repl, "role:slave") && !strings.Contains(repl, "master_link_status:up") {
				return fmt.Errorf("replica not in sync with its master")
			}
			return nil
		})
		cl.Close()
		if err != nil {
			t.Fatalf("testredis: cluster node %s: %v\n%s", s.Addr, err, s.log())
		}
	}
	return c
}

// runCtx runs cmd, killing it if ctx ends first.
func runCtx(ctx context.Context, cmd *exec.Cmd) error {
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		<-done
		return ctx.Err()
	}
}

// client returns a plain client for s, for the helpers' own checks.
func (s *Server) client() *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr:                     s.Addr,
		Username:                 s.authUser,
		Password:                 s.Password,
		TLSConfig:                s.TLSConfig,
		DialTimeout:              time.Second,
		ReadTimeout:              time.Second,
		WriteTimeout:             time.Second,
		MaxRetries:               -1,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	})
}

// log returns the tail of the server's current log, for failure messages.
func (s *Server) log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return ""
	}
	return tail(s.proc.logPath)
}

// waitUntil polls cond until it succeeds or timeout passes: for a topology
// settling, which only the servers can report.
func waitUntil(timeout time.Duration, cond func(ctx context.Context) error) error {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := cond(ctx)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %v: %w", timeout, err)
		}
		<-tick.C
	}
}

// fieldMap turns a flat [k1 v1 k2 v2 ...] or map reply into a map of strings.
func fieldMap(v any) map[string]string {
	out := map[string]string{}
	switch v := v.(type) {
	case []any:
		for i := 0; i+1 < len(v); i += 2 {
			out[fmt.Sprint(v[i])] = fmt.Sprint(v[i+1])
		}
	case map[any]any:
		for k, x := range v {
			out[fmt.Sprint(k)] = fmt.Sprint(x)
		}
	}
	return out
}
