package main

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// countLua is the wrk script: credential header from the environment,
// non-2xx counting, and a summary line for parseWrk.
//
//go:embed count.lua
var countLua []byte

// wrkResult is what one wrk run measured.
type wrkResult struct {
	Requests   int64
	Duration   time.Duration
	P50, P99   time.Duration
	Non2xx     int64
	SockErrors int64 // connect, read, write and timeout errors together
	// CPU is the user+system time wrk itself used.
	CPU time.Duration
}

// reqPerSec is the throughput over the run's measured duration.
func (w wrkResult) reqPerSec() float64 {
	if w.Duration <= 0 {
		return 0
	}
	return float64(w.Requests) / w.Duration.Seconds()
}

// wrkRun describes one load run.
type wrkRun struct {
	bin, script         string
	threads, conns      int
	duration            time.Duration
	url                 string
	headerName, headerV string
	// delay, if positive, paces each connection: it waits this long before
	// every request (count.lua's delay()), for a fixed offered load.
	delay time.Duration
}

// run executes wrk and returns its summary. wrk's full output is appended to
// logPath; the credential header is passed through the environment and is in
// neither the command line nor the log.
func (r wrkRun) run(ctx context.Context, logPath string) (wrkResult, error) {
	args := []string{
		"-t", strconv.Itoa(r.threads), "-c", strconv.Itoa(r.conns),
		"-d", fmt.Sprintf("%ds", max(1, int(r.duration.Round(time.Second)/time.Second))),
		"--timeout", "5s", "--latency", "-s", r.script, r.url,
	}
	// wrk stops by itself after -d; the context bounds a wrk that hangs.
	ctx, cancel := context.WithTimeout(ctx, r.duration+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, r.bin, args...)
	cmd.Env = append(os.Environ(), "BENCH_HEADER_NAME="+r.headerName, "BENCH_HEADER_VALUE="+r.headerV,
		"BENCH_DELAY_MS="+strconv.FormatInt(r.delay.Milliseconds(), 10))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if f, ferr := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600); ferr == nil {
		fmt.Fprintf(f, "== wrk %s\n%s\n", strings.Join(args, " "), out.String())
		f.Close()
	}
	if err != nil {
		return wrkResult{}, fmt.Errorf("loadbench: wrk %s: %w: %s", r.url, err, strings.TrimSpace(out.String()))
	}
	res, err := parseWrk(out.String())
	res.CPU = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	return res, err
}

// parseWrk reads the BENCH summary line the Lua script's done() prints.
func parseWrk(out string) (wrkResult, error) {
	for line := range strings.Lines(out) {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "BENCH ")
		if !ok {
			continue
		}
		v := map[string]int64{}
		for _, kv := range strings.Fields(rest) {
			k, s, ok := strings.Cut(kv, "=")
			if !ok {
				return wrkResult{}, fmt.Errorf("loadbench: wrk summary: bad field %q", kv)
			}
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return wrkResult{}, fmt.Errorf("loadbench: wrk summary field %s: %w", k, err)
			}
			v[k] = n
		}
		for _, k := range []string{"requests", "duration_us", "p50_us", "p99_us", "non2xx"} {
			if _, ok := v[k]; !ok {
				return wrkResult{}, fmt.Errorf("loadbench: wrk summary lacks %s", k)
			}
		}
		return wrkResult{
			Requests:   v["requests"],
			Duration:   time.Duration(v["duration_us"]) * time.Microsecond,
			P50:        time.Duration(v["p50_us"]) * time.Microsecond,
			P99:        time.Duration(v["p99_us"]) * time.Microsecond,
			Non2xx:     v["non2xx"],
			SockErrors: v["connect"] + v["read"] + v["write"] + v["timeout"],
		}, nil
	}
	return wrkResult{}, fmt.Errorf("loadbench: no BENCH summary line in wrk's output: %.500s", out)
}
