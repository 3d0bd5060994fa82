// Bench helper (not a test): sequential Wal.save() of one 100-byte entry, each waiting for its
// fdatasync, COUNT times in a fresh directory under DIR; prints {module, count, usPerSave}. For an
// A/B of two builds, pass the other build's wal.js as MODULE and interleave runs (base, new, new,
// base) under flock /work/bench.lock:
//   node dist/bench/wal-save.js DIR [COUNT=1000] [MODULE=../cluster/raft/wal.js]
// Used for the cost of the segment check beside each fdatasync (cluster/raft/README.md, "The state
// directory removed under a running member").
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type * as WalModule from '../cluster/raft/wal.js';

const [dir = '.', countText = '1000', moduleText = '../cluster/raft/wal.js'] = process.argv.slice(2);
const count = Math.max(1, Math.min(Number(countText), 100_000));
const { Wal } = await import(moduleText) as typeof WalModule;
const scratch = mkdtempSync(join(dir, 'lh-wal-save-'));
try {
  const { wal } = await Wal.open(scratch);
  const data = new Uint8Array(100);
  await wal.save({ term: 1, vote: 'a', commit: 0 }, [], true);
  const started = performance.now();
  for (let i = 1; i <= count; i++) await wal.save({ term: 1, vote: 'a', commit: i - 1 }, [{ index: i, term: 1, type: 0, data }], true);
  const usPerSave = ((performance.now() - started) / count) * 1000;
  await wal.close();
  process.stdout.write(`${JSON.stringify({ module: moduleText, count, usPerSave: Math.round(usPerSave * 10) / 10 })}\n`);
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
