// Proves WallStepWatch reports a wall-clock step (either way) once, with its size, and stays quiet
// while the wall clock only runs or slews with the monotonic clock.
import t from 'tap';
import { WallStepWatch, formatWallSteps } from './clock-step.js';

t.test('a step of the wall clock is reported once with its size; running and slewing are not', async (t) => {
  const w = new WallStepWatch();
  const wall0 = 1_796_000_000_000;
  t.equal(w.observe(0, wall0), null, 'the first reading sets the offset');
  t.equal(w.observe(500, wall0 + 500), null, 'both clocks ran');
  t.equal(w.observe(1000, wall0 + 1000.25), null, 'a slew of 0.5 ms/s is not a step');
  t.same(w.observe(1500, wall0 + 1500 + 3 * 3600_000), { stepMs: 3 * 3600_000, fromWallMs: wall0 + 1500, toWallMs: wall0 + 1500 + 3 * 3600_000 }, 'three hours forwards');
  t.equal(w.observe(2000, wall0 + 2000 + 3 * 3600_000), null, 'reported once');
  t.match(w.observe(2500, wall0 + 2500 - 3 * 3600_000), { stepMs: -6 * 3600_000 }, 'six hours backwards from there');
  t.same(w.report(12_500), { steps: 2, last: { stepMs: -6 * 3600_000, fromWallMs: wall0 + 2500 + 3 * 3600_000, toWallMs: wall0 + 2500 - 3 * 3600_000, agoS: 10 } });
});

t.test('the status line names the last step, when, and how many; nothing before a step', async (t) => {
  const w = new WallStepWatch();
  t.equal(formatWallSteps(w.report(0)), '');
  w.observe(0, 10_000_000);
  w.observe(1000, 10_000_000 + 1000 - 3 * 3600_000);
  t.equal(formatWallSteps(w.report(13_000)), 'clock: the wall clock stepped -10800.0 s 12 s ago (1 step since start); leases, Raft and the VIP are not moved by it\n');
});
