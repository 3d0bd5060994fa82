import { fork } from 'node:child_process';
import type { LanhaConfig } from './index.js';

// The daemon reads and checks its config file (at start, and again on SIGHUP) in a child process of
// its own: reading and checking a file of 10,000 reservations held the event loop 2.3 s (load 10),
// long enough for a leader to lose its lease and the VIP, and a file of 12 MiB took 24 s and 660
// MiB. Here the daemon's loop goes on; the child's heap is bounded and it is ended after a deadline
// (a file on a hung network mount), each a plain answer rather than a stalled or killed daemon.
// A process, not a thread: the schemas (zod, ~95 modules) never load into the daemon's heap, and
// nothing of the check stays behind once it ends. A worker thread left its glibc malloc arena and
// heap pages in the daemon (~7 MiB resident for good, bench:dhcp phase 7, services/dns/README.md).

export type OffLoopLoad =
  | { ok: true; config: LanhaConfig; pid: number }
  /** invalid: the file was read and is not a valid config (ConfigError); else the reading or the check failed. */
  | { ok: false; message: string; invalid: boolean; signal?: NodeJS.Signals };

export interface OffLoopOptions {
  /** Ends the check after this long (default 60 s). */
  deadlineMs?: number;
  /** The check's old-generation heap limit (default 512 MiB). */
  heapMiB?: number;
  /** Keep the process up while the child checks (the start, which has nothing else running yet); default: not. */
  ref?: boolean;
}

type FromCheck = { ok: true; config: LanhaConfig } | { ok: false; message: string; invalid: boolean };

/** loadConfig(file) in a child process: the config, or the error's words (ConfigError's lines, a deadline, the heap limit). */
export function loadConfigOffLoop(file: string, options: OffLoopOptions = {}): Promise<OffLoopLoad> {
  const deadlineMs = options.deadlineMs ?? 60_000;
  const heapMiB = options.heapMiB ?? 512;
  return new Promise((resolve) => {
    // No inherited loaders or flags (a test runner's hooks), a heap of its own; the config comes back
    // as a structured clone, as a thread's postMessage gave it.
    const child = fork(new URL('./load-worker.js', import.meta.url), [file], {
      execArgv: [`--max-old-space-size=${heapMiB}`], serialization: 'advanced', stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => { if (stderr.length < 4096) stderr += d.toString(); });
    if (options.ref !== true) {
      // A review still running never keeps a stopping daemon's process alive.
      child.unref();
      child.channel?.unref();
      (child.stderr as unknown as { unref?: () => void }).unref?.();
    }
    let settled = false;
    const settle = (result: OffLoopLoad): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      resolve(result);
    };
    const timer = setTimeout(() => settle({ ok: false, message: `${file}: reading and checking it took over ${deadlineMs / 1000} s; gave up (is the file on a hung network mount?)`, invalid: false }), deadlineMs);
    if (options.ref !== true) timer.unref();
    child.once('message', (m: FromCheck) => {
      settle(m.ok ? { ok: true, config: m.config, pid: child.pid! } : m);
    });
    child.once('error', (error: Error) => {
      settle({ ok: false, message: `${file}: could not be checked: ${error.message}`, invalid: false });
    });
    child.once('exit', (code, signal) => {
      // V8 out of heap: "FATAL ERROR: ... JavaScript heap out of memory" and an abort.
      settle({ ok: false, invalid: false, ...(signal === null ? {} : { signal }), message: /heap out of memory/.test(stderr)
        ? `${file}: checking it needed more than ${heapMiB} MiB of memory; gave up (is this the right file?)`
        : `${file}: the process checking it ended (${signal ?? `exit code ${code}`}) without an answer` });
    });
  });
}
