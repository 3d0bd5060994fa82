// The steps of a stop (the daemon's, on SIGTERM), each timed: how long every finished step took and
// which had not finished yet, so a stop that runs out of time names the step it waited for (DNS
// worker processes, TFTP threads, the Raft log) instead of "took over 5 s". A step may be bounded:
// the stop goes on without it after its limit (its own work keeps running and is still listed as
// not finished) so that one step that hangs does not keep the steps after it (the Raft log's close)
// from running. Time comes in through `now`; the bound's timer is the only real one.

export interface StepTime {
  step: string;
  /** When it started, ms after the stop's first step did: which steps ran together shows here. */
  atMs: number;
  /** How long it took, or for a step not finished, how long it has run so far. */
  ms: number;
}

export interface StopReport {
  /** Finished steps, in the order they started. */
  done: StepTime[];
  /** Steps started and not finished, in the order they started. */
  running: StepTime[];
  /** Steps the stop stopped waiting for at their limit (they may have finished since). */
  late: string[];
  /** From the first step's start to now (or to the last step's end once all have finished). */
  totalMs: number;
}

interface Entry { step: string; startedMs: number; endedMs: number | null }

export class StopSteps {
  readonly #now: () => number;
  readonly #entries: Entry[] = [];
  readonly #late: string[] = [];

  constructor(now: () => number) {
    this.#now = now;
  }

  /** Runs `fn` as step `step`; its time is recorded however it ends. What it throws is thrown on. */
  async run<T>(step: string, fn: () => T | Promise<T>): Promise<T> {
    const entry: Entry = { step, startedMs: this.#now(), endedMs: null };
    this.#entries.push(entry);
    try {
      return await fn();
    } finally {
      entry.endedMs = this.#now();
    }
  }

  /**
   * As `run`, but waits at most `limitMs`: then resolves 'late' (the step listed in `late`, and in
   * `running` until it ends) and the caller goes on. A step that throws resolves 'failed' with the
   * error handed to `failed`. Nothing that `fn` does is stopped by the limit.
   */
  async bounded(step: string, limitMs: number, fn: () => unknown, failed: (error: unknown) => void): Promise<'done' | 'late' | 'failed'> {
    let timer: NodeJS.Timeout | undefined;
    const work = this.run(step, fn).then(() => 'done' as const, (error: unknown) => { failed(error); return 'failed' as const; });
    const limit = new Promise<'late'>((resolve) => { timer = setTimeout(() => resolve('late'), limitMs); });
    const outcome = await Promise.race([work, limit]);
    clearTimeout(timer);
    if (outcome === 'late') this.#late.push(step);
    return outcome;
  }

  report(): StopReport {
    const now = this.#now();
    const done: StepTime[] = [];
    const running: StepTime[] = [];
    const first = this.#entries[0]?.startedMs ?? now;
    for (const e of this.#entries) {
      const atMs = round(e.startedMs - first);
      if (e.endedMs === null) running.push({ step: e.step, atMs, ms: round(now - e.startedMs) });
      else done.push({ step: e.step, atMs, ms: round(e.endedMs - e.startedMs) });
    }
    const last = running.length > 0 ? now : Math.max(first, ...this.#entries.map((e) => e.endedMs ?? now));
    return { done, running, late: [...this.#late], totalMs: round(last - first) };
  }
}

/** "dns.workers 1.2 s, tftp 40 ms", the slowest first, at most `max` of them. */
export function describeStepTimes(steps: readonly StepTime[], max = 6): string {
  const slowest = [...steps].sort((a, b) => b.ms - a.ms).slice(0, max);
  const more = steps.length - slowest.length;
  return slowest.map((s) => `${s.step} ${formatMs(s.ms)}`).join(', ') + (more > 0 ? ` (+${more} more)` : '');
}

/** One line for the log: what had not finished (and for how long), then the slowest finished steps. */
export function describeStop(report: StopReport): string {
  const running = report.running.length === 0 ? 'every step finished' : `not finished: ${report.running.map((s) => `${s.step} (${formatMs(s.ms)} so far)`).join(', ')}`;
  const late = report.late.filter((step) => !report.running.some((s) => s.step === step));
  const lateText = late.length === 0 ? '' : `; left behind at their limit and finished since: ${late.join(', ')}`;
  return `${running}${lateText}${report.done.length === 0 ? '' : `; slowest finished: ${describeStepTimes(report.done)}`}`;
}

function formatMs(ms: number): string {
  return ms >= 1000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms)} ms`;
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}

/** Runs `fn` as step `step` of `steps`, or only runs it when nobody times the stop (tests, a service stopped alone). */
export function stopStep<T>(steps: StopSteps | undefined, step: string, fn: () => T | Promise<T>): Promise<T> {
  return steps === undefined ? Promise.resolve().then(fn) : steps.run(step, fn);
}
