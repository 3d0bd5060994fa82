import t from 'tap';
import fc from 'fast-check';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Wal, StorageError, loadState, encodeRecord, decodeSnapshot, encodeSnapshot, scanSegment } from './wal.js';
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

t.test('a flipped bit in an older segment is refused with file and offset', async (t) => {
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

t.test('the highest commit index heard of (HardState.heard) is kept in the hardstate file with term and vote', async (t) => {
  const dir = scratch(t);
  const { wal } = await Wal.open(dir);
  await wal.save({ term: 2, vote: 'a', commit: 1, heard: 9 }, [entry(1, 2), entry(2, 2)], true);
  await wal.save({ term: 2, vote: 'a', commit: 2, heard: 12 }, [entry(3, 2)], true); // no term/vote change: 12 waits for the next hardstate write
  await wal.close();
  t.same(loadState(dir).hardState, { term: 2, vote: 'a', commit: 2, heard: 9 }, 'heard as written with the term and vote; commit from the commit record');
  t.same(JSON.parse(readFileSync(join(dir, 'hardstate')).subarray(16).toString('utf8')), { term: 2, vote: 'a', commit: 1, heard: 9 }, 'a field older readers ignore');
  const again = await Wal.open(dir);
  await again.wal.save({ term: 3, vote: null, commit: 2, heard: 12 }, [], true);
  await again.wal.save({ term: 4, vote: null, commit: 2, heard: 5 }, [entry(4, 4), entry(5, 4)], true);
  await again.wal.save({ term: 4, vote: null, commit: 5 }, [], true);
  await again.wal.close();
  t.same(loadState(dir).hardState, { term: 4, vote: null, commit: 5 }, 'dropped once the commit caught up with it');
});

t.test('the newest committed entry known past the commit (HardState.heardEntry) is kept in the hardstate file with term and vote', async (t) => {
  const dir = scratch(t);
  const { wal } = await Wal.open(dir);
  await wal.save({ term: 2, vote: 'a', commit: 1, heard: 9, heardEntry: { index: 7, term: 2 } }, [entry(1, 2), entry(2, 2)], true);
  await wal.close();
  t.same(loadState(dir).hardState, { term: 2, vote: 'a', commit: 1, heard: 9, heardEntry: { index: 7, term: 2 } });
  t.same(JSON.parse(readFileSync(join(dir, 'hardstate')).subarray(16).toString('utf8')), { term: 2, vote: 'a', commit: 1, heard: 9, heardEntry: { index: 7, term: 2 } }, 'a field older readers ignore');
  const again = await Wal.open(dir);
  await again.wal.save({ term: 3, vote: null, commit: 2, heardEntry: { index: 2, term: 2 } }, [], true);
  await again.wal.close();
  t.same(loadState(dir).hardState, { term: 3, vote: null, commit: 2 }, 'not kept at or below the commit');
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

/** A failpoint that holds every fdatasync until released, and counts them. */
function heldSyncs(): { failpoint: (name: string) => Promise<void> | void; started: () => number; release: () => void } {
  let started = 0;
  let gates: Array<() => void> = [];
  let open = false;
  return {
    failpoint: (name) => {
      if (name !== 'wal.beforeFsync') return;
      started++;
      if (open) return;
      return new Promise<void>((r) => gates.push(r));
    },
    started: () => started,
    release: () => { open = true; const g = gates; gates = []; for (const r of g) r(); },
  };
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

t.test('pipelined: batches written while an fdatasync runs share the next one, durable in write order, never before a covering fsync', async (t) => {
  const dir = scratch(t);
  const held = heldSyncs();
  const { wal } = await Wal.open(dir, { failpoint: held.failpoint });
  const order: number[] = [];
  const first = await wal.begin(undefined, [entry(1)], true);
  void first.durable.then(() => order.push(1));
  const second = await wal.begin(undefined, [entry(2)], true);
  void second.durable.then(() => order.push(2));
  const third = await wal.begin(undefined, [entry(3), entry(4)], true);
  void third.durable.then(() => order.push(3));
  await tick();
  t.equal(held.started(), 1, 'one fdatasync in flight (syncsInFlightMax 1); the later batches wait for the next');
  t.same(order, [], 'nothing is durable before its fdatasync completed');
  t.same(texts(loadState(dir).entries), ['1:1:e1', '1:2:e2', '1:3:e3', '1:4:e4'], 'all three batches are written (page cache) meanwhile');
  held.release();
  await third.durable;
  t.same(order, [1, 2, 3], 'durable in write order');
  t.equal(wal.syncCount, 2, 'two fdatasyncs for three batches: the second covers batches 2 and 3');
  await wal.close();
});

t.test('durable resolves with when its covering fdatasync was issued: later than the write while one was in flight', async (t) => {
  const dir = scratch(t);
  const held = heldSyncs();
  let now = 100;
  const { wal } = await Wal.open(dir, { failpoint: held.failpoint, now: () => now });
  const first = await wal.begin(undefined, [entry(1)], true);
  now = 105; // the second batch is written while the first's fdatasync runs
  const second = await wal.begin(undefined, [entry(2)], true);
  now = 130; // the first's fdatasync returns now: the one covering the second is issued then
  await tick();
  held.release();
  t.equal(await first.durable, 100, 'the first batch\'s fdatasync was issued at its write');
  t.equal(await second.durable, 130, 'the second waited 25 ms behind the one in flight before its own was issued');
  await wal.close();
});

t.test('pipelined: with several fdatasyncs allowed at once, each batch gets its own at once, still durable in order', async (t) => {
  const dir = scratch(t);
  const held = heldSyncs();
  const { wal } = await Wal.open(dir, { failpoint: held.failpoint, syncsInFlightMax: 2 });
  const a = await wal.begin(undefined, [entry(1)], true);
  const b = await wal.begin(undefined, [entry(2)], true);
  const c = await wal.begin(undefined, [entry(3)], true);
  await tick();
  t.equal(held.started(), 2, 'two in flight, the third batch waits for a slot');
  held.release();
  await Promise.all([a.durable, b.durable, c.durable]);
  t.equal(wal.syncCount, 3);
  await wal.close();
  t.same(texts(loadState(dir).entries), ['1:1:e1', '1:2:e2', '1:3:e3']);
});

t.test('pipelined, two fdatasyncs at once: when the later one fails first, the earlier one\'s success does not make its batch durable', async (t) => {
  const dir = scratch(t);
  let n = 0;
  let gate: (() => void) | undefined;
  const { wal } = await Wal.open(dir, {
    syncsInFlightMax: 2,
    failpoint: async (name) => {
      if (name !== 'wal.beforeFsync') return;
      const call = ++n;
      if (call === 1) await new Promise<void>((r) => { gate = r; });
      // The write-back error of the first batch's page, taken by the second fdatasync.
      if (call === 2) throw Object.assign(new Error('EIO injected'), { code: 'EIO' });
    },
  });
  const a = await wal.begin(undefined, [entry(1)], true);
  const b = await wal.begin(undefined, [entry(2)], true);
  for (let i = 0; i < 100 && wal.broken === undefined; i++) await tick();
  t.match(wal.broken?.message, /EIO injected/, 'the second fdatasync failed while the first was still in flight');
  gate!();
  await t.rejects(a.durable, /EIO injected/, 'the first batch is not reported durable: its fdatasync returned after the error was taken by another');
  await t.rejects(b.durable, /EIO injected/);
  await wal.close();
});

t.test('pipelined: a failed fdatasync rejects its batch and every later one, the earlier stay durable', async (t) => {
  const dir = scratch(t);
  let n = 0;
  let gate: (() => void) | undefined;
  const { wal } = await Wal.open(dir, {
    failpoint: async (name) => {
      if (name !== 'wal.beforeFsync') return;
      n++;
      if (n === 1) await new Promise<void>((r) => { gate = r; });
      if (n === 2) throw Object.assign(new Error('EIO injected'), { code: 'EIO' });
    },
  });
  const a = await wal.begin(undefined, [entry(1)], true);
  const b = await wal.begin(undefined, [entry(2)], true);
  const c = await wal.begin(undefined, [entry(3)], true);
  await tick();
  gate!();
  await a.durable;
  await t.rejects(b.durable, /EIO injected/);
  await t.rejects(c.durable, /EIO injected/, 'a batch after the failed fsync is never reported durable');
  await t.rejects(wal.begin(undefined, [entry(4)], true), /EIO injected/, 'and nothing is written after it');
  await wal.close();
});

t.test('pipelined: a term change waits for every batch before it to be durable', async (t) => {
  const dir = scratch(t);
  const held = heldSyncs();
  const { wal } = await Wal.open(dir, { failpoint: held.failpoint });
  const a = await wal.begin({ term: 0, vote: null, commit: 0 }, [entry(1)], true);
  let durableA = false;
  void a.durable.then(() => { durableA = true; });
  let begun = false;
  const hard = wal.begin({ term: 2, vote: 'b', commit: 0 }, [entry(2, 2)], true).then((r) => { begun = true; return r; });
  await tick();
  t.notOk(begun, 'the new term is not written while an earlier batch is not durable');
  held.release();
  const b = await hard;
  t.ok(durableA, 'the earlier batch was durable first');
  await b.durable;
  await wal.close();
  const state = loadState(dir);
  t.same(state.hardState, { term: 2, vote: 'b', commit: 0 });
  t.same(texts(state.entries), ['1:1:e1', '2:2:e2']);
});

t.test('pipelined crash: a torn write anywhere in the unsynced batches keeps every durable entry and a clean prefix of the rest', async (t) => {
  const dir = scratch(t);
  let hold = false;
  const held = heldSyncs();
  const { wal } = await Wal.open(dir, { failpoint: (name) => (hold ? held.failpoint(name) : undefined) });
  const first = await wal.begin(undefined, [entry(1), entry(2)], true);
  await first.durable;
  const segFile = join(dir, 'wal', readdirSync(join(dir, 'wal'))[0]!);
  const durableBytes = scanSegment(readFileSync(segFile)).end;
  // Now the fdatasyncs hang: three more batches are written (one fdatasync in flight, the others
  // waiting for the next), the last one rewriting a suffix (a new leader's entries).
  hold = true;
  const b = await wal.begin(undefined, [entry(3)], true);
  const c = await wal.begin(undefined, [entry(4), entry(5, 2)], true);
  const d = await wal.begin(undefined, [entry(4, 3, 'x4')], true);
  for (const x of [b, c, d]) void x.durable.catch(() => undefined);
  const written = readFileSync(segFile);
  const full = written.subarray(0, scanSegment(written).end);
  t.ok(full.length > durableBytes);
  t.ok(written.subarray(full.length).every((b) => b === 0), 'past the records the segment holds prefilled zeros');
  // Power fails: any prefix of the unsynced bytes may be on the disk.
  let cuts = 0;
  // Cut points around every record boundary of the unsynced bytes (each torn cut costs loadState an
  // fsync of the cut, and hundreds of them slowed the fsyncs of tests running beside this one).
  const boundaries = [...scanSegment(full).records.map((r) => r.offset), full.length].filter((b) => b >= durableBytes);
  const cutPoints = [...new Set(boundaries.flatMap((b) => [b - 1, b, b + 1, b + 5, b + 8, b + 13]).filter((c) => c >= durableBytes && c <= full.length))];
  for (const cut of cutPoints) {
    const copy = mkdtempSync(join(tmpdir(), 'lanha-wal-cut-'));
    try {
      mkdirSyncP(join(copy, 'wal'));
      // Every other cut with the prefilled zeros after it (the power went after the prefill was durable).
      writeFileSync(join(copy, 'wal', readdirSync(join(dir, 'wal'))[0]!), cut % 2 === 0 ? full.subarray(0, cut) : Buffer.concat([full.subarray(0, cut), Buffer.alloc(4096)]));
      const state = loadState(copy);
      const got = texts(state.entries);
      t.same(got.slice(0, 2), ['1:1:e1', '1:2:e2'], `cut at ${cut}: the durable entries are all there`);
      const allowed = [['1:1:e1', '1:2:e2'], ['1:1:e1', '1:2:e2', '1:3:e3'], ['1:1:e1', '1:2:e2', '1:3:e3', '1:4:e4'], ['1:1:e1', '1:2:e2', '1:3:e3', '1:4:e4', '2:5:e5'], ['1:1:e1', '1:2:e2', '1:3:e3', '3:4:x4']];
      t.ok(allowed.some((a) => JSON.stringify(a) === JSON.stringify(got)), `cut at ${cut}: ${got.join(' ')} is a whole-record prefix of what was written`);
      cuts++;
    } finally {
      rmSync(copy, { recursive: true, force: true });
    }
  }
  t.ok(cuts > 15, `${cuts} cut points checked, around every record boundary`);
  held.release();
  await wal.close();
});

function mkdirSyncP(dir: string): void {
  mkdirSync(dir, { recursive: true });
}

t.test('prefill: the live segment holds zeros past its records, read back as its end after a crash; a restart writes on from the last record', async (t) => {
  const dir = scratch(t);
  const { wal } = await Wal.open(dir, { prefillBytes: 8192 });
  await wal.save({ term: 1, vote: 'a', commit: 0 }, [entry(1), entry(2)], true);
  await wal.save(undefined, [entry(3)], true);
  const segFile = join(dir, 'wal', readdirSync(join(dir, 'wal'))[0]!);
  const bytes = readFileSync(segFile);
  const end = scanSegment(bytes).end;
  t.ok(bytes.length > end + 4096 && bytes.subarray(end).every((b) => b === 0), `the file (${bytes.length} bytes) runs on in zeros past its records (${end})`);
  // kill -9 now: no close(), the zeros stay.
  const crashed = loadState(dir);
  t.same(texts(crashed.entries), ['1:1:e1', '1:2:e2', '1:3:e3']);
  t.equal(crashed.truncatedBytes, 0, 'zeros are the end, not a torn write');
  const { wal: again } = await Wal.open(dir, { prefillBytes: 8192 });
  await again.save(undefined, [entry(4)], true);
  await again.close();
  t.same(texts(loadState(dir).entries), ['1:1:e1', '1:2:e2', '1:3:e3', '1:4:e4'], 'the restart wrote after the last record, not after the zeros');
  t.equal(readFileSync(segFile).length, scanSegment(readFileSync(segFile)).end, 'a clean close cuts the zeros off');
  void wal;
});

t.test('prefill: a record after zeros is damage in the tail (cut there), never skipped over', async (t) => {
  const dir = scratch(t);
  const { wal } = await Wal.open(dir, { prefillBytes: 4096 });
  await wal.save(undefined, [entry(1)], true);
  await wal.close();
  const segFile = join(dir, 'wal', readdirSync(join(dir, 'wal'))[0]!);
  const good = readFileSync(segFile);
  // zeros, then a whole record: a later page reached the disk before an earlier one (never fsync'd).
  writeFileSync(segFile, Buffer.concat([good, Buffer.alloc(100), encodeRecord(1, 1, 2, new TextEncoder().encode('e2'))]));
  const state = loadState(dir);
  t.same(texts(state.entries), ['1:1:e1']);
  t.ok(state.truncatedBytes > 100, 'the tail after the last whole record is cut as torn');
});

t.test('a power cut at every byte of the last batch: the scan keeps exactly the whole records before the cut, whatever follows it', async (t) => {
  // The pure scan start-up cuts by (no file, no fsync per cut, so every offset is affordable): the
  // last batch is three records; the disk may hold any prefix of it, then nothing, the prefilled
  // zeros, or stale bytes of an unrelated sector (a later page reached the disk, an earlier did not).
  const dir = scratch(t);
  const { wal } = await Wal.open(dir, { prefillBytes: 0 });
  await wal.save({ term: 1, vote: 'a', commit: 0 }, [entry(1), entry(2)], true);
  await wal.save({ term: 1, vote: 'a', commit: 2 }, [entry(3, 1, 'x'.repeat(40)), entry(4), entry(5, 1, '')], true);
  await wal.close();
  const full = readFileSync(join(dir, 'wal', readdirSync(join(dir, 'wal'))[0]!));
  const records = scanSegment(full).records;
  const lastBatchAt = records.find((r) => r.index === 3)!.offset;
  const ends = records.map((r, i) => records[i + 1]?.offset ?? full.length);
  const stale = Buffer.from(Array.from({ length: 64 }, (_, i) => (i * 37 + 11) & 0xff));
  let cuts = 0;
  for (let cut = lastBatchAt; cut <= full.length; cut++) {
    const whole = records.filter((_, i) => ends[i]! <= cut);
    for (const [tail, after] of [['nothing', Buffer.alloc(0)], ['zeros', Buffer.alloc(256)], ['stale bytes', stale]] as const) {
      const scan = scanSegment(Buffer.concat([full.subarray(0, cut), after]));
      const got = scan.records.map((r) => `${r.type}:${r.index}`).join(' ');
      const want = whole.map((r) => `${r.type}:${r.index}`).join(' ');
      if (got !== want) t.fail(`cut at ${cut}, then ${tail}: records ${got}, want ${want}`);
      const end = whole.length > 0 ? ends[records.indexOf(whole[whole.length - 1]!)]! : 8;
      if (scan.end !== end) t.fail(`cut at ${cut}, then ${tail}: the next record would go at ${scan.end}, not ${end}`);
      cuts++;
    }
  }
  t.equal(cuts, 3 * (full.length - lastBatchAt + 1), `${cuts} cuts: every byte of the last batch (${full.length - lastBatchAt} bytes), each with three tails`);
});

/** Where a record's payload starts (length, CRC, type, term, index before it). */
const RECORD_PAYLOAD_AT = 8 + 1 + 8 + 8;

/** The WAL files of `dir` (segments, hard state), to copy into scratch directories. */
function walFiles(dir: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const f of readdirSync(join(dir, 'wal'))) out.set(join('wal', f), readFileSync(join(dir, 'wal', f)));
  if (existsSync(join(dir, 'hardstate'))) out.set('hardstate', readFileSync(join(dir, 'hardstate')));
  return out;
}

function writeFiles(dir: string, files: Map<string, Buffer>): void {
  mkdirSync(join(dir, 'wal'), { recursive: true });
  for (const [name, bytes] of files) writeFileSync(join(dir, name), bytes);
}

/** Loads a copy of `files` in `dir` (removed after): the entries, or 'refused' (a StorageError naming a file in it and an offset). */
function loadCopy(dir: string, files: Map<string, Buffer>): string[] | 'refused' {
  writeFiles(dir, files);
  try {
    return texts(loadState(dir).entries);
  } catch (error) {
    if (!(error instanceof StorageError)) throw error;
    if (!/ at offset \d+: /.test(error.message) || !error.file.startsWith(dir)) throw new Error(`unclear refusal: ${error.message}`);
    return 'refused';
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

t.test('damage in the middle of the last segment, before what an fdatasync made durable, is refused (file, offset, how to rebuild), never cut', async (t) => {
  const dir = scratch(t);
  const { wal } = await Wal.open(dir);
  await wal.save({ term: 1, vote: 'a', commit: 0 }, [entry(1), entry(2)], true);
  await wal.save({ term: 1, vote: 'a', commit: 2 }, [entry(3), entry(4)], true);
  await wal.save({ term: 1, vote: 'a', commit: 4 }, [entry(5)], true);
  await wal.close();
  const seg = join(dir, 'wal', readdirSync(join(dir, 'wal'))[0]!);
  const good = readFileSync(seg);
  const r3 = scanSegment(good).records.find((r) => r.index === 3 && r.type === 1)!;
  const bad = Buffer.from(good);
  bad[r3.offset + RECORD_PAYLOAD_AT + 1] = bad[r3.offset + RECORD_PAYLOAD_AT + 1]! ^ 0x10; // one flipped bit in entry 3's payload
  writeFileSync(seg, bad);
  let error: unknown;
  try { loadState(dir); } catch (e) { error = e; }
  t.ok(error instanceof StorageError, 'refused');
  if (error instanceof StorageError) {
    t.equal(error.file, seg, 'names the segment');
    t.equal(error.offset, r3.offset, 'and the offset of the damaged record');
    t.match(error.message, /record checksum mismatch, before offset \d+ that an fdatasync had made durable/);
    t.match(error.message, /not a torn write, so the log is not cut/);
    t.match(error.message, new RegExp(`move ${dir}.* aside .* leader sends it what it lacks`), 'says how to rebuild the member from its peers');
    t.match(error.message, new RegExp(`truncate -s ${r3.offset} ${seg}`), 'and, alone, how to accept the loss knowingly');
  }
  t.same(readFileSync(seg), bad, 'the segment is left as it was');
  await t.rejects(Wal.open(dir), StorageError, 'Wal.open refuses too');
  // The same damage in a length field (the record's extent is garbage): the marks past it still count.
  const badLen = Buffer.from(good);
  badLen[r3.offset] = 0x7f;
  writeFileSync(seg, badLen);
  t.throws(() => loadState(dir), /record length \d+ is impossible, before offset/);
  // A segment header damaged in a file that holds records is damage too, not a crash while creating it.
  const badMagic = Buffer.from(good);
  badMagic[2] = 0;
  writeFileSync(seg, badMagic);
  t.throws(() => loadState(dir), /bad magic\), and the file holds \d+ bytes/);
  t.same(readFileSync(seg), badMagic, 'not rewritten');
});

t.test('after a quiet spell a bare record marks the last batch durable: damage to it after a crash is refused, a torn tail after it still cut', async (t) => {
  const dir = scratch(t);
  const { wal } = await Wal.open(dir, { markIdleMs: 20 });
  await wal.save({ term: 1, vote: 'a', commit: 0 }, [entry(1), entry(2)], true);
  await wal.save({ term: 1, vote: 'a', commit: 2 }, [entry(3)], true);
  const syncs = wal.syncCount;
  for (let i = 0; i < 200 && wal.syncCount === syncs; i++) await new Promise((r) => setTimeout(r, 5));
  t.equal(wal.syncCount, syncs + 1, 'one more fdatasync: the mark');
  await new Promise((r) => setTimeout(r, 60));
  t.equal(wal.syncCount, syncs + 1, 'and only one (a mark is not marked)');
  // kill -9 now (no close): copy what is on the disk.
  const files = walFiles(dir);
  const segName = join('wal', readdirSync(join(dir, 'wal'))[0]!);
  const bytes = files.get(segName)!;
  const scan = scanSegment(bytes);
  const e3 = scan.records.find((r) => r.index === 3 && r.type === 1)!;
  const crashed = mkdtempSync(join(tmpdir(), 'lanha-wal-mark-'));
  t.teardown(() => rmSync(crashed, { recursive: true, force: true }));
  const bad = Buffer.from(bytes);
  bad[e3.offset + RECORD_PAYLOAD_AT] = bad[e3.offset + RECORD_PAYLOAD_AT]! ^ 1;
  writeFiles(crashed, new Map([...files, [segName, bad]]));
  t.throws(() => loadState(crashed), /record checksum mismatch, before offset/, 'the last batch is covered');
  // A torn batch written after the mark (never fsync'd) is cut as before.
  const torn = encodeRecord(1, 1, 4, new TextEncoder().encode('e4'));
  writeFiles(crashed, new Map([...files, [segName, Buffer.concat([bytes.subarray(0, scan.end), torn.subarray(0, torn.length - 2)])]]));
  const state = loadState(crashed);
  t.same(texts(state.entries), ['1:1:e1', '1:2:e2', '1:3:e3']);
  t.equal(state.truncatedBytes, torn.length - 2);
  await wal.close();
});

t.test('no bare mark while batches keep coming (each carries the mark of the ones before it): its fdatasync would delay the next batch; one after the burst', async (t) => {
  const dir = scratch(t);
  // markIdleMs well above one fdatasync even on a loaded machine: the gap between two batches of
  // the burst is one fdatasync and 5 ms.
  const { wal } = await Wal.open(dir, { markIdleMs: 300 });
  const start = wal.syncCount;
  let batches = 0;
  // A burst of batches for well over markIdleMs (bounded: 120 batches, at least 600 ms).
  for (let i = 1; i <= 120; i++) {
    await wal.save({ term: 1, vote: 'a', commit: i - 1 }, [entry(i)], true);
    batches++;
    await new Promise((r) => setTimeout(r, 5));
  }
  t.equal(wal.syncCount - start, batches, 'one fdatasync per batch and no bare marks during the burst');
  for (let i = 0; i < 400 && wal.syncCount - start === batches; i++) await new Promise((r) => setTimeout(r, 5));
  t.equal(wal.syncCount - start, batches + 1, 'the mark once the burst is over');
  await wal.close();
});

t.test('property: bytes flipped anywhere in a multi-batch WAL: every fsync\'d entry comes back, or start-up refuses naming file and offset; never a silent loss', async (t) => {
  // Written once per shape: several segments, batches of 1-4 entries, commit advances; then either
  // a clean close or a crash after the quiet-spell mark. Each run flips 1-3 bytes (any bits) of
  // the copy and loads it.
  const shapes: Array<{ name: string; files: Map<string, Buffer>; want: string[] }> = [];
  for (const [name, close] of [['clean close', true], ['kill -9 after the mark', false]] as const) {
    const dir = scratch(t);
    const { wal } = await Wal.open(dir, { segmentBytes: 400, markIdleMs: 10, prefillBytes: 256 });
    let index = 0;
    for (let b = 0; b < 12; b++) {
      const batch = Array.from({ length: 1 + (b % 4) }, () => entry(++index, 1, `entry ${index} ${'x'.repeat(index % 7)}`));
      await wal.save({ term: 1, vote: 'a', commit: Math.max(0, index - 2) }, batch, true);
    }
    if (close) await wal.close();
    else {
      const syncs = wal.syncCount;
      for (let i = 0; i < 200 && wal.syncCount === syncs; i++) await new Promise((r) => setTimeout(r, 5));
    }
    shapes.push({ name, files: walFiles(dir), want: texts(loadState(dir).entries) });
    if (!close) await wal.close();
    t.ok(shapes[shapes.length - 1]!.files.size >= 3, `${name}: ${shapes[shapes.length - 1]!.files.size - 1} segments`);
  }
  const root = mkdtempSync(join(tmpdir(), 'lanha-wal-flip-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  let k = 0;
  const outcome = { refused: 0, intact: 0 };
  fc.assert(fc.property(fc.nat(shapes.length - 1), fc.array(fc.tuple(fc.nat(), fc.nat(), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 3 }), (which, flips) => {
    const shape = shapes[which]!;
    const segNames = [...shape.files.keys()].filter((f) => f.startsWith('wal')).sort();
    const files = new Map([...shape.files].map(([f, b]) => [f, Buffer.from(b)]));
    for (const [seg, pos, xor] of flips) {
      const bytes = files.get(segNames[seg % segNames.length]!)!;
      bytes[pos % bytes.length] = bytes[pos % bytes.length]! ^ xor;
    }
    const got = loadCopy(join(root, String(k++)), files);
    if (got === 'refused') { outcome.refused++; return; }
    if (JSON.stringify(got) !== JSON.stringify(shape.want)) throw new Error(`${shape.name}, flips ${JSON.stringify(flips)}: loaded ${got.length} entries, want ${shape.want.length}: a silent loss`);
    outcome.intact++;
  }), { numRuns: 800, seed: 7 });
  t.ok(outcome.refused > 400, `refused ${outcome.refused}, every entry back ${outcome.intact} (a flip in the prefilled zeros or the last mark)`);
});

t.test('a quiet-spell mark whose fdatasync fails breaks the WAL and tells the onBroken listeners, with no batch waiting to hear it', async (t) => {
  const dir = scratch(t);
  let fail = false;
  const { wal } = await Wal.open(dir, { markIdleMs: 20, failpoint: (name) => { if (fail && name === 'wal.beforeFsync') throw Object.assign(new Error('EIO: the mark\'s fdatasync'), { code: 'EIO' }); } });
  const heard: Error[] = [];
  wal.onBroken((error) => heard.push(error));
  await wal.save({ term: 1, vote: 'a', commit: 0 }, [entry(1)], true);
  fail = true;
  for (let i = 0; i < 200 && heard.length === 0; i++) await new Promise((r) => setTimeout(r, 5));
  t.equal(heard.length, 1, 'told once');
  t.match(heard[0]?.message ?? '', /the mark's fdatasync/);
  t.ok(wal.broken, 'broken');
  await t.rejects(wal.save(undefined, [entry(2)], true), /the mark's fdatasync/, 'and the next batch is refused');
  await wal.close();
});

t.test('property: bytes flipped in the last batches of the last segment: refused whenever a later record or a bare mark says they were fsync\'d; cut only where no mark covers them', async (t) => {
  // Three endings of the same log: the last batches covered by a bare mark (a quiet spell), by the
  // mark a later batch carries (the damaged batches are then the two before it), and by no mark at
  // all (kill -9 within the quiet spell: the documented window, where damage reads as a torn tail).
  type Shape = { name: string; files: Map<string, Buffer>; seg: string; from: number; to: number; covered: boolean; want: string[] };
  const shapes: Shape[] = [];
  for (const ending of ['bare mark', 'later batch', 'no mark'] as const) {
    const dir = scratch(t);
    const { wal } = await Wal.open(dir, { markIdleMs: ending === 'bare mark' ? 10 : 60_000, prefillBytes: 512 });
    let index = 0;
    const ends: number[] = [];
    const segFile = (): string => join(dir, 'wal', readdirSync(join(dir, 'wal')).sort().pop()!);
    for (let b = 0; b < 6; b++) {
      const batch = Array.from({ length: 1 + (b % 3) }, () => entry(++index, 1, `entry ${index} ${'y'.repeat(index % 5)}`));
      await wal.save({ term: 1, vote: 'a', commit: Math.max(0, index - 2) }, batch, true);
      ends.push(scanSegment(readFileSync(segFile())).end);
    }
    // The damaged range: the last two batches (those after ends[3]).
    const from = ends[3]!;
    const to = ends[5]!;
    if (ending === 'bare mark') {
      const syncs = wal.syncCount;
      for (let i = 0; i < 400 && wal.syncCount === syncs; i++) await new Promise((r) => setTimeout(r, 5));
      t.equal(wal.syncCount, syncs + 1, 'bare mark: written');
    } else if (ending === 'later batch') {
      await wal.save({ term: 1, vote: 'a', commit: index }, [entry(++index, 1, 'after')], true);
    }
    const files = walFiles(dir);
    const seg = join('wal', readdirSync(join(dir, 'wal')).sort().pop()!);
    shapes.push({ name: ending, files, seg, from, to, covered: ending !== 'no mark', want: texts(loadState(dir).entries) });
    await wal.close();
  }
  {
    // Pipelined: three batches written while one fdatasync runs (their own marks lag behind), then
    // the bare mark after the quiet spell covers them all.
    const dir = scratch(t);
    const { wal } = await Wal.open(dir, { markIdleMs: 10, prefillBytes: 512 });
    await (await wal.begin({ term: 1, vote: 'a', commit: 0 }, [entry(1), entry(2)], true)).durable;
    const segFile = join(dir, 'wal', readdirSync(join(dir, 'wal'))[0]!);
    const from = scanSegment(readFileSync(segFile)).end;
    const before = wal.syncCount;
    const pending = [await wal.begin({ term: 1, vote: 'a', commit: 2 }, [entry(3), entry(4)], true), await wal.begin(undefined, [entry(5)], true), await wal.begin({ term: 1, vote: 'a', commit: 4 }, [entry(6, 1, 'six')], true)];
    for (const p of pending) await p.durable;
    t.ok(wal.syncCount - before <= 3, 'pipelined: batches shared fdatasyncs');
    const to = scanSegment(readFileSync(segFile)).end;
    const syncs = wal.syncCount;
    for (let i = 0; i < 400 && wal.syncCount === syncs; i++) await new Promise((r) => setTimeout(r, 5));
    const seg = join('wal', readdirSync(join(dir, 'wal'))[0]!);
    shapes.push({ name: 'pipelined, bare mark', files: walFiles(dir), seg, from, to, covered: true, want: texts(loadState(dir).entries) });
    await wal.close();
  }
  const root = mkdtempSync(join(tmpdir(), 'lanha-wal-last-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  let k = 0;
  const outcome = { refused: 0, cut: 0 };
  fc.assert(fc.property(fc.nat(shapes.length - 1), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 3 }), (which, flips) => {
    const shape = shapes[which]!;
    const files = new Map([...shape.files].map(([f, b]) => [f, Buffer.from(b)]));
    const bytes = files.get(shape.seg)!;
    const at = flips.map(([pos]) => shape.from + (pos % (shape.to - shape.from)));
    flips.forEach(([, xor], i) => { bytes[at[i]!] = bytes[at[i]!]! ^ xor; });
    const got = loadCopy(join(root, String(k++)), files);
    if (got === 'refused') { outcome.refused++; return; }
    if (shape.covered) throw new Error(`${shape.name}, flips at ${at.join(',')}: loaded ${got.length} of ${shape.want.length} entries: fsync'd bytes damaged and cut as a torn tail`);
    // No mark covers them: the cut keeps every record before the first damaged one.
    const first = Math.min(...at);
    const kept = scanSegment(shape.files.get(shape.seg)!).records.filter((r) => r.type !== 3 && r.offset + RECORD_PAYLOAD_AT + r.payload.length <= first).length;
    if (got.length < kept || JSON.stringify(got) !== JSON.stringify(shape.want.slice(0, got.length))) throw new Error(`${shape.name}: kept ${got.length}, not a prefix`);
    outcome.cut++;
  }), { numRuns: 600, seed: 11 });
  t.ok(outcome.refused > 300, `refused ${outcome.refused}, cut where no mark covered the damage ${outcome.cut}`);
  t.ok(outcome.cut > 0, 'without a mark the same damage reads as a torn tail (the window the quiet-spell mark closes)');
});

t.test('a live segment deleted or moved away under the WAL (its directory removed) fails the next fdatasync: nothing written since counts as durable', async (t) => {
  for (const fault of ['rm -rf the directory', 'mv the directory', 'replace the segment'] as const) {
    const parent = scratch(t);
    const dir = join(parent, 'raft');
    const { wal } = await Wal.open(dir);
    await wal.save({ term: 1, vote: 'a', commit: 0 }, [entry(1)], true);
    const segment = join(dir, 'wal', readdirSync(join(dir, 'wal'))[0]!);
    if (fault === 'rm -rf the directory') rmSync(dir, { recursive: true, force: true });
    else if (fault === 'mv the directory') renameSync(dir, `${dir}.old`);
    else { rmSync(segment); writeFileSync(segment, ''); }
    await t.rejects(wal.save({ term: 1, vote: 'a', commit: 1 }, [entry(2)], true), { name: 'StorageError', message: /(was deleted or moved away|was replaced by another file) while lanha wrote it/ }, `${fault}: the batch written after it is not durable`);
    t.ok(wal.broken, `${fault}: the WAL is broken for good`);
    await wal.close();
  }
});
