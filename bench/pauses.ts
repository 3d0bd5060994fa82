// bench helper: what stopped lanha's processes during a bench window, from `lanctl status --json`.
//   node dist/bench/pauses.js snap SOCKET FILE          appends one snapshot (processes' pauses) to FILE
//   node dist/bench/pauses.js sum FILE SECONDS          pairs snapshots (before, after, before, after, ...)
//                                                   and prints per-process totals over the windows
// Output of sum: one line per process role, then `TOTAL <gcMsPerS> <gcMaxMs> <loopP99Ms>` for RESULT lines.
import { execFileSync } from 'node:child_process';
import { appendFileSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

interface PauseSnapshot { minorCount: number; minorMs: number; minorMaxMs: number; majorCount: number; majorMs: number; majorMaxMs: number; loopDelayP99Ms: number }
interface Totals { minor: number; minorMs: number; major: number; majorMs: number; maxMs: number; loopP99: number }

const [cmd, a = '', b = ''] = process.argv.slice(2);
if (cmd === 'snap') {
  let line = '{}';
  try {
    const lanctl = fileURLToPath(new URL('../bin/lanctl.js', import.meta.url));
    const j = JSON.parse(execFileSync(process.execPath, [lanctl, 'status', '--json', '--socket', a], { encoding: 'utf8' })) as { memory?: { processes?: Array<{ role: string; pauses?: PauseSnapshot | null }> } };
    line = JSON.stringify(Object.fromEntries((j.memory?.processes ?? []).map((p) => [p.role, p.pauses ?? null])));
  } catch { /* the daemon is gone: an empty snapshot */ }
  appendFileSync(b, line + '\n');
} else if (cmd === 'sum') {
  const snaps = readFileSync(a, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, PauseSnapshot | null>);
  const seconds = Number(b);
  const acc = new Map<string, Totals>();
  for (let i = 0; i + 1 < snaps.length; i += 2) {
    for (const [role, after] of Object.entries(snaps[i + 1]!)) {
      const before = snaps[i]![role];
      if (after === null || before == null) continue;
      const t = acc.get(role) ?? { minor: 0, minorMs: 0, major: 0, majorMs: 0, maxMs: 0, loopP99: 0 };
      t.minor += after.minorCount - before.minorCount; t.minorMs += after.minorMs - before.minorMs;
      t.major += after.majorCount - before.majorCount; t.majorMs += after.majorMs - before.majorMs;
      t.maxMs = Math.max(t.maxMs, after.minorMaxMs, after.majorMaxMs);
      t.loopP99 = Math.max(t.loopP99, after.loopDelayP99Ms);
      acc.set(role, t);
    }
  }
  let gcMs = 0; let maxMs = 0; let loop = 0;
  for (const [role, t] of acc) {
    const mean = t.minor > 0 ? t.minorMs / t.minor : 0;
    console.log(`  ${role}: ${t.minor} scavenges (${t.minorMs.toFixed(0)} ms, mean ${mean.toFixed(2)} ms), ${t.major} old-generation pauses (${t.majorMs.toFixed(0)} ms), longest pause since start ${t.maxMs.toFixed(2)} ms, loop delay p99 since start ${t.loopP99.toFixed(2)} ms; GC ${(100 * (t.minorMs + t.majorMs) / 1000 / seconds).toFixed(1)} % of the time`);
    gcMs += t.minorMs + t.majorMs; maxMs = Math.max(maxMs, t.maxMs); loop = Math.max(loop, t.loopP99);
  }
  console.log(`TOTAL ${(gcMs / seconds).toFixed(1)} ${maxMs.toFixed(2)} ${loop.toFixed(2)}`);
}
