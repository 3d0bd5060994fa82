import type { LinkLiveness } from '../timers.js';

// The liveness of one authenticated peer link, pure: the transport says when it wrote a frame and
// when bytes arrived (monotonic ms, its own clock), and asks what is due. Only what arrives on
// this link counts as heard: the pings this end sends, and what comes in on the other connection
// to the same peer (each member dials each peer, so a pair has two links), change nothing here.

export type LinkDue = 'ok' | 'ping' | 'dead';

export class LinkWatch {
  readonly timing: LinkLiveness;
  #heardAt: number;
  #sentAt: number;

  constructor(timing: LinkLiveness, now: number) {
    this.timing = timing;
    this.#heardAt = now;
    this.#sentAt = now;
  }

  /** Bytes of the peer arrived on this link. */
  heard(now: number): void {
    if (now > this.#heardAt) this.#heardAt = now;
  }

  /** This end wrote a frame (Raft, report or ping) to the link. */
  sent(now: number): void {
    if (now > this.#sentAt) this.#sentAt = now;
  }

  /** How long the link has been silent. */
  silentMs(now: number): number {
    return Math.max(0, now - this.#heardAt);
  }

  /**
   * The earliest moment due() can change from 'ok' (monotonic ms): a ping once nothing was sent for
   * pingMs, the link dead just past deadMs of silence. Later bytes either way only move it later,
   * so a timer armed for it may find nothing due and is armed again (Transport: one timer, no poll).
   */
  nextDueAt(): number {
    return Math.min(this.#sentAt + this.timing.pingMs, this.#heardAt + this.timing.deadMs + 1);
  }

  /**
   * `dead` once nothing was heard for longer than deadMs; else `ping` once nothing was sent for
   * pingMs (or pingMs - pingEarlyMs: a ping a little early lets one wake-up serve several links).
   */
  due(now: number, pingEarlyMs = 0): LinkDue {
    if (now - this.#heardAt > this.timing.deadMs) return 'dead';
    if (now - this.#sentAt >= this.timing.pingMs - pingEarlyMs) return 'ping';
    return 'ok';
  }
}
