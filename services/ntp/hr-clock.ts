// The wall clock the NTP server stamps packets with: CLOCK_MONOTONIC (process.hrtime, ns resolution,
// slewed at the same rate as the realtime clock) anchored to the realtime clock. Date.now() alone is
// truncated to whole milliseconds, so a naive server reads on average 0.5 ms behind.
//
// The anchor is the offset realtime - monotonic, found by intersecting intervals: each read of
// Date.now() bracketed by two hrtime reads says the offset lies in (wall - hrAfter, wall + 1 ms -
// hrBefore). A read just after Date.now() ticks gives a tight lower bound, one just before a tick a
// tight upper bound, so reads across one tick pin the offset to within the time between reads. A read
// during which we were descheduled (a busy machine, a GC on another thread) only gives a loose
// interval, which cannot move the intersection: no pause can skew the anchor, it can only leave it
// less precise, and the width says by how much. Re-anchored every few seconds (a narrower result
// replaces a wider one, and one that excludes the current offset replaces it whatever its width), and
// at once when a reading disagrees with Date.now() by more than 2 ms (someone stepped the clock).
// Shell code: it reads the real clocks. Cores receive the numbers it returns.

export interface HrWallClock {
  /** Nanoseconds since the Unix epoch, microsecond-accurate against the system realtime clock. */
  nowNs(): bigint;
  /** Re-takes the anchor now (the daemon calls it on a timer). */
  reanchor(): void;
}

const NS_PER_MS = 1_000_000n;
const STEP_TOLERANCE_MS = 2;
/** An intersection this narrow is as good as the reads allow: stop reading. */
const WIDTH_GOOD_NS = 20_000n;
/** How long a re-anchor reads the clocks for (a busy wait), counting only undisturbed reads: two ticks. */
const READ_WINDOW_NS = 2_500_000n;
/** A read longer than this was descheduled: it narrows nothing and does not count towards the window. */
const READ_SLOW_NS = 20_000n;
/** However often we are descheduled, reading stops this long after it began. */
const READ_DEADLINE_NS = 50_000_000n;

/** The offset (realtime - monotonic, in ns) lies in [lo, hi]; empty (lo > hi) if the clock stepped. */
export interface OffsetBounds {
  lo: bigint;
  hi: bigint;
}

/** Narrows `b` by one read: hrtime `hrBefore`, then Date.now() = `wallMs`, then hrtime `hrAfter`. */
export function narrowOffset(b: OffsetBounds | null, hrBefore: bigint, wallMs: number, hrAfter: bigint): OffsetBounds {
  const wall = BigInt(wallMs) * NS_PER_MS;
  const lo = wall - hrAfter;
  const hi = wall + NS_PER_MS - hrBefore;
  if (b === null) return { lo, hi };
  return { lo: lo > b.lo ? lo : b.lo, hi: hi < b.hi ? hi : b.hi };
}

export function createHrWallClock(): HrWallClock {
  let offsetNs = 0n;
  /** The width of the interval the current offset came from; null before the first anchor. */
  let widthNs: bigint | null = null;
  let checks = 0;

  /** Reads the clocks for at most READ_WINDOW_NS; the interval found, or null if the clock stepped meanwhile. */
  const measure = (): OffsetBounds | null => {
    // Warm both clocks first: the first process.hrtime.bigint() of a process is slow (measured here
    // at 0.7 ms).
    for (let i = 0; i < 8; i++) { process.hrtime.bigint(); Date.now(); }
    let b: OffsetBounds | null = null;
    let before = process.hrtime.bigint();
    const deadline = before + READ_DEADLINE_NS;
    let undisturbed = 0n;
    for (let spins = 0; spins < 5_000_000; spins++) {
      const wall = Date.now();
      const after = process.hrtime.bigint();
      b = narrowOffset(b, before, wall, after);
      if (b.lo > b.hi) return null;
      if (after - before <= READ_SLOW_NS) undisturbed += after - before;
      if (b.hi - b.lo <= WIDTH_GOOD_NS || undisturbed >= READ_WINDOW_NS || after >= deadline) break;
      before = after;
    }
    return b;
  };

  const anchor = (force: boolean): void => {
    let b = measure();
    if (b === null) b = measure(); // stepped while reading: once more
    if (b === null) {
      if (widthNs !== null) return; // keep the anchor we have; the step check tries again
      // No anchor yet and the realtime clock will not hold still (stepped twice, or frozen by fake
      // timers): one read, to the millisecond, rather than serving time counted from the boot.
      const before = process.hrtime.bigint();
      b = narrowOffset(null, before, Date.now(), process.hrtime.bigint());
    }
    const width = b.hi - b.lo;
    // A new interval replaces the anchor when it is narrower, or when it excludes the current offset
    // (the clock was stepped or slewed by less than the step check sees: the old anchor is wrong).
    if (force || widthNs === null || width <= widthNs || width <= WIDTH_GOOD_NS || offsetNs < b.lo || offsetNs > b.hi) {
      offsetNs = b.lo + width / 2n;
      widthNs = width;
    }
  };

  const nowNs = (): bigint => {
    const ns = offsetNs + process.hrtime.bigint();
    // A cheap step check on one reading in 64: the realtime clock moved under us (date -s, chrony step).
    if ((++checks & 63) === 0) {
      const drift = Date.now() - Number(ns / NS_PER_MS);
      if (drift > STEP_TOLERANCE_MS || drift < -STEP_TOLERANCE_MS) {
        anchor(true);
        return offsetNs + process.hrtime.bigint();
      }
    }
    return ns;
  };

  anchor(true);
  return { nowNs, reanchor: () => anchor(false) };
}
