#!/usr/bin/env bash
# Runs every fuzz target of every package for FUZZTIME each (default 30s),
# reports each one, and exits non-zero at the end if any failed.
#
#   FUZZTIME=3s ./scripts/fuzz.sh            # what `make test` runs
#   ./scripts/fuzz.sh ./proxy/ ./config/     # only these packages
#
# Targets are discovered with `go test -list '^Fuzz'`, so a new one runs
# without touching this script.
#
# A target passes when `go test -fuzz` passes, and in one more case: Go's
# fuzzing coordinator (up to Go 1.26) can end a clean run with a bare
# "context deadline exceeded" at the end of the budget, a race between its
# deadline and a worker (golang/go#75804, fixed in Go 1.27). That counts as a
# pass only when it is the whole failure: no failing input was written to
# testdata/fuzz/<Target>/ and the output reports nothing else. A real
# failure (a crasher, a failing seed, a hang, a build error) always fails.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

GO=${GO:-go}
FUZZTIME=${FUZZTIME:-30s}
if [ $# -eq 0 ]; then
  set -- ./...
fi

# The test binary's own -timeout must outlast the fuzzing budget; it only
# stops a run that hangs outside the engine's per-input hang detection.
timeout=10m
if [[ $FUZZTIME =~ ^([0-9]+)(s|m|h)$ ]]; then
  n=${BASH_REMATCH[1]}
  case ${BASH_REMATCH[2]} in
    s) secs=$n ;;
    m) secs=$((n * 60)) ;;
    h) secs=$((n * 3600)) ;;
  esac
  timeout=$((secs + 600))s
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

results=()
failed=0

# Discovery: `go test -list` prints a package's matching names, then its
# "ok <package>" line; a package that does not build prints FAIL instead.
if ! "$GO" test -list '^Fuzz' "$@" >"$work/list" 2>&1; then
  cat "$work/list" >&2
  results+=("FAILED  listing the fuzz targets (the packages above do not build)")
  failed=1
fi
targets=()
pending=()
while IFS= read -r line; do
  case $line in
    Fuzz*) pending+=("$line") ;;
    ok*)
      pkg=$(awk '{print $2}' <<<"$line")
      for f in "${pending[@]+"${pending[@]}"}"; do
        targets+=("$pkg $f")
      done
      pending=()
      ;;
    *) pending=() ;;
  esac
done <"$work/list"

if [ ${#targets[@]} -eq 0 ] && [ $failed -eq 0 ]; then
  echo "fuzz: no fuzz targets found in $*" >&2
  exit 1
fi

# corpus lists the inputs saved for a target, one file name a line.
corpus() { find "$1" -maxdepth 1 -type f -printf '%f\n' 2>/dev/null | sort; }

# deadline_only reports whether a failed run's output is exactly the
# coordinator's end-of-budget "context deadline exceeded" for target: the
# engine's progress lines, one "--- FAIL: <target>" followed by that message,
# and go test's FAIL trailer; any other line means a real failure.
deadline_only() {
  local out=$1 target=$2
  grep -v -e '^fuzz: ' -e '^warning: ' "$out" | awk -v target="$target" '
    BEGIN { state = 0; bad = 0 }
    state == 0 && index($0, "--- FAIL: " target " (") == 1 { state = 1; next }
    state == 1 && $0 ~ /^[ \t]+context deadline exceeded$/ { state = 2; next }
    state == 2 && ($0 == "FAIL" || $0 ~ /^exit status [0-9]+$/ || $0 ~ /^FAIL\t/) { next }
    { bad = 1 }
    END { exit !(state == 2 && !bad) }'
}

for t in "${targets[@]+"${targets[@]}"}"; do
  pkg=${t% *}
  target=${t#* }
  dir=$("$GO" list -f '{{.Dir}}' "$pkg")
  rel=.
  if [ "$dir" != "$PWD" ]; then
    rel=${dir#"$PWD"/}
  fi
  saved="$dir/testdata/fuzz/$target"
  before=$(corpus "$saved")
  out="$work/out"
  echo "== $pkg $target ($FUZZTIME)"
  "$GO" test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" -timeout "$timeout" "$pkg" >"$out" 2>&1
  rc=$?
  after=$(corpus "$saved")
  new=$(comm -13 <(echo "$before") <(echo "$after") | sed '/^$/d')
  written=$(sed -n 's/^.*Failing input written to \(.*\)$/\1/p' "$out" | head -n 1)

  if [ $rc -eq 0 ]; then
    results+=("ok      $pkg $target")
    continue
  fi
  if [ -z "$new" ] && [ -z "$written" ] && deadline_only "$out" "$target"; then
    echo "   the engine's end-of-budget \"context deadline exceeded\" (golang/go#75804), no failing input: ok"
    results+=("ok      $pkg $target (engine deadline at the end of the budget, no crasher)")
    continue
  fi
  failed=1
  cat "$out"
  if [ -n "$written" ]; then
    input="$rel/$written"
  elif [ -n "$new" ]; then
    input="$rel/testdata/fuzz/$target/$(head -n 1 <<<"$new")"
  fi
  if [ -n "${input:-}" ]; then
    results+=("FAILED  $pkg $target: failing input $input (re-run: go test -run '$target/${input##*/}' ./$rel/)")
  else
    results+=("FAILED  $pkg $target: no input written (a seed, the build or the harness failed; output above)")
  fi
  unset input
done

echo
echo "fuzz summary (FUZZTIME=$FUZZTIME):"
printf '  %s\n' "${results[@]}"
exit $failed
