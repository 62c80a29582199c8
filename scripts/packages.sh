#!/usr/bin/env bash
# Prints the Debian packages knockgw, its tests, bench and demo need: the `pkg:` of every entry in
# gateway/system-tools.ts (the one list of programs the project starts), plus ca-certificates for
# npm. Read with grep because it runs before any Node is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
{ grep -oE "pkg: '[a-z0-9.+-]+'" gateway/system-tools.ts | cut -d"'" -f2; echo ca-certificates; } | sort -u
