import t from 'tap';
import { createHrWallClock, narrowOffset } from './hr-clock.js';

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

t.test('narrowOffset: each read bounds the offset; reads across a tick pin it; a contradiction is empty', async (t) => {
  const offset = 1_700_000_000_000_000_000n + 250_000n; // realtime = monotonic + offset (0.25 ms into a ms)
  const wallAt = (hr: bigint): number => Number((hr + offset) / 1_000_000n);
  let b = narrowOffset(null, 1_000n, wallAt(1_100n), 1_200n);
  t.ok(b.lo <= offset && offset <= b.hi, 'one read brackets the true offset');
  t.ok(b.hi - b.lo > 900_000n, `one read alone leaves most of a millisecond (${b.hi - b.lo} ns)`);
  // Reads 300 ns apart, each taking 200 ns, across the next tick (at monotonic 750_000): the bounds
  // come within one read's length on each side of it.
  for (let hr = 740_000n; hr < 760_000n; hr += 300n) b = narrowOffset(b, hr, wallAt(hr + 100n), hr + 200n);
  t.ok(b.lo <= offset && offset <= b.hi, 'still brackets it');
  t.ok(b.hi - b.lo <= 600n, `across a tick: ${b.hi - b.lo} ns wide`);
  // A read taken over a 30 ms pause says little, and cannot move it.
  const paused = narrowOffset(b, 800_000n, wallAt(20_000_000n), 30_800_000n);
  t.same(paused, b, 'a read across a pause leaves the interval as it was');
  // The realtime clock stepped 5 ms ahead: a read that contradicts the interval empties it.
  const stepped = narrowOffset(b, 900_000n, wallAt(900_100n) + 5, 900_200n);
  t.ok(stepped.lo > stepped.hi, 'a step shows as an empty interval');
});

// The same scripted machine, now descheduled often: one read in 7 takes a pause of 0.5-20 ms (far
// worse than a loaded 2-core machine). Ticks then mostly fall inside pauses, so the anchor may stay a
// millisecond wide, but it can never be off by more than half that: a single tick bracket taken
// across a pause was off by half the pause (10 ms here).
t.test('frequent deschedules during anchoring leave the anchor accurate', async (t) => {
  const realHr = process.hrtime.bigint;
  const realNow = Date.now;
  const WALL_OFFSET_NS = 1_764_000_000_000_000_000n + 654_321n;
  const worstUs: number[] = [];
  try {
    for (let seed = 1; seed <= 40; seed++) {
      let trueNs = 7_000_000_000n + BigInt(seed) * 37_000n;
      let reads = 0;
      let x = seed;
      const tick = (): void => {
        trueNs += 100n;
        x = (x * 1103515245 + 12345) % 2147483648;
        if (reads++ % 7 === seed % 7) trueNs += BigInt(500_000 + (x % 19_500_000));
      };
      process.hrtime.bigint = () => { tick(); return trueNs; };
      Date.now = () => { tick(); return Number((trueNs + WALL_OFFSET_NS) / 1_000_000n); };
      const clock = createHrWallClock();
      worstUs.push(Math.abs(Number(clock.nowNs() - (trueNs + WALL_OFFSET_NS)) / 1e3));
    }
  } finally {
    process.hrtime.bigint = realHr;
    Date.now = realNow;
  }
  t.ok(worstUs.every((e) => e < 600), `anchor error under 0.6 ms in 40 schedules (worst ${Math.max(...worstUs).toFixed(1)} us)`);
});

// The realtime clock is stepped by 1.5 ms (less than the 2 ms step check notices): the next periodic
// re-anchor sees an interval that excludes the old offset and takes the new one.
t.test('a small step is taken up at the next re-anchor', async (t) => {
  const realHr = process.hrtime.bigint;
  const realNow = Date.now;
  let step = 0n;
  let trueNs = 9_000_000_000n;
  const WALL_OFFSET_NS = 1_764_000_000_000_000_000n;
  try {
    process.hrtime.bigint = () => { trueNs += 150n; return trueNs; };
    Date.now = () => { trueNs += 150n; return Number((trueNs + WALL_OFFSET_NS + step) / 1_000_000n); };
    const clock = createHrWallClock();
    t.ok(Math.abs(Number(clock.nowNs() - (trueNs + WALL_OFFSET_NS))) < 20_000, 'anchored');
    step = 1_500_000n;
    clock.reanchor();
    const errorUs = Number(clock.nowNs() - (trueNs + WALL_OFFSET_NS + step)) / 1e3;
    t.ok(Math.abs(errorUs) < 20, `after the step and a re-anchor: ${errorUs.toFixed(1)} us off`);
  } finally {
    process.hrtime.bigint = realHr;
    Date.now = realNow;
  }
});

// Date.now() frozen (fake timers) while the monotonic clock runs: no read interval holds still, so
// every measurement comes out empty. The clock must still read near Date.now(), not time counted from
// the boot (1970).
t.test('a realtime clock that never holds still still gives a first anchor to the millisecond', async (t) => {
  const realHr = process.hrtime.bigint;
  const realNow = Date.now;
  const frozen = 1_764_000_123_456;
  let trueNs = 3_000_000_000n;
  try {
    process.hrtime.bigint = () => { trueNs += 1_000n; return trueNs; };
    Date.now = () => frozen;
    const clock = createHrWallClock();
    const errorMs = Number(clock.nowNs() / 1_000_000n) - frozen;
    t.ok(errorMs >= 0 && errorMs < 100, `within the reads' time of the frozen Date.now() (${errorMs} ms after it)`);
  } finally {
    process.hrtime.bigint = realHr;
    Date.now = realNow;
  }
});
