package upstream

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// BenchmarkRoundTrip is a GET on a kept-alive connection to an upstream in
// another process (as in production: a benchmark's in-process upstream
// shares the Go scheduler with the client and measures its thread
// wake-ups), through http.Transport and Transport, one request at a time
// and 64 at once. client-cpu-ns/op is this process's CPU per request: the
// client's cost alone.
func BenchmarkRoundTrip(b *testing.B) {
	url := startBenchUpstream(b)
	for _, conns := range []int{1, 64} {
		for _, client := range []string{"stdlib", "lean"} {
			b.Run(fmt.Sprintf("conns=%d/client=%s", conns, client), func(b *testing.B) {
				var rt http.RoundTripper = &Transport{MaxIdleConnsPerHost: conns}
				if client == "stdlib" {
					rt = stdTransport(0, 0)
				}
				defer rt.(interface{ CloseIdleConnections() }).CloseIdleConnections()
				req, _ := http.NewRequest("GET", url, nil)
				req.Header.Set("Authorization", "Bearer "+strings.Repeat("t", 600))
				get := func() bool {
					resp, err := rt.RoundTrip(req)
					if err != nil {
						b.Error(err)
						return false
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					return true
				}
				b.ReportAllocs()
				start := processCPU()
				if conns == 1 {
					for b.Loop() && get() {
					}
				} else {
					b.SetParallelism(max(1, conns/runtime.GOMAXPROCS(0)))
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() && get() {
						}
					})
				}
				b.ReportMetric(float64(processCPU()-start)/float64(b.N), "client-cpu-ns/op")
			})
		}
	}
}

// startBenchUpstream runs this test binary as the upstream and returns its
// URL; the upstream ends with the benchmark.
func startBenchUpstream(b *testing.B) string {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), upstreamEnv+"=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		stdin.Close()
		cmd.Wait()
	})
	addr, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		b.Fatalf("upstream process: %v", err)
	}
	return "http://" + strings.TrimSpace(addr) + "/page"
}

// processCPU is this process's user and system CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
