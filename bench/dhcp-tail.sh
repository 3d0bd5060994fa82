#!/usr/bin/env bash
# DHCP REQUEST-to-ACK tail (npm run bench:dhcp-tail): where a light-load DHCPACK's time goes, lanha
# variants against Kea and against the disk's own fdatasync, interleaved in one sitting. Not a test.
# Each round runs, in the lab of bench:dhcp (two namespaces, named lh<rand>t-*, deleted on exit):
#   - the bare fdatasync loop (bench/fsync-floor.ts: the WAL's write pattern, no Raft, no DHCP) in
#     the directory lanha keeps its state in, on the main thread (sync) and on the thread pool (pool)
#   - each lanha variant, a fresh daemon each time: LIGHT_COUNT DORA at RATE/s (bench/dhcp-latency.ts,
#     no renewal burst), then its ACK stages (services/dhcp/ack-stages.ts: the last 4096 ACKs, so
#     exactly this run's) and its WAL fdatasync p99 (lanctl status)
#   - Kea (memfile, persist: no fsync), the same load
# The variants' order alternates from round to round (A B, B A, A B, ...); the load average is
# printed with every step. RESULT lines give the median over the rounds:
#   dhcp.tail.request_ack_ms_p99 / _p50   lanha (per variant) against Kea
#   dhcp.tail.discover_offer_ms_p99       the DISCOVER->OFFER leg (no fsync in it), lanha against Kea
#   dhcp.tail.stage_ms.<stage>            lanha's p99 per stage (p50= too), per variant
#   dhcp.fsync_floor_ms_p99               lanha's WAL fdatasync p99 against the bare loop's (the floor)
# Env: ROUNDS (3), LIGHT_COUNT (500), RATE (100), SKIP ("kea" leaves Kea out), SHARED_BENCH,
#      VARIANTS: space-separated NAME or NAME:ITEM,ITEM with each ITEM VAR=value (environment of
#      that lanha daemon) or --flag (a node flag added to the systemd unit's), default "base";
#      e.g. VARIANTS="base pool2:LANHA_WAL_SYNCS_IN_FLIGHT=2 sgc:--single-threaded-gc".
# Needs root (network namespaces).
source "$(dirname "$0")/lib.sh"
SKIP=${SKIP:-}
ROUNDS=${ROUNDS:-3}
RATE=${RATE:-100}
read -r -a VARIANTS <<< "${VARIANTS:-base}"
dhcp_lab_up bench:dhcp-tail t dhcp
NODE_FLAGS=${LANHA_NODE_FLAGS:-$(sed -n 's|^ExecStart=/usr/bin/node \(.*\) */usr/lib/lanha/dist/bin/lanhad.js.*|\1|p' "$REPO/systemd/lanha.service")}

load() { cut -d' ' -f1 /proc/loadavg; }
json() { node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{try{const j=JSON.parse(s.split("\n")[0]);console.log(process.argv.slice(1).map(k=>j[k]??"NA").join(" "))}catch{console.log("NA NA NA NA")}})' "$@"; }

lanha_run() { # NAME ITEMS(VAR=v or --flag, comma-separated, or empty) -> prints "reqP50 reqP99 fsyncP99 offerP99", stage lines to $D/stages.NAME.ROUND
  local name=$1 envs=() flags=() item dir=$D/lanha-$1 pid ok="" lat
  for item in ${2//,/ }; do case $item in --*) flags+=("$item");; *) envs+=("$item");; esac; done
  mkdir -p "$dir"; rm -rf "$dir/state"; lanha_bench_config "$dir" warn
  # shellcheck disable=SC2086
  ip netns exec "$SRV_NS" env "${envs[@]}" node $NODE_FLAGS "${flags[@]}" "$LANCTL" serve --config "$dir/lanha.yaml" > "$dir/lanha.log" 2>&1 &
  pid=$!; echo "$pid" > "$D/lanha-$name.pid" # a subshell: bench_cleanup finds it there
  for _ in $(seq 1 100); do node "$LANCTL" status --socket "$dir/lanha.sock" >/dev/null 2>&1 && { ok=1; break; }; sleep 0.3; done
  if [ -z "$ok" ]; then tail -5 "$dir/lanha.log" >&2; kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; echo "NA NA NA NA"; return; fi
  lat=$(RENEW_BURST=0 ip netns exec "$NS" node "$REPO/dist/bench/dhcp-latency.js" 10.99.0.1 10.99.0.2 "$RATE" "$LIGHT_COUNT" 9)
  node "$LANCTL" status --json --socket "$dir/lanha.sock" 2>/dev/null > "$dir/status.json"
  node -e 'const j=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8"));for(const [k,v] of Object.entries(j.services.dhcp?.ackStages??{})) console.log(k, v.p50Ms??"NA", v.p99Ms??"NA")' "$dir/status.json" > "$D/stages.$name.$ROUND" 2>/dev/null
  kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -f "$D/lanha-$name.pid"
  echo "$(echo "$lat" | json requestP50Ms requestP99Ms) $(node -e 'const j=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8"));console.log(j.cluster.storage?.fsyncP99Ms??"NA")' "$dir/status.json" 2>/dev/null || echo NA) $(echo "$lat" | json offerP99Ms)"
}

kea_run() { # -> "reqP50 reqP99 offerP99"
  local pid lat
  pid=$(bash "$SHARED/dhcp-server.sh" kea-persist "$D/kea" | awk '/^PID/{print $2}')
  [ -n "$pid" ] || { echo "NA NA NA"; return; }
  echo "$pid" > "$D/kea.pid"; sleep 1
  lat=$(RENEW_BURST=0 ip netns exec "$NS" node "$REPO/dist/bench/dhcp-latency.js" 10.99.0.1 10.99.0.2 "$RATE" "$LIGHT_COUNT" 9)
  kill "$pid" 2>/dev/null
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  rm -f "$D/kea.pid"
  echo "$lat" | json requestP50Ms requestP99Ms offerP99Ms
}

declare -A R
for ROUND in $(seq 1 "$ROUNDS"); do
  mkdir -p "$D/floor"
  read -r fs50 fs99 < <(node "$REPO/dist/bench/fsync-floor.js" "$D/floor" "$RATE" "$LIGHT_COUNT" 256 sync | json p50Ms p99Ms)
  read -r fp50 fp99 < <(node "$REPO/dist/bench/fsync-floor.js" "$D/floor" "$RATE" "$LIGHT_COUNT" 256 pool | json p50Ms p99Ms)
  R[floor.$ROUND]="$fs50 $fs99 $fp50 $fp99"
  echo "STEP round=$ROUND floor fdatasync p50/p99 ms: main thread $fs50 / $fs99, thread pool $fp50 / $fp99 load=$(load)"
  order=("${VARIANTS[@]}")
  if [ $((ROUND % 2)) = 0 ]; then order=(); for ((i = ${#VARIANTS[@]} - 1; i >= 0; i--)); do order+=("${VARIANTS[$i]}"); done; fi
  for v in "${order[@]}"; do
    name=${v%%:*}; envs=""; [ "$v" != "$name" ] && envs=${v#*:}
    read -r p50 p99 f99 o99 < <(lanha_run "$name" "$envs")
    R[$name.$ROUND]="$p50 $p99 $f99 $o99"
    echo "STEP round=$ROUND lanha variant=$name REQUEST->ACK p50/p99 ms $p50 / $p99, DISCOVER->OFFER p99 $o99, WAL fdatasync p99 $f99 load=$(load)"
    echo "  stages p50/p99 ms: $(awk '{printf "%s %s/%s  ", $1, $2, $3}' "$D/stages.$name.$ROUND" 2>/dev/null)"
  done
  case " $SKIP " in *" kea "*) ;; *)
    read -r k50 k99 ko99 < <(kea_run)
    R[kea.$ROUND]="$k50 $k99 NA $ko99"
    echo "STEP round=$ROUND kea REQUEST->ACK p50/p99 ms $k50 / $k99, DISCOVER->OFFER p99 $ko99 load=$(load)";;
  esac
done

median() { tr ' ' '\n' | awk '$1 != "" && $1 != "NA"' | sort -g | awk '{a[NR]=$1} END {if (NR == 0) print "NA"; else if (NR % 2) print a[(NR+1)/2]; else printf "%.3f\n", (a[NR/2]+a[NR/2+1])/2}'; }
col() { local key=$1 n=$2 r; for r in $(seq 1 "$ROUNDS"); do echo "${R[$key.$r]:-}" | awk -v n="$n" '{print $n}'; done | tr '\n' ' ' | median; }
echo
echo "# medians over $ROUNDS rounds; load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
k50=$(col kea 1); k99=$(col kea 2)
for v in "${VARIANTS[@]}"; do
  name=${v%%:*}
  l50=$(col "$name" 1); l99=$(col "$name" 2)
  echo "RESULT dhcp.tail.request_ack_ms_p99 lanha=$l99 kea=$k99 ratio=$(ratio "$l99" "$k99") unit=ms better=lower variant=$name rounds=$ROUNDS"
  echo "RESULT dhcp.tail.request_ack_ms_p50 lanha=$l50 kea=$k50 ratio=$(ratio "$l50" "$k50") unit=ms better=lower variant=$name rounds=$ROUNDS"
  o99=$(col "$name" 4); ko99=$(col kea 4)
  echo "RESULT dhcp.tail.discover_offer_ms_p99 lanha=$o99 kea=$ko99 ratio=$(ratio "$o99" "$ko99") unit=ms better=lower variant=$name rounds=$ROUNDS"
  for stage in $(awk '{print $1}' "$D/stages.$name.1" 2>/dev/null); do
    s50=$(for r in $(seq 1 "$ROUNDS"); do awk -v s="$stage" '$1 == s {print $2}' "$D/stages.$name.$r" 2>/dev/null; done | tr '\n' ' ' | median)
    s99=$(for r in $(seq 1 "$ROUNDS"); do awk -v s="$stage" '$1 == s {print $3}' "$D/stages.$name.$r" 2>/dev/null; done | tr '\n' ' ' | median)
    echo "RESULT dhcp.tail.stage_ms.$stage lanha=$s99 anchor=NA ratio=NA unit=ms better=lower p50=$s50 variant=$name"
  done
  f99=$(col "$name" 3); fl99=$(col floor 2)
  echo "RESULT dhcp.fsync_floor_ms_p99 lanha=$f99 floor=$fl99 ratio=$(ratio "$f99" "$fl99") unit=ms better=lower floor_p50=$(col floor 1) floor_pool_p50=$(col floor 3) floor_pool_p99=$(col floor 4) variant=$name"
done
