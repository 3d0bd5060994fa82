// npm run bench:backend, part 2 (not a test): the crash failover on both state backends, in the
// failover fault suite's lab (test/integ/fault-lab.ts: lan-a, lan-b, udhcpc clients, DNS/NTP/TFTP/DHCP
// probes to the VIP every 50 ms): ROUNDS kill -9 of the leader on the Raft backend (with its
// witness), then on the etcd backend (3-member etcd in its own namespace, leaseTtl LEASE_TTL).
// Prints per backend one line `CRASH <backend> gap_ms=<p50 of the VIP-served DHCP gap> gap_ms_p99=...
// lost=<ACKed leases lost> duplicates=<addresses bound to two clients> rounds=N`.
// Env: ROUNDS (5), LEASE_TTL (1s), BACKENDS (raft,etcd). Needs root. Every process is stopped by PID.
import { Lab, labUnavailable } from '../test/support/netns.js';
import { FaultLab } from '../test/integ/fault-lab.js';
import { FAULTS } from '../test/integ/faults.js';
import { percentile } from './stats.js';

const ROUNDS = Number(process.env['ROUNDS'] ?? 5);
const LEASE_TTL = process.env['LEASE_TTL'] ?? '1s';
const BACKENDS = (process.env['BACKENDS'] ?? 'raft,etcd').split(',');

async function run(backend: string): Promise<void> {
  const kill9 = FAULTS.find((f) => f.name === 'kill9_leader')!;
  const lab = await Lab.create();
  let fl: FaultLab | undefined;
  const gaps: number[] = [];
  let lost = 0, duplicates = 0, twoHolderMs = 0;
  try {
    fl = await FaultLab.create(lab, backend === 'etcd' ? { etcd: { leaseTtl: LEASE_TTL } } : {});
    for (let round = 1; round <= ROUNDS; round++) {
      const o = await fl.runFault(kill9.name, (roles) => kill9.inject(fl!, roles));
      gaps.push(o.gaps.dhcp);
      lost += o.lostAcked.length;
      duplicates += o.duplicates.length;
      twoHolderMs += o.twoHolderMs;
      process.stdout.write(`${backend} round ${round}: DHCP gap ${o.gaps.dhcp} ms, DNS gap ${o.gaps.dns} ms; two holders ${o.twoHolderMs} ms; lost ${o.lostAcked.length}; duplicates ${o.duplicates.length}; converged ${o.converged}\n`);
    }
  } finally {
    if (fl) await fl.close();
    await lab.destroy();
  }
  process.stdout.write(`CRASH ${backend} gap_ms=${percentile(gaps, 50)} gap_ms_p99=${percentile(gaps, 99)} lost=${lost} duplicates=${duplicates} two_holder_ms=${twoHolderMs} rounds=${gaps.length}\n`);
}

async function main(): Promise<number> {
  const missing = labUnavailable(['udhcpc', 'dig', 'nft', 'fallocate', 'arping', 'etcd', 'curl']);
  if (missing !== null) {
    process.stderr.write(`bench:backend crash part cannot run: ${missing}\n`);
    return 1;
  }
  for (const backend of BACKENDS) await run(backend);
  return 0;
}

main().then((code) => process.exit(code), (error: unknown) => { process.stderr.write(`bench:backend crash part failed: ${String(error)}\n`); process.exit(1); });
