import t from 'tap';
import { runSim } from './raft-sim.js';
import { seedsToRun } from '../support/seeded.js';

// Disks that go back in time (SimOptions.backups): a member's state directory is copied now and
// then, and a restart may find the copy put back, behind what it acknowledged since (Raft
// "amnesia"). Restored while the cluster has a leader, with every other member up: the faults
// resume once it knows (a leader's heartbeat said what it had acknowledged: RaftNode.amnesia) or
// holds what it had again, and no committed entry may be lost nor two leaders lead one term.
// A failing seed replays with LANHA_SEED=<seed>. cluster/raft/node.test.ts has the scripted case
// that failed before (the member voted for a candidate lacking the entries it had acknowledged).
t.setTimeout(300_000);

t.test('raft simulation with state directories restored from old copies', async (t) => {
  const seeds = seedsToRun(3000, 1);
  let restores = 0, acked = 0;
  const failures: string[] = [];
  for (const seed of seeds) {
    const r = runSim(seed, { backups: true });
    restores += r.restores;
    acked += r.acked;
    if (r.violations.length > 0) {
      failures.push(`${r.violations.slice(0, 3).join('; ')} -- replay: LANHA_SEED=${seed} (runSim(seed, { backups: true, trace: true }))`);
      if (failures.length >= 5) break;
    }
  }
  t.same(failures, [], `${seeds.length} seeds: no committed entry lost, one leader a term, convergence after healing`);
  if (seeds.length >= 1000) t.ok(restores >= 10, `${restores} restarts on a restored copy`);
  t.ok(acked > seeds.length * 5, `${acked} acknowledged proposals checked`);
});
