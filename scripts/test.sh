#!/usr/bin/env bash
# The whole test suite on a fresh machine: setup (idempotent), then npm test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec npm test
