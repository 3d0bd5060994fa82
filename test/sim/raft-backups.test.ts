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

// Looser restores (SimOptions.backups 'loose'): a copy is put back at any restart, whoever else is
// down, cut off or leading, and the other faults go on (one storage gone back in time or lost at a
// time). A member then may vote on its old state before any leader it acknowledged reaches it; what
// keeps committed entries is that the other members heard the commit index (RaftNode heardCommit:
// no vote for, and no campaign with, a log ending below it). Not covered, and so allowed to fail
// here: seeds where the third member never heard the commit (cut off or down while the entries were
// committed) and the member holding them did not speak before an election (README.md, "Restored
// from an old backup"). Each was traced: the entries were on the restored member and on one other
// member only, which the third never heard from.
const LOOSE_UNCOVERED: Record<number, string> = {
  1787: 'n3 cut off while n2 (leader) committed 22-35 with n1; n1 put back to 21; at the heal n3 won with n1\'s vote before n2 spoke',
  2292: 'n3 down while n2 (leader) committed 14 on with n1; n1 down, n2 put back to 13; at the heal n2 won with n3\'s vote before n1 spoke',
};

const LOOSE_REGRESSIONS: Array<[number, string]> = [
  [1617, 'the leader the restored member acknowledged cut off: it voted, back at an old log, for a member lacking committed entry 47'],
  [434, 'the restored member had been the leader: it won term 2 with the lagging member\'s vote, lacking committed entry 22'],
  [773, 'a member lacking committed entry 15 won term 2 with the restored member\'s vote'],
];

for (const [seed, why] of LOOSE_REGRESSIONS) {
  t.test(`loose restores, seed ${seed}: ${why}`, async (t) => {
    const r = runSim(seed, { backups: 'loose', trace: true });
    if (r.violations.length > 0) t.comment(r.trace.slice(-40).join('\n'));
    t.same(r.violations, []);
    t.ok(r.restores >= 1, `${r.restores} restores`);
  });
}

t.test('raft simulation with copies put back at any restart (loose restores)', async (t) => {
  const seeds = seedsToRun(2500, 1);
  let restores = 0;
  const failures: string[] = [];
  const uncovered: number[] = [];
  for (const seed of seeds) {
    const r = runSim(seed, { backups: 'loose' });
    restores += r.restores;
    if (r.violations.length === 0) continue;
    if (LOOSE_UNCOVERED[seed] !== undefined) { uncovered.push(seed); continue; }
    failures.push(`${r.violations.slice(0, 3).join('; ')} -- replay: LANHA_SEED=${seed} (runSim(seed, { backups: 'loose', trace: true }))`);
    if (failures.length >= 5) break;
  }
  t.same(failures, [], `${seeds.length} seeds: no committed entry lost, one leader a term, convergence after healing (${uncovered.length} known uncovered: ${uncovered.join(', ') || 'none'})`);
  if (seeds.length >= 1000) t.ok(restores >= 100, `${restores} restarts on a restored copy`);
});
