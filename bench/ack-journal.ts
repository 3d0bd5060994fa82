// Bench helper (not a test): COUNT appends to an ACK journal (cluster/ack-journal.ts) of the
// daemon's ring size (4,096) in a fresh directory under DIR, each timed; prints {module, count,
// p50Us, p99Us, maxMs, slowest: [append number, ms] x3, turnovers: [append number, wall ms, CPU ms]
// at every 4,096th append, where the file may turn over (a rotation now; before, at twice the ring,
// the ring rewritten)}. For an A/B of two builds pass the other
// build's ack-journal.js as MODULE (an older build's append takes the ring as its second argument:
// it is given) and interleave runs (base, new, new, base) under flock /work/bench.lock:
//   node dist/bench/ack-journal.js DIR [COUNT=12289] [MODULE=../cluster/ack-journal.js]
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type * as JournalModule from '../cluster/ack-journal.js';
import type { AckRecord } from '../cluster/ack-audit.js';
import { percentile } from './stats.js';

const [dir = '.', countText = '12289', moduleText = '../cluster/ack-journal.js'] = process.argv.slice(2);
const count = Math.max(1, Math.min(Number(countText), 1_000_000));
const { AckJournal } = await import(moduleText) as typeof JournalModule;
const capacity = 4096;
const scratch = mkdtempSync(join(dir, 'lh-ack-journal-'));
try {
  const journal = AckJournal.open(join(scratch, 'acks.jsonl'), capacity);
  const append = journal.append.bind(journal) as (ack: AckRecord, ring: readonly AckRecord[]) => void;
  const ring: AckRecord[] = [];
  const times: number[] = [];
  const turnovers: Array<[number, number, number]> = [];
  const round = (ms: number): number => Math.round(ms * 1000) / 1000;
  for (let i = 1; i <= count; i++) {
    const ack: AckRecord = { index: 1000 + i, term: 3, ip: 0x0a630000 + (i & 0xffff), mac: `52:54:00:${((i >> 16) & 255).toString(16).padStart(2, '0')}:${((i >> 8) & 255).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`, at: 1_764_900_000_000 + i, sentAt: 1_764_900_000_000 + i };
    ring.push(ack);
    if (ring.length > capacity) ring.shift();
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    append(ack, ring);
    times.push(performance.now() - t0);
    // Where a file turns over (every 4,096th append): its wall and CPU ms.
    if (i % capacity === 0) { const c = process.cpuUsage(c0); turnovers.push([i, round(times[i - 1]!), round((c.user + c.system) / 1000)]); }
  }
  journal.close();
  const slowest = times.map((ms, i): [number, number] => [i + 1, round(ms)]).sort((a, b) => b[1] - a[1]).slice(0, 3);
  const sorted = [...times].sort((a, b) => a - b);
  const us = (ms: number): number => Math.round(ms * 10_000) / 10;
  process.stdout.write(`${JSON.stringify({ module: moduleText, count, p50Us: us(percentile(sorted, 50)), p99Us: us(percentile(sorted, 99)), maxMs: round(sorted[sorted.length - 1]!), slowest, turnovers })}\n`);
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
