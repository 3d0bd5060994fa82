#!/usr/bin/env bash
# DHCP benchmark: lanha against Kea (memfile, persist) and dnsmasq in one run (npm run bench:dhcp).
# Not a test. Uses the shared anchor scripts (../shared/bench/dhcp-*.sh) in a private two-namespace
# lab named lh<rand>b-* (deleted on exit):
#   1. max DORA/s with < 1 % drops (perfdhcp, step up then bisect): lanha, kea, dnsmasq
#   2. 4-way latency at a light load (100/s): median and p99 from bench/dhcp-latency.ts (perfdhcp
#      prints only the average): lanha, kea
#   3. renewals/s (perfdhcp -f): lanha, kea
#   4. kill -9 during perfdhcp load, restart, ACKed leases lost: lanha (must be 0), kea
#   5. where an ACK's time goes (RESULT dhcp.ack_stage_ms.<stage>: mean, p50, p99 over the last 4096
#      ACKs after the renewal runs: decode, decide, queue, persist, commit, resume, reply, send, total;
#      services/dhcp/ack-stages.ts), fsyncs per ACK during the renewal runs (group commit: a burst of renewals shares fsyncs), and
#      lanha's resident memory idle and at its peak during 1-3 (process + children, shared pages
#      counted once: the sum of Pss), with the number of leases it then held
#   6. durability, counted: each server's fsync-family calls per ACK (strace -c on every thread) over
#      3 s of perfdhcp at 100 DORA/s after its runs (RESULT dhcp.durability.fsyncs_per_ack)
# lanha runs with its durable StateLog: every lease is fsync'd before the ACK; Kea's memfile never fsyncs.
# Env: REPEAT (1), PERIOD (3 s per step), LIGHT_COUNT (500), SHARED_BENCH (../shared/bench), SKIP (e.g. "dnsmasq"),
#      LANHA_NODE_FLAGS (node flags for lanha instead of the systemd unit's). Also prints lanha's GC
#      pauses over its runs: RESULT dhcp.gc_ms_per_ack.
# Every server is started here with its own config and stopped by PID. Needs root.
source "$(dirname "$0")/lib.sh"
SKIP=${SKIP:-}
dhcp_lab_up bench:dhcp b dhcp

lanha_start() { # state dir; prints PID line like the shared dhcp-server.sh
  local dir=$1; mkdir -p "$dir"
  lanha_bench_config "$dir" warn
  [ -z "${KEEP_LEASES:-}" ] && rm -rf "$dir/state"
  # shellcheck disable=SC2086
  ip netns exec "$SRV_NS" node $NODE_FLAGS "$LANCTL" serve --config "$dir/lanha.yaml" > "$dir/lanha.log" 2>&1 &
  local pid=$!
  # logLevel warn hides daemon.ready: wait for the control socket to answer instead.
  local ok=""
  for _ in $(seq 1 100); do node "$LANCTL" status --socket "$dir/lanha.sock" >/dev/null 2>&1 && { ok=1; break; }; sleep 0.3; done
  [ -n "$ok" ] || { cat "$dir/lanha.log" >&2; kill "$pid"; return 1; }
  echo "PID $pid"
}
# node as the systemd unit starts it (its V8 memory flags).
# LANHA_NODE_FLAGS replaces them (to compare V8 settings).
NODE_FLAGS=${LANHA_NODE_FLAGS:-$(sed -n 's|^ExecStart=/usr/bin/node \(.*\) */usr/lib/lanha/dist/bin/lanhad.js.*|\1|p' "$REPO/systemd/lanha.service")}
export -f lanha_start; export LANCTL SRV_NS NODE_FLAGS

rss_kib() { # PID -> KiB resident of the process and its children, shared pages once (sum of Pss)
  local p total=0 v
  for p in "$1" $(ps -o pid= --ppid "$1" 2>/dev/null || true); do
    v=$(awk '$1 == "Pss:" {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || true)
    total=$((total + ${v:-0}))
  done
  echo "$total"
}
peak_rss() { # PID FILE: the largest rss_kib seen, sampled every 0.5 s while PID lives
  local max=0 v
  while kill -0 "$1" 2>/dev/null; do v=$(rss_kib "$1"); if [ "$v" -gt "$max" ]; then max=$v; echo "$max" > "$2"; fi; sleep 0.5; done
}
ack_stages() { # lanha control socket -> one line per ACK stage: "stage mean p50 p99" (ms, last 4096 ACKs)
  node "$LANCTL" status --json --socket "$1" 2>/dev/null | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const st=JSON.parse(s).services.dhcp?.ackStages ?? {};for(const [k,v] of Object.entries(st)) console.log(k, v.meanMs ?? "NA", v.p50Ms ?? "NA", v.p99Ms ?? "NA")})'
}
storage() { # lanha control socket -> "fsyncs acks leases"
  node "$LANCTL" status --json --socket "$1" 2>/dev/null | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const j=JSON.parse(s);console.log(j.cluster.storage?.fsyncs ?? 0, j.services.dhcp?.counters?.["sent.ack"] ?? 0)})'
}

fsync_probe() { # PID -> "syncs acks": fsync-family calls of every thread of PID (strace -c) over 3 s of perfdhcp at 100 DORA/s
  local out=$D/strace.$1 tasks st acks calls
  command -v strace >/dev/null || { echo "NA NA"; return; }
  tasks=$(ls /proc/"$1"/task 2>/dev/null | sed 's/^/-p /' | tr '\n' ' ')
  [ -n "$tasks" ] || { echo "NA NA"; return; }
  # shellcheck disable=SC2086
  strace -f -c -e trace=fsync,fdatasync,sync_file_range,syncfs,msync -o "$out" $tasks 2>/dev/null & st=$!
  sleep 0.5
  acks=$(timeout 20 ip netns exec "$NS" perfdhcp -l "$IFACE" -r 100 -R 100000 -p 3 10.99.0.1 2>&1 | awk '/^\*\*\*Statistics for: REQUEST-ACK/{s=1} s&&/^received packets:/{print $3; exit}')
  kill -INT "$st" 2>/dev/null; wait "$st" 2>/dev/null
  calls=$(awk '$NF ~ /^(fsync|fdatasync|sync_file_range|syncfs|msync)$/ {n += $4} END {print n + 0}' "$out" 2>/dev/null)
  echo "${calls:-NA} ${acks:-NA}"
}

start() { # kind -> sets PID
  PID=""
  if [ "$1" = lanha ]; then PID=$(lanha_start "$D/lanha" | awk '/^PID/{print $2}')
  else PID=$(bash "$SHARED/dhcp-server.sh" "$1" "$D/$1" | awk '/^PID/{print $2}'); fi
  [ -n "$PID" ] && PIDS+=("$PID")
}
stop() { # the anchors are grandchildren (started by dhcp-server.sh): wait until the PID is gone
  [ -n "${PID:-}" ] || return 0
  kill "$PID" 2>/dev/null
  for _ in $(seq 1 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$PID" 2>/dev/null && kill -9 "$PID" 2>/dev/null
  sleep 0.5
}

declare -A V
for kind in lanha kea-persist dnsmasq; do
  case " $SKIP " in *" ${kind%-persist} "*) continue;; esac
  label=${kind%-persist}
  start "$kind"
  if [ -z "$PID" ]; then echo "$label did not start"; continue; fi
  V[$label.idle]=$(rss_kib "$PID")
  [ "$label" = lanha ] && { node "$REPO/dist/bench/pauses.js" snap "$D/lanha/lanha.sock" "$D/pauses"; T_GC=$SECONDS; }
  peak_rss "$PID" "$D/$label.peak" & SAMPLER=$!
  echo "== $label: DORA"
  LABEL=$label START_RATE=${START_RATE:-100} bash "$SHARED/dhcp-perf.sh" 10.99.0.1 | tee "$D/$label-dora.out" | grep -E '^(STEP|RESULT)'
  V[$label.dora]=$(value dhcp.dora_per_s "$D/$label-dora.out")
  if [ "$label" != dnsmasq ]; then
    echo "== $label: light-load latency ($LIGHT_COUNT DORA at 100/s)"
    lat=$(ip netns exec "$NS" node "$REPO/dist/bench/dhcp-latency.js" 10.99.0.1 10.99.0.2 100 "$LIGHT_COUNT" 7)
    echo "$lat"
    V[$label.p50]=$(echo "$lat" | sed -n 's/.*"p50Ms":\([0-9.]*\).*/\1/p')
    V[$label.p99]=$(echo "$lat" | sed -n 's/.*"p99Ms":\([0-9.]*\).*/\1/p')
    echo "== $label: renewals"
    [ "$label" = lanha ] && read -r F0 A0 < <(storage "$D/lanha/lanha.sock")
    LABEL=$label MODE=renew START_RATE=${RENEW_START_RATE:-50} bash "$SHARED/dhcp-perf.sh" 10.99.0.1 | tee "$D/$label-renew.out" | grep -E '^(STEP|RESULT)'
    V[$label.renew]=$(value dhcp.renew_per_s "$D/$label-renew.out")
    if [ "$label" = lanha ]; then
      read -r F1 A1 < <(storage "$D/lanha/lanha.sock")
      V[lanha.fsync_per_ack]=$(awk -v f=$((F1 - F0)) -v a=$((A1 - A0)) 'BEGIN{ if (a > 0) printf "%.3f", f / a }')
      echo "lanha during the renewal runs: $((F1 - F0)) fsyncs for $((A1 - A0)) ACKs"
      ack_stages "$D/lanha/lanha.sock" > "$D/stages"
      echo "lanha: where an ACK's time went (last 4096 ACKs, ms: stage mean p50 p99)"; sed 's/^/  /' "$D/stages"
      # GC pauses of the daemon over its DORA, latency and renewal runs, per ACK sent.
      node "$REPO/dist/bench/pauses.js" snap "$D/lanha/lanha.sock" "$D/pauses"
      T_GC=$((SECONDS - T_GC)); [ "$T_GC" -gt 0 ] || T_GC=1
      node "$REPO/dist/bench/pauses.js" sum "$D/pauses" "$T_GC" > "$D/pauses.sum"
      grep -v '^TOTAL' "$D/pauses.sum"
      V[lanha.gc_per_ack]=$(awk -v a="$A1" -v t="$T_GC" '$1 == "TOTAL" && a > 0 {printf "%.3f", $2 * t / a}' "$D/pauses.sum")
      V[lanha.leases]=$(node "$LANCTL" leases --json --all --socket "$D/lanha/lanha.sock" 2>/dev/null | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).filter(l=>l.state==="bound").length))')
    fi
  fi
  kill "$SAMPLER" 2>/dev/null; V[$label.peak]=$(cat "$D/$label.peak" 2>/dev/null)
  # What durability each side has, counted rather than claimed: fsync-family calls per ACK.
  read -r "V[$label.probe_syncs]" "V[$label.probe_acks]" < <(fsync_probe "$PID")
  echo "$label durability probe (strace, 3 s at 100 DORA/s): ${V[$label.probe_syncs]} fsync/fdatasync calls for ${V[$label.probe_acks]} ACKs"
  stop
done

echo "== kill -9 durability"
LEASES_CMD="node $LANCTL leases --json --all --socket $D/lanha/lanha.sock | node -e 'let s=\"\";process.stdin.on(\"data\",d=>s+=d).on(\"end\",()=>{for(const l of JSON.parse(s)) if(l.state===\"bound\") console.log(l.ip,l.mac)})'"
START_CMD="lanha_start $D/lanha" LEASES_CMD="$LEASES_CMD" LABEL=lanha REPEAT=1 PERIOD=6 \
  bash "$SHARED/dhcp-durability.sh" custom 2>&1 | tee "$D/lanha-kill9.out" | grep -E '^(STEP|RESULT|LOST)'
V[lanha.lost]=$(value dhcp.kill9_lost_acked_leases "$D/lanha-kill9.out")
V[lanha.acked]=$(value dhcp.kill9_acked_leases "$D/lanha-kill9.out")
case " $SKIP " in *" kea "*) ;; *)
  LABEL=kea REPEAT=1 PERIOD=6 SRV_NS=$SRV_NS SRV_IF=$SRV_IF bash "$SHARED/dhcp-durability.sh" kea-persist 2>&1 | tee "$D/kea-kill9.out" | grep -E '^(STEP|RESULT|LOST)'
  V[kea.lost]=$(value dhcp.kill9_lost_acked_leases "$D/kea-kill9.out");;
esac

per_ack() { awk -v s="$1" -v a="$2" 'BEGIN{ if (s == "" || a == "" || s == "NA" || a == "NA" || a + 0 == 0) print "NA"; else printf "%.3f", s / a }'; }
echo
echo "durability: lanha sends an ACK only after an fdatasync that covers its lease completed (WAL, group commit:"
echo "  one fdatasync serves every lease written before it), so neither kill -9 nor a power cut loses an ACKed"
echo "  lease. Kea's memfile (persist: true) writes each lease to its CSV file without an fsync: kill -9 loses"
echo "  none (the page cache survives), a power cut loses the leases the kernel had not written back yet (up to"
echo "  ~30 s by default). dnsmasq rewrites its lease file. Measured below: fsync-family calls per ACK at 100 DORA/s."
line() { # figure lanha anchor anchorvalue unit better
  echo "RESULT $1 lanha=$(or_na "$2") $3=$(or_na "$4") ratio=$(ratio "$2" "$4") unit=$5 better=$6"
}
echo
line dhcp.dora_per_s "${V[lanha.dora]:-}" kea "${V[kea.dora]:-}" dora/s higher
line dhcp.dora_per_s.vs_dnsmasq "${V[lanha.dora]:-}" dnsmasq "${V[dnsmasq.dora]:-}" dora/s higher
line dhcp.latency_ms_p50 "${V[lanha.p50]:-}" kea "${V[kea.p50]:-}" ms lower
line dhcp.latency_ms_p99 "${V[lanha.p99]:-}" kea "${V[kea.p99]:-}" ms lower
line dhcp.renew_per_s "${V[lanha.renew]:-}" kea "${V[kea.renew]:-}" renew/s higher
mib() { awk -v k="$1" 'BEGIN{ if (k == "" || k + 0 == 0) print "NA"; else printf "%.1f", k / 1024 }'; }
echo "RESULT dhcp.gc_ms_per_ack lanha=$(or_na "${V[lanha.gc_per_ack]:-}") anchor=NA ratio=NA unit=ms better=lower"
while read -r stage mean p50 p99; do
  echo "RESULT dhcp.ack_stage_ms.$stage lanha=$mean anchor=NA ratio=NA unit=ms better=lower p50=$p50 p99=$p99"
done < <(cat "$D/stages" 2>/dev/null)
echo "RESULT dhcp.fsyncs_per_ack lanha=$(or_na "${V[lanha.fsync_per_ack]:-}") anchor=NA ratio=NA unit=fsyncs better=lower"
echo "RESULT dhcp.durability.fsyncs_per_ack lanha=$(per_ack "${V[lanha.probe_syncs]:-}" "${V[lanha.probe_acks]:-}") kea=$(per_ack "${V[kea.probe_syncs]:-}" "${V[kea.probe_acks]:-}") ratio=NA unit=fsyncs better=higher dnsmasq=$(per_ack "${V[dnsmasq.probe_syncs]:-}" "${V[dnsmasq.probe_acks]:-}")"
line dhcp.rss_mib.idle "$(mib "${V[lanha.idle]:-}")" kea "$(mib "${V[kea.idle]:-}")" MiB lower
echo "RESULT dhcp.rss_mib.load lanha=$(mib "${V[lanha.peak]:-}") kea=$(mib "${V[kea.peak]:-}") ratio=$(ratio "$(mib "${V[lanha.peak]:-}")" "$(mib "${V[kea.peak]:-}")") unit=MiB better=lower leases=$(or_na "${V[lanha.leases]:-}")"
echo "RESULT dhcp.lost_acked lanha=$(or_na "${V[lanha.lost]:-}") kea=$(or_na "${V[kea.lost]:-}") ratio=NA unit=leases better=lower acked=$(or_na "${V[lanha.acked]:-}")"
