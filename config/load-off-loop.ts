import { Worker } from 'node:worker_threads';
import type { LanhaConfig } from './index.js';

// A running daemon's second look at its config file (SIGHUP) happens on a thread of its own:
// reading and checking a file of 10,000 reservations held the event loop 2.3 s (load 10), long
// enough for a leader to lose its lease and the VIP, and a file of 12 MiB took 24 s and 660 MiB.
// Here the daemon's loop goes on; the thread's heap is bounded and it is ended after a deadline
// (a file on a hung network mount), each a plain answer rather than a stalled or killed daemon.

export type OffLoopLoad =
  | { ok: true; config: LanhaConfig; threadId: number }
  /** invalid: the file was read and is not a valid config (ConfigError); else the reading or the thread failed. */
  | { ok: false; message: string; invalid: boolean };

export interface OffLoopOptions {
  /** Ends the thread after this long (default 60 s). */
  deadlineMs?: number;
  /** The thread's old-generation heap limit (default 512 MiB). */
  heapMiB?: number;
  /** Keep the process up while the thread checks (the start, which has nothing else running yet); default: not. */
  ref?: boolean;
}

/** loadConfig(file) on a worker thread: the config, or the error's words (ConfigError's lines, a deadline, the heap limit). */
export function loadConfigOffLoop(file: string, options: OffLoopOptions = {}): Promise<OffLoopLoad> {
  const deadlineMs = options.deadlineMs ?? 60_000;
  const heapMiB = options.heapMiB ?? 512;
  return new Promise((resolve) => {
    const worker = new Worker(new URL('./load-worker.js', import.meta.url), {
      workerData: { file },
      // No inherited loaders or flags (a test runner's hooks), and a heap of its own.
      execArgv: [],
      resourceLimits: { maxOldGenerationSizeMb: heapMiB },
    });
    // A review still running never keeps a stopping daemon's process alive.
    if (options.ref !== true) worker.unref();
    let settled = false;
    const settle = (result: OffLoopLoad): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      void worker.terminate();
      resolve(result);
    };
    const timer = setTimeout(() => settle({ ok: false, message: `${file}: reading and checking it took over ${deadlineMs / 1000} s; gave up (is the file on a hung network mount?)`, invalid: false }), deadlineMs);
    timer.unref();
    worker.once('message', (m: { ok: true; config: LanhaConfig } | { ok: false; message: string; invalid: boolean }) => {
      settle(m.ok ? { ok: true, config: m.config, threadId: worker.threadId } : m);
    });
    worker.once('error', (error: Error & { code?: string }) => {
      settle({ ok: false, message: error.code === 'ERR_WORKER_OUT_OF_MEMORY'
        ? `${file}: checking it needed more than ${heapMiB} MiB of memory; gave up (is this the right file?)`
        : `${file}: could not be checked: ${error.message}`, invalid: false });
    });
    worker.once('exit', (code) => settle({ ok: false, message: `${file}: the thread checking it ended (exit code ${code}) without an answer`, invalid: false }));
  });
}
