// npm run bench:failover -- the failover fault suite (test/integ/failover-faults) as a benchmark,
// with keepalived in the same lab as the anchor: the lab (lan-a, lan-b, witness; udhcpc clients;
// DNS/NTP/TFTP/DHCP probes to the VIP every 50 ms; the VIP watched on both servers), ROUNDS rounds
// of every fault (default 10), and per fault and protocol the p50 and p99 of the longest silence a
// client saw, plus the totals the checkers count. keepalived (bench/keepalived-lab.ts: VRRPv3,
// advert_int 0.1, its own VIP on a second link of lan-a and lan-b) gets the faults that mean
// something for it right after lanha's round of the same fault; the VIP gap of both stacks is
// measured with the same UDP echo prober (every 20 ms, an echo responder behind each VIP that is
// killed, stopped and restarted with its stack's process) and two holders with the same sampler.
// Needs root (network namespaces). Every process is started here and stopped by PID.
// Env: ROUNDS (10), FAULTS (comma list of fault names, default all; EXTRA_FAULTS run only when named), FAULT_BUDGET (480ms, the least budget that rides out the default 100 ms pauses:
// cluster.failoverBudget, as bench:vip; empty for the default timers), FAULT_ELECTION_TIMEOUT
// (instead of a budget, e.g. 500ms), KEEPALIVED (1; 0 runs lanha alone). Ctrl-C or SIGTERM ends the
// run after the fault under way, with the lab taken down and the summary of what was measured.
//
// RESULT lines (DESIGN.md): failover.<fault>.gap_ms.<protocol> (p50) and .p99 for dns, ntp, tftp,
// dhcp (lanha only) and vip (the echo, lanha and keepalived); failover.<fault>.two_holder_ms (p50,
// .p99); failover.two_holder_ms (total over the faults both stacks ran), failover.lost_acked,
// failover.duplicates, failover.leader_gap_ms.kill_follower / .kill_witness (p50, .p99: the longest
// DNS silence on the VIP while a non-leader was killed and restarted; the leader keeps its quorum, so
// ideally 0), failover.leader_vip_releases.<same> (times the leader let the VIP go in those rounds,
// from its log) and failover.leader_vip_away_ms.<same> (sampled time the VIP was not on it),
// (FAULTS=...,idle_control adds failover.leader_gap_ms.none: the same figures over a round in which
// nothing is broken, the yardstick for what the machine's load alone costs the leader),
// failover.unconverged, failover.member_exits (a member that died by itself,
// named under its round and restarted), failover.failed_rounds (rounds that did not finish:
// counted, their logs kept, the bench goes on). Each NA has its reason on the line before it. Under
// each round: every lost or duplicate lease and every ACK that stated less than the lease time (a
// late commit), and then where the members' logs and the clients' ACKs of that round were copied.
import { spawnSync } from 'node:child_process';
import { Lab, labUnavailable, which } from '../test/support/netns.js';
import { FaultLab, PROTOCOLS, LEASE_S, type FaultOutcome } from '../test/integ/fault-lab.js';
import { FAULTS, EXTRA_FAULTS } from '../test/integ/faults.js';
import { faketimeLibrary } from '../test/support/faketime.js';
import { SAMPLE_EVERY_MS } from '../test/integ/vip-sampler.js';
import { KeepalivedLab, KEEPALIVED_FAULTS, LANHA_ECHO_PORT, ECHO_EVERY_MS, ADVERT_S, type KaOutcome } from './keepalived-lab.js';
import { percentile } from './stats.js';

const ROUNDS = Number(process.env['ROUNDS'] ?? 10);
const only = process.env['FAULTS']?.split(',');

/** Why keepalived has no figure for a fault of the suite that it does not run. */
const NOT_FOR_KEEPALIVED: Record<string, string> = {
  kill9_follower: "not run on keepalived: killing its backup moves nothing a client uses (its faults are the master's and the cut)",
  kill9_witness: 'keepalived has no witness',
  restart_all: 'not run on keepalived: it keeps no state that a restart of both nodes would have to recover',
  disk_full_leader: 'keepalived writes no state to a disk',
  clock_step_leader: 'not run on keepalived: it keeps no wall-clock-stamped state such as the lease expiries this fault checks',
  clock_ahead_new_leader: 'not run on keepalived: it keeps no wall-clock-stamped state such as the lease expiries this fault checks',
  cut_a_b_slow_witness: 'keepalived has no witness',
  idle_control: 'not run on keepalived: no fault (the yardstick for lanha\'s leader gap under the machine\'s load)',
};

/** One RESULT line; `keepalived` is a number or the reason it is NA (printed on the line before). */
function result(figure: string, lanha: number, keepalived: number | { na: string }, unit: string): void {
  let k = 'NA', ratio = 'NA';
  if (typeof keepalived === 'number' && !Number.isNaN(keepalived)) {
    k = String(keepalived);
    if (keepalived !== 0) ratio = (lanha / keepalived).toFixed(2);
    else process.stdout.write(`# ${figure}: ratio=NA: keepalived's figure is 0 (lanha ${lanha})\n`);
  } else {
    process.stdout.write(`# ${figure}: keepalived=NA: ${typeof keepalived === 'number' ? 'no keepalived round of this fault completed' : keepalived.na}\n`);
  }
  process.stdout.write(`RESULT ${figure} lanha=${lanha} keepalived=${k} ratio=${ratio} unit=${unit} better=lower\n`);
}

function keepalivedVersion(): string {
  // keepalived prints its version on stderr.
  const r = spawnSync('keepalived', ['--version'], { encoding: 'utf8', timeout: 10_000 });
  return `${r.stderr ?? ''}${r.stdout ?? ''}`.split('\n')[0]!.trim();
}

async function main(): Promise<number> {
  const missing = labUnavailable(['udhcpc', 'dig', 'nft', 'fallocate', 'arping']);
  if (missing !== null) {
    process.stderr.write(`bench:failover cannot run: ${missing}\n`);
    return 1;
  }
  // The leader's wall-clock step runs the servers under libfaketime (package faketime); without it that fault is left out, and said so.
  const faketimeLib = faketimeLibrary();
  if (faketimeLib === null) process.stderr.write('bench:failover: libfaketime not installed (apt-get install faketime): clock_step_leader and clock_ahead_new_leader left out\n');
  const clockFault = (name: string): boolean => name === 'clock_step_leader' || name === 'clock_ahead_new_leader';
  const faults = [...FAULTS.filter((f) => (only === undefined || only.includes(f.name)) && (!clockFault(f.name) || faketimeLib !== null)), ...EXTRA_FAULTS.filter((f) => only?.includes(f.name))];
  // Why keepalived is not run at all (then every keepalived figure is NA with this reason), or null.
  const noKeepalived = process.env['KEEPALIVED'] === '0' ? 'KEEPALIVED=0 was given (lanha alone)'
    : !which('keepalived') ? 'keepalived is not installed (npm run bench:failover installs it as root: bench/packages/failover.txt)' : null;
  const outcomes = new Map<string, FaultOutcome[]>();
  const kaOutcomes = new Map<string, KaOutcome[]>();
  /** lanha rounds that threw (per fault) and keepalived rounds that did. */
  const failed = new Map<string, number>();
  let kaFailed = 0;
  const lab = await Lab.create();
  let fl: FaultLab | undefined;
  let kl: KeepalivedLab | undefined;
  const startedAt = performance.now();
  let roundsRun = 0;
  try {
    const timers = process.env['FAULT_ELECTION_TIMEOUT'] !== undefined ? { electionTimeout: process.env['FAULT_ELECTION_TIMEOUT'] }
      : (process.env['FAULT_BUDGET'] ?? '480ms') === '' ? {} : { failoverBudget: process.env['FAULT_BUDGET'] ?? '480ms' };
    process.stdout.write(`timers: ${JSON.stringify(timers)} (${timers.failoverBudget ?? timers.electionTimeout ?? 'defaults'}), ${ROUNDS} rounds, faults: ${faults.map((f) => f.name).join(' ')}\n`);
    process.stdout.write(noKeepalived === null ? `keepalived: ${keepalivedVersion()}, VRRPv3 advert_int ${ADVERT_S} s; VIP gap of both stacks from a UDP echo probed every ${ECHO_EVERY_MS} ms\n` : `keepalived: not run: ${noKeepalived}\n`);
    fl = await FaultLab.create(lab, { ...timers, echo: { port: LANHA_ECHO_PORT, everyMs: ECHO_EVERY_MS }, ...(faketimeLib !== null && faults.some((f) => clockFault(f.name)) ? { faketimeLib } : {}) });
    if (noKeepalived === null) kl = await KeepalivedLab.create(lab, fl.c.servers, fl.c.client);
    // Ctrl-C (or SIGTERM) ends the run after the fault under way: the lab is taken down in finally
    // and the summary covers the rounds measured. A second one exits at once (the lab is then left).
    let stopping = false;
    const stop = (): void => {
      if (stopping) process.exit(130);
      stopping = true;
      process.stdout.write('stopping after this fault (again to exit at once, leaving the lab behind)\n');
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
    for (let round = 1; round <= ROUNDS && !stopping; round++) {
      roundsRun = round;
      for (const fault of faults) {
        if (stopping) break;
        const fromWall = Date.now();
        let o: FaultOutcome;
        try {
          o = await fl.runFault(fault.name, (roles) => fault.inject(fl!, roles));
        } catch (error) {
          // A round that did not finish (no steady leader, a takeover that never came) is counted and
          // its logs kept; the bench goes on with the next fault (which first waits for a steady leader).
          failed.set(fault.name, (failed.get(fault.name) ?? 0) + 1);
          process.stdout.write(`round ${round} ${fault.name}: did not finish: ${String(error)}\n  logs and ACKs: ${fl.dumpRound(`${fault.name}-round${round}-failed`)}\n`);
          continue;
        }
        // ACKs that stated less than the lease time: sent seconds after their log time (services/dhcp/README.md).
        const short = fl.acks().filter((a) => a.at >= fromWall && a.leaseS < LEASE_S);
        outcomes.set(fault.name, [...(outcomes.get(fault.name) ?? []), o]);
        const kept = fault.leaderGapName === undefined ? '' : `leader ${o.leaderHold.leader} let the VIP go ${o.leaderHold.releases.length} times, away in ${o.leaderHold.samplesAway} of ${o.leaderHold.samples} samples; `;
        process.stdout.write(`round ${round} ${fault.name}: ${PROTOCOLS.map((p) => `${p} ${o.gaps[p]} ms`).join(', ')}, vip (echo) ${o.echoGapMs} ms; ${kept}two holders ${o.twoHolderMs} ms; lost ${o.lostAcked.length} (daemons' audits: ${o.audits.map((a) => `${a.server} ${a.lost} of ${a.checked ?? '-'}`).join(', ')}); duplicates ${o.duplicates.length}; converged ${o.converged}; fault findings ${o.faultFindings.length}; ACKs shortened ${short.length}\n`);
        // What a checker found, so a failing round can be looked into without rerunning it.
        for (const line of [...o.exited.map((l) => `member exited on its own: ${l}`), ...o.faultFindings.map((l) => `fault finding: ${l}`), ...o.lostAcked.map((l) => `lost: ${l}`), ...o.duplicates.map((l) => `duplicate: ${l}`), ...short.map((a) => `shortened: ${a.client} ${a.ip} ${a.leaseS} s at ${a.at}`)]) process.stdout.write(`  ${line}\n`);
        if (o.exited.length > 0 || o.faultFindings.length > 0 || o.lostAcked.length > 0 || o.duplicates.length > 0 || short.length > 0) {
          // The members' logs and every client ACK of that round, to look into without a rerun (kept in the temp dir).
          const dir = fl.dumpRound(`${fault.name}-round${round}`);
          process.stdout.write(`  logs and ACKs: ${dir}\n`);
        }
        const kaFault = KEEPALIVED_FAULTS.find((f) => f.name === fault.name);
        if (kl !== undefined && kaFault !== undefined) {
          try {
            const k = await kl.runFault(kaFault);
            kaOutcomes.set(fault.name, [...(kaOutcomes.get(fault.name) ?? []), k]);
            process.stdout.write(`round ${round} ${fault.name} keepalived: vip (echo) ${k.gapMs} ms; two holders ${k.twoHolderMs} ms\n`);
          } catch (error) {
            // Not counted: the p50/p99 are over the rounds that completed (the count is in the summary).
            kaFailed++;
            process.stdout.write(`round ${round} ${fault.name} keepalived: not measured: ${String(error)}\n`);
          }
        }
      }
    }
  } finally {
    if (kl) await kl.close();
    if (fl) await fl.close();
    await lab.destroy();
  }
  process.stdout.write(`\n${roundsRun} of ${ROUNDS} rounds in ${Math.round((performance.now() - startedAt) / 1000)} s\n`);
  report(outcomes, kaOutcomes, noKeepalived);
  const failedRounds = [...failed.values()].reduce((a, b) => a + b, 0);
  for (const [fault, n] of failed) process.stdout.write(`# ${fault}: ${n} round(s) did not finish (see "did not finish" above); its p50/p99 are over the rounds that did\n`);
  result('failover.failed_rounds', failedRounds, noKeepalived === null ? kaFailed : { na: noKeepalived }, 'rounds');
  let twoHolder = 0, lost = 0, duplicates = 0;
  for (const list of outcomes.values()) for (const o of list) { twoHolder += o.twoHolderMs; lost += o.lostAcked.length; duplicates += o.duplicates.length; }
  const exits = [...outcomes.values()].flat().reduce((a, o) => a + o.exited.length, 0);
  return twoHolder === 0 && lost === 0 && duplicates === 0 && failedRounds === 0 && exits === 0 ? 0 : 1;
}

function report(outcomes: Map<string, FaultOutcome[]>, kaOutcomes: Map<string, KaOutcome[]>, noKeepalived: string | null): void {
  const pp = (values: readonly number[]): string => `${percentile(values, 50)}/${percentile(values, 99)}`;
  const echo = (list: readonly FaultOutcome[]): number[] => list.map((o) => o.echoGapMs ?? NaN);
  process.stdout.write(`\np50/p99 ms over the rounds (keepalived: rounds measured)\n${'fault'.padEnd(18)} ${[...PROTOCOLS, 'vip lanha', 'vip keepalived', '2 holders lanha', '2 holders keepalived'].map((h) => h.padStart(20)).join(' ')}\n`);
  for (const [fault, list] of outcomes) {
    const ka = kaOutcomes.get(fault) ?? [];
    const cells = [
      ...PROTOCOLS.map((p) => pp(list.map((o) => o.gaps[p]))),
      pp(echo(list)),
      ka.length > 0 ? `${pp(ka.map((k) => k.gapMs))} (${ka.length})` : '-',
      pp(list.map((o) => o.twoHolderMs)),
      ka.length > 0 ? pp(ka.map((k) => k.twoHolderMs)) : '-',
    ];
    process.stdout.write(`${fault.padEnd(18)} ${cells.map((c) => c.padStart(20)).join(' ')}\n`);
  }
  process.stdout.write('\n');
  const kaFigure = (fault: string, values: (k: KaOutcome) => number, p: number): number | { na: string } => {
    if (noKeepalived !== null) return { na: noKeepalived };
    if (NOT_FOR_KEEPALIVED[fault] !== undefined) return { na: NOT_FOR_KEEPALIVED[fault]! };
    const ka = kaOutcomes.get(fault) ?? [];
    return ka.length === 0 ? { na: 'no keepalived round of this fault completed (see the round lines)' } : percentile(ka.map(values), p);
  };
  for (const [fault, list] of outcomes) {
    for (const p of PROTOCOLS) {
      const gaps = list.map((o) => o.gaps[p]);
      const na = { na: `keepalived serves no ${p.toUpperCase()}: its VIP gap, probed as lanha's with the same UDP echo, is failover.${fault}.gap_ms.vip` };
      result(`failover.${fault}.gap_ms.${p}`, percentile(gaps, 50), na, 'ms');
      result(`failover.${fault}.gap_ms.${p}.p99`, percentile(gaps, 99), na, 'ms');
    }
    result(`failover.${fault}.gap_ms.vip`, percentile(echo(list), 50), kaFigure(fault, (k) => k.gapMs, 50), 'ms');
    result(`failover.${fault}.gap_ms.vip.p99`, percentile(echo(list), 99), kaFigure(fault, (k) => k.gapMs, 99), 'ms');
    result(`failover.${fault}.two_holder_ms`, percentile(list.map((o) => o.twoHolderMs), 50), kaFigure(fault, (k) => k.twoHolderMs, 50), 'ms');
    result(`failover.${fault}.two_holder_ms.p99`, percentile(list.map((o) => o.twoHolderMs), 99), kaFigure(fault, (k) => k.twoHolderMs, 99), 'ms');
  }
  // A non-leader killed: the leader's own gap (DNS on the VIP) and how often it let the VIP go.
  for (const fault of [...FAULTS, ...EXTRA_FAULTS]) {
    const list = outcomes.get(fault.name);
    if (fault.leaderGapName === undefined || list === undefined) continue;
    const na = { na: NOT_FOR_KEEPALIVED[fault.name] ?? 'not run on keepalived' };
    const dns = list.map((o) => o.gaps.dns);
    result(`failover.leader_gap_ms.${fault.leaderGapName}`, percentile(dns, 50), na, 'ms');
    result(`failover.leader_gap_ms.${fault.leaderGapName}.p99`, percentile(dns, 99), na, 'ms');
    result(`failover.leader_vip_releases.${fault.leaderGapName}`, list.reduce((a, o) => a + o.leaderHold.releases.length, 0), na, 'releases');
    result(`failover.leader_vip_away_ms.${fault.leaderGapName}`, list.reduce((a, o) => a + o.leaderHold.samplesAway * SAMPLE_EVERY_MS, 0), na, 'ms');
  }
  // Totals over every round: two holders over the faults both stacks ran (comparable), and over all of lanha's.
  const both = [...outcomes.keys()].filter((f) => (kaOutcomes.get(f) ?? []).length > 0);
  const sum = (values: number[]): number => values.reduce((a, b) => a + b, 0);
  const lanhaBoth = sum(both.flatMap((f) => outcomes.get(f)!.map((o) => o.twoHolderMs)));
  const kaBoth = sum(both.flatMap((f) => kaOutcomes.get(f)!.map((k) => k.twoHolderMs)));
  const all = [...outcomes.values()].flat();
  result('failover.two_holder_ms', lanhaBoth, both.length > 0 ? kaBoth : { na: noKeepalived ?? 'no fault was measured on keepalived' }, 'ms');
  result('failover.two_holder_ms.all_faults', sum(all.map((o) => o.twoHolderMs)), { na: 'keepalived runs only the faults that mean something for it (failover.two_holder_ms has those)' }, 'ms');
  const noLeases = { na: 'keepalived has no DHCP server and no replicated lease state' };
  result('failover.lost_acked', sum(all.map((o) => o.lostAcked.length)), noLeases, 'leases');
  result('failover.audit_lost_acked', Math.max(0, ...all.flatMap((o) => o.audits.map((a) => a.lost))), noLeases, 'leases');
  result('failover.duplicates', sum(all.map((o) => o.duplicates.length)), noLeases, 'leases');
  result('failover.unconverged', all.filter((o) => !o.converged).length, { na: 'keepalived has no replicated state to converge' }, 'rounds');
  result('failover.member_exits', sum(all.map((o) => o.exited.length)), { na: 'not counted for keepalived (a keepalived round that fails is in failover.failed_rounds)' }, 'exits');
}

main().then((code) => process.exit(code), (error: unknown) => { process.stderr.write(`bench:failover failed: ${String(error)}\n`); process.exit(1); });
