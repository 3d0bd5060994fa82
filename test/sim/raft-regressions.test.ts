import t from 'tap';
import { runSim, pipelineDepthOf } from './raft-sim.js';

// Seeds that once failed, kept forever, each with the host it failed under (one Ready at a time,
// depth 1) and with the pipelined host. With LANHA_SEED set, this file replays just that seed (with
// the host the seed draws, as the seed test ran it) and prints its trace.
const REGRESSIONS: Array<[number, string]> = [
  [25, 'leader stuck in snapshot state after a lost chunk answer (now resent on heartbeat answers)'],
  [8180, 'a follower discarded entries it had acknowledged when a snapshot it already covered arrived'],
  [254, 'a member restarted with its storage lost voted again in term 1: two leaders of term 1 (now it votes only once a leader caught it up)'],
  [68, 'a member restarted with its storage lost voted, with its empty log, for a candidate lacking committed entry 9'],
  [2737, 'a member restarted with its whole state directory lost (no member file) voted as at a first start for a candidate lacking committed entry 6 (now it rebuilds once a peer shows a commit index)'],
  [9552, 'a member restarted with its whole state directory lost voted again in term 2: two leaders of term 2'],
  [2054, 'a candidate stalled until term 2 had committed entries, its next campaign held on waking: the votes of term 1 that waited made it leader of term 1 (now only a follower\'s campaign is held)'],
  [13159, 'a member installed a snapshot from the leader, then led: it served its own older snapshot, which a lagging member already covered, in a loop for good (now the one it installed)'],
  [5163, 'a witness leader handing over still held its lease in the core when its target won with transfer votes and got its first acknowledgement (the lease check now counts, as RaftStateLog.isLeader and the VIP do, only a leader with no transfer under way)'],
];

const one = process.env['LANHA_SEED'];
const seeds: Array<[number, string]> = one !== undefined && one !== '' ? [[Number(one), 'LANHA_SEED']] : REGRESSIONS;

const runs: Array<[number, string, number]> = one !== undefined && one !== ''
  ? seeds.map(([seed, why]) => [seed, why, pipelineDepthOf(seed)])
  : seeds.flatMap(([seed, why]): Array<[number, string, number]> => [[seed, why, 1], [seed, why, 8]]);

for (const [seed, why, depth] of runs) {
  t.test(`seed ${seed} (host pipeline depth ${depth}): ${why}`, async (t) => {
    const r = runSim(seed, { trace: true, pipelineDepth: depth });
    if (r.violations.length > 0) t.comment(r.trace.join('\n'));
    t.same(r.violations, []);
    t.ok(r.healedLeaderMs >= 0, `caught-up leader ${Math.round(r.healedLeaderMs)} ms after healing`);
  });
}
