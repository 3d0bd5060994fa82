import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/log.js';

// Log time for new entries, shared by the StateLog backends: monotonic time since this leader's
// term began, anchored on the newer of the wall clock and the log's last stamp, never going back.
// Wall-clock steps are only slewed in at 1 s per minute (and a step over 2 s is logged), so
// `date -s` on the leader cannot mass-expire leases.

export class LogClock {
  #clock: Clock;
  #log: Logger;
  #event: string;
  #lastStamp = 0;
  #anchor: { term: number; mono: number; at: number; lastMono: number } | undefined;
  #clockAlarmAt = -Infinity;

  /** `event` is the dotted name of the clock-jump warning (`raft.clock_jump`, `etcd.clock_jump`). */
  constructor(clock: Clock, log: Logger, event: string) {
    this.#clock = clock;
    this.#log = log;
    this.#event = event;
  }

  /** The stamp of a new entry proposed in `term`, given the newest log time applied (`lastAt`). */
  stamp(term: number, lastAt: number): number {
    const mono = this.#clock.monotonicMs();
    const wall = this.#clock.wallMs();
    if (!this.#anchor || this.#anchor.term !== term) {
      this.#anchor = { term, mono, at: Math.max(wall, lastAt, this.#lastStamp), lastMono: mono };
    }
    const a = this.#anchor;
    const derived = a.at + (mono - a.mono);
    const drift = wall - derived;
    const slew = (mono - a.lastMono) / 60;
    a.at += Math.max(-slew, Math.min(slew, drift));
    a.lastMono = mono;
    if (Math.abs(drift) > 2000 && mono - this.#clockAlarmAt > 60_000) {
      this.#clockAlarmAt = mono;
      this.#log.warn({ event: this.#event, driftMs: Math.round(drift) }, `the wall clock is ${Math.round(drift)} ms away from log time; slewing at 1 s/min`);
    }
    const at = Math.max(this.#lastStamp, Math.round(a.at + (mono - a.mono)), lastAt);
    this.#lastStamp = at;
    return at;
  }

  /**
   * Log time now, without stamping anything: what this member compares log-time expiries with
   * (DHCP leases). Within the term it stamps in, it moves with the monotonic clock from the anchor,
   * so a wall-clock step does not move it; otherwise (a follower, or a leader before its first
   * stamp) it is the newer of the wall clock and the log's last time, as a new anchor would be.
   */
  now(term: number, lastAt: number): number {
    const a = this.#anchor;
    const base = a !== undefined && a.term === term ? a.at + (this.#clock.monotonicMs() - a.mono) : this.#clock.wallMs();
    return Math.max(this.#lastStamp, Math.round(base), lastAt);
  }
}
