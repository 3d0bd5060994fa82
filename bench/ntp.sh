#!/usr/bin/env bash
# NTP benchmark: lanha against chronyd in one run (npm run bench:ntp). Not a test.
#  1. capacity: chronyd (`local stratum 8`, no ratelimit directive = no limit) and lanha (localStratum 8,
#     rateLimit off) on loopback high ports, each loaded by the shared ntp-load.js at RATES for
#     DURATION s; valid replies/s (origin echoed, stratum 1-15).
#  2. served-time error: each server on port 123 in its own private namespace (lh prefix, deleted on
#     exit), queried RUNS times by `chronyd -Q` (client only, clock untouched) and `ntpdate -q`; the
#     error is the median |offset| (both serve this same host clock, so any offset is served error).
# Every server is started here with its own config/pid files and stopped by PID. Needs root for the
# namespaces (the capacity part runs without). Env: RATES=10000,25000,50000 DURATION=10 RUNS=3
# SHARED_BENCH=<dir with ntp-load.js> (default ../shared/bench next to the repo).
set -uo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${SHARED_BENCH:-$REPO/../shared/bench}
RATES=${RATES:-10000,25000,50000}; DURATION=${DURATION:-10}; RUNS=${RUNS:-3}
PORT_CHRONY=${PORT_CHRONY:-11123}; PORT_LANHA=${PORT_LANHA:-11124}
D=$(mktemp -d); PIDS=(); NSS=()
LANCTL="$REPO/dist/bin/lanctl.js"
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
  for n in "${NSS[@]}"; do ip netns del "$n" 2>/dev/null; done
  rm -rf "$D"
}
trap cleanup EXIT
[ -f "$SHARED/ntp-load.js" ] || { echo "ntp-load.js not found in $SHARED (set SHARED_BENCH)"; exit 1; }
[ -f "$LANCTL" ] || { echo "build first: npm run build"; exit 1; }
bash "$REPO/bench/anchors.sh" ntp || exit 2

chrony_start() { # port tag [netns] -> PID in $LAST
  printf 'port %s\nallow all\nlocal stratum 8\ncmdport 0\npidfile %s/chronyd-%s.pid\n' "$1" "$D" "$2" > "$D/chrony-$2.conf"
  if [ -n "${3:-}" ]; then ip netns exec "$3" chronyd -d -x -u root -f "$D/chrony-$2.conf" >"$D/chronyd-$2.log" 2>&1 &
  else chronyd -d -x -u root -f "$D/chrony-$2.conf" >"$D/chronyd-$2.log" 2>&1 & fi
  LAST=$!; PIDS+=("$LAST"); sleep 1.5
  kill -0 "$LAST" 2>/dev/null || { LAST=""; }
}
lanha_start() { # port tag [netns]
  cat > "$D/lanha-$2.yaml" <<EOF
node: { name: bench, address: 127.0.0.1, stateDir: $D/state-$2, controlSocket: $D/lanha-$2.sock, logLevel: info }
ntp:
  port: $1
  listen: [127.0.0.1]
  localStratum: 8
  rateLimit: { enabled: false }
EOF
  if [ -n "${3:-}" ]; then ip netns exec "$3" node "$LANCTL" serve --config "$D/lanha-$2.yaml" >"$D/lanha-$2.log" 2>&1 &
  else node "$LANCTL" serve --config "$D/lanha-$2.yaml" >"$D/lanha-$2.log" 2>&1 & fi
  LAST=$!; PIDS+=("$LAST")
  for _ in $(seq 1 50); do grep -q daemon.ready "$D/lanha-$2.log" && break; sleep 0.1; done
  grep -q daemon.ready "$D/lanha-$2.log" || { cat "$D/lanha-$2.log"; LAST=""; }
}
lanha_counters() { # control socket -> "replies queue_full" (0 0 when it cannot be read)
  node "$LANCTL" ntp status --json --socket "$1" 2>/dev/null | node -e 'let s="";process.stdin.on("data",(d)=>{s+=d}).on("end",()=>{let c={};try{const j=JSON.parse(s);c=(j.services?j.services.ntp:j).counters||{}}catch{}console.log(`${c.replies||0} ${c["dropped.queue_full"]||0}`)})'
}
stop_pid() { [ -n "$1" ] && kill "$1" 2>/dev/null && wait "$1" 2>/dev/null; }
median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) print "NA"; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a=="NA"||b=="NA"||b==0) print "NA"; else printf "%.2f", a/b }'; }
result() { # figure lanha chrony unit better
  echo "RESULT $1 lanha=$2 chrony=$3 ratio=$(ratio "$2" "$3") unit=$4 better=$5"
}

echo "# machine: $(nproc) cores, $(chronyd -v | head -1), node $(node --version)"
# ---------------------------------------------------------------- 1. capacity
chrony_start "$PORT_CHRONY" load; CHRONY_PID=$LAST
lanha_start "$PORT_LANHA" load; LANHA_PID=$LAST
declare -A RPS
for rate in ${RATES//,/ }; do
  for who in chrony lanha; do
    port=$PORT_LANHA; pid=$LANHA_PID; [ "$who" = chrony ] && { port=$PORT_CHRONY; pid=$CHRONY_PID; }
    if [ -z "$pid" ]; then RPS[$who.$rate]=NA; continue; fi
    [ "$who" = lanha ] && c0=$(lanha_counters "$D/lanha-load.sock")
    line=$(node "$SHARED/ntp-load.js" --host 127.0.0.1 --port "$port" --rates "$rate" --duration "$DURATION" --name "$who" | grep '^RESULT')
    echo "# $line"
    if [ "$who" = lanha ]; then
      # What the server itself did (its counters): replies it sent and requests the kernel shed at its
      # socket. When this is well above the client's count, the replies were lost at the load
      # generator (a single process that must also read them), not at the server.
      c1=$(lanha_counters "$D/lanha-load.sock")
      echo "$c0 $c1" | awk -v d="$DURATION" '{ printf "# lanha server side: %d replies/s sent, %d/s requests shed by the kernel (dropped.queue_full)\n", ($3-$1)/d, ($4-$2)/d }'
    fi
    RPS[$who.$rate]=$(echo "$line" | sed -n 's/.* value=\([0-9]*\).*/\1/p')
    sleep 1
  done
done
stop_pid "$CHRONY_PID"; stop_pid "$LANHA_PID"

# ---------------------------------------------------------------- 2. served-time error
declare -A ERR_Q ERR_D ERR_ALL
if [ "$(id -u)" = 0 ] && command -v ntpdate >/dev/null; then
  for who in chrony lanha; do
    ns="lhbench-ntp-$who-$$"; ip netns add "$ns" && NSS+=("$ns"); ip -n "$ns" link set lo up
    if [ "$who" = chrony ]; then chrony_start 123 err "$ns"; else lanha_start 123 err "$ns"; fi
    pid=$LAST
    if [ "$who" = lanha ] && [ -n "$pid" ]; then
      # A daemon that has run a while: its stamp correction measured at every probe spacing (about
      # 30 s after start, services/ntp/README.md), as a server that has been up for hours has.
      for _ in $(seq 1 60); do grep -q '"levels":3' "$D/lanha-err.log" && break; sleep 1; done
      echo "# lanha stamp correction: $(grep -o '"byIdle":\[[^]]*\]' "$D/lanha-err.log" | tail -1)"
    fi
    : > "$D/q-$who"; : > "$D/d-$who"
    if [ -n "$pid" ]; then
      # Warm-up, the same for both: a server that has run a while, not one started a second ago
      # (a cold JIT in lanha's packet path adds a first-packet delay that is not its steady error).
      ip netns exec "$ns" node "$SHARED/ntp-load.js" --host 127.0.0.1 --port 123 --rates 2000 --duration 2 --name warmup >/dev/null
      for i in $(seq 1 "$RUNS"); do
        q=$(timeout 20 ip netns exec "$ns" chronyd -Q -t 15 -u root "server 127.0.0.1 iburst maxsamples 4" "pidfile $D/q.pid" "cmdport 0" 2>&1 | sed -n 's/.*wrong by \([-0-9.e]*\) seconds.*/\1/p' | head -1)
        [ -n "$q" ] && awk -v o="$q" 'BEGIN { printf "%.6f\n", (o < 0 ? -o : o) * 1000 }' >> "$D/q-$who"
        d=$(timeout 15 ip netns exec "$ns" ntpdate -q 127.0.0.1 2>&1 | sed -n 's/.*) \([-+][0-9.]*\) +\/-.*/\1/p' | head -1)
        [ -n "$d" ] && awk -v o="$d" 'BEGIN { printf "%.6f\n", (o < 0 ? -o : o) * 1000 }' >> "$D/d-$who"
        echo "# $who run $i: chronyd -Q offset ${q:-none} s, ntpdate -q offset ${d:-none} s"
      done
      # Where lanha's receive stamps came from (kernel capture or the estimate), and its learned
      # transmit correction (services/ntp/README.md, "Kernel receive stamps").
      [ "$who" = lanha ] && echo "# lanha kernel stamps: $(node "$LANCTL" ntp status --json --socket "$D/lanha-err.sock" 2>/dev/null | node -e 'let s="";process.stdin.on("data",(d)=>{s+=d}).on("end",()=>{try{const j=JSON.parse(s);const n=j.services?j.services.ntp:j;console.log(JSON.stringify(n.kernelStamps??null))}catch{console.log("unreadable")}})')"
    fi
    ERR_Q[$who]=$(median < "$D/q-$who"); ERR_D[$who]=$(median < "$D/d-$who")
    cat "$D/q-$who" "$D/d-$who" | median > "$D/all-$who"; ERR_ALL[$who]=$(cat "$D/all-$who")
    stop_pid "$pid"
  done
else
  echo "# served-time error skipped: needs root and ntpdate (namespaces, port 123)"
  ERR_Q=([chrony]=NA [lanha]=NA); ERR_D=([chrony]=NA [lanha]=NA); ERR_ALL=([chrony]=NA [lanha]=NA)
fi

echo
printf '%-28s %12s %12s %8s\n' figure lanha chrony ratio
for rate in ${RATES//,/ }; do
  printf '%-28s %12s %12s %8s\n' "replies/s at $((rate / 1000))k offered" "${RPS[lanha.$rate]}" "${RPS[chrony.$rate]}" "$(ratio "${RPS[lanha.$rate]}" "${RPS[chrony.$rate]}")"
done
printf '%-28s %12s %12s %8s\n' "served error ms (median)" "${ERR_ALL[lanha]}" "${ERR_ALL[chrony]}" "$(ratio "${ERR_ALL[lanha]}" "${ERR_ALL[chrony]}")"
echo
for rate in ${RATES//,/ }; do
  result "ntp.replies_per_s.$((rate / 1000))k" "${RPS[lanha.$rate]}" "${RPS[chrony.$rate]}" replies_per_s higher
done
result ntp.error_ms "${ERR_ALL[lanha]}" "${ERR_ALL[chrony]}" ms lower
result ntp.error_ms.chronyd_q "${ERR_Q[lanha]}" "${ERR_Q[chrony]}" ms lower
result ntp.error_ms.ntpdate "${ERR_D[lanha]}" "${ERR_D[chrony]}" ms lower
