#!/usr/bin/env bash
# Idempotent setup for a fresh Debian/Ubuntu machine: the system tools knockgw drives and the
# npm dependencies (which pin Node 24 into node_modules/.bin). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

# The one list of programs the project starts is gateway/system-tools.ts; packages.sh reads it.
mapfile -t PACKAGES < <(scripts/packages.sh)

if [ "$(id -u)" -ne 0 ]; then
  echo "knockgw setup: run as root (sudo): it installs Debian packages and manages network namespaces" >&2
  exit 1
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "knockgw setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v npm >/dev/null; then
  echo "knockgw setup: installing nodejs and npm (Debian)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi

# npm ci when node_modules is missing or older than the lock file.
if [ ! -x node_modules/.bin/node ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "knockgw setup: npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi
