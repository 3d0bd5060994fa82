import t from 'tap';
import { runVipSim } from './vip-sim.js';
import { timersFromBudget } from '../../cluster/timers.js';

// VIP simulation seeds kept forever. Seed 2 is the first failure the simulation printed while the
// guard did not exist: a leader paused (SIGSTOP-sized) kept the VIP in its kernel for the address
// lifetime while the other server had already won and added it: two holders for ~400 ms. It must
// hold with the guard, and still fail without it (so the scenario keeps testing what it tested).
// With LANHA_SEED set, this file replays that seed with a trace.

const one = process.env['LANHA_SEED'];
/** A seed printed by a run with failover-budget timers replays with them (vip-sim-run.test.ts). */
const budget = process.env['LANHA_SIM_BUDGET'];
/** A voter-dead seed (vip-sim-run.test.ts) replays with LANHA_SIM_SCENARIO=voter-dead:follower (or :witness). */
const scenario = process.env['LANHA_SIM_SCENARIO'];
const scenarioOptions = scenario?.startsWith('voter-dead') ? { scenario: 'voter-dead' as const, deadVoter: scenario.endsWith(':witness') ? 'witness' as const : 'follower' as const } : {};

if (one !== undefined && one !== '') {
  t.test(`seed ${one}`, async (t) => {
    const r = runVipSim(Number(one), { trace: true, ...scenarioOptions, ...(budget ? { timers: timersFromBudget(Number(budget)) } : {}) });
    if (r.violations.length > 0 || r.lapses > 0) t.comment(r.trace.join('\n'));
    t.same(r.violations, []);
    if (scenario !== undefined) t.equal(r.lapses, 0, 'the leader kept the VIP');
  });
} else {
  t.test('seed 2: a paused holder overlapped the new one for its kernel lifetime (before the guard)', async (t) => {
    t.same(runVipSim(2).violations, [], 'with the guard: never two holders');
    t.match(runVipSim(2, { guard: false }).violations.join(' '), /two VIP holders/, 'without it: two holders, as first found');
  });
}
