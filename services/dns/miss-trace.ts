import { appendFile, appendFileSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { PerformanceObserver, constants as perfConstants, performance } from 'node:perf_hooks';

// Where a forwarded miss's time goes inside an answering process (a diagnostic for bench:dns, off
// unless LANHA_DNS_MISS_TRACE names a directory; the daemon and its UDP workers inherit it). Each
// process appends to DIR/trace.<pid>, in wall-clock microseconds (performance.timeOrigin + now, the
// clock a loopback capture stamps with):
//   M <name> <read> <upstream sent> <upstream reply read> <answered>   a miss answered from upstream
//   S <read>                                                           a miss shed at once (SERVFAIL)
//   G <start> <duration> <0 minor | 1 major>                           a collection (its pause)
//   R <at> <run ns> <wait ns>                                          this thread's CPU and run-queue
//                                                                      wait so far (/proc schedstat), every 5 ms
//   Q <since> <until>                                                  a socket queue that stood (full turns,
//                                                                      lib/udp-backlog.ts) 5 ms or more
//   F <start> <duration>                                               a write of this trace: its own time on the
//                                                                      event loop (formatting; the append runs in
//                                                                      the thread pool)
// bench/dns-stages.ts joins these with the capture's kernel timestamps: the wait in the socket
// queue before the process read the query or the reply, the process's own work, and what the
// process was doing meanwhile (collecting, waiting for a core).
// The R samples are taken only while misses come: from the first one traced (sampled at once) to
// the flush after which none came (sampled once more), so the process serving hits or idle pays
// nothing for them. Sampled all the time, 200 reads of /proc a second in each process cost 65-100 ms
// of CPU a second, ~2 us per cached answer at bench:dns's hit rates (services/dns/README.md).
// What is recorded between two writes goes into typed arrays made once, not strings: a string per
// miss kept for 250 ms would be promoted and collected with the old generation, adding to the very
// pauses the trace is there to see. The writes go through the thread pool (one at a time, in order),
// not on the event loop: a synchronous append on a disk shared with other work held the loop for up
// to 70 ms (bench:dns at load 17, F records), a queue standing that the trace itself made.
// Only the last one, at exit, is synchronous.

export const MISS_TRACE_ENV = 'LANHA_DNS_MISS_TRACE';
const SCHED_SAMPLE_MS = 5;
const FLUSH_MS = 250;
/** Misses (and sheds) recorded per write at most; more are counted as lost. */
const CAPACITY = 16384;
const NAME_MAX = 128;

export interface MissTrace {
  /** A miss answered from upstream: its name and the monotonic times (ms) of its four steps. */
  miss(name: string, readMs: number, sentMs: number, replyMs: number, answeredMs: number): void;
  /** A miss shed at once (the cap, or a standing queue). */
  shed(readMs: number): void;
  /** A socket queue stood from `sinceMs` (its first full turn) to `untilMs` (the turn that drained it). */
  stood(sinceMs: number, untilMs: number): void;
}

let active: MissTrace | null | undefined;

/** This process's trace, started on first use when the environment asks for one (else null). */
export function missTrace(env: NodeJS.ProcessEnv = process.env): MissTrace | null {
  if (active !== undefined) return active;
  const dir = env[MISS_TRACE_ENV];
  active = dir === undefined || dir === '' ? null : new FileTrace(join(dir, `trace.${process.pid}`));
  return active;
}

class FileTrace implements MissTrace {
  readonly #file: string;
  readonly #origin = performance.timeOrigin;
  /** Per record: kind (1 miss, 2 shed), four times (ms); names of misses as ASCII bytes. */
  #times = new Float64Array(CAPACITY * 5);
  #names = new Uint8Array(CAPACITY * NAME_MAX);
  #nameLengths = new Uint8Array(CAPACITY);
  #n = 0;
  #lost = 0;
  #gc: string[] = [];
  #stood: string[] = [];
  #flushUs = 0;
  /** Text not yet handed to a write, and whether one is under way (writes go one at a time, in order). */
  #pending = '';
  #writing = false;
  #flushLine = '';
  #sched = new Float64Array(4096 * 3);
  #schedN = 0;
  /** The schedstat sampler, running while misses come (null: none came in the last flush period). */
  #sampler: NodeJS.Timeout | null = null;
  /** A miss or a shed was traced since the last flush. */
  #recent = false;
  /** This thread's schedstat, kept open and read from its start each time (no open/close per sample). */
  #schedFd = -1;
  #schedBytes = Buffer.alloc(128);

  constructor(file: string) {
    this.#file = file;
    setInterval(() => this.#flush(), FLUSH_MS).unref();
    process.on('exit', () => { this.#flush(); this.#writeNow(); });
    const us = (ms: number): number => Math.round((this.#origin + ms) * 1000);
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) {
        const kind = (e as unknown as { detail?: { kind?: number } | null }).detail?.kind;
        this.#gc.push(`G ${us(e.startTime)} ${Math.round(e.duration * 1000)} ${kind === perfConstants.NODE_PERFORMANCE_GC_MINOR ? 0 : 1}`);
      }
    }).observe({ entryTypes: ['gc'] });
    try { this.#schedFd = openSync('/proc/thread-self/schedstat', 'r'); } catch { /* not Linux */ }
  }

  miss(name: string, readMs: number, sentMs: number, replyMs: number, answeredMs: number): void {
    this.#arm();
    const i = this.#n;
    if (i >= CAPACITY) { this.#lost++; return; }
    this.#n++;
    const t = this.#times, at = i * 5;
    t[at] = 1; t[at + 1] = readMs; t[at + 2] = sentMs; t[at + 3] = replyMs; t[at + 4] = answeredMs;
    const n = Math.min(name.length, NAME_MAX);
    for (let k = 0, p = i * NAME_MAX; k < n; k++) this.#names[p + k] = name.charCodeAt(k) & 0x7f;
    this.#nameLengths[i] = n;
  }

  shed(readMs: number): void {
    this.#arm();
    const i = this.#n;
    if (i >= CAPACITY) { this.#lost++; return; }
    this.#n++;
    this.#times[i * 5] = 2; this.#times[i * 5 + 1] = readMs;
  }

  stood(sinceMs: number, untilMs: number): void {
    const us = (ms: number): number => Math.round((this.#origin + ms) * 1000);
    this.#stood.push(`Q ${us(sinceMs)} ${us(untilMs)}`);
  }

  #write(): void {
    const text = this.#pending;
    this.#pending = '';
    this.#writing = true;
    appendFile(this.#file, text, () => {
      // An error is dropped: a diagnostic, never the process's problem.
      this.#writing = false;
      if (this.#pending !== '') this.#write();
    });
  }

  /** What is left, written before the process exits (an asynchronous write under way may be lost). */
  #writeNow(): void {
    if (this.#pending === '') return;
    try { appendFileSync(this.#file, this.#pending); } catch { /* a diagnostic */ }
    this.#pending = '';
  }

  /** Starts the sampler (with a sample now) unless it runs. */
  #arm(): void {
    this.#recent = true;
    if (this.#sampler !== null || this.#schedFd < 0) return;
    this.#sample();
    this.#sampler = setInterval(() => this.#sample(), SCHED_SAMPLE_MS).unref();
  }

  #sample(): void {
    if (this.#schedN * 3 >= this.#sched.length) return;
    try {
      const n = readSync(this.#schedFd, this.#schedBytes, 0, this.#schedBytes.length, 0);
      const [run = '0', wait = '0'] = this.#schedBytes.toString('latin1', 0, n).split(' ');
      const s = this.#sched, at = this.#schedN++ * 3;
      s[at] = performance.now(); s[at + 1] = Number(run); s[at + 2] = Number(wait);
    } catch { /* a diagnostic: never the process's problem */ }
  }

  #flush(): void {
    const start = performance.now();
    // No miss since the last flush: a last sample closes the span, and the sampler stops.
    if (!this.#recent && this.#sampler !== null) {
      clearInterval(this.#sampler);
      this.#sampler = null;
      this.#sample();
    }
    this.#recent = false;
    const us = (ms: number): number => Math.round((this.#origin + ms) * 1000);
    const lines = this.#gc.concat(this.#stood);
    this.#gc = [];
    this.#stood = [];
    const t = this.#times;
    for (let i = 0; i < this.#n; i++) {
      const at = i * 5;
      if (t[at] === 2) { lines.push(`S ${us(t[at + 1]!)}`); continue; }
      const name = Buffer.from(this.#names.buffer, i * NAME_MAX, this.#nameLengths[i]!).toString('latin1');
      lines.push(`M ${name} ${us(t[at + 1]!)} ${us(t[at + 2]!)} ${us(t[at + 3]!)} ${us(t[at + 4]!)}`);
    }
    for (let i = 0; i < this.#schedN; i++) {
      const s = this.#sched, at = i * 3;
      lines.push(`R ${us(s[at]!)} ${s[at + 1]} ${s[at + 2]}`);
    }
    if (this.#lost > 0) lines.push(`L ${this.#lost}`);
    this.#n = this.#schedN = this.#lost = 0;
    if (lines.length === 0) return;
    // The previous write's own duration goes with this one (this one's is known only after it).
    if (this.#flushUs > 0) lines.push(this.#flushLine);
    this.#pending += lines.join('\n') + '\n';
    if (!this.#writing) this.#write();
    this.#flushUs = Math.round((performance.now() - start) * 1000);
    this.#flushLine = `F ${us(start)} ${this.#flushUs}`;
  }
}
