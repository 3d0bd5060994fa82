// The miss trace samples its thread's schedstat only while misses come: nothing while the process is
// idle or serving hits (before, 200 reads of /proc a second in every process, 65-100 ms of CPU a
// second, all the time the trace was on), from the first miss traced, and no more once a flush
// period passed without one. Read back from the trace file, as bench/dns-stages.ts reads it.
import t from 'tap';
import { mkdtempSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { missTrace } from './miss-trace.js';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

t.test('schedstat samples only while misses come', { skip: process.platform !== 'linux' && 'reads /proc' }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'lanha-miss-trace-'));
  const file = join(dir, `trace.${process.pid}`);
  const samples = (): number => (existsSync(file) ? readFileSync(file, 'latin1').split('\n').filter((l) => l.startsWith('R ')).length : 0);
  const trace = missTrace({ LANHA_DNS_MISS_TRACE: dir });
  t.ok(trace !== null);
  await sleep(600);
  t.equal(samples(), 0, 'no miss yet: no sample');
  const now = performance.now();
  trace!.miss('a.example', now - 3, now - 2, now - 1, now);
  await sleep(300);
  const during = samples();
  t.ok(during >= 5, `sampled every 5 ms while misses come (${during} samples in 300 ms)`);
  t.match(readFileSync(file, 'latin1'), /^M a\.example \d+ \d+ \d+ \d+$/m, 'the miss itself recorded');
  await sleep(600);
  const stopped = samples();
  await sleep(600);
  t.equal(samples(), stopped, 'a flush period without misses: the sampler stopped');
  trace!.shed(performance.now());
  await sleep(300);
  t.ok(samples() > stopped, 'a shed miss starts it again');
  const at = performance.now();
  trace!.stood(at - 120, at);
  await sleep(600);
  const text = readFileSync(file, 'latin1');
  const q = /^Q (\d+) (\d+)$/m.exec(text);
  t.ok(q !== null && Number(q[2]) - Number(q[1]) === 120_000, `a queue that stood 120 ms recorded with its span in microseconds (${q?.[0]})`);
  t.ok(/^F \d+ \d+$/m.test(text), "the trace's own writes recorded (their time on the event loop)");
  t.ok(text.indexOf('M a.example') < text.indexOf('S ') && text.indexOf('S ') < text.indexOf('Q '), 'writes land in the order they were made');
});
