#!/usr/bin/env bash
# DNS benchmark: dnsperf against lanha, nsd and dnsmasq in one run, the same 1000-name zone for all
# (node001..node999.lan: A 10.20.x.y, AAAA fd00:20::n, PTR in 20.10.in-addr.arpa; queries 40% A,
# 25% AAAA, 20% PTR, 15% NXDOMAIN). Everything on loopback, every load bounded in time, every server
# started here with its own config and stopped by PID.
#
#   npm run bench:dns                      (builds first)
#   DURATION=10 RUNS=1 CLIENTS=8 THREADS=2 OUTSTANDING=100 bash bench/dns.sh
#
# Forwarding (FORWARD=1, the default): nsd serves fwd.test as the authoritative upstream; lanha,
# dnsmasq and unbound forward to it. Cache hits: 500 warm names under the same dnsperf load; cache
# misses: unique names at MISS_QPS (4000) for DURATION, p99 latency; resident memory of each
# forwarder after both runs (lanha: daemon + its UDP worker processes). Checked first: lanha's
# answers equal nsd's, TTLs count down, NXDOMAIN is cached with the SOA's negative TTL.
#
# Where the misses' time goes (STAGES=1, the default, with tcpdump or dumpcap): each forwarder's miss
# runs are captured on the loopback and bench/dns-stages.ts splits every forwarded miss by the
# kernel's timestamps of its four datagrams: in (query in -> upstream query out), up (the upstream),
# out (upstream reply in -> answer out); own = in + out, the forwarder's part (its socket queue
# included, dnsperf's own wait for a core not). Printed per forwarder, with RESULT
# dns.forward.miss_own_p99_ms. Inside lanha (TRACE=1, the default with the capture; TRACE=0 runs it
# untraced): its processes record each miss's four steps, their collections and their run-queue wait
# (services/dns/miss-trace.ts, LANHA_DNS_MISS_TRACE), joined with the capture by question name: the
# wait in the socket queue before lanha read the query (qwait) or the upstream's reply (rwait), its
# work on each (js in, js out), and for the slowest 1 % what the process did meanwhile: ran, collected
# (GC) or waited for a core (RESULT dns.forward.miss_inside.*, p50 and p99). The wire stages' p50 and
# p99 against each anchor: RESULT dns.forward.miss_stage.<in|up|out>_<p50|p99>_ms.
#
# Knobs: KEEP=DIR keeps the forwarding lanha's traces and log there; AUTH=0 runs only the forwarding part (nsd still starts, as the upstream); FWORKERS=N sets
# the forwarding lanha's dns.workers (default: the config's default). LANHA_DNS_WORKER_NODE_FLAGS
# (the daemon's own environment knob, lib/memory.ts) runs every lanha here with those V8 flags for
# its UDP workers instead of the shipped ones: an A/B of the workers' flags without editing code, e.g.
#   LANHA_DNS_WORKER_NODE_FLAGS="--max-semi-space-size=8 --single-threaded-gc" AUTH=0 STAGES=0 bash bench/dns.sh
#
# CPU per answered query (dns.udp.cpu_us_per_query, dns.forward.hit_cpu_us_per_query,
# dns.forward.miss_cpu_us_per_query with dns.forward.miss_runq_ms_per_s): the CPU of lanha's
# processes (daemon + UDP workers, every thread), dnsmasq's and unbound's over their UDP, hit and miss runs,
# from /proc/<pid>/task/*/schedstat, divided by the answers: the figure the qps ratio follows on a
# machine where dnsperf shares the cores. lanha's figure by part (dns.forward.<hit|miss>_cpu_us_part.*):
# the UDP worker's main thread, the workers' other threads (V8's compiler and collector helpers),
# the daemon's main thread and its other threads: what the answering thread's own work does not explain.
#
# The UDP p99's parts (dns.udp.mean_ms, p99_over_mean, runq_ms_per_s): dnsperf holds OUTSTANDING
# queries in flight, so the mean latency is OUTSTANDING / qps and the p99 ratio to nsd is the mean
# ratio (how many queries a second each answers) times the ratio of p99 / mean (the tail's own shape:
# GC pauses, waits for a core); beside them, the time each server's threads waited for a core.
#
# The UDP p99 at a fixed rate (dns.udp.p99_ms.at_rate, RATE_QPS, default 10000; 0 skips it): the same
# queries and clients, dnsperf -Q capping what is asked a second below every server's capacity, so
# the figure is each answer's own latency and its tail (GC pauses, wake-ups, waits for a core)
# rather than the queue a saturating load builds (the p99 above, which follows the qps). A LAN's
# resolvers ask far below saturation; both figures are printed.
#
# Memory: resident memory of the whole lanha daemon (main process + UDP worker processes; TFTP
# threads would be in-process) idle before the load and its peak during the UDP runs.
#
# Prints a table and, per figure, `RESULT <figure> lanha=<v> <anchor>=<v> ratio=<lanha/anchor> unit=<u> better=<...>`.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}; RUNS=${RUNS:-1}; THREADS=${THREADS:-2}; CLIENTS=${CLIENTS:-8}; OUTSTANDING=${OUTSTANDING:-100}
P_LANHA=${P_LANHA:-15353}; P_NSD=${P_NSD:-15354}; P_DNSMASQ=${P_DNSMASQ:-15355}; P_LANHA1=${P_LANHA1:-15356}
RATE_QPS=${RATE_QPS:-10000}
FORWARD=${FORWARD:-1}; MISS_QPS=${MISS_QPS:-4000}; AUTH=${AUTH:-1}; FWORKERS=${FWORKERS:-}
P_FLANHA=${P_FLANHA:-15361}; P_FDNSMASQ=${P_FDNSMASQ:-15362}; P_FUNBOUND=${P_FUNBOUND:-15363}
TMP=$(mktemp -d /tmp/lanha-bench-dns.XXXXXX)
PIDS=()
MAIN_PID=$BASHPID
cleanup() {
  # Only the script itself cleans up: a subshell killed before it has reset the inherited EXIT trap
  # would otherwise run this too, stopping nsd and deleting $TMP halfway through the run.
  [ "$BASHPID" = "$MAIN_PID" ] || return 0
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done; kill -9 "$p" 2>/dev/null || true; done
  # KEEP=DIR: the forwarding lanha's miss traces and log (its workers' --trace-gc lines, if asked) kept for study.
  if [ -n "${KEEP:-}" ]; then mkdir -p "$KEEP"; cp -r "$TMP/trace" "$TMP/flanha.log" "$KEEP/" 2>/dev/null || true; fi
  rm -rf "$TMP"
}
trap cleanup EXIT

bash bench/anchors.sh dns || exit 2
# Every figure here is relative to what else the machine runs: say how busy it was, at both ends.
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at the start ($(date -u +%H:%M:%S) UTC)"
echo "lanha's DNS worker V8 flags: ${LANHA_DNS_WORKER_NODE_FLAGS:-as shipped (DNS_WORKER_NODE_FLAGS, lib/memory.ts)}"
trap '[ "$BASHPID" = "$MAIN_PID" ] && echo "machine: load average $(cut -d" " -f1-3 /proc/loadavg) at the end ($(date -u +%H:%M:%S) UTC)"; cleanup' EXIT
[ -f dist/bin/lanctl.js ] || npm run --silent build

# --- the data set --------------------------------------------------------------------------------
awk -v N=999 -v D="$TMP" 'BEGIN{
  z=D"/lan.zone"; r=D"/rev.zone"; h=D"/hosts"; q=D"/queries.txt"; y=D"/records.yaml";
  print "$ORIGIN lan.\n$TTL 300\n@ IN SOA ns1.lan. hostmaster.lan. 1 3600 600 86400 300\n@ IN NS ns1.lan.\nns1 IN A 10.20.0.2" > z;
  print "$ORIGIN 20.10.in-addr.arpa.\n$TTL 300\n@ IN SOA ns1.lan. hostmaster.lan. 1 3600 600 86400 300\n@ IN NS ns1.lan." > r;
  print "        - \"@ NS ns1\"\n        - \"ns1 A 10.20.0.2\"" > y;
  for (i = 1; i <= N; i++) {
    name = sprintf("node%03d", i); hi = int(i / 200); lo = i % 200 + 10;
    ip = sprintf("10.20.%d.%d", hi, lo); ip6 = sprintf("fd00:20::%x", i);
    printf "%s IN A %s\n%s IN AAAA %s\n", name, ip, name, ip6 > z;
    printf "%d.%d IN PTR %s.lan.\n", lo, hi, name > r;
    printf "%s %s.lan\n%s %s.lan\n", ip, name, ip6, name > h;
    printf "        - \"%s A %s\"\n        - \"%s AAAA %s\"\n", name, ip, name, ip6 > y;
  }
  srand(42);
  for (k = 0; k < 20000; k++) {
    i = int(rand() * N) + 1; name = sprintf("node%03d.lan", i); x = rand();
    if (x < 0.40) print name " A" > q;
    else if (x < 0.65) print name " AAAA" > q;
    else if (x < 0.85) printf "%d.%d.20.10.in-addr.arpa PTR\n", i % 200 + 10, int(i / 200) > q;
    else printf "missing%05d.lan A\n", k > q;
  }
}'

# --- servers -------------------------------------------------------------------------------------
# lanha as configured by default (on two cores or more: the daemon + one UDP worker process), and
# lanha as one process (dns.workers: 0), to show what the worker adds.
lanha_config() { # FILE PORT STATE SOCKET WORKERS_LINE
  cat > "$1" <<YAML
node: { name: bench, role: server, address: 127.0.0.1, stateDir: $3, controlSocket: $4, logLevel: warn }
dns:
  port: $2
  listen: [127.0.0.1]
  subnets: [10.20.0.0/16]
$5
  zones:
    - name: lan
      ttl: 300
      negativeTtl: 300
      primary: ns1.lan
      records:
$(cat "$TMP/records.yaml")
YAML
}
lanha_config "$TMP/lanha.yaml" "$P_LANHA" "$TMP/state" "$TMP/lanha.sock" ""
lanha_config "$TMP/lanha1.yaml" "$P_LANHA1" "$TMP/state1" "$TMP/lanha1.sock" "  workers: 0"
# node as the systemd unit starts it (its V8 memory flags).
NODE_FLAGS=$(sed -n 's|^ExecStart=/usr/bin/node \(.*\) */usr/lib/lanha/dist/bin/lanhad.js.*|\1|p' systemd/lanha.service)
# shellcheck disable=SC2086
node $NODE_FLAGS dist/bin/lanctl.js serve --config "$TMP/lanha1.yaml" > "$TMP/lanha1.log" 2>&1 & PIDS+=($!)
# shellcheck disable=SC2086
node $NODE_FLAGS dist/bin/lanctl.js serve --config "$TMP/lanha.yaml" > "$TMP/lanha.log" 2>&1 & PIDS+=($!); LANHA_PID=$!

cat > "$TMP/nsd.conf" <<CONF
server:
  ip-address: 127.0.0.1@$P_NSD
  port: $P_NSD
  server-count: 1
  username: ""
  chroot: ""
  zonesdir: "$TMP"
  zonelistfile: "$TMP/zone.list"
  database: ""
  pidfile: "$TMP/nsd.pid"
  xfrdfile: "$TMP/xfrd.state"
  xfrdir: "$TMP"
  logfile: "$TMP/nsd.log"
  verbosity: 0
  rrl-ratelimit: 0
remote-control:
  control-enable: no
zone:
  name: lan
  zonefile: lan.zone
zone:
  name: 20.10.in-addr.arpa
  zonefile: rev.zone
zone:
  name: fwd.test
  zonefile: fwd.zone
CONF
cat > "$TMP/fwd.zone" <<ZONE
\$ORIGIN fwd.test.
\$TTL 3600
@ IN SOA ns1.fwd.test. hostmaster.fwd.test. 1 3600 600 86400 60
@ IN NS ns1.fwd.test.
ns1 IN A 127.0.0.1
*.h IN A 192.0.2.1
*.h IN A 192.0.2.2
*.m IN A 192.0.2.3
www IN A 192.0.2.80
www IN AAAA 2001:db8::80
ZONE
NSD_OK=0; DNSMASQ_OK=0
if command -v nsd >/dev/null; then nsd -d -c "$TMP/nsd.conf" > "$TMP/nsd.out" 2>&1 & PIDS+=($!); NSD_OK=1; fi
if command -v dnsmasq >/dev/null; then
  dnsmasq -k --conf-file=/dev/null --port="$P_DNSMASQ" --listen-address=127.0.0.1 --bind-interfaces --no-resolv --no-hosts \
    --addn-hosts="$TMP/hosts" --local=/lan/ --local=/20.10.in-addr.arpa/ --pid-file="$TMP/dnsmasq.pid" --user=root \
    --cache-size=10000 > "$TMP/dnsmasq.out" 2>&1 & PIDS+=($!); DNSMASQ_OK=1
fi

answers() { # PORT [NAME ADDRESS] -> true when NAME A (node001.lan) is answered with ADDRESS
  for _ in $(seq 1 50); do
    [ "$(dig +short +time=1 +tries=1 -p "$1" @127.0.0.1 "${2:-node001.lan}" A 2>/dev/null)" = "${3:-10.20.0.11}" ] && return 0
    sleep 0.2
  done
  return 1
}
answers "$P_LANHA" || { echo "lanha did not answer; log:"; cat "$TMP/lanha.log"; exit 1; }
answers "$P_LANHA1" || { echo "lanha (one process) did not answer; log:"; cat "$TMP/lanha1.log"; exit 1; }
[ $NSD_OK = 1 ] && { answers "$P_NSD" || { echo "nsd did not start: $(cat "$TMP/nsd.out")"; NSD_OK=0; }; }
[ $DNSMASQ_OK = 1 ] && { answers "$P_DNSMASQ" || { echo "dnsmasq did not start: $(cat "$TMP/dnsmasq.out")"; DNSMASQ_OK=0; }; }

# --- memory --------------------------------------------------------------------------------------
# Resident memory of a server = its process and all below it (lanha's UDP worker processes, nsd's
# main and server processes), pages shared between them (the node binary, libc) counted once: the sum of their Pss.
tree() { # PID -> the PID and every process below it (nsd's server is a grandchild of the process started)
  local p
  echo "$1"
  for p in $(ps -o pid= --ppid "$1" 2>/dev/null || true); do tree "$p"; done
}
rss_kib() { # PID [Pss|Rss] -> KiB
  local p total=0 v
  for p in $(tree "$1"); do
    v=$(awk -v f="${2:-Pss}:" '$1 == f {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || true)
    total=$((total + ${v:-0}))
  done
  echo "$total"
}
mib() { awk -v k="$1" 'BEGIN{ if (k == "NA" || k + 0 == 0) print "NA"; else printf "%.1f", k / 1024 }'; }
peak_rss() { # PID FILE: the largest rss_kib seen, sampled every 0.5 s until killed
  local max=0 v
  while :; do v=$(rss_kib "$1"); if [ "$v" -gt "$max" ]; then max=$v; echo "$max" > "$2"; fi; sleep 0.5; done
}
DNSMASQ_PID=""; NSD_PID=""
[ $DNSMASQ_OK = 1 ] && DNSMASQ_PID=$(cat "$TMP/dnsmasq.pid" 2>/dev/null || true)
[ $NSD_OK = 1 ] && NSD_PID=$(cat "$TMP/nsd.pid" 2>/dev/null || true)
L_IDLE=$(rss_kib "$LANHA_PID"); L_IDLE_RSS=$(rss_kib "$LANHA_PID" Rss); D_IDLE=NA; N_IDLE=NA
[ -n "$DNSMASQ_PID" ] && D_IDLE=$(rss_kib "$DNSMASQ_PID")
[ -n "$NSD_PID" ] && N_IDLE=$(rss_kib "$NSD_PID")
peak_rss "$LANHA_PID" "$TMP/lanha.peak" & PIDS+=($!); SAMPLER=$!
[ -n "$DNSMASQ_PID" ] && { peak_rss "$DNSMASQ_PID" "$TMP/dnsmasq.peak" & PIDS+=($!); }
[ -n "$NSD_PID" ] && { peak_rss "$NSD_PID" "$TMP/nsd.peak" & PIDS+=($!); }

# --- load ----------------------------------------------------------------------------------------
# The machine is shared: runs are interleaved (lanha, dnsmasq, nsd, lanha, ...) so a busy moment
# hits every server alike, and each figure is the median over RUNS.
# CPU a server spent (ns): every thread of the process and of its children (lanha's UDP workers),
# from /proc/<pid>/task/<tid>/schedstat, which counts in nanoseconds.
# The second schedstat field is the time the threads waited in the run queue for a core (ns): a
# server that is runnable and not running adds that wait to every query it holds.
cpu_ns() { # PID -> "CPU_NS RUNQ_WAIT_NS"
  local p t v w total=0 wait=0
  for p in $(tree "$1"); do
    for t in /proc/"$p"/task/*/schedstat; do v=0; w=0; read -r v w _ < "$t" 2>/dev/null || true; total=$((total + v)); wait=$((wait + w)); done
  done
  echo "$total $wait"
}
# lanha's CPU by part (ns): the daemon's main thread, its other threads (V8's compiler and collector
# helpers, libuv's pool), each UDP worker's main thread and the workers' other threads; where a
# forwarded query's CPU goes beyond the answering thread's own work.
cpu_parts() { # DAEMON_PID -> "DAEMON_MAIN DAEMON_THREADS WORKER_MAIN WORKER_THREADS"
  local p t v tid dm=0 dt=0 wm=0 wt=0
  for p in $(tree "$1"); do
    for t in /proc/"$p"/task/*/schedstat; do
      v=0; read -r v _ < "$t" 2>/dev/null || true
      tid=${t#/proc/"$p"/task/}; tid=${tid%/schedstat}
      if [ "$p" = "$1" ]; then if [ "$tid" = "$p" ]; then dm=$((dm + v)); else dt=$((dt + v)); fi
      elif [ "$tid" = "$p" ]; then wm=$((wm + v)); else wt=$((wt + v)); fi
    done
  done
  echo "$dm $dt $wm $wt"
}
# With CPU_PID set: that server's CPU per answered query (us) over the run, appended to $TMP/NAME.MODE.cpu,
# and the time its threads waited for a core (ms per second of the run) to $TMP/NAME.MODE.runq.
once() { # NAME PORT MODE [FILE [DNSPERF ARGS...]] -> appends "qps lost p99_ms mean_ms" to $TMP/NAME.MODE
  local name=$1 port=$2 mode=$3 file=${4:-$TMP/queries.txt} qps lost p99 mean n c0=0 w0=0 c1 w1 answered pd0 pt0 pw0 px0 pd1 pt1 pw1 px1
  shift 3; [ $# -gt 0 ] && shift
  [ $# -gt 0 ] || set -- -T "$THREADS" -c "$CLIENTS" -q "$OUTSTANDING"
  [ -n "${CPU_PID:-}" ] && read -r c0 w0 < <(cpu_ns "$CPU_PID")
  [ -n "${PARTS_PID:-}" ] && read -r pd0 pt0 pw0 px0 < <(cpu_parts "$PARTS_PID")
  timeout $((DURATION + 20)) dnsperf -m "$mode" -s 127.0.0.1 -p "$port" -d "$file" -l "$DURATION" \
    "$@" -t 2 -v > "$TMP/out" 2>&1 || true
  if [ -n "${CPU_PID:-}" ]; then
    read -r c1 w1 < <(cpu_ns "$CPU_PID")
    answered=$(awk '/Queries completed/{print $3}' "$TMP/out")
    awk -v c=$((c1 - c0)) -v n="${answered:-0}" 'BEGIN{ if (n > 0) printf "%.2f\n", c / n / 1000 }' >> "$TMP/$name.$mode.cpu"
    awk -v w=$((w1 - w0)) -v d="$DURATION" 'BEGIN{ printf "%.1f\n", w / d / 1e6 }' >> "$TMP/$name.$mode.runq"
    if [ -n "${PARTS_PID:-}" ]; then
      read -r pd1 pt1 pw1 px1 < <(cpu_parts "$PARTS_PID")
      awk -v a=$((pd1 - pd0)) -v b=$((pt1 - pt0)) -v c=$((pw1 - pw0)) -v d=$((px1 - px0)) -v n="${answered:-0}" \
        'BEGIN{ if (n > 0) printf "%.2f %.2f %.2f %.2f\n", a / n / 1000, b / n / 1000, c / n / 1000, d / n / 1000 }' >> "$TMP/$name.$mode.parts"
    fi
  fi
  qps=$(awk '/Queries per second/{print $4}' "$TMP/out")
  lost=$(awk '/Queries lost/{print $3}' "$TMP/out")
  grep '^> ' "$TMP/out" | awk '{print $NF}' | sort -g > "$TMP/lat" || true
  n=$(wc -l < "$TMP/lat")
  if [ "$n" -gt 0 ]; then
    p99=$(awk -v n="$n" 'NR==int(n*0.99)+1{printf "%.3f",$1*1000; exit}' "$TMP/lat")
    mean=$(awk '{s += $1} END{printf "%.3f", s / NR * 1000}' "$TMP/lat")
  else p99=NA; mean=NA; fi
  echo "${qps:-0} ${lost:-NA} ${p99} ${mean}" >> "$TMP/$name.$mode"
}
cpu_median() { # NAME MODE [cpu|runq] -> median CPU us per answered query (runq: run-queue wait ms/s) over the runs
  local f="$TMP/$1.$2.${3:-cpu}"
  [ -s "$f" ] || { echo NA; return; }
  sort -g "$f" | awk '{v[NR]=$1} END{print v[int((NR+1)/2)]}'
}
median() { # NAME MODE COLUMN -> median of that column over the runs (lost: the largest)
  local f="$TMP/$1.$2"
  [ -s "$f" ] || { echo NA; return; }
  if [ "$3" = 2 ]; then awk '{print $2}' "$f" | sort -g | tail -1; return; fi
  awk -v c="$3" '{print $c}' "$f" | sort -g | awk '{v[NR]=$1} END{print v[int((NR+1)/2)]}'
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a == "NA" || b == "NA" || b + 0 == 0) print "NA"; else printf "%.2f", a / b }'; }
num() { awk -v a="$1" 'BEGIN{ if (a == "NA") print "NA"; else printf "%.0f", a }'; }
if [ "$AUTH" = 1 ]; then
echo "dnsperf: ${DURATION}s x ${RUNS} run(s), ${THREADS} threads, ${CLIENTS} clients, ${OUTSTANDING} outstanding; 20000 queries (A/AAAA/PTR/NXDOMAIN)"
for i in $(seq 1 "$RUNS"); do
  # Around lanha's UDP runs: its processes' GC pauses and event-loop delay (where the p99 tail goes).
  node dist/bench/pauses.js snap "$TMP/lanha.sock" "$TMP/pauses"
  CPU_PID=$LANHA_PID once lanha "$P_LANHA" udp
  node dist/bench/pauses.js snap "$TMP/lanha.sock" "$TMP/pauses"
  once lanha1 "$P_LANHA1" udp
  [ $DNSMASQ_OK = 1 ] && CPU_PID=$DNSMASQ_PID once dnsmasq "$P_DNSMASQ" udp
  [ $NSD_OK = 1 ] && CPU_PID=$NSD_PID once nsd "$P_NSD" udp
  once lanha "$P_LANHA" tcp
  [ $NSD_OK = 1 ] && once nsd "$P_NSD" tcp
  if [ "$RATE_QPS" -gt 0 ]; then
    rated=(-T "$THREADS" -c "$CLIENTS" -q "$OUTSTANDING" -Q "$RATE_QPS")
    once lanha-rate "$P_LANHA" udp "$TMP/queries.txt" "${rated[@]}"
    [ $NSD_OK = 1 ] && once nsd-rate "$P_NSD" udp "$TMP/queries.txt" "${rated[@]}"
    [ $DNSMASQ_OK = 1 ] && once dnsmasq-rate "$P_DNSMASQ" udp "$TMP/queries.txt" "${rated[@]}"
  fi
done
L_UQ=$(median lanha udp 1); L_ULOST=$(median lanha udp 2); L_UP99=$(median lanha udp 3)
L_TQ=$(median lanha tcp 1); L_TLOST=$(median lanha tcp 2); L_TP99=$(median lanha tcp 3)
N_UQ=$(median nsd udp 1); N_UP99=$(median nsd udp 3); N_TQ=$(median nsd tcp 1); N_TP99=$(median nsd tcp 3)
D_UQ=$(median dnsmasq udp 1); D_UP99=$(median dnsmasq udp 3)
L_UMEAN=$(median lanha udp 4); N_UMEAN=$(median nsd udp 4); D_UMEAN=$(median dnsmasq udp 4)
shape() { awk -v p="$1" -v m="$2" 'BEGIN{ if (p == "NA" || m == "NA" || m + 0 == 0) print "NA"; else printf "%.2f", p / m }'; }
L1_UQ=$(median lanha1 udp 1); L1_UP99=$(median lanha1 udp 3)
kill -0 "$LANHA_PID" 2>/dev/null || { echo "lanha died during the benchmark"; exit 1; }
L_PEAK=$(cat "$TMP/lanha.peak" 2>/dev/null || echo NA); D_PEAK=$(cat "$TMP/dnsmasq.peak" 2>/dev/null || echo NA)
N_PEAK=$(cat "$TMP/nsd.peak" 2>/dev/null || echo NA)
L_BREAKDOWN=$(node dist/bin/lanctl.js status --json --socket "$TMP/lanha.sock" 2>/dev/null \
  | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const m=JSON.parse(s).memory;if(m)console.log(m.processes.map(p=>`${p.role} rss ${p.rssMiB} heap ${p.heapUsedMiB}/${p.heapTotalMiB} external ${p.externalMiB}`).join("; "))})' || true)
L_AFTER_RSS=$(rss_kib "$LANHA_PID" Rss)

printf '\n%-10s %12s %12s %12s %12s\n' server udp_qps udp_p99_ms tcp_qps tcp_p99_ms
printf '%-10s %12s %12s %12s %12s\n' lanha "$L_UQ" "$L_UP99" "$L_TQ" "$L_TP99"
printf '%-10s %12s %12s %12s %12s\n' lanha-1p "$L1_UQ" "$L1_UP99" - -
printf '%-10s %12s %12s %12s %12s\n' nsd "$N_UQ" "$N_UP99" "$N_TQ" "$N_TP99"
printf '%-10s %12s %12s %12s %12s\n' dnsmasq "$D_UQ" "$D_UP99" - -
echo "lanha lost: udp $L_ULOST, tcp $L_TLOST queries"
printf 'resident MiB (process + children, shared pages once): lanha idle %s, peak under load %s; dnsmasq %s / %s; nsd %s / %s\n' \
  "$(mib "$L_IDLE")" "$(mib "$L_PEAK")" "$(mib "$D_IDLE")" "$(mib "$D_PEAK")" "$(mib "$N_IDLE")" "$(mib "$N_PEAK")"
echo "lanha RSS summed over its processes (shared pages counted in each): idle $(mib "$L_IDLE_RSS"), after the load $(mib "$L_AFTER_RSS")"
[ -n "$L_BREAKDOWN" ] && echo "lanha processes after the load (MiB): $L_BREAKDOWN"
# Where the UDP p99 comes from. dnsperf keeps OUTSTANDING queries in flight, so the mean latency is
# OUTSTANDING / qps (Little's law): a server answering fewer queries a second has every latency,
# p99 included, longer by the same factor. p99 / mean is the tail's own shape (GC pauses, waits for a
# core); p99 ratio = mean ratio x shape ratio. The run-queue wait is the time the server's threads
# were runnable and waiting for a core (schedstat), per second of the run.
echo "udp tail: mean latency ms lanha $L_UMEAN, nsd $N_UMEAN, dnsmasq $D_UMEAN; p99/mean lanha $(shape "$L_UP99" "$L_UMEAN"), nsd $(shape "$N_UP99" "$N_UMEAN"), dnsmasq $(shape "$D_UP99" "$D_UMEAN");" \
  "waited for a core (ms/s) lanha $(cpu_median lanha udp runq), nsd $(cpu_median nsd udp runq), dnsmasq $(cpu_median dnsmasq udp runq)"
echo "lanha pauses during its UDP runs ($((RUNS * DURATION)) s):"
node dist/bench/pauses.js sum "$TMP/pauses" $((RUNS * DURATION)) > "$TMP/pauses.sum" || true
grep -v '^TOTAL' "$TMP/pauses.sum" || true
read -r _ L_GC_MS_S L_GC_MAX L_LOOP_P99 < <(grep '^TOTAL' "$TMP/pauses.sum" || echo "TOTAL NA NA NA")
echo

echo "RESULT dns.udp.qps lanha=$(num "$L_UQ") dnsmasq=$(num "$D_UQ") ratio=$(ratio "$L_UQ" "$D_UQ") unit=qps better=higher"
echo "RESULT dns.udp.qps lanha=$(num "$L_UQ") nsd=$(num "$N_UQ") ratio=$(ratio "$L_UQ" "$N_UQ") unit=qps better=higher"
echo "RESULT dns.udp.cpu_us_per_query lanha=$(cpu_median lanha udp) dnsmasq=$(cpu_median dnsmasq udp) ratio=$(ratio "$(cpu_median lanha udp)" "$(cpu_median dnsmasq udp)") unit=us better=lower"
echo "RESULT dns.udp.qps.one_process lanha=$(num "$L1_UQ") dnsmasq=$(num "$D_UQ") ratio=$(ratio "$L1_UQ" "$D_UQ") unit=qps better=higher"
echo "RESULT dns.tcp.qps lanha=$(num "$L_TQ") nsd=$(num "$N_TQ") ratio=$(ratio "$L_TQ" "$N_TQ") unit=qps better=higher"
echo "RESULT dns.udp.p99_ms lanha=$L_UP99 nsd=$N_UP99 ratio=$(ratio "$L_UP99" "$N_UP99") unit=ms better=lower"
if [ "$RATE_QPS" -gt 0 ]; then
  LR_P99=$(median lanha-rate udp 3); NR_P99=$(median nsd-rate udp 3); DR_P99=$(median dnsmasq-rate udp 3)
  echo "udp at ${RATE_QPS} qps: p99 ms lanha $LR_P99 (answered $(median lanha-rate udp 1) qps), nsd $NR_P99 ($(median nsd-rate udp 1) qps), dnsmasq $DR_P99 ($(median dnsmasq-rate udp 1) qps); mean ms lanha $(median lanha-rate udp 4), nsd $(median nsd-rate udp 4), dnsmasq $(median dnsmasq-rate udp 4)"
  echo "RESULT dns.udp.p99_ms.at_rate lanha=$LR_P99 nsd=$NR_P99 ratio=$(ratio "$LR_P99" "$NR_P99") unit=ms better=lower rate=$RATE_QPS"
  echo "RESULT dns.udp.p99_ms.at_rate lanha=$LR_P99 dnsmasq=$DR_P99 ratio=$(ratio "$LR_P99" "$DR_P99") unit=ms better=lower rate=$RATE_QPS"
fi
echo "RESULT dns.udp.mean_ms lanha=$L_UMEAN nsd=$N_UMEAN ratio=$(ratio "$L_UMEAN" "$N_UMEAN") unit=ms better=lower"
echo "RESULT dns.udp.p99_over_mean lanha=$(shape "$L_UP99" "$L_UMEAN") nsd=$(shape "$N_UP99" "$N_UMEAN") ratio=$(ratio "$(shape "$L_UP99" "$L_UMEAN")" "$(shape "$N_UP99" "$N_UMEAN")") unit=x better=lower"
echo "RESULT dns.udp.runq_ms_per_s lanha=$(cpu_median lanha udp runq) nsd=$(cpu_median nsd udp runq) ratio=$(ratio "$(cpu_median lanha udp runq)" "$(cpu_median nsd udp runq)") unit=ms/s better=lower"
echo "RESULT dns.udp.gc_ms_per_s lanha=$L_GC_MS_S anchor=NA ratio=NA unit=ms/s better=lower"
echo "RESULT dns.udp.gc_pause_max_ms lanha=$L_GC_MAX anchor=NA ratio=NA unit=ms better=lower"
echo "RESULT dns.udp.loop_delay_p99_ms lanha=$L_LOOP_P99 anchor=NA ratio=NA unit=ms better=lower"
echo "RESULT dns.lost lanha=$(awk -v a="$L_ULOST" -v b="$L_TLOST" 'BEGIN{print (a == "NA" || b == "NA") ? "NA" : a + b}') anchor=NA ratio=NA unit=queries better=lower"
echo "RESULT dns.rss_mib.idle lanha=$(mib "$L_IDLE") dnsmasq=$(mib "$D_IDLE") ratio=$(ratio "$(mib "$L_IDLE")" "$(mib "$D_IDLE")") unit=MiB better=lower"
echo "RESULT dns.rss_mib.load lanha=$(mib "$L_PEAK") dnsmasq=$(mib "$D_PEAK") ratio=$(ratio "$(mib "$L_PEAK")" "$(mib "$D_PEAK")") unit=MiB better=lower"
echo "RESULT dns.rss_mib.load lanha=$(mib "$L_PEAK") nsd=$(mib "$N_PEAK") ratio=$(ratio "$(mib "$L_PEAK")" "$(mib "$N_PEAK")") unit=MiB better=lower"
fi # AUTH
kill "$SAMPLER" 2>/dev/null || true

# --- forwarding ----------------------------------------------------------------------------------
[ "$FORWARD" = 1 ] || exit 0
if [ $NSD_OK != 1 ]; then
  echo "forwarding part skipped: nsd (the authoritative upstream) did not start"
  for f in hit_qps miss_p99_ms rss_mib; do echo "RESULT dns.forward.$f lanha=NA dnsmasq=NA ratio=NA unit=NA better=NA"; done
  exit 1
fi
cat > "$TMP/flanha.yaml" <<YAML
node: { name: bench-fwd, role: server, address: 127.0.0.1, stateDir: $TMP/fstate, controlSocket: $TMP/flanha.sock, logLevel: warn }
dns:
  port: $P_FLANHA
  listen: [127.0.0.1]
  forward: { upstreams: ["127.0.0.1:$P_NSD"], allow: [127.0.0.0/8] }
${FWORKERS:+  workers: $FWORKERS}
YAML
# Inside lanha (TRACE=1, the default with the capture): its processes trace each miss's four steps,
# their collections and their run-queue wait (services/dns/miss-trace.ts), joined with the capture.
TRACE_DIR=""
if [ "${STAGES:-1}" = 1 ] && [ "${TRACE:-1}" = 1 ]; then TRACE_DIR=$TMP/trace; mkdir -p "$TRACE_DIR"; fi
# shellcheck disable=SC2086
LANHA_DNS_MISS_TRACE=$TRACE_DIR node $NODE_FLAGS dist/bin/lanctl.js serve --config "$TMP/flanha.yaml" > "$TMP/flanha.log" 2>&1 & PIDS+=($!); FL_PID=$!
dnsmasq -k --conf-file=/dev/null --port="$P_FDNSMASQ" --listen-address=127.0.0.1 --bind-interfaces --no-resolv --no-hosts \
  --server="127.0.0.1#$P_NSD" --pid-file="$TMP/fdnsmasq.pid" --user=root --cache-size=10000 > "$TMP/fdnsmasq.out" 2>&1 & PIDS+=($!); FD_PID=$!
cat > "$TMP/unbound.conf" <<CONF
server:
  interface: 127.0.0.1@$P_FUNBOUND
  port: $P_FUNBOUND
  num-threads: 1
  do-daemonize: no
  chroot: ""
  username: ""
  directory: "$TMP"
  pidfile: "$TMP/unbound.pid"
  use-syslog: no
  logfile: "$TMP/unbound.log"
  verbosity: 0
  do-ip6: no
  module-config: "iterator"
  do-not-query-localhost: no
  local-zone: "test." nodefault
  access-control: 127.0.0.0/8 allow
  ratelimit: 0
  ip-ratelimit: 0
remote-control:
  control-enable: no
forward-zone:
  name: "."
  forward-addr: 127.0.0.1@$P_NSD
CONF
FU_OK=0
if command -v unbound >/dev/null; then unbound -d -c "$TMP/unbound.conf" > "$TMP/unbound.out" 2>&1 & PIDS+=($!); FU_PID=$!; FU_OK=1; fi
fanswers() { answers "$1" www.fwd.test 192.0.2.80; }
fanswers "$P_FLANHA" || { echo "lanha (forwarding) did not answer; log:"; cat "$TMP/flanha.log"; exit 1; }
FD_OK=1; fanswers "$P_FDNSMASQ" || { echo "dnsmasq (forwarding) did not start: $(cat "$TMP/fdnsmasq.out")"; FD_OK=0; }
[ $FU_OK = 1 ] && { fanswers "$P_FUNBOUND" || { echo "unbound did not start: $(cat "$TMP/unbound.out")"; FU_OK=0; }; }

# Correctness: the same records as the upstream, TTLs counting down, NXDOMAIN cached with the SOA.
CHECKS=ok
records() { dig +time=2 +tries=1 -p "$1" @127.0.0.1 "$2" "$3" +noall +answer +authority 2>/dev/null | awk '{$2=""; print tolower($0)}' | sort; }
ttl_of() { dig +time=2 +tries=1 -p "$1" @127.0.0.1 "$2" "$3" +noall +answer +authority 2>/dev/null | awk 'NR==1{print $2}'; }
for q in "a1.h.fwd.test A" "www.fwd.test AAAA" "www.fwd.test MX" "nope.fwd.test A" "fwd.test SOA"; do
  # shellcheck disable=SC2086
  if [ "$(records "$P_FLANHA" $q)" != "$(records "$P_NSD" $q)" ]; then CHECKS=failed; echo "CHECK FAILED: lanha's answer to $q differs from nsd's:"; records "$P_FLANHA" $q; records "$P_NSD" $q; fi
done
t1=$(ttl_of "$P_FLANHA" www.fwd.test A); n1=$(ttl_of "$P_FLANHA" nope.fwd.test A); sleep 2.2
t2=$(ttl_of "$P_FLANHA" www.fwd.test A); n2=$(ttl_of "$P_FLANHA" nope.fwd.test A)
[ "${t2:-0}" -lt "${t1:-0}" ] || { CHECKS=failed; echo "CHECK FAILED: cached TTL did not count down ($t1 -> $t2)"; }
[ "${n2:-0}" -lt "${n1:-0}" ] && [ "${n1:-99}" -le 60 ] || { CHECKS=failed; echo "CHECK FAILED: NXDOMAIN SOA TTL $n1 -> $n2 (want <= 60, counting down)"; }
[ "$(dig +time=2 +tries=1 -p "$P_FLANHA" @127.0.0.1 nope.fwd.test A 2>/dev/null | grep -c 'status: NXDOMAIN')" = 1 ] || { CHECKS=failed; echo "CHECK FAILED: no NXDOMAIN"; }
echo "forwarding checks (answers equal nsd's, TTL countdown, NXDOMAIN cached with SOA TTL <= 60): $CHECKS"

# Hits: 500 names, warmed once through each forwarder, then the same dnsperf load as above.
awk 'BEGIN{ for (i = 1; i <= 500; i++) printf "n%03d.h.fwd.test A\n", i }' > "$TMP/hits.txt"
warm() { timeout 60 dnsperf -s 127.0.0.1 -p "$1" -d "$TMP/hits.txt" -n 1 -c 1 -q 20 -t 2 > /dev/null 2>&1 || true; }
warm "$P_FLANHA"; [ $FD_OK = 1 ] && warm "$P_FDNSMASQ"; [ $FU_OK = 1 ] && warm "$P_FUNBOUND"
# Misses: unique names (never asked before, by anyone) at MISS_QPS for DURATION.
misses() { awk -v n=$((MISS_QPS * DURATION + 1000)) -v p="$1" 'BEGIN{ for (i = 1; i <= n; i++) printf "%s%06d.m.fwd.test A\n", p, i }' > "$TMP/miss-$1.txt"; }
echo "forwarding: hits ${DURATION}s x ${RUNS} (500 warm names, ${THREADS} threads, ${CLIENTS} clients, ${OUTSTANDING} outstanding); misses ${MISS_QPS} qps of unique names for ${DURATION}s"
# Fairness: each run starts after SETTLE s (a forwarder still draining the previous miss flood, or
# the upstream still busy with it, would slow whoever runs next), and the order of the three
# forwarders turns round by round (lanha first, then dnsmasq first, then unbound first).
SETTLE=${SETTLE:-2}
CAPTURE=""
if [ "${STAGES:-1}" = 1 ]; then
  if command -v tcpdump >/dev/null; then CAPTURE=tcpdump; elif command -v dumpcap >/dev/null; then CAPTURE=dumpcap; fi
  [ -n "$CAPTURE" ] || echo "miss stages not measured: neither tcpdump nor dumpcap is installed (bench/packages/dns.txt lists tcpdump)"
fi
captured() { # NAME PORT TRACE_DIR COMMAND...: runs COMMAND under a loopback capture of PORT and the upstream's, appends the stages to $TMP/NAME.stages
  local name=$1 port=$2 trace=$3 cap=$TMP/cap.pcap pid=""
  shift 3
  rm -f "$cap"
  case $CAPTURE in
    tcpdump) tcpdump -i lo -U -Z root -s 256 -B 16384 -w "$cap" "udp and (port $port or port $P_NSD)" > /dev/null 2>&1 & pid=$! ;;
    dumpcap) dumpcap -q -P -i lo -s 256 -B 16 -f "udp and (port $port or port $P_NSD)" -w "$cap" > /dev/null 2>&1 & pid=$! ;;
  esac
  if [ -n "$pid" ]; then
    PIDS+=("$pid")
    for _ in $(seq 1 30); do [ -s "$cap" ] && break; sleep 0.1; done
    sleep 0.3
  fi
  "$@"
  if [ -n "$pid" ]; then
    kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
    node dist/bench/dns-stages.js "$cap" "$port" "$P_NSD" $trace >> "$TMP/$name.stages"
    rm -f "$cap"
  fi
}
hit_run() { # lanha|dnsmasq|unbound
  sleep "$SETTLE"
  case $1 in
    lanha) PARTS_PID=$FL_PID CPU_PID=$FL_PID once flanha-hit "$P_FLANHA" udp "$TMP/hits.txt" ;;
    dnsmasq) [ $FD_OK = 1 ] && CPU_PID=$FD_PID once fdnsmasq-hit "$P_FDNSMASQ" udp "$TMP/hits.txt" ;;
    unbound) [ $FU_OK = 1 ] && CPU_PID=$FU_PID once funbound-hit "$P_FUNBOUND" udp "$TMP/hits.txt" ;;
  esac
  return 0
}
fcounters() { # the forwarding lanha's shed and queue counters: busy overload stood>=5 20 50 100 (ms)
  node dist/bin/lanctl.js status --json --socket "$TMP/flanha.sock" 2>/dev/null | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const c=JSON.parse(s).services.dns.counters;console.log(["dns.forward.busy","dns.forward.overload",...[5,20,50,100].map((m)=>`dns.udp.queue_stood.${m}ms`)].map((k)=>c[k]??0).join(" "))})' || echo "0 0 0 0 0 0"
}
miss_run() { # lanha|dnsmasq|unbound ROUND
  sleep "$SETTLE"
  case $1 in
    lanha)
      misses "l$2"; node dist/bench/pauses.js snap "$TMP/flanha.sock" "$TMP/fpauses"; before=$(fcounters); PARTS_PID=$FL_PID CPU_PID=$FL_PID captured flanha "$P_FLANHA" "$TRACE_DIR" once flanha-miss "$P_FLANHA" udp "$TMP/miss-l$2.txt" -Q "$MISS_QPS" -c 4 -q 1000; node dist/bench/pauses.js snap "$TMP/flanha.sock" "$TMP/fpauses"
      echo "lanha miss run $2: $(grep -c '^> SERVFAIL' "$TMP/out" || true) SERVFAIL answers; p50 $(awk -v n="$(wc -l < "$TMP/lat")" 'NR==int(n*0.5)+1{printf "%.3f ms",$1*1000; exit}' "$TMP/lat"), p99 of the NOERROR answers $(grep '^> NOERROR' "$TMP/out" | awk '{print $NF}' | sort -g | awk '{v[NR]=$1} END{if (NR) printf "%.3f ms", v[int(NR*0.99)+1]*1000; else print "NA"}'); in this run: busy, overload, queues stood >= 5/20/50/100 ms: $(echo "$before $(fcounters)" | awk '{printf "%d, %d, %d/%d/%d/%d", $7-$1, $8-$2, $9-$3, $10-$4, $11-$5, $12-$6}')" ;;
    dnsmasq) [ $FD_OK = 1 ] && { misses "d$2"; CPU_PID=$FD_PID captured fdnsmasq "$P_FDNSMASQ" "" once fdnsmasq-miss "$P_FDNSMASQ" udp "$TMP/miss-d$2.txt" -Q "$MISS_QPS" -c 4 -q 1000; } ;;
    unbound) [ $FU_OK = 1 ] && { misses "u$2"; CPU_PID=$FU_PID captured funbound "$P_FUNBOUND" "" once funbound-miss "$P_FUNBOUND" udp "$TMP/miss-u$2.txt" -Q "$MISS_QPS" -c 4 -q 1000; } ;;
  esac
  return 0
}
ORDER=(lanha dnsmasq unbound)
for i in $(seq 1 "$RUNS"); do
  k=$(( (i - 1) % 3 )); round=("${ORDER[@]:k}" "${ORDER[@]:0:k}")
  for f in "${round[@]}"; do hit_run "$f"; done
  for f in "${round[@]}"; do miss_run "$f" "$i"; done
done
kill -0 "$FL_PID" 2>/dev/null || { echo "lanha (forwarding) died during the benchmark"; exit 1; }
FL_RSS=$(rss_kib "$FL_PID"); FD_RSS=NA; FU_RSS=NA
[ $FD_OK = 1 ] && FD_RSS=$(rss_kib "$FD_PID"); [ $FU_OK = 1 ] && FU_RSS=$(rss_kib "$FU_PID")
FL_HQ=$(median flanha-hit udp 1); FD_HQ=$(median fdnsmasq-hit udp 1); FU_HQ=$(median funbound-hit udp 1)
FL_MP=$(median flanha-miss udp 3); FD_MP=$(median fdnsmasq-miss udp 3); FU_MP=$(median funbound-miss udp 3)
FL_ML=$(median flanha-miss udp 2); FD_ML=$(median fdnsmasq-miss udp 2); FU_ML=$(median funbound-miss udp 2)
node dist/bin/lanctl.js status --json --socket "$TMP/flanha.sock" 2>/dev/null | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const d=JSON.parse(s).services.dns;const c=d.counters;console.log("lanha forwarding cache:",JSON.stringify(d.forwardCache),"hits",c["dns.forward.cache_hit"]??0,"misses",c["dns.forward.cache_miss"]??0,"overload",c["dns.forward.overload"]??0,"busy",c["dns.forward.busy"]??0,"queues stood >= 5/20/50/100 ms",[5,20,50,100].map((m)=>c[`dns.udp.queue_stood.${m}ms`]??0).join("/"),"servfail",c["dns.forward.servfail"]??0,"upstream wait mean (send to reply read, ms)",((c["dns.forward.upstream_wait_us"]??0)/1000/Math.max(1,c["dns.forward.upstream_replies"]??0)).toFixed(3))})' || true
echo "lanha (forwarding) pauses during its miss runs ($((RUNS * DURATION)) s; loop delay: how late its event loop ran, the queue's wait it cannot see):"
node dist/bench/pauses.js sum "$TMP/fpauses" $((RUNS * DURATION)) || true
node dist/bin/lanctl.js status --json --socket "$TMP/flanha.sock" 2>/dev/null \
  | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const m=JSON.parse(s).memory;if(m)console.log("lanha forwarding processes after the runs (MiB):",m.processes.map(p=>`${p.role} rss ${p.rssMiB} heap ${p.heapUsedMiB}/${p.heapTotalMiB} external ${p.externalMiB}`).join("; "))})' || true
stage() { # NAME KEY -> the median over the runs of KEY in NAME's STAGES lines
  [ -s "$TMP/$1.stages" ] || { echo NA; return; }
  tr ' ' '\n' < "$TMP/$1.stages" | awk -F= -v k="$2" '$1 == k && $2 != "NA" {print $2}' | sort -g | awk '{v[NR]=$1} END{if (NR) print v[int((NR+1)/2)]; else print "NA"}'
}
if [ -n "$CAPTURE" ]; then
  echo "where the misses' time went (loopback capture, ms, medians over the runs of each run's p50 / p99; own = in + out, the forwarder's part):"
  printf '%-10s %17s %17s %17s %17s %17s %10s\n' forwarder total in upstream out own shed_p99
  for f in flanha fdnsmasq funbound; do
    printf '%-10s %17s %17s %17s %17s %17s %10s\n' "${f#f}" "$(stage $f total_p50) / $(stage $f total_p99)" "$(stage $f in_p50) / $(stage $f in_p99)" \
      "$(stage $f up_p50) / $(stage $f up_p99)" "$(stage $f out_p50) / $(stage $f out_p99)" "$(stage $f own_p50) / $(stage $f own_p99)" "$(stage $f other_p99)"
  done
  if [ -n "$TRACE_DIR" ]; then
    echo "inside lanha (its own trace joined with the capture; ms, medians over the runs): the query's wait in the socket queue before lanha"
    echo "read it (qwait), its work up to the upstream query (js in), the upstream reply's wait (rwait), its work up to the answer (js out);"
    echo "clock skew capture - lanha $(stage flanha skew_us) us, $(stage flanha joined) misses joined in the median run"
    printf '%-8s %17s %17s %17s %17s\n' p50/p99 qwait "js in" rwait "js out"
    printf '%-8s %17s %17s %17s %17s\n' lanha "$(stage flanha qwait_p50) / $(stage flanha qwait_p99)" "$(stage flanha jsin_p50) / $(stage flanha jsin_p99)" \
      "$(stage flanha rwait_p50) / $(stage flanha rwait_p99)" "$(stage flanha jsout_p50) / $(stage flanha jsout_p99)"
    echo "the slowest 1 % by own part (mean ms each): own $(stage flanha slow_own) = qwait $(stage flanha slow_qwait) + js in $(stage flanha slow_jsin) + rwait $(stage flanha slow_rwait) + js out $(stage flanha slow_jsout);"
    echo "  meanwhile lanha's answering process ran $(stage flanha slow_ran) ms (collecting $(stage flanha slow_gc) ms; $(stage flanha slow_in_gc) of them overlapped a collection) and waited for a core $(stage flanha slow_runq) ms"
    echo "  over the whole miss runs, per second: CPU $(stage flanha cpu_ms_per_s) ms, run-queue wait $(stage flanha runq_ms_per_s) ms, GC $(stage flanha gc_ms_per_s) ms"
    # Every queue that stood 20 ms or more while misses came, and what filled it (bench/dns-stalls.ts).
    echo "  queues that stood >= 20 ms during the miss runs, and what the process did meanwhile (ran, waited for a core, collected):"
    node dist/bench/dns-stalls.js "$TRACE_DIR" 20 | sed 's/^/    /'
  fi
fi
printf '\n%-10s %12s %14s %12s %10s\n' forwarder hit_qps miss_p99_ms miss_lost rss_mib
printf '%-10s %12s %14s %12s %10s\n' lanha "$FL_HQ" "$FL_MP" "$FL_ML" "$(mib "$FL_RSS")"
printf '%-10s %12s %14s %12s %10s\n' dnsmasq "$FD_HQ" "$FD_MP" "$FD_ML" "$(mib "$FD_RSS")"
printf '%-10s %12s %14s %12s %10s\n' unbound "$FU_HQ" "$FU_MP" "$FU_ML" "$(mib "$FU_RSS")"
echo
echo "RESULT dns.forward.hit_qps lanha=$(num "$FL_HQ") dnsmasq=$(num "$FD_HQ") ratio=$(ratio "$FL_HQ" "$FD_HQ") unit=qps better=higher"
echo "RESULT dns.forward.hit_qps lanha=$(num "$FL_HQ") unbound=$(num "$FU_HQ") ratio=$(ratio "$FL_HQ" "$FU_HQ") unit=qps better=higher"
echo "RESULT dns.forward.hit_cpu_us_per_query lanha=$(cpu_median flanha-hit udp) dnsmasq=$(cpu_median fdnsmasq-hit udp) ratio=$(ratio "$(cpu_median flanha-hit udp)" "$(cpu_median fdnsmasq-hit udp)") unit=us better=lower"
echo "RESULT dns.forward.hit_cpu_us_per_query lanha=$(cpu_median flanha-hit udp) unbound=$(cpu_median funbound-hit udp) ratio=$(ratio "$(cpu_median flanha-hit udp)" "$(cpu_median funbound-hit udp)") unit=us better=lower"
# CPU per answered miss (every thread of each forwarder over its miss runs; lanha's includes its miss
# trace's recording unless TRACE=0) and how long its threads waited for a core, per second of the run:
# what the machine allows each one at 4,000 misses a second.
for a in unbound dnsmasq; do
  echo "RESULT dns.forward.miss_cpu_us_per_query lanha=$(cpu_median flanha-miss udp) $a=$(cpu_median f$a-miss udp) ratio=$(ratio "$(cpu_median flanha-miss udp)" "$(cpu_median f$a-miss udp)") unit=us better=lower"
  echo "RESULT dns.forward.miss_runq_ms_per_s lanha=$(cpu_median flanha-miss udp runq) $a=$(cpu_median f$a-miss udp runq) ratio=$(ratio "$(cpu_median flanha-miss udp runq)" "$(cpu_median f$a-miss udp runq)") unit=ms better=lower"
done
# lanha's CPU per answered query by part (medians over the runs of each column): the answering
# process's main thread against what the daemon and V8's and libuv's helper threads add.
for m in hit miss; do
  f="$TMP/flanha-$m.udp.parts"
  [ -s "$f" ] || continue
  read -r pdm pdt pwm pwt < <(for c in 1 2 3 4; do awk -v c=$c '{print $c}' "$f" | sort -g | awk '{v[NR]=$1} END{printf "%s ", v[int((NR+1)/2)]}'; done; echo)
  echo "lanha CPU per $m by part (us, medians over the runs): worker main thread $pwm, worker other threads $pwt, daemon main thread $pdm, daemon other threads $pdt"
  for k in worker_main:$pwm worker_threads:$pwt daemon_main:$pdm daemon_threads:$pdt; do
    echo "RESULT dns.forward.${m}_cpu_us_part.${k%%:*} lanha=${k#*:} anchor=NA ratio=NA unit=us better=lower"
  done
done
echo "RESULT dns.forward.miss_p99_ms lanha=$FL_MP unbound=$FU_MP ratio=$(ratio "$FL_MP" "$FU_MP") unit=ms better=lower"
echo "RESULT dns.forward.miss_p99_ms lanha=$FL_MP dnsmasq=$FD_MP ratio=$(ratio "$FL_MP" "$FD_MP") unit=ms better=lower"
if [ -n "$CAPTURE" ]; then
  echo "RESULT dns.forward.miss_own_p99_ms lanha=$(stage flanha own_p99) unbound=$(stage funbound own_p99) ratio=$(ratio "$(stage flanha own_p99)" "$(stage funbound own_p99)") unit=ms better=lower"
  echo "RESULT dns.forward.miss_own_p99_ms lanha=$(stage flanha own_p99) dnsmasq=$(stage fdnsmasq own_p99) ratio=$(ratio "$(stage flanha own_p99)" "$(stage fdnsmasq own_p99)") unit=ms better=lower"
  # The breakdown per stage, p50 and p99, against each anchor in the same run: in (query in ->
  # upstream query out), up (the upstream), out (upstream reply in -> answer out).
  for k in in_p50 in_p99 up_p50 up_p99 out_p50 out_p99; do
    for a in unbound dnsmasq; do
      echo "RESULT dns.forward.miss_stage.${k}_ms lanha=$(stage flanha $k) $a=$(stage f$a $k) ratio=$(ratio "$(stage flanha $k)" "$(stage f$a $k)") unit=ms better=lower"
    done
  done
  if [ -n "$TRACE_DIR" ]; then
    for k in qwait_p50 qwait_p99 rwait_p50 rwait_p99 jsin_p50 jsin_p99 jsout_p50 jsout_p99 slow_own slow_gc slow_runq slow_ran; do
      echo "RESULT dns.forward.miss_inside.$k lanha=$(stage flanha $k) anchor=NA ratio=NA unit=ms better=lower"
    done
  fi
fi
echo "RESULT dns.forward.rss_mib lanha=$(mib "$FL_RSS") dnsmasq=$(mib "$FD_RSS") ratio=$(ratio "$(mib "$FL_RSS")" "$(mib "$FD_RSS")") unit=MiB better=lower"
echo "RESULT dns.forward.rss_mib lanha=$(mib "$FL_RSS") unbound=$(mib "$FU_RSS") ratio=$(ratio "$(mib "$FL_RSS")" "$(mib "$FU_RSS")") unit=MiB better=lower"
[ "$CHECKS" = ok ] || exit 1
