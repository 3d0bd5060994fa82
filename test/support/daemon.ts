import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LANCTL } from './paths.js';
import type { ServedDaemon } from '../../lib/serve-daemon.js';

// Runs `lanctl` (the built CLI) and `lanctl serve` as real processes for end-to-end tests; serving
// lives in lib/serve-daemon.ts (`lanctl demo` uses it too).

export { serveDaemon, type ServedDaemon } from '../../lib/serve-daemon.js';

/**
 * The JSON log records in a running daemon's output, optionally only those of one `event`. Only
 * whole lines count: the output grows by pipe reads, and a read may end inside a line (a burst of
 * log lines is larger than one read), which JSON.parse would throw on; that line is whole at the
 * next look. Lines that are not JSON (Node's own warnings on stderr) are skipped.
 */
export function logRecords<T = Record<string, unknown>>(output: string, event?: string): T[] {
  const whole = output.slice(0, output.lastIndexOf('\n') + 1);
  const records: T[] = [];
  for (const line of whole.split('\n')) {
    if (!line.startsWith('{') || (event !== undefined && !line.includes(`"event":"${event}"`))) continue;
    try { records.push(JSON.parse(line) as T); } catch { /* not a log record */ }
  }
  return records;
}

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

export function runLanctl(args: readonly string[], options: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<CliRun> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [LANCTL, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: options.env ?? process.env });
    let stdout = '', stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    // Only a bound for a hung run: a loaded machine (load 14 on two cores) took over 20 s to start
    // the daemon far enough to refuse a bad environment.
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
    child.on('close', (code, signal) => { clearTimeout(timer); resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr }); });
  });
}

/** A scratch directory with a config file; `yaml` may use {{dir}} for the directory's path. */
export function scratchConfig(yaml: string): { dir: string; file: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'lanha-test-'));
  const file = join(dir, 'lanha.yaml');
  writeFileSync(file, yaml.replaceAll('{{dir}}', dir));
  return { dir, file, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A single-node daemon's config (no cluster block: a one-member Raft under stateDir), for scratchConfig. */
export const SOLO_CONFIG = `
node:
  name: solo
  stateDir: "{{dir}}/state"
  controlSocket: "{{dir}}/lanha.sock"
  logLevel: info
`;

/** The direct children of `pid` with their command names (a daemon's workers and commands). */
export function childrenOf(pid: number): Array<{ pid: number; comm: string }> {
  const out: Array<{ pid: number; comm: string }> = [];
  let tasks: string[] = [];
  try { tasks = readdirSync(`/proc/${pid}/task`); } catch { return out; }
  for (const task of tasks) {
    let text = '';
    try { text = readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8'); } catch { continue; }
    for (const c of text.trim().split(/\s+/).filter((x) => x !== '')) {
      try { out.push({ pid: Number(c), comm: readFileSync(`/proc/${c}/comm`, 'utf8').trim() }); } catch { /* gone */ }
    }
  }
  return out;
}

/** Whether a process of this pid exists (a zombie not reaped yet counts). */
export const alive = (pid: number): boolean => { try { process.kill(pid, 0); return true; } catch { return false; } };

/**
 * Stops a daemon whose children named `comms` hang (a shim stopped them with SIGSTOP) and checks
 * the stop ended by itself: status 0 within its limit, no daemon.stop_timeout, nothing holding the
 * process. Watches those children as it stops (`first`: the ones already seen) and returns their
 * pids; any still alive at the test's teardown is killed.
 */
export async function stopWithHungChildren(t: { teardown(fn: () => void): void; equal(a: unknown, b: unknown, m: string): void; same(a: unknown, b: unknown, m: string): void },
  d: ServedDaemon, comms: readonly string[], first: readonly number[]): Promise<Set<number>> {
  const daemonPid = d.child.pid!;
  const seen = new Set<number>(first);
  const watch = setInterval(() => { for (const c of childrenOf(daemonPid)) if (comms.includes(c.comm)) seen.add(c.pid); }, 20);
  t.teardown(() => {
    clearInterval(watch);
    for (const pid of seen) if (alive(pid)) { try { process.kill(pid, 'SIGCONT'); process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
  });
  const killer = setTimeout(() => d.child.kill('SIGKILL'), 30_000);
  const result = await d.stop();
  clearTimeout(killer);
  clearInterval(watch);
  t.equal(result.signal, null, 'it exited by itself');
  t.equal(result.code, 0, 'with status 0: within its 5 s limit');
  t.same(logRecords(d.logs(), 'daemon.stop_timeout'), [], 'no daemon.stop_timeout');
  t.same(logRecords<{ resources: string[] }>(d.logs(), 'daemon.exit_held').map((r) => r.resources), [], 'nothing held the stopped process (daemon.exit_held)');
  return seen;
}
