// Time comes in through a Clock so cores and tests never read the real one. Monotonic time drives
// timers and leases of leadership; wall time is only for stamping and display.
export interface Clock {
  /** Milliseconds from an arbitrary origin; never steps backwards. */
  monotonicMs(): number;
  /** Milliseconds since the Unix epoch; may jump. */
  wallMs(): number;
}

export const systemClock: Clock = {
  monotonicMs: () => performance.now(),
  wallMs: () => Date.now(),
};
