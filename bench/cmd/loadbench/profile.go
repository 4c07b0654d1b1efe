package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// profileScenario runs one scenario under load while Gatehouse's
// net/http/pprof (the bench/cmd/gatehouse-pprof wrapper) records a CPU
// profile, saves it in the output directory and prints `go tool pprof -top`.
func profileScenario(ctx context.Context, w io.Writer, m *meter, sc scenario, goBin, binary string) error {
	if sc.target == nil || sc.target.pprof == "" {
		return nil
	}
	r := m.wrk
	r.url, r.headerName, r.headerV = sc.url, sc.hname, sc.hval
	secs := max(1, int(r.duration/time.Second)-1)
	path := filepath.Join(m.out, "cpu-"+sc.name+".pprof")
	errc := make(chan error, 1)
	go func() {
		// Let wrk connect before the profile starts.
		time.Sleep(500 * time.Millisecond)
		errc <- fetch(ctx, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", sc.target.pprof, secs), path, time.Duration(secs+10)*time.Second)
	}()
	if _, err := r.run(ctx, filepath.Join(m.out, "wrk-profile.log")); err != nil {
		return err
	}
	if err := <-errc; err != nil {
		return err
	}
	return pprofTop(ctx, w, goBin, binary, path, "CPU profile of "+sc.label)
}

// profileAllocs saves Gatehouse's allocation profile (everything allocated
// since it started, so mostly the benchmark's requests) and prints its top.
func profileAllocs(ctx context.Context, w io.Writer, px *proxy, out, goBin, binary string) error {
	if px.pprof == "" {
		return nil
	}
	path := filepath.Join(out, "allocs-"+px.name+".pprof")
	if err := fetch(ctx, px.pprof+"/debug/pprof/allocs", path, 30*time.Second); err != nil {
		return err
	}
	return pprofTop(ctx, w, goBin, binary, path, "allocations (alloc_space) of "+px.name+" since it started", "-sample_index=alloc_space")
}

func fetch(ctx context.Context, url, path string, timeout time.Duration) error {
	c := &http.Client{Timeout: timeout}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("loadbench: %w", err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("loadbench: fetching %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("loadbench: fetching %s: %s", url, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("loadbench: %w", err)
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("loadbench: saving %s: %w", path, err)
	}
	return f.Close()
}

func pprofTop(ctx context.Context, w io.Writer, goBin, binary, path, title string, extra ...string) error {
	args := append([]string{"tool", "pprof", "-top", "-cum", "-nodecount=40"}, extra...)
	args = append(args, binary, path)
	out, err := exec.CommandContext(ctx, goBin, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("loadbench: go tool pprof %s: %w: %s", path, err, out)
	}
	fmt.Fprintf(w, "\n### %s\n\nSaved as %s (`go tool pprof -http 127.0.0.1:0 %s %s`).\n\n```\n%s```\n", title, path, binary, path, out)
	return nil
}
