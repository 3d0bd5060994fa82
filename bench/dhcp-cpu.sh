#!/usr/bin/env bash
# CPU time per ACK, lanha against Kea (memfile, persist), under the same fixed perfdhcp load: each
# server alone in a private two-namespace lab (lh<rand>u-*), 300 clients bound first, then perfdhcp
# -r 100 -f 100 -R 300 -p 10 (DORA and renewals of the same 300 clients); the server's utime + stime
# (/proc, the process and its children) over that run, per ACK perfdhcp received. The DISCOVER/OFFER
# work and the daemon's own timers are included alike. CPU time, unlike a rate, barely moves with what
# else the machine runs; runs are interleaved (lanha kea kea lanha ...) and the medians compared.
# The same load runs a second time on the same server, measured again: a daemon that has run for a
# while, whose JIT compiler has settled (lanha's first 10 s include V8 compiling its hot code on
# helper threads, a third of its CPU there; Kea has nothing to warm up): RESULT dhcp.cpu_us_per_ack.warm.
# Not a test. Needs root. Env: ROUNDS (2), SHARED_BENCH, CACHE_THRESHOLD (unset: each server at its
# own default, lanha 0.25 (as Kea 3.0), Kea as its version has it (2.x: off); e.g. 0.25 or 0 (off):
# lanha's dhcp.cacheThreshold and Kea's cache-threshold).
# Prints: RESULT dhcp.cpu_us_per_ack lanha=.. kea=.. ratio=.. unit=us better=lower cache_threshold=..
# (CACHE_THRESHOLD, or "defaults") runs_lanha=.. runs_kea=.. lanha_cache_threshold=.. kea_cache_threshold=..
# (what each ran with; Kea's as it reported it), and the same fields on dhcp.cpu_us_per_ack.warm.
source "$(dirname "$0")/lib.sh"
ROUNDS=${ROUNDS:-2}
dhcp_lab_up bench:dhcp-cpu u dhcp
NODE_FLAGS=$(sed -n 's|^ExecStart=/usr/bin/node \(.*\) */usr/lib/lanha/dist/bin/lanhad.js.*|\1|p' "$REPO/systemd/lanha.service")
echo "load average at the start: $(cut -d' ' -f1-3 /proc/loadavg); lease caching: ${CACHE_THRESHOLD:-each server at its default}"

ticks() { # PID -> utime + stime of it and its children, in clock ticks
  local t=0 p v
  for p in "$1" $(ps -o pid= --ppid "$1" 2>/dev/null); do v=$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null); t=$((t + ${v:-0})); done
  echo "$t"
}
acks_of() { awk '/^\*\*\*Statistics for: REQUEST-ACK/{s=1} s && /^received packets:/{n += $3; s=0} END{print n + 0}'; }

start_server() { # kind dir -> PID
  local kind=$1 dir=$2 pid=""
  if [ "$kind" = lanha ]; then
    lanha_bench_config "$dir" warn
    # shellcheck disable=SC2086
    ip netns exec "$SRV_NS" node $NODE_FLAGS "$LANCTL" serve --config "$dir/lanha.yaml" > "$dir/lanha.log" 2>&1 & pid=$!
    for _ in $(seq 1 100); do node "$LANCTL" status --socket "$dir/lanha.sock" >/dev/null 2>&1 && break; sleep 0.3; done
  else
    pid=$(bash "$SHARED/dhcp-server.sh" kea-persist "$dir" | awk '/^PID/{print $2}')
    for _ in $(seq 1 50); do [ -S "$dir/kea4-ctrl.sock" ] && break; sleep 0.1; done
    [ -n "${CACHE_THRESHOLD:-}" ] && node -e '
const net = require("net");
const ask = (c) => new Promise((resolve, reject) => { const s = net.connect(process.argv[1], () => s.write(JSON.stringify(c))); let b = ""; s.on("data", (d) => b += d); s.on("end", () => resolve(JSON.parse(b))); s.on("error", reject); });
(async () => { const got = await ask({ command: "config-get" }); const d = got.arguments.Dhcp4; const v = Number(process.argv[2]); if (v > 0) d["cache-threshold"] = v; else { delete d["cache-threshold"]; d["cache-max-age"] = 0; } const r = await ask({ command: "config-set", arguments: got.arguments }); if (r.result !== 0) console.log("kea config-set:", r.text); })();' "$dir/kea4-ctrl.sock" "$CACHE_THRESHOLD" >&2
    kea_cache_threshold "$dir/kea4-ctrl.sock" > "$D/kea-cache-threshold"
  fi
  echo "$pid"
}

declare -A RUNS WARM
for round in $(seq 1 "$ROUNDS"); do
  order="lanha kea"; [ $((round % 2)) = 0 ] && order="kea lanha"
  for kind in $order; do
    dir="$D/$kind-$round"; mkdir -p "$dir"
    pid=$(start_server "$kind" "$dir")
    [ -n "$pid" ] || { echo "$kind did not start"; continue; }
    PIDS+=("$pid")
    ip netns exec "$NS" timeout 30 perfdhcp -l "$IFACE" -r 100 -R 300 -p 4 10.99.0.1 > /dev/null 2>&1
    t0=$(ticks "$pid")
    acks=$(ip netns exec "$NS" timeout 40 perfdhcp -l "$IFACE" -r 100 -f 100 -R 300 -p 10 10.99.0.1 2>&1 | acks_of)
    t1=$(ticks "$pid")
    warm_acks=$(ip netns exec "$NS" timeout 40 perfdhcp -l "$IFACE" -r 100 -f 100 -R 300 -p 10 10.99.0.1 2>&1 | acks_of)
    t2=$(ticks "$pid")
    cached=NA
    [ "$kind" = lanha ] && cached=$(node "$LANCTL" status --json --socket "$dir/lanha.sock" 2>/dev/null | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).services.dhcp?.counters?.["lease.reused"] ?? 0))')
    kill "$pid" 2>/dev/null; for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done; kill -9 "$pid" 2>/dev/null
    us=$(awk -v t=$((t1 - t0)) -v a="$acks" -v hz="$(getconf CLK_TCK)" 'BEGIN{ if (a > 0) printf "%.0f", t * 1e6 / hz / a }')
    warm=$(awk -v t=$((t2 - t1)) -v a="$warm_acks" -v hz="$(getconf CLK_TCK)" 'BEGIN{ if (a > 0) printf "%.0f", t * 1e6 / hz / a }')
    echo "STEP round=$round server=$kind ticks=$((t1 - t0)) acks=$acks us_per_ack=${us:-NA} cached_acks=$cached warm_ticks=$((t2 - t1)) warm_acks=$warm_acks warm_us_per_ack=${warm:-NA}"
    [ -n "$us" ] && RUNS[$kind]+="$us "
    [ -n "$warm" ] && WARM[$kind]+="$warm "
  done
done
median() { printf '%s\n' $1 | sort -g | awk '{v[NR]=$1} END{ if (NR) print v[int((NR + 1) / 2)] }'; }
L=$(median "${RUNS[lanha]:-}"); K=$(median "${RUNS[kea]:-}")
WL=$(median "${WARM[lanha]:-}"); WK=$(median "${WARM[kea]:-}")
cache_fields "$(cat "$D/kea-cache-threshold" 2>/dev/null)"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
[ -n "$K" ] || echo "# dhcp.cpu_us_per_ack: kea=NA: Kea gave no figure in this run (see the STEP lines)"
echo "RESULT dhcp.cpu_us_per_ack lanha=$(or_na "$L") kea=$(or_na "$K") ratio=$(ratio "$L" "$K") unit=us better=lower cache_threshold=${CACHE_THRESHOLD:-defaults} runs_lanha=$(echo ${RUNS[lanha]:-} | tr ' ' ,) runs_kea=$(echo ${RUNS[kea]:-} | tr ' ' ,) $CACHE_FIELDS"
echo "RESULT dhcp.cpu_us_per_ack.warm lanha=$(or_na "$WL") kea=$(or_na "$WK") ratio=$(ratio "$WL" "$WK") unit=us better=lower cache_threshold=${CACHE_THRESHOLD:-defaults} runs_lanha=$(echo ${WARM[lanha]:-} | tr ' ' ,) runs_kea=$(echo ${WARM[kea]:-} | tr ' ' ,) $CACHE_FIELDS"
