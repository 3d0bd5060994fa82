#!/usr/bin/env bash
# Netboot figure of bench:deploy (bench/netboot.ts): installs what it compares against, then runs it.
# Env: REPEAT (boots per server, 5), FILES (files in the tree, 300).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench netboot needs root (network namespaces, Debian arm64 fixtures)"; exit 1; }
bash bench/anchors.sh netboot
exec node dist/bench/netboot.js
