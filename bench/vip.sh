#!/usr/bin/env bash
# VIP failover benchmark: lanha against keepalived in one run (npm run bench:vip). Not a test.
# Uses the shared anchor scripts (vip-lab.sh, vip-failover.sh, vip-probe.mjs): a bridge lab with nodes
# a and b and a client c, a 10 ms UDP prober to the VIP from c, and the master disturbed by each
# scenario (kill9, crash, term; see vip-failover.sh). keepalived runs as the script configures it
# (VRRP, advert_int ADVERTS, each its own anchor line); lanha runs as a real cluster: lan-a in netns a,
# lan-b in b, the witness in the client netns c (a compute node, as HA.md allows), fast mode, 2 s
# lifetime. Then a planned failover (lanctl failover) is measured for lanha alone (keepalived has none).
# Everything runs in namespaces named $PREFIX-* (default lhvb), removed on exit; every process is
# started here and stopped by PID. Env: SCENARIOS ("kill9 crash"), REPEAT (3), ADVERTS ("1 0.1"; empty: lanha only),
# FAILOVERS (5), KEEP_LOGS (a directory: the daemons' logs and configs are copied there at the end),
# FAILOVER_BUDGET (empty: lanha's default timers, those of the least budget that rides out the
# default 100 ms pauses, 480 ms; or a cluster.failoverBudget to set), ELECTION_TIMEOUT (or the
# timers by hand: cluster.electionTimeout, heartbeat 100 ms), SHARED_BENCH (default ../shared/bench
# next to the repo).
set -uo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${SHARED_BENCH:-$REPO/../shared/bench}
export PREFIX=${PREFIX:-lhvb}
P=$PREFIX
SCENARIOS=${SCENARIOS:-kill9 crash}; export REPEAT=${REPEAT:-3}; ADVERTS=${ADVERTS-1 0.1}; FAILOVERS=${FAILOVERS:-5}
FAILOVER_BUDGET=${FAILOVER_BUDGET:-}; ELECTION_TIMEOUT=${ELECTION_TIMEOUT:-}
VIP=10.98.0.100
LANCTL="$REPO/dist/bin/lanctl.js"
D=$(mktemp -d)
[ -f "$SHARED/vip-failover.sh" ] || { echo "vip-failover.sh not found in $SHARED (set SHARED_BENCH)"; exit 1; }
[ -f "$LANCTL" ] || { echo "build first: npm run build"; exit 1; }
[ "$(id -u)" = 0 ] || { echo "needs root (network namespaces)"; exit 1; }
bash "$REPO/bench/anchors.sh" vip || exit 2

stop_pidfile() { [ -f "$1" ] && { kill "$(cat "$1")" 2>/dev/null; sleep 0.3; kill -9 "$(cat "$1")" 2>/dev/null; rm -f "$1"; }; return 0; }
cleanup() {
  for f in "$D"/*.pid; do [ -e "$f" ] && stop_pidfile "$f"; done
  if [ -n "${KEEP_LOGS:-}" ]; then mkdir -p "$KEEP_LOGS" && cp "$D"/*.log "$D"/*.out "$D"/*.yaml "$KEEP_LOGS"/ 2>/dev/null; echo "logs kept in $KEEP_LOGS"; fi
  bash "$SHARED/vip-lab.sh" down >/dev/null 2>&1
  rm -rf "$D"
}
trap cleanup EXIT
bash "$SHARED/vip-lab.sh" down >/dev/null 2>&1
bash "$SHARED/vip-lab.sh" up >/dev/null || { echo "vip lab did not come up"; exit 1; }

# ---- lanha configs: lan-a (netns a), lan-b (netns b), witness (netns c) ----
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$D/cluster.key"; chmod 600 "$D/cluster.key"
members='    - { name: lan-a, address: 10.98.0.1, port: 7400 }
    - { name: lan-b, address: 10.98.0.2, port: 7400 }
    - { name: witness, address: 10.98.0.10, port: 7400, role: witness }'
for n in a b w; do
  case $n in a) name=lan-a addr=10.98.0.1 role=server;; b) name=lan-b addr=10.98.0.2 role=server;; w) name=witness addr=10.98.0.10 role=witness;; esac
  {
    echo "node: { name: $name, role: $role, address: $addr, stateDir: $D/state-$n, controlSocket: $D/$n.sock, logLevel: info }"
    printf 'cluster:\n  id: vip-bench\n  keyFile: %s\n  members:\n%s\n' "$D/cluster.key" "$members"
    [ -n "$FAILOVER_BUDGET" ] && echo "  failoverBudget: $FAILOVER_BUDGET"
    [ -n "$ELECTION_TIMEOUT" ] && echo "  electionTimeout: $ELECTION_TIMEOUT"
    [ $role = server ] && echo "vip: { address: $VIP/24, interface: $P-${n}0, mode: fast, lifetimeSeconds: 2 }"
  } > "$D/$n.yaml"
done
# START_A: fresh state, the witness (in c) and lan-a; waits until lan-a has held the VIP for a second; prints its PID.
cat > "$D/start-a.sh" <<EOF
stop() { [ -f "\$1" ] && { kill "\$(cat "\$1")" 2>/dev/null; sleep 0.3; kill -9 "\$(cat "\$1")" 2>/dev/null; rm -f "\$1"; }; return 0; }
stop "$D/w.pid"
# The previous runs' lan-a and lan-b: a run whose master was not the node the script expected (a
# leadership change under load) leaves one running, and a new lan-a would find its port taken.
stop "$D/run-a.pid"; stop "$D/run-b.pid"
rm -rf "$D"/state-*
ip netns exec $P-c node "$LANCTL" serve --config "$D/w.yaml" >> "$D/w.log" 2>&1 &
echo \$! > "$D/w.pid"
ip netns exec $P-a node "$LANCTL" serve --config "$D/a.yaml" >> "$D/a.log" 2>&1 &
pa=\$!
echo \$pa > "$D/run-a.pid"
# Held for a second in a row (10 samples): on a loaded machine a fresh leader's short lease can lapse
# and the VIP come back 10-20 ms later, and the scenario script skips a round whose master does not
# hold the VIP at the moment it looks.
steady=0
for i in \$(seq 1 200); do
  if ip -n $P-a -4 addr show | grep -qF " $VIP/"; then steady=\$((steady + 1)); else steady=0; fi
  [ \$steady -ge 10 ] && break; sleep 0.1
done
echo "PID \$pa"
EOF
cat > "$D/start-b.sh" <<EOF
ip netns exec $P-b node "$LANCTL" serve --config "$D/b.yaml" >> "$D/b.log" 2>&1 &
echo \$! > "$D/run-b.pid"
echo "PID \$!"
EOF

value() { # file metric label -> median value or NA
  awk -v m="$1" '$1=="RESULT" && $2==m { sub("value=", "", $4); print $4; f=1 } END { if (!f) print "NA" }' "$2"
}
# The median of one field (gap_ms, takeover_ms) over a scenario's STEP lines that measured something:
# a round where b never answered (takeover_ms=-1) or the prober heard nothing at all (replies=0)
# gives gap_ms=0 in the scenario script's own median. Lower middle, as that script takes it.
step_median() { # file scenario field -> median or NA
  awk -v sc="$2" -v f="$3" '$1=="STEP" && $2==sc && $3 ~ /^run=/ && $4 != "takeover_ms=-1" && $0 !~ / replies=0( |$)/ {
      for (i = 4; i <= NF; i++) if (index($i, f "=") == 1) { v[++n] = substr($i, length(f) + 2) + 0 } }
    END { if (!n) { print "NA"; exit } for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
      print v[int((n + 1) / 2)] }' "$1"
}
fig_value() { # file scenario metric -> what the summary reports for it
  case $3 in gap_ms|takeover_ms) step_median "$1" "$2" "$3" ;; *) value "vip.${2}_$3" "$1" ;; esac
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a=="NA" || b=="NA" || b+0==0) print "NA"; else printf "%.2f\n", a/b }'; }

# The timers as the daemons run them (config check prints them): the default ones unless set above.
timers=$(node "$LANCTL" config check "$D/a.yaml" 2>&1 | sed -n 's/^ *timers//p' | head -1)
echo "== lanha (fast mode, lifetime 2 s, timers$timers): $SCENARIOS x $REPEAT"
KIND=custom LABEL=lanha START_A="bash $D/start-a.sh" START_B="bash $D/start-b.sh" \
  bash "$SHARED/vip-failover.sh" $SCENARIOS | tee "$D/lanha.out" | grep -E '^(STEP|RESULT)'
for f in w run-a run-b; do stop_pidfile "$D/$f.pid"; done
for adv in $ADVERTS; do
  ver=2; awk -v a="$adv" 'BEGIN { exit !(a < 1) }' && ver=3
  echo "== keepalived (VRRPv$ver, advert_int $adv): $SCENARIOS x $REPEAT"
  KIND=keepalived ADVERT=$adv VRRP_VERSION=$ver LABEL=keepalived-adv$adv bash "$SHARED/vip-failover.sh" $SCENARIOS \
    | tee "$D/keepalived-$adv.out" | grep -E '^(STEP|RESULT)'
done

# ---- planned failover, lanha only: lanctl failover on the leader while the prober runs ----
fo_gaps=(); fo_errs=()
# Where the scenario rounds' logs end: the breakdown below reads the crash takeovers before, the planned ones after.
crash_end_a=$(stat -c %s "$D/a.log" 2>/dev/null || echo 0); crash_end_b=$(stat -c %s "$D/b.log" 2>/dev/null || echo 0)
for n in a b; do ip netns exec $P-$n node "$SHARED/vip-probe.mjs" serve $n 9999 & echo $! > "$D/echo-$n.pid"; done
bash "$D/start-a.sh" | awk '/^PID/{print $2}' > "$D/a.pid"
bash "$D/start-b.sh" | awk '/^PID/{print $2}' > "$D/b.pid"
sleep 3
for i in $(seq 1 "$FAILOVERS"); do
  leader=$(for n in a b; do node "$LANCTL" vip status --json --socket "$D/$n.sock" 2>/dev/null | grep -q '"held": true' && echo $n; done | head -1)
  [ -n "$leader" ] || { echo "STEP failover run=$i no holder"; sleep 2; continue; }
  ip netns exec $P-c node "$SHARED/vip-probe.mjs" probe $VIP 9999 10 4000 > "$D/fo-probe" & ppid=$!
  sleep 1.5
  t_ev=$(date +%s%3N)
  out=$(node "$LANCTL" failover --json --socket "$D/$leader.sock" 2>&1); rc=$?
  wait $ppid
  # NA: the failover was refused (leadership moved meanwhile) or the prober heard nothing after it.
  gap=$(awk -v t="$t_ev" '$1=="R" { s=$2; if (s>=t-500) { if (last!="" && s-last>g) g=s-last; last=s; if (s>t) after=1 } } END { print (after ? g+0 : "NA") }' "$D/fo-probe")
  [ $rc = 0 ] || gap=NA
  # The gap lanctl failover printed (the new holder's parts plus the release) against the prober's.
  printed=$(echo "$out" | node -e 'let s="";process.stdin.on("data",(d)=>s+=d).on("end",()=>{try{const o=JSON.parse(s.slice(s.indexOf("{")));console.log(typeof o.gapMs==="number"?o.gapMs:"NA")}catch{console.log("NA")}})')
  err=NA; [ "$gap" != NA ] && [ "$printed" != NA ] && err=$(awk -v a="$printed" -v b="$gap" 'BEGIN { d=a-b; print (d<0?-d:d) }')
  echo "STEP failover run=$i from=$leader gap_ms=$gap printed_ms=$printed printed_error_ms=$err exit=$rc reported=$(echo "$out" | tr -d ' \n')"
  [ "$gap" = NA ] || fo_gaps+=("$gap")
  [ "$err" = NA ] || fo_errs+=("$err")
  sleep 1
done
fo_median=NA
fo_err_median=NA
[ ${#fo_errs[@]} -gt 0 ] && fo_err_median=$(printf '%s\n' "${fo_errs[@]}" | sort -g | awk '{v[NR]=$1} END { print v[int((NR+1)/2)] }')
[ ${#fo_gaps[@]} -gt 0 ] && fo_median=$(printf '%s\n' "${fo_gaps[@]}" | sort -g | awk '{v[NR]=$1} END { print v[int((NR+1)/2)] }')
for f in a b w echo-a echo-b; do stop_pidfile "$D/$f.pid"; done

echo
echo "== summary (median over the rounds of $REPEAT per scenario that measured something, STEP lines above; gap = longest silence the client saw; takeover = event -> first reply from b)"
# One RESULT line per figure. An NA (lanha's, keepalived's or the ratio) never stands alone: the line
# before it says why (DESIGN.md "Tests and benchmarks"), as bench:failover does.
result() { # figure lanha keepalived unit lanha-NA-reason keepalived-NA-reason
  local fig=$1 l=$2 k=$3 unit=$4
  [ "$l" = NA ] && echo "# $fig: lanha=NA: $5"
  [ "$k" = NA ] && echo "# $fig: keepalived=NA: $6"
  local r; r=$(ratio "$l" "$k")
  [ "$r" = NA ] && [ "$l" != NA ] && [ "$k" != NA ] && echo "# $fig: ratio=NA: keepalived's figure is 0 (lanha $l)"
  echo "RESULT $fig lanha=$l keepalived=$k ratio=$r unit=$unit better=lower"
}
no_round() { echo "no $1 round of '$2' completed (its STEP lines above say why)"; }
not_run="keepalived was not run (ADVERTS is empty)"
first_adv=${ADVERTS%% *}
for sc in $SCENARIOS; do
  for m in gap_ms takeover_ms both_hold; do
    l=$(fig_value "$D/lanha.out" "$sc" $m)
    unit=ms; [ $m = both_hold ] && unit=runs-median
    [ -n "$ADVERTS" ] || result "vip.$sc.$m" "$l" NA $unit "$(no_round lanha "$sc")" "$not_run"
    for adv in $ADVERTS; do
      k=$(fig_value "$D/keepalived-$adv.out" "$sc" $m)
      fig="vip.$sc.$m"; [ "$adv" = "$first_adv" ] || fig="$fig.advert$adv"
      result "$fig" "$l" "$k" $unit "$(no_round lanha "$sc")" "$(no_round "keepalived (advert_int $adv)" "$sc")"
    done
  done
done
# The headline, as before: kill -9's gap (vip.crash.gap_ms above is kill -9 + link down).
head_sc=kill9
k1=NA; [ -n "$ADVERTS" ] && k1=$(step_median "$D/keepalived-$first_adv.out" "$head_sc" gap_ms)
l1=$(step_median "$D/lanha.out" "$head_sc" gap_ms)
kr=$(no_round "keepalived (advert_int $first_adv)" "$head_sc"); [ -n "$ADVERTS" ] || kr=$not_run
result vip.gap_ms "$l1" "$k1" ms "$(no_round lanha "$head_sc")" "$kr"
result vip.failover.gap_ms "$fo_median" NA ms "no planned failover completed (FAILOVERS=$FAILOVERS; STEP failover lines above)" \
  "keepalived has no planned failover (no lanctl failover counterpart; a VRRP priority change is a different procedure)"
# How far the gap lanctl failover prints is from the silence the prober measured (|printed - measured|,
# median): the printed figure is what an operator reads, the prober what a client lived through.
result vip.failover.printed_error_ms "$fo_err_median" NA ms "no planned failover with both a printed gap and a prober gap (STEP failover lines above)" \
  "keepalived has no planned failover to print a gap for"

# Where lanha's gaps go: every new holder logs vip.takeover with the parts of its half of the gap
# (services/vip/takeover.ts): detection, pre-vote, vote, lease wait, ip addr, sockets bound, first
# GARP after a crash (trigger election), vote ... first GARP after lanctl failover (trigger transfer).
# Crash parts: in each scenario round lan-b is started afresh and the first election takeover it
# logs is the one after the kill (a round where it won before, a leadership change under load,
# shows in its STEP line as a takeover within milliseconds). Planned parts: every transfer takeover
# of the failover phase. A leader whose lease lapsed under load and came back takes the VIP again in
# the same term: counted as vip.reacquired, not as a takeover. keepalived
# has no such stages (VRRP has no election round, vote or lease: a backup takes the VIP when
# adverts stop for its master-down interval), so each of these lines says so before its NA.
node -e '
const fs = require("fs");
const by = { election: {}, transfer: {} };
let reacquired = 0;
const add = (into, o) => { for (const [k, v] of Object.entries({ ...o.parts, total: o.totalMs })) (into[k] ??= []).push(v); };
const [fa, fb, endA, endB] = process.argv.slice(1);
const read = (f) => fs.existsSync(f) ? fs.readFileSync(f) : Buffer.alloc(0);
const a = read(fa), b = read(fb);
const events = (buf) => buf.toString("utf8").split("\n").flatMap((line) => {
  if (!line.includes("\"vip.takeover\"") && !line.includes("\"daemon.ready\"")) return [];
  try { return [JSON.parse(line)]; } catch { return []; }
});
// The scenario rounds: lan-b started afresh each round; its first election takeover is the crash one.
let first = false;
for (const o of events(b.subarray(0, Number(endB)))) {
  if (o.event === "daemon.ready") { first = true; continue; }
  if (o.trigger === "re-acquire") { reacquired++; continue; }
  if (o.trigger === "election" && first) { add(by.election, o); first = false; }
}
for (const o of events(a.subarray(0, Number(endA)))) if (o.trigger === "re-acquire") reacquired++;
// The planned failovers.
for (const o of [...events(a.subarray(Number(endA))), ...events(b.subarray(Number(endB)))]) {
  if (o.trigger === "re-acquire") reacquired++;
  else if (o.trigger === "transfer") add(by.transfer, o);
}
const med = (a) => { const s = [...a].sort((x, y) => x - y); return s[Math.floor((s.length - 1) / 2)]; };
const order = ["detection", "pre-vote", "vote", "election", "lease wait", "ip addr", "sockets bound", "first GARP", "total"];
const rank = (k) => (order.indexOf(k) + 1) || order.length;
const noStage = "keepalived has no such stage (VRRP: no election round, vote or leader lease; a backup takes the VIP after its master-down interval)";
for (const [trigger, parts] of Object.entries(by)) {
  const fig = trigger === "election" ? "vip.crash.part_ms" : "vip.failover.part_ms";
  if (Object.keys(parts).length === 0) {
    console.log(`# ${fig}.total: lanha=NA: no new holder logged a vip.takeover with trigger ${trigger} (${trigger === "election" ? "no crash round completed" : "no planned failover completed"})`);
    console.log(`# ${fig}.total: keepalived=NA: ${noStage}`);
    console.log(`RESULT ${fig}.total lanha=NA keepalived=NA ratio=NA unit=ms better=lower`);
    continue;
  }
  for (const k of Object.keys(parts).sort((x, y) => rank(x) - rank(y))) {
    const name = `${fig}.${k.replace(/ /g, "_")}`;
    console.log(`# ${name}: keepalived=NA: ${noStage}`);
    console.log(`RESULT ${name} lanha=${med(parts[k])} keepalived=NA ratio=NA unit=ms better=lower n=${parts[k].length}`);
  }
}
console.log("# vip.reacquired: keepalived=NA: keepalived has no leader lease to lapse (a VRRP master keeps the VIP until it stops or hears a higher priority)");
console.log(`RESULT vip.reacquired lanha=${reacquired} keepalived=NA ratio=NA unit=count better=lower`);' "$D/a.log" "$D/b.log" "$crash_end_a" "$crash_end_b"
