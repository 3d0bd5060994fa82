#!/usr/bin/env bash
# TFTP benchmark: lanha against tftpd-hpa in one run, both on 127.0.0.1, same files, same clients.
#   single : 64 MiB, curl --tftp-blksize 1468 (lock-step)                      -> tftp.single.mib_s
#   window : 64 MiB, atftp blksize 1468 windowsize 8 (tftpd-hpa has no RFC 7440:
#            its figure is its best single-stream run of curl or atftp)        -> tftp.window.mib_s
#   storm  : STORM (20) concurrent curl --tftp-blksize 1468 of a 16 MiB file    -> tftp.storm.mib_s
# Every transfer's sha256 is checked; lanha's failures are tftp.checksum_failures (must be 0).
# Env: RUNS=3 (median of) STORM=20 TIMEOUT=60 PORT_ANCHOR=16981 PORT_LANHA=16982 BIG_MIB=64 SMALL_MIB=16
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
ANCHOR=tftpd-hpa
if command -v in.tftpd >/dev/null; then
  in.tftpd -L -s -a "127.0.0.1:$PORT_ANCHOR" -u nobody "$D/root" > "$D/anchor.log" 2>&1 &
  ANCHOR_PID=$!
fi
sleep 1
if ! kill -0 "$LANHA_PID" 2>/dev/null; then echo "lanha did not start:"; cat "$D/lanha.log"; exit 1; fi
if [ -n "$ANCHOR_PID" ] && ! kill -0 "$ANCHOR_PID" 2>/dev/null; then ANCHOR_PID=""; fi
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
single_round() { # server port client key
  local v; v=$(fetch "$3" "$2" big.bin "$D/out/$4")
  if [ "$v" = FAIL ]; then [ "$1" = lanha ] && FAILS=$((FAILS + 1)); echo "  $4 run: checksum/transfer FAILED"; return; fi
  VALS[$4]="${VALS[$4]:-} $v"; echo "  $4 run: $v MiB/s"
}
# One untimed fetch of each file from each server first: both start with the files in the page
# cache (and lanha's block cache warm), as a boot server that already served a node would be.
for p in "$PORT_LANHA" ${ANCHOR_PID:+"$PORT_ANCHOR"}; do
  for f in big.bin small.bin; do curl -sf --tftp-blksize 1468 -o /dev/null "tftp://127.0.0.1:$p/$f" || echo "warm-up fetch of $f from port $p failed"; done
done
echo "== single stream and windowsize, $BIG_MIB MiB, $RUNS runs each (servers interleaved)"
for i in $(seq 1 "$RUNS"); do
  single_round lanha "$PORT_LANHA" curl lanha_curl
  [ -n "$ANCHOR_PID" ] && single_round anchor "$PORT_ANCHOR" curl anchor_curl
  single_round lanha "$PORT_LANHA" atftp-w8 lanha_w8
  [ -n "$ANCHOR_PID" ] && single_round anchor "$PORT_ANCHOR" atftp anchor_atftp
done

storm() { # port -> MiB/s over the whole storm; counts failures for lanha
  local port=$1 who=$2 t0 t1 pids=() ok=0 total=0
  rm -rf "$D/out/storm"; mkdir -p "$D/out/storm"; t0=$EPOCHREALTIME
  for k in $(seq 1 "$STORM"); do
    timeout "$TIMEOUT" curl -sf --tftp-blksize 1468 -o "$D/out/storm/$k" "tftp://127.0.0.1:$port/small.bin" >/dev/null 2>&1 &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done; t1=$EPOCHREALTIME
  for k in $(seq 1 "$STORM"); do
    if [ -s "$D/out/storm/$k" ] && [ "$(sha256sum "$D/out/storm/$k" | cut -d' ' -f1)" = "$SMALL_SHA" ]; then ok=$((ok + 1)); total=$((total + $(stat -c %s "$D/out/storm/$k"))); fi
  done
  [ "$who" = lanha ] && FAILS=$((FAILS + STORM - ok))
  echo "  storm $who: $ok/$STORM ok" >&2
  awk -v t="$total" -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", t/1048576/(b-a)}'
}
echo "== storm: $STORM clients x $SMALL_MIB MiB, $RUNS runs each"
for i in $(seq 1 "$RUNS"); do
  v=$(storm "$PORT_LANHA" lanha); VALS[lanha_storm]="${VALS[lanha_storm]:-} $v"; echo "  lanha storm run: $v MiB/s"
  if [ -n "$ANCHOR_PID" ]; then v=$(storm "$PORT_ANCHOR" anchor); VALS[anchor_storm]="${VALS[anchor_storm]:-} $v"; echo "  tftpd-hpa storm run: $v MiB/s"; fi
done

status=$(curl -s --unix-socket "$D/lanha.sock" http://lanha/v1/tftp || echo '{}')
lag_p99=$(echo "$status" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{try{const j=JSON.parse(s);console.log(j.eventLoopLagMs.p99.toFixed(1))}catch{console.log("NA")}})')
lag_max=$(echo "$status" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{try{const j=JSON.parse(s);console.log(j.eventLoopLagMs.max.toFixed(1))}catch{console.log("NA")}})')
retrans=$(echo "$status" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{try{const j=JSON.parse(s);console.log(j.counters["tftp.retransmits"]??0)}catch{console.log("NA")}})')

result() { # figure lanha anchor unit better
  local ratio=NA
  if [ "$2" != NA ] && [ "$3" != NA ]; then ratio=$(awk -v a="$2" -v b="$3" 'BEGIN{ if (b > 0) printf "%.2f", a/b; else print "NA" }'); fi
  echo "RESULT $1 lanha=$2 tftpd-hpa=$3 ratio=$ratio unit=$4 better=$5"
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
echo "RESULT tftp.checksum_failures lanha=$FAILS tftpd-hpa=NA ratio=NA unit=count better=lower"
echo "RESULT tftp.loop_lag_p99_ms lanha=$lag_p99 tftpd-hpa=NA ratio=NA unit=ms better=lower"
echo "RESULT tftp.loop_lag_max_ms lanha=$lag_max tftpd-hpa=NA ratio=NA unit=ms better=lower"
echo "RESULT tftp.retransmits lanha=$retrans tftpd-hpa=NA ratio=NA unit=count better=lower"
