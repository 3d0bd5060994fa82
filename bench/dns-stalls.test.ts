import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stalls } from './dns-stalls.js';

// What filled a queue that stood, from a synthetic miss trace (times in wall-clock microseconds, as
// miss-trace.ts writes them): one stand where the process waited for a core, one where it collected,
// one where it ran, one with no misses around it (a hit run's); the trace's own writes summed.

const ms = (x: number): number => Math.round((1_000_000 + x) * 1000);

/** R samples every 5 ms from `from` to `to` (ms), each adding `run` and `wait` ms of CPU and run-queue wait. */
function samples(from: number, to: number, run: number, wait: number, base: { run: number; wait: number }): string[] {
  const out: string[] = [];
  for (let at = from; at <= to; at += 5) {
    out.push(`R ${ms(at)} ${Math.round(base.run * 1e6)} ${Math.round(base.wait * 1e6)}`);
    base.run += run; base.wait += wait;
  }
  return out;
}

t.test('stands while misses came are put down to the machine, a collection or the process itself', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'lanha-dns-stalls-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const base = { run: 0, wait: 0 };
  const lines = [
    // 0-100 ms: waited for a core 4 of every 5 ms.
    ...samples(0, 100, 1, 4, base), `Q ${ms(10)} ${ms(100)}`, `M a.test ${ms(20)} ${ms(21)} ${ms(22)} ${ms(23)}`, `S ${ms(30)}`,
    // 200-300 ms: ran, mostly collecting.
    ...samples(200, 300, 4, 1, base), `Q ${ms(210)} ${ms(300)}`, `G ${ms(220)} 60000 0`, `M b.test ${ms(230)} ${ms(231)} ${ms(232)} ${ms(233)}`,
    // 400-500 ms: ran its own work.
    ...samples(400, 500, 4, 1, base), `Q ${ms(410)} ${ms(500)}`, `M c.test ${ms(430)} ${ms(431)} ${ms(432)} ${ms(433)}`,
    // A stand with no samples (no misses came) and one shorter than asked.
    `Q ${ms(5000)} ${ms(5200)}`, `Q ${ms(420)} ${ms(425)}`,
    `F ${ms(50)} 1500`, `F ${ms(300)} 500`,
  ];
  writeFileSync(join(dir, 'trace.1'), lines.join('\n') + '\n');
  const out = stalls(dir, 20);
  const verdicts = out.filter((l) => /^trace\.\d+ stood /.test(l)).map((l) => l.slice(l.lastIndexOf(': ') + 2));
  t.same(verdicts, ['machine', 'gc', 'own'], `three stands judged in order (${out.join(' | ')})`);
  t.match(out.join('\n'), /stood >= 20 ms 4 times: while misses came: machine 1, gc 1, own 1; while none came 1; misses shed 1/);
  t.match(out.join('\n'), /the trace's own writes 2, 2\.0 ms in all/);
  t.end();
});
