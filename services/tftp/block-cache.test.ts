import t from 'tap';
import { mkdtempSync, realpathSync, renameSync, rmSync, truncateSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { allocateCache, type CacheLayout } from './block-cache.js';
import { CachedSource, fileCache } from './files.js';
import { streamChecked, type FixtureJob, type FixtureReport } from './block-cache.fixture.js';
import { pattern, opened, read } from './files-testing.js';

// The block cache one SharedArrayBuffer holds for all TFTP transfer threads (block-cache.ts): real
// worker threads stream files larger than the cache at once, every byte compared with the file; a
// chunk a transfer copies from is never evicted under it; a loader that dies mid-load leaves nothing
// LOADING; a file replaced or shrunk on disk is never served from another version's bytes.

const CHUNK = 16 << 10;

function scratch(t: { teardown(fn: () => void): void }): string {
  const root = realpathSync(mkdtempSync(join(tmpdir(), 'lanha-tftp-cache-')));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  return root;
}

function put(root: string, name: string, bytes: Buffer): void {
  writeFileSync(join(root, name), bytes, { mode: 0o644 });
}

function fixture(job: FixtureJob): { worker: Worker; report: Promise<FixtureReport> } {
  const worker = new Worker(new URL('./block-cache.fixture.js', import.meta.url), { workerData: job });
  const report = new Promise<FixtureReport>((ok, fail) => {
    worker.once('message', ok);
    worker.once('error', fail);
    worker.once('exit', (code) => fail(new Error(`fixture exited (${code}) before reporting`)));
  });
  return { worker, report };
}

t.test('three worker threads stream files larger than the cache at once, other files evicting, every byte right', async (t) => {
  const root = scratch(t);
  put(root, 'kernel', pattern(40 * CHUNK + 123, 1));
  put(root, 'initrd', pattern(30 * CHUNK + 7, 2));
  const small: string[] = [];
  for (let i = 0; i < 12; i++) {
    put(root, `s${i}.scr`, pattern(500 + 97 * i, 10 + i));
    small.push(`s${i}.scr`);
  }
  const threads = 3;
  const layout = allocateCache(8 * CHUNK, threads, CHUNK);
  const jobs: string[][] = [['kernel', 'initrd'], ['kernel', ...small, 'initrd'], [...small, 'kernel', ...small]];
  const running = jobs.map((files, thread) => fixture({ mode: 'stream', layout, thread, root, files, blksize: 1468 + thread * 512, passes: 3 }));
  const reports = await Promise.all(running.map((r) => r.report));
  await Promise.all(running.map((r) => r.worker.terminate()));
  for (const [thread, report] of reports.entries()) {
    t.equal(report.type, 'streamed', `thread ${thread} finished`);
    if (report.type !== 'streamed') continue;
    t.ok(report.blocks > 800, `thread ${thread} copied ${report.blocks} blocks`);
    t.same(report.wrong, [], `thread ${thread}: no block differs from the file`);
  }
  const stats = fileCache(layout, -1).stats();
  t.ok(stats.misses > 70 * 3, `files larger than the cache were read again and again (${stats.misses} misses)`);
  t.ok(stats.hits > 0, `lookups found chunks read or being read by a thread (${stats.hits} hits)`);
  t.ok(stats.chunks <= 8 && stats.bytes <= 8 * CHUNK, `the cache held at most its 8 chunks (${stats.chunks}, ${stats.bytes} bytes)`);
  t.equal(stats.pinned, 0, 'no pin outlives the transfers');
});

t.test('a chunk a transfer copies from survives eviction pressure from every other reader', async (t) => {
  const root = scratch(t);
  const a = pattern(3 * CHUNK, 3);
  const b = pattern(20 * CHUNK, 4);
  put(root, 'a.bin', a);
  put(root, 'b.bin', b);
  const cache = fileCache(allocateCache(2 * CHUNK, 1, CHUNK), 0);
  const first = new CachedSource(await opened(root, 'a.bin'), cache);
  t.ok((await read(first, 0, 1000)).equals(a.subarray(0, 1000)), 'a.bin block 1 (its chunk 0 now pinned)');
  t.equal(cache.stats().pinned, 1, 'one slot pinned');
  // b.bin streams twice, and a second source of a.bin streams chunks 1 and 2 of it: all want slots.
  for (let pass = 0; pass < 2; pass++) {
    const r = await streamChecked(cache, root, 'b.bin', 1468);
    t.same(r.wrong, [], `b.bin pass ${pass} right (through the one slot left, or read alone)`);
  }
  const other = new CachedSource(await opened(root, 'a.bin'), cache);
  t.ok((await read(other, CHUNK, 2 * CHUNK)).equals(a.subarray(CHUNK)), 'a.bin chunks 1-2 by another source');
  other.close();
  // The rest of chunk 0 comes from the pinned slot on the fast path: it must still hold a.bin's bytes.
  let wrong = -1;
  for (let offset = 1000; offset < CHUNK && wrong < 0; offset += 1000) {
    const length = Math.min(1000, CHUNK - offset);
    if (!(await read(first, offset, length)).equals(a.subarray(offset, offset + length))) wrong = offset;
  }
  t.equal(wrong, -1, 'the pinned chunk still held a.bin chunk 0');
  first.close();
  t.equal(cache.stats().pinned, 0, 'closing unpins');
});

t.test('when every slot is pinned, a transfer reads its chunk alone and the pinned ones stay', async (t) => {
  const root = scratch(t);
  const a = pattern(2 * CHUNK, 5);
  const b = pattern(2 * CHUNK, 6);
  put(root, 'a.bin', a);
  put(root, 'b.bin', b);
  const cache = fileCache(allocateCache(2 * CHUNK, 1, CHUNK), 0);
  const pinA = new CachedSource(await opened(root, 'a.bin'), cache);
  const pinB = new CachedSource(await opened(root, 'a.bin'), cache);
  await read(pinA, 0, 10);
  await read(pinB, CHUNK, 10);
  t.equal(cache.stats().pinned, 2, 'both slots pinned');
  const r = await streamChecked(cache, root, 'b.bin', 700);
  t.same(r.wrong, [], 'b.bin right, read alone');
  t.ok((await read(pinA, 10, CHUNK - 10)).equals(a.subarray(10, CHUNK)), 'a.bin chunk 0 intact');
  t.ok((await read(pinB, CHUNK + 10, CHUNK - 10)).equals(a.subarray(CHUNK + 10)), 'a.bin chunk 1 intact');
  pinA.close();
  pinB.close();
});

t.test('a loader terminated mid-load leaves no slot LOADING: the thread waiting for it reads the chunk', async (t) => {
  const root = scratch(t);
  const bytes = pattern(3 * CHUNK, 7);
  put(root, 'k.bin', bytes);
  const layout: CacheLayout = allocateCache(4 * CHUNK, 2, CHUNK);
  const { worker, report } = fixture({ mode: 'hang', layout, thread: 0, root, file: 'k.bin', index: 1 });
  t.equal((await report).type, 'claimed', 'thread 0 claimed chunk 1 and is reading it (forever)');
  const cache = fileCache(layout, 1);
  const source = new CachedSource(await opened(root, 'k.bin'), cache);
  let done = false;
  const waiting = read(source, CHUNK + 5, 3000).then((got) => { done = true; return got; });
  await new Promise((ok) => setTimeout(ok, 300));
  t.notOk(done, 'thread 1 waits for the load in flight instead of reading the chunk twice');
  const admin = fileCache(layout, -1);
  const exited = new Promise<void>((ok) => worker.once('exit', () => { admin.releaseThread(0); ok(); }));
  await worker.terminate();
  await exited;
  const started = Date.now();
  const got = await Promise.race([waiting, new Promise<null>((ok) => setTimeout(() => ok(null), 5000).unref())]);
  t.ok(got !== null, `thread 1 read it after the loader died (${Date.now() - started} ms)`);
  t.ok(got?.equals(bytes.subarray(CHUNK + 5, CHUNK + 3005)), 'with the file\'s bytes');
  source.close();
  t.equal(admin.stats().pinned, 0, 'no pin left by either thread');
});

t.test('a file replaced on disk is never served from the old version\'s chunks', async (t) => {
  const root = scratch(t);
  const cache = fileCache(allocateCache(8 * CHUNK, 1, CHUNK), 0);
  const v1 = pattern(2 * CHUNK + 50, 8);
  put(root, 'f.bin', v1);
  const r1 = await streamChecked(cache, root, 'f.bin', 1468);
  t.same(r1.wrong, [], 'version 1 read (and cached)');
  // A new inode of the same size and mtime (written aside and renamed over it).
  const v2 = pattern(v1.length, 9);
  put(root, 'f.new', v2);
  const mtime = new Date(Date.now() - 60_000);
  utimesSync(join(root, 'f.bin'), mtime, mtime);
  utimesSync(join(root, 'f.new'), mtime, mtime);
  const r1again = await streamChecked(cache, root, 'f.bin', 1468);
  t.same(r1again.wrong, [], 'version 1 with its new mtime read');
  renameSync(join(root, 'f.new'), join(root, 'f.bin'));
  const r2 = await streamChecked(cache, root, 'f.bin', 1468);
  t.same(r2.wrong, [], 'version 2 (new inode, same size and mtime): its own bytes');
  // The same inode rewritten in place, same size: only the mtime tells.
  const v3 = pattern(v1.length, 10);
  writeFileSync(join(root, 'f.bin'), v3);
  const later = new Date(Date.now() + 60_000);
  utimesSync(join(root, 'f.bin'), later, later);
  const r3 = await streamChecked(cache, root, 'f.bin', 1468);
  t.same(r3.wrong, [], 'version 3 (same inode and size, new mtime): its own bytes');
});

t.test('a file that shrank after it was opened never exposes a previous occupant\'s bytes', async (t) => {
  const root = scratch(t);
  const cache = fileCache(allocateCache(CHUNK, 1, CHUNK), 0);
  put(root, 'full.bin', Buffer.alloc(CHUNK, 0xaa));
  const full = new CachedSource(await opened(root, 'full.bin'), cache);
  t.ok((await read(full, 0, CHUNK)).equals(Buffer.alloc(CHUNK, 0xaa)), 'the one slot holds 0xaa');
  full.close();
  const bytes = pattern(2 * CHUNK, 11);
  put(root, 'shrinks.bin', bytes);
  const source = new CachedSource(await opened(root, 'shrinks.bin'), cache);
  truncateSync(join(root, 'shrinks.bin'), CHUNK + 100);
  const got = await read(source, CHUNK, 1000);
  t.ok(got.subarray(0, 100).equals(bytes.subarray(CHUNK, CHUNK + 100)), 'what is left of the file');
  t.ok(got.subarray(100).equals(Buffer.alloc(900)), 'zeros past the new end, not the slot\'s old 0xaa');
  source.close();
});

t.test('status reads the counters without the lock: a lock word left by a thread that died inside it never stalls the main thread', async (t) => {
  const layout = allocateCache(4 * CHUNK, 2, CHUNK);
  // The lock word is the first Int32 of the buffer; thread 1's id (2) holds it and never lets go.
  Atomics.store(new Int32Array(layout.buffer, 0, 1), 0, 2);
  const started = performance.now();
  const stats = fileCache(layout, -1).stats();
  t.ok(performance.now() - started < 1000, 'stats() returned at once');
  t.same(stats, { bytes: 0, chunks: 0, hits: 0, misses: 0, pinned: 0 });
});
