import t from 'tap';
import { runSim, pipelineDepthOf } from './raft-sim.js';
import { seedsToRun } from '../support/seeded.js';

/** Runs `count` simulation seeds from `base` (or just LANHA_SEED) and fails loudly with the seed. */
export function runSeedRange(base: number, count: number): void {
  t.test(`raft simulation, seeds ${base}..${base + count - 1}`, async (t) => {
    const seeds = seedsToRun(count, base);
    let events = 0, elections = 0, acked = 0, audited = 0, crashes = 0, wipes = 0, wholeWipes = 0, snapshots = 0, worstHeal = 0;
    const failures: string[] = [];
    const hosts = new Map<number, number>();
    for (const seed of seeds) {
      const r = runSim(seed);
      hosts.set(pipelineDepthOf(seed), (hosts.get(pipelineDepthOf(seed)) ?? 0) + 1);
      events += r.events; elections += r.elections; acked += r.acked; audited += r.audited; crashes += r.crashes; wipes += r.wipes; wholeWipes += r.wholeWipes; snapshots += r.snapshotsSent;
      worstHeal = Math.max(worstHeal, r.healedLeaderMs);
      if (r.violations.length > 0) {
        failures.push(`${r.violations.join('; ')} -- replay: LANHA_SEED=${seed} npx tap run dist/test/sim/raft-regressions.test.js`);
        if (failures.length >= 5) break;
      }
    }
    t.same(failures, [], `${seeds.length} seeds hold every safety check and converge after healing`);
    t.ok(elections > seeds.length, `the faults forced ${elections} elections`);
    t.ok(acked > seeds.length * 5, `${acked} proposals were acknowledged and checked`);
    t.ok(audited > acked / 2, `the ACK audit found ${audited} acknowledged entries in the members' committed logs (none lost; compacted ones are judged by the lease, not here)`);
    t.ok(crashes > 0 && snapshots > 0, `${crashes} crashes, ${snapshots} snapshot chunks`);
    if (seeds.length >= 30) t.ok(wipes > 0, `${wipes} restarts with the storage lost (members rebuilt from their peers)`);
    if (seeds.length >= 30) t.ok(wholeWipes > 0, `${wholeWipes} of them with the whole state directory lost (fresh starts that had to tell the cluster existed)`);
    t.ok(worstHeal < 5_000, `worst time to a caught-up leader after healing: ${Math.round(worstHeal)} ms (virtual)`);
    if (seeds.length >= 30) t.ok(hosts.size === 3, `hosts: ${[...hosts].map(([d, n]) => `${n} seeds ${d === 1 ? 'one Ready at a time' : `pipelined ${d} deep`}`).join(', ')}`);
    t.comment(`${events} events simulated`);
  });
}
