#!/usr/bin/env bash
# The main job on a fresh machine: setup (idempotent), then the live demo in network namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec npm run -s demo -- "$@"
