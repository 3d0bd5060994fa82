import type dgram from 'node:dgram';
import { dgramState } from './udp-reading.js';

// A UDP server's per-datagram path without dgram's JavaScript around it. Node's dgram, per datagram
// received: an EventEmitter emit and a property added to `rinfo`; per datagram sent: argument checks,
// an array, a closure, the destination lookup, an async-id scope, a request object made in C++, and
// (with a callback) a nextTick. For a DNS answer that is several thousand instructions and a few
// hundred bytes of heap beside a JavaScript answer path of ~4,000 instructions (services/dns/README.md).
//
// Here a datagram goes to the handler straight from the socket's libuv handle (its `onmessage`, which
// dgram itself sets), and a reply is given to the handle's `send` with one request object and one
// list reused while sends complete at once (libuv's try-send: the kernel has copied the bytes when
// it returns; only when the socket's send buffer is full does libuv queue the send and keep both).
// The reply buffer itself can then be reused too: `buffer(size)` hands out views of one scratch
// area, which a queued send retires.
//
// These are Node's internal shapes (Node 20: the socket's state symbol, `handle.onmessage`,
// `handle.send(req, list, count, port, address, hasCallback)` returning bytes + 1 for a send done at
// once, 0 for a queued one, a negative errno for a failure, and its four-argument form
// `handle.send(req, list, count, hasCallback)` for a connected socket, which dgram uses when it has
// no port to give; `SendWrap` from the `udp_wrap` binding, reachable in worker threads too). Where
// any of them is missing, both fall back to dgram (`socket.on('message')`, `socket.send`), as the
// lookup and read-stop hooks do (udp-lookup.ts, udp-reading.ts).

/** The bytes have left (copied by the kernel): the buffer may be reused at once. */
export const SEND_DONE = 1;
/** Queued until the socket can take it: the buffer must stay as it is until then. */
export const SEND_QUEUED = 0;
/** Not sent (a closed socket, an error from the kernel). */
export const SEND_FAILED = -1;

type OnMessage = (nread: number, handle: unknown, buf: Buffer, rinfo: dgram.RemoteInfo) => unknown;

interface DirectHandle {
  onmessage?: OnMessage;
  send(req: object, list: (Uint8Array | null)[], count: number, port: number, address: string, hasCallback: boolean): number;
  /** A connected socket's send: no destination (the handle aborts the process on a 5-argument call). */
  send(req: object, list: (Uint8Array | null)[], count: number, hasCallback: boolean): number;
}

interface DirectState {
  handle: DirectHandle | null;
  receiving: boolean;
}

type SendWrapClass = new () => { list?: unknown };

let sendWrap: SendWrapClass | null | undefined;

/** Node's request class for UDP sends (what dgram makes per send), or null where this Node has none. */
function sendWrapClass(): SendWrapClass | null {
  if (sendWrap !== undefined) return sendWrap;
  try {
    const binding = (process as unknown as { binding(name: string): { SendWrap?: unknown } }).binding('udp_wrap');
    sendWrap = typeof binding.SendWrap === 'function' ? binding.SendWrap as SendWrapClass : null;
  } catch {
    sendWrap = null;
  }
  return sendWrap;
}

/**
 * Calls `handler` for every datagram arriving on the bound `socket` from now on. Returns true when
 * it goes straight from the socket's handle, false when this Node (or a socket not bound yet) has
 * another shape and it is a 'message' listener instead. Receive errors still reach the socket's
 * 'error' event either way.
 */
export function onDatagram(socket: dgram.Socket, handler: (msg: Buffer, rinfo: dgram.RemoteInfo) => void): boolean {
  const handle = dgramState(socket)?.handle as DirectHandle | null | undefined;
  const original = handle?.onmessage;
  if (handle == null || typeof original !== 'function' || original.length !== 4) {
    socket.on('message', handler);
    return false;
  }
  handle.onmessage = function onDatagramMessage(this: unknown, nread, h, buf, rinfo) {
    if (nread < 0) return original.call(this, nread, h, buf, rinfo);
    handler(buf, rinfo);
    return undefined;
  };
  return true;
}

/** The largest reply `buffer()` hands out of its scratch area (bigger ones are allocated). */
export const SCRATCH_BYTES = 4096;

/**
 * Replies on one socket: `send` through the handle (or dgram where this Node has another shape),
 * `buffer` for a reply's bytes that need not outlive its send.
 */
export class DatagramSender {
  /** Whether sends go through the handle (false: dgram's `send`). */
  readonly direct: boolean;
  readonly socket: dgram.Socket;
  #state: DirectState | null;
  #req: { list?: unknown } | null;
  #list: (Uint8Array | null)[] = [null];
  #scratch: Buffer | null = null;
  /** Views of `#scratch` by length, made once each. */
  #views: (Buffer | undefined)[] = [];

  constructor(socket: dgram.Socket) {
    this.socket = socket;
    const state = dgramState(socket) as unknown as DirectState | null;
    const SendWrap = sendWrapClass();
    this.direct = state !== null && SendWrap !== null && typeof state.handle?.send === 'function';
    this.#state = this.direct ? state : null;
    this.#req = this.direct ? new SendWrap!() : null;
  }

  /**
   * `size` bytes to write a reply into, valid until the next `buffer` call: a view of the scratch
   * area when sends go through the handle, else (or when larger than the area) a buffer of its own.
   */
  buffer(size: number): Buffer {
    if (!this.direct || size > SCRATCH_BYTES) return Buffer.allocUnsafe(size);
    let v = this.#views[size];
    if (v === undefined) {
      // One allocation of its own: a slice of Node's shared pool would keep a whole slab alive.
      this.#scratch ??= Buffer.allocUnsafeSlow(SCRATCH_BYTES);
      v = this.#scratch.subarray(0, size);
      this.#views[size] = v;
    }
    return v;
  }

  /**
   * Sends `bytes` to `address` (an IP literal of the socket's family) and `port`, or, with neither
   * given, to the peer the socket is connected to: SEND_DONE, SEND_QUEUED or SEND_FAILED (also for
   * a destination given on a connected socket, or none on an unconnected one). `onLateError` is
   * called for a failure reported after the call returned, which only dgram's path (the fallback,
   * or a socket not yet bound) reports; a queued send through the handle that fails later is not
   * reported.
   */
  send(bytes: Uint8Array, port?: number, address?: string, onLateError?: () => void): number {
    const state = this.#state;
    if (state === null || !state.receiving) return this.#dgramSend(bytes, port, address, onLateError);
    const handle = state.handle;
    if (handle === null) return SEND_FAILED;
    const connected = port === undefined && address === undefined;
    // The handle checks its arguments' types by aborting the process: only a valid port goes in.
    if (!connected && ((port! & 0xffff) !== port || typeof address !== 'string')) return SEND_FAILED;
    const list = this.#list;
    list[0] = bytes;
    // (The kernel refuses a destination on a connected socket and none on an unconnected one.)
    const r = connected ? handle.send(this.#req!, list, 1, false) : handle.send(this.#req!, list, 1, port!, address!, false);
    if (r > 0) return SEND_DONE;
    if (r < 0) return SEND_FAILED;
    // Queued: libuv holds the request and points at the bytes until the socket takes them. The
    // request keeps the list (and so the bytes) alive; the next send gets new ones, and a reply
    // written in the scratch area moves the area on.
    this.#req!.list = list;
    this.#req = new (sendWrapClass()!)();
    this.#list = [null];
    if (this.#scratch !== null && bytes.buffer === this.#scratch.buffer) {
      this.#scratch = null;
      this.#views = [];
    }
    return SEND_QUEUED;
  }

  #dgramSend(bytes: Uint8Array, port: number | undefined, address: string | undefined, onLateError?: () => void): number {
    const late = onLateError === undefined ? undefined : (err: Error | null): void => { if (err) onLateError(); };
    try {
      if (port === undefined && address === undefined) this.socket.send(bytes, late);
      else this.socket.send(bytes, port, address, late);
    } catch {
      return SEND_FAILED;
    }
    // dgram keeps the bytes until they leave; the scratch area moves on if they were in it.
    if (this.#scratch !== null && bytes.buffer === this.#scratch.buffer) {
      this.#scratch = null;
      this.#views = [];
    }
    return SEND_QUEUED;
  }
}
