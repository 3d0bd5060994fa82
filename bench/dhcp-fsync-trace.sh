#!/usr/bin/env bash
# Where a light-load DHCPACK's fdatasync time goes (not a test): the bare fdatasync loop on the thread
# pool (bench/fsync-floor.ts), then a fresh lanha daemon under `perf trace` (system calls only, no
# ptrace stops) while bench/dhcp-latency.ts runs LIGHT_COUNT DORA at RATE/s, then bench/wal-trace.ts
# splits each WAL fdatasync into the system call itself (the floor), the hand-off to a pool thread
# and the wake-up of the event loop. Lab of bench:dhcp (lh<rand>w-*, or LAB_PREFIX), removed on exit.
# Env: LIGHT_COUNT (500), RATE (100). Needs root and perf.
source "$(dirname "$0")/lib.sh"
RATE=${RATE:-100}
command -v perf >/dev/null || { echo "bench:dhcp-fsync-trace needs perf: run it as npm run bench:dhcp-fsync-trace (as root it installs linux-perf), or apt-get install linux-perf"; exit 2; }
dhcp_lab_up bench:dhcp-fsync-trace w dhcp
NODE_FLAGS=${LANHA_NODE_FLAGS:-$(sed -n 's|^ExecStart=/usr/bin/node \(.*\) */usr/lib/lanha/dist/bin/lanhad.js.*|\1|p' "$REPO/systemd/lanha.service")}
mkdir -p "$D/floor"
echo "floor (thread pool): $(node "$REPO/dist/bench/fsync-floor.js" "$D/floor" "$RATE" "$LIGHT_COUNT" 256 pool) load=$(cut -d' ' -f1 /proc/loadavg)"
dir=$D/lanha; mkdir -p "$dir"; lanha_bench_config "$dir" warn
# shellcheck disable=SC2086
ip netns exec "$SRV_NS" node $NODE_FLAGS "$LANCTL" serve --config "$dir/lanha.yaml" > "$dir/lanha.log" 2>&1 &
echo $! > "$D/lanha.pid"
for _ in $(seq 1 100); do node "$LANCTL" status --socket "$dir/lanha.sock" >/dev/null 2>&1 && break; sleep 0.3; done
perf trace -p "$(cat "$D/lanha.pid")" -e pwrite64,fdatasync,write,epoll_pwait,epoll_wait -o "$D/trace.txt" 2>"$D/perf.err" &
echo $! > "$D/perf.pid"; sleep 1
echo "lanha: $(RENEW_BURST=0 ip netns exec "$NS" node "$REPO/dist/bench/dhcp-latency.js" 10.99.0.1 10.99.0.2 "$RATE" "$LIGHT_COUNT" 9 | cut -d, -f1-9)}"
kill -INT "$(cat "$D/perf.pid")"; wait "$(cat "$D/perf.pid")" 2>/dev/null; rm -f "$D/perf.pid"
echo "WAL fdatasync parts: $(node "$REPO/dist/bench/wal-trace.js" "$D/trace.txt") load=$(cut -d' ' -f1 /proc/loadavg)"
