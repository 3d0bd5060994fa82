import t from 'tap';
import { createHrWallClock } from './hr-clock.js';

// The anchored clock agrees with the system realtime clock: read just before and just after
// Date.now(), its milliseconds bracket it (within the 1 ms truncation of Date.now()), it never goes
// backwards between re-anchors, and it has sub-millisecond resolution (which Date.now() has not).
t.test('anchored to Date.now(), monotonic, finer than a millisecond', async (t) => {
  const clock = createHrWallClock();
  let bad = 0, previous = 0n, backwards = 0;
  const subMs = new Set<bigint>();
  for (let i = 0; i < 20_000; i++) {
    const before = clock.nowNs();
    const wall = Date.now();
    const after = clock.nowNs();
    // Date.now() truncates: wall <= true time < wall + 1 ms; allow 0.2 ms for the reads themselves
    // and a busy shared machine descheduling us between them.
    if (Number(before / 1_000_000n) > wall + 1 || Number(after / 1_000_000n) < wall - 1) bad++;
    if (before < previous) backwards++;
    previous = after;
    subMs.add(before % 1_000_000n);
  }
  t.equal(bad, 0, 'every reading brackets Date.now()');
  t.equal(backwards, 0, 'never backwards');
  t.ok(subMs.size > 1000, `sub-millisecond resolution (${subMs.size} distinct sub-ms values)`);
  clock.reanchor();
  // Bracketed as above, so being descheduled between the reads cannot fail it.
  const before = clock.nowNs(), wall = Date.now(), after = clock.nowNs();
  t.ok(Number(before / 1_000_000n) <= wall + 1 && Number(after / 1_000_000n) >= wall - 1, 'a re-anchor keeps it on the realtime clock');
});

// A scripted machine: every clock read takes 100 ns of true time, and the process is descheduled for
// 20 ms once, at a chosen read. Wherever that pause falls, the anchor must stay within a millisecond
// of the true realtime clock: a tick seen across the pause is refused, never used.
t.test('a deschedule at any point of the anchoring never skews the clock', async (t) => {
  const realHr = process.hrtime.bigint;
  const realNow = Date.now;
  const WALL_OFFSET_NS = 1_764_000_000_000_000_000n + 123_456n; // realtime = monotonic + this
  const worst: number[] = [];
  try {
    for (let pauseAt = 0; pauseAt < 60; pauseAt++) {
      let trueNs = 5_000_000_000n;
      let reads = 0;
      const tick = (): void => {
        trueNs += 100n;
        if (reads++ === pauseAt) trueNs += 20_000_000n;
      };
      process.hrtime.bigint = () => { tick(); return trueNs; };
      Date.now = () => { tick(); return Number((trueNs + WALL_OFFSET_NS) / 1_000_000n); };
      const clock = createHrWallClock();
      const errorMs = Number(clock.nowNs() - (trueNs + WALL_OFFSET_NS)) / 1e6;
      worst.push(Math.abs(errorMs));
    }
  } finally {
    process.hrtime.bigint = realHr;
    Date.now = realNow;
  }
  t.ok(worst.every((e) => e < 1), `anchor error under 1 ms wherever the pause falls (worst ${Math.max(...worst).toFixed(3)} ms)`);
});
