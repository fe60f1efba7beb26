#!/usr/bin/env bash
# Installs the system packages integration tests use, if missing: Debian's chromium (+ driver) for the
# browser tests and postgresql for the review store's PostgreSQL tests. Needs root (as in CI); without
# it, says what is missing and carries on (those tests then skip with a reason).
set -euo pipefail
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium chromium-driver)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "note: not root, so not installing ${need[*]}; tests that need them will be skipped." >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
echo "installed: ${need[*]}"
