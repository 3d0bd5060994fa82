// Wall-clock steps seen from the monotonic clock: the offset wall - monotonic stays put while the
// wall clock only slews, and moves by the step when it is set (date -s, chrony's makestep, an RTC
// read late). Pure: the caller passes both readings. No timers here; the daemon's sampler calls it.

/** A step of the wall clock against the monotonic clock. */
export interface WallStep { stepMs: number; fromWallMs: number; toWallMs: number }

/** Steps larger than this are reported; a slewing clock (at most 0.5 ms/s) never gets near it. */
export const WALL_STEP_MIN_MS = 2000;

export class WallStepWatch {
  #offsetMs: number | undefined;
  #steps = 0;
  #last: (WallStep & { atMonoMs: number }) | undefined;

  /** Takes a reading of both clocks; returns the step since the last reading, if one was larger than WALL_STEP_MIN_MS. */
  observe(monotonicMs: number, wallMs: number): WallStep | null {
    const offsetMs = wallMs - monotonicMs;
    const before = this.#offsetMs;
    this.#offsetMs = offsetMs;
    if (before === undefined || Math.abs(offsetMs - before) <= WALL_STEP_MIN_MS) return null;
    this.#steps++;
    const step = { stepMs: Math.round(offsetMs - before), fromWallMs: Math.round(monotonicMs + before), toWallMs: Math.round(wallMs) };
    this.#last = { ...step, atMonoMs: monotonicMs };
    return step;
  }

  /** Steps seen since start, and the last one with how long ago (s) it was seen. */
  report(monotonicMs: number): { steps: number; last: (WallStep & { agoS: number }) | null } {
    const last = this.#last;
    return { steps: this.#steps, last: last === undefined ? null : { stepMs: last.stepMs, fromWallMs: last.fromWallMs, toWallMs: last.toWallMs, agoS: Math.round((monotonicMs - last.atMonoMs) / 1000) } };
  }
}

/** The status line for the steps seen ('' when none): "clock: the wall clock stepped -10800.0 s 12 s ago (1 step since start) ...". */
export function formatWallSteps(report: ReturnType<WallStepWatch['report']> | undefined): string {
  if (report === undefined || report.last === null) return '';
  const { stepMs, agoS } = report.last;
  return `clock: the wall clock stepped ${stepMs > 0 ? '+' : ''}${(stepMs / 1000).toFixed(1)} s ${agoS} s ago (${report.steps} step${report.steps === 1 ? '' : 's'} since start); leases, Raft and the VIP are not moved by it\n`;
}
