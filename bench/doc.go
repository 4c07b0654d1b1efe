// Package bench holds Gatehouse's performance measurements: the side-by-side
// load benchmark against oauth2-proxy (run.sh, which builds cmd/loadbench and
// cmd/gatehouse-pprof) and Go benchmarks of the session store at scale. See
// README.md here and docs/performance.md for how to run and read them.
//
// Nothing in it asserts a figure: timings depend on the machine, so they are
// printed for people to read, never compared with a threshold.
package bench
