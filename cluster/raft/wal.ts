import { LatencyWindow } from '../../lib/latency.js';
import { closeSync, fsyncSync, ftruncateSync, writeSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import * as fsp from 'node:fs/promises';
import { join } from 'node:path';
import { acquireDirLock, lockHolder, releaseDirLock } from '../../lib/dir-lock.js';
import { crc32c } from '../../lib/crc32c.js';
import { fsyncDir, makeDirs } from '../../lib/durable-file.js';
import { invariant } from '../../lib/assert.js';
import { EntryType, type ConfState, type Entry, type HardState, type Snapshot } from './types.js';

// The durable Raft storage of one member, in `dir`:
//   wal/<seq>-<firstIndex>.wal   append-only segments of records: len u32, crc32c u32 over the body,
//                                body = type u8, term u64, index u64, payload
//   hardstate                     term + vote + commit, replaced atomically (tmp, fsync, rename, dir fsync)
//   snapshot-<index>.snap         the newest snapshot, written the same way
//
// An entry record whose index is at or below the last one replaces that suffix (Raft truncation),
// so the files stay append-only. Commit advances are WAL records too: they ride in the next write
// that happens anyway and cost no fsync. Every fsync runs on libuv's thread pool, never on the
// event loop. The host calls begin() once per Ready: the batch is written at once, and its
// fdatasync starts at once or, while one is in flight, as soon as that returns, shared with every
// batch written meanwhile (pipelined group commit); a batch is durable once an fdatasync issued
// after its write and every earlier batch's completed.
//
// Durable marks: every commit record carries, as its payload, how far into its segment an
// fdatasync that had completed when it was written reached ("everything before this offset is on
// the disk"). It rides in the batches written anyway; after a quiet spell (markIdleMs) and at a
// clean close a bare commit record carries it, so the last batch is covered too.
//
// Start-up: a bad record in the last segment at or after its highest durable mark (read from every
// whole record of the segment, those after the bad one included) is a torn write of batches that
// were never fsync'd (nothing was acknowledged for them), so the tail is cut there. A bad record
// before that mark damaged bytes an fdatasync had made durable: that is media damage, not a torn
// write, and cutting there would drop acknowledged entries, so start-up is refused. So is a bad
// record in an older segment, a bad snapshot or hard state, or a cut that would lose committed
// entries: each with an error naming the file, the offset and how to rebuild the member.

const SEGMENT_MAGIC = Buffer.from('LHWAL\u0000\u0000\u0001');
const SNAP_MAGIC = Buffer.from('LHSNAP\u0000\u0001');
const HARD_MAGIC = Buffer.from('LHHARD\u0000\u0001');
const HEADER = 8;
const RECORD_HEAD = 8 + 1 + 8 + 8;
const RECORD_MAX = 64 * 1024 * 1024;

const RecordType = { entry: 1, config: 2, commit: 3 } as const;
const PREFILL_BYTES = 64 * 1024;
/** A commit record's payload: the durable mark, u64 (older writers left it empty; readers before it ignore it). */
const MARK_BYTES = 8;
/** A quiet spell after which a bare commit record carries the durable mark of the last batch. */
const MARK_IDLE_MS = 1000;

/**
 * What to do about damaged storage (cluster/raft/README.md, "Damaged storage"): a member of a
 * cluster is rebuilt from its peers; a single node has no peer to copy from.
 */
export function rebuildHint(dir: string, cut?: { file: string; offset: number }): string {
  return `to rebuild this member in a cluster: stop it, move ${dir} aside (mv ${dir} ${dir}.damaged; keep it for inspection) and start it again: `
    + `it rejoins with an empty log and the leader sends it what it lacks: the entries, or a snapshot and the entries after it; it votes again once a leader has caught it up (leave ${dir}.member where it is: it tells a rebuild from a first start). `
    + `Alone (no cluster), restore ${dir} from a backup`
    + (cut ? `, or keep a copy and cut the file where the damage starts (truncate -s ${cut.offset} ${cut.file}) to start from the entries before it, losing the later ones` : '');
}

/** Which file an open segment is (st_dev, st_ino), to tell that its path still leads to it. */
export interface FileId { dev: number; ino: number }

/**
 * Throws unless `path` still names the file `id`: a live segment deleted, moved or replaced while
 * the WAL writes it. One stat of a path just written (its entries cached): 20-40 us on the event
 * loop, beside an fdatasync of 0.3 ms or more. A stat that fails otherwise (EACCES: the
 * directory's mode changed) proves nothing and passes.
 */
export function checkLinked(id: FileId, path: string): void {
  let named: { dev: number; ino: number } | null;
  try {
    named = statSync(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT' && code !== 'ENOTDIR') return;
    named = null;
  }
  if (named !== null && named.ino === id.ino && named.dev === id.dev) return;
  const what = named === null ? 'was deleted or moved away' : 'was replaced by another file';
  throw new StorageError(path, 0, `${what} while lanha wrote it (the state directory removed or moved?): what was written since is in no file a start reads, so none of it is acknowledged; this process must restart and read what is on the disk`);
}

export class StorageError extends Error {
  override name = 'StorageError';
  readonly file: string;
  readonly offset: number;
  constructor(file: string, offset: number, problem: string) {
    super(`${file} at offset ${offset}: ${problem}`);
    this.file = file;
    this.offset = offset;
  }
}

/** Test hooks at the crash-relevant points (etcd's gofail). 'crash' kills the process with SIGKILL. */
export type FailpointName = 'wal.beforeWrite' | 'wal.tornWrite' | 'wal.beforeFsync' | 'wal.afterFsync' | 'wal.probe' | 'snapshot.beforeRename' | 'hardstate.beforeRename';
export type Failpoint = (name: FailpointName) => void | 'torn' | Promise<void | 'torn'>;

export function failpointsFromEnv(text = process.env['LANHA_FAILPOINTS']): Failpoint | undefined {
  if (text === undefined || text.trim() === '') return undefined;
  const rules = new Map<string, string>();
  for (const part of text.split(',')) {
    const [name, action] = part.split('=');
    if (name && action) rules.set(name.trim(), action.trim());
  }
  const passes = new Map<string, number>();
  return async (name) => {
    const action = rules.get(name);
    if (action === undefined) return;
    if (action === 'crash') process.kill(process.pid, 'SIGKILL');
    if (action === 'error') throw Object.assign(new Error(`failpoint ${name}: injected I/O error`), { code: 'EIO' });
    const after = /^error-after:(\d+)$/.exec(action);
    if (after) {
      // The first N passes go through (a daemon that started well), every later one fails.
      const seen = (passes.get(name) ?? 0) + 1;
      passes.set(name, seen);
      if (seen > Number(after[1])) throw Object.assign(new Error(`failpoint ${name}: injected I/O error after ${after[1]} passes`), { code: 'EIO' });
      return;
    }
    if (action === 'torn') return 'torn';
    const delay = /^delay:(\d+)$/.exec(action);
    if (delay) await new Promise((r) => setTimeout(r, Number(delay[1])));
  };
}

export interface LoadedState {
  hardState: HardState;
  snapshot?: Snapshot;
  entries: Entry[];
  /** Bytes cut from a torn tail at start-up (0 normally). */
  truncatedBytes: number;
}

export interface WalOptions {
  segmentBytes?: number;
  /** A quiet spell after which a bare record carries the durable mark of the last batch (ms, default 1000; 0: only at close). */
  markIdleMs?: number;
  failpoint?: Failpoint;
  /** fdatasyncs of the WAL that may run at once (pipelined group commit); default 1. */
  syncsInFlightMax?: number;
  /** Zeros written ahead of the tail of a segment, so appends do not grow the file (0: off); default 64 KiB. */
  prefillBytes?: number;
  /** Monotonic ms for the timings it reports (`durable` resolves with when its fdatasync was issued); default performance.now. */
  now?: () => number;
}

interface Segment { seq: number; firstIndex: number; name: string }

export class Wal {
  readonly dir: string;
  #walDir: string;
  #segmentBytes: number;
  #failpoint: Failpoint | undefined;
  #segments: Segment[];
  #fd: fsp.FileHandle | undefined;
  #size = 0;
  #lastIndex: number;
  #hard: HardState;
  #writtenCommit: number;
  #broken: Error | undefined;
  /** The live segment's file (checkLinked). */
  #fdId: FileId = { dev: 0, ino: 0 };
  #syncsInFlightMax: number;
  #syncsInFlight = 0;
  #syncCount = 0;
  /** Durable when every batch written so far is (the last batch's `durable`): resolves with when its fdatasync was issued. */
  #tail: Promise<number> = Promise.resolve(0);
  /** The fdatasync to issue when one in flight returns: batches written while every slot was busy share it. */
  #nextSync: { promise: Promise<number>; resolve: (issuedAt: number) => void; reject: (e: unknown) => void } | undefined;
  #now: () => number;
  #beginning = false;
  #prefillBytes: number;
  /** The segment file's length: records up to #size, zeros after (prefilled). */
  #allocated = 0;
  /** Bytes of the live segment that a completed fdatasync covered. */
  #durableEnd = HEADER;
  /** The highest durable mark written into the live segment. */
  #markWritten = HEADER;
  /** Where the last batch with entries ends in the live segment (what a mark must come to cover). */
  #dataEnd = HEADER;
  /** When the last batch with entries was written (performance.now()): a mark waits for a quiet spell after it. */
  #lastBatchAt = 0;
  #markIdleMs: number;
  #markTimer: NodeJS.Timeout | undefined;
  #closing = false;
  /** Made by Wal.refusing: it took no LOCK. */
  #refusing = false;

  private constructor(dir: string, segments: Segment[], lastIndex: number, hard: HardState, options: WalOptions) {
    this.dir = dir;
    this.#walDir = join(dir, 'wal');
    this.#segments = segments;
    this.#lastIndex = lastIndex;
    this.#hard = hard;
    this.#writtenCommit = hard.commit;
    this.#segmentBytes = options.segmentBytes ?? 64 * 1024 * 1024;
    this.#failpoint = options.failpoint;
    this.#syncsInFlightMax = Math.max(1, Math.floor(options.syncsInFlightMax ?? 1));
    this.#prefillBytes = Math.max(0, Math.floor(options.prefillBytes ?? PREFILL_BYTES));
    this.#markIdleMs = Math.max(0, Math.floor(options.markIdleMs ?? MARK_IDLE_MS));
    this.#now = options.now ?? (() => performance.now());
  }

  /** Opens (creating if needed) the storage in `dir` and reads everything back. */
  static async open(dir: string, options: WalOptions = {}): Promise<{ wal: Wal; state: LoadedState }> {
    makeDirs(join(dir, 'wal'));
    lockDir(dir);
    for (const f of readdirSync(dir)) if (f.endsWith('.tmp')) rmSync(join(dir, f), { force: true });
    const state = loadState(dir);
    const segments = listSegments(join(dir, 'wal'));
    const lastIndex = state.entries.length > 0 ? state.entries[state.entries.length - 1]!.index : state.snapshot?.meta.index ?? 0;
    const wal = new Wal(dir, segments, lastIndex, state.hardState, options);
    await wal.#openTail();
    return { wal, state };
  }

  /**
   * A WAL over `dir` that opened nothing and takes no write: every call throws `refusal`. For a
   * member that starts on a file system that refused Wal.open a write (full, read-only): it runs
   * fenced on the state loadState(dir, false) read, and opens the real WAL once writes work
   * (cluster/raft/README.md, "Out of space"). It holds no LOCK and never releases one.
   */
  static refusing(dir: string, state: LoadedState, refusal: Error, options: WalOptions = {}): Wal {
    const lastIndex = state.entries.length > 0 ? state.entries[state.entries.length - 1]!.index : state.snapshot?.meta.index ?? 0;
    const wal = new Wal(dir, [], lastIndex, state.hardState, options);
    wal.#broken = refusal;
    wal.#closing = true;
    wal.#refusing = true;
    return wal;
  }

  get broken(): Error | undefined { return this.#broken; }

  /** How long each entry fdatasync took (the last 1024), for status, doctor and /metrics. */
  readonly fsyncMs = new LatencyWindow(1024);
  #snapshotChain: Promise<void> = Promise.resolve();

  /**
   * Writes one Ready's worth and resolves once it is durable (begin(), then its `durable`).
   * After any I/O error the WAL refuses every later save: the member must stop acknowledging.
   */
  async save(hard: HardState | undefined, entries: readonly Entry[], sync: boolean): Promise<void> {
    const { durable } = await this.begin(hard, entries, sync);
    await durable;
  }

  /**
   * Pipelined group commit. Writes the batch now: hard state first if term/vote changed (atomic
   * file), then the entries and the commit mark as one write into the page cache. Resolves once
   * written, with `durable`: resolves once an fdatasync issued after this write (and every earlier
   * batch's) completed, in write order, with when that fdatasync was issued (`now`: the time
   * before it is the wait behind the one in flight). So the host can write the next batch while this one's
   * fdatasync is in flight; up to `syncsInFlightMax` fdatasyncs run at once, and batches written
   * while all of them are busy share the next one (issued as soon as one returns). A term/vote change
   * or a new segment first waits until every earlier batch is durable. Call begin() again only once
   * the previous begin() resolved (writes stay in call order).
   */
  async begin(hard: HardState | undefined, entries: readonly Entry[], sync: boolean): Promise<{ durable: Promise<number> }> {
    if (this.#broken) throw this.#broken;
    invariant(!this.#beginning, 'Wal.begin called before the previous begin resolved');
    this.#beginning = true;
    try {
      const termVote = hard !== undefined && (hard.term !== this.#hard.term || hard.vote !== this.#hard.vote);
      const roll = this.#size >= this.#segmentBytes && (entries.length > 0 || sync);
      if (termVote || roll) await this.#drainSyncs();
      if (hard && termVote) await this.#writeHardState(hard);
      // The commit index needs no fsync (a restart recomputes it): it rides along with the next
      // write that happens anyway instead of costing a write of its own.
      if (hard) this.#hard = { ...hard };
      const commitChanged = this.#hard.commit !== this.#writtenCommit;
      if (entries.length === 0 && !sync) return { durable: this.#tail };
      if (roll) await this.#roll(entries[0]?.index ?? this.#lastIndex + 1);
      if (entries.length === 0 && !commitChanged) return { durable: this.#tail };
      // The commit record carries the durable mark: in every batch that has a commit to record or
      // entries written since the last mark came to cover more.
      const mark = this.#durableEnd;
      const withCommit = commitChanged || (entries.length > 0 && mark > this.#markWritten);
      // One buffer for the whole batch, each record encoded in place (no buffer per record, no concat).
      let size = withCommit ? RECORD_HEAD + MARK_BYTES : 0;
      for (const e of entries) size += RECORD_HEAD + e.data.length;
      let buf = Buffer.allocUnsafe(size);
      let at = 0;
      for (const e of entries) at = encodeRecordAt(buf, at, e.type === EntryType.config ? RecordType.config : RecordType.entry, e.term, e.index, e.data);
      if (withCommit) encodeRecordAt(buf, at, RecordType.commit, this.#hard.term, this.#hard.commit, markPayload(mark));
      // Without failpoints nothing here yields to the event loop between the write and the
      // fdatasync's hand-off to the thread pool.
      if (this.#failpoint) {
        await this.#fail('wal.beforeWrite');
        if ((await this.#fail('wal.tornWrite')) === 'torn') buf = buf.subarray(0, Math.max(1, buf.length - 7));
      }
      const fd = this.#fd!;
      if (this.#prefillBytes > 0 && this.#size + buf.length > this.#allocated) this.#prefill(fd.fd, this.#size + buf.length);
      // The write only copies into the page cache (tens of microseconds), so it runs here; the
      // fdatasync that waits for the device runs on the thread pool.
      let done = 0;
      while (done < buf.length) done += writeSync(fd.fd, buf, done, buf.length - done, this.#size + done);
      this.#size += buf.length;
      this.#writtenCommit = this.#hard.commit;
      if (withCommit) this.#markWritten = Math.max(this.#markWritten, mark);
      if (entries.length > 0) { this.#dataEnd = this.#size; this.#lastBatchAt = performance.now(); }
      const last = entries[entries.length - 1];
      if (last) this.#lastIndex = last.index;
      return { durable: sync ? this.#syncCovering() : this.#tail };
    } catch (error) {
      throw this.#break(error);
    } finally {
      this.#beginning = false;
    }
  }

  /**
   * Writes zeros past the tail (at least `needed`, then `prefillBytes` more), made durable by the
   * next fdatasync. Appends then overwrite blocks the file already has: the file does not grow, so
   * an fdatasync is the data and a cache flush, not a journal commit of the new size (ext4, xfs);
   * with appends growing the file, each fdatasync's journal commit also chased the data written
   * after it started (the next batches), and took 2-5x longer in bench:dhcp. A zero record length
   * reads back as the end of the segment (scanSegment).
   */
  #prefill(fd: number, needed: number): void {
    const target = Math.max(needed, this.#allocated) + this.#prefillBytes;
    const zeros = Buffer.alloc(Math.min(target - this.#allocated, 1024 * 1024));
    let at = this.#allocated;
    while (at < target) at += writeSync(fd, zeros, 0, Math.min(zeros.length, target - at), at);
    this.#allocated = target;
  }

  /**
   * Whether an fsync or fdatasync of the WAL has ever failed: write-back failed, and the kernel
   * may since hold as clean pages it never wrote, so the files cannot be read back as the truth
   * in this boot's page cache (a full disk is waited out only when none failed).
   */
  get syncFailed(): boolean { return this.#syncFailed; }
  #syncFailed = false;

  async #flushed(call: Promise<void> | undefined): Promise<void> {
    try {
      await call;
    } catch (error) {
      this.#syncFailed = true;
      throw error;
    }
  }

  /** fdatasyncs issued (each covers every batch written before it). */
  get syncCount(): number { return this.#syncCount; }

  #break(error: unknown): Error {
    if (this.#broken === undefined) {
      const broken = error instanceof Error ? error : new Error(String(error));
      this.#broken = broken;
      queueMicrotask(() => { for (const listener of this.#brokenListeners) listener(broken); });
    }
    return this.#broken;
  }

  #brokenListeners = new Set<(error: Error) => void>();

  /**
   * Calls `listener` once the WAL breaks, whatever broke it: a batch's write or fdatasync (its
   * caller hears it too), or a write nobody waits for (the quiet-spell mark), which would else go
   * unnoticed on an idle member until its next write. Returns unsubscribe.
   */
  onBroken(listener: (error: Error) => void): () => void {
    this.#brokenListeners.add(listener);
    return () => { this.#brokenListeners.delete(listener); };
  }

  /** A promise that resolves once an fdatasync issued after everything written so far completed, after every earlier one. */
  #syncCovering(): Promise<number> {
    let sync: Promise<number>;
    if (this.#syncsInFlight < this.#syncsInFlightMax && this.#nextSync === undefined) {
      sync = this.#issueSync();
    } else {
      // Every slot is busy: join the fdatasync issued when one returns (it covers this write).
      if (this.#nextSync === undefined) {
        let resolve!: (issuedAt: number) => void;
        let reject!: (e: unknown) => void;
        const promise = new Promise<number>((res, rej) => { resolve = res; reject = rej; });
        promise.catch(() => undefined);
        this.#nextSync = { promise, resolve, reject };
      }
      sync = this.#nextSync.promise;
    }
    // In write order: a batch is durable only once every earlier batch's fdatasync succeeded too
    // (an error is reported to one fdatasync of the file only; any error breaks the WAL for good).
    const durable = this.#tail.then(() => sync);
    durable.catch(() => undefined);
    this.#tail = durable;
    return durable;
  }

  #issueSync(): Promise<number> {
    this.#syncsInFlight++;
    const fd = this.#fd!;
    // fdatasync makes durable everything written before it was called: the bytes up to here.
    const covers = this.#size;
    const issuedAt = this.#now();
    const path = join(this.#walDir, this.#segments[this.#segments.length - 1]!.name);
    const id = this.#fdId;
    const run = (async () => {
      // An injected failure here stands for the fdatasync's own (it counts in syncFailed).
      if (this.#failpoint) await this.#flushed(this.#fail('wal.beforeFsync').then(() => undefined));
      const started = performance.now();
      await this.#flushed(fd.datasync());
      // A segment deleted or moved away under us (the state directory removed, say) takes writes
      // and fdatasyncs all the same, into a file no start reads: nothing in it may count as durable.
      checkLinked(id, path);
      // With several in flight, a write-back error is reported to one fdatasync of the file only,
      // whichever checks first: one issued later that failed first may have taken the error for
      // pages this one waited for. Then this one's success proves nothing.
      if (this.#broken) throw this.#broken;
      this.fsyncMs.record(performance.now() - started);
      this.#syncCount++;
      if (this.#fd === fd) this.#durableEnd = Math.max(this.#durableEnd, covers);
      if (this.#failpoint) await this.#fail('wal.afterFsync');
      return issuedAt;
    })().catch((error: unknown) => { throw this.#break(error); });
    run.catch(() => undefined).finally(() => {
      this.#syncsInFlight--;
      const next = this.#nextSync;
      if (next === undefined) { this.#scheduleMark(); return; }
      this.#nextSync = undefined;
      if (this.#broken) { next.reject(this.#broken); return; }
      this.#issueSync().then(next.resolve, next.reject);
    });
    return run;
  }

  /**
   * After the last fdatasync of a burst: unless another batch carries it sooner, a bare commit
   * record carries the durable mark that covers the last batch, once the WAL has been quiet for
   * markIdleMs (its fdatasync acknowledges nothing; it only lets start-up tell damage to that batch
   * from a torn write).
   */
  #scheduleMark(delayMs = this.#markIdleMs): void {
    if (this.#markIdleMs <= 0 || this.#markTimer !== undefined || this.#closing || this.#broken) return;
    if (this.#dataEnd <= this.#markWritten || this.#durableEnd < this.#dataEnd) return;
    this.#markTimer = setTimeout(() => {
      this.#markTimer = undefined;
      if (this.#closing || this.#broken || this.#fd === undefined) return;
      if (this.#beginning || this.#syncsInFlight > 0) { this.#scheduleMark(); return; }
      // A real quiet spell: under steady load every batch carries the mark of the ones before it,
      // and a bare mark's fdatasync between two batches would only delay the next one.
      const quietMs = performance.now() - this.#lastBatchAt;
      if (quietMs < this.#markIdleMs) { this.#scheduleMark(Math.ceil(this.#markIdleMs - quietMs)); return; }
      if (this.#dataEnd <= this.#markWritten || this.#durableEnd < this.#dataEnd) return;
      this.#writeMark().catch(() => undefined); // a failure breaks the WAL: the next batch reports it
    }, delayMs);
    this.#markTimer.unref();
  }

  /** Writes a bare commit record with the durable mark; resolves once it is durable (in order with the batches). */
  #writeMark(): Promise<number> {
    try {
      const mark = this.#durableEnd;
      const buf = Buffer.allocUnsafe(RECORD_HEAD + MARK_BYTES);
      encodeRecordAt(buf, 0, RecordType.commit, this.#hard.term, this.#writtenCommit, markPayload(mark));
      const fd = this.#fd!;
      if (this.#prefillBytes > 0 && this.#size + buf.length > this.#allocated) this.#prefill(fd.fd, this.#size + buf.length);
      let done = 0;
      while (done < buf.length) done += writeSync(fd.fd, buf, done, buf.length - done, this.#size + done);
      this.#size += buf.length;
      this.#markWritten = Math.max(this.#markWritten, mark);
      return this.#syncCovering();
    } catch (error) {
      return Promise.reject(this.#break(error));
    }
  }

  /** Waits until every batch written so far is durable (throws if the WAL broke). */
  async #drainSyncs(): Promise<void> {
    await this.#tail.catch(() => undefined);
    if (this.#broken) throw this.#broken;
  }

  /**
   * Saves a snapshot atomically, then drops snapshot files and segments it makes redundant. Saves
   * run one at a time, in call order (a snapshot of our own may still be written while the host
   * loop goes on; one installed from the leader then waits for it, and so deletes it, not the other
   * way round).
   */
  saveSnapshot(snapshot: Snapshot, installed = false): Promise<void> {
    const run = this.#snapshotChain.then(() => this.#saveSnapshot(snapshot, installed));
    this.#snapshotChain = run.catch(() => undefined);
    return run;
  }

  async #saveSnapshot(snapshot: Snapshot, installed: boolean): Promise<void> {
    if (this.#broken) throw this.#broken;
    if (installed) {
      // From the leader: it replaces our whole log. A new segment starting after it comes first,
      // so a crash at any point never replays our old (divergent) suffix on top of the snapshot.
      this.#lastIndex = snapshot.meta.index;
      await this.#roll(snapshot.meta.index + 1);
    }
    const name = `snapshot-${pad(snapshot.meta.index)}.snap`;
    await this.#atomicWrite(name, encodeSnapshot(snapshot), 'snapshot.beforeRename');
    for (const f of readdirSync(this.dir)) {
      if (f.startsWith('snapshot-') && f.endsWith('.snap') && f !== name) await fsp.rm(join(this.dir, f), { force: true });
    }
    // Segment k is redundant once segment k+1 starts at or before the snapshot's next index: every
    // entry in k is then covered by the snapshot or rewritten by k+1.
    while (this.#segments.length > 1 && this.#segments[1]!.firstIndex <= snapshot.meta.index + 1) {
      const old = this.#segments.shift()!;
      await fsp.rm(join(this.#walDir, old.name), { force: true });
    }
  }

  /**
   * Whether the disk works again (after a stalled call returned): waits for every write in
   * progress, then writes and fsyncs a small file beside the WAL and fdatasyncs the live segment.
   * Throws when the WAL is broken or any of it fails.
   */
  async probe(): Promise<void> {
    await this.#snapshotChain;
    await this.#tail.catch(() => undefined);
    if (this.#broken) throw this.#broken;
    await this.#fail('wal.probe');
    const file = join(this.dir, 'probe.tmp'); // a leftover .tmp is removed at the next open
    const fd = await fsp.open(file, 'w');
    try {
      await fd.write(Buffer.alloc(4096, 0x5a), 0, 4096, 0);
      await this.#flushed(fd.sync());
    } finally {
      await fd.close();
    }
    await fsp.rm(file, { force: true });
    await this.#flushed(this.#fd?.datasync());
  }

  async close(): Promise<void> {
    this.#closing = true;
    if (this.#markTimer !== undefined) clearTimeout(this.#markTimer);
    this.#markTimer = undefined;
    await this.#snapshotChain;
    await this.#tail.catch(() => undefined);
    if (this.#fd && !this.#broken && this.#dataEnd > this.#markWritten) {
      // A clean stop leaves the last batch covered by a durable mark.
      try {
        await this.#flushed(this.#fd.datasync());
        this.#durableEnd = this.#size;
        await this.#writeMark();
      } catch (error) {
        this.#break(error);
      }
    }
    const fd = this.#fd;
    this.#fd = undefined;
    // A clean stop leaves no prefilled zeros behind (a crash may: they read back as the end).
    if (fd && !this.#broken && this.#allocated > this.#size) await fd.truncate(this.#size).catch(() => undefined);
    await fd?.close().catch(() => undefined);
    if (!this.#refusing) releaseDirLock(this.dir);
  }


  async #fail(name: FailpointName): Promise<void | 'torn'> {
    return this.#failpoint ? await this.#failpoint(name) : undefined;
  }

  async #openTail(): Promise<void> {
    if (this.#segments.length === 0) {
      await this.#roll(this.#lastIndex + 1);
      return;
    }
    const seg = this.#segments[this.#segments.length - 1]!;
    this.#fd = await fsp.open(join(this.#walDir, seg.name), 'r+');
    // What a process killed before its fdatasync left in the page cache is made durable now, so
    // the marks written from here on say only what is true.
    await this.#flushed(this.#fd.datasync());
    const st = await this.#fd.stat();
    const length = st.size;
    this.#fdId = { dev: st.dev, ino: st.ino };
    const scan = scanSegment(readFileSync(join(this.#walDir, seg.name)));
    this.#size = scan.end;
    this.#allocated = length;
    this.#durableEnd = scan.end;
    this.#markWritten = scan.durableMark;
    const lastData = scan.records.filter((r) => r.type !== RecordType.commit).pop();
    this.#dataEnd = lastData === undefined ? HEADER : lastData.offset + RECORD_HEAD + lastData.payload.length;
    this.#scheduleMark();
  }

  async #roll(firstIndex: number): Promise<void> {
    // The old segment's fd is closed below: no fdatasync of it may still be in flight.
    await this.#drainSyncs();
    const seq = (this.#segments[this.#segments.length - 1]?.seq ?? 0) + 1;
    const name = `${pad(seq)}-${pad(firstIndex)}.wal`;
    const fd = await fsp.open(join(this.#walDir, name), 'w+');
    let id: FileId;
    try {
      const st = await fd.stat();
      id = { dev: st.dev, ino: st.ino };
      await fd.write(SEGMENT_MAGIC, 0, HEADER, 0);
      await this.#flushed(fd.datasync());
      await fsyncDir(this.#walDir);
    } catch (error) {
      // The WAL breaks on this error; the new segment's descriptor is not left to the GC.
      await fd.close().catch(() => undefined);
      throw error;
    }
    if (this.#fd) {
      if (this.#allocated > this.#size) await this.#fd.truncate(this.#size);
      await this.#flushed(this.#fd.datasync());
      await this.#fd.close();
    }
    this.#fd = fd;
    this.#fdId = id;
    this.#size = HEADER;
    this.#allocated = HEADER;
    this.#durableEnd = HEADER;
    this.#markWritten = HEADER;
    this.#dataEnd = HEADER;
    this.#segments.push({ seq, firstIndex, name });
  }

  async #writeHardState(hard: HardState): Promise<void> {
    // `heard` (the highest commit index heard of, when above commit) and `heardEntry` (the newest
    // committed entry known past commit) ride along: readers before them ignore them.
    const body = Buffer.from(JSON.stringify({
      term: hard.term, vote: hard.vote, commit: hard.commit,
      ...(hard.heard !== undefined && hard.heard > hard.commit ? { heard: hard.heard } : {}),
      ...(hard.heardEntry !== undefined && hard.heardEntry.index > hard.commit ? { heardEntry: { index: hard.heardEntry.index, term: hard.heardEntry.term } } : {}),
    }));
    const out = Buffer.alloc(HEADER + 8 + body.length);
    HARD_MAGIC.copy(out, 0);
    out.writeUInt32BE(body.length, HEADER);
    out.writeUInt32BE(crc32c(body), HEADER + 4);
    body.copy(out, HEADER + 8);
    await this.#atomicWrite('hardstate', out, 'hardstate.beforeRename');
  }

  async #atomicWrite(name: string, bytes: Uint8Array, failpoint: FailpointName): Promise<void> {
    const tmp = join(this.dir, `${name}.tmp`);
    const fd = await fsp.open(tmp, 'w');
    try {
      await fd.write(bytes, 0, bytes.length, 0);
      await this.#flushed(fd.sync());
    } finally {
      await fd.close();
    }
    await this.#fail(failpoint);
    await fsp.rename(tmp, join(this.dir, name));
    await fsyncDir(this.dir);
  }
}

/**
 * Whether `error` is a file system refusing a write, open, rename or unlink for want of space
 * (ENOSPC, EDQUOT: 'full') or because it is mounted read-only (EROFS, as ext4 remounts itself after
 * an error: 'read-only'): the call took nothing in, so what the kernel holds is what this process
 * wrote before it, and the member may wait and read its state back from the disk. The same code
 * from an fsync or fdatasync is not: write-back failed and the kernel may have dropped pages it had
 * taken (cluster/raft/README.md, "Failures"); so is one whose call is not known (the careful side).
 * Out of file descriptors (EMFILE, ENFILE: 'descriptors') is a refusal of the same kind: the call
 * that needed a new descriptor did nothing.
 */
/** Why the storage refused a write that took nothing in (writeRefused): the member waits, fenced, and writes again once it can. */
export type StorageRefusal = 'full' | 'read-only' | 'descriptors';

export function writeRefused(error: unknown): StorageRefusal | null {
  for (let e: unknown = error, depth = 0; e instanceof Error && depth < 4; e = e.cause, depth++) {
    const { code, syscall } = e as NodeJS.ErrnoException;
    // Out of file descriptors (a new segment, snapshot or hard-state file, the directory's fsync):
    // only a call that makes a descriptor fails so, and it made none, so nothing was taken in.
    if (code === 'EMFILE' || code === 'ENFILE') return 'descriptors';
    const kind = code === 'ENOSPC' || code === 'EDQUOT' ? 'full' : code === 'EROFS' ? 'read-only' : null;
    if (kind !== null) return syscall !== undefined && SPACE_REFUSING_CALLS.has(syscall) ? kind : null;
  }
  return null;
}

/** writeRefused(error) === 'full'. */
export function isOutOfSpace(error: unknown): boolean {
  return writeRefused(error) === 'full';
}

/** The calls whose refusal leaves nothing half-taken in the page cache (writeRefused). */
const SPACE_REFUSING_CALLS = new Set(['write', 'open', 'rename', 'ftruncate', 'mkdir', 'unlink']);

// ---- encoding ------------------------------------------------------------------------------------

function pad(n: number): string {
  return String(n).padStart(16, '0');
}

function writeU64(buf: Buffer, value: number, at: number): void {
  buf.writeUInt32BE(Math.floor(value / 2 ** 32), at);
  buf.writeUInt32BE(value >>> 0, at + 4);
}

function readU64(buf: Uint8Array, at: number): number {
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  return v.getUint32(at) * 2 ** 32 + v.getUint32(at + 4);
}

export function encodeRecord(type: number, term: number, index: number, payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(RECORD_HEAD + payload.length);
  encodeRecordAt(out, 0, type, term, index, payload);
  return out;
}

function markPayload(mark: number): Buffer {
  const out = Buffer.allocUnsafe(MARK_BYTES);
  writeU64(out, mark, 0);
  return out;
}

/** Writes one record at `at` in `out` (which has room for it); returns the offset after it. */
function encodeRecordAt(out: Buffer, at: number, type: number, term: number, index: number, payload: Uint8Array): number {
  const bodyLen = 1 + 8 + 8 + payload.length;
  out.writeUInt32BE(bodyLen, at);
  out.writeUInt8(type, at + 8);
  writeU64(out, term, at + 9);
  writeU64(out, index, at + 17);
  out.set(payload, at + RECORD_HEAD);
  out.writeUInt32BE(crc32c(out.subarray(at + 8, at + 8 + bodyLen)), at + 4);
  return at + 8 + bodyLen;
}

type ScannedRecord = { type: number; term: number; index: number; payload: Uint8Array; offset: number };

export type RecordScan =
  | { ok: true; records: ScannedRecord[]; end: number; durableMark: number }
  | { ok: false; records: ScannedRecord[]; badOffset: number; problem: string; end: number; durableMark: number };

/**
 * Reads the records of one segment's bytes; stops at the first bad one. Never throws. Zeros from a
 * record boundary to the end are the prefilled space after the last record (Wal.#prefill), not
 * damage: the scan ends there cleanly (`end`: where the next record goes). `durableMark`: the
 * highest durable mark of any whole record in the segment, those after a bad one included (found
 * by trying every offset past it), so damage before it is known to be damage to fsync'd bytes.
 */
export function scanSegment(bytes: Uint8Array): RecordScan {
  const records: ScannedRecord[] = [];
  if (bytes.length < HEADER || !Buffer.from(bytes.subarray(0, HEADER)).equals(SEGMENT_MAGIC)) {
    return { ok: false, records, badOffset: 0, problem: 'not a lanha WAL segment (bad magic)', end: 0, durableMark: 0 };
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = HEADER;
  let durableMark = HEADER;
  const bad = (problem: string): RecordScan => {
    // Marks ride in commit records of one size: only those are looked for past the damage, so the
    // search sums a CRC only where a length and a type say one may start.
    const size = 8 + 17 + MARK_BYTES;
    for (let o = at + 1; o + size <= bytes.length; o++) {
      if (view.getUint32(o) !== 17 + MARK_BYTES || bytes[o + 8] !== RecordType.commit) continue;
      const r = recordAt(bytes, view, o);
      if (typeof r !== 'string') durableMark = Math.max(durableMark, markOf(r));
    }
    return { ok: false, records, badOffset: at, problem, end: at, durableMark };
  };
  while (at < bytes.length) {
    if (allZero(bytes, at)) break;
    const r = recordAt(bytes, view, at);
    if (typeof r === 'string') return bad(r);
    records.push(r);
    durableMark = Math.max(durableMark, markOf(r));
    at += RECORD_HEAD + r.payload.length;
  }
  return { ok: true, records, end: at, durableMark };
}

/** The whole record at `at`, or what is wrong with it. */
function recordAt(bytes: Uint8Array, view: DataView, at: number): ScannedRecord | string {
  if (bytes.length - at < 8) return 'record header cut short';
  const len = view.getUint32(at);
  if (len < 17 || len > RECORD_MAX) return `record length ${len} is impossible`;
  if (at + 8 + len > bytes.length) return 'record cut short';
  // Cheap tests first (a type we write, a term below 2^32) so a search past damage rarely sums a CRC.
  const type = bytes[at + 8]!;
  if (type !== RecordType.entry && type !== RecordType.config && type !== RecordType.commit) {
    return view.getUint32(at + 4) === crc32c(bytes.subarray(at + 8, at + 8 + len)) ? `unknown record type ${type}` : 'record checksum mismatch';
  }
  if (crc32c(bytes.subarray(at + 8, at + 8 + len)) !== view.getUint32(at + 4)) return 'record checksum mismatch';
  const body = bytes.subarray(at + 8, at + 8 + len);
  return { type, term: readU64(body, 1), index: readU64(body, 9), payload: body.subarray(17), offset: at };
}

/** A commit record's durable mark (0: none; records of other types, or from before marks). */
function markOf(r: ScannedRecord): number {
  return r.type === RecordType.commit && r.payload.length >= MARK_BYTES && r.offset >= readU64(r.payload, 0) ? readU64(r.payload, 0) : 0;
}

function allZero(bytes: Uint8Array, from: number): boolean {
  if (bytes[from] !== 0) return false; // the usual case: a record starts here
  for (let i = from; i < bytes.length; i++) if (bytes[i] !== 0) return false;
  return true;
}

export function encodeSnapshot(s: Snapshot): Buffer {
  const meta = Buffer.from(JSON.stringify(s.meta));
  const out = Buffer.alloc(HEADER + 12 + meta.length + s.data.length);
  SNAP_MAGIC.copy(out, 0);
  out.writeUInt32BE(meta.length, HEADER);
  out.writeUInt32BE(s.data.length, HEADER + 4);
  meta.copy(out, HEADER + 12);
  out.set(s.data, HEADER + 12 + meta.length);
  out.writeUInt32BE(crc32c(out.subarray(HEADER + 12)), HEADER + 8);
  return out;
}

export type SnapshotDecode = { ok: true; value: Snapshot } | { ok: false; offset: number; problem: string };

export function decodeSnapshot(bytes: Uint8Array): SnapshotDecode {
  if (bytes.length < HEADER + 12 || !Buffer.from(bytes.subarray(0, HEADER)).equals(SNAP_MAGIC)) return { ok: false, offset: 0, problem: 'not a lanha snapshot (bad magic or too short)' };
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const metaLen = view.getUint32(HEADER);
  const dataLen = view.getUint32(HEADER + 4);
  if (HEADER + 12 + metaLen + dataLen !== bytes.length) return { ok: false, offset: HEADER, problem: `lengths (${metaLen} + ${dataLen}) do not match the file size ${bytes.length}` };
  if (crc32c(bytes.subarray(HEADER + 12)) !== view.getUint32(HEADER + 8)) return { ok: false, offset: HEADER + 8, problem: 'checksum mismatch' };
  let meta: unknown;
  try {
    meta = JSON.parse(Buffer.from(bytes.subarray(HEADER + 12, HEADER + 12 + metaLen)).toString('utf8'));
  } catch {
    return { ok: false, offset: HEADER + 12, problem: 'metadata is not JSON' };
  }
  if (!isSnapshotMeta(meta)) return { ok: false, offset: HEADER + 12, problem: 'metadata lacks index/term/conf' };
  return { ok: true, value: { meta, data: bytes.slice(HEADER + 12 + metaLen) } };
}

function isSnapshotMeta(m: unknown): m is Snapshot['meta'] {
  if (m === null || typeof m !== 'object') return false;
  const o = m as { index?: unknown; term?: unknown; conf?: Partial<Record<keyof ConfState, unknown>> };
  const ids = (v: unknown): boolean => Array.isArray(v) && v.every((x) => typeof x === 'string');
  return Number.isSafeInteger(o.index) && Number.isSafeInteger(o.term) && typeof o.conf === 'object' && o.conf !== null
    && ids(o.conf.voters) && ids(o.conf.learners) && ids(o.conf.witnesses);
}

export function decodeHardState(bytes: Uint8Array): HardState | undefined {
  if (bytes.length < HEADER + 8 || !Buffer.from(bytes.subarray(0, HEADER)).equals(HARD_MAGIC)) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const len = view.getUint32(HEADER);
  if (HEADER + 8 + len !== bytes.length) return undefined;
  const body = bytes.subarray(HEADER + 8);
  if (crc32c(body) !== view.getUint32(HEADER + 4)) return undefined;
  try {
    const o = JSON.parse(Buffer.from(body).toString('utf8')) as { term?: unknown; vote?: unknown; commit?: unknown; heard?: unknown; heardEntry?: { index?: unknown; term?: unknown } | null };
    if (!Number.isSafeInteger(o.term) || !Number.isSafeInteger(o.commit) || !(o.vote === null || typeof o.vote === 'string')) return undefined;
    if (o.heard !== undefined && !(Number.isSafeInteger(o.heard) && (o.heard as number) >= 0)) return undefined;
    const e = o.heardEntry;
    if (e !== undefined && !(typeof e === 'object' && e !== null && Number.isSafeInteger(e.index) && Number.isSafeInteger(e.term) && (e.term as number) > 0)) return undefined;
    const hard: HardState = { term: o.term as number, vote: o.vote as string | null, commit: o.commit as number };
    if (typeof o.heard === 'number' && o.heard > hard.commit) hard.heard = o.heard;
    if (e !== undefined && (e.index as number) > hard.commit) hard.heardEntry = { index: e.index as number, term: e.term as number };
    return hard;
  } catch {
    return undefined;
  }
}

// ---- loading -------------------------------------------------------------------------------------

function listSegments(walDir: string): Segment[] {
  const out: Segment[] = [];
  for (const name of readdirSync(walDir)) {
    const m = /^(\d{16})-(\d{16})\.wal$/.exec(name);
    if (m) out.push({ seq: Number(m[1]), firstIndex: Number(m[2]), name });
  }
  return out.sort((a, b) => a.seq - b.seq);
}

/**
 * Reads hard state, snapshot and log back; cuts a torn tail of the last segment. `repair` false:
 * writes nothing (a file system that refuses writes): a torn tail or a header-only segment is read
 * up to where it is whole, and a missing directory is an empty log; damage is refused as ever.
 */
export function loadState(dir: string, repair = true): LoadedState {
  if (!repair && !exists(dir)) return { hardState: { term: 0, vote: null, commit: 0 }, entries: [], truncatedBytes: 0 };
  const hardFile = join(dir, 'hardstate');
  let hardState: HardState = { term: 0, vote: null, commit: 0 };
  if (exists(hardFile)) {
    const decoded = decodeHardState(readFileSync(hardFile));
    if (!decoded) throw new StorageError(hardFile, 0, `hard state is corrupt (bad magic, length or checksum); it is replaced atomically, so this is not a torn write; ${rebuildHint(dir)}`);
    hardState = decoded;
  }
  let snapshot: Snapshot | undefined;
  const snaps = readdirSync(dir).filter((f) => /^snapshot-\d{16}\.snap$/.test(f)).sort();
  const newest = snaps[snaps.length - 1];
  if (newest !== undefined) {
    const file = join(dir, newest);
    const decoded = decodeSnapshot(readFileSync(file));
    if (!decoded.ok) throw new StorageError(file, decoded.offset, `snapshot is corrupt: ${decoded.problem}; it is written atomically, so this is not a torn write; ${rebuildHint(dir)}`);
    snapshot = decoded.value;
  }
  const snapIndex = snapshot?.meta.index ?? 0;
  const walDir = join(dir, 'wal');
  const segments = repair || exists(walDir) ? listSegments(walDir) : [];
  const entries: Entry[] = [];
  let commit = hardState.commit;
  let truncatedBytes = 0;
  const lastIndex = (): number => (entries.length > 0 ? entries[entries.length - 1]!.index : snapIndex);
  segments.forEach((seg, i) => {
    const file = join(walDir, seg.name);
    const bytes = readFileSync(file);
    const scan = scanSegment(bytes);
    if (!scan.ok) {
      const isLast = i === segments.length - 1;
      const at = { file, offset: scan.badOffset };
      if (!isLast) throw new StorageError(file, scan.badOffset, `${scan.problem} in a segment that is not the last one: this is not a torn write; the log is damaged; ${rebuildHint(dir, at)}`);
      if (scan.badOffset < HEADER) {
        // A segment's magic is fdatasync'd before anything else is written to it: a bad one is a
        // crash while creating it only while the file holds no more than the magic would.
        if (bytes.length > HEADER) throw new StorageError(file, 0, `${scan.problem}, and the file holds ${bytes.length} bytes: the header was durable before any record was written, so this is damage, not a torn write; ${rebuildHint(dir)}`);
        if (repair) writeFileSync(file, SEGMENT_MAGIC);
      } else if (scan.badOffset < scan.durableMark) {
        throw new StorageError(file, scan.badOffset, `${scan.problem}, before offset ${scan.durableMark} that an fdatasync had made durable (a later record says so): `
          + `this is damage to acknowledged entries, not a torn write, so the log is not cut; ${rebuildHint(dir, at)}`);
      } else if (repair) {
        truncateFile(file, scan.badOffset);
      }
      truncatedBytes = bytes.length - Math.max(scan.badOffset, HEADER);
    }
    // A segment starts at its first index: anything at or after it in older segments was replaced.
    while (entries.length > 0 && entries[entries.length - 1]!.index >= seg.firstIndex) entries.pop();
    for (const r of scan.records) {
      if (r.type === RecordType.commit) {
        commit = Math.max(commit, r.index);
        continue;
      }
      if (r.index <= snapIndex) continue;
      if (r.index > lastIndex() + 1) throw new StorageError(file, r.offset, `entry ${r.index} follows entry ${lastIndex()}: a gap in the log`);
      while (entries.length > 0 && entries[entries.length - 1]!.index >= r.index) entries.pop();
      entries.push({ term: r.term, index: r.index, type: r.type === RecordType.config ? EntryType.config : EntryType.normal, data: Uint8Array.from(r.payload) });
    }
  });
  if (commit > lastIndex()) {
    throw new StorageError(walDir, 0, `the log ends at ${lastIndex()} but entries up to ${commit} were committed: durable entries are missing; ${rebuildHint(dir)}`);
  }
  const { heard, heardEntry, ...rest } = hardState;
  commit = Math.max(commit, snapIndex);
  hardState = heard !== undefined && heard > commit ? { ...rest, commit, heard } : { ...rest, commit };
  if (heardEntry !== undefined && heardEntry.index > commit) hardState.heardEntry = heardEntry;
  return snapshot ? { hardState, snapshot, entries, truncatedBytes } : { hardState, entries, truncatedBytes };
}

/** One process per state directory: a LOCK file with our pid; a dead owner's lock is taken over. */
function lockDir(dir: string): void {
  const pid = acquireDirLock(dir);
  if (pid !== null) {
    throw new StorageError(join(dir, 'LOCK'), 0, `the state directory is in use by process ${pid}; two members must never share one`);
  }
}

/** The live process that holds the Raft directory `dir` (its LOCK file names it), or undefined. */
export function lockOwner(dir: string): number | undefined {
  return lockHolder(dir);
}

function exists(file: string): boolean {
  try {
    statSync(file);
    return true;
  } catch {
    return false;
  }
}

function truncateFile(file: string, length: number): void {
  const fd = openSync(file, 'r+');
  try {
    // ftruncate through the fd, then make the cut durable before anything is appended after it.
    ftruncateSync(fd, length);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

