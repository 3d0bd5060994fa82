import type { TftpOption } from './wire.js';

// The pure core of one read transfer: events in (ACK n, ERROR, timer fired), effects out (send OACK,
// send DATA blocks, arm the timer, finish, abort). No socket, clock or file here: the shell feeds
// it the time and does what the effects say.
//
// Blocks are counted in absolute numbers (1, 2, ... past 65535); only the wire carries them modulo
// 2^16. A file of `size` octets has floor(size / blksize) + 1 blocks: the last one is short, and
// empty when the size is an exact multiple of blksize (RFC 1350 §6).
//
// Retransmission happens on timeout only (with back-off and a retry limit). An ACK that moves
// nothing forward never causes a resend with windowsize 1 (the Sorcerer's Apprentice bug, RFC 1123
// §4.2.3.1); with a window (RFC 7440) it restarts the window at most once per window start, so a
// duplicated ACK cannot start a resend storm. An ACK for block n inside the window restarts the
// window at n + 1.

export interface NegotiationLimits {
  blksizeMax: number;
  windowsizeMax: number;
  /** Retransmit timeout when the client asks for none. */
  timeoutMs: number;
}

export interface Negotiated {
  blksize: number;
  windowsize: number;
  timeoutMs: number;
  /** What the OACK carries: only accepted options, in the client's order; empty = no OACK. */
  oack: TftpOption[];
}

const DIGITS = /^[0-9]{1,10}$/;

/** RFC 2347/2348/2349/7440 negotiation for a read of a `size`-octet file. */
export function negotiate(options: readonly TftpOption[], size: number, limits: NegotiationLimits): Negotiated {
  const out: Negotiated = { blksize: 512, windowsize: 1, timeoutMs: limits.timeoutMs, oack: [] };
  const seen = new Set<string>();
  for (const { name, value } of options) {
    if (seen.has(name)) continue; // a repeated option: the first one counts
    seen.add(name);
    if (!DIGITS.test(value)) continue; // every option we know is a decimal number
    const n = Number(value);
    switch (name) {
      case 'blksize':
        // RFC 2348: 8..65464; the server may answer with a smaller size (our cap).
        if (n < 8 || n > 65464) continue;
        out.blksize = Math.min(n, limits.blksizeMax);
        out.oack.push({ name, value: String(out.blksize) });
        break;
      case 'tsize':
        // RFC 2349: on a read the client sends 0 and the server answers with the size.
        out.oack.push({ name, value: String(size) });
        break;
      case 'timeout':
        // RFC 2349: 1..255 seconds, acknowledged as sent. The server retransmits after the shorter of
        // this and its own timeout: clients ask for 5-6 s, which on a LAN would turn each lost
        // packet into a 6 s stall; an early DATA costs the client only a duplicate.
        if (n < 1 || n > 255) continue;
        out.timeoutMs = Math.min(n * 1000, limits.timeoutMs);
        out.oack.push({ name, value: String(n) });
        break;
      case 'windowsize':
        // RFC 7440: 1..65535; the server may answer with a smaller window (our cap).
        if (n < 1 || n > 65535) continue;
        out.windowsize = Math.min(n, limits.windowsizeMax);
        out.oack.push({ name, value: String(out.windowsize) });
        break;
      default:
        break; // RFC 2347: unknown options are ignored, and left out of the OACK
    }
  }
  return out;
}

export interface TransferParams {
  size: number;
  blksize: number;
  windowsize: number;
  timeoutMs: number;
  /** Retransmissions of the same state before giving up. */
  retries: number;
  /** Give up when nothing moved forward for this long, whatever the retries. */
  idleTimeoutMs: number;
  /** Send an OACK first and wait for ACK 0. */
  oack: boolean;
  /** Longest timer after back-off. */
  timeoutMaxMs?: number;
  /**
   * Retransmissions of the first OACK or DATA before giving up while the client has acknowledged
   * nothing (`confirmed`): a spoofed or dead source. Ends with reason 'unconfirmed'. Unset: `retries`.
   */
  unconfirmedRetries?: number;
}

export type TransferEffect =
  | { kind: 'oack' }
  | { kind: 'data'; block: number; offset: number; length: number; retransmit: boolean }
  | { kind: 'timer'; ms: number }
  | { kind: 'done' }
  | { kind: 'abort'; reason: 'timeout' | 'unconfirmed' | 'idle' | 'peer-error' | 'cancelled' };

export type TransferEvent =
  | { kind: 'ack'; block: number }
  | { kind: 'error'; code: number }
  | { kind: 'timeout' }
  | { kind: 'cancel' };

export type TransferPhase = 'new' | 'oack' | 'data' | 'done' | 'aborted';

/**
 * What `ack()` did, for the shell's per-ACK path without allocation: nothing, send the blocks
 * `[sendFrom, sendTo)` and arm the timer with `timerMs`, or the transfer is done. `step()` turns
 * the same outcome into effects.
 */
export const AckOutcome = { ignored: 0, send: 1, done: 2 } as const;
export type AckOutcome = (typeof AckOutcome)[keyof typeof AckOutcome];

export class Transfer {
  readonly params: TransferParams;
  readonly lastBlock: number;
  #phase: TransferPhase = 'new';
  /** Lowest block not yet acknowledged. */
  #base = 1;
  /** Next block to send. */
  #next = 1;
  /** The window start we already restarted once for a no-progress ACK. */
  #restartedAt = 0;
  #tries = 0;
  #timerMs: number;
  #lastProgressMs = 0;
  /** Highest block ever sent: anything at or below it sent again is a retransmission. */
  #highestSent = 0;
  /** The blocks the last send decision released: [sendFrom, sendTo). */
  sendFrom = 0;
  sendTo = 0;
  /** Blocks at or below this in the last send decision are retransmissions. */
  #sentBefore = 0;
  // Figures for the transfer log line.
  sentBlocks = 0;
  retransmits = 0;
  ignoredAcks = 0;
  /**
   * The client has acknowledged something (the OACK or a block): it is there and reads what we
   * send. Until then the transfer has cost the client nothing and may be a spoofed or dead source.
   */
  confirmed = false;

  constructor(params: TransferParams) {
    this.params = params;
    this.lastBlock = Math.floor(params.size / params.blksize) + 1;
    this.#timerMs = params.timeoutMs;
  }

  get phase(): TransferPhase { return this.#phase; }
  /** Blocks sent and not yet acknowledged. */
  get inFlight(): number { return this.#next - this.#base; }
  /** Blocks the client has acknowledged. */
  get ackedBlocks(): number { return this.#base - 1; }
  /** Octets the client has acknowledged. */
  get ackedBytes(): number { return Math.min(this.params.size, (this.#base - 1) * this.params.blksize); }
  get finished(): boolean { return this.#phase === 'done' || this.#phase === 'aborted'; }
  /** The retransmit timer to arm after a send decision. */
  get timerMs(): number { return this.#timerMs; }
  /** Retransmissions among the blocks of the last send decision. */
  get resent(): number { return Math.max(0, Math.min(this.sendTo, this.#sentBefore + 1) - this.sendFrom); }
  /** Time since the client last acknowledged something new (or since the start). */
  idleMs(nowMs: number): number { return this.#phase === 'new' ? 0 : Math.max(0, nowMs - this.#lastProgressMs); }
  /**
   * Stalled: nothing acknowledged for two retransmit intervals, i.e. a retransmission sent after
   * one interval went unanswered for one more. A client that is gone (power cut, crashed, gave up)
   * looks like this; a live one answers a retransmission within a round trip. Such a transfer would
   * only end on the server after timeout x retries, so a planned failover does not wait for it.
   */
  stalled(nowMs: number): boolean { return !this.finished && this.idleMs(nowMs) >= this.stallAfterMs; }
  get stallAfterMs(): number { return 2 * this.params.timeoutMs; }

  start(nowMs: number): TransferEffect[] {
    if (this.#phase !== 'new') return [];
    this.#lastProgressMs = nowMs;
    if (this.params.oack) {
      this.#phase = 'oack';
      return [{ kind: 'oack' }, this.#timer()];
    }
    this.#phase = 'data';
    return this.#fill([]);
  }

  step(event: TransferEvent, nowMs: number): TransferEffect[] {
    if (this.finished || this.#phase === 'new') return [];
    switch (event.kind) {
      case 'ack': {
        const outcome = this.ack(event.block, nowMs);
        return outcome === AckOutcome.send ? this.#effects([]) : outcome === AckOutcome.done ? [{ kind: 'done' }] : [];
      }
      case 'error':
        // RFC 2347: a client refusing our OACK answers ERROR 8; any peer ERROR ends the transfer.
        this.#phase = 'aborted';
        return [{ kind: 'abort', reason: 'peer-error' }];
      case 'cancel':
        this.#phase = 'aborted';
        return [{ kind: 'abort', reason: 'cancelled' }];
      case 'timeout': return this.#timeout(nowMs);
    }
  }

  /**
   * An ACK (block number as on the wire), without allocating: the shell's per-packet path. On
   * `send`, blocks [sendFrom, sendTo) go out and the timer is armed with `timerMs`.
   */
  ack(wireBlock: number, nowMs: number): AckOutcome {
    if (this.finished || this.#phase === 'new') return AckOutcome.ignored;
    if (this.#phase === 'oack') {
      if (wireBlock !== 0) { this.ignoredAcks++; return AckOutcome.ignored; }
      this.#phase = 'data';
      this.#progress(nowMs);
      this.#release();
      return AckOutcome.send;
    }
    // The ACK names a block modulo 2^16; map it to the one absolute block in [base-1, base-1+65535].
    const acked = this.#base - 1 + ((wireBlock - (this.#base - 1)) & 0xffff);
    if (acked > this.#next - 1) { this.ignoredAcks++; return AckOutcome.ignored; } // old (wrapped) or never sent
    if (acked === this.#base - 1) {
      // Nothing new acknowledged: a duplicate, or a windowed client saying the first block of the
      // window got lost. Restart the window once for that; ignore every other such ACK.
      if (this.params.windowsize === 1 || this.#restartedAt === this.#base || this.inFlight === 0) { this.ignoredAcks++; return AckOutcome.ignored; }
      this.#restartedAt = this.#base;
      this.#next = this.#base;
      this.#release();
      return AckOutcome.send;
    }
    this.#base = acked + 1;
    this.#progress(nowMs);
    if (acked >= this.lastBlock) {
      this.#phase = 'done';
      return AckOutcome.done;
    }
    // RFC 7440 §4: an ACK below the last block sent means the client missed the next one: go on from there.
    if (this.#next > this.#base) this.#next = this.#base;
    this.#release();
    return AckOutcome.send;
  }

  #timeout(nowMs: number): TransferEffect[] {
    if (nowMs - this.#lastProgressMs >= this.params.idleTimeoutMs) {
      this.#phase = 'aborted';
      return [{ kind: 'abort', reason: 'idle' }];
    }
    if (!this.confirmed && this.params.unconfirmedRetries !== undefined && this.#tries >= this.params.unconfirmedRetries) {
      this.#phase = 'aborted';
      return [{ kind: 'abort', reason: 'unconfirmed' }];
    }
    if (this.#tries >= this.params.retries) {
      this.#phase = 'aborted';
      return [{ kind: 'abort', reason: 'timeout' }];
    }
    this.#tries++;
    this.#timerMs = Math.min(this.#timerMs * 2, this.params.timeoutMaxMs ?? this.params.timeoutMs * 8);
    if (this.#phase === 'oack') {
      this.retransmits++;
      return [{ kind: 'oack' }, this.#timer()];
    }
    this.#next = this.#base;
    return this.#fill([]);
  }

  #progress(nowMs: number): void {
    this.confirmed = true;
    this.#lastProgressMs = nowMs;
    this.#tries = 0;
    this.#timerMs = this.params.timeoutMs;
  }

  /** Releases blocks until the window is full or the file ends: [sendFrom, sendTo). */
  #release(): void {
    const { windowsize } = this.params;
    this.sendFrom = this.#next;
    this.#sentBefore = this.#highestSent;
    while (this.#next <= this.lastBlock && this.#next - this.#base < windowsize) this.#next++;
    this.sendTo = this.#next;
    const resent = this.resent;
    this.retransmits += resent;
    this.sentBlocks += this.sendTo - this.sendFrom;
    if (this.sendTo - 1 > this.#highestSent) this.#highestSent = this.sendTo - 1;
  }

  /** Sends blocks until the window is full or the file ends, then arms the timer. */
  #fill(out: TransferEffect[]): TransferEffect[] {
    this.#release();
    return this.#effects(out);
  }

  /** The last send decision as effects: its DATA blocks, then the timer. */
  #effects(out: TransferEffect[]): TransferEffect[] {
    const { blksize, size } = this.params;
    for (let block = this.sendFrom; block < this.sendTo; block++) {
      const offset = (block - 1) * blksize;
      out.push({ kind: 'data', block, offset, length: Math.max(0, Math.min(blksize, size - offset)), retransmit: block <= this.#sentBefore });
    }
    out.push(this.#timer());
    return out;
  }

  #timer(): TransferEffect {
    return { kind: 'timer', ms: this.#timerMs };
  }
}
