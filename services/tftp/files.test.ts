import t from 'tap';
import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { CachedSource, fileCache, openInRoot } from './files.js';
import { allocateCache } from './block-cache.js';
import { pattern, opened, read } from './files-testing.js';

// The block cache (files.ts) when files stream through it: every byte a source copies is the file's
// own while chunks are evicted under it by its own reads and by another file's; proved by reading
// real files through a cache of two small chunks (one thread's handle on block-cache.ts) and comparing with the files' bytes.

const CHUNK = 4096;

/** A cache of `chunks` chunks for this thread alone. */
function cacheOf(chunks: number): ReturnType<typeof fileCache> {
  return fileCache(allocateCache(chunks * CHUNK, 1, CHUNK), 0);
}

t.test('a file larger than the cache streams through it byte for byte', async (t) => {
  const root = realpathSync(mkdtempSync(join(tmpdir(), 'lanha-tftp-files-')));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const bytes = pattern(10 * CHUNK + 100, 1);
  writeFileSync(join(root, 'a.bin'), bytes, { mode: 0o644 });
  const cache = cacheOf(2);
  const source = new CachedSource(await opened(root, 'a.bin'), cache);
  const blksize = 1000;
  for (let offset = 0; offset < bytes.length; offset += blksize) {
    const length = Math.min(blksize, bytes.length - offset);
    const got = await read(source, offset, length);
    if (!got.equals(bytes.subarray(offset, offset + length))) {
      t.fail(`bytes at ${offset} differ`);
      return;
    }
  }
  source.close();
  t.ok(cache.stats().misses >= 10, `every chunk was read (${cache.stats().misses} misses)`);
  t.ok(cache.stats().bytes <= 2 * CHUNK, 'the cache stays within its bound');
});

t.test('a source keeps reading its own bytes while another file streams through the rest of the cache', async (t) => {
  const root = realpathSync(mkdtempSync(join(tmpdir(), 'lanha-tftp-files-')));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const a = pattern(4 * CHUNK, 2);
  const b = pattern(8 * CHUNK, 3);
  writeFileSync(join(root, 'a.bin'), a, { mode: 0o644 });
  writeFileSync(join(root, 'b.bin'), b, { mode: 0o644 });
  const cache = cacheOf(2);
  const first = new CachedSource(await opened(root, 'a.bin'), cache);
  const second = new CachedSource(await opened(root, 'b.bin'), cache);
  // `first` holds chunk 0 of a.bin (pinned); `second` then streams all of b.bin through the other slot.
  t.ok((await read(first, 0, 100)).equals(a.subarray(0, 100)), 'the first block of a.bin (read on a miss)');
  t.ok((await read(first, 100, 100)).equals(a.subarray(100, 200)), 'the next, from the chunk it now keeps');
  let wrong = -1;
  for (let offset = 0; offset < b.length && wrong < 0; offset += 512) {
    if (!(await read(second, offset, 512)).equals(b.subarray(offset, offset + 512))) wrong = offset;
  }
  t.equal(wrong, -1, 'all of b.bin read right');
  // Still inside chunk 0 of a.bin.
  t.ok((await read(first, 200, 1000)).equals(a.subarray(200, 1200)), 'a.bin after b.bin streamed');
  t.ok((await read(first, CHUNK - 10, 20)).equals(a.subarray(CHUNK - 10, CHUNK + 10)), 'a block across two chunks');
  first.close();
  second.close();
});

t.test('small files are cached at their own size', async (t) => {
  const root = realpathSync(mkdtempSync(join(tmpdir(), 'lanha-tftp-files-')));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const cache = cacheOf(8);
  for (let i = 0; i < 6; i++) {
    const bytes = pattern(300 + i, 10 + i);
    writeFileSync(join(root, `s${i}.bin`), bytes, { mode: 0o644 });
    const source = new CachedSource(await opened(root, `s${i}.bin`), cache);
    t.ok((await read(source, 0, bytes.length)).equals(bytes), `small file ${i}`);
    source.close();
  }
  t.equal(cache.stats().bytes, 6 * 300 + 15, 'the cache counts the small chunks at their own size');
});

// Someone who can write in the root swaps one of its directories for a symlink out of it, in a
// loop, while files are opened: realpath saw the directory, the open went through the symlink
// (O_NOFOLLOW guards only the last component). Before the check on the open descriptor a loop like
// this one served the file outside about once in 250 opens.
t.test('a directory swapped for a symlink out of the root while files are opened: nothing outside is ever served', async (t) => {
  const base = realpathSync(mkdtempSync(join(tmpdir(), 'lanha-tftp-swap-')));
  t.teardown(() => rmSync(base, { recursive: true, force: true }));
  const root = join(base, 'root');
  mkdirSync(join(root, 'real'), { recursive: true });
  mkdirSync(join(base, 'outside'));
  writeFileSync(join(root, 'real', 'f'), 'inside', { mode: 0o644 });
  writeFileSync(join(base, 'outside', 'f'), 'OUTSIDE', { mode: 0o644 });
  symlinkSync('../outside', join(root, 'evil'));
  const SWAP_MS = 3000;
  const swapper = new Worker(`
    const { renameSync } = require('node:fs');
    const { workerData: { root, ms } } = require('node:worker_threads');
    let swaps = 0;
    for (const end = Date.now() + ms; Date.now() < end; swaps++) {
      renameSync(root + '/real', root + '/d'); renameSync(root + '/d', root + '/real');
      renameSync(root + '/evil', root + '/d'); renameSync(root + '/d', root + '/evil');
    }
    require('node:worker_threads').parentPort.postMessage(swaps);
  `, { eval: true, workerData: { root, ms: SWAP_MS } });
  let running = true;
  let swaps = 0;
  const ended = new Promise<void>((resolve) => swapper.once('message', (n: number) => { swaps = n; running = false; resolve(); }));
  const seen = { inside: 0, outside: 0, refusedOutside: 0, other: 0 };
  for (let i = 0; running && i < 1_000_000; i++) {
    const r = await openInRoot(root, 'd/f');
    if (!r.ok) {
      if (r.reason === 'outside-root') seen.refusedOutside++; else seen.other++;
      continue;
    }
    const bytes = Buffer.alloc(16);
    const { bytesRead } = await r.file.handle.read(bytes, 0, 16, 0);
    await r.file.handle.close();
    if (bytes.subarray(0, bytesRead).toString() === 'OUTSIDE') seen.outside++; else seen.inside++;
  }
  await ended;
  await swapper.terminate();
  t.ok(swaps > 0 && seen.inside > 0, `the race ran: ${swaps} swaps, ${seen.inside} opens inside (${JSON.stringify(seen)})`);
  t.equal(seen.outside, 0, `no open served the file outside the root (${seen.outside} did; ${seen.refusedOutside} refused as outside)`);
});
