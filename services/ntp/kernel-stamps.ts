// The meeting point of two streams that describe the same NTP requests: the kernel's receive stamps,
// read from a capture child (capture.ts, pcap.ts), and the requests the handler reads from its
// socket. Either may come first: the capture's pipe is usually a few hundred microseconds behind
// the socket. A stamp that comes first waits in a bounded table until its request takes it; a
// request that comes first waits (bounded in number and time) for its stamp, or falls back to the
// estimate (wake.ts). Pure: time comes in as numbers, the decisions go out; the shell arms the one
// timer a waiting request needs and sends the reply.

/** Stamps kept at most (the oldest go first): a few seconds of requests at the rates we capture. */
export const KERNEL_STAMPS_MAX = 4096;
/** A stamp not taken within this is forgotten (its request was dropped, or was not ours). */
export const KERNEL_STAMP_TTL_MS = 2_000;
/** How long a request waits for its stamp. Its reply's transmit stamp is read at send, so holding
 *  it costs the client round-trip delay, not accuracy. */
export const KERNEL_STAMP_WAIT_MS = 2;
/** Requests waiting at once, at most; more take the estimate at once. */
export const KERNEL_STAMP_WAITERS_MAX = 64;

export type StampSource = 'kernel' | 'kernel_waited' | 'estimate_timeout' | 'estimate_busy';

interface Stored { kernelNs: bigint; atMs: number }
interface Waiter<T> { token: T }

/**
 * The table of stamps and waiting requests. `T` is the shell's handle of a waiting request (what it
 * needs to finish it); the table never looks inside it.
 */
export class KernelStampTable<T> {
  private readonly stamps = new Map<string, Stored>();
  private readonly waiters = new Map<string, Waiter<T>>();

  get storedCount(): number { return this.stamps.size; }
  get waitingCount(): number { return this.waiters.size; }

  /**
   * A captured request's stamp. Returns the waiting request it completes, if one is waiting (the
   * shell finishes it with this stamp), else stores the stamp for its request to take.
   */
  onCaptured(key: string, kernelNs: bigint, nowMs: number): { token: T; kernelNs: bigint } | null {
    const waiter = this.waiters.get(key);
    if (waiter !== undefined) {
      this.waiters.delete(key);
      return { token: waiter.token, kernelNs };
    }
    // A repeat of a key (a client resending the same bytes) keeps the first stamp: the request
    // that takes it is the first one read.
    if (this.stamps.has(key)) return null;
    this.stamps.set(key, { kernelNs, atMs: nowMs });
    this.forgetOld(nowMs);
    return null;
  }

  /**
   * A request read from the socket: its stamp if the capture already gave it ('kernel'); else
   * 'wait' (the shell arms a timer for `untilMs` and keeps `token`), unless too many wait already
   * ('estimate_busy'). A key already waiting (the same bytes sent twice) is not held twice.
   */
  onRequest(key: string, token: T, nowMs: number): { kind: 'kernel'; kernelNs: bigint } | { kind: 'wait'; untilMs: number } | { kind: 'estimate_busy' } {
    const stored = this.stamps.get(key);
    if (stored !== undefined) {
      this.stamps.delete(key);
      if (nowMs - stored.atMs <= KERNEL_STAMP_TTL_MS) return { kind: 'kernel', kernelNs: stored.kernelNs };
    }
    if (this.waiters.size >= KERNEL_STAMP_WAITERS_MAX || this.waiters.has(key)) return { kind: 'estimate_busy' };
    const untilMs = nowMs + KERNEL_STAMP_WAIT_MS;
    this.waiters.set(key, { token });
    return { kind: 'wait', untilMs };
  }

  /**
   * The waiting request of `key`, no longer waiting (the shell's timer for it, armed for `untilMs`,
   * fired): the shell finishes it with the estimate. Null when its stamp came meanwhile.
   */
  giveUp(key: string): T | null {
    const w = this.waiters.get(key);
    if (w === undefined) return null;
    this.waiters.delete(key);
    return w.token;
  }

  /** Every waiting request, removed (the capture stopped: nothing will come for them). */
  drainWaiters(): T[] {
    const out = [...this.waiters.values()].map((w) => w.token);
    this.waiters.clear();
    return out;
  }

  /** Forgets stored stamps (the capture restarted or was paused: what is left is stale). */
  clearStamps(): void {
    this.stamps.clear();
  }

  private forgetOld(nowMs: number): void {
    // Map order is insertion order, and stamps are inserted as they are captured: oldest first.
    for (const [key, s] of this.stamps) {
      if (this.stamps.size <= KERNEL_STAMPS_MAX && nowMs - s.atMs <= KERNEL_STAMP_TTL_MS) break;
      this.stamps.delete(key);
    }
  }
}

/** Replies per adjustment of the transmit correction (their median residual is taken off). */
export const TRANSMIT_LEARN_BATCH = 4;
/** The learned transmit correction stays within ±this. */
export const TRANSMIT_LEARNED_MAX_NS = 200_000;
/** A residual further off than this is not a stamp of a reply of ours (or the clock stepped): ignored. */
export const TRANSMIT_RESIDUAL_MAX_NS = 1_000_000;

/**
 * The transmit stamp's correction learned from the kernel's stamps of our own replies. A transmit
 * stamp is read before the send call; the datagram reaches the device part-way through it, later
 * by the call's cost, which after a long idle (cold caches, a scheduler's wake of the receiver) is
 * tens of microseconds, and the wall clock we read (hr-clock.ts) may sit a few microseconds off the
 * kernel's. Each captured reply gives the residual: the kernel's stamp less the transmit stamp the
 * reply carried (the correction of the time included). The first residual is taken alone (a
 * client's first burst is served before a batch fills: uncorrected, 50-100 us of offset on the test
 * VM), then every TRANSMIT_LEARN_BATCH replies the median residual is added to the correction
 * (bounded). Pure: residuals in, the correction out.
 */
export class TransmitLearner {
  private batch: number[] = [];
  samples = 0;

  constructor(public correctionNs = 0) {}

  /** One reply's residual (ns); the new correction when it completes a batch, else null. */
  onReply(residualNs: number): number | null {
    if (!Number.isFinite(residualNs) || Math.abs(residualNs) > TRANSMIT_RESIDUAL_MAX_NS) return null;
    this.batch.push(residualNs);
    this.samples++;
    if (this.batch.length < (this.samples === 1 ? 1 : TRANSMIT_LEARN_BATCH)) return null;
    const sorted = this.batch.sort((a, b) => a - b);
    const median = (sorted[(sorted.length - 1) >> 1]! + sorted[sorted.length >> 1]!) / 2;
    this.batch = [];
    this.correctionNs = Math.round(Math.min(TRANSMIT_LEARNED_MAX_NS, Math.max(-TRANSMIT_LEARNED_MAX_NS, this.correctionNs + median)));
    return this.correctionNs;
  }
}
