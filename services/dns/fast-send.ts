import { SEND_DONE, SEND_FAILED, SEND_QUEUED } from '../../lib/udp-direct.js';

// Replies of one turn of the event loop sent together, after the turn's reads. libuv reads up to 32
// datagrams from a readable socket per turn; sending each reply as soon as it is written wakes the
// asker (dnsperf, a resolver) in the middle of those reads, and on a machine where asker and server
// share the cores the woken asker preempts the server on its way back from `sendmsg`: a context
// switch per reply. Written into one arena and sent from a `setImmediate` (the check phase, right
// after the poll phase's reads), the replies of a turn leave in one burst, the first wake-up takes
// the rest along, and the server reads its next batch meanwhile. The added wait is the rest of the
// turn (at most 31 more answers: tens of microseconds at saturation, none for a lone query).
//
// No protocol here: the bytes sent are exactly the bytes written (fast-send.test.ts).

/** Where a reply is written and sent from: `DatagramSender` (lib/udp-direct.ts) or a `ReplyBatch`. */
export interface ReplySink {
  /** `size` bytes to write a reply into, valid until it is sent (or the next `buffer` call). */
  buffer(size: number): Uint8Array;
  /** SEND_DONE, SEND_QUEUED or SEND_FAILED (lib/udp-direct.ts). */
  send(bytes: Uint8Array, port: number, address: string): number;
}

/** What a batch sends through at the end of the turn (a `DatagramSender`). */
export interface DatagramOut {
  send(bytes: Uint8Array, port: number, address: string): number;
}

/** The arena the replies of one turn are written into (32 reads x the 1,232-byte EDNS limit fit). */
export const BATCH_ARENA_BYTES = 64 * 1024;
/** More replies than this in one turn are sent at once (a turn of several sockets, forwarded answers). */
export const BATCH_REPLIES_MAX = 64;

export class ReplyBatch implements ReplySink {
  readonly #out: DatagramOut;
  readonly #schedule: (flush: () => void) => void;
  readonly #onFailed: () => void;
  #arena = Buffer.allocUnsafeSlow(BATCH_ARENA_BYTES);
  /** Bytes of the arena taken by replies waiting to be sent. */
  #used = 0;
  #pending: Uint8Array[] = [];
  #ports: number[] = [];
  #addresses: string[] = [];
  #scheduled = false;
  readonly #flush = (): void => { this.#scheduled = false; this.flush(); };

  /**
   * `out` sends; `schedule` runs the flush after the turn's reads (`setImmediate`; tests pass their
   * own); `onFailed` is called for each reply the kernel refused when it was sent.
   */
  constructor(out: DatagramOut, onFailed: () => void, schedule: (flush: () => void) => void = setImmediate) {
    this.#out = out;
    this.#onFailed = onFailed;
    this.#schedule = schedule;
  }

  /** Replies written and not yet sent. */
  get pending(): number { return this.#pending.length; }

  buffer(size: number): Uint8Array {
    if (size > BATCH_ARENA_BYTES) return Buffer.allocUnsafe(size);
    if (this.#used + size > BATCH_ARENA_BYTES) this.flush();
    return this.#arena.subarray(this.#used, this.#used + size);
  }

  /**
   * Queues `bytes` for `address`:`port` until the end of the turn and returns SEND_DONE (a refusal
   * then is reported through `onFailed`). Bytes not written into `buffer()`'s area are copied in.
   */
  send(bytes: Uint8Array, port: number, address: string): number {
    let view = bytes;
    if (bytes.buffer !== this.#arena.buffer || bytes.byteOffset !== this.#arena.byteOffset + this.#used) {
      if (bytes.length > BATCH_ARENA_BYTES) return this.#sendNow(bytes, port, address);
      view = this.buffer(bytes.length);
      view.set(bytes);
    }
    this.#used += view.length;
    this.#pending.push(view);
    this.#ports.push(port);
    this.#addresses.push(address);
    if (this.#pending.length >= BATCH_REPLIES_MAX) this.flush();
    else if (!this.#scheduled) { this.#scheduled = true; this.#schedule(this.#flush); }
    return SEND_DONE;
  }

  /** Sends every reply waiting, in the order written. */
  flush(): void {
    const pending = this.#pending;
    let queued = false;
    for (let i = 0; i < pending.length; i++) {
      const r = this.#out.send(pending[i]!, this.#ports[i]!, this.#addresses[i]!);
      if (r === SEND_QUEUED) queued = true;
      else if (r === SEND_FAILED) this.#onFailed();
    }
    pending.length = 0;
    this.#ports.length = 0;
    this.#addresses.length = 0;
    this.#used = 0;
    // A send the socket queued keeps pointing into the arena until it leaves: the next replies get
    // an arena of their own.
    if (queued) this.#arena = Buffer.allocUnsafeSlow(BATCH_ARENA_BYTES);
  }

  #sendNow(bytes: Uint8Array, port: number, address: string): number {
    const r = this.#out.send(bytes, port, address);
    if (r === SEND_FAILED) this.#onFailed();
    return r === SEND_FAILED ? SEND_FAILED : SEND_DONE;
  }
}
