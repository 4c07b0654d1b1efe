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
# Django example and its tests run with.
for mod in django:python3-django rest_framework:python3-djangorestframework jwt:python3-jwt cryptography:python3-cryptography; do
  /usr/bin/python3 -c "import ${mod%%:*}" >/dev/null 2>&1 || need+=("${mod##*:}")
done

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
