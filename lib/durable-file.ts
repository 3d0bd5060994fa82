import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, writeFileSync } from 'node:fs';
import { open, rename } from 'node:fs/promises';
import { dirname } from 'node:path';

// Files replaced whole and durably: written to `<path>.tmp`, fsync'd, renamed over the old one, and
// the directory fsync'd so the rename itself survives a power cut. A crash leaves the old file or
// the new one, never a mix (and at most a stale .tmp, overwritten by the next write).

/**
 * mkdir -p one level at a time: a recursive mkdirSync on a read-only file system fails with ENOENT,
 * not EROFS, which reads as a missing parent (and writeRefused, cluster/raft/wal.ts, cannot tell).
 */
export function makeDirs(path: string): void {
  try {
    mkdirSync(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return;
    if (code !== 'ENOENT' || dirname(path) === path) throw error;
    makeDirs(dirname(path));
    mkdirSync(path);
  }
}

/** fsyncs a directory, making the creations, renames and deletions in it durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const fd = await open(dir, 'r');
  try {
    await fd.sync();
  } finally {
    await fd.close();
  }
}

/** The steps of a durable write, in order: the temp file written, fsync'd, renamed over, the directory fsync'd. */
export type DurableStep = 'written' | 'synced' | 'renamed' | 'dir-synced';

/**
 * Replaces `path` with `data` durably (see above). `afterStep` runs after each step: tests cut the
 * write there (a throw stands for the crash) and check what a restart would read.
 */
export async function writeFileDurably(path: string, data: string | Uint8Array, mode = 0o644, afterStep?: (step: DurableStep) => void): Promise<void> {
  const tmp = `${path}.tmp`;
  const handle = await open(tmp, 'w', mode);
  try {
    await handle.writeFile(data);
    afterStep?.('written');
    await handle.sync();
    afterStep?.('synced');
  } finally {
    await handle.close();
  }
  await rename(tmp, path);
  afterStep?.('renamed');
  await fsyncDir(dirname(path));
  afterStep?.('dir-synced');
}

/** The same, blocking: for the few small files written at start-up or once in a member's life. */
export function writeFileDurablySync(path: string, data: string | Uint8Array, mode = 0o644): void {
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, data, { mode });
  const fd = openSync(tmp, 'r');
  try { fsyncSync(fd); } finally { closeSync(fd); }
  renameSync(tmp, path);
  const dir = openSync(dirname(path), 'r');
  try { fsyncSync(dir); } finally { closeSync(dir); }
}
