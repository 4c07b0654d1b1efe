#!/usr/bin/env bash
# Builds Ory Hydra, the certified OpenID provider the end-to-end tests run
# beside the development one (internal/testhydra), once per version, into
# the user's cache directory:
#
#   ${XDG_CACHE_HOME:-$HOME/.cache}/gatehouse/hydra-<version>/hydra
#
# internal/testhydra looks for it there (or at $GATEHOUSE_HYDRA) and fails
# loudly when it is missing. `make test` runs this script before the tests.
#
# A plain `go install github.com/ory/hydra/v2@v2.3.0` fails: Hydra's go.mod
# has replace directives, which `go install pkg@version` refuses. The module
# in tools/hydra pins Hydra as a tool with those replaces, so Gatehouse's own
# go.mod never sees Hydra's dependencies. DSN=memory needs SQLite, hence CGO
# and the sqlite build tags. A cold build takes a few minutes on two cores.
set -euo pipefail
cd "$(dirname "$0")/../tools/hydra"

GO=${GO:-go}
version=$(awk '$1 == "github.com/ory/hydra/v2" { print $2; exit }' go.mod)
if [ -z "$version" ]; then
  echo "build-hydra: no github.com/ory/hydra/v2 requirement in tools/hydra/go.mod" >&2
  exit 1
fi
dir=${GATEHOUSE_HYDRA_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/gatehouse/hydra-$version}
bin=$dir/hydra
# The stamp ties the binary to the exact module graph it was built from, so
# a change of tools/hydra's go.mod or go.sum rebuilds it.
stamp=$(cat go.mod go.sum | sha256sum | cut -c1-64)
if [ -x "$bin" ] && [ "$(cat "$dir/stamp" 2>/dev/null)" = "$stamp" ]; then
  exit 0
fi

if ! command -v gcc >/dev/null 2>&1; then
  echo "build-hydra: gcc is needed (CGO, for SQLite); ./scripts/install-deps.sh installs it" >&2
  exit 1
fi
mkdir -p "$dir"
tmp=$(mktemp "$dir/hydra.XXXXXX")
trap 'rm -f "$tmp"' EXIT
echo "build-hydra: building Ory Hydra $version into $dir (once; a few minutes)" >&2
start=$(date +%s)
GOWORK=off GOFLAGS="-mod=readonly -buildvcs=false" CGO_ENABLED=1 "$GO" build -trimpath \
  -tags sqlite,sqlite_omit_load_extension \
  -ldflags "-s -w -X github.com/ory/hydra/v2/driver/config.Version=$version" \
  -o "$tmp" github.com/ory/hydra/v2
chmod 0755 "$tmp"
mv -f "$tmp" "$bin"
echo "$stamp" >"$dir/stamp"
echo "build-hydra: built in $(($(date +%s) - start))s" >&2
