// Command gatehouse-pprof is Gatehouse with net/http/pprof, for the load
// benchmark's profiles: it serves the profiling endpoints on the 127.0.0.1
// address in BENCH_PPROF_ADDR, on a listener of its own, and otherwise runs
// exactly what the gatehouse command runs. It is never built into a release.
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	_ "net/http/pprof" // registers /debug/pprof/ on http.DefaultServeMux
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/gatehouse/gatehouse/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "gatehouse:", err)
		if c, ok := err.(interface{ ExitCode() int }); ok {
			os.Exit(c.ExitCode())
		}
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	if addr := os.Getenv("BENCH_PPROF_ADDR"); addr != "" {
		host, _, err := net.SplitHostPort(addr)
		if err != nil || !net.ParseIP(host).IsLoopback() {
			return fmt.Errorf("BENCH_PPROF_ADDR %q: want a loopback host:port", addr)
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("pprof listener: %w", err)
		}
		srv := &http.Server{Handler: http.DefaultServeMux, ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				fmt.Fprintln(os.Stderr, "gatehouse-pprof:", err)
			}
		}()
		defer srv.Close()
	}
	return cli.Run(ctx, os.Args, os.Getenv, os.Stdout, os.Stderr)
}
