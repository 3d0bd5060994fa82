// Whether datagrams have been waiting in a UDP socket's kernel queue for long enough to call it an
// overload. Node cannot tell how long a datagram sat there (no SO_TIMESTAMP, no recvmsg control
// data), but libuv reads at most 32 datagrams from a socket per turn of the event loop
// (uv__udp_recvmsg), so a turn that read 32 from one socket left more behind. A run of such full
// turns is a standing queue.
//
// A short stall (a scavenge, the core taken by another process for a few milliseconds) leaves a
// queue too, and draining it takes a run of full turns about as long as the stall at half load: that
// is no overload, and shedding work then turned a 20 ms stall into SERVFAILs. So, as CoDel does
// (RFC 8289: a queue that has not drained for an interval), a queue is an overload once it has
// stood for `intervalMs` (100 ms, CoDel's interval): far longer than the stalls a busy two-core
// machine gives a process, while a real flood (more work a second than the process can do) never
// drains and is caught after it. Once the process has shed, a queue that stands again within
// `memoryMs` is caught after `targetMs` (5 ms): the flood is still there (CoDel's return to its
// dropping state), and its queue stays short. A service sheds expensive work while the queue stands
// (the DNS forwarder answers new misses with SERVFAIL at once), so the queue drains instead of
// growing. Pure: the shell reports each datagram and each turn's end with the time.

/** Datagrams libuv reads from one socket per turn of the event loop. */
export const READS_PER_TURN = 32;

export interface BacklogRule {
  /** A queue standing this long is an overload. */
  intervalMs: number;
  /** ... or this long, within `memoryMs` of the last time `standing` said so. */
  targetMs: number;
  memoryMs: number;
}

export class UdpBacklog {
  readonly rule: BacklogRule;
  /**
   * Datagrams read this turn, per socket: parallel arrays searched from the start, not a Map (a
   * process reads a handful of sockets, and this runs for every datagram).
   */
  #sockets: unknown[] = [];
  #counts: number[] = [];
  #turnStartMs = 0;
  /** When the current run of full turns began (null: the last turn drained every socket). */
  #fullSinceMs: number | null = null;
  /** The last time `standing` found an overload. */
  #shedMs = -Infinity;

  constructor(rule: BacklogRule) {
    this.rule = rule;
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

  /**
   * The turn's reads are over (after the event loop's poll phase: setImmediate). Returns how long
   * the queue stood (ms, from the first full turn to the start of this one) when this turn drained a
   * standing queue, else -1: the shell counts them, so the stalls a machine gives are measured.
   */
  endTurn(): number {
    let full = false;
    for (const n of this.#counts) if (n >= READS_PER_TURN) full = true;
    this.#sockets.length = 0;
    this.#counts.length = 0;
    if (full) {
      if (this.#fullSinceMs === null) this.#fullSinceMs = this.#turnStartMs;
      return -1;
    }
    const since = this.#fullSinceMs;
    this.#fullSinceMs = null;
    return since === null ? -1 : this.#turnStartMs - since;
  }

  /** Whether the queue has stood long enough at `nowMs` to be an overload (see the rule above). */
  standing(nowMs: number): boolean {
    if (this.#fullSinceMs === null) return false;
    const { intervalMs, targetMs, memoryMs } = this.rule;
    const limit = nowMs - this.#shedMs <= memoryMs ? targetMs : intervalMs;
    if (nowMs - this.#fullSinceMs < limit) return false;
    this.#shedMs = nowMs;
    return true;
  }
}
