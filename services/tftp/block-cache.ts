// The TFTP block cache: fixed-size chunks of files in ONE SharedArrayBuffer that the main thread
// allocates (server.ts) and every transfer thread maps (worker.ts), so `cacheMiB` is the cache of the
// whole daemon and a kernel read by two workers is read and held once. Slots are found, claimed and
// evicted under a lock word (a scan of the slot table, never I/O), loaded outside it by the thread
// that claimed them, and pinned per thread while a transfer copies from them. The reads themselves
// come in through a ChunkReader (files.ts); nothing here opens files.

/** The version of a file a chunk belongs to: every field is compared, there is no hash. */
export interface FileIdentity {
  readonly dev: number;
  readonly ino: number;
  readonly size: number;
  readonly mtimeMs: number;
}

/** Reads up to `into.length` octets at `position` into `into`; resolves with how many it read. */
export type ChunkReader<F extends FileIdentity> = (file: F, position: number, into: Buffer) => Promise<number>;

/** A chunk this thread holds pinned (`slot` >= 0), or read for it alone when every slot was in use (-1). */
export interface HeldChunk {
  readonly slot: number;
  /** The chunk's octets as read: shorter than a chunk at the end of a file, or if the file shrank. */
  readonly bytes: Buffer;
}

export interface CacheStats {
  bytes: number;
  chunks: number;
  /** Lookups that needed no read of their own (the chunk was there, or another thread was reading it). */
  hits: number;
  /** Chunks read (a prefetch counts as a miss). */
  misses: number;
  /** Slots a transfer is copying from now (pinned by some thread). */
  pinned: number;
}

/** What a thread needs to map the cache: passed in workerData (a SharedArrayBuffer is shared, not copied). */
export interface CacheLayout {
  readonly buffer: SharedArrayBuffer;
  readonly chunkSize: number;
  readonly slots: number;
  /** Pin columns: one per transfer thread (the workers, or the main thread when `workers` is 0). */
  readonly threads: number;
}

const EMPTY = 0;
const LOADING = 1;
const READY = 2;

// Control words (Int32): the lock holds the id of the thread inside it (thread + 1; the
// main thread's bookkeeping uses threads + 1), so the id of a thread that died inside can be cleared.
const LOCK = 0;
const LOCK_WAITERS = 1;
const CONTROL_WORDS = 4;
// Counters (Float64), written under the lock.
const TICK = 0;
const HITS = 1;
const MISSES = 2;
const BYTES = 3;
const CHUNKS = 4;
const STAT_WORDS = 5;
// Per slot (Float64): the identity compared on lookup, the length read, the last use.
const DEV = 0;
const INO = 1;
const SIZE = 2;
const MTIME = 3;
const INDEX = 4;
const LENGTH = 5;
const LAST_USE = 6;
const META_WORDS = 8;

/** Spins before a thread sleeps on the lock; the critical sections are a table scan long. */
const LOCK_SPINS = 200;
const LOCK_SLEEP_MS = 1;
/** A thread waiting for another's load looks again at least this often (a lost wake-up costs this much). */
const LOAD_WAIT_MS = 250;

interface Views {
  control: Int32Array;
  stats: Float64Array;
  meta: Float64Array;
  state: Int32Array;
  loader: Int32Array;
  pins: Int32Array;
  data: Buffer;
}

function align(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

function views(layout: CacheLayout): Views {
  const { buffer, slots, threads, chunkSize } = layout;
  let at = 0;
  const take = (bytes: number, alignment: number): number => {
    at = align(at, alignment);
    const start = at;
    at += bytes;
    return start;
  };
  const control = new Int32Array(buffer, take(CONTROL_WORDS * 4, 8), CONTROL_WORDS);
  const stats = new Float64Array(buffer, take(STAT_WORDS * 8, 8), STAT_WORDS);
  const meta = new Float64Array(buffer, take(slots * META_WORDS * 8, 8), slots * META_WORDS);
  const state = new Int32Array(buffer, take(slots * 4, 4), slots);
  const loader = new Int32Array(buffer, take(slots * 4, 4), slots);
  const pins = new Int32Array(buffer, take(slots * threads * 4, 4), slots * threads);
  // Page-aligned, so a chunk's pages are touched only when a chunk is read into them.
  const data = Buffer.from(buffer, take(slots * chunkSize, 4096), slots * chunkSize);
  return { control, stats, meta, state, loader, pins, data };
}

/**
 * A cache of `bytesMax` (rounded down to whole chunks, at least one) shared by `threads` transfer
 * threads. The buffer's pages become resident only as chunks are read into them.
 */
export function allocateCache(bytesMax: number, threads: number, chunkSize = 1 << 20): CacheLayout {
  const slots = Math.max(1, Math.floor(bytesMax / chunkSize));
  const tables = align(CONTROL_WORDS * 4 + STAT_WORDS * 8 + slots * (META_WORDS * 8 + 8 + threads * 4) + 64, 4096);
  return { buffer: new SharedArrayBuffer(tables + slots * chunkSize + 4096), chunkSize, slots, threads };
}

type WaitAsync = (array: Int32Array, index: number, value: number, timeoutMs: number) => { async: false; value: string } | { async: true; value: Promise<string> };
const waitAsync = (Atomics as unknown as { waitAsync?: WaitAsync }).waitAsync;

/** Waits until a slot's state word is no longer `value` or `ms` passed (Atomics.waitAsync where Node has it). */
async function waitWhile(state: Int32Array, slot: number, value: number, ms: number): Promise<void> {
  if (waitAsync === undefined) {
    await new Promise((ok) => setTimeout(ok, 1));
    return;
  }
  const r = waitAsync(state, slot, value, ms);
  if (!r.async) return;
  // A pending waitAsync holds no reference on the event loop: without this timer a thread with
  // nothing else to do would exit while it waits.
  const keep = setTimeout(() => undefined, ms + 10);
  try {
    await r.value;
  } finally {
    clearTimeout(keep);
  }
}

/** One thread's handle on the shared cache: lookups, loads and pins in this thread's name. */
export class BlockCache<F extends FileIdentity = FileIdentity> {
  readonly chunkSize: number;
  readonly slots: number;
  readonly layout: CacheLayout;
  /** This thread's pin column, or -1 for the main thread's bookkeeping handle (stats, releaseThread). */
  readonly thread: number;
  readonly #id: number;
  readonly #threads: number;
  readonly #v: Views;
  readonly #read: ChunkReader<F>;

  constructor(layout: CacheLayout, thread: number, read: ChunkReader<F>) {
    if (thread >= layout.threads) throw new RangeError(`cache thread ${thread} >= ${layout.threads} pin columns`);
    this.layout = layout;
    this.chunkSize = layout.chunkSize;
    this.slots = layout.slots;
    this.thread = thread;
    this.#threads = layout.threads;
    this.#id = thread >= 0 ? thread + 1 : layout.threads + 1;
    this.#v = views(layout);
    this.#read = read;
  }

  /**
   * The chunk `index` of `file`, pinned for this thread until `release(held.slot)`: at once when it
   * is cached, else a promise (this thread reads it, or waits for the thread already reading it).
   */
  acquire(file: F, index: number): HeldChunk | Promise<HeldChunk> {
    const { state } = this.#v;
    this.#lock();
    let slot = this.#find(file, index);
    const found = slot >= 0 ? Atomics.load(state, slot) : EMPTY;
    if (slot >= 0) {
      // A hit: no read of this thread's own, whether the chunk is there or another thread is reading it.
      this.#pin(slot);
      this.#touch(slot);
      this.#v.stats[HITS]!++;
    } else {
      this.#v.stats[MISSES]!++;
      slot = this.#claim(file, index);
      if (slot >= 0) this.#pin(slot);
    }
    this.#unlock();
    if (slot < 0) return this.#readAlone(file, index);
    if (found === READY) return { slot, bytes: this.#view(slot) };
    if (found === LOADING) return this.#await(slot, file, index);
    return this.#load(slot, file, index).then(() => ({ slot, bytes: this.#view(slot) }), (error: unknown) => {
      this.release(slot);
      throw error;
    });
  }

  /** Starts reading chunk `index` into a free or least recently used slot unless it is cached or loading. */
  prefetch(file: F, index: number): void {
    this.#lock();
    let slot = this.#find(file, index);
    if (slot < 0) {
      slot = this.#claim(file, index);
      if (slot >= 0) this.#v.stats[MISSES]!++;
    } else slot = -1;
    this.#unlock();
    if (slot >= 0) this.#load(slot, file, index).catch(() => undefined);
  }

  /** Unpins a slot `acquire` gave this thread (nothing for a chunk read alone). */
  release(slot: number): void {
    if (slot >= 0) Atomics.sub(this.#v.pins, slot * this.#threads + this.thread, 1);
  }

  /**
   * The counters as they stand, read without the lock: status must never wait on it (the main thread
   * asks, and a worker that died inside the lock is released only by its exit event, which a main
   * thread waiting here would never get to run). A figure may be one update behind.
   */
  stats(): CacheStats {
    const { stats } = this.#v;
    let pinned = 0;
    for (let slot = 0; slot < this.slots; slot++) if (this.#pinned(slot)) pinned++;
    return { bytes: stats[BYTES]!, chunks: stats[CHUNKS]!, hits: stats[HITS]!, misses: stats[MISSES]!, pinned };
  }

  /**
   * Called once `thread` has stopped running (its worker exited): drops its pins, and fails the
   * loads it had claimed so the threads waiting for them claim them again. Node lets a worker's
   * `exit` fire only after its in-flight reads have returned, so none lands in a slot given away.
   */
  releaseThread(thread: number): void {
    const { control, state, loader, pins } = this.#v;
    const dead = thread + 1;
    if (Atomics.compareExchange(control, LOCK, dead, 0) === dead) Atomics.notify(control, LOCK);
    const failed: number[] = [];
    this.#lock();
    for (let slot = 0; slot < this.slots; slot++) {
      Atomics.store(pins, slot * this.#threads + thread, 0);
      if (Atomics.load(state, slot) === LOADING && loader[slot] === dead) {
        Atomics.store(state, slot, EMPTY);
        loader[slot] = 0;
        failed.push(slot);
      }
    }
    this.#unlock();
    for (const slot of failed) Atomics.notify(state, slot);
  }

  #lock(): void {
    const { control } = this.#v;
    for (let spins = 0; ; spins++) {
      const owner = Atomics.compareExchange(control, LOCK, 0, this.#id);
      if (owner === 0) return;
      if (spins < LOCK_SPINS) continue;
      Atomics.add(control, LOCK_WAITERS, 1);
      Atomics.wait(control, LOCK, owner, LOCK_SLEEP_MS);
      Atomics.sub(control, LOCK_WAITERS, 1);
    }
  }

  #unlock(): void {
    const { control } = this.#v;
    Atomics.store(control, LOCK, 0);
    if (Atomics.load(control, LOCK_WAITERS) > 0) Atomics.notify(control, LOCK, 1);
  }

  /** The slot holding (or loading) exactly this chunk of this file version, or -1. Under the lock. */
  #find(file: F, index: number): number {
    const { meta, state } = this.#v;
    for (let slot = 0; slot < this.slots; slot++) {
      if (Atomics.load(state, slot) === EMPTY) continue;
      const m = slot * META_WORDS;
      if (meta[m + INDEX] === index && meta[m + INO] === file.ino && meta[m + DEV] === file.dev
        && meta[m + SIZE] === file.size && meta[m + MTIME] === file.mtimeMs) return slot;
    }
    return -1;
  }

  #pinned(slot: number): boolean {
    const { pins } = this.#v;
    const base = slot * this.#threads;
    for (let t = 0; t < this.#threads; t++) if (Atomics.load(pins, base + t) > 0) return true;
    return false;
  }

  /**
   * Takes an empty slot, else the least recently used ready one no thread has pinned, and marks it
   * LOADING by this thread; -1 when every slot is loading or pinned. Under the lock. The owner and
   * state are written before the identity, so a thread stopped half-way leaves a claim
   * releaseThread fails, never a ready slot naming bytes it does not hold.
   */
  #claim(file: F, index: number): number {
    const { meta, state, loader, stats } = this.#v;
    let victim = -1;
    let oldest = Infinity;
    for (let slot = 0; slot < this.slots; slot++) {
      const s = Atomics.load(state, slot);
      if (s === LOADING || this.#pinned(slot)) continue;
      if (s === EMPTY) { victim = slot; break; }
      const lastUse = meta[slot * META_WORDS + LAST_USE]!;
      if (lastUse < oldest) { oldest = lastUse; victim = slot; }
    }
    if (victim < 0) return -1;
    const m = victim * META_WORDS;
    if (Atomics.load(state, victim) === READY) {
      stats[BYTES]! -= meta[m + LENGTH]!;
      stats[CHUNKS]!--;
    }
    loader[victim] = this.#id;
    Atomics.store(state, victim, LOADING);
    meta[m + DEV] = file.dev;
    meta[m + INO] = file.ino;
    meta[m + SIZE] = file.size;
    meta[m + MTIME] = file.mtimeMs;
    meta[m + INDEX] = index;
    meta[m + LENGTH] = 0;
    meta[m + LAST_USE] = ++stats[TICK]!;
    return victim;
  }

  #pin(slot: number): void {
    Atomics.add(this.#v.pins, slot * this.#threads + this.thread, 1);
  }

  #touch(slot: number): void {
    this.#v.meta[slot * META_WORDS + LAST_USE] = ++this.#v.stats[TICK]!;
  }

  #want(file: F, index: number): { position: number; length: number } {
    const position = index * this.chunkSize;
    return { position, length: Math.max(0, Math.min(this.chunkSize, file.size - position)) };
  }

  /** Reads a claimed slot straight into the shared buffer, then marks it READY (or EMPTY on an error). */
  async #load(slot: number, file: F, index: number): Promise<void> {
    const { meta, state, loader, stats, data } = this.#v;
    const { position, length } = this.#want(file, index);
    const start = slot * this.chunkSize;
    let n: number;
    try {
      n = await this.#read(file, position, data.subarray(start, start + length));
    } catch (error) {
      this.#lock();
      loader[slot] = 0;
      Atomics.store(state, slot, EMPTY);
      this.#unlock();
      Atomics.notify(state, slot);
      throw error;
    }
    this.#lock();
    // The length read, not the chunk's: a file that shrank never exposes a previous occupant's bytes.
    meta[slot * META_WORDS + LENGTH] = n;
    stats[BYTES]! += n;
    stats[CHUNKS]!++;
    loader[slot] = 0;
    Atomics.store(state, slot, READY);
    this.#unlock();
    Atomics.notify(state, slot);
  }

  /** Another thread is loading a slot this thread has pinned: wait for it, or claim it again if that load failed. */
  async #await(slot: number, file: F, index: number): Promise<HeldChunk> {
    const { state } = this.#v;
    for (;;) {
      const s = Atomics.load(state, slot);
      if (s === READY) return { slot, bytes: this.#view(slot) };
      if (s === EMPTY) {
        this.release(slot);
        return this.acquire(file, index);
      }
      await waitWhile(state, slot, LOADING, LOAD_WAIT_MS);
    }
  }

  /** Every slot is loading or pinned: this transfer reads its chunk into a buffer of its own. */
  async #readAlone(file: F, index: number): Promise<HeldChunk> {
    const { position, length } = this.#want(file, index);
    const bytes = Buffer.allocUnsafe(length);
    const n = await this.#read(file, position, bytes);
    return { slot: -1, bytes: bytes.subarray(0, n) };
  }

  #view(slot: number): Buffer {
    const start = slot * this.chunkSize;
    return this.#v.data.subarray(start, start + this.#v.meta[slot * META_WORDS + LENGTH]!);
  }
}
