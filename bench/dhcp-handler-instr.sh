#!/usr/bin/env bash
# Instructions per DHCP exchange inside the daemon (bench/dhcp-handler-cpu.ts, no sockets), counted
# by valgrind's callgrind, which, unlike CPU time, does not move with what else the machine runs. For
# each kind the helper runs twice under callgrind, after the same set-up and warm-up, with OPS and
# 3 x OPS measured exchanges; the difference of the two totals over 2 x OPS exchanges is the figure
# (start-up, binding and warm-up cancel out). Every thread counts (the WAL's fdatasync on libuv's
# pool, V8's compiler and GC helpers); the kernel's work inside a system call does not.
# Not a test. Env: KINDS (offer,ack,cached), OPS (500), CLIENTS (300), NODE (node), DIST (dist: e.g.
# another build's dist directory, for A/B).
# Prints: RESULT dhcp.handler.instructions_per_<kind> lanha=<n> anchor=NA ratio=NA unit=instructions better=lower
set -uo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
command -v valgrind >/dev/null || { echo "valgrind is not installed: apt-get install valgrind"; exit 2; }
DIST=${DIST:-$REPO/dist}
OPS=${OPS:-500}
NODE_FLAGS=$(sed -n 's|^ExecStart=/usr/bin/node \(.*\) */usr/lib/lanha/dist/bin/lanhad.js.*|\1|p' "$REPO/systemd/lanha.service")
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
count() { # KIND OPS -> total instructions
  # shellcheck disable=SC2086
  CLIENTS=${CLIENTS:-300} ONLY=$1 OPS=$2 valgrind --tool=callgrind --callgrind-out-file="$T/cg.%p" ${NODE:-node} $NODE_FLAGS "$DIST/bench/dhcp-handler-cpu.js" > "$T/out" 2> "$T/err"
  grep -q '^DONE' "$T/out" || { echo "the helper failed:" >&2; tail -5 "$T/err" >&2; echo 0; return; }
  awk '/^==[0-9]+== Collected :/{print $4}' "$T/err"
}
echo "load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)"
for kind in $(echo "${KINDS:-offer,ack,cached}" | tr , ' '); do
  a=$(count "$kind" "$OPS"); b=$(count "$kind" $((3 * OPS)))
  per=$(awk -v a="$a" -v b="$b" -v n=$((2 * OPS)) 'BEGIN{ if (a > 0 && b > 0) printf "%.0f", (b - a) / n; else print "NA" }')
  echo "RESULT dhcp.handler.instructions_per_$kind lanha=$per anchor=NA ratio=NA unit=instructions better=lower ops=$OPS,$((3 * OPS)) totals=$a,$b"
done
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
