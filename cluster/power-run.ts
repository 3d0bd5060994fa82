import { spawn } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, isAbsolute, join } from 'node:path';
import { POWER_ACTIONS, type PowerConfig, type PowerPlan } from './power.js';
import { withoutSystemd } from '../lib/systemd.js';

// Runs planned power commands (power.ts): at most `parallel` at once, each in a process group of
// its own so that a timeout ends the command and whatever it started (SIGTERM, then SIGKILL 2 s
// later), stdin closed, output kept up to OUTPUT_MAX bytes per stream. A program that does not exist
// or may not run is a failed result, never a thrown error.

export const OUTPUT_MAX = 4096;
const KILL_GRACE_MS = 2000;

export interface PowerResult {
  node: string;
  /** ok: exit 0; failed: another exit, a signal, or no start; timeout: ended after the timeout. */
  result: 'ok' | 'failed' | 'timeout';
  exitCode: number | null;
  signal: string | null;
  /** Stdout, trimmed (its first OUTPUT_MAX bytes). */
  output: string;
  /** Stderr, trimmed, or why it did not run. */
  error: string;
  ms: number;
  /** Wall-clock ms when it ended (RunOptions.wallNow): the time of the switch in the node's timeline. */
  endedAt?: number;
}

export interface RunOptions {
  timeoutMs: number;
  parallel: number;
  /** The environment the commands start with (systemd's NOTIFY_SOCKET and WATCHDOG_* taken out, the plan's LANHA_* variables added). */
  env?: NodeJS.ProcessEnv;
  /** Monotonic ms. */
  now?: () => number;
  /** Wall-clock ms, for PowerResult.endedAt (absent: not set). */
  wallNow?: () => number;
  /** Where the process groups of running commands are kept (PowerRunner.stop ends them). */
  groups?: Set<number>;
}

/**
 * A stream's first OUTPUT_MAX bytes as text, control characters but line breaks and tabs as "?":
 * the text comes from a PDU, a BMC or a plug's firmware through the site's command and goes to the
 * operator's terminal (lanctl's table) and the log; an escape sequence there must not drive it.
 */
function clip(chunks: Buffer[]): string {
  return Buffer.concat(chunks).subarray(0, OUTPUT_MAX).toString('utf8').replace(/[\x00-\x08\x0b-\x1f\x7f-\x9f]/g, '?').trim();
}

/** After the command exits, how long its output may take to end before it is cut (a process it started elsewhere holds it). */
export const PIPE_GRACE_MS = 500;

/** Runs one planned command (a plan that failed is reported as failed at once). */
export function runPowerCommand(plan: PowerPlan, o: RunOptions): Promise<PowerResult> {
  const now = o.now ?? (() => performance.now());
  const started = now();
  if (!plan.ok) return Promise.resolve({ node: plan.node, result: 'failed', exitCode: null, signal: null, output: '', error: plan.error, ms: 0 });
  return new Promise((resolve) => {
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let kept = [0, 0];
    const keep = (which: 0 | 1, into: Buffer[]) => (d: Buffer): void => {
      if (kept[which]! >= OUTPUT_MAX) return;
      into.push(d);
      kept[which] = kept[which]! + d.length;
    };
    let timedOut = false;
    let done = false;
    const child = spawn(plan.argv[0]!, plan.argv.slice(1), { env: { ...withoutSystemd(o.env ?? process.env), ...plan.env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const pid = child.pid;
    if (pid !== undefined) o.groups?.add(pid);
    const group = (signal: NodeJS.Signals): void => {
      if (pid === undefined) return;
      try { process.kill(-pid, signal); } catch { /* the group is gone */ }
    };
    let grace: NodeJS.Timeout | undefined;
    let cut: NodeJS.Timeout | undefined;
    const timer = setTimeout(() => {
      timedOut = true;
      group('SIGTERM');
      grace = setTimeout(() => group('SIGKILL'), KILL_GRACE_MS);
    }, o.timeoutMs);
    const finish = (r: Omit<PowerResult, 'node' | 'ms'>): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      clearTimeout(grace);
      clearTimeout(cut);
      if (pid !== undefined) o.groups?.delete(pid);
      resolve({ node: plan.node, ...r, ms: Math.round(now() - started), ...(o.wallNow === undefined ? {} : { endedAt: o.wallNow() }) });
    };
    const ended = (code: number | null, signal: NodeJS.Signals | null, note: string): void => {
      const stderr = [clip(err), note].filter((s) => s !== '').join('\n');
      if (timedOut) finish({ result: 'timeout', exitCode: code, signal, output: clip(out), error: `ended after ${o.timeoutMs} ms (power.timeout)${stderr === '' ? '' : `: ${stderr}`}` });
      else finish({ result: code === 0 ? 'ok' : 'failed', exitCode: code, signal, output: clip(out), error: stderr });
    };
    child.stdout.on('data', keep(0, out));
    child.stderr.on('data', keep(1, err));
    child.once('error', (e) => finish({ result: 'failed', exitCode: null, signal: null, output: '', error: `could not run ${plan.argv[0]}: ${e.message}` }));
    child.once('exit', (code, signal) => {
      // The command is over: whatever it left running in its group goes with it, which ends its
      // output too. A process it moved out of the group (setsid, a daemon) may still hold the
      // output open: the result does not wait for that one (its 'close' could be never).
      group('SIGKILL');
      cut = setTimeout(() => {
        child.stdout.destroy();
        child.stderr.destroy();
        ended(code, signal, 'its output was still held open by a process it started outside its process group (left running)');
      }, PIPE_GRACE_MS);
    });
    child.once('close', (code, signal) => ended(code, signal, ''));
  });
}

/** The error of a plan not run because its request was abandoned. */
export const NOT_RUN = 'not run: the request was abandoned before its turn (lanctl ended)';

/**
 * The commands of every request of a daemon: at most `parallel` at once over all of them (two
 * `lanctl nodes power --all` at once must not open twice the sessions a PDU or BMC takes), and the
 * process groups still running ended when the daemon stops (each runs in a group of its own, which
 * a signal to the daemon does not reach).
 */
export class PowerRunner {
  readonly #parallel: number;
  #running = 0;
  readonly #waiting: Array<() => void> = [];
  readonly #groups = new Set<number>();

  constructor(parallel: number) {
    this.#parallel = parallel;
  }

  /** Commands running now and waiting for a slot. */
  get load(): { running: number; waiting: number } { return { running: this.#running, waiting: this.#waiting.length }; }

  /**
   * Runs every plan, results in the plans' order. Once `signal` aborts (the asker went away: a
   * Ctrl-C on `lanctl nodes power off --all`), plans not started yet are not run (failed, saying
   * so); those running finish.
   */
  run(plans: readonly PowerPlan[], o: Omit<RunOptions, 'parallel' | 'groups'> & { signal?: AbortSignal }): Promise<PowerResult[]> {
    return Promise.all(plans.map(async (plan) => {
      if (!plan.ok) return runPowerCommand(plan, { ...o, parallel: 1 });
      await this.#slot();
      if (o.signal?.aborted === true) {
        this.#release();
        return { node: plan.node, result: 'failed' as const, exitCode: null, signal: null, output: '', error: NOT_RUN, ms: 0 };
      }
      try {
        return await runPowerCommand(plan, { ...o, parallel: 1, groups: this.#groups });
      } finally {
        this.#release();
      }
    }));
  }

  #release(): void {
    this.#running--;
    this.#waiting.shift()?.();
  }

  #slot(): Promise<void> {
    if (this.#running < this.#parallel) {
      this.#running++;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.#waiting.push(() => { this.#running++; resolve(); }));
  }

  /** Ends every command still running (and what it started in its group): SIGKILL. */
  stop(): number {
    for (const pid of this.#groups) {
      try { process.kill(-pid, 'SIGKILL'); } catch { /* the group is gone */ }
    }
    return this.#groups.size;
  }
}

/** Runs every plan, at most `parallel` at once; results in the plans' order. */
export function runPower(plans: readonly PowerPlan[], o: RunOptions): Promise<PowerResult[]> {
  return new PowerRunner(o.parallel).run(plans, o);
}

/** Whether `program` would start here: an executable regular file at its path, or found in PATH. */
function findProgram(program: string, path: string): boolean {
  const runnable = (file: string): boolean => {
    try {
      accessSync(file, constants.X_OK);
      return statSync(file).isFile();
    } catch {
      return false;
    }
  };
  if (isAbsolute(program) || program.includes('/')) return runnable(program);
  return path.split(delimiter).some((dir) => dir !== '' && runnable(join(dir, program)));
}

/**
 * The power programs of the block that this machine could not start (missing, not executable, not
 * in PATH), each once with where it is named: a typo found by `lanctl config check` and at start,
 * not on the night a node hangs. Warnings, not errors: a config may be checked on another machine.
 */
export function missingPowerPrograms(config: PowerConfig, path = process.env['PATH'] ?? ''): string[] {
  const where = new Map<string, string[]>();
  const note = (argv: readonly string[] | undefined, key: string): void => {
    if (argv === undefined) return;
    const list = where.get(argv[0]!) ?? [];
    list.push(key);
    where.set(argv[0]!, list);
  };
  for (const k of ['command', ...POWER_ACTIONS] as const) note(config[k], `power.${k}`);
  for (const [g, c] of Object.entries(config.groups)) for (const k of ['command', ...POWER_ACTIONS] as const) note(c[k], `power.groups.${g}.${k}`);
  return [...where].filter(([program]) => !findProgram(program, path))
    .map(([program, keys]) => `${keys.join(', ')}: ${program} ${isAbsolute(program) || program.includes('/') ? 'is not an executable file here' : 'is not found in PATH here'}: lanctl nodes power would fail for the nodes it serves`);
}
