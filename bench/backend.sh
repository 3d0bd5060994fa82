#!/usr/bin/env bash
# State-backend benchmark (npm run bench:backend, issue 15): the etcd backend against the embedded
# Raft log in one run, same machine. Not a test. In a private two-namespace lab named lh<rand>e-*
# (deleted on exit), lanha serving DHCP with every lease committed before its ACK:
#   1. max DORA/s with < 1 % drops (perfdhcp, step up then bisect), in PAIRS (5) pairs of passes
#      that interleave the backends (raft, etcd, etcd, raft, raft, etcd, ...: the order turns every
#      pair), each pass on a fresh lanha with an empty state (and an emptied, compacted etcd): on this
#      shared machine a pass swings 2-10x with what else runs, so the figure is the median of the
#      per-pair ratios (each pair measured within a minute), with their spread:
#      raft = the one-member embedded log on this disk (fsync per commit batch);
#      etcd = `cluster.backend: etcd` on a 3-member etcd-server on the server namespace's loopback
#      (etcd's default timers, as a site runs it: heartbeat 100 ms, election 1 s).
#      perfdhcp waits 1 s (its drop time, -W) for the answers in flight when a step ends.
#      After each pass a DIAG line (bench/backend-diag.ts): lanha's leadership lapses, shed and
#      dropped requests, ACK stages; on etcd its leader changes, WAL fsyncs over 256 ms, slow applies.
#   2. REQUEST-to-ACK time at a light load (100 DORA/s), p50 and p99 (bench/dhcp-latency.ts)
#   3. kill -9 of the etcd leader member under a perfdhcp load (etcd backend; the shared
#      dhcp-durability.sh): ACKed leases lost (KILL_REPEAT runs at KILL_RATE DORA/s)
#   4. the crash failover gap (kill -9 of the leader under DHCP/DNS probes, udhcpc clients), ACKed
#      leases lost and duplicate bindings, both backends (bench/backend-failover.ts, ROUNDS each)
# The etcd figure goes in the lanha= field, the embedded log's as the anchor (raft=).
#   2b. CPU per DORA at a fixed rate (CPU_RATE DORA/s, 300, for CPU_PERIOD s, 8): lanha's, plus the
#      three etcd members' on the etcd backend, from /proc (SKIP_CPU skips it)
# Env: PAIRS (5), PERIOD (3 s per step), LIGHT_COUNT (500), KILL_REPEAT (3), KILL_RATE (100), ROUNDS (5), LEASE_TTL (1s), SKIP_DORA, SKIP_CRASH (skip parts 1-2, 4), SKIP_MAX (part 1 only), BACKENDS ("raft etcd"), LOGS_DIR (keep lanha's and etcd's logs there), LOG_LEVEL (warn).
# Every process is started here and stopped by PID. Needs root.
source "$(dirname "$0")/lib.sh"
# LOGS_DIR: lanha's and the etcd members' logs are copied there before the temp dir goes.
bench_before_cleanup() {
  [ -n "${LOGS_DIR:-}" ] && mkdir -p "$LOGS_DIR" && for f in "$D"/lanha-*/lanha.log; do [ -f "$f" ] && cp "$f" "$LOGS_DIR/$(basename "$(dirname "$f")").log"; done
  [ -n "${LOGS_DIR:-}" ] && for f in "$D"/etcd?.log; do [ -f "$f" ] && cp "$f" "$LOGS_DIR/"; done
  return 0
}
dhcp_lab_up bench:backend e backend

# etcd: three members on the server namespace's loopback with etcd's default timers (the tests'
# fast ones, 50/500 ms, lost the leader whenever the two cores were starved for half a second).
CLUSTER=""; ENDPOINTS=""
for i in 0 1 2; do CLUSTER="$CLUSTER${CLUSTER:+,}e$i=http://127.0.0.1:$((23800 + i))"; ENDPOINTS="$ENDPOINTS${ENDPOINTS:+, }\"http://127.0.0.1:$((23790 + i))\""; done
etcd_member() { # index state(new|existing): starts member i, its PID in $D/etcd<i>.pid
  local i=$1
  ip netns exec "$SRV_NS" etcd --name "e$i" --data-dir "$D/etcd$i" \
    --listen-client-urls "http://127.0.0.1:$((23790 + i))" --advertise-client-urls "http://127.0.0.1:$((23790 + i))" \
    --listen-peer-urls "http://127.0.0.1:$((23800 + i))" --initial-advertise-peer-urls "http://127.0.0.1:$((23800 + i))" \
    --initial-cluster "$CLUSTER" --initial-cluster-state "$2" --heartbeat-interval "${ETCD_HEARTBEAT_MS:-100}" --election-timeout "${ETCD_ELECTION_MS:-1000}" \
    --log-level warn --logger zap >> "$D/etcd$i.log" 2>&1 &
  echo $! > "$D/etcd$i.pid"
}
etcd_healthy() { # index
  ip netns exec "$SRV_NS" curl -s --max-time 1 "http://127.0.0.1:$((23790 + $1))/health" | grep -q '"health":"true"'
}
export -f etcd_member etcd_healthy; export D SRV_NS CLUSTER
for i in 0 1 2; do etcd_member "$i" new; done
for _ in $(seq 1 100); do etcd_healthy 0 && break; sleep 0.2; done

lanha_start() { # backend -> PID; an empty state each time (a fresh state dir; a new cluster id, so a new etcd prefix)
  local backend=$1 dir=$D/lanha-$1; mkdir -p "$dir"; rm -rf "$dir/state"
  local cluster=""
  [ "$backend" = etcd ] && cluster="cluster:
  id: bench$RANDOM
  backend: etcd
  members: [{ name: bench, address: 10.99.0.1 }]
  etcd: { endpoints: [$ENDPOINTS] }"
  lanha_bench_config "$dir" "${LOG_LEVEL:-warn}" "$cluster"
  ip netns exec "$SRV_NS" node "$LANCTL" serve --config "$dir/lanha.yaml" >> "$dir/lanha.log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 100); do node "$LANCTL" status --socket "$dir/lanha.sock" >/dev/null 2>&1 && { echo "$pid"; return 0; }; sleep 0.3; done
  cat "$dir/lanha.log" >&2; kill "$pid"; return 1
}

# CPU time (ms) used so far by the PIDs given (utime + stime from /proc; a gone PID counts 0).
cpu_ms() {
  local hz; hz=$(getconf CLK_TCK)
  for p in "$@"; do [ -r "/proc/$p/stat" ] && sed 's/^.*) //' "/proc/$p/stat"; done | awk -v hz="$hz" '{t += $12 + $13} END {printf "%.0f", t * 1000 / hz}'
}
etcd_pids() { for i in 0 1 2; do cat "$D/etcd$i.pid"; done; }

# CPU per DORA at one fixed rate on both backends (CPU_RATE DORA/s for CPU_PERIOD s): what a DORA
# costs the machine (lanha, plus the three etcd members on the etcd backend). Less at the mercy of
# the other processes on a shared machine than the DORA/s maximum, which the two cores bound.
acks_sent() { # socket: lanha's own count of ACKs sent
  node "$LANCTL" status --json --socket "$1" 2>/dev/null | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{try{console.log(JSON.parse(s).services.dhcp.counters["sent.ack"]??0)}catch{console.log(0)}})'
}
cpu_per_dora() { # backend lanha-pid -> sets V[backend.cpu*]
  local backend=$1 pid=$2 rate=${CPU_RATE:-300} period=${CPU_PERIOD:-8} pids=("$2") out="$D/$1-cpu.out"
  [ "$backend" = etcd ] && pids+=($(etcd_pids))
  local l0 e0 l1 e1 acks
  local each0=() each1=() q
  for q in "${pids[@]:1}"; do each0+=("$(cpu_ms "$q")"); done
  local a0 a1 sock="$D/lanha-$backend/lanha.sock"
  a0=$(acks_sent "$sock")
  l0=$(cpu_ms "$pid"); e0=$(cpu_ms "${pids[@]:1}")
  timeout $((period + 15)) ip netns exec "$NS" perfdhcp -l "$IFACE" -r "$rate" -R 40000 -p "$period" 10.99.0.1 > "$out" 2>&1
  l1=$(cpu_ms "$pid"); e1=$(cpu_ms "${pids[@]:1}")
  for q in "${pids[@]:1}"; do each1+=("$(cpu_ms "$q")"); done
  a1=$(acks_sent "$sock")
  acks=$((a1 - a0)) # what lanha sent: perfdhcp, starved on a loaded machine, may count fewer
  [ "${acks:-0}" -gt 0 ] || { echo "no ACK in the CPU run"; return; }
  V[$backend.cpu]=$(awk -v a="$((l1 - l0 + e1 - e0))" -v n="$acks" 'BEGIN{printf "%.3f", a / n}')
  echo "CPU $backend rate=$rate acked=$acks lanha_ms=$((l1 - l0)) etcd_ms=$((e1 - e0))$(for i in "${!each0[@]}"; do printf ' e%s_ms=%s' "$i" "$((each1[i] - each0[i]))"; done) ms_per_dora=${V[$backend.cpu]}"
}

# The etcd backend's own counters: txns and the commands they carried, conflicts, shed proposals.
etcd_stats() { # socket
  node "$LANCTL" status --json --socket "$1" 2>/dev/null | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{try{const e=JSON.parse(s).cluster.etcd;console.log(`ETCD txns=${e.txns} commands=${e.txnCommands} per_txn=${(e.txnCommands/Math.max(1,e.txns)).toFixed(2)} conflicts=${e.conflicts} shed=${e.shed} skipped=${e.skipped} etcd_leader=e${(e.health||[]).findIndex(h=>h.isLeader)} lanha_endpoint=e${e.endpoints.indexOf(e.endpoint)} keepalive_failures=${e.keepAliveFailures} lastError=${JSON.stringify(e.lastError)}`);const c=JSON.parse(s).services.dhcp?.counters??{};console.log("DHCP "+Object.entries(c).filter(([k])=>/drop|shed|fail|conflict|not-leader|ack|nak/.test(k)).map(([k,v])=>k+"="+v).join(" "))}catch{}})'
}

lanha_stop() { # PID
  kill "$1" 2>/dev/null; for _ in $(seq 1 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
}
etcd_metrics() { # FILE: the three members' /metrics, concatenated
  for i in 0 1 2; do ip netns exec "$SRV_NS" curl -s --max-time 2 "http://127.0.0.1:$((23790 + i))/metrics"; done > "$1" 2>/dev/null
}

# perfdhcp for the DORA passes waits up to its drop time (1 s) for the answers still in flight when
# a step's period ends (-W): without it those count as drops, and a 3 s step at 1 % fails whenever
# the REQUEST-to-ACK time averages over ~30 ms, at any rate (the etcd backend at 100/s on a loaded
# machine: 6 of 299 "dropped", every ACK sent, p99 250 ms). The same for both backends.
mkdir -p "$D/bin"
printf '#!/bin/sh\nexec %s -W 1000000 "$@"\n' "$(command -v perfdhcp)" > "$D/bin/perfdhcp"; chmod +x "$D/bin/perfdhcp"

# One DORA pass on a fresh lanha: prints its STEP lines and a DIAG line, sets V[backend.dora.pair].
dora_pass() { # backend pair
  local backend=$1 pair=$2 pid out="$D/$1-dora-$2.out" log="$D/lanha-$1/lanha.log"
  pid=$(lanha_start "$backend") || { echo "lanha on $backend did not start"; return; }
  PIDS+=("$pid")
  : > "$log.pass"; local from; from=$(wc -c < "$log")
  sleep "${WARMUP:-0}"
  [ "$backend" = etcd ] && etcd_metrics "$D/metrics-before"
  echo "== pair $pair: $backend DORA ($(uptime | sed 's/.*load average/load average/'))"
  PATH="$D/bin:$PATH" LABEL=$backend START_RATE=${START_RATE:-100} REPEAT=1 bash "$SHARED/dhcp-perf.sh" 10.99.0.1 > "$out"
  grep -E '^STEP' "$out"
  V[$backend.dora.$pair]=$(value dhcp.dora_per_s "$out")
  [ "$backend" = etcd ] && etcd_metrics "$D/metrics-after"
  tail -c +"$((from + 1))" "$log" > "$log.pass"
  node "$LANCTL" status --json --socket "$D/lanha-$backend/lanha.sock" 2>/dev/null \
    | node "$REPO/dist/bench/backend-diag.js" "$backend" "$pair" "$log.pass" "$D/metrics-before" "$D/metrics-after"
  echo "PASS $backend pair=$pair dora_per_s=$(or_na "${V[$backend.dora.$pair]:-}")"
  lanha_stop "$pid"
  [ "$backend" = etcd ] && etcd_reset
}

# After an etcd pass: its keys deleted and etcd's history compacted, so every etcd pass starts on
# an etcd as empty as the raft pass's fresh WAL (a site compacts its etcd; this bench's would grow by
# each pass's history).
etcd_reset() {
  local gw="http://127.0.0.1:23790/v3/kv" rev
  rev=$(ip netns exec "$SRV_NS" curl -s --max-time 10 -X POST -d '{"key":"L2xhbmhhLw==","range_end":"L2xhbmhhMA=="}' "$gw/deleterange" \
    | sed -n 's/.*"revision":"\([0-9]*\)".*/\1/p')
  [ -n "$rev" ] && ip netns exec "$SRV_NS" curl -s --max-time 30 -X POST -d "{\"revision\":\"$rev\",\"physical\":true}" "$gw/compaction" >/dev/null
}

# median_spread VALUES...: "median min max" of the numbers given (NA when none)
median_spread() {
  [ $# -eq 0 ] && { echo "NA NA NA"; return; }
  printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END{m=(NR%2)?v[(NR+1)/2]:(v[NR/2]+v[NR/2+1])/2; printf "%s %s %s\n", m, v[1], v[NR]}'
}

declare -A V
BACKEND_LIST=${BACKENDS:-raft etcd}
if [ -z "${SKIP_DORA:-}" ] && [ -z "${SKIP_MAX:-}" ]; then
  ratios=(); raft_values=(); etcd_values=(); skipped_pairs=0
  for pair in $(seq 1 "${PAIRS:-5}"); do
    # ABBA: the order turns every pair, so a load that rises or falls across a pair favours neither backend.
    order=$BACKEND_LIST; [ $((pair % 2)) = 0 ] && order=$(echo "$BACKEND_LIST" | awk '{for (i = NF; i > 0; i--) printf "%s%s", $i, (i > 1 ? " " : "")}')
    for backend in $order; do dora_pass "$backend" "$pair"; done
    r=${V[raft.dora.$pair]:-}; e=${V[etcd.dora.$pair]:-}
    [ -n "$r" ] && raft_values+=("$r"); [ -n "$e" ] && etcd_values+=("$e")
    if [ -n "$r" ] && [ -n "$e" ] && [ "$r" != 0 ]; then
      ratios+=("$(ratio "$e" "$r")"); echo "PAIR $pair etcd=$e raft=$r ratio=${ratios[-1]}"
    else
      skipped_pairs=$((skipped_pairs + 1)); echo "PAIR $pair etcd=$(or_na "$e") raft=$(or_na "$r") ratio=NA (no ratio: the raft pass found no rate, or a pass did not run)"
    fi
  done
  read -r "V[ratio.median]" "V[ratio.min]" "V[ratio.max]" < <(median_spread "${ratios[@]}")
  read -r "V[raft.dora]" _ _ < <(median_spread "${raft_values[@]}")
  read -r "V[etcd.dora]" _ _ < <(median_spread "${etcd_values[@]}")
  V[ratio.list]=$(IFS=,; echo "${ratios[*]}")
  V[ratio.skipped]=$skipped_pairs
fi

for backend in $BACKEND_LIST; do
  PID=$(lanha_start "$backend") || { echo "lanha on $backend did not start"; continue; }
  PIDS+=("$PID")
  [ -n "${SKIP_DORA:-}" ] && { kill "$PID"; sleep 1; continue; }
  echo "== $backend: light-load latency ($LIGHT_COUNT DORA at 100/s)"
  lat=$(ip netns exec "$NS" node "$REPO/dist/bench/dhcp-latency.js" 10.99.0.1 10.99.0.2 100 "$LIGHT_COUNT" 9)
  echo "$lat"
  V[$backend.p50]=$(echo "$lat" | sed -n 's/.*"requestP50Ms":\([0-9.]*\).*/\1/p')
  V[$backend.p99]=$(echo "$lat" | sed -n 's/.*"requestP99Ms":\([0-9.]*\).*/\1/p')
  [ -z "${SKIP_CPU:-}" ] && cpu_per_dora "$backend" "$PID"
  [ "$backend" = etcd ] && etcd_stats "$D/lanha-etcd/lanha.sock"
  kill "$PID"; for _ in $(seq 1 50); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
done

# kill -9 of the etcd leader member in the middle of a perfdhcp load on the etcd backend: the
# shared durability script kills the PID its start command prints; here that is etcd's leader, and
# the restart brings the member back (lanha keeps running: it must not lose what it ACKed).
cat > "$D/etcd-victim.sh" <<'V'
set -u
for i in 0 1 2; do kill -0 "$(cat "$D/etcd$i.pid")" 2>/dev/null || { etcd_member "$i" existing; for _ in $(seq 1 100); do etcd_healthy "$i" && break; sleep 0.2; done; }; done
if ! kill -0 "$(cat "$D/lanha-etcd.pid" 2>/dev/null)" 2>/dev/null; then
  ip netns exec "$SRV_NS" node "$LANCTL" serve --config "$D/lanha-etcd/lanha.yaml" >> "$D/lanha-etcd/lanha.log" 2>&1 &
  echo $! > "$D/lanha-etcd.pid"
  for _ in $(seq 1 100); do node "$LANCTL" status --socket "$D/lanha-etcd/lanha.sock" >/dev/null 2>&1 && break; sleep 0.3; done
fi
[ -n "${KEEP_LEASES:-}" ] && exit 0   # after the kill: the member is back; no PID printed, so nothing is killed at the end of the run
for i in 0 1 2; do
  s=$(ip netns exec "$SRV_NS" curl -s --max-time 1 -X POST -d '{}' "http://127.0.0.1:$((23790 + i))/v3/maintenance/status")
  leader=$(echo "$s" | sed -n 's/.*"leader":"\([0-9]*\)".*/\1/p'); me=$(echo "$s" | sed -n 's/.*"member_id":"\([0-9]*\)".*/\1/p')
  [ -n "$leader" ] && [ "$leader" = "$me" ] && { echo "PID $(cat "$D/etcd$i.pid")"; exit 0; }
done
echo "no etcd leader found" >&2
V
if [ -f "$D/lanha-etcd/lanha.yaml" ]; then
  echo "== etcd: kill -9 of the etcd leader member under perfdhcp load"
  export LANCTL
  LEASES_CMD="node $LANCTL leases --json --all --socket $D/lanha-etcd/lanha.sock | node -e 'let s=\"\";process.stdin.on(\"data\",d=>s+=d).on(\"end\",()=>{for(const l of JSON.parse(s)) if(l.state===\"bound\") console.log(l.ip,l.mac)})'"
  START_CMD="bash $D/etcd-victim.sh" LEASES_CMD="$LEASES_CMD" LABEL=etcd-leader REPEAT=${KILL_REPEAT:-3} PERIOD=6 RATE=${KILL_RATE:-100} \
    bash "$SHARED/dhcp-durability.sh" custom 2>&1 | tee "$D/etcd-kill.out" | grep -E '^(STEP|RESULT|LOST)'
  V[etcdkill.lost]=$(value dhcp.kill9_lost_acked_leases "$D/etcd-kill.out")
  V[etcdkill.acked]=$(value dhcp.kill9_acked_leases "$D/etcd-kill.out")
  [ -f "$D/lanha-etcd.pid" ] && kill "$(cat "$D/lanha-etcd.pid")" 2>/dev/null
fi

if [ -z "${SKIP_CRASH:-}" ]; then
  echo "== crash failover (kill -9 of the leader, ${ROUNDS:-5} rounds per backend)"
  ROUNDS=${ROUNDS:-5} LEASE_TTL=${LEASE_TTL:-1s} node "$REPO/dist/bench/backend-failover.js" | tee "$D/crash.out"
  for backend in raft etcd; do
    line=$(grep "^CRASH $backend " "$D/crash.out")
    for k in gap_ms gap_ms_p99 lost duplicates; do V[$backend.$k]=$(echo "$line" | sed -n "s/.* $k=\([0-9.NaN]*\).*/\1/p"); done
  done
fi

line() { echo "RESULT $1 lanha=$(or_na "$2") raft=$(or_na "$3") ratio=$(ratio "$2" "$3") unit=$4 better=$5"; }
echo
# DORA/s: the medians of each backend's passes; the ratio is the median of the per-pair ratios (not
# the ratio of the medians), its spread and the pairs' ratios after it.
echo "RESULT backend.dora_per_s lanha=$(or_na "${V[etcd.dora]:-}") raft=$(or_na "${V[raft.dora]:-}") ratio=$(or_na "${V[ratio.median]:-}") unit=dora/s better=higher ratio_min=$(or_na "${V[ratio.min]:-}") ratio_max=$(or_na "${V[ratio.max]:-}") pair_ratios=$(or_na "${V[ratio.list]:-}") pairs_without_ratio=$(or_na "${V[ratio.skipped]:-}")"
line backend.ack_ms_p50 "${V[etcd.p50]:-}" "${V[raft.p50]:-}" ms lower
line backend.ack_ms_p99 "${V[etcd.p99]:-}" "${V[raft.p99]:-}" ms lower
line backend.cpu_ms_per_dora "${V[etcd.cpu]:-}" "${V[raft.cpu]:-}" ms lower
line backend.crash_gap_ms "${V[etcd.gap_ms]:-}" "${V[raft.gap_ms]:-}" ms lower
line backend.lost_acked "${V[etcd.lost]:-}" "${V[raft.lost]:-}" leases lower
line backend.duplicates "${V[etcd.duplicates]:-}" "${V[raft.duplicates]:-}" leases lower
echo "RESULT backend.etcd_leader_kill_lost_acked lanha=$(or_na "${V[etcdkill.lost]:-}") raft=NA ratio=NA unit=leases better=lower acked=$(or_na "${V[etcdkill.acked]:-}")"
