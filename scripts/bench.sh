#!/usr/bin/env bash
# The benchmark on a fresh machine: setup (idempotent), then npm run bench (knockgw vs knockd).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# `scripts/bench.sh -- --quick` and `scripts/bench.sh --quick` both mean --quick.
[ "${1:-}" = "--" ] && shift
exec npm run -s bench -- "$@"
