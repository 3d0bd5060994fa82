#!/usr/bin/env bash
# TFTP benchmark: lanha against tftpd-hpa in one run, both on 127.0.0.1, same files, same clients.
#   single : 64 MiB, curl --tftp-blksize 1468 (lock-step)                      -> tftp.single.mib_s
#   window : 64 MiB, atftp blksize 1468 windowsize 8 (tftpd-hpa has no RFC 7440:
#            its figure is its best single-stream run of curl or atftp)        -> tftp.window.mib_s
#   storm  : STORM (20) concurrent curl --tftp-blksize 1468 of a 16 MiB file    -> tftp.storm.mib_s
#   floor  : the same single-stream, storm and turnaround runs against dist/bench/tftp-floor.js, the least
#            a TFTP server on Node's dgram does per block (no timers, cache or limits): what any
#            TypeScript server here can reach at best (the storm too, all on one thread)
#            -> tftp.single.node_floor_mib_s, tftp.storm.node_floor_mib_s,
#            tftp.rtt_p50_us.node_floor, and CPU per block (lanha's whole process vs the floor)
#            -> tftp.single.cpu_us_per_block
#   turnaround: a lock-step client (dist/bench/tftp-rtt.js) times every ACK -> next DATA round trip
#            against lanha (worker threads, and `workers: 0`) and tftpd-hpa; lanha's own counters
#            time the sampled ACKs inside JavaScript (core step, block copy, send)  -> tftp.rtt_p50_us,
#            tftp.turnaround.js_us, tftp.turnaround.receive_path_us: where the single-stream gap goes
#   CPU    : each server's CPU per block over the single-stream and storm runs, all threads and the
#            children tftpd-hpa forks (dist/bench/tftp-cpu.js), and the storm clients' CPU per block
#            -> tftp.single.server_cpu_us_per_block, tftp.storm.server_cpu_us_per_block,
#            tftp.storm.client_cpu_us_per_block (node_floor= on each line): the clients share the
#            cores, so the storm ratio the CPU per block allows is printed beside the measured one
# Every transfer's sha256 is checked; lanha's failures are tftp.checksum_failures (must be 0).
# Env: RUNS=3 (median of) STORM=20 TIMEOUT=60 PORT_ANCHOR=16981 PORT_LANHA=16982 PORT_FLOOR=16984 BIG_MIB=64 SMALL_MIB=16
# Loopback only; every process started here is stopped by PID; scratch data in a mktemp dir.
set -uo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}; STORM=${STORM:-20}; TIMEOUT=${TIMEOUT:-60}
PORT_ANCHOR=${PORT_ANCHOR:-16981}; PORT_LANHA=${PORT_LANHA:-16982}
BIG_MIB=${BIG_MIB:-64}; SMALL_MIB=${SMALL_MIB:-16}
bash bench/anchors.sh tftp || exit 2
[ -f dist/services/tftp/server.js ] || npm run --silent build

D=$(mktemp -d); chmod 755 "$D"; mkdir -p "$D/root" "$D/out"; chmod 755 "$D/root"
LANHA_PID=""; ANCHOR_PID=""
cleanup() {
  [ -n "$LANHA_PID" ] && kill "$LANHA_PID" 2>/dev/null && wait "$LANHA_PID" 2>/dev/null
  [ -n "${LANHA0_PID:-}" ] && kill "$LANHA0_PID" 2>/dev/null && wait "$LANHA0_PID" 2>/dev/null
  [ -n "${FLOOR_PID:-}" ] && kill "$FLOOR_PID" 2>/dev/null && wait "$FLOOR_PID" 2>/dev/null
  [ -n "$ANCHOR_PID" ] && kill "$ANCHOR_PID" 2>/dev/null && wait "$ANCHOR_PID" 2>/dev/null
  rm -rf "$D"
}
trap cleanup EXIT
head -c $((BIG_MIB * 1048576)) /dev/urandom > "$D/root/big.bin"
head -c $((SMALL_MIB * 1048576)) /dev/urandom > "$D/root/small.bin"
chmod 644 "$D"/root/*.bin
BIG_SHA=$(sha256sum "$D/root/big.bin" | cut -d' ' -f1); SMALL_SHA=$(sha256sum "$D/root/small.bin" | cut -d' ' -f1)

# lanha: the real daemon (lanctl serve). All bench clients come from 127.0.0.1, so the per-client
# limit is raised to let the storm's 20 clients in at once (a real storm has 20 addresses).
cat > "$D/lanha.yaml" <<YAML
node:
  name: bench
  stateDir: $D/state
  controlSocket: $D/lanha.sock
  logLevel: warn
tftp:
  port: $PORT_LANHA
  listen: [127.0.0.1]
  root: $D/root
  perClientTransfers: 64
YAML
node dist/bin/lanctl.js serve --config "$D/lanha.yaml" > "$D/lanha.log" 2>&1 &
LANHA_PID=$!
# The same on the main thread (workers: 0), for the turnaround figures only.
PORT_LANHA0=${PORT_LANHA0:-16983}
sed -e "s|port: $PORT_LANHA|port: $PORT_LANHA0|" -e "s|$D/state|$D/state0|" -e "s|$D/lanha.sock|$D/lanha0.sock|" -e 's|  perClientTransfers: 64|  perClientTransfers: 64\n  workers: 0|' "$D/lanha.yaml" > "$D/lanha0.yaml"
node dist/bin/lanctl.js serve --config "$D/lanha0.yaml" > "$D/lanha0.log" 2>&1 &
LANHA0_PID=$!
# The Node dgram floor (bench/tftp-floor.ts) on the same files.
PORT_FLOOR=${PORT_FLOOR:-16984}
node dist/bench/tftp-floor.js "$PORT_FLOOR" "$D/root" > "$D/floor.log" 2>&1 &
FLOOR_PID=$!
ANCHOR=tftpd-hpa
if command -v in.tftpd >/dev/null; then
  in.tftpd -L -s -a "127.0.0.1:$PORT_ANCHOR" -u nobody "$D/root" > "$D/anchor.log" 2>&1 &
  ANCHOR_PID=$!
fi
sleep 1
if ! kill -0 "$LANHA_PID" 2>/dev/null; then echo "lanha did not start:"; cat "$D/lanha.log"; exit 1; fi
if [ -n "$ANCHOR_PID" ] && ! kill -0 "$ANCHOR_PID" 2>/dev/null; then ANCHOR_PID=""; fi
if ! kill -0 "$FLOOR_PID" 2>/dev/null; then echo "the node dgram floor server did not start: its figures are NA"; cat "$D/floor.log"; FLOOR_PID=""; fi
[ -z "$ANCHOR_PID" ] && echo "tftpd-hpa (in.tftpd) not available: anchor figures are NA (apt-get install tftpd-hpa)"

FAILS=0
sync
# fetch CLIENT PORT FILE OUT -> prints MiB/s, or FAIL
fetch() {
  local client=$1 port=$2 file=$3 out=$4 want t0 t1 sz
  rm -f "$out"; t0=$EPOCHREALTIME
  case "$client" in
    curl) timeout "$TIMEOUT" curl -sf --tftp-blksize 1468 -o "$out" "tftp://127.0.0.1:$port/$file" ;;
    atftp) timeout "$TIMEOUT" atftp --option "blksize 1468" -g -r "$file" -l "$out" 127.0.0.1 "$port" ;;
    atftp-w8) timeout "$TIMEOUT" atftp --option "blksize 1468" --option "windowsize 8" -g -r "$file" -l "$out" 127.0.0.1 "$port" ;;
  esac >/dev/null 2>&1
  t1=$EPOCHREALTIME
  [ "$file" = big.bin ] && want=$BIG_SHA || want=$SMALL_SHA
  if [ ! -s "$out" ] || [ "$(sha256sum "$out" | cut -d' ' -f1)" != "$want" ]; then echo FAIL; return; fi
  sz=$(stat -c %s "$out")
  awk -v s="$sz" -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", s/1048576/(b-a)}'
}
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{v[NR]=$1} END{if(NR) print v[int((NR+1)/2)]; else print "NA"}'; }
maxof() { tr ' ' '\n' | grep -v '^$' | sort -g | tail -1; }

# case NAME SERVER CLIENT: RUNS single-stream runs, interleaved with the other server by the caller
declare -A VALS
BIG_BLOCKS=$((BIG_MIB * 1048576 / 1468 + 1))
# CPU of a server over one run, with all its threads and the children it forks (tftpd-hpa serves
# each transfer in a child it does not wait for): dist/bench/tftp-cpu.js polls the process tree.
CPU_PID=""; CPU_OUT="$D/cpu.out"
# Every server's tree is polled alike (25 ms), so the helper's own CPU weighs on each the same.
cpu_start() { # pid
  CPU_PID=""; CPU_US=NA; : > "$CPU_OUT"
  node dist/bench/tftp-cpu.js "$1" 25 > "$CPU_OUT" 2>/dev/null & CPU_PID=$!
  for _ in $(seq 1 100); do grep -q '^CPU ready' "$CPU_OUT" && return; sleep 0.05; done
}
cpu_stop() { # sets CPU_US (CPU microseconds since cpu_start, or NA); not in a subshell
  CPU_US=NA; [ -n "$CPU_PID" ] || return
  kill -TERM "$CPU_PID" 2>/dev/null; wait "$CPU_PID" 2>/dev/null; CPU_PID=""
  CPU_US=$(awk '$1 == "CPU" && $2 ~ /^[0-9]+$/ { printf "%.0f", $2 / 1000; found = 1 } END { if (!found) print "NA" }' "$CPU_OUT")
}
per_block() { awk -v us="$1" -v n="$2" 'BEGIN{ if (us == "NA" || n + 0 == 0) print "NA"; else printf "%.1f", us / n }'; }
single_round() { # server port client key [pid: CPU per block is recorded as key_cpu]
  local v cpu=NA; [ -n "${5:-}" ] && cpu_start "$5"
  v=$(fetch "$3" "$2" big.bin "$D/out/$4")
  [ -n "${5:-}" ] && { cpu_stop; cpu=$CPU_US; }
  if [ "$v" = FAIL ]; then [ "$1" = lanha ] && FAILS=$((FAILS + 1)); echo "  $4 run: checksum/transfer FAILED"; return; fi
  VALS[$4]="${VALS[$4]:-} $v"
  if [ -n "${5:-}" ]; then
    local us; us=$(per_block "$cpu" "$BIG_BLOCKS")
    [ "$us" != NA ] && VALS[$4_cpu]="${VALS[$4_cpu]:-} $us"; echo "  $4 run: $v MiB/s, $us us server CPU per block"
  else echo "  $4 run: $v MiB/s"; fi
}
# One untimed fetch of each file from each server first: both start with the files in the page
# cache (and lanha's block cache warm), as a boot server that already served a node would be.
for p in "$PORT_LANHA" "$PORT_LANHA0" ${ANCHOR_PID:+"$PORT_ANCHOR"} ${FLOOR_PID:+"$PORT_FLOOR"}; do
  for f in big.bin small.bin; do curl -sf --tftp-blksize 1468 -o /dev/null "tftp://127.0.0.1:$p/$f" || echo "warm-up fetch of $f from port $p failed"; done
done
echo "== single stream and windowsize, $BIG_MIB MiB, $RUNS runs each (servers interleaved)"
for i in $(seq 1 "$RUNS"); do
  single_round lanha "$PORT_LANHA" curl lanha_curl "$LANHA_PID"
  [ -n "$ANCHOR_PID" ] && single_round anchor "$PORT_ANCHOR" curl anchor_curl "$ANCHOR_PID"
  [ -n "$FLOOR_PID" ] && single_round floor "$PORT_FLOOR" curl floor_curl "$FLOOR_PID"
  single_round lanha "$PORT_LANHA" atftp-w8 lanha_w8
  [ -n "$ANCHOR_PID" ] && single_round anchor "$PORT_ANCHOR" atftp anchor_atftp
done

# storm PORT WHO [PID] -> "MiB/s ok server_cpu_us client_cpu_us" over the whole storm (runs in a
# subshell: the caller counts failures). Clients' CPU: what this subshell's waited children used.
STORM_BLOCKS=$((STORM * (SMALL_MIB * 1048576 / 1468 + 1)))
storm() {
  local port=$1 who=$2 t0 t1 pids=() ok=0 total=0 cpu=NA k0 k1 me=$BASHPID
  rm -rf "$D/out/storm"; mkdir -p "$D/out/storm"
  [ -n "${3:-}" ] && cpu_start "$3"
  k0=$(awk '{print $16 + $17}' "/proc/$me/stat"); t0=$EPOCHREALTIME
  for k in $(seq 1 "$STORM"); do
    timeout "$TIMEOUT" curl -sf --tftp-blksize 1468 -o "$D/out/storm/$k" "tftp://127.0.0.1:$port/small.bin" >/dev/null 2>&1 &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done; t1=$EPOCHREALTIME; k1=$(awk '{print $16 + $17}' "/proc/$me/stat")
  [ -n "${3:-}" ] && { cpu_stop; cpu=$CPU_US; }
  for k in $(seq 1 "$STORM"); do
    if [ -s "$D/out/storm/$k" ] && [ "$(sha256sum "$D/out/storm/$k" | cut -d' ' -f1)" = "$SMALL_SHA" ]; then ok=$((ok + 1)); total=$((total + $(stat -c %s "$D/out/storm/$k"))); fi
  done
  echo "  storm $who: $ok/$STORM ok" >&2
  awk -v t="$total" -v a="$t0" -v b="$t1" -v ok="$ok" -v cpu="$cpu" -v ct=$((k1 - k0)) -v hz="$(getconf CLK_TCK)" \
    'BEGIN{printf "%.1f %d %s %.0f", t/1048576/(b-a), ok, cpu, ct / hz * 1e6}'
}
storm_round() { # key port who [pid]
  local out v ok cpu cli
  out=$(storm "$2" "$3" "${4:-}"); read -r v ok cpu cli <<< "$out"
  [ "$3" = lanha ] && FAILS=$((FAILS + STORM - ok))
  VALS[$1_storm]="${VALS[$1_storm]:-} $v"
  local su cu; su=$(per_block "$cpu" "$STORM_BLOCKS"); cu=$(per_block "$cli" "$STORM_BLOCKS")
  [ "$su" != NA ] && VALS[$1_storm_cpu]="${VALS[$1_storm_cpu]:-} $su"
  VALS[$1_storm_cli]="${VALS[$1_storm_cli]:-} $cu"
  echo "  $3 storm run: $v MiB/s, CPU per block: server $su us, the $STORM curl clients $cu us"
}
echo "== storm: $STORM clients x $SMALL_MIB MiB, $RUNS runs each"
for i in $(seq 1 "$RUNS"); do
  storm_round lanha "$PORT_LANHA" lanha "$LANHA_PID"
  [ -n "$ANCHOR_PID" ] && storm_round anchor "$PORT_ANCHOR" tftpd-hpa "$ANCHOR_PID"
  [ -n "$FLOOR_PID" ] && storm_round floor "$PORT_FLOOR" node-dgram-floor "$FLOOR_PID"
done

# Turnaround: the same lock-step client against each server, interleaved; lanha's sampled ACK
# timings are the difference of its counters around its runs.
turn_counters() { curl -s --unix-socket "$1" http://lanha/v1/tftp | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{try{const c=JSON.parse(s).counters;console.log(["samples","step_ns","copy_ns","send_ns"].map(k=>c["tftp.turnaround."+k]??0).join(" "))}catch{console.log("0 0 0 0")}})'; }
rtt() { # PORT KEY: one download of big.bin, appends p50 and MiB/s
  local out; out=$(timeout "$TIMEOUT" node dist/bench/tftp-rtt.js 127.0.0.1 "$1" big.bin 1468)
  set -- "$2" $out
  [ "$2" = RTT ] && [ "$3" != FAIL ] || { echo "  $1 rtt run failed: $*"; return; }
  VALS[$1_rtt]="${VALS[$1_rtt]:-} $6"; VALS[$1_rtt99]="${VALS[$1_rtt99]:-} $8"
  echo "  $1 round trip ACK->DATA: p50 $6 us, p90 $7 us, p99 $8 us ($(awk -v b="$4" -v s="$5" 'BEGIN{printf "%.1f", b/1048576/s}') MiB/s)"
}
echo "== turnaround: lock-step client, $BIG_MIB MiB, $RUNS runs each"
read -r T0 S0 C0 N0 < <(turn_counters "$D/lanha.sock"); read -r U0 SS0 CC0 NN0 < <(turn_counters "$D/lanha0.sock")
for i in $(seq 1 "$RUNS"); do
  rtt "$PORT_LANHA" lanha
  rtt "$PORT_LANHA0" lanha0
  [ -n "$ANCHOR_PID" ] && rtt "$PORT_ANCHOR" anchor
  [ -n "$FLOOR_PID" ] && rtt "$PORT_FLOOR" floor
done
read -r T1 S1 C1 N1 < <(turn_counters "$D/lanha.sock"); read -r U1 SS1 CC1 NN1 < <(turn_counters "$D/lanha0.sock")
us() { awk -v a="$1" -v n="$2" 'BEGIN{ if (n > 0) printf "%.1f", a / n / 1000; else print "NA" }'; }
TA_STEP=$(us $((S1 - S0)) $((T1 - T0))); TA_COPY=$(us $((C1 - C0)) $((T1 - T0))); TA_SEND=$(us $((N1 - N0)) $((T1 - T0)))
TA_JS=$(awk -v a="$TA_STEP" -v b="$TA_COPY" -v c="$TA_SEND" 'BEGIN{ if (a == "NA") print "NA"; else printf "%.1f", a + b + c }')
TA0_JS=$(awk -v a="$(us $((SS1 - SS0)) $((U1 - U0)))" -v b="$(us $((CC1 - CC0)) $((U1 - U0)))" -v c="$(us $((NN1 - NN0)) $((U1 - U0)))" 'BEGIN{ if (a == "NA") print "NA"; else printf "%.1f", a + b + c }')
L_RTT=$(echo "${VALS[lanha_rtt]:-}" | median); L0_RTT=$(echo "${VALS[lanha0_rtt]:-}" | median); A_RTT=$(echo "${VALS[anchor_rtt]:-}" | median)
F_RTT=$(echo "${VALS[floor_rtt]:-}" | median)
L_RTT99=$(echo "${VALS[lanha_rtt99]:-}" | median); A_RTT99=$(echo "${VALS[anchor_rtt99]:-}" | median)
# tftpd-hpa makes the same send syscall: lanha's extra round trip minus its JavaScript work besides
# the send is what Node's receive path costs (libuv, the callback into JS, the Buffer and rinfo).
EXTRA=$(awk -v l="$L_RTT" -v a="$A_RTT" 'BEGIN{ if (l == "NA" || a == "NA") print "NA"; else printf "%.1f", l - a }')
OUTSIDE=$(awk -v e="$EXTRA" -v s="$TA_STEP" -v c="$TA_COPY" 'BEGIN{ if (e == "NA" || s == "NA") print "NA"; else printf "%.1f", e - s - c }')
echo "lanha turnaround per ACK inside JavaScript ($((T1 - T0)) sampled ACKs, worker thread): core step $TA_STEP us + block copy $TA_COPY us + send (the syscall) $TA_SEND us = $TA_JS us (main thread, workers: 0: $TA0_JS us)"
echo "round trip ACK->DATA seen by the client, p50: lanha $L_RTT us (workers: 0: $L0_RTT us), tftpd-hpa $A_RTT us: lanha $EXTRA us more, of which its JavaScript besides the send $(awk -v s="$TA_STEP" -v c="$TA_COPY" 'BEGIN{ if (s == "NA") print "NA"; else printf "%.1f", s + c }') us and Node's receive path (libuv, the callback into JS, Buffer + rinfo per datagram) the other $OUTSIDE us"

status=$(curl -s --unix-socket "$D/lanha.sock" http://lanha/v1/tftp || echo '{}')
lag_p99=$(echo "$status" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{try{const j=JSON.parse(s);console.log(j.eventLoopLagMs.p99.toFixed(1))}catch{console.log("NA")}})')
lag_max=$(echo "$status" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{try{const j=JSON.parse(s);console.log(j.eventLoopLagMs.max.toFixed(1))}catch{console.log("NA")}})')
# The busy-poll choice (tftp.busyPollUs, services/tftp/busy-poll.ts) over the whole run: how many
# 128-block epochs of lock-step transfers polled for their ACKs and how many slept.
# Each cycle's pair of probe epochs (one sleeping, one polling, back to back) gives the mean lock-step
# round trip each way at this run's load: their averages over the run say what polling gains here.
poll_counts=$(echo "$status" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{try{const c=JSON.parse(s).counters;const g=(k)=>c["tftp.busy_poll."+k]??0;const n=g("probes");console.log(["epochs_polled","epochs_slept","misses","preempted","probes"].map(k=>k+"="+g(k)).join(" ")+(n>0?` probe round trip sleeping ${(g("probe_sleep_ns")/n/1000).toFixed(1)} us, polling ${(g("probe_poll_ns")/n/1000).toFixed(1)} us`:""))}catch{console.log("NA")}})')
echo "lanha busy poll (tftp.busyPollUs): $poll_counts"
retrans=$(echo "$status" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{try{const j=JSON.parse(s);console.log(j.counters["tftp.retransmits"]??0)}catch{console.log("NA")}})')

result() { # figure lanha anchor unit better [extra key=value fields]
  local ratio=NA
  if [ "$2" != NA ] && [ "$3" != NA ]; then ratio=$(awk -v a="$2" -v b="$3" 'BEGIN{ if (b > 0) printf "%.2f", a/b; else print "NA" }'); fi
  echo "RESULT $1 lanha=$2 tftpd-hpa=$3 ratio=$ratio unit=$4 better=$5${6:+ $6}"
}
L_SINGLE=$(echo "${VALS[lanha_curl]:-}" | median); L_WIN=$(echo "${VALS[lanha_w8]:-}" | median); L_STORM=$(echo "${VALS[lanha_storm]:-}" | median)
A_SINGLE=NA; A_BEST=NA; A_STORM=NA
if [ -n "$ANCHOR_PID" ]; then
  A_SINGLE=$(echo "${VALS[anchor_curl]:-}" | median)
  A_BEST=$(printf '%s\n%s\n' "$A_SINGLE" "$(echo "${VALS[anchor_atftp]:-}" | median)" | grep -v NA | maxof); A_BEST=${A_BEST:-NA}
  A_STORM=$(echo "${VALS[anchor_storm]:-}" | median)
fi
echo "== results (medians; machine load: $(cut -d' ' -f1-3 /proc/loadavg))"
result tftp.single.mib_s "$L_SINGLE" "$A_SINGLE" MiB/s higher
result tftp.window.mib_s "$L_WIN" "$A_BEST" MiB/s higher
result tftp.storm.mib_s "$L_STORM" "$A_STORM" MiB/s higher
# Server CPU per block (all threads and forked children), and the storm clients' CPU per block: on a
# machine whose cores the clients share, the storm runs at (CPU available) / (server + clients per
# block), so these say which ratio the CPU per block allows (the floor: what Node's dgram allows).
cpu_med() { echo "${VALS[$1]:-}" | median; }
result tftp.single.server_cpu_us_per_block "$(cpu_med lanha_curl_cpu)" "$(cpu_med anchor_curl_cpu)" us lower "node_floor=$(cpu_med floor_curl_cpu)"
result tftp.storm.server_cpu_us_per_block "$(cpu_med lanha_storm_cpu)" "$(cpu_med anchor_storm_cpu)" us lower "node_floor=$(cpu_med floor_storm_cpu)"
result tftp.storm.client_cpu_us_per_block "$(cpu_med lanha_storm_cli)" "$(cpu_med anchor_storm_cli)" us lower "node_floor=$(cpu_med floor_storm_cli)"
bound() { awk -v as="$1" -v ac="$2" -v ls="$3" -v lc="$4" 'BEGIN{ if (as == "NA" || ac == "NA" || ls == "NA" || lc == "NA") print "NA"; else printf "%.2f", (as + ac) / (ls + lc) }'; }
echo "storm ratio the CPU per block allows (anchor server + clients) / (server + clients): lanha $(bound "$(cpu_med anchor_storm_cpu)" "$(cpu_med anchor_storm_cli)" "$(cpu_med lanha_storm_cpu)" "$(cpu_med lanha_storm_cli)"), the Node dgram floor $(bound "$(cpu_med anchor_storm_cpu)" "$(cpu_med anchor_storm_cli)" "$(cpu_med floor_storm_cpu)" "$(cpu_med floor_storm_cli)")"
result tftp.rtt_p50_us "$L_RTT" "$A_RTT" us lower
result tftp.rtt_p99_us "$L_RTT99" "$A_RTT99" us lower
echo "RESULT tftp.rtt_p50_us.main_thread lanha=$L0_RTT tftpd-hpa=$A_RTT ratio=$(awk -v a="$L0_RTT" -v b="$A_RTT" 'BEGIN{ if (a == "NA" || b == "NA" || b + 0 == 0) print "NA"; else printf "%.2f", a / b }') unit=us better=lower"
floor_result() { # figure lanha floor unit better
  echo "RESULT $1 lanha=$2 node-dgram=$3 ratio=$(awk -v a="$2" -v b="$3" 'BEGIN{ if (a == "NA" || b == "NA" || b + 0 == 0) print "NA"; else printf "%.2f", a / b }') unit=$4 better=$5"
}
floor_result tftp.single.node_floor_mib_s "$L_SINGLE" "$(echo "${VALS[floor_curl]:-}" | median)" MiB/s higher
floor_result tftp.storm.node_floor_mib_s "$L_STORM" "$(echo "${VALS[floor_storm]:-}" | median)" MiB/s higher
floor_result tftp.rtt_p50_us.node_floor "$L_RTT" "$F_RTT" us lower
floor_result tftp.single.cpu_us_per_block "$(echo "${VALS[lanha_curl_cpu]:-}" | median)" "$(echo "${VALS[floor_curl_cpu]:-}" | median)" us lower
echo "tftpd-hpa=NA on the lines below: these figures are lanha's own instrumentation (its JS turnaround, event-loop lag, checksum check and retransmit counters); tftpd-hpa exposes no such figure"
echo "RESULT tftp.turnaround.js_us lanha=$TA_JS tftpd-hpa=NA ratio=NA unit=us better=lower step=$TA_STEP copy=$TA_COPY send=$TA_SEND"
echo "RESULT tftp.turnaround.receive_path_us lanha=$OUTSIDE tftpd-hpa=NA ratio=NA unit=us better=lower extra_vs_anchor=$EXTRA"
echo "RESULT tftp.checksum_failures lanha=$FAILS tftpd-hpa=NA ratio=NA unit=count better=lower"
echo "RESULT tftp.loop_lag_p99_ms lanha=$lag_p99 tftpd-hpa=NA ratio=NA unit=ms better=lower"
echo "RESULT tftp.loop_lag_max_ms lanha=$lag_max tftpd-hpa=NA ratio=NA unit=ms better=lower"
echo "RESULT tftp.retransmits lanha=$retrans tftpd-hpa=NA ratio=NA unit=count better=lower"
