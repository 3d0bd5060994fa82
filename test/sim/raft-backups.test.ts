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
// no vote for, and no campaign with, a log ending below it; every refusal, and a refusal where a
// member would otherwise stay silent, carries it). Not covered, and so allowed to fail here: seeds
// where a majority with no word of the commit elects before the member holding the entries is
// heard: the third member never heard the commit (cut off or down while the entries were committed)
// and the holder is down, paused or cut off until the election, or its refusal arrives after the
// winning vote, or a vote forgotten in a term where no one showed it a committed entry (README.md,
// "Restored from an old backup"). None of seeds 1-5000 is such a case now; these are from seeds
// 5001-20000, each traced.
const LOOSE_UNCOVERED: Record<number, string> = {
  10912: 'n1 (leader) committed 10-16 with n3 while n2 was cut off (at 9); n3 put back to 15; n1 stalled, then down, through the election: n3 won with n2\'s vote',
  12866: 'n2 led term 2 and committed 10-14 with n3; n2 put back to term 1, log to 9; n3 paused: n1 (old term-1 log) won term 2 with n2\'s second vote in it',
  14498: 'n1 (leader) committed 6-22 with n2 while n3 was down; n1 put back to 6; n2 restarted and refused n1, but its refusal came after n3\'s vote had made n1 leader',
  17638: 'n1 (leader) committed 46-74 with n2 while n3 was cut off (at 45); n2 put back to 36, n1 down; n1 back at the heal refused n3, after n2\'s vote had made n3 leader',
};

// Seeds that lost committed entries (or applied uncommitted ones) under loose restores and no longer do.
const LOOSE_REGRESSIONS: Array<[number, string]> = [
  [1617, 'the leader the restored member acknowledged cut off: it voted, back at an old log, for a member lacking committed entry 47'],
  [434, 'the restored member had been the leader: it won term 2 with the lagging member\'s vote, lacking committed entry 22'],
  [773, 'a member lacking committed entry 15 won term 2 with the restored member\'s vote'],
  [1787, 'n3 cut off while n2 (leader) committed 34-45 with n1; n1 put back to 21: n2\'s refusal told n3 only what it had heard from others (33), not its own commit 45, and n3 won with n1\'s vote (now the answer carries 45 and n3 stops)'],
  [2292, 'n3 down while n2 (leader) committed 14-40 with n1; n2 put back to 13: n1, just restarted, left n2\'s requests unanswered and n2 won with n3\'s vote (now n1 refuses them, telling it 36)'],
  [3487, 'n2 (leader) committed 28-40 with n1 while n3 was cut off; n2 put back to 27: n1, just restarted, left its requests unanswered'],
  [8869, 'n2 led term 2 and committed 4-7 with n3; n2 put back to term 1, log to 3; n3\'s refusal told it commit 7, and it voted in term 2 again, for n1, whose log of uncommitted term-1 entries ran past 7: two leaders of term 2 (now the refusal says entry 7 is of term 2, and a log ending in term 1 is refused)'],
  [16408, 'n2 put back to term 1 with 30-47 of term 1; the term-2 leader\'s heartbeat, counting n2\'s acknowledgement of 66, committed them on n2 as they were: state hash differs (found once the refusals above were in; now a heartbeat carries the term at its commit and commits only where that matches)'],
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
  const seeds = seedsToRun(5000, 1);
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
