import { openSync, readFileSync, readSync, readdirSync } from 'node:fs';
import type { Logger } from './log.js';

// Out of file descriptors (EMFILE: this process's RLIMIT_NOFILE; ENFILE: the system's table) is a
// shortage that passes, not a fault: what needs a new descriptor (a transfer's file and socket, a
// transfer thread) is refused or put off, counted, and said at most once per window with how many
// were refused since; the first success afterwards says the shortage ended. What already runs goes
// on. The accept side (a listening socket whose accept fails) is lib/stream-listen.ts keepListening.

/** 'EMFILE' or 'ENFILE' for a descriptor shortage, also when only the message says so (a worker thread's ERR_WORKER_INIT_FAILED); else null. */
export function fdShortageCode(error: unknown): 'EMFILE' | 'ENFILE' | null {
  if (error === null || typeof error !== 'object') return null;
  const code = (error as { code?: unknown }).code;
  if (code === 'EMFILE' || code === 'ENFILE') return code;
  const message = (error as { message?: unknown }).message;
  if (typeof message !== 'string') return null;
  if (/\bENFILE\b/.test(message)) return 'ENFILE';
  return /\bEMFILE\b|too many open files/i.test(message) ? 'EMFILE' : null;
}

export function isFdExhaustion(error: unknown): boolean {
  return fdShortageCode(error) !== null;
}

/** The soft limit last read from /proc/self/limits: what is known of it while reading it needs a descriptor there is none of. */
let lastLimit: number | null = null;

/**
 * /proc/self/limits held open from the module's load: read again from offset 0 it gives the limit
 * of now without a new descriptor, so a shortage line says the limit even when nothing had read it
 * before the shortage began (it said `limit: null`, and so `open: null`, there).
 */
let limitsFd: number | null = null;
try { limitsFd = openSync('/proc/self/limits', 'r'); } catch { /* not Linux, or none to spare: read by path */ }
const limitsBuf = Buffer.alloc(4096);

function readLimits(): string {
  if (limitsFd === null) return readFileSync('/proc/self/limits', 'utf8');
  return limitsBuf.toString('utf8', 0, readSync(limitsFd, limitsBuf, 0, limitsBuf.length, 0));
}

/**
 * This process's descriptors: how many are open, and its soft limit (null when /proc does not say).
 * Reading /proc needs a descriptor itself: out of them (EMFILE), every number below the limit is
 * taken, so `open` is the limit last read (at least that many are open) and `short` says so. Before,
 * both were null there (and prom-client's process_open_fds/process_max_fds kept their values from
 * before the shortage), so the one moment the figures matter they said nothing.
 */
export function fdUsage(): { open: number | null; limit: number | null; short: boolean } {
  let limit: number | null = null;
  let short = false;
  try {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(readLimits());
    if (m !== null && m[1] !== 'unlimited') limit = lastLimit = Number(m[1]);
  } catch (error) {
    if (isFdExhaustion(error)) { short = true; limit = lastLimit; }
  }
  let open: number | null = null;
  try {
    open = readdirSync('/proc/self/fd').length - 1; // less the descriptor that read it
  } catch (error) {
    if (isFdExhaustion(error)) { short = true; open = limit; }
  }
  return { open, limit, short };
}

/**
 * Whether this process is out of descriptors now, or within `margin` of its limit: what a failure
 * that names no EMFILE is read against (Node's module loader reports a module file it cannot open
 * as ERR_MODULE_NOT_FOUND, so a worker thread started at the limit fails with that). Reading
 * /proc/self/fd needs a descriptor itself: failing with EMFILE/ENFILE says yes.
 */
export function fdsShort(margin = 16): boolean {
  let open: number;
  try { open = readdirSync('/proc/self/fd').length; } catch (error) { return isFdExhaustion(error); }
  const { limit } = fdUsage();
  return limit !== null && open >= limit - margin;
}

/** A shortage has ended once nothing was refused for this long and something got a descriptor. */
export const RECOVERED_QUIET_MS = 1000;

export interface FdShortageOptions {
  log: Logger;
  /** Log events `<prefix>.fd_exhausted` and `<prefix>.fd_recovered`; counters `<prefix>.fd_exhausted.<what>`. */
  prefix: string;
  count: (name: string) => void;
  nowMs: () => number;
  /** What to do, for the warn line. */
  advice: string;
  /** At most one warn line per this long (default 10 s). */
  windowMs?: number;
}

/** One service's view of a descriptor shortage: refusals counted, said rate-limited, the end said once. */
export class FdShortage {
  readonly #o: FdShortageOptions;
  #refusedSinceLine = 0;
  #refusedTotal = 0;
  #lastLineMs: number | null = null;
  #lastRefusedMs = 0;
  #since: number | null = null;
  #recheck: NodeJS.Timeout | null = null;

  constructor(o: FdShortageOptions) {
    this.#o = o;
  }

  /** Whether the last thing tried ran short and nothing has succeeded since. */
  get short(): boolean { return this.#since !== null; }

  /** `what` (e.g. "file", "socket", "thread") could not get a descriptor. */
  refused(what: string, error: unknown): void {
    const now = this.#o.nowMs();
    this.#o.count(`${this.#o.prefix}.fd_exhausted.${what}`);
    this.#since ??= now;
    this.#lastRefusedMs = now;
    this.#refusedSinceLine++;
    this.#refusedTotal++;
    if (this.#lastLineMs !== null && now - this.#lastLineMs < (this.#o.windowMs ?? 10_000)) return;
    this.#lastLineMs = now;
    const usage = fdUsage();
    const errno = fdShortageCode(error) ?? 'EMFILE';
    const held = usage.open === null ? '' : ` (${usage.open}${usage.limit === null ? '' : ` of ${usage.limit}`} open)`;
    this.#o.log.warn({ event: `${this.#o.prefix}.fd_exhausted`, what, code: errno, refused: this.#refusedSinceLine, open: usage.open, limit: usage.limit },
      `out of file descriptors${held}, ${errno === 'ENFILE' ? 'the system\'s table is full' : 'this process\'s limit reached'}: ${this.#refusedSinceLine} ${what} refused since the last line; ${this.#o.advice}`);
    this.#refusedSinceLine = 0;
  }

  /**
   * Something that needed a descriptor got one. A shortage in progress has ended (said once) when
   * nothing was refused for RECOVERED_QUIET_MS after it: at the limit, one transfer ending lets the
   * next in and the one after is refused again, and that is no end of it. A success inside that
   * time is looked at again when it has passed.
   */
  recovered(): void {
    if (this.#since === null) return;
    const quietMs = this.#o.nowMs() - this.#lastRefusedMs;
    if (quietMs >= RECOVERED_QUIET_MS) { this.#ended(); return; }
    if (this.#recheck !== null) return;
    this.#recheck = setTimeout(() => {
      this.#recheck = null;
      if (this.#since !== null && this.#o.nowMs() - this.#lastRefusedMs >= RECOVERED_QUIET_MS) this.#ended();
    }, RECOVERED_QUIET_MS - quietMs + 10); // a timer may fire a little before its time on the monotonic clock
    this.#recheck.unref();
  }

  #ended(): void {
    if (this.#recheck !== null) clearTimeout(this.#recheck);
    this.#recheck = null;
    if (this.#since === null) return;
    const ms = Math.round(this.#lastRefusedMs - this.#since);
    this.#o.log.info({ event: `${this.#o.prefix}.fd_recovered`, refused: this.#refusedTotal, ms }, `file descriptors available again: the shortage lasted ${ms} ms, ${this.#refusedTotal} refused`);
    this.#since = null;
    this.#refusedTotal = 0;
  }
}
