#!/usr/bin/env bash
# DNS benchmark: dnsperf against lanha, nsd and dnsmasq in one run, the same 1000-name zone for all
# (node001..node999.lan: A 10.20.x.y, AAAA fd00:20::n, PTR in 20.10.in-addr.arpa; queries 40% A,
# 25% AAAA, 20% PTR, 15% NXDOMAIN). Everything on loopback, every load bounded in time, every server
# started here with its own config and stopped by PID.
#
#   npm run bench:dns                      (builds first)
#   DURATION=10 RUNS=1 CLIENTS=8 THREADS=2 OUTSTANDING=100 bash bench/dns.sh
#
# Prints a table and, per figure, `RESULT <figure> lanha=<v> <anchor>=<v> ratio=<lanha/anchor> unit=<u> better=<...>`.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}; RUNS=${RUNS:-1}; THREADS=${THREADS:-2}; CLIENTS=${CLIENTS:-8}; OUTSTANDING=${OUTSTANDING:-100}
P_LANHA=${P_LANHA:-15353}; P_NSD=${P_NSD:-15354}; P_DNSMASQ=${P_DNSMASQ:-15355}; P_LANHA1=${P_LANHA1:-15356}
TMP=$(mktemp -d /tmp/lanha-bench-dns.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done; kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT

bash bench/anchors.sh dns || exit 2
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
node dist/bin/lanctl.js serve --config "$TMP/lanha1.yaml" > "$TMP/lanha1.log" 2>&1 & PIDS+=($!)
node dist/bin/lanctl.js serve --config "$TMP/lanha.yaml" > "$TMP/lanha.log" 2>&1 & PIDS+=($!); LANHA_PID=$!

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
CONF
NSD_OK=0; DNSMASQ_OK=0
if command -v nsd >/dev/null; then nsd -d -c "$TMP/nsd.conf" > "$TMP/nsd.out" 2>&1 & PIDS+=($!); NSD_OK=1; fi
if command -v dnsmasq >/dev/null; then
  dnsmasq -k --conf-file=/dev/null --port="$P_DNSMASQ" --listen-address=127.0.0.1 --bind-interfaces --no-resolv --no-hosts \
    --addn-hosts="$TMP/hosts" --local=/lan/ --local=/20.10.in-addr.arpa/ --pid-file="$TMP/dnsmasq.pid" --user=root \
    --cache-size=10000 > "$TMP/dnsmasq.out" 2>&1 & PIDS+=($!); DNSMASQ_OK=1
fi

answers() { # port -> true when node001.lan A is answered
  for _ in $(seq 1 50); do
    [ "$(dig +short +time=1 +tries=1 -p "$1" @127.0.0.1 node001.lan A 2>/dev/null)" = "10.20.0.11" ] && return 0
    sleep 0.2
  done
  return 1
}
answers "$P_LANHA" || { echo "lanha did not answer; log:"; cat "$TMP/lanha.log"; exit 1; }
answers "$P_LANHA1" || { echo "lanha (one process) did not answer; log:"; cat "$TMP/lanha1.log"; exit 1; }
[ $NSD_OK = 1 ] && { answers "$P_NSD" || { echo "nsd did not start: $(cat "$TMP/nsd.out")"; NSD_OK=0; }; }
[ $DNSMASQ_OK = 1 ] && { answers "$P_DNSMASQ" || { echo "dnsmasq did not start: $(cat "$TMP/dnsmasq.out")"; DNSMASQ_OK=0; }; }

# --- load ----------------------------------------------------------------------------------------
# The machine is shared: runs are interleaved (lanha, dnsmasq, nsd, lanha, ...) so a busy moment
# hits every server alike, and each figure is the median over RUNS.
once() { # NAME PORT MODE -> appends "qps lost p99_ms" to $TMP/NAME.MODE
  local name=$1 port=$2 mode=$3 qps lost p99 n
  timeout $((DURATION + 20)) dnsperf -m "$mode" -s 127.0.0.1 -p "$port" -d "$TMP/queries.txt" -l "$DURATION" \
    -T "$THREADS" -c "$CLIENTS" -q "$OUTSTANDING" -t 2 -v > "$TMP/out" 2>&1 || true
  qps=$(awk '/Queries per second/{print $4}' "$TMP/out")
  lost=$(awk '/Queries lost/{print $3}' "$TMP/out")
  grep '^> ' "$TMP/out" | awk '{print $NF}' | sort -g > "$TMP/lat" || true
  n=$(wc -l < "$TMP/lat")
  if [ "$n" -gt 0 ]; then p99=$(awk -v n="$n" 'NR==int(n*0.99)+1{printf "%.3f",$1*1000; exit}' "$TMP/lat"); else p99=NA; fi
  echo "${qps:-0} ${lost:-NA} ${p99}" >> "$TMP/$name.$mode"
}
median() { # NAME MODE COLUMN -> median of that column over the runs (lost: the largest)
  local f="$TMP/$1.$2"
  [ -s "$f" ] || { echo NA; return; }
  if [ "$3" = 2 ]; then awk '{print $2}' "$f" | sort -g | tail -1; return; fi
  awk -v c="$3" '{print $c}' "$f" | sort -g | awk '{v[NR]=$1} END{print v[int((NR+1)/2)]}'
}

echo "dnsperf: ${DURATION}s x ${RUNS} run(s), ${THREADS} threads, ${CLIENTS} clients, ${OUTSTANDING} outstanding; 20000 queries (A/AAAA/PTR/NXDOMAIN)"
for i in $(seq 1 "$RUNS"); do
  once lanha "$P_LANHA" udp
  once lanha1 "$P_LANHA1" udp
  [ $DNSMASQ_OK = 1 ] && once dnsmasq "$P_DNSMASQ" udp
  [ $NSD_OK = 1 ] && once nsd "$P_NSD" udp
  once lanha "$P_LANHA" tcp
  [ $NSD_OK = 1 ] && once nsd "$P_NSD" tcp
done
L_UQ=$(median lanha udp 1); L_ULOST=$(median lanha udp 2); L_UP99=$(median lanha udp 3)
L_TQ=$(median lanha tcp 1); L_TLOST=$(median lanha tcp 2); L_TP99=$(median lanha tcp 3)
N_UQ=$(median nsd udp 1); N_UP99=$(median nsd udp 3); N_TQ=$(median nsd tcp 1); N_TP99=$(median nsd tcp 3)
D_UQ=$(median dnsmasq udp 1); D_UP99=$(median dnsmasq udp 3)
L1_UQ=$(median lanha1 udp 1); L1_UP99=$(median lanha1 udp 3)
kill -0 "$LANHA_PID" 2>/dev/null || { echo "lanha died during the benchmark"; exit 1; }

printf '\n%-10s %12s %12s %12s %12s\n' server udp_qps udp_p99_ms tcp_qps tcp_p99_ms
printf '%-10s %12s %12s %12s %12s\n' lanha "$L_UQ" "$L_UP99" "$L_TQ" "$L_TP99"
printf '%-10s %12s %12s %12s %12s\n' lanha-1p "$L1_UQ" "$L1_UP99" - -
printf '%-10s %12s %12s %12s %12s\n' nsd "$N_UQ" "$N_UP99" "$N_TQ" "$N_TP99"
printf '%-10s %12s %12s %12s %12s\n' dnsmasq "$D_UQ" "$D_UP99" - -
echo "lanha lost: udp $L_ULOST, tcp $L_TLOST queries"
echo

ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a == "NA" || b == "NA" || b + 0 == 0) print "NA"; else printf "%.2f", a / b }'; }
num() { awk -v a="$1" 'BEGIN{ if (a == "NA") print "NA"; else printf "%.0f", a }'; }
echo "RESULT dns.udp.qps lanha=$(num "$L_UQ") dnsmasq=$(num "$D_UQ") ratio=$(ratio "$L_UQ" "$D_UQ") unit=qps better=higher"
echo "RESULT dns.udp.qps lanha=$(num "$L_UQ") nsd=$(num "$N_UQ") ratio=$(ratio "$L_UQ" "$N_UQ") unit=qps better=higher"
echo "RESULT dns.udp.qps.one_process lanha=$(num "$L1_UQ") dnsmasq=$(num "$D_UQ") ratio=$(ratio "$L1_UQ" "$D_UQ") unit=qps better=higher"
echo "RESULT dns.tcp.qps lanha=$(num "$L_TQ") nsd=$(num "$N_TQ") ratio=$(ratio "$L_TQ" "$N_TQ") unit=qps better=higher"
echo "RESULT dns.udp.p99_ms lanha=$L_UP99 nsd=$N_UP99 ratio=$(ratio "$L_UP99" "$N_UP99") unit=ms better=lower"
echo "RESULT dns.lost lanha=$(awk -v a="$L_ULOST" -v b="$L_TLOST" 'BEGIN{print (a == "NA" || b == "NA") ? "NA" : a + b}') anchor=NA ratio=NA unit=queries better=lower"
