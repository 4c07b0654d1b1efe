#!/usr/bin/env bash
# Installs, from Debian's packages, every program the test suite runs for real.
# Idempotent: does nothing when everything is present.
set -euo pipefail

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
# redis-cli builds the test Clusters (--cluster create); Sentinels run as
# redis-server --sentinel, so no redis-sentinel package is needed.
command -v redis-cli >/dev/null 2>&1 || need+=(redis-tools)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v caddy >/dev/null 2>&1 || need+=(caddy)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
# promtool (Debian's prometheus package) checks and unit-tests the chart's
# dashboard queries and alerts.
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
# scripts/build-hydra.sh builds Ory Hydra with CGO (SQLite for DSN=memory).
command -v gcc >/dev/null 2>&1 || need+=(gcc libc6-dev)
# proxy's path differential test runs a real Tomcat: an embedded Tomcat 10.1
# started by the JDK's single-file source launcher (which needs javac).
command -v javac >/dev/null 2>&1 || need+=(default-jdk-headless)
[ -f /usr/share/java/tomcat10-embed-core.jar ] || need+=(libtomcat10-embed-java)
# Debian's python3-* packages install for /usr/bin/python3, which is what the
# Django example and its tests run with; pip, setuptools and wheel build and
# install the gatehouse_auth wheel offline.
for mod in django:python3-django rest_framework:python3-djangorestframework jwt:python3-jwt cryptography:python3-cryptography \
    setuptools:python3-setuptools wheel:python3-wheel pip:python3-pip; do
  /usr/bin/python3 -c "import ${mod%%:*}" >/dev/null 2>&1 || need+=("${mod##*:}")
done

# The Angular example's tests (go test ./examples/angular) need its npm
# packages: npm ci from the registry, once per package-lock.json; the tests
# then download nothing. They need Node 20.19 or later, which this kind of
# machine ships (Debian 12's nodejs is 18, too old for Angular 21).
angular="$(cd "$(dirname "$0")/.." && pwd)/examples/angular"
if command -v npm >/dev/null 2>&1 && ! cmp -s "$angular/package-lock.json" "$angular/node_modules/.gatehouse-package-lock.json"; then
  echo "install-deps: npm ci in examples/angular" >&2
  (cd "$angular" && npm ci --no-audit --no-fund --loglevel=error)
  cp "$angular/package-lock.json" "$angular/node_modules/.gatehouse-package-lock.json"
fi
# node_modules is not Go: a go.mod there keeps go vet ./... and go test ./...
# out of whatever npm packages ship.
if [ -d "$angular/node_modules" ] && [ ! -f "$angular/node_modules/go.mod" ]; then
  printf 'module gatehouse.invalid/node_modules\n' >"$angular/node_modules/go.mod"
fi

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  SUDO=sudo
else
  SUDO=
fi
echo "install-deps: installing ${need[*]} from Debian's packages" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# The packaged services must not hold the ports or state the tests use.
for svc in redis-server nginx caddy prometheus; do
  $SUDO service "$svc" stop >/dev/null 2>&1 || true
done
