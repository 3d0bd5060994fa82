import { execFile } from 'node:child_process';
import { which } from './netns.js';

// Small helpers for tests that drive command-line tools on loopback (no namespaces, no root):
// run a tool and collect its output, poll for a condition, and skip loudly when a tool is missing
// (a failure under CI=true, where every tool must be installed).

/** Runs a tool; never rejects: the exit code (1 when it could not run) and stdout+stderr. */
export function runTool(command: string, args: readonly string[], timeoutMs = 60_000): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(command, args, { timeout: timeoutMs, maxBuffer: 1 << 20 }, (error, stdout, stderr) => {
      const code = error ? (typeof (error as { code?: unknown }).code === 'number' ? (error as { code: number }).code : 1) : 0;
      resolve({ code, out: `${stdout}${stderr}` });
    });
  });
}

/** Polls `condition` every 100 ms, up to 5 s (a server logs a transfer a moment after the client exits). */
export async function eventually(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 50 && !condition(); i++) await new Promise((r) => setTimeout(r, 100));
}

interface TapLike {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  fail: (...args: any[]) => unknown;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  pass: (...args: any[]) => unknown;
}

/** True when every tool is on PATH; otherwise skips loudly (fails under CI) and returns false. */
export function haveTools(t: TapLike, tools: readonly string[], what: string): boolean {
  const missing = tools.filter((tool) => !which(tool));
  if (missing.length === 0) return true;
  const reason = `missing ${missing.join(', ')}`;
  if (process.env['CI'] === 'true') t.fail(`CI must run the ${what} but cannot: ${reason}`);
  else { process.stderr.write(`\n*** SKIPPED ${what}: ${reason}\n`); t.pass(`SKIPPED: ${reason}`); }
  return false;
}
