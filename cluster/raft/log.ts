import { invariant } from '../../lib/assert.js';
import type { Entry, Snapshot, SnapshotMeta } from './types.js';

// The Raft log as the core sees it: every entry after the last snapshot, in memory (lanha's state is
// a few MB), with four marks: `stabled` (persisted by the host), `inProgress` (handed to the host
// for writing, >= stabled), `committed` and `applied`. Entries above `inProgress` are the tail the
// next Ready hands to the host; a pipelining host takes it while earlier writes are still syncing.

export class RaftLog {
  /** entries[i] has index snapIndex + 1 + i. */
  #entries: Entry[] = [];
  #snapIndex = 0;
  #snapTerm = 0;
  /** A snapshot received from the leader and not yet persisted by the host. */
  pendingSnapshot: Snapshot | undefined;
  stabled = 0;
  /** The last index handed to the host in a Ready it accepted; entries up to here are being written or written. */
  inProgress = 0;
  committed = 0;
  applied = 0;

  /** Loads what the host read from disk: everything given is already stable. */
  static restore(snapshot: SnapshotMeta | undefined, entries: readonly Entry[], commit: number): RaftLog {
    const log = new RaftLog();
    if (snapshot) {
      log.#snapIndex = snapshot.index;
      log.#snapTerm = snapshot.term;
    }
    for (const e of entries) {
      if (e.index <= log.#snapIndex) continue;
      invariant(e.index === log.lastIndex() + 1, `restored log has a gap before index ${e.index}`);
      log.#entries.push(e);
    }
    log.stabled = log.lastIndex();
    log.inProgress = log.stabled;
    log.committed = Math.max(log.#snapIndex, Math.min(commit, log.lastIndex()));
    log.applied = log.#snapIndex;
    return log;
  }

  get snapIndex(): number { return this.#snapIndex; }
  get snapTerm(): number { return this.#snapTerm; }
  firstIndex(): number { return this.#snapIndex + 1; }
  lastIndex(): number { return this.#snapIndex + this.#entries.length; }
  lastTerm(): number { return this.term(this.lastIndex()) ?? 0; }

  /** The term of an index, or undefined when it is compacted away or beyond the end. */
  term(index: number): number | undefined {
    if (index === this.#snapIndex) return this.#snapTerm;
    if (index < this.#snapIndex || index > this.lastIndex()) return undefined;
    return this.#entries[index - this.#snapIndex - 1]!.term;
  }

  matchTerm(index: number, term: number): boolean {
    return this.term(index) === term;
  }

  /** Entries in [lo, hi), or undefined if lo is compacted. */
  slice(lo: number, hi: number, maxCount = Infinity): Entry[] | undefined {
    if (lo <= this.#snapIndex) return undefined;
    const end = Math.min(hi, this.lastIndex() + 1, lo + maxCount);
    if (end <= lo) return [];
    return this.#entries.slice(lo - this.#snapIndex - 1, end - this.#snapIndex - 1);
  }

  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const myTerm = this.lastTerm();
    return lastTerm > myTerm || (lastTerm === myTerm && lastIndex >= this.lastIndex());
  }

  append(entries: readonly Entry[]): void {
    for (const e of entries) {
      invariant(e.index === this.lastIndex() + 1, `append at ${e.index} after ${this.lastIndex()}`);
      this.#entries.push(e);
    }
  }

  /**
   * The follower side of AppendEntries: skips entries already present, truncates at the first
   * conflict and appends the rest. Returns the new last index of the matched prefix.
   */
  maybeAppend(prevIndex: number, entries: readonly Entry[]): number {
    for (const e of entries) {
      if (e.index <= this.#snapIndex) continue;
      const have = this.term(e.index);
      if (have === e.term) continue;
      if (have !== undefined) {
        invariant(e.index > this.committed, `conflict at committed index ${e.index}`);
        this.#entries.length = e.index - this.#snapIndex - 1;
        if (this.stabled >= e.index) this.stabled = e.index - 1;
        // A write of the replaced entries may still be under way: they go out again, and its
        // persisted report no longer matches their term (ignored).
        if (this.inProgress >= e.index) this.inProgress = e.index - 1;
      }
      this.append([e]);
    }
    return entries.length === 0 ? prevIndex : Math.max(prevIndex, entries[entries.length - 1]!.index);
  }

  commitTo(index: number): boolean {
    if (index <= this.committed) return false;
    invariant(index <= this.lastIndex(), `commit ${index} beyond last index ${this.lastIndex()}`);
    this.committed = index;
    return true;
  }

  /** Entries not yet handed to the host for writing. */
  unstable(): Entry[] {
    return this.#entries.slice(Math.max(this.stabled, this.inProgress) - this.#snapIndex);
  }

  /** Committed, persisted and not yet applied. */
  nextCommitted(maxCount = 4096): Entry[] {
    const hi = Math.min(this.committed, this.stabled);
    if (hi <= this.applied) return [];
    return this.slice(this.applied + 1, hi + 1, maxCount) ?? [];
  }

  /** Drops entries up to `index` (covered by a snapshot the host has saved). */
  compact(index: number, term: number): void {
    invariant(index <= this.applied, `compact ${index} beyond applied ${this.applied}`);
    if (index <= this.#snapIndex) return;
    this.#entries = this.#entries.slice(index - this.#snapIndex);
    this.#snapIndex = index;
    this.#snapTerm = term;
  }

  /** A snapshot from the leader replaces the whole log (the caller checked it is newer than commit). */
  restoreSnapshot(snapshot: Snapshot): void {
    this.#entries = [];
    this.#snapIndex = snapshot.meta.index;
    this.#snapTerm = snapshot.meta.term;
    this.stabled = snapshot.meta.index;
    this.inProgress = snapshot.meta.index;
    this.committed = snapshot.meta.index;
    this.applied = snapshot.meta.index;
    this.pendingSnapshot = snapshot;
  }
}
