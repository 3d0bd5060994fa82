// npm run bench:failover -- the failover fault suite (test/integ/failover-faults) as a benchmark:
// the same lab (lan-a, lan-b, witness; udhcpc clients; DNS/NTP/TFTP/DHCP probes to the VIP every
// 50 ms; the VIP watched on both servers), ROUNDS rounds of every fault (default 10), and per
// fault and protocol the p50 and p99 of the longest silence a client saw, plus the totals the
// checkers count. Needs root (network namespaces). Every process is started here and stopped by PID.
// Env: ROUNDS (10), FAULTS (comma list of fault names, default all; EXTRA_FAULTS run only when named), FAULT_BUDGET (450ms:
// cluster.failoverBudget, as bench:vip; empty for the default timers), FAULT_ELECTION_TIMEOUT
// (instead of a budget, e.g. 500ms).
//
// RESULT lines (DESIGN.md): failover.<fault>.gap_ms.<protocol> (p50) and .p99,
// failover.two_holder_ms, failover.lost_acked, failover.duplicates. Under each round: every lost or
// duplicate lease and every ACK that stated less than the lease time (a late commit), and then
// where the members' logs and the clients' ACKs of that round were copied.
// keepalived is not run here: bench:vip measures it on the VIP gap (kill -9, crash) in its own lab.
import { Lab, labUnavailable } from '../test/support/netns.js';
import { FaultLab, PROTOCOLS, LEASE_S, type FaultOutcome } from '../test/integ/fault-lab.js';
import { FAULTS, EXTRA_FAULTS } from '../test/integ/faults.js';

const ROUNDS = Number(process.env['ROUNDS'] ?? 10);
const only = process.env['FAULTS']?.split(',');

function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

async function main(): Promise<number> {
  const missing = labUnavailable(['udhcpc', 'dig', 'nft', 'fallocate', 'arping']);
  if (missing !== null) {
    process.stderr.write(`bench:failover cannot run: ${missing}\n`);
    return 1;
  }
  const faults = [...FAULTS.filter((f) => only === undefined || only.includes(f.name)), ...EXTRA_FAULTS.filter((f) => only?.includes(f.name))];
  const outcomes = new Map<string, FaultOutcome[]>();
  const lab = await Lab.create();
  let fl: FaultLab | undefined;
  try {
    const timers = process.env['FAULT_ELECTION_TIMEOUT'] !== undefined ? { electionTimeout: process.env['FAULT_ELECTION_TIMEOUT'] }
      : (process.env['FAULT_BUDGET'] ?? '450ms') === '' ? {} : { failoverBudget: process.env['FAULT_BUDGET'] ?? '450ms' };
    process.stdout.write(`timers: ${JSON.stringify(timers)} (${timers.failoverBudget ?? timers.electionTimeout ?? 'defaults'}), ${ROUNDS} rounds\n`);
    fl = await FaultLab.create(lab, timers);
    for (let round = 1; round <= ROUNDS; round++) {
      for (const fault of faults) {
        const fromWall = Date.now();
        const o = await fl.runFault(fault.name, (roles) => fault.inject(fl!, roles));
        // ACKs that stated less than the lease time: sent seconds after their log time (services/dhcp/README.md).
        const short = fl.acks().filter((a) => a.at >= fromWall && a.leaseS < LEASE_S);
        outcomes.set(fault.name, [...(outcomes.get(fault.name) ?? []), o]);
        process.stdout.write(`round ${round} ${fault.name}: ${PROTOCOLS.map((p) => `${p} ${o.gaps[p]} ms`).join(', ')}; two holders ${o.twoHolderMs} ms; lost ${o.lostAcked.length}; duplicates ${o.duplicates.length}; converged ${o.converged}; ACKs shortened ${short.length}\n`);
        // What a checker found, so a failing round can be looked into without rerunning it.
        for (const line of [...o.lostAcked.map((l) => `lost: ${l}`), ...o.duplicates.map((l) => `duplicate: ${l}`), ...short.map((a) => `shortened: ${a.client} ${a.ip} ${a.leaseS} s at ${a.at}`)]) process.stdout.write(`  ${line}\n`);
        if (o.lostAcked.length > 0 || o.duplicates.length > 0 || short.length > 0) {
          // The members' logs and every client ACK of that round, to look into without a rerun (kept in the temp dir).
          const dir = fl.dumpRound(`${fault.name}-round${round}`);
          process.stdout.write(`  logs and ACKs: ${dir}\n`);
        }
      }
    }
  } finally {
    if (fl) await fl.close();
    await lab.destroy();
  }
  let twoHolder = 0, lost = 0, duplicates = 0, unconverged = 0;
  process.stdout.write(`\n${'fault'.padEnd(18)} ${PROTOCOLS.map((p) => `${p} p50/p99 ms`.padStart(18)).join(' ')}\n`);
  for (const [fault, list] of outcomes) {
    process.stdout.write(`${fault.padEnd(18)} ${PROTOCOLS.map((p) => `${percentile(list.map((o) => o.gaps[p]), 50)}/${percentile(list.map((o) => o.gaps[p]), 99)}`.padStart(18)).join(' ')}\n`);
    for (const o of list) {
      twoHolder += o.twoHolderMs; lost += o.lostAcked.length; duplicates += o.duplicates.length; unconverged += o.converged ? 0 : 1;
    }
  }
  process.stdout.write('\n');
  for (const [fault, list] of outcomes) {
    for (const p of PROTOCOLS) {
      const gaps = list.map((o) => o.gaps[p]);
      process.stdout.write(`RESULT failover.${fault}.gap_ms.${p} lanha=${percentile(gaps, 50)} keepalived=NA ratio=NA unit=ms better=lower\n`);
      process.stdout.write(`RESULT failover.${fault}.gap_ms.${p}.p99 lanha=${percentile(gaps, 99)} keepalived=NA ratio=NA unit=ms better=lower\n`);
    }
  }
  process.stdout.write(`RESULT failover.two_holder_ms lanha=${twoHolder} keepalived=NA ratio=NA unit=ms better=lower\n`);
  process.stdout.write(`RESULT failover.lost_acked lanha=${lost} keepalived=NA ratio=NA unit=leases better=lower\n`);
  process.stdout.write(`RESULT failover.duplicates lanha=${duplicates} keepalived=NA ratio=NA unit=leases better=lower\n`);
  process.stdout.write(`RESULT failover.unconverged lanha=${unconverged} keepalived=NA ratio=NA unit=rounds better=lower\n`);
  return twoHolder === 0 && lost === 0 && duplicates === 0 ? 0 : 1;
}

process.stdout.write('keepalived=NA below: it has no DHCP, DNS or lease state to check; its VIP gap is in npm run bench:vip\n');
main().then((code) => process.exit(code), (error: unknown) => { process.stderr.write(`bench:failover failed: ${String(error)}\n`); process.exit(1); });
