// Whether datagrams have been waiting in a UDP socket's kernel queue for a while. Node cannot tell
// how long a datagram sat there (no SO_TIMESTAMP), but libuv reads at most 32 datagrams from a
// socket per turn of the event loop (uv__udp_recvmsg), so a turn that read 32 from one socket left
// more behind. A run of such full turns is a standing queue; once it has lasted `standingMs`, every
// datagram read now waited about that long or more. A service sheds expensive work while the queue
// stands (the DNS forwarder answers new misses with SERVFAIL at once), so the queue drains instead
// of growing. Pure: the shell reports each datagram and each turn's end with the time.

/** Datagrams libuv reads from one socket per turn of the event loop. */
export const READS_PER_TURN = 32;

export class UdpBacklog {
  readonly standingMs: number;
  /**
   * Datagrams read this turn, per socket: parallel arrays searched from the start, not a Map (a
   * process reads a handful of sockets, and this runs for every datagram).
   */
  #sockets: unknown[] = [];
  #counts: number[] = [];
  #turnStartMs = 0;
  /** When the current run of full turns began (null: the last turn drained every socket). */
  #fullSinceMs: number | null = null;

  constructor(standingMs: number) {
    this.standingMs = standingMs;
  }

  /**
   * One datagram read from `socket`. True when it is the turn's first: the shell then calls
   * `beginTurn` with the time and arranges `endTurn` after the turn's reads (setImmediate).
   */
  read(socket: unknown): boolean {
    const sockets = this.#sockets;
    for (let i = 0; i < sockets.length; i++) {
      if (sockets[i] === socket) { this.#counts[i]!++; return false; }
    }
    sockets.push(socket);
    this.#counts.push(1);
    return sockets.length === 1;
  }

  beginTurn(nowMs: number): void {
    this.#turnStartMs = nowMs;
  }

  /** The turn's reads are over (after the event loop's poll phase: setImmediate). */
  endTurn(): void {
    let full = false;
    for (const n of this.#counts) if (n >= READS_PER_TURN) full = true;
    this.#sockets.length = 0;
    this.#counts.length = 0;
    if (!full) this.#fullSinceMs = null;
    else if (this.#fullSinceMs === null) this.#fullSinceMs = this.#turnStartMs;
  }

  /** Whether a standing queue has lasted `standingMs` at `nowMs`. */
  standing(nowMs: number): boolean {
    return this.#fullSinceMs !== null && nowMs - this.#fullSinceMs >= this.standingMs;
  }
}
