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
//
// What is shed while the queue stands is a fraction, not everything (`shed`): all or nothing made
// a flood of 20,000 misses a second ask upstream only ~19 % of them (~3,800 a second), where the
// process could do ~5,800 beside shedding the rest. The fraction admitted follows the queue
// as TCP's window follows loss (AIMD): every 5 ms (the target) that a queue stands past its limit
// admits a fifth fewer (x 0.8; half, once it has stood for the whole interval), each turn that
// drains the queue admits 1/8 more (at most all of them), so the process asks upstream about as
// many misses as it can do while the queue stays near the target (the seeded simulation in the
// test: 5,600-5,700 a second of a 20,000/s flood where shedding all while it stood asked 3,700).
// The admitted ones are picked by a running credit, not at random: every 1/fraction-th miss.

/** Datagrams libuv reads from one socket per turn of the event loop. */
export const READS_PER_TURN = 32;

/** Every `targetMs` of a queue standing past its limit admits this much of what it did (multiplicative decrease)... */
export const ADMIT_DECREASE = 0.8;
/** ... or this much once it has stood for the whole interval (a flood, or one found late). */
export const ADMIT_FLOOD_DECREASE = 0.5;
/** Each turn that drains the queue admits this much more (additive increase, up to 1). */
export const ADMIT_INCREASE = 1 / 8;
/** Never admit less: a flood beyond even the shedding's cost still gets some answers. */
export const ADMIT_MIN = 1 / 64;

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
  /** The fraction of new expensive work admitted while the queue stands (see `shed`). */
  #admit = 1;
  #credit = 0;
  #decreasedMs = -Infinity;

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
      else if (this.#over(this.#turnStartMs) && this.#turnStartMs - this.#decreasedMs >= this.rule.targetMs) {
        const cut = this.#turnStartMs - this.#fullSinceMs >= this.rule.intervalMs ? ADMIT_FLOOD_DECREASE : ADMIT_DECREASE;
        this.#decreasedMs = this.#turnStartMs;
        this.#admit = Math.max(ADMIT_MIN, this.#admit * cut);
      }
      return -1;
    }
    this.#admit = Math.min(1, this.#admit + ADMIT_INCREASE);
    const since = this.#fullSinceMs;
    this.#fullSinceMs = null;
    return since === null ? -1 : this.#turnStartMs - since;
  }

  /** Whether the queue has stood long enough at `nowMs` to be an overload (see the rule above). */
  standing(nowMs: number): boolean {
    if (!this.#over(nowMs)) return false;
    this.#shedMs = nowMs;
    return true;
  }

  /**
   * Whether one new piece of expensive work (a forwarding miss) arriving at `nowMs` is shed: only
   * while the queue stands (`standing`), and then all but the admitted fraction (see above).
   */
  shed(nowMs: number): boolean {
    if (!this.standing(nowMs)) return false;
    this.#credit += this.#admit;
    if (this.#credit < 1) return true;
    this.#credit -= 1;
    return false;
  }

  /** The fraction of new work `shed` admits while the queue stands (1: all). */
  get admitted(): number { return this.#admit; }

  #over(nowMs: number): boolean {
    if (this.#fullSinceMs === null) return false;
    const { intervalMs, targetMs, memoryMs } = this.rule;
    const limit = nowMs - this.#shedMs <= memoryMs ? targetMs : intervalMs;
    return nowMs - this.#fullSinceMs >= limit;
  }
}
