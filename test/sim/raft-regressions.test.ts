import t from 'tap';
import { runSim } from './raft-sim.js';

// Seeds that once failed, kept forever. With LANHA_SEED set, this file replays just that seed and
// prints its trace.
const REGRESSIONS: Array<[number, string]> = [
  [25, 'leader stuck in snapshot state after a lost chunk answer (now resent on heartbeat answers)'],
  [8180, 'a follower discarded entries it had acknowledged when a snapshot it already covered arrived'],
];

const one = process.env['LANHA_SEED'];
const seeds: Array<[number, string]> = one !== undefined && one !== '' ? [[Number(one), 'LANHA_SEED']] : REGRESSIONS;

for (const [seed, why] of seeds) {
  t.test(`seed ${seed}: ${why}`, async (t) => {
    const r = runSim(seed, { trace: true });
    if (r.violations.length > 0) t.comment(r.trace.join('\n'));
    t.same(r.violations, []);
    t.ok(r.healedLeaderMs >= 0, `caught-up leader ${Math.round(r.healedLeaderMs)} ms after healing`);
  });
}
