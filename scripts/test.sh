#!/usr/bin/env bash
# The whole test suite: unit, protocol, and e2e tests that drive the compiled binary
# against a real Docker engine. As root it first installs the Debian packages the e2e
# tests need, and fetches the newer Docker engines of the e2e matrix. Prints
# the run time, then "N passed, N failed" last; exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
[ -x /usr/sbin/dockerd ] || need+=(docker.io)
command -v bindfs >/dev/null || need+=(bindfs fuse3)
command -v strace >/dev/null || need+=(strace)
command -v openssl >/dev/null || need+=(openssl)
command -v systemd-socket-activate >/dev/null || need+=(systemd)
# Multi-host tests: a real GlusterFS volume (glusterd is started by the tests, not systemd).
[ -x /usr/sbin/glusterd ] || need+=(glusterfs-server)
command -v ip >/dev/null || need+=(iproute2)
[ -x /bin/busybox ] && dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' || need+=(busybox-static)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing Debian packages: ${need[*]} (run as root to install them)" >&2
    exit 1
  fi
  export NEEDRESTART_SUSPEND=1 DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q "${need[@]}"
fi

[ -x node_modules/.bin/bun ] || npm ci --no-audit --no-fund
export PATH="$PWD/node_modules/.bin:$PATH"
bun run build
tsc --noEmit -p .
# The e2e engine matrix (Docker 20.10, 26, 28; DQP_E2E_ENGINE picks some): fetched and
# cached before the tests, so no test's setup waits on the mirror.
if [ "$(id -u)" -eq 0 ]; then bun scripts/fetch-engines.ts; fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
bun test --timeout 120000 "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
passed=$(sed -n 's/^ *\([0-9][0-9]*\) pass$/\1/p' "$log" | tail -1)
failed=$(sed -n 's/^ *\([0-9][0-9]*\) fail$/\1/p' "$log" | tail -1)
echo "suite run time: $((SECONDS / 60)) min $((SECONDS % 60)) s"
echo "${passed:-0} passed, ${failed:-0} failed"
if [ "$status" -eq 0 ] && [ "${passed:-0}" -eq 0 ]; then exit 1; fi
exit "$status"
