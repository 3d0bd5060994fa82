// The wall clock the NTP server stamps packets with: CLOCK_MONOTONIC (process.hrtime, ns resolution,
// slewed at the same rate as the realtime clock) anchored to the realtime clock. Date.now() alone is
// truncated to whole milliseconds, so a naive server reads on average 0.5 ms behind. The anchor is
// taken at the instant Date.now() ticks over to the next millisecond (a busy wait of at most 1 ms),
// which puts the two within a few microseconds. Re-anchored every few seconds, and at once when a
// reading disagrees with Date.now() by more than 2 ms (someone stepped the clock).
// Shell code: it reads the real clocks. Cores receive the numbers it returns.

export interface HrWallClock {
  /** Nanoseconds since the Unix epoch, microsecond-accurate against the system realtime clock. */
  nowNs(): bigint;
  /** Re-takes the anchor now (the daemon calls it on a timer). */
  reanchor(): void;
}

const NS_PER_MS = 1_000_000n;
const STEP_TOLERANCE_MS = 2;
/** A tick seen within this many ns of the previous read makes a good anchor. */
const WINDOW_MAX_NS = 20_000n;

export function createHrWallClock(): HrWallClock {
  let baseWallNs = 0n;
  let baseHr = 0n;
  let checks = 0;

  const reanchor = (): void => {
    // Warm both clocks first: the first process.hrtime.bigint() of a process is slow (measured here
    // at 0.7 ms), and an anchor taken across it served time that far behind until the next one.
    for (let i = 0; i < 8; i++) { process.hrtime.bigint(); Date.now(); }
    // The tick is bracketed by two hrtime reads: `lo`, read before a Date.now() that still returned
    // `start` (so the tick came after it), and `hi`, read after the Date.now() that saw the new
    // millisecond. If we were descheduled in between (a busy machine), the bracket is wide and the
    // anchor would be off by as much: such a tick is refused and the next one tried; after a few
    // refusals the previous anchor stays. A tick already past before the first read has no lower
    // bound at all and is never used (it could be off by as long as we were descheduled).
    for (let attempt = 0; attempt < 5; attempt++) {
      const start = Date.now();
      let lo = -1n;
      let hi = 0n;
      let wall = start;
      for (let spins = 0; spins < 5_000_000; spins++) {
        const hr = process.hrtime.bigint();
        const now = Date.now();
        if (now !== start) { hi = process.hrtime.bigint(); wall = now; break; }
        lo = hr;
      }
      if (wall === start) return; // frozen Date.now() (fake timers): keep what we have
      if (lo < 0n) continue; // the millisecond turned before the first read: no lower bound
      if (hi - lo <= WINDOW_MAX_NS || baseHr === 0n) {
        baseHr = lo + (hi - lo) / 2n;
        baseWallNs = BigInt(wall) * NS_PER_MS;
        if (hi - lo <= WINDOW_MAX_NS) return;
      }
    }
  };

  const nowNs = (): bigint => {
    const ns = baseWallNs + (process.hrtime.bigint() - baseHr);
    // A cheap step check on one reading in 64: the realtime clock moved under us (date -s, chrony step).
    if ((++checks & 63) === 0) {
      const drift = Date.now() - Number(ns / NS_PER_MS);
      if (drift > STEP_TOLERANCE_MS || drift < -STEP_TOLERANCE_MS) {
        reanchor();
        return baseWallNs + (process.hrtime.bigint() - baseHr);
      }
    }
    return ns;
  };

  reanchor();
  return { nowNs, reanchor };
}
