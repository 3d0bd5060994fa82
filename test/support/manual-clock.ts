import type { Clock } from '../../lib/clock.js';

// A Clock moved by hand. Monotonic and wall time are separate so a test can jump the wall clock
// (an operator's `date -s`, a bad RTC) while monotonic time only goes forward.
export class ManualClock implements Clock {
  #mono: number;
  #wall: number;

  constructor(wallMs = Date.UTC(2026, 0, 1), monoMs = 1000) {
    this.#wall = wallMs;
    this.#mono = monoMs;
  }

  monotonicMs(): number { return this.#mono; }
  wallMs(): number { return this.#wall; }

  /** Both clocks move forward together. */
  advance(ms: number): void {
    if (ms < 0) throw new Error('advance() takes a non-negative step; use jumpWall() for wall steps');
    this.#mono += ms;
    this.#wall += ms;
  }

  /** Only the wall clock steps, either way. */
  jumpWall(ms: number): void {
    this.#wall += ms;
  }
}
