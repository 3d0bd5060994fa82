// The degraded journal file: records read back in order, a torn tail (a crash mid-write) and a
// damaged record cut at the start as the WAL cuts its unsynced tail, a rewrite keeping the numbers.
import t from 'tap';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { JournalWriter, appendFrameSync, journalBytes, readJournal, rewriteJournal } from './degraded-journal.js';
import type { DegradedRecord } from '../../cluster/degraded.js';

const rec = (n: number): DegradedRecord => ({ ip: 0x0a000000 + n, mac: `02:00:00:00:00:${n.toString(16).padStart(2, '0')}`, subnet: '10.0.0.0/24', state: 'bound', at: 1000 * n, expiresAt: 1000 * n + 60_000 });

t.test('append, read back, torn tail cut, rewrite', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'lanha-journal-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'j');
  t.equal(readJournal(path), null, 'no file: no journal');
  writeFileSync(path, journalBytes('j1', 1, []));
  const w = new JournalWriter(path);
  await Promise.all([w.append(rec(1)), w.append(rec(2)), w.append(rec(3))]);
  await w.close();
  t.same(readJournal(path), { journal: 'j1', from: 1, records: [rec(1), rec(2), rec(3)], cutBytes: 0 }, 'in order, queued appends');
  const whole = statSync(path).size;
  appendFileSync(path, Buffer.from([40, 0, 0, 0, 1, 2, 3, 4, 0x7b])); // a frame cut short by a crash
  const torn = readJournal(path);
  t.equal(torn?.records.length, 3);
  t.equal(torn?.cutBytes, 9, 'the torn tail is cut');
  t.equal(statSync(path).size, whole, '... from the file too');
  appendFrameSync(path, rec(4));
  const bytes = readFileSync(path);
  bytes[bytes.length - 3] = bytes[bytes.length - 3]! ^ 0xff; // a flipped bit in the last record: its CRC fails
  writeFileSync(path, bytes);
  t.same(readJournal(path)?.records, [rec(1), rec(2), rec(3)], 'a record whose CRC fails is not read (nor anything after it)');
  t.same(readJournal(path)?.records, [rec(1), rec(2), rec(3)], 'and reads the same again');
  await rewriteJournal(path, 'j1', 3, [rec(3)]);
  t.same(readJournal(path), { journal: 'j1', from: 3, records: [rec(3)], cutBytes: 0 }, 'a rewrite after a merge keeps the numbering');
  appendFrameSync(path, { ip: 'not an address' });
  t.same(readJournal(path)?.records, [rec(3)], 'a record that does not check is cut like a torn one');
});
