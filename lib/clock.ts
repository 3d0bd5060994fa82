// Time comes in through a Clock so cores and tests never read the real one. Monotonic time drives
// timers and leases of leadership; wall time is only for stamping and display.
import { performance } from 'node:perf_hooks';

export interface Clock {
  /** Milliseconds from an arbitrary origin; never steps backwards. */
  monotonicMs(): number;
  /** Milliseconds since the Unix epoch; may jump. */
  wallMs(): number;
}

export const systemClock: Clock = {
  // The module's binding, not the global: Node's global `performance` is a getter, so every read
  // of it from hot code (a DNS cache hit reads the clock) went through a global-load IC miss.
  monotonicMs: () => performance.now(),
  wallMs: () => Date.now(),
};

/**
 * The setTimeout delay for a timer due at `dueAt` (monotonic ms) when it is `now`. Node runs a
 * timer once its loop clock, whole milliseconds read at the start of the loop turn, has moved on
 * by the delay; that clock lags performance.now() by up to a millisecond (more late in a busy turn),
 * so a delay of exactly dueAt - now fired before dueAt about one time in four, and a caller that
 * then found nothing due armed again for the sub-millisecond rest: a second wake-up for one event.
 * Rounded up, plus one millisecond, it fires at or after dueAt (at most about 2 ms late).
 */
export function timerDelayMs(dueAt: number, now: number): number {
  return Math.max(1, Math.ceil(dueAt - now) + 1);
}
