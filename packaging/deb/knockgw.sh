#!/bin/sh
# The package's own Node runs knockgw, never the machine's `node` (Debian 12 ships 18).
exec /usr/lib/knockgw/node /usr/lib/knockgw/app/main.mjs "$@"
