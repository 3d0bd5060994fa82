import { parentPort, workerData } from 'node:worker_threads';
import { readFileSync } from 'node:fs';
import { BlockCache, type CacheLayout } from './block-cache.js';
import { CachedSource, fileCache, type OpenedFile } from './files.js';
import { opened } from './files-testing.js';

// A transfer thread for block-cache.test.ts: streams files through the shared cache in blocks and
// compares every byte with the file read whole ('stream'), or claims a chunk whose read never ends
// and reports it ('hang'), to be terminated mid-load.

export type FixtureJob =
  | { mode: 'stream'; layout: CacheLayout; thread: number; root: string; files: string[]; blksize: number; passes: number }
  | { mode: 'hang'; layout: CacheLayout; thread: number; root: string; file: string; index: number };

export type FixtureReport =
  | { type: 'streamed'; blocks: number; wrong: string[] }
  | { type: 'claimed' };

/** Reads `name` through `cache` block by block; the offsets whose bytes differ from the file's. */
export async function streamChecked(cache: BlockCache<OpenedFile>, root: string, name: string, blksize: number): Promise<{ blocks: number; wrong: string[] }> {
  const expected = readFileSync(`${root}/${name}`);
  const source = new CachedSource(await opened(root, name), cache);
  const into = Buffer.alloc(blksize + 4);
  const wrong: string[] = [];
  let blocks = 0;
  for (let offset = 0; offset < expected.length; offset += blksize) {
    const length = Math.min(blksize, expected.length - offset);
    into.fill(0xee);
    const copied = source.copy(offset, length, into, 4);
    if (copied !== true) await copied;
    blocks++;
    if (!into.subarray(4, 4 + length).equals(expected.subarray(offset, offset + length))) wrong.push(`${name}@${offset}`);
  }
  source.close();
  return { blocks, wrong };
}

if (parentPort !== null) {
  const port = parentPort;
  const job = workerData as FixtureJob;
  if (job.mode === 'stream') {
    const cache = fileCache(job.layout, job.thread);
    void (async () => {
      let blocks = 0;
      const wrong: string[] = [];
      for (let pass = 0; pass < job.passes; pass++) {
        for (const name of job.files) {
          const r = await streamChecked(cache, job.root, name, job.blksize);
          blocks += r.blocks;
          wrong.push(...r.wrong);
        }
      }
      port.postMessage({ type: 'streamed', blocks, wrong } satisfies FixtureReport);
    })();
  } else {
    // A read that never returns: the slot stays LOADING by this thread until it is terminated.
    const cache = new BlockCache<OpenedFile>(job.layout, job.thread, () => new Promise<number>(() => undefined));
    setInterval(() => undefined, 1000); // alive until terminated
    void opened(job.root, job.file).then((file) => {
      const held = cache.acquire(file, job.index);
      if (held instanceof Promise) held.catch(() => undefined);
      port.postMessage({ type: 'claimed' } satisfies FixtureReport);
    });
  }
}
