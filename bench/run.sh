#!/usr/bin/env bash
# Side-by-side load benchmark of Gatehouse and oauth2-proxy v7.15.6 (issue 5),
# with nginx and a minimal httputil.ReverseProxy as references, the nginx
# auth_request ingress deployment, many idle connections and slow clients
# (issue 12).
#
# Installs what it needs when missing (wrk, redis-server and nginx from
# Debian's packages, oauth2-proxy with `go install` into a cache folder
# outside the repository), builds Gatehouse and the harness (with
# bench/cmd/refproxy), then runs bench/cmd/loadbench:
# every server on 127.0.0.1 random ports, every one stopped on exit. Prints
# the tables (Markdown) and saves them with the logs in $BENCH_OUT.
#
# Settings (environment):
#   BENCH_DURATION=10s      measured wrk run per scenario and round (whole seconds)
#   BENCH_ROUNDS=5          rounds; the scenario order alternates between them
#   BENCH_WARMUP=2s         wrk warm-up before each measured run (0s = none)
#   BENCH_CONNECTIONS=64    wrk connections
#   BENCH_THREADS=2         wrk threads
#   BENCH_SCENARIOS=        comma-separated subset; empty = all (see bench/README.md)
#   BENCH_SESSIONS=100000   sessions written to a fresh Redis for the scale figures (0 = skip)
#   BENCH_EQUAL_LOAD=1      also compare latency with both proxies paced to the same load (0 = skip)
#   BENCH_REVOKE_TRIALS=5   revocation trials across two Gatehouse instances (0 = skip)
#   BENCH_MEMSTORE=1        also run the memory-store Go benchmark with 100k sessions (0 = skip)
#   BENCH_IDLE_CONNS=10000  keep-alive connections held on a fresh Gatehouse, 1 % busy (0 = skip)
#   BENCH_SLOW_CLIENTS=500  slow clients (headers and bodies a byte at a time) beside wrk (0 = skip)
#   BENCH_PROFILE=0         1 = run Gatehouse with pprof and print CPU and allocation profiles
#   BENCH_OUT=              output folder; empty = a new folder under /tmp
#   BENCH_SCALE=0           1 = only the capacity figures (make bench-scale): Redis memory and
#                           commands per operation with BENCH_SESSIONS sessions, a 10k-session
#                           revocation, two replicas on a Cluster against a standalone Redis
# A quick smoke run: BENCH_DURATION=2s BENCH_ROUNDS=1 BENCH_WARMUP=1s BENCH_SESSIONS=2000 bench/run.sh
set -euo pipefail

O2P_VERSION=v7.15.6
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
GO="${GO:-go}"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/gatehouse-bench/bin"
out="${BENCH_OUT:-}"
if [ -z "$out" ]; then
  out="$(mktemp -d /tmp/gatehouse-bench.XXXXXX)"
fi
mkdir -p "$out/bin"

log() { echo "bench: $*" >&2; }

# --- what the benchmark runs ---------------------------------------------------
need=()
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
nginx_bin="$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)"
[ -x "$nginx_bin" ] || need+=(nginx)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  log "installing ${need[*]} from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # The packaged services must not hold ports 6379 and 80 or burn CPU during the run.
  $SUDO service redis-server stop >/dev/null 2>&1 || true
  $SUDO service nginx stop >/dev/null 2>&1 || true
fi

o2p="$cache/oauth2-proxy"
if [ "${BENCH_SCALE:-0}" != 1 ] && ! { [ -x "$o2p" ] && "$GO" version -m "$o2p" 2>/dev/null | grep -q "oauth2-proxy/v7[[:space:]]*$O2P_VERSION"; }; then
  log "installing oauth2-proxy $O2P_VERSION into $cache (takes a few minutes once)"
  mkdir -p "$cache"
  (cd "$cache" && GOBIN="$cache" GOFLAGS=-buildvcs=false "$GO" install "github.com/oauth2-proxy/oauth2-proxy/v7@$O2P_VERSION")
fi

# --- build -------------------------------------------------------------------------
log "building Gatehouse and the harness into $out/bin"
cd "$root"
"$GO" build -o "$out/bin/gatehouse" .
"$GO" build -o "$out/bin/loadbench" ./bench/cmd/loadbench
"$GO" build -o "$out/bin/refproxy" ./bench/cmd/refproxy
# Gatehouse with pprof: the profiles of BENCH_PROFILE=1, and the connection
# and slow-client instances, whose memory is read after a forced GC.
"$GO" build -o "$out/bin/gatehouse-pprof" ./bench/cmd/gatehouse-pprof

# --- run ---------------------------------------------------------------------------
# The harness runs in the background so that the trap can stop it (and it its
# servers) on Ctrl-C, TERM or any exit.
pid=
# shellcheck disable=SC2317  # invoked by the trap below
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  # nginx runs in a process group of its own; its pid file outlives it only
  # when the harness died without stopping it, and then its workers may too.
  if [ -f "$out/nginx.pid" ]; then
    kill -KILL -- "-$(cat "$out/nginx.pid")" 2>/dev/null || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
rm -f "$out/nginx.pid" # a reused BENCH_OUT's: only this run's may name a group to kill

report="$out/report.md"
"$out/bin/loadbench" \
  -gatehouse "$out/bin/gatehouse" -gatehouse-pprof "$out/bin/gatehouse-pprof" \
  -profile="$([ "${BENCH_PROFILE:-0}" = 1 ] && echo true || echo false)" \
  -oauth2-proxy "$o2p" \
  -redis-server "$(command -v redis-server)" \
  -wrk "$(command -v wrk)" \
  -go "$(command -v "$GO")" \
  -nginx "$nginx_bin" \
  -refproxy "$out/bin/refproxy" \
  -out "$out" \
  -revision "$(git -C "$root" describe --always --dirty 2>/dev/null || echo unknown)" \
  -duration "${BENCH_DURATION:-10s}" \
  -warmup "${BENCH_WARMUP:-2s}" \
  -rounds "${BENCH_ROUNDS:-5}" \
  -connections "${BENCH_CONNECTIONS:-64}" \
  -threads "${BENCH_THREADS:-2}" \
  -scenarios "${BENCH_SCENARIOS:-}" \
  -sessions "${BENCH_SESSIONS:-100000}" \
  -revoke-trials "${BENCH_REVOKE_TRIALS:-5}" \
  -equal-load="${BENCH_EQUAL_LOAD:-1}" \
  -idle-conns "${BENCH_IDLE_CONNS:-10000}" \
  -slow-clients "${BENCH_SLOW_CLIENTS:-500}" \
  -capacity="$([ "${BENCH_SCALE:-0}" = 1 ] && echo true || echo false)" \
  > >(tee "$report") &
pid=$!
status=0
wait "$pid" || status=$?
pid=

if [ "${BENCH_MEMSTORE:-1}" = 1 ] && [ "${BENCH_SCALE:-0}" != 1 ]; then
  log "memory store with 100k sessions (go test -bench)"
  {
    printf '\n### Memory store (go test -bench MemoryStoreLoad ./bench/)\n\n```\n'
    "$GO" test -run '^$' -bench 'MemoryStoreLoad' -benchtime 2s ./bench/ | grep -E '^(Benchmark|cpu:)'
    printf '```\n'
  } | tee -a "$report"
fi
log "report: $report"
exit "$status"
