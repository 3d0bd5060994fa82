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

export function createHrWallClock(): HrWallClock {
  let baseWallNs = 0n;
  let baseHr = 0n;
  let checks = 0;

  const reanchor = (): void => {
    // Warm both clocks first: the first process.hrtime.bigint() of a process is slow (measured here
    // at 0.7 ms), and an anchor taken across it served time that far behind until the next one.
    for (let i = 0; i < 8; i++) { process.hrtime.bigint(); Date.now(); }
    const start = Date.now();
    let hr = process.hrtime.bigint();
    let wall = Date.now();
    // Spin until the millisecond changes; bounded by the clock itself (<= 1 ms), and by a count in
    // case Date.now() is frozen (a test harness that fakes timers). `hr` is read just before each
    // Date.now(), so the tick happened within one loop turn of it.
    for (let spins = 0; wall === start && spins < 5_000_000; spins++) {
      hr = process.hrtime.bigint();
      wall = Date.now();
    }
    baseHr = hr;
    baseWallNs = BigInt(wall) * NS_PER_MS;
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
