import { timerDelayMs, type Clock } from '../../lib/clock.js';
import { LanhaError } from '../../lib/errors.js';
import type { RaftNode } from './node.js';
import type { Wal } from './wal.js';
import type { Entry, Message, Ready, Role, Snapshot } from './types.js';

// The shell around one RaftNode: a timer turns monotonic time into ticks, and one loop at a time
// drains Ready batches. The timer sleeps until the next tick that does something (RaftNode.ticksUntilDue:
// a heartbeat, an election timeout, a quorum check) instead of waking every tick: the ticks in
// between only count, and are fed late, in one batch, before every message and every read of the
// lease (catchUp), so the core sees the same tick count at every step as with a timer per tick. An
// idle follower wakes once per election timeout instead of 100 times a second (bench:idle).
// While a storage call is outstanding it wakes every tick again: the stall check runs from it.
//
//   apply what is committed, write, accept; later, in write order: durable -> send answers, persisted
//
// Pipelined group commit (etcd's async storage writes; the RaftStateLog builds its host pipelined
// unless LANHA_RAFT_PIPELINE=0): a Ready's entries are written to the page
// cache at once and the core is told they are in progress (accept), so the next Ready, the proposals
// that arrived meanwhile, is written while this one's fdatasync runs, and its fdatasync issued as
// soon as one returns (cluster/raft/wal.ts: Wal.begin). Only once an fdatasync that covers a batch
// completed, after every earlier batch's, are its entries reported persisted (a leader's own log
// counts toward the commit from then) and its answers sent: a vote or an append acknowledgement sent
// before its fsync could be forgotten by a crash, and the cluster would count a vote or a copy that
// no longer exists. A Ready that changes term or vote, or installs a snapshot, is a barrier: it waits
// for every batch before it and is durable before the loop takes the next.
//
// Committed entries are applied before their Ready is written: they are on our disk already (the
// core hands out only entries up to the persisted index) and on a majority's. A leader whose term
// and vote are on disk sends its appends and heartbeats before its own fsync (thesis 10.2.1), so
// follower and leader disks work in parallel.

export interface HostHooks {
  send(messages: Message[]): void;
  /** Restore the state machine from a snapshot received from the leader (already saved to disk). */
  restore(snapshot: Snapshot): void;
  apply(entries: Entry[]): void;
  /** After a batch: a chance to take a snapshot (runs inside the loop, never concurrently with a save). */
  afterBatch?(): Promise<void>;
  /**
   * The member is fenced: it must stop accepting writes. `stalled`: a storage call has not returned
   * for the stall limit (it may still return: onStalledStorageReturned); otherwise a call failed, or
   * applying or the after-batch hook did, for good.
   */
  onStorageError(error: Error, stalled: boolean): void;
  /** Fenced for a stall, and every storage call watched has now returned, none with an error. */
  onStalledStorageReturned?(): void;
  /** Fenced for a stall, and the stalled call then failed: the WAL is broken for good. */
  onStalledStorageFailed?(error: Error): void;
  onReady?(rd: Ready): void;
  /**
   * A batch of entries is on our disk: its write started at `writeAt`, the fdatasync that covered
   * it was issued at `syncAt` (later than writeAt while it waited for the one in flight) and it was
   * fsync'd at `doneAt` (monotonic ms).
   */
  onPersisted?(entries: readonly Entry[], writeAt: number, doneAt: number, syncAt: number): void;
  /** The core's role changed (after a tick or a message): when, on the host's monotonic clock. */
  onRoleChange?(role: Role, atMs: number): void;
}

/** The longest the timer sleeps (a member with no tick due wakes this often to bring its count up to the clock). */
const SLEEP_TICKS_MAX = 500;

/** Batches written but not yet durable before the loop waits (each is one Ready: a turn's worth of proposals). */
const BATCHES_IN_FLIGHT_MAX = 64;

/**
 * A write or fdatasync that has not returned for this long fences the member. A hung disk never
 * fails a call; meanwhile heartbeats (sent outside the Ready) kept the leader lease and the VIP
 * while no proposal could commit: every DHCPACK waited forever. Fenced, the member stops ticking
 * and answering, so another one leads. Far above a slow SD card's fdatasync (seconds at worst).
 */
export const STORAGE_STALL_MS = 15_000;

export class RaftHost {
  readonly node: RaftNode;
  readonly wal: Wal;
  #hooks: HostHooks;
  #clock: Clock;
  #tickMs: number;
  #timer: NodeJS.Timeout | undefined;
  #started = false;
  /** When the armed timer is due (monotonic ms), or null when none is armed. */
  #dueAt: number | null = null;
  #lastTickAt = 0;
  #running: Promise<void> | undefined;
  #scheduled = false;
  #stopped = false;
  #fenced: Error | undefined;
  /** The fence is for a stall (a storage call not returned), not an error. */
  #fencedByStall = false;
  #unwatchBroken: () => void;
  #persistedTerm: number;
  #persistedVote: string | null;
  #batches = 0;
  #role: Role;
  #longestStallMs = 0;
  /** Batches written whose fdatasync has not completed yet, and the promise of the last one's report. */
  #inFlight = 0;
  #persistTail: Promise<void> = Promise.resolve();
  #pipelined: boolean;
  /** kickAfterBatch() asked for the after-batch hook, and no batch has run it since. */
  #afterBatchDue = false;
  /** Storage calls not returned yet: id -> monotonic ms at their start (oldest first). */
  #storageWaits = new Map<number, number>();
  #storageWaitId = 0;
  /** The storage call a timer run found past the limit; fenced only if the next run still finds it. */
  #storageSuspect = 0;
  #storageStallMs: number;

  /**
   * `pipelined`: take the next Ready while the last one's fdatasync runs (cluster/raft/README.md,
   * "Group commit, pipelined"). false here (a bare host, the tests' one-Ready-at-a-time twin); the
   * RaftStateLog passes true unless LANHA_RAFT_PIPELINE=0.
   */
  constructor(node: RaftNode, wal: Wal, hooks: HostHooks, clock: Clock, tickMs: number, pipelined = false, storageStallMs = STORAGE_STALL_MS) {
    this.#pipelined = pipelined;
    this.#storageStallMs = storageStallMs;
    this.node = node;
    this.wal = wal;
    this.#hooks = hooks;
    this.#clock = clock;
    this.#tickMs = tickMs;
    // A write no batch waits for (the WAL's quiet-spell mark) that fails fences the member too.
    this.#unwatchBroken = wal.onBroken((error) => this.#fence(error));
    const hs = node.hardState();
    this.#persistedTerm = hs.term;
    this.#persistedVote = hs.vote;
    this.#role = node.role;
  }

  get fenced(): Error | undefined { return this.#fenced; }

  /** Fences the member for `error` from outside the loop (a start on storage that refused a write), as a failed write would. */
  fence(error: Error): void {
    this.#fence(error);
  }
  /** Built pipelined (the next Ready is written while the last one's fdatasync runs). */
  get pipelined(): boolean { return this.#pipelined; }
  get stats(): { batches: number; fsyncs: number } { return { batches: this.#batches, fsyncs: this.wal.syncCount }; }

  start(): void {
    this.#lastTickAt = this.#clock.monotonicMs();
    this.#started = true;
    this.kick();
  }

  /**
   * Arms the timer for the next tick that does something (or the next tick while a storage call is
   * outstanding), unless one is armed for that time or earlier. Called after everything that can
   * change the core's timers: a tick, a message, a Ready drained, a kick.
   */
  #arm(): void {
    if (!this.#started || this.#stopped || this.#fenced) return;
    const ticks = this.#storageWaits.size > 0 ? 1 : Math.min(SLEEP_TICKS_MAX, this.node.ticksUntilDue());
    const dueAt = this.#lastTickAt + ticks * this.#tickMs;
    if (this.#dueAt !== null && this.#dueAt <= dueAt) return;
    if (this.#timer) clearTimeout(this.#timer);
    this.#dueAt = dueAt;
    // Not early (timerDelayMs): an early wake finds the tick not yet counted and sleeps again.
    this.#timer = setTimeout(() => this.#onDue(), timerDelayMs(dueAt, this.#clock.monotonicMs()));
    this.#timer.unref();
  }

  #onDue(): void {
    const now = this.#clock.monotonicMs();
    const lateMs = this.#dueAt === null ? 0 : Math.max(0, now - this.#dueAt);
    this.#longestStallMs = Math.max(this.#longestStallMs, lateMs);
    this.#dueAt = null;
    this.#timer = undefined;
    if (!this.#storageStalled(now)) this.#onTimer(lateMs);
    this.#arm();
  }

  /** Something changed in the core: drain its Ready soon (batched with whatever else arrives this turn). */
  kick(): void {
    this.#arm();
    // Fenced, the loop does nothing more (a new host takes over on rejoin): rescheduling it for the
    // Ready it left would spin the event loop for as long as the fence lasts.
    if (this.#stopped || this.#fenced || this.#scheduled || this.#running) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      if (!this.#running) this.#startLoop();
    });
  }

  /**
   * Drains the Ready now, in this turn, when no loop runs: a batch just became durable, so what it
   * committed is applied (and the proposals it answers, a DHCPACK, resume) before the event loop
   * takes the requests that arrived meanwhile. Through kick() the loop waited for the next check
   * phase, behind every datagram of the poll phase in progress: under load that was the ACK's
   * `commit` stage p99 of 13-22 ms (services/dhcp/README.md). A kick() already scheduled finds
   * the loop running or nothing to do.
   */
  #drainNow(): void {
    if (this.#stopped || this.#fenced || this.#running) return;
    if (!this.node.hasReady() && !this.#afterBatchDue) return;
    this.#startLoop();
  }

  #startLoop(): void {
    this.#running = this.#loop().finally(() => { this.#running = undefined; this.#arm(); if (this.node.hasReady() || this.#afterBatchDue) this.kick(); });
  }

  /**
   * Runs the after-batch hook soon even if the core has nothing to write: work finished beside the
   * loop (a snapshot file now durable, to compact behind) must not wait for the next write. Heartbeats
   * leave outside the Ready (takeHeartbeats), so an idle cluster may write nothing for hours.
   */
  kickAfterBatch(): void {
    this.#afterBatchDue = true;
    this.kick();
  }

  step(m: Message): void {
    if (this.#stopped || this.#fenced) return;
    this.#onTimer(); // the core's tick count up to the clock first (a heartbeat resets what it counted)
    this.node.step(m);
    this.#sendHeartbeats();
    this.#noticeRole();
    this.kick();
  }

  /**
   * Heartbeats and their answers go out at once, not behind the WAL write or fsync the loop may be
   * waiting for (RaftNode.takeHeartbeats says why that is safe): the leader lease counts from a
   * heartbeat's send tick, so every millisecond an answer waits is a millisecond less of lease.
   */
  #sendHeartbeats(): void {
    const out = this.node.takeHeartbeats(this.#persistedTerm);
    if (out.length > 0) this.#hooks.send(out);
  }

  #noticeRole(): void {
    if (this.node.role === this.#role) return;
    this.#role = this.node.role;
    this.#hooks.onRoleChange?.(this.#role, this.#clock.monotonicMs());
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#unwatchBroken();
    if (this.#timer) clearTimeout(this.#timer);
    await this.#running;
    await this.#persistTail;
  }

  /** Resolves once the current loop (if any) has finished a batch cycle. */
  async idle(): Promise<void> {
    while (this.#running || this.#scheduled || this.#inFlight > 0) await (this.#running ?? (this.#inFlight > 0 ? this.#persistTail : new Promise((r) => setImmediate(r))));
  }

  /**
   * Milliseconds left of the leader lease (0 when none): the lease ends when the core's tick count
   * reaches its end, and the next tick is due one tick after the last one counted.
   */
  leaseRemainingMs(): number {
    this.#onTimer();
    const ticks = this.node.leaseRemainingTicks();
    if (ticks <= 0) return 0;
    return Math.max(0, ticks * this.#tickMs - (this.#clock.monotonicMs() - this.#lastTickAt));
  }

  /** The longest this host's timer ran late since the last call (ms past the tick it was armed for): the event loop's stalls. */
  takeLongestStallMs(): number {
    const ms = this.#longestStallMs;
    this.#longestStallMs = 0;
    return Math.round(ms);
  }

  /** Brings the core's ticks up to the clock (the lease must never look younger than it is). */
  catchUp(): void {
    this.#onTimer();
  }

  /**
   * Feeds the core the ticks elapsed since the last ones counted. `lateMs`: how late the armed timer
   * runs (by default as of now: from a message or a read, the timer has not run yet). Ticks are
   * elapsed time (a sleeping timer's, or a stalled event loop's), and the lease must age with it;
   * but time the timer ran late is time this process did not run, so what its peers sent meanwhile
   * may still wait unread in the sockets, to be stepped after this catch-up: the core holds the
   * timeouts that would read that time as their silence (RaftNode.catchUp) until it has been.
   */
  #onTimer(lateMs?: number): void {
    if (this.#fenced || this.#stopped || !this.#started) return;
    const now = this.#clock.monotonicMs();
    let n = Math.floor((now - this.#lastTickAt) / this.#tickMs);
    if (n <= 0) return;
    const late = lateMs ?? (this.#dueAt !== null && now > this.#dueAt ? now - this.#dueAt : 0);
    this.#longestStallMs = Math.max(this.#longestStallMs, late);
    this.#lastTickAt += n * this.#tickMs;
    if (n > 1000) n = 1000;
    this.node.catchUp(n, Math.floor(late / this.#tickMs));
    this.#sendHeartbeats();
    this.#noticeRole();
    if (this.node.hasReady()) this.kick();
  }

  /**
   * Whether the oldest storage call has not returned for `storageStallMs` (then the member is
   * fenced). Only from the tick timer, and only when two runs in a row find the same call: an
   * event loop that stalled itself (the machine starved) runs the timer before the completions
   * that piled up meanwhile, and a call that did return is then done by the next run.
   */
  #storageStalled(now: number): boolean {
    if (this.#fenced || this.#stopped) return false;
    const oldest = this.#storageWaits.entries().next();
    if (oldest.done === true || now - oldest.value[1] < this.#storageStallMs) { this.#storageSuspect = 0; return false; }
    if (this.#storageSuspect !== oldest.value[0]) { this.#storageSuspect = oldest.value[0]; return false; }
    this.#fence(new LanhaError('io', `storage stalled: a WAL write or fdatasync in ${this.wal.dir} has not returned for ${Math.round(now - oldest.value[1])} ms `
      + `(limit ${this.#storageStallMs} ms); this member stopped so that another can lead; it rejoins once the call returns and a test write and fsync succeed, `
      + 'and exits (for the service manager to restart it) if the call fails'), true);
    return true;
  }

  /**
   * Marks a storage call in progress until `done` settles (watched by the tick timer). Once fenced
   * for a stall, the last call to return says what happened: all returned well, or one failed.
   */
  #watchStorage<T>(done: Promise<T>): Promise<T> {
    const id = ++this.#storageWaitId;
    this.#storageWaits.set(id, this.#clock.monotonicMs());
    this.#arm(); // the stall check runs from the timer: every tick while a call is out
    const end = (error?: unknown): void => {
      this.#storageWaits.delete(id);
      if (!this.#fencedByStall) return;
      if (error !== undefined || this.wal.broken) {
        this.#fencedByStall = false; // reported once: the WAL is broken for good
        this.#hooks.onStalledStorageFailed?.(this.wal.broken ?? (error instanceof Error ? error : new Error(String(error))));
      } else if (this.#storageWaits.size === 0) {
        this.#fencedByStall = false;
        this.#hooks.onStalledStorageReturned?.();
      }
    };
    done.then(() => end(), (error: unknown) => end(error ?? new Error('storage call failed')));
    return done;
  }

  async #loop(): Promise<void> {
    while (!this.#stopped && !this.#fenced && this.node.hasReady()) {
      if (this.#inFlight >= BATCHES_IN_FLIGHT_MAX) {
        await this.#persistTail;
        continue;
      }
      const rd = this.node.ready();
      this.#hooks.onReady?.(rd);
      const termVoteOnDisk = !rd.hardState || (rd.hardState.term === this.#persistedTerm && rd.hardState.vote === this.#persistedVote);
      // A new term or vote, or a snapshot from the leader, goes to disk only after every batch
      // written before it is durable, and nothing after it is written until it is (a barrier).
      const barrier = !this.#pipelined || !termVoteOnDisk || rd.snapshot !== undefined;
      if (barrier && this.#inFlight > 0) {
        await this.#persistTail;
        if (this.#fenced) return;
      }
      let early: Message[] = [];
      let late = rd.messages;
      if (this.node.role === 'leader' && termVoteOnDisk) {
        early = rd.messages.filter((m) => m.type === 'append' || m.type === 'heartbeat' || m.type === 'snapshot');
        late = rd.messages.filter((m) => !(m.type === 'append' || m.type === 'heartbeat' || m.type === 'snapshot'));
        if (early.length > 0) this.#hooks.send(early);
      }
      // Committed entries are on our disk already (the core hands out only entries up to the
      // persisted index) and on a majority's: without a snapshot to install first, they are applied
      // before this batch is written, so the proposals they answer (a DHCPACK) run while its fsync does.
      const applyFirst = rd.snapshot === undefined;
      if (applyFirst && !this.#apply(rd)) return;
      let durable: Promise<number>;
      const writeAt = this.#clock.monotonicMs();
      try {
        if (rd.snapshot) {
          await this.#watchStorage(this.wal.saveSnapshot(rd.snapshot, true));
          if (this.#fenced) return;
          this.#hooks.restore(rd.snapshot);
        }
        ({ durable } = await this.#watchStorage(this.wal.begin(rd.hardState, rd.entries, rd.mustSync)));
      } catch (error) {
        this.#fence(error instanceof Error ? error : new Error(String(error)));
        return;
      }
      if (this.#fenced) return; // fenced while the write ran (a stall, or an earlier batch's fsync failed)
      // begin() wrote a new term or vote to its own file and fsync'd it before resolving.
      if (rd.hardState) {
        this.#persistedTerm = rd.hardState.term;
        this.#persistedVote = rd.hardState.vote;
      }
      if (barrier) {
        let syncAt: number;
        try {
          syncAt = await this.#watchStorage(durable);
        } catch (error) {
          this.#fence(error instanceof Error ? error : new Error(String(error)));
          return;
        }
        if (this.#fenced) return;
        if (rd.entries.length > 0) this.#hooks.onPersisted?.(rd.entries, writeAt, this.#clock.monotonicMs(), Math.max(writeAt, syncAt));
        if (late.length > 0) this.#hooks.send(late);
        if (!applyFirst && !this.#apply(rd)) return;
        this.node.advance(rd);
      } else {
        // Pipelined: the core hands out what comes next at once (the next batch is written while
        // this one's fdatasync runs); this one's entries count as ours, and its answers (a
        // follower's append acknowledgement) go out, only once durable, in write order.
        this.node.accept(rd);
        this.#pipeline(rd, durable, late, writeAt);
      }
      this.#batches++;
      if (!await this.#afterBatch()) return;
    }
    if (this.#afterBatchDue && !this.#stopped && !this.#fenced) await this.#afterBatch();
  }

  /** The after-batch hook (false, and fenced, when it failed). */
  async #afterBatch(): Promise<boolean> {
    this.#afterBatchDue = false;
    if (!this.#hooks.afterBatch) return true;
    try {
      await this.#hooks.afterBatch();
      return true;
    } catch (error) {
      this.#fence(error instanceof Error ? error : new Error(String(error)));
      return false;
    }
  }

  /** Once `durable` (and every earlier batch) resolved: report the entries persisted, send the answers. */
  #pipeline(rd: Ready, durable: Promise<number>, late: Message[], writeAt: number): void {
    this.#inFlight++;
    const last = rd.entries[rd.entries.length - 1];
    const done = Promise.all([this.#persistTail, this.#watchStorage(durable)]).then(([, syncAt]) => {
      this.#inFlight--;
      if (this.#fenced) return;
      if (rd.entries.length > 0) this.#hooks.onPersisted?.(rd.entries, writeAt, this.#clock.monotonicMs(), Math.max(writeAt, syncAt));
      if (late.length > 0) this.#hooks.send(late);
      if (last) this.node.persisted(last.index, last.term);
      this.#drainNow();
    }, (error: unknown) => {
      this.#inFlight--;
      this.#fence(error instanceof Error ? error : new Error(String(error)));
    });
    this.#persistTail = done;
  }

  /** Applies the Ready's committed entries; false (and fenced) when applying failed. */
  #apply(rd: Ready): boolean {
    try {
      if (rd.committedEntries.length > 0) this.#hooks.apply(rd.committedEntries);
      return true;
    } catch (error) {
      this.#fence(error instanceof Error ? error : new Error(String(error)));
      return false;
    }
  }

  #fence(error: Error, stalled = false): void {
    if (this.#fenced) return;
    this.#fenced = error;
    this.#fencedByStall = stalled;
    if (this.#timer) clearTimeout(this.#timer);
    this.#hooks.onStorageError(error, stalled);
  }
}
