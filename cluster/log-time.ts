import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/log.js';

// Log time for new entries, shared by the StateLog backends: monotonic time since this leader's
// term began, anchored on the newer of the wall clock and the log's last stamp, never going back.
// Wall-clock steps are only slewed in at 1 s per minute (and a step over 2 s is logged), so
// `date -s` on the leader cannot mass-expire leases.
//
// "The wall clock" here is the quorum's, when this member hears its peers (`peerOffsets`: each
// peer's clock minus ours, from the member reports, cluster/member-status.ts): the middle of our
// clock and theirs (the lower middle of an even count). So a leader elected while its own clock is
// wrong anchors on the others' time, not its own, and a step of the leader's clock alone is not
// slewed in at all; with one peer heard and the two disagreeing, the earlier clock counts (log
// time behind ends leases late, never early); with none, our own clock, as before.

export class LogClock {
  #clock: Clock;
  #log: Logger;
  #event: string;
  #lastStamp = 0;
  #anchor: { term: number; mono: number; at: number; lastMono: number } | undefined;
  #clockAlarmAt = -Infinity;
  #peerOffsets: (() => readonly number[]) | undefined;

  /** `event` is the dotted name of the clock-jump warning (`raft.clock_jump`, `etcd.clock_jump`). */
  constructor(clock: Clock, log: Logger, event: string) {
    this.#clock = clock;
    this.#log = log;
    this.#event = event;
  }

  /** Where the peers' clock offsets come from (ms, theirs minus ours; only peers heard lately). */
  usePeerOffsets(offsets: () => readonly number[]): void {
    this.#peerOffsets = offsets;
  }

  /** The wall clock as the members heard agree on it (see the top of the file). */
  wallMs(): number {
    const wall = this.#clock.wallMs();
    const offsets = this.#peerOffsets?.() ?? [];
    if (offsets.length === 0) return wall;
    const all = [0, ...offsets].sort((a, b) => a - b);
    return wall + all[Math.floor((all.length - 1) / 2)]!;
  }

  /** The stamp of a new entry proposed in `term`, given the newest log time applied (`lastAt`). */
  stamp(term: number, lastAt: number): number {
    const mono = this.#clock.monotonicMs();
    const wall = this.wallMs();
    if (!this.#anchor || this.#anchor.term !== term) {
      this.#anchor = { term, mono, at: Math.max(wall, lastAt, this.#lastStamp), lastMono: mono };
    }
    const a = this.#anchor;
    const derived = a.at + (mono - a.mono);
    const drift = wall - derived;
    const slew = (mono - a.lastMono) / 60;
    a.at += Math.max(-slew, Math.min(slew, drift));
    a.lastMono = mono;
    // Our own clock against log time: a step of it is worth a warning even where the quorum's
    // clock, which log time follows, did not move.
    const ownDrift = this.#clock.wallMs() - derived;
    if ((Math.abs(drift) > 2000 || Math.abs(ownDrift) > 2000) && mono - this.#clockAlarmAt > 60_000) {
      this.#clockAlarmAt = mono;
      this.#log.warn({ event: this.#event, driftMs: Math.round(drift), ownDriftMs: Math.round(ownDrift) },
        Math.abs(drift) > 2000 ? `the wall clock is ${Math.round(drift)} ms away from log time; slewing at 1 s/min`
          : `this member's wall clock is ${Math.round(ownDrift)} ms away from log time and from its peers' clocks; log time follows theirs`);
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
    const base = a !== undefined && a.term === term ? a.at + (this.#clock.monotonicMs() - a.mono) : this.wallMs();
    return Math.max(this.#lastStamp, Math.round(base), lastAt);
  }
}
