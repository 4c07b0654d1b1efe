package e2etest

import (
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestStartDaemonRetriesATakenPort: when another process binds the picked
// port first, StartDaemon neither mistakes that process for the daemon nor
// gives up: it starts the daemon again on another port.
func TestStartDaemonRetriesATakenPort(t *testing.T) {
	const python = "/usr/bin/python3"
	if _, err := os.Stat(python); err != nil {
		t.Fatalf("%s is missing (%v); `make test` installs it (scripts/install-deps.sh)", python, err)
	}
	var tried []string
	d := StartDaemon(t, "http.server", func(addr string) *exec.Cmd {
		tried = append(tried, addr)
		if len(tried) == 1 {
			// Another process wins the race for the first port, and even
			// accepts connections there.
			squatter, err := net.Listen("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { squatter.Close() })
			go func() {
				for {
					c, err := squatter.Accept()
					if err != nil {
						return
					}
					c.Close()
				}
			}()
		}
		host, port, _ := net.SplitHostPort(addr)
		cmd := exec.Command(python, "-m", "http.server", "--bind", host, "--directory", t.TempDir(), port)
		cmd.Env = append(os.Environ(), "PYTHONUNBUFFERED=1")
		return cmd
	})
	if len(tried) != 2 || d.Addr != tried[1] {
		t.Fatalf("tried %v and settled on %s; want a second port after the first was taken", tried, d.Addr)
	}
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + d.Addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "Directory listing") {
		t.Errorf("the daemon answered %d %.100q; want its directory listing", resp.StatusCode, body)
	}
}

// TestDownListener: connections are reset, never served, until Up.
func TestDownListener(t *testing.T) {
	l := NewDownListener(t)
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "up")
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	if resp, err := c.Get(l.URL()); err == nil {
		resp.Body.Close()
		t.Fatalf("a down listener's server answered %d", resp.StatusCode)
	}
	l.Up()
	resp, err := c.Get(l.URL())
	if err != nil {
		t.Fatalf("after Up: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "up" {
		t.Errorf("after Up got %q", body)
	}
}
