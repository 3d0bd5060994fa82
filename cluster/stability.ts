// How steady this member's leadership has been lately: lease lapses and leadership changes in a
// sliding window, with the longest stall of this process behind a lapse. `lanctl status` shows it
// and doctor warns when leadership keeps moving (services/ops/doctor.ts: raft.unstable): on a
// loaded Pi every lapse blinks the VIP, and every election is a DHCP gap, yet each alone is only a
// warning line in the log.

/** The window the counts cover. */
export const STABILITY_WINDOW_MS = 10 * 60_000;
/** At most this many events are kept per kind (older ones fall out of the count first). */
const KEPT = 256;

export interface StabilityReport {
  windowS: number;
  /** This member's leader lease ran out while it led (the VIP guard drops the VIP). */
  leaseLapses: number;
  /** This member became leader or stopped leading. */
  leaderChanges: number;
  /** The longest stall of this process behind a lapse in the window (ms; 0 when none). */
  longestStallMs: number;
  /**
   * Since the Raft core started (not windowed): timeouts a stall of this process reached and that
   * waited for what arrived meanwhile (`held`: a leader's check-quorum, a campaign), and those that
   * what was read then averted (`averted`: the member kept its role). Raft backend only.
   */
  stallHolds?: { held: number; averted: number };
}

export class Stability {
  #lapses: Array<{ at: number; stallMs: number }> = [];
  #changes: number[] = [];

  lapse(atMs: number, stallMs: number): void {
    this.#lapses.push({ at: atMs, stallMs });
    if (this.#lapses.length > KEPT) this.#lapses.shift();
  }

  leaderChange(atMs: number): void {
    this.#changes.push(atMs);
    if (this.#changes.length > KEPT) this.#changes.shift();
  }

  report(nowMs: number): StabilityReport {
    const since = nowMs - STABILITY_WINDOW_MS;
    const lapses = this.#lapses.filter((l) => l.at > since);
    return {
      windowS: STABILITY_WINDOW_MS / 1000,
      leaseLapses: lapses.length,
      leaderChanges: this.#changes.filter((at) => at > since).length,
      longestStallMs: lapses.reduce((m, l) => Math.max(m, l.stallMs), 0),
    };
  }
}
