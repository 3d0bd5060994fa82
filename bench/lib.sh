# Sourced (not run) by the benches on the shared two-namespace DHCP lab (bench/dhcp.sh,
# bench/backend.sh): their common start and cleanup, and the helpers that read the shared scripts'
# RESULT lines. After `source bench/lib.sh`: REPO, SHARED, LANCTL, D (a temp dir), PIDS (PIDs to stop
# at exit; a script may also leave PID files as $D/*.pid), REPEAT, PERIOD, LIGHT_COUNT.
#   dhcp_lab_up NAME LETTER AREA   lab prefix lh<rand><LETTER>, or LAB_PREFIX (exports PREFIX, NS, IFACE, SRV_NS,
#                                  SRV_IF), the cleanup on exit, root and build checks, the anchors
#                                  of bench/packages/AREA.txt, and the lab up
#   lanha_bench_config DIR LEVEL [CLUSTER]   writes DIR/lanha.yaml: the DHCP server both benches
#                                  measure (state and control socket in DIR), with a cluster: block;
#                                  CACHE_THRESHOLD set: dhcp.cacheThreshold (lease caching) too, else
#                                  lanha's default (0.25, as Kea 3.0)
#   kea_cache_threshold SOCKET     the cache-threshold a running Kea reports (config-get), "off" without one
#   CACHE_FIELDS                   "lanha_cache_threshold=.. kea_cache_threshold=..": what each server
#                                  ran with, for the end of the RESULT lines (set by cache_fields KEA_VALUE)
# A bench may define bench_before_cleanup (e.g. to copy logs out of $D); it runs first at exit.
set -uo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SHARED=${SHARED_BENCH:-$REPO/../shared/bench}
export REPEAT=${REPEAT:-1} PERIOD=${PERIOD:-3}
LIGHT_COUNT=${LIGHT_COUNT:-500}
LANCTL="$REPO/dist/bin/lanctl.js"
D=$(mktemp -d); PIDS=()

bench_any_alive() { local p; for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && return 0; done; return 1; }

# Stops what the bench started, by PID only (SIGTERM, then SIGKILL after 3 s), takes the lab down.
bench_cleanup() {
  declare -F bench_before_cleanup >/dev/null && bench_before_cleanup
  local f p
  for f in "$D"/*.pid; do [ -f "$f" ] && PIDS+=("$(cat "$f")"); done
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for _ in $(seq 1 30); do bench_any_alive || break; sleep 0.1; done
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
  bash "$SHARED/dhcp-lab.sh" down >/dev/null 2>&1
  rm -rf "$D"
}

dhcp_lab_up() { # NAME LETTER AREA
  export PREFIX="${LAB_PREFIX:-lh$(printf '%04x' $((RANDOM % 65536)))$2}"
  export NS=$PREFIX-cli IFACE=$PREFIX-vc SRV_NS=$PREFIX-srv SRV_IF=$PREFIX-vs
  trap bench_cleanup EXIT
  [ "$(id -u)" = 0 ] || { echo "$1 needs root (network namespaces)"; exit 1; }
  [ -f "$LANCTL" ] || { echo "build first: npm run build"; exit 1; }
  bash "$REPO/bench/anchors.sh" "$3" || exit 2
  bash "$SHARED/dhcp-lab.sh" up >/dev/null || exit 1
}

lanha_bench_config() { # DIR LOG-LEVEL [CLUSTER BLOCK]: one /16 pool, rate limits out of perfdhcp's way
  cat > "$1/lanha.yaml" <<Y
node: { name: bench, address: 10.99.0.1, stateDir: $1/state, controlSocket: $1/lanha.sock, logLevel: $2 }
${3:-}
dhcp:
  rateLimit: { perMac: 100, global: 1000000 }
${CACHE_THRESHOLD:+  cacheThreshold: $CACHE_THRESHOLD}
  subnets:
    - subnet: 10.99.0.0/16
      pools: [10.99.1.0-10.99.200.255]
      router: [10.99.0.1]
      leaseTime: 1h
Y
}

LANHA_CACHE_THRESHOLD=${CACHE_THRESHOLD:-0.25}
CACHE_FIELDS="lanha_cache_threshold=$LANHA_CACHE_THRESHOLD kea_cache_threshold=NA"
cache_fields() { CACHE_FIELDS="lanha_cache_threshold=$LANHA_CACHE_THRESHOLD kea_cache_threshold=${1:-NA}"; }
kea_cache_threshold() { # SOCKET -> Kea's cache-threshold as it runs (config-get; its defaults filled in), "off" when it has none
  node -e '
const net = require("net");
const s = net.connect(process.argv[1], () => s.write(JSON.stringify({ command: "config-get" })));
let b = ""; s.on("data", (d) => b += d);
s.on("end", () => { try { const d = JSON.parse(b).arguments.Dhcp4; const v = d["cache-threshold"]; console.log(v === undefined || v === 0 || d["cache-max-age"] === 0 ? "off" : v); } catch { console.log("NA"); } });
s.on("error", () => console.log("NA"));' "$1" 2>/dev/null || echo NA
}

# value FIGURE FILE: the value= field of the last RESULT line for FIGURE in FILE (the shared scripts' format).
value() { awk -v m="$1" '$1=="RESULT" && $2==m {for(i=3;i<=NF;i++) if($i ~ /^value=/){sub("value=","",$i); print $i}}' "$2" | tail -1; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a=="" || b=="" || a=="NA" || b=="NA" || b==0) print "NA"; else printf "%.2f", a/b }'; }
or_na() { [ -n "$1" ] && echo "$1" || echo NA; }
