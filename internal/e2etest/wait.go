package e2etest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// guard bounds every wait in these tests. It only ends a broken test
// instead of hanging it: nothing is asserted about how long anything takes,
// so it is generous enough for a loaded two-core machine running -race.
const guard = 30 * time.Second

// Eventually polls cond until it returns nil, for what a test cannot be
// told about directly: another process becoming ready (the provider, an
// ingress, Django), or an effect visible only from outside (a background
// refresh ending a session, a revocation reaching another replica). It fails
// the test with cond's last error if that does not happen within guard.
// Prefer an event (a channel, a listener handed over) wherever there is one.
func Eventually(t testing.TB, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(guard)
	pause := 5 * time.Millisecond
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %s waiting for %s: %v", guard, what, err)
		}
		time.Sleep(pause)
		pause = min(2*pause, 200*time.Millisecond)
	}
}

// DownListener is a 127.0.0.1 listener that resets every connection until
// Up is called: a server that is down, on an address nobody else can take
// while the test runs (unlike a port picked and closed, which another
// process may bind meanwhile). Serve on it as usual.
type DownListener struct {
	net.Listener
	up atomic.Bool
}

// NewDownListener returns a DownListener that is down, closed when the
// test ends.
func NewDownListener(t testing.TB) *DownListener {
	return &DownListener{Listener: Listen(t)}
}

// URL is "http://" and the listener's address.
func (l *DownListener) URL() string { return "http://" + l.Addr().String() }

// Up lets later connections through to the server.
func (l *DownListener) Up() { l.up.Store(true) }

// Accept resets connections while the listener is down.
func (l *DownListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil || l.up.Load() {
			return c, err
		}
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // close with RST, as a closed port would
		}
		c.Close()
	}
}

// DeadURL is the URL of a server that is down for the whole test: every
// connection is reset.
func DeadURL(t testing.TB) string {
	l := NewDownListener(t)
	go func() {
		for {
			if _, err := l.Accept(); err != nil {
				return
			}
		}
	}()
	return l.URL()
}

// Daemon is an external server process that binds its own port (nginx,
// Caddy, Django's development server), started by StartDaemon.
type Daemon struct {
	// Addr is the 127.0.0.1:port it listens on.
	Addr string
	out  *SyncBuffer
}

// Output is what the process wrote to its stdout and stderr so far.
func (d *Daemon) Output() string { return d.out.String() }

// maxDaemonAttempts bounds how often StartDaemon tries another port.
const maxDaemonAttempts = 5

// StartDaemon runs an external server that cannot be handed a listener: it
// picks a free 127.0.0.1 port, builds the command for it with command,
// starts it, and returns once that very process listens there (read from
// /proc, so another process that happens to hold the port does not count).
// Another process can take the port between the pick and the bind; when
// the server exits saying its address is in use, StartDaemon starts it
// again on another port. The server gets SIGTERM when the test ends, and
// SIGKILL if it has not exited by then.
func StartDaemon(t testing.TB, name string, command func(addr string) *exec.Cmd) *Daemon {
	t.Helper()
	for attempt := 1; ; attempt++ {
		d, err := startDaemon(t, name, command)
		if err == nil {
			return d
		}
		if !errors.Is(err, errAddrInUse) || attempt == maxDaemonAttempts {
			t.Fatalf("%s: %v", name, err)
		}
		t.Logf("%s: %v; trying another port", name, err)
	}
}

// errAddrInUse is a daemon exiting because its port was taken.
var errAddrInUse = errors.New("its address was in use")

func startDaemon(t testing.TB, name string, command func(addr string) *exec.Cmd) (*Daemon, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()

	d := &Daemon{Addr: addr, out: &SyncBuffer{}}
	cmd := command(addr)
	cmd.Stdout, cmd.Stderr = d.out, d.out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", cmd.Path, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(guard):
			_ = cmd.Process.Kill()
			<-exited
		}
	}

	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(guard)
	for !listening(cmd.Process.Pid, port) {
		select {
		case err := <-exited:
			out := d.out.String()
			if strings.Contains(strings.ToLower(out), "already in use") {
				return nil, fmt.Errorf("exited at start on %s: %w", addr, errAddrInUse)
			}
			return nil, fmt.Errorf("exited at start (%v):\n%s", err, out)
		case <-deadline:
			stop()
			return nil, fmt.Errorf("did not listen on %s within %s:\n%s", addr, guard, d.out.String())
		case <-tick.C:
		}
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("%s's output:\n%s", name, d.out.String())
		}
	})
	return d, nil
}

// listening reports whether process pid holds a TCP socket listening on
// port, from /proc/net/tcp{,6} and the process's descriptors.
func listening(pid, port int) bool {
	sockets := map[string]bool{}
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		data, err := os.ReadFile(table)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			// sl local_address rem_address st ... uid timeout inode
			f := strings.Fields(line)
			if len(f) < 10 || f[3] != "0A" { // 0A: LISTEN
				continue
			}
			_, hexPort, ok := strings.Cut(f[1], ":")
			if p, err := strconv.ParseUint(hexPort, 16, 16); ok && err == nil && int(p) == port {
				sockets["socket:["+f[9]+"]"] = true
			}
		}
	}
	if len(sockets) == 0 {
		return false
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return false
	}
	for _, fd := range fds {
		if target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); err == nil && sockets[target] {
			return true
		}
	}
	return false
}
