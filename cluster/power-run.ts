import { spawn } from 'node:child_process';
import type { PowerPlan } from './power.js';

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
}

export interface RunOptions {
  timeoutMs: number;
  parallel: number;
  /** The environment the commands start with (the plan's LANHA_* variables are added). */
  env?: NodeJS.ProcessEnv;
  /** Monotonic ms. */
  now?: () => number;
}

function clip(chunks: Buffer[]): string {
  return Buffer.concat(chunks).subarray(0, OUTPUT_MAX).toString('utf8').trim();
}

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
    const child = spawn(plan.argv[0]!, plan.argv.slice(1), { env: { ...(o.env ?? process.env), ...plan.env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const group = (signal: NodeJS.Signals): void => {
      if (child.pid === undefined) return;
      try { process.kill(-child.pid, signal); } catch { /* the group is gone */ }
    };
    let grace: NodeJS.Timeout | undefined;
    const timer = setTimeout(() => {
      timedOut = true;
      group('SIGTERM');
      grace = setTimeout(() => group('SIGKILL'), KILL_GRACE_MS);
    }, o.timeoutMs);
    const finish = (r: Omit<PowerResult, 'node' | 'ms'>): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (grace !== undefined && !timedOut) clearTimeout(grace);
      resolve({ node: plan.node, ...r, ms: Math.round(now() - started) });
    };
    child.stdout.on('data', keep(0, out));
    child.stderr.on('data', keep(1, err));
    child.once('error', (e) => finish({ result: 'failed', exitCode: null, signal: null, output: '', error: `could not run ${plan.argv[0]}: ${e.message}` }));
    child.once('close', (code, signal) => {
      // Whatever the command left running in its group goes with it.
      group('SIGKILL');
      if (grace !== undefined) clearTimeout(grace);
      const stderr = clip(err);
      if (timedOut) finish({ result: 'timeout', exitCode: code, signal, output: clip(out), error: `ended after ${o.timeoutMs} ms (power.timeout)${stderr === '' ? '' : `: ${stderr}`}` });
      else finish({ result: code === 0 ? 'ok' : 'failed', exitCode: code, signal, output: clip(out), error: stderr });
    });
  });
}

/** Runs every plan, at most `parallel` at once; results in the plans' order. */
export async function runPower(plans: readonly PowerPlan[], o: RunOptions): Promise<PowerResult[]> {
  const results: PowerResult[] = new Array(plans.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < plans.length) {
      const i = next++;
      results[i] = await runPowerCommand(plans[i]!, o);
    }
  };
  await Promise.all(Array.from({ length: Math.min(o.parallel, plans.length) }, worker));
  return results;
}
