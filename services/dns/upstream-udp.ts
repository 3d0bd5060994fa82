import dgram from 'node:dgram';
import type { Random } from '../../lib/random.js';
import { literalLookup } from '../../lib/udp-lookup.js';
import { DatagramSender, SEND_FAILED, onDatagram } from '../../lib/udp-direct.js';

// The sockets upstream UDP queries leave from (shell). A socket per query (socket, bind, epoll
// add, close, and Node's object around it) cost ~25 us of CPU per query more than a reused one in
// a loopback ping-pong (48 vs 23 us), a sixth of a forwarded miss. So queries share a few open
// sockets, each on a port the kernel picked at random, told apart by a random ID that no other
// query waiting on the same socket holds; a socket takes at most `usesMax` queries and is closed
// once its last one is done, so ports keep changing (RFC 5452: an off-path forger must guess both
// the ID and the port, and a port lives for a few dozen queries). The caller checks every reply
// (source, ID, question); this file only routes it by ID.

/**
 * A query waiting on the pool: an object the caller already has (the forwarder's flight), so a query
 * costs no closures or slot object. `take` sets its ID and socket; datagrams with that ID on that
 * socket go to `onUpstreamReply` until `release`.
 */
export interface UpstreamWaiter {
  upstreamId: number;
  /** The socket it holds (opaque; null: none). */
  upstreamSocket: object | null;
  onUpstreamReply(msg: Buffer, rinfo: dgram.RemoteInfo): void;
}

interface PoolSocket {
  socket: dgram.Socket;
  sender: DatagramSender;
  /**
   * ID -> the query waiting for it, or DONE once released: an ID is never taken twice on a socket
   * (it takes at most `usesMax`), and nothing is deleted, so the map never shrinks (V8 makes a new
   * table for a Map that shrinks: ~90 bytes of young generation per miss).
   */
  waiting: Map<number, UpstreamWaiter | typeof DONE>;
  /** Queries taken and not yet released. */
  pending: number;
  uses: number;
  /** Takes no more queries; closed when `waiting` empties. */
  retired: boolean;
}

/** A released ID's place in `PoolSocket.waiting`. */
const DONE = 0;

export interface UpstreamUdpOptions {
  random: Random;
  /** Open sockets per address family that take new queries (default 8). */
  socketsMax?: number;
  /** Queries a socket takes before it is retired (default 64). */
  usesMax?: number;
  /** A datagram whose ID no query on its socket waits for. */
  onUnmatched?: () => void;
}

export class UpstreamUdp {
  readonly #o: Required<Omit<UpstreamUdpOptions, 'onUnmatched'>> & Pick<UpstreamUdpOptions, 'onUnmatched'>;
  /** Per family: the sockets taking new queries. */
  #open = new Map<4 | 6, PoolSocket[]>([[4, []], [6, []]]);
  /** Every socket not yet closed (retired ones still waiting included). */
  #all = new Set<PoolSocket>();
  #next = 0;
  #closed = false;

  constructor(o: UpstreamUdpOptions) {
    this.#o = { socketsMax: 8, usesMax: 64, ...o };
  }

  /** Sockets open now (for tests and status). */
  get sockets(): number { return this.#all.size; }

  /** A socket and a free ID on it for `w`'s query (set in `w`); replies with that ID go to `w` until `release(w)`. */
  take(family: 4 | 6, w: UpstreamWaiter): void {
    const s = this.#pick(family);
    let id = this.#o.random.int(65536);
    while (s.waiting.has(id)) id = (id + 1) & 0xffff; // at most usesMax are taken
    s.waiting.set(id, w);
    s.pending++;
    if (++s.uses >= this.#o.usesMax) this.#retire(s, family);
    w.upstreamId = id;
    w.upstreamSocket = s;
  }

  /**
   * `size` bytes to write `w`'s query into before `send`, valid until the socket's next `buffer`
   * call (its sender's scratch area: a query allocates no buffer; one the kernel did not take at
   * once moves the area on, lib/udp-direct.ts). A buffer of its own if `w` holds no socket.
   */
  buffer(w: UpstreamWaiter, size: number): Uint8Array {
    const s = w.upstreamSocket as PoolSocket | null;
    return s === null ? new Uint8Array(size) : s.sender.buffer(size);
  }

  /**
   * Sends `w`'s query from the socket it took; false when the send failed at once (or it holds
   * none). A failure reported later (dgram's fallback path only) is not: the query times out.
   */
  send(w: UpstreamWaiter, bytes: Uint8Array, port: number, address: string): boolean {
    const s = w.upstreamSocket as PoolSocket | null;
    return s !== null && s.sender.send(bytes, port, address) !== SEND_FAILED;
  }

  /** `w`'s query is done (answered, failed or timed out): its ID is free again. Idempotent. */
  release(w: UpstreamWaiter): void {
    const s = w.upstreamSocket as PoolSocket | null;
    if (s === null) return;
    w.upstreamSocket = null;
    if (s.waiting.get(w.upstreamId) === w) { s.waiting.set(w.upstreamId, DONE); s.pending--; }
    if (s.retired && s.pending === 0) this.#close(s);
  }

  close(): void {
    this.#closed = true;
    for (const s of this.#all) this.#close(s);
    this.#open.set(4, []);
    this.#open.set(6, []);
  }

  #pick(family: 4 | 6): PoolSocket {
    const open = this.#open.get(family)!;
    if (open.length < this.#o.socketsMax || this.#closed) {
      const s = this.#create(family);
      if (!this.#closed) open.push(s);
      return s;
    }
    this.#next = (this.#next + 1) % open.length;
    return open[this.#next]!;
  }

  #create(family: 4 | 6): PoolSocket {
    // Upstreams are IP literals: the lookup answers at once (no dns.lookup, no deferred send).
    const socket = dgram.createSocket({ type: family === 6 ? 'udp6' : 'udp4', lookup: literalLookup(family) });
    socket.on('error', () => undefined); // each send reports its own error
    // Bound now, on a port the kernel picks (what the first send would do; at once with the literal
    // lookup), so replies can be taken straight from the socket's handle (lib/udp-direct.ts).
    socket.bind({ port: 0, exclusive: true });
    const s: PoolSocket = { socket, sender: new DatagramSender(socket), waiting: new Map(), pending: 0, uses: 0, retired: this.#closed };
    this.#all.add(s);
    onDatagram(socket, (msg, rinfo) => {
      const w = msg.length >= 2 ? s.waiting.get((msg[0]! << 8) | msg[1]!) : undefined;
      if (w === undefined || w === DONE) this.#o.onUnmatched?.();
      else w.onUpstreamReply(msg, rinfo);
    });
    return s;
  }

  #retire(s: PoolSocket, family: 4 | 6): void {
    s.retired = true;
    const open = this.#open.get(family)!;
    const at = open.indexOf(s);
    if (at >= 0) open.splice(at, 1);
  }

  #close(s: PoolSocket): void {
    if (!this.#all.delete(s)) return;
    try { s.socket.close(); } catch { /* already closed */ }
  }
}
