import t from 'tap';
import { appendFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Wal, StorageError, loadState, encodeRecord, decodeSnapshot, encodeSnapshot } from './wal.js';
import { EntryType, type Entry } from './types.js';

function scratch(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'lanha-wal-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const entry = (index: number, term = 1, text = `e${index}`): Entry => ({ index, term, type: EntryType.normal, data: new TextEncoder().encode(text) });
const texts = (es: Entry[]): string[] => es.map((e) => `${e.term}:${e.index}:${new TextDecoder().decode(e.data)}`);

t.test('entries, commit and hard state come back after reopen', async (t) => {
  const dir = scratch(t);
  const { wal, state } = await Wal.open(dir);
  t.same(state.entries, []);
  t.same(state.hardState, { term: 0, vote: null, commit: 0 });
  await wal.save({ term: 2, vote: 'a', commit: 0 }, [entry(1, 2), entry(2, 2)], true);
  await wal.save({ term: 2, vote: 'a', commit: 2 }, [entry(3, 2)], true);
  await wal.close();
  const again = loadState(dir);
  t.same(texts(again.entries), ['2:1:e1', '2:2:e2', '2:3:e3']);
  t.same(again.hardState, { term: 2, vote: 'a', commit: 2 }, 'commit comes from the commit record, term/vote from the hardstate file');
});

t.test('a rewritten suffix replaces the old one (Raft truncation, still append-only)', async (t) => {
  const dir = scratch(t);
  const { wal } = await Wal.open(dir);
  await wal.save({ term: 1, vote: 'a', commit: 0 }, [entry(1), entry(2), entry(3)], true);
  await wal.save({ term: 2, vote: 'b', commit: 0 }, [entry(2, 2, 'new2')], true);
  await wal.close();
  t.same(texts(loadState(dir).entries), ['1:1:e1', '2:2:new2']);
});

t.test('a torn tail in the last segment is cut at start-up; the cut is durable', async (t) => {
  const dir = scratch(t);
  const { wal } = await Wal.open(dir);
  await wal.save({ term: 1, vote: 'a', commit: 2 }, [entry(1), entry(2)], true);
  await wal.close();
  const seg = join(dir, 'wal', readdirSync(join(dir, 'wal'))[0]!);
  const good = readFileSync(seg).length;
  const rec = encodeRecord(1, 1, 3, new TextEncoder().encode('e3'));
  appendFileSync(seg, rec.subarray(0, rec.length - 3)); // a write cut short by power loss
  const { wal: w2, state } = await Wal.open(dir);
  t.equal(state.truncatedBytes, rec.length - 3);
  t.same(texts(state.entries), ['1:1:e1', '1:2:e2']);
  t.equal(readFileSync(seg).length, good, 'the file is cut back to the last whole record');
  await w2.save(undefined, [entry(3)], true);
  await w2.close();
  t.same(texts(loadState(dir).entries), ['1:1:e1', '1:2:e2', '1:3:e3'], 'appends continue after the cut');
});

t.test('a flipped bit in the last record is a torn tail; in an older segment it is refused with file and offset', async (t) => {
  const dir = scratch(t);
  const { wal } = await Wal.open(dir, { segmentBytes: 64 });
  for (let i = 1; i <= 6; i++) await wal.save(undefined, [entry(i)], true);
  await wal.close();
  const segs = readdirSync(join(dir, 'wal')).sort();
  t.ok(segs.length >= 2, `rolled into ${segs.length} segments`);
  const first = join(dir, 'wal', segs[0]!);
  const bytes = readFileSync(first);
  bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 0x40;
  writeFileSync(first, bytes);
  let error: unknown;
  try { loadState(dir); } catch (e) { error = e; }
  t.ok(error instanceof StorageError, 'refused with a StorageError');
  if (error instanceof StorageError) {
    t.equal(error.file, first, 'names the file');
    t.match(error.message, /at offset \d+: record checksum mismatch in a segment that is not the last one/);
  }
});

t.test('a cut that would lose committed entries is refused', async (t) => {
  const dir = scratch(t);
  const { wal } = await Wal.open(dir);
  await wal.save({ term: 1, vote: 'a', commit: 0 }, [entry(1), entry(2)], true);
  await wal.save({ term: 1, vote: 'a', commit: 2 }, [], true);
  await wal.close();
  const seg = join(dir, 'wal', readdirSync(join(dir, 'wal'))[0]!);
  // Hard state says commit 2 (commit records in the same file are gone with the cut).
  writeFileSync(join(dir, 'x'), '');
  const hs = await Wal.open(dir);
  await hs.wal.save({ term: 3, vote: 'a', commit: 2 }, [], true); // writes the hardstate file with commit 2
  await hs.wal.close();
  truncateSync(seg, 8 + 10);
  t.throws(() => loadState(dir), /log ends at 0 but entries up to 2 were committed/);
});

t.test('hard state is replaced atomically: a leftover tmp file is ignored and removed', async (t) => {
  const dir = scratch(t);
  const { wal } = await Wal.open(dir);
  await wal.save({ term: 5, vote: 'b', commit: 0 }, [], true);
  await wal.close();
  writeFileSync(join(dir, 'hardstate.tmp'), 'half a write');
  const { wal: w2, state } = await Wal.open(dir);
  t.same(state.hardState, { term: 5, vote: 'b', commit: 0 });
  t.notOk(existsSync(join(dir, 'hardstate.tmp')));
  await w2.close();
  writeFileSync(join(dir, 'hardstate'), 'garbage');
  t.throws(() => loadState(dir), /hardstate at offset 0: hard state is corrupt/);
});

t.test('snapshots: saved atomically, old segments released, installed snapshot replaces the log', async (t) => {
  const dir = scratch(t);
  const { wal } = await Wal.open(dir, { segmentBytes: 64 });
  for (let i = 1; i <= 8; i++) await wal.save({ term: 1, vote: 'a', commit: i }, [entry(i)], true);
  const before = readdirSync(join(dir, 'wal')).length;
  const conf = { voters: ['a'], learners: [], witnesses: [] };
  await wal.saveSnapshot({ meta: { index: 6, term: 1, conf }, data: new Uint8Array([1, 2, 3]) });
  t.ok(readdirSync(join(dir, 'wal')).length < before, 'segments fully covered by the snapshot are deleted');
  let s = loadState(dir);
  t.equal(s.snapshot?.meta.index, 6);
  t.same(texts(s.entries), ['1:7:e7', '1:8:e8']);
  await wal.saveSnapshot({ meta: { index: 20, term: 3, conf }, data: new Uint8Array([9]) }, true);
  await wal.save({ term: 3, vote: null, commit: 21 }, [entry(21, 3)], true);
  await wal.close();
  s = loadState(dir);
  t.equal(s.snapshot?.meta.index, 20);
  t.same(texts(s.entries), ['3:21:e21'], 'nothing of the old log survives an installed snapshot');
  t.equal(readdirSync(dir).filter((f) => f.endsWith('.snap')).length, 1, 'one snapshot file kept');
});

t.test('snapshot decoder refuses corrupt files with an offset', async (t) => {
  const good = encodeSnapshot({ meta: { index: 3, term: 1, conf: { voters: ['a'], learners: [], witnesses: [] } }, data: new Uint8Array(100) });
  t.ok(decodeSnapshot(good).ok);
  const bad = Buffer.from(good);
  bad[bad.length - 1] = 7;
  const r = decodeSnapshot(bad);
  t.notOk(r.ok);
  if (!r.ok) t.match(r.problem, 'checksum');
  t.notOk(decodeSnapshot(good.subarray(0, 20)).ok);
});

t.test('an injected I/O error breaks the WAL for good: nothing later is acknowledged', async (t) => {
  const dir = scratch(t);
  let fail = false;
  const { wal } = await Wal.open(dir, { failpoint: (name) => { if (fail && name === 'wal.beforeFsync') throw new Error('EIO injected'); } });
  await wal.save(undefined, [entry(1)], true);
  fail = true;
  await t.rejects(wal.save(undefined, [entry(2)], true), /EIO injected/);
  fail = false;
  await t.rejects(wal.save(undefined, [entry(3)], true), /EIO injected/, 'still refused after the fault cleared');
  t.ok(wal.broken);
  await wal.close();
});

t.test('a state directory is locked to one live process', async (t) => {
  const dir = scratch(t);
  writeFileSync(join(dir, 'LOCK'), '1\n'); // pid 1 is alive (init)
  await t.rejects(Wal.open(dir), /in use by process 1/);
  writeFileSync(join(dir, 'LOCK'), '999999999\n'); // no such process: a stale lock after kill -9
  const { wal } = await Wal.open(dir);
  await wal.close();
  t.notOk(existsSync(join(dir, 'LOCK')), 'close() releases the lock');
});
