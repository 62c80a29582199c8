#!/usr/bin/env bash
# The benchmark on a fresh machine: setup (idempotent), then npm run bench (knockgw vs knockd).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec npm run -s bench -- "$@"
