// Package testredis starts a real, throwaway redis-server on 127.0.0.1 for tests.
//
// Tests talk to the same server software that runs in production instead of an
// in-memory imitation, so timeouts, TTLs, TLS and outages behave as they will for
// users. The server keeps nothing on disk (--save "" --appendonly no) and is killed
// when the test ends.
//
//	srv := testredis.Start(t, testredis.Options{Password: "secret", TLS: true})
//	client := redis.NewClient(&redis.Options{Addr: srv.Addr, Password: srv.Password, TLSConfig: srv.TLSConfig})
package testredis

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// binary is the server executable looked up on PATH.
const binary = "redis-server"

const (
	// startAttempts bounds how often Start picks another port when the one it
	// chose turned out to be taken.
	startAttempts = 20
	// readyTimeout is how long a freshly started server may take to answer PING.
	readyTimeout = 15 * time.Second

	// Ports are drawn at random from [portLow, portHigh): below the kernel's
	// ephemeral range (32768 and up on Linux), so no outgoing connection holds
	// one by chance, and low enough that a Cluster node's bus port (port +
	// 10000) stays below it too. A port someone else holds makes redis-server
	// fail to bind, loudly, and Start draws another.
	portLow  = 12000
	portHigh = 22000
)

// Options selects how the server is started. The zero value starts a plain-text
// server without authentication.
type Options struct {
	// Password, if not empty, is required from clients (requirepass).
	Password string
	// TLS serves only TLS (--tls-port, --port 0) with a certificate from a
	// throwaway CA generated for this server; Server.TLSConfig trusts that CA.
	TLS bool
}

// Server is a running redis-server owned by one test.
type Server struct {
	// Addr is host:port, always on 127.0.0.1.
	Addr string
	// Password is the password clients must send; empty without authentication.
	Password string
	// TLSConfig is a client configuration trusting the server's CA, or nil
	// when the server speaks plain text. Do not modify it.
	TLSConfig *tls.Config

	opts    Options
	dir     string
	port    int
	tlsArgs []string
	// args are extra redis-server arguments (replication, cluster mode).
	args []string
	// sentinelConf, if set, makes this a Sentinel: the configuration file's
	// text, written before the first start (Sentinel rewrites it as it learns).
	sentinelConf string
	// authUser authenticates readiness checks when not the default user.
	authUser string

	mu   sync.Mutex
	proc *process
}

// process is one run of redis-server.
type process struct {
	cmd     *exec.Cmd
	exited  chan struct{} // closed once cmd.Wait returns
	logPath string
}

// Start starts redis-server on a free port and registers its shutdown with
// t.Cleanup. It fails the test (never skips it) when redis-server is missing or
// does not come up.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	s := newServer(t, opts)
	s.run(t)
	return s
}

// newServer prepares a server (its directory, its TLS files) without starting it.
func newServer(t testing.TB, opts Options) *Server {
	t.Helper()
	if _, err := exec.LookPath(binary); err != nil {
		t.Fatalf("testredis: %s not found on PATH (%v): run `make test`, which installs redis-server", binary, err)
	}
	s := &Server{Password: opts.Password, opts: opts, dir: t.TempDir()}
	if opts.TLS {
		cfg, args, err := writeTLSFiles(s.dir)
		if err != nil {
			t.Fatalf("testredis: generating TLS certificates: %v", err)
		}
		s.TLSConfig, s.tlsArgs = cfg, args
	}
	t.Cleanup(s.Stop)
	return s
}

// run starts s on a random port, drawing another while the port is taken.
func (s *Server) run(t testing.TB) {
	t.Helper()
	var lastErr error
	for range startAttempts {
		s.port = portLow + mrand.IntN(portHigh-portLow)
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
		if lastErr = s.start(); lastErr == nil {
			return
		}
		if !errors.Is(lastErr, errAddrInUse) {
			break
		}
	}
	t.Fatalf("testredis: starting %s: %v", binary, lastErr)
}

// Stop kills the server, as an outage would. It is safe to call more than once
// and from several goroutines.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
}

// Restart starts the server again on the same port, stopping it first if it is
// still running. Data does not survive: the server keeps nothing on disk.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	var err error
	for range startAttempts {
		// Another process may grab the port while it is free; give it a moment
		// rather than giving up at the first refusal.
		if err = s.start(); err == nil || !errors.Is(err, errAddrInUse) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("testredis: restarting %s on %s: %v", binary, s.Addr, err)
	}
}

func (s *Server) stopLocked() {
	if s.proc == nil {
		return
	}
	// Kill, not SIGTERM: an outage test wants the server gone at once.
	_ = s.proc.cmd.Process.Kill()
	<-s.proc.exited
	s.proc = nil
}

var errAddrInUse = errors.New("address already in use")

// start launches redis-server on s.port and waits until it answers PING.
func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()

	port := strconv.Itoa(s.port)
	var args []string
	if s.sentinelConf != "" {
		conf := filepath.Join(s.dir, "sentinel.conf")
		if _, err := os.Stat(conf); errors.Is(err, os.ErrNotExist) {
			if err := os.WriteFile(conf, []byte(s.sentinelConf), 0o600); err != nil {
				return err
			}
		}
		args = append(args, conf, "--sentinel")
	}
	args = append(args,
		"--bind", "127.0.0.1",
		"--dir", s.dir,
		"--save", "",
		"--appendonly", "no",
		"--daemonize", "no",
		"--loglevel", "notice",
		// A replica's first sync starts at once instead of after 5s.
		"--repl-diskless-sync-delay", "0",
	)
	if s.opts.TLS {
		args = append(args, "--port", "0", "--tls-port", port)
		args = append(args, s.tlsArgs...)
	} else {
		args = append(args, "--port", port)
	}
	if s.opts.Password != "" && s.sentinelConf == "" {
		args = append(args, "--requirepass", s.opts.Password)
	}
	args = append(args, s.args...)
	logPath := filepath.Join(s.dir, "redis-"+port+".log")
	args = append(args, "--logfile", logPath)

	cmd := exec.Command(binary, args...)
	cmd.Dir = s.dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("exec: %w", err)
	}
	p := &process{cmd: cmd, exited: make(chan struct{}), logPath: logPath}
	go func() {
		_ = cmd.Wait()
		close(p.exited)
	}()

	if err := s.waitReady(p); err != nil {
		_ = cmd.Process.Kill()
		<-p.exited
		msg := strings.TrimSpace(out.String() + "\n" + tail(logPath))
		if strings.Contains(msg, "Address already in use") || strings.Contains(msg, "Could not create server TCP listening socket") {
			return fmt.Errorf("port %s: %w", port, errAddrInUse)
		}
		return fmt.Errorf("%w; server output:\n%s", err, msg)
	}
	s.proc = p
	return nil
}

// waitReady polls PING until the server answers, exits or readyTimeout passes.
func (s *Server) waitReady(p *process) error {
	client := redis.NewClient(&redis.Options{
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
	defer client.Close()

	deadline := time.Now().Add(readyTimeout)
	var err error
	for time.Now().Before(deadline) {
		select {
		case <-p.exited:
			return errors.New("redis-server exited during startup")
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err = client.Ping(ctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("no answer to PING within %v: %w", readyTimeout, err)
}

// tail returns the last lines of the server's log file, for failure messages.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	const limit = 2048
	if len(b) > limit {
		b = b[len(b)-limit:]
	}
	return string(b)
}

// writeTLSFiles creates a CA and a server certificate for 127.0.0.1 in dir and
// returns a client configuration trusting the CA plus the redis-server flags
// that load the files.
func writeTLSFiles(dir string) (*tls.Config, []string, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "testredis CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, nil, err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, nil, err
	}

	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		return nil, nil, err
	}
	srvKeyDER, err := x509.MarshalPKCS8PrivateKey(srvKey)
	if err != nil {
		return nil, nil, err
	}

	caPath := filepath.Join(dir, "ca.pem")
	certPath := filepath.Join(dir, "server.pem")
	keyPath := filepath.Join(dir, "server-key.pem")
	files := []struct {
		path, typ string
		der       []byte
	}{
		{caPath, "CERTIFICATE", caDER},
		{certPath, "CERTIFICATE", srvDER},
		{keyPath, "PRIVATE KEY", srvKeyDER},
	}
	for _, f := range files {
		data := pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: f.der})
		if err := os.WriteFile(f.path, data, 0o600); err != nil {
			return nil, nil, err
		}
	}

	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	cfg := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	args := []string{
		"--tls-cert-file", certPath,
		"--tls-key-file", keyPath,
		"--tls-ca-cert-file", caPath,
		// Clients authenticate with the password, not with certificates.
		"--tls-auth-clients", "no",
	}
	return cfg, args, nil
}
