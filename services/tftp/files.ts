import { open, realpath, type FileHandle } from 'node:fs/promises';
import { read as readCallback, constants } from 'node:fs';
import { join } from 'node:path';

// The file side of the TFTP shell: open a checked relative path inside the root (realpath
// containment, regular files only), and read blocks positionally from the open fd through a block
// cache shared by every transfer, so a boot storm reading one kernel reads the disk once.

export type OpenRefusal = 'not-found' | 'outside-root' | 'not-regular' | 'not-readable';

export interface OpenedFile {
  handle: FileHandle;
  /** The real path (symlinks resolved) inside the root. */
  path: string;
  size: number;
  /** Identity of this version of the file: device, inode, size and mtime. */
  key: string;
  /** Reads in flight on the fd, and whether a close waits for them (a reused fd number must never see them). */
  reads: number;
  closing: boolean;
}

/**
 * Opens `relative` under `rootReal` (already realpath'd). The real path must be the root itself or
 * start with root + "/" (a plain prefix test would let /srv/tftp-evil pass for /srv/tftp).
 */
export async function openInRoot(rootReal: string, relative: string): Promise<{ ok: true; file: OpenedFile } | { ok: false; reason: OpenRefusal }> {
  let real: string;
  try {
    real = await realpath(join(rootReal, relative));
  } catch {
    return { ok: false, reason: 'not-found' };
  }
  if (real !== rootReal && !real.startsWith(rootReal.endsWith('/') ? rootReal : rootReal + '/')) return { ok: false, reason: 'outside-root' };
  let handle: FileHandle;
  try {
    // O_NOFOLLOW: the path has no symlinks left; if one appeared since realpath, refuse it.
    handle = await open(real, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    const code = (error as { code?: string }).code;
    return { ok: false, reason: code === 'ENOENT' ? 'not-found' : 'not-readable' };
  }
  const stat = await handle.stat();
  if (!stat.isFile()) {
    await handle.close();
    return { ok: false, reason: 'not-regular' };
  }
  // Like tftp-hpa -s: only world-readable files are served, so a private file dropped in the root stays private.
  if ((stat.mode & 0o004) === 0) {
    await handle.close();
    return { ok: false, reason: 'not-readable' };
  }
  return { ok: true, file: { handle, path: real, size: stat.size, key: `${stat.dev}:${stat.ino}:${stat.size}:${stat.mtimeMs}`, reads: 0, closing: false } };
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

interface Chunk {
  bytes: Buffer | null;
  loading: Promise<Buffer> | null;
}

export interface CacheStats {
  bytes: number;
  chunks: number;
  hits: number;
  misses: number;
}

/** Fixed-size chunks of files by identity, least recently used first out. */
export class BlockCache {
  readonly chunkSize: number;
  readonly bytesMax: number;
  #chunks = new Map<string, Chunk>();
  #bytes = 0;
  hits = 0;
  misses = 0;

  constructor(bytesMax = 128 << 20, chunkSize = 1 << 20) {
    this.chunkSize = chunkSize;
    this.bytesMax = bytesMax;
  }

  stats(): CacheStats {
    return { bytes: this.#bytes, chunks: this.#chunks.size, hits: this.hits, misses: this.misses };
  }

  /** The chunk's bytes now, or a promise of them (started if not already loading). */
  chunk(file: OpenedFile, index: number): Buffer | Promise<Buffer> {
    const key = `${file.key}#${index}`;
    const found = this.#chunks.get(key);
    if (found) {
      if (found.bytes) {
        // Move to the young end of the LRU order.
        this.#chunks.delete(key);
        this.#chunks.set(key, found);
        this.hits++;
        return found.bytes;
      }
      return found.loading!;
    }
    this.misses++;
    const start = index * this.chunkSize;
    const length = Math.max(0, Math.min(this.chunkSize, file.size - start));
    const entry: Chunk = { bytes: null, loading: null };
    entry.loading = readAt(file, start, length).then((bytes) => {
      entry.bytes = bytes;
      entry.loading = null;
      this.#bytes += bytes.length;
      this.#evict();
      return bytes;
    }, (error: unknown) => {
      this.#chunks.delete(key);
      throw error;
    });
    this.#chunks.set(key, entry);
    return entry.loading;
  }

  #evict(): void {
    for (const [key, chunk] of this.#chunks) {
      if (this.#bytes <= this.bytesMax) return;
      if (!chunk.bytes) continue;
      this.#chunks.delete(key);
      this.#bytes -= chunk.bytes.length;
    }
  }
}

function readAt(file: OpenedFile, position: number, length: number): Promise<Buffer> {
  const bytes = Buffer.allocUnsafe(length);
  const fd = file.handle.fd;
  file.reads++;
  const settle = (): void => {
    file.reads--;
    if (file.closing && file.reads === 0) closeFile(file);
  };
  return new Promise((resolve, reject) => {
    let done = 0;
    const more = (): void => {
      if (done >= length) { settle(); resolve(bytes); return; }
      readCallback(fd, bytes, done, length - done, position + done, (error, n) => {
        if (error) { settle(); reject(error); return; }
        if (n === 0) { settle(); resolve(bytes.subarray(0, done)); return; } // the file shrank under us
        done += n;
        more();
      });
    };
    more();
  });
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

/** Reads an open file through the shared cache; the next chunk is fetched ahead of need. */
export class CachedSource implements Source {
  readonly #file: OpenedFile;
  readonly #cache: BlockCache;
  #closed = false;
  /** The chunk this transfer reads now: consecutive blocks skip the cache lookup. */
  #currentIndex = -1;
  #current: Buffer | null = null;

  constructor(file: OpenedFile, cache: BlockCache) {
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
      let chunk: Buffer | Promise<Buffer>;
      if (index === this.#currentIndex && this.#current !== null) chunk = this.#current;
      else {
        chunk = this.#cache.chunk(this.#file, index);
        if (chunk instanceof Promise) return this.#slow(pos, end, into, to);
        this.#currentIndex = index;
        this.#current = chunk;
      }
      const from = pos - index * size;
      const n = Math.min(end - pos, chunk.length - from);
      if (n <= 0) { into.fill(0, to, to + (end - pos)); break; } // shrank: never read past what exists
      chunk.copy(into, to, from, from + n);
      pos += n;
      to += n;
      // Read ahead: entering a chunk, ask for the next one.
      if (from < n) this.#prefetch(index + 1);
      index++;
    }
    return true;
  }

  async #slow(pos: number, end: number, into: Buffer, to: number): Promise<void> {
    const size = this.#cache.chunkSize;
    while (pos < end) {
      const index = Math.floor(pos / size);
      const chunk = await this.#cache.chunk(this.#file, index);
      const from = pos - index * size;
      const n = Math.min(end - pos, chunk.length - from);
      if (n <= 0) { into.fill(0, to, to + (end - pos)); return; }
      chunk.copy(into, to, from, from + n);
      pos += n;
      to += n;
    }
    this.#prefetch(Math.floor(end / size) + 1);
  }

  #prefetch(index: number): void {
    if (this.#closed || index * this.#cache.chunkSize >= this.#file.size) return;
    const next = this.#cache.chunk(this.#file, index);
    if (next instanceof Promise) next.catch(() => undefined);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#current = null;
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
