import { SEND_DONE, SEND_FAILED, SEND_QUEUED } from '../../lib/udp-direct.js';
import { UDP_PAYLOAD_MAX } from './wire.js';

// Replies of one turn of the event loop sent together, after the turn's reads. libuv reads up to 32
// datagrams from a readable socket per turn; sending each reply as soon as it is written wakes the
// asker (dnsperf, a resolver) in the middle of those reads, and on a machine where asker and server
// share the cores the woken asker preempts the server on its way back from `sendmsg`: a context
// switch per reply. Written into one arena and sent from a `setImmediate` (the check phase, right
// after the poll phase's reads), the replies of a turn leave in one burst, the first wake-up takes
// the rest along, and the server reads its next batch meanwhile. The added wait is the rest of the
// turn (at most 31 more answers: tens of microseconds at saturation, none for a lone query).
//
// Each reply of a turn has a slot of the arena (the n-th reply the n-th slot), and the view of a slot
// for a reply's length is made once and kept: a reply allocates nothing. A view per reply (a
// `subarray` object, ~100 bytes) was most of what our JavaScript allocated per answer, and every
// scavenge of the worker's young generation stops all the queries in flight.
//
// No protocol here: the bytes sent are exactly the bytes written (fast-send.test.ts).

/** Where a reply is written and sent from: `DatagramSender` (lib/udp-direct.ts) or a `ReplyBatch`. */
export interface ReplySink {
  /** `size` bytes to write a reply into, valid until it is sent (or the next `buffer` call). */
  buffer(size: number): Uint8Array;
  /** SEND_DONE, SEND_QUEUED or SEND_FAILED (lib/udp-direct.ts). */
  send(bytes: Uint8Array, port: number, address: string): number;
  /**
   * `send` for a reply made outside a turn's reads of queries (a forwarded answer, made as the
   * upstream's reply is read): a sink that gathers a turn's replies sends it at once when none is
   * waiting (absent: `send`).
   */
  sendAlone?(bytes: Uint8Array, port: number, address: string): number;
}

/** What a batch sends through at the end of the turn (a `DatagramSender`). */
export interface DatagramOut {
  send(bytes: Uint8Array, port: number, address: string): number;
}

/** More replies than this in one turn are sent at once (a turn of several sockets, forwarded answers). */
export const BATCH_REPLIES_MAX = 64;
/** A reply's slot: the largest UDP reply we send (the EDNS limit). A larger one is sent at once, in order. */
export const BATCH_SLOT_BYTES = UDP_PAYLOAD_MAX;
/** The arena the replies of one turn are written into: one slot per reply. */
export const BATCH_ARENA_BYTES = BATCH_REPLIES_MAX * BATCH_SLOT_BYTES;
/** Views of the arena kept for reuse at most (slot x length pairs; ~100 bytes each); past it a view is made per reply. */
export const BATCH_VIEWS_MAX = 4096;

const noViews = (): Map<number, Buffer>[] => Array.from({ length: BATCH_REPLIES_MAX }, () => new Map<number, Buffer>());

/**
 * What runs once a turn's reads are over (the check phase), all from one `setImmediate` a turn:
 * each one costs a call from libuv into JavaScript and an object, and a turn of cached answers had
 * two (the answerer's end of turn, the batch's flush). Run in the order scheduled.
 */
export class TurnEnd {
  #due: Array<() => void> = [];
  #spare: Array<() => void> = [];
  readonly #immediate: (run: () => void) => unknown;
  readonly #run = (): void => {
    const due = this.#due;
    this.#due = this.#spare;
    this.#spare = due;
    // Each runs even if one before it threw (a reply batch whose flush never ran would keep its
    // replies and schedule no flush again); the first error is thrown once all have run.
    let failed: { error: unknown } | null = null;
    for (let i = 0; i < due.length; i++) {
      try {
        due[i]!();
      } catch (error) {
        failed ??= { error };
      }
    }
    due.length = 0;
    if (failed !== null) throw failed.error;
  };

  constructor(immediate: (run: () => void) => unknown = (run) => setImmediate(run)) {
    this.#immediate = immediate;
  }

  /** Runs `fn` once this turn's reads are over (with anything else scheduled for then). */
  readonly schedule = (fn: () => void): void => {
    if (this.#due.push(fn) === 1) this.#immediate(this.#run);
  };
}

/** This process's end of turn (the answerer's sockets and their reply batches share it). */
export const turnEnd = new TurnEnd();

export class ReplyBatch implements ReplySink {
  readonly #out: DatagramOut;
  readonly #schedule: (flush: () => void) => void;
  readonly #onFailed: () => void;
  #arena = Buffer.allocUnsafeSlow(BATCH_ARENA_BYTES);
  /** Per slot, its views by length. */
  #views = noViews();
  #viewCount = 0;
  /** Replies waiting to be sent: the first `#count` entries of the three lists (kept, overwritten). */
  #count = 0;
  #pending: Uint8Array[] = [];
  #ports: number[] = [];
  #addresses: string[] = [];
  #scheduled = false;
  readonly #flush = (): void => { this.#scheduled = false; this.flush(); };

  /**
   * `out` sends; `schedule` runs the flush after the turn's reads (`turnEnd`; tests pass their
   * own); `onFailed` is called for each reply the kernel refused when it was sent.
   */
  constructor(out: DatagramOut, onFailed: () => void, schedule: (flush: () => void) => void = turnEnd.schedule) {
    this.#out = out;
    this.#onFailed = onFailed;
    this.#schedule = schedule;
  }

  /** Replies written and not yet sent. */
  get pending(): number { return this.#count; }

  buffer(size: number): Uint8Array {
    if (size > BATCH_SLOT_BYTES) return Buffer.allocUnsafe(size);
    if (this.#count >= BATCH_REPLIES_MAX) this.flush();
    return this.#view(this.#count, size);
  }

  /**
   * Queues `bytes` for `address`:`port` until the end of the turn and returns SEND_DONE (a refusal
   * then is reported through `onFailed`). Bytes not written into `buffer()`'s area are copied in;
   * bytes larger than a slot go at once, after the replies written before them.
   */
  send(bytes: Uint8Array, port: number, address: string): number {
    if (this.#count >= BATCH_REPLIES_MAX) this.flush();
    const slot = this.#count;
    let view = bytes;
    if (bytes.buffer !== this.#arena.buffer || bytes.byteOffset !== this.#arena.byteOffset + slot * BATCH_SLOT_BYTES || bytes.length > BATCH_SLOT_BYTES) {
      if (bytes.length > BATCH_SLOT_BYTES) { this.flush(); return this.#sendNow(bytes, port, address); }
      view = this.#view(slot, bytes.length);
      view.set(bytes);
    }
    this.#pending[slot] = view;
    this.#ports[slot] = port;
    this.#addresses[slot] = address;
    this.#count = slot + 1;
    if (this.#count >= BATCH_REPLIES_MAX) this.flush();
    else if (!this.#scheduled) { this.#scheduled = true; this.#schedule(this.#flush); }
    return SEND_DONE;
  }

  /**
   * A reply that is not one of a turn's reads of queries: a forwarded answer, made when the
   * upstream's reply was read. With no reply of this turn waiting there is nothing to gather it
   * with, so it leaves at once (the batch would add a check-phase callback and the rest of the turn
   * to its wait: at 4,000 misses a second nearly every upstream reply has a turn of its own); else
   * it queues behind those written before it, as `send`.
   */
  sendAlone(bytes: Uint8Array, port: number, address: string): number {
    if (this.#count > 0) return this.send(bytes, port, address);
    const r = this.#out.send(bytes, port, address);
    // Queued by the socket while written in the arena (slot 0): the next replies get an arena of their own.
    if (r === SEND_QUEUED && bytes.buffer === this.#arena.buffer) this.#newArena();
    return r === SEND_FAILED ? SEND_FAILED : SEND_DONE;
  }

  /** Sends every reply waiting, in the order written. */
  flush(): void {
    const n = this.#count;
    this.#count = 0;
    let queued = false;
    for (let i = 0; i < n; i++) {
      const r = this.#out.send(this.#pending[i]!, this.#ports[i]!, this.#addresses[i]!);
      if (r === SEND_QUEUED) queued = true;
      else if (r === SEND_FAILED) this.#onFailed();
    }
    // A send the socket queued keeps pointing into the arena until it leaves: the next replies get
    // an arena (and views) of their own.
    if (queued) this.#newArena();
  }

  #newArena(): void {
    this.#arena = Buffer.allocUnsafeSlow(BATCH_ARENA_BYTES);
    this.#views = noViews();
    this.#viewCount = 0;
  }

  /** The view of `slot` for a reply of `size` bytes: made once and kept (up to BATCH_VIEWS_MAX in all). */
  #view(slot: number, size: number): Buffer {
    const views = this.#views[slot]!;
    let v = views.get(size);
    if (v === undefined) {
      const at = slot * BATCH_SLOT_BYTES;
      v = this.#arena.subarray(at, at + size);
      if (this.#viewCount < BATCH_VIEWS_MAX) { views.set(size, v); this.#viewCount++; }
    }
    return v;
  }

  #sendNow(bytes: Uint8Array, port: number, address: string): number {
    const r = this.#out.send(bytes, port, address);
    if (r === SEND_FAILED) this.#onFailed();
    return r === SEND_FAILED ? SEND_FAILED : SEND_DONE;
  }
}
