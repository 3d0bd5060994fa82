import { open, readlink, realpath, type FileHandle } from 'node:fs/promises';
import { read as readCallback, constants } from 'node:fs';
import { join } from 'node:path';
import { BlockCache, type CacheLayout, type HeldChunk } from './block-cache.js';

// The file side of the TFTP shell: open a checked relative path inside the root (realpath
// containment, regular files only), and read blocks positionally from the open fd through a block
// cache shared by every transfer thread (block-cache.ts), so a boot storm reading one kernel reads the disk once.

export type OpenRefusal = 'not-found' | 'outside-root' | 'directory' | 'not-regular' | 'not-readable' | 'fd-exhausted';

export interface OpenedFile {
  handle: FileHandle;
  /** The real path (symlinks resolved) inside the root. */
  path: string;
  size: number;
  /** With `size`, the identity of this version of the file (block-cache.ts compares all four). */
  dev: number;
  ino: number;
  mtimeMs: number;
  /** Reads in flight on the fd, and whether a close waits for them (a reused fd number must never see them). */
  reads: number;
  closing: boolean;
}

/** The real path is the root itself or below it (a plain prefix test would let /srv/tftp-evil pass for /srv/tftp). */
function inRoot(rootReal: string, real: string): boolean {
  return real === rootReal || real.startsWith(rootReal.endsWith('/') ? rootReal : rootReal + '/');
}

/**
 * Where an open descriptor really is (Linux: /proc/self/fd), or null where that cannot be read. A
 * directory of the path swapped for a symlink between realpath and open is followed by the open
 * (O_NOFOLLOW guards only the last component): this is what was opened, not what was checked.
 */
async function openedPath(handle: FileHandle): Promise<string | null> {
  try {
    return await readlink(`/proc/self/fd/${handle.fd}`);
  } catch {
    return null;
  }
}

/**
 * Opens `relative` under `rootReal` (already realpath'd). The real path must be inside the root,
 * checked before the open and again on the open descriptor: someone who can write in the root and
 * swaps one of its directories for a symlink out of it while the request is served gets
 * 'outside-root', not the file out there (a loop of renames won it about 1 open in 250).
 */
export async function openInRoot(rootReal: string, relative: string): Promise<{ ok: true; file: OpenedFile } | { ok: false; reason: OpenRefusal }> {
  let real: string;
  try {
    real = await realpath(join(rootReal, relative));
  } catch {
    return { ok: false, reason: 'not-found' };
  }
  if (!inRoot(rootReal, real)) return { ok: false, reason: 'outside-root' };
  let handle: FileHandle;
  try {
    // O_NOFOLLOW: the path has no symlinks left; if one appeared since realpath, refuse it.
    handle = await open(real, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    const code = (error as { code?: string }).code;
    // Out of descriptors says nothing of the file: the caller puts the request off (engine.ts).
    if (code === 'EMFILE' || code === 'ENFILE') return { ok: false, reason: 'fd-exhausted' };
    return { ok: false, reason: code === 'ENOENT' ? 'not-found' : 'not-readable' };
  }
  const held = await openedPath(handle);
  if (held !== null && !inRoot(rootReal, held)) {
    await handle.close().catch(() => undefined);
    return { ok: false, reason: 'outside-root' };
  }
  let stat: Awaited<ReturnType<FileHandle['stat']>>;
  try {
    stat = await handle.stat();
  } catch {
    await handle.close().catch(() => undefined);
    return { ok: false, reason: 'not-readable' };
  }
  if (!stat.isFile()) {
    await handle.close();
    return { ok: false, reason: stat.isDirectory() ? 'directory' : 'not-regular' };
  }
  // Like tftp-hpa -s: only world-readable files are served, so a private file dropped in the root stays private.
  if ((stat.mode & 0o004) === 0) {
    await handle.close();
    return { ok: false, reason: 'not-readable' };
  }
  return { ok: true, file: { handle, path: real, size: stat.size, dev: stat.dev, ino: stat.ino, mtimeMs: stat.mtimeMs, reads: 0, closing: false } };
}

/** Where a transfer's bytes come from: the cache over an open file, or a buffer (netascii). */
export interface Source {
  readonly size: number;
  /**
   * Copies `length` octets at `offset` into `into` at `at`. Returns true when done at once (cache
   * hit), or a promise that resolves when the bytes are there.
   */
  copy(offset: number, length: number, into: Buffer, at: number): true | Promise<void>;
  close(): void;
}

export class BufferSource implements Source {
  readonly #bytes: Buffer;
  constructor(bytes: Buffer) { this.#bytes = bytes; }
  get size(): number { return this.#bytes.length; }
  copy(offset: number, length: number, into: Buffer, at: number): true {
    this.#bytes.copy(into, at, offset, offset + length);
    return true;
  }
  close(): void { /* nothing held */ }
}

/**
 * Reads up to `into.length` octets at `position` into `into` (a slot of the shared cache, or a
 * buffer of its own); resolves with how many: fewer only if the file shrank since it was opened.
 */
export function readInto(file: OpenedFile, position: number, into: Buffer): Promise<number> {
  const length = into.length;
  const fd = file.handle.fd;
  file.reads++;
  const settle = (): void => {
    file.reads--;
    if (file.closing && file.reads === 0) closeFile(file);
  };
  return new Promise((resolve, reject) => {
    let done = 0;
    const more = (): void => {
      if (done >= length) { settle(); resolve(done); return; }
      readCallback(fd, into, done, length - done, position + done, (error, n) => {
        if (error) { settle(); reject(error); return; }
        if (n === 0) { settle(); resolve(done); return; } // the file shrank under us
        done += n;
        more();
      });
    };
    more();
  });
}

/** This thread's handle on the shared block cache (block-cache.ts), reading open files. */
export function fileCache(layout: CacheLayout, thread: number): BlockCache<OpenedFile> {
  return new BlockCache<OpenedFile>(layout, thread, readInto);
}

function closeFile(file: OpenedFile): void {
  void file.handle.close().catch(() => undefined);
}

/** Closes the file once no read is using its fd. */
export function releaseFile(file: OpenedFile): void {
  if (file.closing) return;
  file.closing = true;
  if (file.reads === 0) closeFile(file);
}

/**
 * Copies `n` octets of a chunk at `from` into `into` at `to`. A chunk in the shared cache lives in a
 * SharedArrayBuffer, which V8 copies out of with relaxed atomic loads, byte by byte unless source and
 * target sit at the same offset modulo 8 (a 1468-octet block every other block: 3-6x a memcpy);
 * Buffer.fill with a Buffer value is a memcpy in Node, at the price of one view.
 */
function copyOut(chunk: Buffer, from: number, n: number, into: Buffer, to: number): void {
  if (((chunk.byteOffset + from - into.byteOffset - to) & 7) === 0) chunk.copy(into, to, from, from + n);
  else into.fill(chunk.subarray(from, from + n), to, to + n);
}

/**
 * Reads an open file through the shared cache; the next chunk is fetched ahead of need. The chunk a
 * transfer copies from stays pinned until it moves on or closes, so no thread evicts or reloads it
 * under the copy.
 */
export class CachedSource implements Source {
  readonly #file: OpenedFile;
  readonly #cache: BlockCache<OpenedFile>;
  #closed = false;
  /** The chunk this transfer reads now: consecutive blocks skip the cache lookup. */
  #currentIndex = -1;
  #current: Buffer | null = null;
  /** The slot pinned for #current (-1: none, or a chunk read alone). */
  #slot = -1;

  constructor(file: OpenedFile, cache: BlockCache<OpenedFile>) {
    this.#file = file;
    this.#cache = cache;
  }

  get size(): number { return this.#file.size; }

  copy(offset: number, length: number, into: Buffer, at: number): true | Promise<void> {
    const size = this.#cache.chunkSize;
    let index = Math.floor(offset / size);
    let pos = offset;
    let to = at;
    const end = offset + length;
    while (pos < end) {
      let chunk: Buffer;
      if (index === this.#currentIndex && this.#current !== null) chunk = this.#current;
      else {
        const held = this.#cache.acquire(this.#file, index);
        if (held instanceof Promise) return this.#slow(held, pos, end, into, to);
        chunk = this.#hold(index, held);
      }
      const from = pos - index * size;
      const n = Math.min(end - pos, chunk.length - from);
      if (n <= 0) { into.fill(0, to, to + (end - pos)); break; } // shrank: never read past what exists
      copyOut(chunk, from, n, into, to);
      pos += n;
      to += n;
      // Read ahead: entering a chunk, ask for the next one.
      if (from < n) this.#prefetch(index + 1);
      index++;
    }
    return true;
  }

  async #slow(pending: Promise<HeldChunk>, pos: number, end: number, into: Buffer, to: number): Promise<void> {
    const size = this.#cache.chunkSize;
    for (;;) {
      const index = Math.floor(pos / size);
      const chunk = this.#hold(index, await pending);
      const from = pos - index * size;
      const n = Math.min(end - pos, chunk.length - from);
      if (n <= 0) { into.fill(0, to, to + (end - pos)); return; }
      copyOut(chunk, from, n, into, to);
      pos += n;
      to += n;
      if (pos >= end) break;
      const next = this.#cache.acquire(this.#file, Math.floor(pos / size));
      pending = next instanceof Promise ? next : Promise.resolve(next);
    }
    this.#prefetch(Math.floor(end / size) + 1);
  }

  /** Makes `held` the current chunk, unpinning the one before; a source closed meanwhile keeps no pin. */
  #hold(index: number, held: HeldChunk): Buffer {
    this.#cache.release(this.#slot);
    if (this.#closed) {
      this.#cache.release(held.slot);
      this.#slot = -1;
      return held.bytes;
    }
    this.#slot = held.slot;
    this.#currentIndex = index;
    this.#current = held.bytes;
    return held.bytes;
  }

  #prefetch(index: number): void {
    if (this.#closed || index * this.#cache.chunkSize >= this.#file.size) return;
    this.#cache.prefetch(this.#file, index);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#current = null;
    this.#cache.release(this.#slot);
    this.#slot = -1;
    releaseFile(this.#file);
  }
}

/** RFC 1350/764 netascii: LF -> CR LF, and a bare CR -> CR NUL. */
export function toNetascii(bytes: Uint8Array): Buffer {
  let extra = 0;
  for (const b of bytes) if (b === 0x0a || b === 0x0d) extra++;
  const out = Buffer.allocUnsafe(bytes.length + extra);
  let j = 0;
  for (const b of bytes) {
    if (b === 0x0a) { out[j++] = 0x0d; out[j++] = 0x0a; } else if (b === 0x0d) { out[j++] = 0x0d; out[j++] = 0x00; } else out[j++] = b;
  }
  return out;
}
