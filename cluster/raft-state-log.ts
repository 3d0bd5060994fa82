import { existsSync, readFileSync, statfsSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileDurablySync } from '../lib/durable-file.js';
import type { Clock } from '../lib/clock.js';
import { LogLimiter, type Logger } from '../lib/log.js';
import type { Random } from '../lib/random.js';
import { LanhaError } from '../lib/errors.js';
import { decodeCommand, encodeCommand, type Command } from './commands.js';
import { APPLY_LEVEL, EntryTooNewError, LogLevels, addedFieldLevel, unknownEntryError } from './apply-level.js';
import { stringifyInSlices } from '../lib/slices.js';
import { Fsm, type AppliedEntry, type FsmSnapshot, type ProposalTiming } from './fsm.js';
import { LogClock } from './log-time.js';
import { NotLeaderError, type StateLog, type StateLogStatus } from './state-log.js';
import type { MemberStatusChannel, MemberStatusSource } from './member-status.js';
import { Stability } from './stability.js';
import { mibText, spaceText, type DiskSpace } from './raft/status-text.js';
import type { LatencyWindow } from '../lib/latency.js';
import { RaftNode } from './raft/node.js';
import { RaftHost } from './raft/host.js';
import { Wal, failpointsFromEnv, writeRefused, loadState, lockOwner, type Failpoint, type LoadedState, type StorageRefusal, type WalOptions } from './raft/wal.js';
import { fdUsage } from '../lib/fd-exhaustion.js';
import { EntryType, type ConfState, type Entry, type Message, type NodeId, type PeerLink, type Snapshot } from './raft/types.js';
import { stopStep, type StopSteps } from '../lib/stop-steps.js';

// The durable StateLog: a RaftNode + its WAL + (in a cluster) a transport. propose() stamps the
// command with log time, appends it, and resolves once the entry is committed (fsync'd on a
// majority, just this disk in single-node mode) and applied to the Fsm here.

export interface RaftStateLogOptions {
  id: NodeId;
  dir: string;
  /** The bootstrap membership, used when the disk holds no snapshot. */
  conf: ConfState;
  clock: Clock;
  random: Random;
  log: Logger;
  tickMs?: number;
  heartbeatMs?: number;
  electionMs?: number;
  /** The random part of the election timeout (default electionMs: [E, 2E)). */
  electionSpreadMs?: number;
  /** Leader lease (default 0.9 x electionMs). */
  leaseMs?: number;
  witnessFactor?: number;
  snapshotEntries?: number;
  /** Serve services? false on a witness: it never reports itself leader to them. */
  serves?: boolean;
  link?: PeerLink;
  failpoint?: Failpoint;
  proposeTimeoutMs?: number;
  segmentBytes?: number;
  /** WAL fdatasyncs that may run at once (pipelined group commit, cluster/raft/wal.ts); default 1. */
  syncsInFlightMax?: number;
  /** The pipelined host (cluster/raft/host.ts); default on, LANHA_RAFT_PIPELINE=0 in the environment turns it off. */
  pipelined?: boolean;
  /** A storage call not returned for this long fences the member (default STORAGE_STALL_MS, cluster/raft/host.ts). */
  storageStallMs?: number;
  /**
   * A full file system (cluster/raft/README.md, "Out of space"): how often the free space is read
   * while waiting for it (default 2000 ms), how much must be free before the member reads its state
   * back and writes again (default 1 MiB), and how it is read (default statfs of `dir`).
   */
  spaceCheckMs?: number;
  spaceNeededBytes?: number;
  freeSpace?: (dir: string) => DiskSpace | null;
  /**
   * The member file, outside `dir` (moving the directory aside keeps it): says this node has been
   * a member of the cluster, or is rebuilding (cluster/raft/README.md, "Damaged storage"). Unset:
   * no rebuild detection (single node, tests).
   */
  memberFile?: string;
}

/**
 * What the member file says: this node took part in the cluster; or it lost its storage and is
 * being rebuilt; or it started with no state at all and has not yet joined a cluster's log, so it
 * cannot tell a new cluster from one that existed before its state was lost (cluster/raft/README.md,
 * "A member with no state").
 */
export type Membership = 'member' | 'rebuilding' | 'fresh';


/** statfs of `dir` (null when it cannot be read: the directory gone, say). */
export function statfsSpace(dir: string): DiskSpace | null {
  try {
    const s = statfsSync(dir);
    return { freeBytes: s.bavail * s.bsize, totalBytes: s.blocks * s.bsize };
  } catch {
    return null;
  }
}


/** The member file's state; undefined when there is none. Unreadable or strange content counts as 'member' (the careful side). */
export function readMemberFile(file: string): Membership | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    return 'member';
  }
  const first = text.trimStart();
  if (first.startsWith('rebuilding')) return 'rebuilding';
  return first.startsWith('fresh') ? 'fresh' : 'member';
}

const MEMBER_FILE_TEXT: Record<Membership, string> = {
  member: 'member\n# lanha: this node has taken part in its Raft cluster. If its raft directory is found empty, it rejoins\n# as a rebuilt member: it votes again only once a leader has caught it up (cluster/raft/README.md).\n',
  rebuilding: 'rebuilding\n# lanha: this node lost its Raft storage and is being rebuilt from its peers: it neither votes nor\n# campaigns until a leader has caught it up (cluster/raft/README.md, "Damaged storage").\n',
  fresh: 'fresh\n# lanha: this node started with no Raft state and has not joined its cluster\'s log yet. It votes only\n# while nothing shows that the cluster committed entries before it came (cluster/raft/README.md,\n# "A member with no state"). Replacing a lost member? Stop lanha and run `lanctl cluster rejoin`.\n',
};

/** Replaces the member file durably (lib/durable-file.ts). */
export function writeMemberFile(file: string, state: Membership): void {
  writeFileDurablySync(file, MEMBER_FILE_TEXT[state]);
}
const writeMember = writeMemberFile;

interface Pending {
  term: number;
  /** Monotonic ms: proposed, its batch's write started, the fdatasync covering it issued, that batch fsync'd (0: not yet). */
  proposedAt: number;
  writeAt: number;
  syncAt: number;
  persistedAt: number;
  resolve: (entry: AppliedEntry) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

const KEEP_AFTER_SNAPSHOT = 1000;

/**
 * LANHA_WAL_SYNCS_IN_FLIGHT (1-16, default 1): WAL fdatasyncs that may run at once (a tuning knob
 * for disks that overlap flushes; cluster/raft/README.md). Anything else is refused by name.
 */
export function syncsInFlightFromEnv(text = process.env['LANHA_WAL_SYNCS_IN_FLIGHT']): number {
  if (text === undefined || text.trim() === '') return 1;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > 16) throw new LanhaError('config-invalid', `LANHA_WAL_SYNCS_IN_FLIGHT: ${JSON.stringify(text)} is not a whole number from 1 to 16`);
  return n;
}

/**
 * LANHA_RAFT_PIPELINE: the pipelined group commit (cluster/raft/host.ts) is on unless this says 0
 * (the opt-out: one Ready at a time, each batch fsync'd before the next is written). 1 or unset: on.
 * Anything else is refused by name.
 */
export function pipelinedFromEnv(text = process.env['LANHA_RAFT_PIPELINE']): boolean {
  if (text === undefined || text.trim() === '' || text.trim() === '1') return true;
  if (text.trim() === '0') return false;
  throw new LanhaError('config-invalid', `LANHA_RAFT_PIPELINE: ${JSON.stringify(text)} is neither 0 (off) nor 1 (on, the default)`);
}

const roundMs = (ms: number | null): number | null => (ms === null ? null : Math.round(ms * 100) / 100);

/**
 * When this member last saw each step of an election, on its monotonic clock (null: not yet). A
 * new leader's VIP service turns them into the parts of a failover gap (services/vip/takeover.ts).
 */
export interface RaftTimeline {
  /** Last heartbeat or append from the leader of the time. */
  heardLeaderAt: number | null;
  /** Last TimeoutNow received (a planned leadership transfer to this member). */
  timeoutNowAt: number | null;
  preCandidateAt: number | null;
  candidateAt: number | null;
  leaderAt: number | null;
}

export class RaftStateLog implements StateLog {
  readonly fsm: Fsm;
  #host: RaftHost | undefined;
  readonly #levels = new LogLevels();
  #fatalListeners = new Set<(error: Error) => void>();
  #opts: RaftStateLogOptions;
  #pending = new Map<number, Pending>();
  #logClock: LogClock;
  #closed = false;
  /** StateLog.setProposalCheck: refuses a command some member cannot apply (cluster/apply-level.ts). */
  #proposalCheck: ((command: Command) => string | null) | undefined;
  /** Our own snapshot file being written (null: none), the one written and not yet compacted behind, a failed save. */
  #snapshotSave: Promise<void> | null = null;
  #snapshotSaved: Snapshot | null = null;
  #snapshotError: Error | null = null;
  /** `lanctl raft snapshot` asked for one now, whatever `snapshotEntries` says. */
  #snapshotForced = false;
  #single: boolean;
  #timeline: RaftTimeline = { heardLeaderAt: null, timeoutNowAt: null, preCandidateAt: null, candidateAt: null, leaderAt: null };
  /** When a message of each peer last arrived (monotonic ms). */
  #peerHeard = new Map<string, number>();
  #leaseListeners = new Set<() => void>();
  #extendListeners = new Set<() => void>();
  /** The lease end (in Raft ticks) last told to the extension listeners. */
  #toldLeaseEnd = -Infinity;
  #toldNode: unknown = null;
  #roleListeners = new Set<(role: string, atMs: number) => void>();
  /** The lease as isLeader() last saw it, the term it was last valid in, and its lapses (logged: raft.lease_lapsed). */
  #leaseHeld = false;
  #leaseTerm = -1;
  #leaseLapses = 0;
  readonly #stability = new Stability();
  #wasLeader = false;
  #lapseLimiter = new LogLimiter(1000);
  /** One raft.peer_lost_storage line per member a minute. */
  #lossLimiter = new LogLimiter(60_000, 1);
  /** This term's lease was seen valid (listeners were told); cleared when we stop leading. */
  #leaseSeen = false;
  /** What the member file says (undefined: none yet, or no member file in use). */
  #membership: Membership | undefined;
  /** Term and vote of the newest Ready taken: on the disk once its batch's after-batch hook runs (a change is a barrier). */
  #readyTermVote = { term: 0, vote: null as string | null };
  /** What the WAL is opened with, and the host built with: kept to open them again after a full disk. */
  #walOpts: WalOptions = {};
  #tickMs = 10;
  #pipelined = true;
  /** Out of space: since when (monotonic ms), the error, the space last read; null while writes work. */
  #full: { sinceMs: number; error: string; space: DiskSpace | null; reason: StorageRefusal } | null = null;
  /** Times the file system was found full since start (status: storage.fullCount). */
  #fullCount = 0;
  #spaceTimer: NodeJS.Timeout | undefined;
  /** The WAL of the fenced host was closed to be opened again (a failed reopen must not close it twice). */
  #walClosed = false;
  /** Started fenced (#openFenced): the owner and member files are written once the WAL opens. */
  #openedFenced = false;

  private constructor(fsm: Fsm, opts: RaftStateLogOptions) {
    this.fsm = fsm;
    this.#opts = opts;
    this.#logClock = new LogClock(opts.clock, opts.log, 'raft.clock_jump');
    this.#single = opts.conf.voters.length === 1 && opts.conf.voters[0] === opts.id && opts.conf.learners.length === 0;
  }

  static async open(opts: RaftStateLogOptions): Promise<RaftStateLog> {
    const tickMs = opts.tickMs ?? 10;
    const failpoint = opts.failpoint ?? failpointsFromEnv();
    const pipelined = opts.pipelined ?? pipelinedFromEnv();
    const walOpts = {
      ...(failpoint ? { failpoint } : {}),
      ...(opts.segmentBytes !== undefined ? { segmentBytes: opts.segmentBytes } : {}),
      syncsInFlightMax: opts.syncsInFlightMax ?? syncsInFlightFromEnv(),
      now: () => opts.clock.monotonicMs(),
    };
    if (opts.failpoint === undefined && failpoint !== undefined) {
      opts.log.warn({ event: 'raft.failpoints', failpoints: process.env['LANHA_FAILPOINTS'] }, 'LANHA_FAILPOINTS is set: faults are injected into the Raft storage (for tests only)');
    }
    if (opts.memberFile !== undefined) checkOwner(opts.dir, opts.id);
    let opened: { wal: Wal; state: LoadedState } | undefined;
    try {
      opened = await Wal.open(opts.dir, walOpts);
      if (opts.memberFile !== undefined) recordOwner(opts.dir, opts.id);
    } catch (error) {
      await opened?.wal.close().catch(() => undefined);
      const refused = writeRefused(error);
      if (refused === null) throw error;
      return RaftStateLog.#openFenced(opts, walOpts, tickMs, pipelined, error as Error);
    }
    const { wal, state } = opened;
    if (state.truncatedBytes > 0) {
      opts.log.warn({ event: 'raft.wal_torn_tail', bytes: state.truncatedBytes, dir: opts.dir }, `cut a torn tail of ${state.truncatedBytes} bytes (a write that was never fsync'd)`);
    }
    const { self, fsm } = RaftStateLog.#fromDisk(opts, state, walOpts, tickMs, pipelined);
    self.#membershipAtOpen(state);
    const host = self.#build(wal, state, tickMs, pipelined);
    const node = host.node;
    const replayTo = state.hardState.commit;
    if (opts.link) await opts.link.start((m) => self.#onMessage(m));
    host.start();
    if (self.#single) node.campaign();
    host.kick();
    // Services start on the replayed state: wait until what was committed before is applied again
    // (and, alone, until we lead and our term's first entry applied: one fsync).
    // An entry of a newer lanha among them stops the replay there, fenced, as it would at run time.
    await self.#waitFor(() => fsm.appliedIndex >= replayTo && (!self.#single || (node.role === 'leader' && node.entryTerm(fsm.appliedIndex) === node.term)), 10_000);
    const stopped = host.fenced instanceof EntryTooNewError;
    opts.log.info({ event: 'raft.opened', dir: opts.dir, term: node.term, commit: node.commitIndex, applied: fsm.appliedIndex, entries: state.entries.length, snapshot: state.snapshot?.meta.index ?? 0, ...(stopped ? { fenced: true, applyStopped: true } : {}) },
      stopped ? `raft state opened at index ${fsm.appliedIndex}: applying stopped before an entry of a newer lanha, this member starts fenced` : `raft state opened at index ${fsm.appliedIndex}`);
    return self;
  }

  /**
   * The start on a file system that refused a write (full or read-only: the LOCK, the WAL's tail, the
   * owner file): the member starts fenced, as if the disk had filled while it ran (cluster/raft/README.md,
   * "Out of space"). Its state is read without a write (loadState(dir, false)) and what was committed
   * is applied, so DNS, TFTP and NTP serve it; DHCP is silent, it neither votes nor leads, status and
   * doctor say STORAGE FULL / READ-ONLY, and it opens its WAL and writes again by itself once it can.
   * A log that cannot even be read (damage, a directory another live process holds) is refused as
   * at any start.
   */
  static async #openFenced(opts: RaftStateLogOptions, walOpts: WalOptions, tickMs: number, pipelined: boolean, refusal: Error): Promise<RaftStateLog> {
    const holder = lockOwner(opts.dir);
    if (holder !== undefined && holder !== process.pid) {
      throw new LanhaError('io', `${opts.dir} is in use by process ${holder} (its LOCK names it), and its file system refused a write (${refusal.message}); two members must never share one`);
    }
    const state = loadState(opts.dir, false);
    const { self, fsm } = RaftStateLog.#fromDisk(opts, state, walOpts, tickMs, pipelined);
    self.#openedFenced = true;
    self.#membershipAtOpen(state, false);
    // The committed entries are on the disk (and on a majority's): applied now, as a start replays
    // them. Alone, every entry of its log is: a start elects it and commits the whole log (the
    // commit record of the last batch rides the next write, which a full disk never took).
    const upTo = self.#single ? Infinity : state.hardState.commit;
    // An entry of a newer lanha stops the applying there, and that fence is the one that holds: it
    // does not lift when the disk takes writes again (cluster/apply-level.ts).
    let fence = refusal;
    try {
      self.#apply(state.entries.filter((e) => e.index <= upTo));
    } catch (error) {
      if (!(error instanceof EntryTooNewError)) throw error;
      fence = error;
    }
    self.#walClosed = true; // nothing of it opened: nothing to close
    const host = self.#build(Wal.refusing(opts.dir, state, refusal, walOpts), state, tickMs, pipelined);
    if (opts.link) await opts.link.start((m) => self.#onMessage(m));
    host.fence(fence);
    opts.log.info({ event: 'raft.opened', dir: opts.dir, term: state.hardState.term, commit: state.hardState.commit, applied: fsm.appliedIndex, entries: state.entries.length, snapshot: state.snapshot?.meta.index ?? 0, fenced: true },
      `raft state read at index ${fsm.appliedIndex} without a write (the file system refused one): this member starts fenced`);
    return self;
  }

  /** The state machine at the snapshot read from the disk, and the log around it (both kinds of open). */
  static #fromDisk(opts: RaftStateLogOptions, state: LoadedState, walOpts: WalOptions, tickMs: number, pipelined: boolean): { self: RaftStateLog; fsm: Fsm } {
    const fsm = new Fsm();
    if (state.snapshot) fsm.restore(decodeFsmSnapshot(state.snapshot.data));
    const self = new RaftStateLog(fsm, opts);
    self.#walOpts = walOpts;
    self.#tickMs = tickMs;
    self.#pipelined = pipelined;
    return { self, fsm };
  }

  /** A core and its host on `wal`, from `state` as read from the disk (at open, and to rejoin after a stall). */
  #build(wal: Wal, state: LoadedState, tickMs: number, pipelined: boolean): RaftHost {
    const opts = this.#opts;
    const node = new RaftNode({
      id: opts.id,
      electionTicks: Math.max(2, Math.round((opts.electionMs ?? 500) / tickMs)),
      heartbeatTicks: Math.max(1, Math.round((opts.heartbeatMs ?? 100) / tickMs)),
      ...(opts.electionSpreadMs === undefined ? {} : { electionSpreadTicks: Math.max(1, Math.round(opts.electionSpreadMs / tickMs)) }),
      ...(opts.leaseMs === undefined ? {} : { leaseTicks: Math.max(1, Math.floor(opts.leaseMs / tickMs)) }),
      witnessFactor: opts.witnessFactor ?? 3,
      random: opts.random,
    }, { hardState: state.hardState, conf: opts.conf, entries: state.entries, ...(state.snapshot ? { snapshot: state.snapshot } : {}), rebuilding: this.#membership === 'rebuilding', fresh: this.#membership === 'fresh' });
    this.#readyTermVote = { term: state.hardState.term, vote: state.hardState.vote };
    this.#host = new RaftHost(node, wal, {
      send: (messages) => opts.link?.send(messages),
      restore: (snapshot) => this.#restore(snapshot),
      apply: (entries) => this.#apply(entries),
      onPersisted: (entries, writeAt, doneAt, syncAt) => this.#onPersisted(entries, writeAt, doneAt, syncAt),
      onReady: (rd) => { this.#noteFresh(); if (rd.hardState) this.#readyTermVote = { term: rd.hardState.term, vote: rd.hardState.vote }; },
      afterBatch: () => { this.#noteMembership(); return this.#maybeSnapshot(); },
      onStorageError: (error, stalled) => this.#onStorageError(error, stalled),
      onStalledStorageReturned: () => void this.#rejoin(wal, tickMs, pipelined),
      onStalledStorageFailed: (error) => this.#fatal(error),
      onRoleChange: (role, atMs) => this.#onRoleChange(role, atMs),
    }, opts.clock, tickMs, pipelined, opts.storageStallMs);
    return this.#host;
  }

  /**
   * Reads the member file at start-up. A node that was a member and finds its raft directory empty
   * (moved aside after damage) is rebuilding: it has forgotten its term and vote, so it must not
   * vote until a leader has caught it up (RaftNode, RaftStorage.rebuilding). A node with no state
   * and no file is fresh: a first start, or a member whose whole state directory was lost; the file
   * says so at once, so that what it votes in this life is never mistaken, after a restart, for
   * the state of a member (RaftStorage.fresh). A fresh file with entries on the disk joined a new
   * cluster before the file could follow (#noteFresh). A node with Raft state and no file (from
   * before the file) gets one.
   */
  #membershipAtOpen(state: LoadedState, write = true): void {
    const file = this.#opts.memberFile;
    if (file === undefined || this.#single) return;
    // Fenced at start (nothing may be written): the file is written once the WAL opens (#checkSpace).
    const writeMemberFile = (path: string, what: Membership): void => { if (write) writeMember(path, what); };
    const logEmpty = state.entries.length === 0 && state.snapshot === undefined;
    const empty = state.hardState.term === 0 && logEmpty;
    this.#membership = readMemberFile(file);
    if (this.#membership === 'member' && empty) {
      this.#membership = 'rebuilding';
      writeMemberFile(file, 'rebuilding');
    } else if (this.#membership === 'fresh' && !logEmpty) {
      // Entries under a fresh file were taken in a join (evidence is written to the file before
      // anything after it is), whose term and vote went to the disk before the entries did; without
      // them, the careful side: a rebuild.
      const lastTerm = state.entries[state.entries.length - 1]?.term ?? state.snapshot?.meta.term ?? 0;
      this.#membership = state.hardState.vote !== null && state.hardState.term >= lastTerm ? 'member' : 'rebuilding';
      writeMemberFile(file, this.#membership);
    } else if (this.#membership === undefined) {
      this.#membership = empty ? 'fresh' : 'member';
      writeMemberFile(file, this.#membership);
    }
    if (this.#membership === 'fresh') {
      this.#opts.log.info({ event: 'raft.fresh', dir: this.#opts.dir, memberFile: file, term: state.hardState.term },
        `this member starts with no Raft state and no member file (${file}): a first start of a new cluster, or a member whose whole state directory was lost. `
        + 'It votes and campaigns only while nothing shows that the cluster committed entries before it came; once something does, it is rebuilt from the leader and votes again when caught up. '
        + 'Replacing a lost member: stop lanha and run `lanctl cluster rejoin` before the first start (cluster/raft/README.md, "A member with no state")');
    }
    if (this.#membership === 'rebuilding') {
      this.#opts.log.warn({ event: 'raft.rebuilding', dir: this.#opts.dir, memberFile: file },
        `this member starts without the Raft state it had (${this.#opts.dir} empty, ${file} says it was a member): it has forgotten the votes it cast, so it neither votes nor campaigns until a leader has caught it up`);
    }
  }

  /**
   * A fresh member that heard the cluster had a log before it came is rebuilding from then on: the
   * file says so at once, after the message that showed it and before any Ready is written, so no
   * entry taken after it is on the disk while the file still says fresh (at start, fresh with
   * entries is taken for a join, below).
   */
  #noteFresh(): void {
    this.#noteAmnesia();
    const file = this.#opts.memberFile;
    if (this.#membership !== 'fresh' || file === undefined || this.#single) return;
    const node = this.host.node;
    if (node.fresh || !node.rebuilding) return;
    const evidence = node.freshEvidence;
    this.#membership = 'rebuilding';
    writeMemberFile(file, 'rebuilding');
    const what = evidence === undefined ? 'a leader\'s message' : {
      'candidate-commit': `candidate ${evidence.from} (term ${evidence.term}) knows commit index ${evidence.index}`,
      'leader-commit': `leader ${evidence.from} (term ${evidence.term}) knows commit index ${evidence.index}`,
      snapshot: `leader ${evidence.from} (term ${evidence.term}) sends a snapshot (index ${evidence.index})`,
    }[evidence.why];
    this.#opts.log.warn({ event: 'raft.rebuilding', reason: 'no-state', evidence, dir: this.#opts.dir, memberFile: file },
      `this member started with no Raft state, and the cluster committed entries before it came (${what}): it may be a member whose state was lost, so it neither votes nor campaigns until a leader has caught it up`);
  }

  /**
   * A leader told this member it had acknowledged entries its log no longer holds (RaftNode.amnesia):
   * its state directory went back in time. The member file says rebuilding at once (before any Ready
   * after the message is written), so a restart keeps it from voting too; logged once per finding.
   */
  #noteAmnesia(): void {
    const amnesia = this.host.node.takeAmnesia();
    if (amnesia === undefined) return;
    const file = this.#opts.memberFile;
    if (file !== undefined && !this.#single && this.#membership !== 'rebuilding') {
      this.#membership = 'rebuilding';
      writeMemberFile(file, 'rebuilding');
    }
    const found = amnesia.divergedAt !== undefined
      ? `its entry ${amnesia.divergedAt} is of another term than the leader's (another log than the one it acknowledged)`
      : `its log ends at ${amnesia.lastIndex}`;
    this.#opts.log.error({ event: 'raft.amnesia', leader: amnesia.leader, term: amnesia.term, acked: amnesia.acked, lastIndex: amnesia.lastIndex, ...(amnesia.divergedAt !== undefined ? { divergedAt: amnesia.divergedAt } : {}), dir: this.#opts.dir },
      `this member's Raft state went back in time: ${amnesia.leader}, leader of term ${amnesia.term}, says it acknowledged entries up to ${amnesia.acked}, and ${found} (${this.#opts.dir} restored from an old backup or copied back?). `
      + `It may have voted in this term already and lost entries committed with its help, so it neither votes nor campaigns until ${amnesia.leader} has sent it past ${amnesia.acked} (raft.rebuilt). `
      + 'Never restore a member\'s Raft directory from a backup: to replace a damaged one, move it aside and start the member empty; it rebuilds from the leader (cluster/raft/README.md, "Restored from an old backup")');
  }

  /** Leader: a member answered with a log ending below what it had acknowledged (RaftNode.takePeerLosses). */
  #notePeerLosses(now: number): void {
    for (const loss of this.host.node.takePeerLosses()) {
      if (!this.#lossLimiter.allow(loss.peer, now)) continue;
      this.#opts.log.warn({ event: 'raft.peer_lost_storage', peer: loss.peer, term: loss.term, acked: loss.acked, lastIndex: loss.lastIndex },
        `${loss.peer} answered with a log ending at ${loss.lastIndex} after acknowledging index ${loss.acked}: it lost its Raft storage or it was restored from an old copy; its old acknowledgement no longer counts toward a commit, this leader sends it what it lacks, and it votes again once caught up (cluster/raft/README.md, "A member with no state", "Restored from an old backup")`);
    }
  }

  /**
   * After each batch: the member file follows what is on the disk. A fresh member joined a new
   * cluster (elected, or following a leader before anything was committed), or a rebuild is over, once
   * the core says so and what the leader had committed is applied (so durable) here, with that
   * leader's term and a vote on the disk (or a later term: that one is over).
   */
  #noteMembership(): void {
    const file = this.#opts.memberFile;
    if (file === undefined || this.#single) return;
    this.#noteFresh();
    const node = this.host.node;
    const done = node.rebuilt;
    if (this.#membership === 'member' || node.rebuilding || done === undefined) return;
    const onDisk = this.#readyTermVote;
    if (this.fsm.appliedIndex < done.index || onDisk.term < done.term || (onDisk.term === done.term && onDisk.vote === null)) return;
    const was = this.#membership;
    this.#membership = 'member';
    writeMemberFile(file, 'member');
    if (was === 'fresh') {
      this.#opts.log.info({ event: 'raft.joined', leader: done.leader, term: done.term, memberFile: file },
        `joined a new cluster: ${done.leader === this.#opts.id ? 'this member was' : `${done.leader} was`} elected leader of term ${done.term} before anything was committed; this member votes as any member`);
      return;
    }
    const hard = node.hardState();
    const votedFor = hard.term === done.term && hard.vote !== null ? hard.vote : done.leader;
    this.#opts.log.info({ event: 'raft.rebuilt', leader: done.leader, term: done.term, index: done.index, memberFile: file },
      `rebuilt: ${done.leader}, leader of term ${done.term}, caught this member up to index ${done.index}; it votes again (in term ${done.term} only for ${votedFor}, in later terms as any member)`);
  }

  /** The Raft shell in use (a new one after a rejoin). */
  get host(): RaftHost { return this.#host!; }

  isLeader(): boolean {
    this.host.catchUp();
    const node = this.host.node;
    const lease = node.role === 'leader' && node.leaseValid();
    if (node.role === 'leader' && lease !== this.#leaseHeld) this.#leaseChanged(lease);
    return !this.#closed && this.#opts.serves !== false && !this.host.fenced && node.role === 'leader' && node.transferee === null && lease;
  }

  /**
   * The leader's lease lapsed or came back within its term: a lapse is logged (rate-limited) with
   * how old each voter's newest acknowledged heartbeat was, in ms from its send: what bench:failover
   * and an operator need to tell a slow member from a slow leader.
   */
  #leaseChanged(valid: boolean): void {
    const node = this.host.node;
    this.#leaseHeld = valid;
    if (valid) { this.#leaseTerm = node.term; return; }
    if (this.#leaseTerm !== node.term) return; // not yet valid in this term: no lapse
    this.#leaseLapses++;
    if (!this.#lapseLimiter.allow('lapse', this.#opts.clock.monotonicMs())) return;
    const tickMs = this.#opts.tickMs ?? 10;
    const ages = Object.fromEntries(Object.entries(node.leaseAckAges()).map(([id, t]) => [id, t === null ? null : t * tickMs]));
    const stallMs = this.host.takeLongestStallMs();
    this.#stability.lapse(this.#opts.clock.monotonicMs(), stallMs);
    this.#opts.log.warn({ event: 'raft.lease_lapsed', term: node.term, ackAgesMs: ages, ownStallMs: stallMs, lapses: this.#leaseLapses },
      `the leader lease lapsed: no majority acknowledged a heartbeat sent within the lease (newest acknowledged, ms since its send: ${Object.entries(ages).map(([id, ms]) => `${id} ${ms ?? 'none'}`).join(', ')}; this process's longest stall since the last lapse: ${stallMs} ms)`);
  }

  setProposalCheck(check: (command: Command) => string | null): void {
    this.#proposalCheck = check;
  }

  proposalRefusal(command: Command): string | null {
    return this.#proposalCheck?.(command) ?? null;
  }

  async propose(command: Command): Promise<AppliedEntry> {
    if (this.#closed) throw new LanhaError('unavailable', 'the state log is closed');
    const refused = this.#proposalCheck?.(command) ?? null;
    if (refused !== null) throw new LanhaError('unavailable', refused);
    if (this.host.fenced) throw new LanhaError('unavailable', `this node stopped accepting writes after a storage error: ${this.host.fenced.message}`);
    if (!this.isLeader()) throw new NotLeaderError(this.host.node.leader === this.#opts.id ? null : this.host.node.leader);
    const proposedAt = this.#opts.clock.monotonicMs();
    const at = this.#logTime();
    const result = this.host.node.propose(encodeCommand({ at, by: this.#opts.id, command }));
    if (!result.ok) throw new NotLeaderError(this.host.node.leader === this.#opts.id ? null : this.host.node.leader);
    this.host.kick();
    return new Promise<AppliedEntry>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(result.index);
        reject(new LanhaError('unavailable', `entry ${result.index} was not committed within ${this.#opts.proposeTimeoutMs ?? 5000} ms (no quorum?)`));
      }, this.#opts.proposeTimeoutMs ?? 5000);
      timer.unref();
      this.#pending.set(result.index, { term: result.term, proposedAt, writeAt: 0, syncAt: 0, persistedAt: 0, resolve, reject, timer });
    });
  }

  status(): StateLogStatus {
    this.host.catchUp(); // the host feeds ticks late while nothing is due: the lease as of now
    const node = this.host.node;
    const role = node.role === 'pre-candidate' ? 'candidate' : node.role;
    return {
      mode: this.#single ? 'single-node' : 'cluster',
      role: this.#opts.serves === false ? 'witness' : role,
      leader: node.leader,
      term: node.term,
      commitIndex: node.commitIndex,
      appliedIndex: this.fsm.appliedIndex,
      lastIndex: node.lastIndex,
      snapshotIndex: node.snapshotIndex,
      // A fenced host stops ticking, so its core's lease never ages: it holds none (isLeader()).
      leaseValid: !this.host.fenced && node.leaseValid(),
      // The log holds an entry of a newer lanha: applying stopped before it (cluster/apply-level.ts).
      applyStopped: this.host.fenced instanceof EntryTooNewError ? this.host.fenced.message : null,
      // The levels the entries applied since the state was loaded need: what a rollback would be handed.
      logLevel: { spans: this.#levels.spans(), snapshotIndex: node.snapshotIndex },
      members: node.conf,
      ...(node.role === 'leader' ? { progress: node.progress() } : {}),
      ...(node.rebuilding ? { rebuilding: true } : {}),
      ...(node.rebuilding && node.amnesia !== undefined ? { amnesia: node.amnesia } : {}),
      ...(node.fresh ? { fresh: true } : {}),
      // Its log ends below a commit index it heard of: it neither stands nor votes for a log ending below it (RaftNode.heardCommit).
      ...(node.heardCommit > node.lastIndex ? { heardCommit: node.heardCommit } : {}),
      storage: {
        dir: this.#opts.dir, pipelined: this.host.pipelined, batches: this.host.stats.batches, fsyncs: this.host.stats.fsyncs, fsyncP99Ms: roundMs(this.host.wal.fsyncMs.quantile(0.99)), fsyncSamples: Math.min(this.host.wal.fsyncMs.count, this.host.wal.fsyncMs.size), error: this.host.fenced?.message ?? null,
        full: this.#full === null ? null : { forS: Math.round((this.#opts.clock.monotonicMs() - this.#full.sinceMs) / 1000), freeBytes: this.#full.space?.freeBytes ?? null, totalBytes: this.#full.space?.totalBytes ?? null, neededBytes: this.#spaceNeeded(), reason: this.#full.reason },
        fullCount: this.#fullCount,
      },
      // Known or null, never worked out here: status() is asked often (Fsm.hashSoon).
      stateHash: this.fsm.hashSoon(),
      stability: { ...this.#stability.report(this.#opts.clock.monotonicMs()), stallHolds: node.stallHolds },
      ...(this.#opts.link?.status ? { transport: this.#opts.link.status() } : {}),
    };
  }

  committedTerm(index: number): number | undefined {
    const node = this.host.node;
    return index > node.commitIndex ? undefined : node.entryTerm(index);
  }

  stateCurrent(): boolean {
    const node = this.host.node;
    return node.role === 'leader' && node.entryTerm(this.fsm.appliedIndex) === node.term;
  }

  /** Milliseconds this node may still act as leader (0 when isLeader() is false). */
  leaseRemainingMs(): number {
    return this.isLeader() ? this.host.leaseRemainingMs() : 0;
  }

  peerHeardAt(peer: string): number | null {
    return this.#peerHeard.get(peer) ?? null;
  }

  /** When this member last saw each step of an election (monotonic ms). */
  timeline(): RaftTimeline {
    return { ...this.#timeline };
  }

  /**
   * Calls `listener` as soon as a new leader's lease becomes valid (the acknowledgement of its first
   * heartbeat arrived), so the VIP is taken without waiting for its next poll. Returns unsubscribe.
   */
  onLeaseGained(listener: () => void): () => void {
    this.#leaseListeners.add(listener);
    return () => { this.#leaseListeners.delete(listener); };
  }

  /**
   * Calls `listener` whenever an acknowledgement moves this leader's lease end later (about once per
   * heartbeat round: the first answer that makes a majority), so the VIP guard's deadline follows
   * the lease as it is extended rather than on a timer. Returns unsubscribe.
   */
  onLeaseExtended(listener: () => void): () => void {
    this.#extendListeners.add(listener);
    return () => { this.#extendListeners.delete(listener); };
  }

  #onMessage(m: Message): void {
    const now = this.#opts.clock.monotonicMs();
    this.#peerHeard.set(m.from, now);
    if (m.type === 'timeout-now') this.#timeline.timeoutNowAt = now;
    else if (m.type === 'heartbeat' || m.type === 'append') this.#timeline.heardLeaderAt = now;
    this.host.step(m);
    this.#noteFresh();
    if (m.type === 'append-resp' || m.type === 'heartbeat-resp') this.#notePeerLosses(now);
    if (!this.#leaseSeen && this.host.node.role === 'leader' && this.#leaseListeners.size > 0 && this.isLeader()) {
      this.#leaseSeen = true;
      for (const listener of this.#leaseListeners) listener();
    }
    if (this.#extendListeners.size > 0 && (m.type === 'heartbeat-resp' || m.type === 'append-resp') && this.host.node.role === 'leader') {
      const node = this.host.node;
      if (this.#toldNode !== node) { this.#toldNode = node; this.#toldLeaseEnd = -Infinity; } // a rejoin counts ticks from 0
      const end = node.ticks + node.leaseRemainingTicks();
      if (node.leaseRemainingTicks() > 0 && end > this.#toldLeaseEnd) {
        this.#toldLeaseEnd = end;
        for (const listener of this.#extendListeners) listener();
      }
    }
  }

  #onRoleChange(role: string, atMs: number): void {
    if (role === 'leader' || this.#wasLeader) this.#stability.leaderChange(atMs);
    this.#wasLeader = role === 'leader';
    if (role !== 'leader') this.#leaseSeen = false;
    if (role === 'pre-candidate') this.#timeline.preCandidateAt = atMs;
    else if (role === 'candidate') this.#timeline.candidateAt = atMs;
    else if (role === 'leader') this.#timeline.leaderAt = atMs;
    for (const listener of this.#roleListeners) listener(role, atMs);
  }

  /** Calls `listener` on each role change of this member (monotonic ms), e.g. the failover probes. Returns unsubscribe. */
  onRoleChange(listener: (role: string, atMs: number) => void): () => void {
    this.#roleListeners.add(listener);
    return () => { this.#roleListeners.delete(listener); };
  }

  /** Each WAL fdatasync's duration (the last 1024), for doctor and /metrics. */
  walFsyncLatency(): LatencyWindow {
    return this.host.wal.fsyncMs;
  }

  attachMemberStatus(channel: MemberStatusChannel): void {
    this.#opts.link?.attachMemberStatus?.(channel);
    // Log time follows the quorum's wall clock (cluster/log-time.ts): the peers heard within the
    // last 3 s (a report a second), their clock minus ours.
    if (isStatusSource(channel)) this.#logClock.usePeerOffsets(() => Object.values(channel.members()).filter((m) => m.lastContactMs < 3000).map((m) => m.clockOffsetMs));
  }

  /** Hands leadership to another voter (planned failover). */
  transferLeadership(to: NodeId): boolean {
    const ok = this.host.node.transferLeadership(to);
    this.host.kick();
    return ok;
  }

  async close(steps?: StopSteps): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#spaceTimer !== undefined) clearTimeout(this.#spaceTimer);
    await stopStep(steps, 'raft.host', () => this.host.stop());
    await stopStep(steps, 'raft.links', () => this.#opts.link?.close());
    await stopStep(steps, 'raft.snapshot', () => this.#snapshotSave); // a snapshot being encoded or written finishes before the WAL closes
    if (!this.#walClosed) await stopStep(steps, 'raft.wal', () => this.host.wal.close());
    for (const [index, p] of this.#pending) {
      clearTimeout(p.timer);
      p.reject(new LanhaError('unavailable', `the state log closed before entry ${index} applied`));
    }
    this.#pending.clear();
  }

  // ---- inside the host loop ----------------------------------------------------------------------

  #apply(entries: Entry[]): void {
    for (const e of entries) {
      // After a rejoin the new core hands out again what the Fsm applied before the fence.
      if (e.index <= this.fsm.appliedIndex) continue;
      let applied: AppliedEntry;
      if (e.type === EntryType.normal && e.data.length > 0) {
        const decoded = decodeCommand(e.data);
        if (!decoded.ok) {
          // Every replica must apply the same entries; skipping one would fork the state.
          throw new EntryTooNewError(unknownEntryError(e.index, decoded.error, decoded.type ?? null));
        }
        this.fsm.apply(e.index, decoded.value);
        this.#levels.note(e.index, decoded.level, decoded.envelope === 1 && addedFieldLevel(decoded.value.command) > 0);
        applied = { index: e.index, at: Math.max(this.fsm.lastAt, decoded.value.at), ...(decoded.value.by === undefined ? {} : { by: decoded.value.by }), command: decoded.value.command };
      } else {
        // The leader's empty entry or a membership change: nothing for the Fsm but its index.
        this.fsm.apply(e.index, { at: this.fsm.lastAt, command: { type: 'noop' } });
        applied = { index: e.index, at: this.fsm.lastAt, command: { type: 'noop' } };
      }
      const p = this.#pending.get(e.index);
      if (p) {
        this.#pending.delete(e.index);
        clearTimeout(p.timer);
        if (p.term === e.term) p.resolve({ ...applied, term: e.term, timing: timingOf(p, this.#opts.clock.monotonicMs()) });
        else p.reject(new NotLeaderError(this.host.node.leader));
      }
    }
  }

  #onPersisted(entries: readonly Entry[], writeAt: number, doneAt: number, syncAt: number): void {
    if (this.#pending.size === 0) return;
    for (const e of entries) {
      const p = this.#pending.get(e.index);
      if (p) { p.writeAt = writeAt; p.syncAt = syncAt; p.persistedAt = doneAt; }
    }
  }

  #restore(snapshot: Snapshot): void {
    this.fsm.restore(decodeFsmSnapshot(snapshot.data));
    for (const [index, p] of this.#pending) {
      if (index > snapshot.meta.index) continue;
      clearTimeout(p.timer);
      p.reject(new NotLeaderError(this.host.node.leader));
      this.#pending.delete(index);
    }
  }

  /**
   * After each batch: compacts the log behind a snapshot whose file is now durable, and starts the
   * next snapshot when `snapshotEntries` entries were applied since the last. The state is encoded
   * in slices and the file written while the loop goes on committing: no proposal, so no DHCPACK,
   * waits for a snapshot (with 40,000 leases the encoding held the event loop 85-160 ms and the file
   * write the commit loop 70-170 ms, every 10,000 entries). The log is compacted only between two
   * batches, and only once the file is durable. A failed save fences the host here.
   */
  async #maybeSnapshot(): Promise<void> {
    if (this.#snapshotError !== null) {
      const error = this.#snapshotError;
      this.#snapshotError = null;
      throw error;
    }
    const node = this.host.node;
    const saved = this.#snapshotSaved;
    if (saved !== null) {
      this.#snapshotSaved = null;
      // A snapshot installed from a leader meanwhile is newer: never step back to ours.
      if (saved.meta.index > node.snapshotIndex) {
        node.compact(saved, Math.max(node.snapshotIndex + 1, saved.meta.index - KEEP_AFTER_SNAPSHOT + 1));
        this.#opts.log.info({ event: 'raft.snapshot', index: saved.meta.index, bytes: saved.data.length }, `snapshot at index ${saved.meta.index}`);
      }
    }
    const every = this.#opts.snapshotEntries ?? 10_000;
    if (this.#snapshotSave !== null) return;
    const due = this.fsm.appliedIndex - node.snapshotIndex >= every || (this.#snapshotForced && this.fsm.appliedIndex > node.snapshotIndex);
    if (!due) return;
    this.#snapshotForced = false;
    // The term and membership at this index are taken now (the core wants the applied index);
    // the state is taken now too, and sorted and encoded a slice at a time between turns of the event loop.
    const meta = node.snapshotAt(this.fsm.appliedIndex, new Uint8Array(0))?.meta;
    if (meta === undefined) return;
    this.#snapshotSave = this.fsm.snapshotInSlices().then(encodeFsmSnapshotInSlices).then(async (data) => {
      const snapshot = { meta, data };
      await this.host.wal.saveSnapshot(snapshot);
      return snapshot;
    }).then(
      (snapshot) => { this.#snapshotSaved = snapshot; },
      (error: unknown) => { this.#snapshotError = error instanceof Error ? error : new Error(String(error)); },
    ).finally(() => {
      this.#snapshotSave = null;
      this.host.kickAfterBatch(); // compact behind it now, not at the next write
    });
  }

  /**
   * A snapshot of the applied state now (`lanctl raft snapshot`), not at the next `snapshotEntries`:
   * written, and the log compacted behind it, as the periodic one is (the same path). Resolves with
   * the snapshot's index once `status().snapshotIndex` says it; at once, `taken: false`, when the
   * last snapshot is at the applied index already. Refused while the storage is fenced (a full disk,
   * no descriptors, a failed write) or closed; gives up after `timeoutMs`.
   */
  async snapshotNow(timeoutMs = 60_000): Promise<{ index: number; applied: number; taken: boolean }> {
    const refusal = (): LanhaError | null => {
      if (this.#closed) return new LanhaError('unavailable', 'the state log is closed (the daemon is stopping)');
      if (this.host.fenced) return new LanhaError('unavailable', `this node stopped accepting writes after a storage error (${this.host.fenced.message}): no snapshot can be written; lanctl status says why`);
      return null;
    };
    const refused = refusal();
    if (refused !== null) throw refused;
    const target = this.fsm.appliedIndex;
    if (this.host.node.snapshotIndex >= target) return { index: this.host.node.snapshotIndex, applied: target, taken: false };
    this.#snapshotForced = true;
    this.host.kickAfterBatch();
    const deadline = this.#opts.clock.monotonicMs() + timeoutMs;
    while (this.host.node.snapshotIndex < target) {
      const stopped = refusal();
      if (stopped !== null) throw stopped;
      if (this.#opts.clock.monotonicMs() >= deadline) throw new LanhaError('unavailable', `the snapshot at index ${target} was not on the disk within ${Math.round(timeoutMs / 1000)} s; lanctl status shows the storage`);
      await new Promise((r) => setTimeout(r, 20));
      if (this.#snapshotSave === null && this.#snapshotSaved === null && this.host.node.snapshotIndex < target) {
        this.#snapshotForced = true; // a periodic one at a lower index took the turn: ask again
        this.host.kickAfterBatch();
      }
    }
    return { index: this.host.node.snapshotIndex, applied: target, taken: true };
  }

  /** Resolves once no snapshot file is being written (tests; close() waits through the WAL). */
  async snapshotSettled(): Promise<void> {
    await this.#snapshotSave;
  }

  #onStorageError(error: Error, stalled: boolean): void {
    if (!(error instanceof EntryTooNewError)) this.#opts.log.error({ event: 'raft.storage_failed', err: error, stalled }, `storage failed, no more writes are accepted here: ${error.message}`);
    for (const [index, p] of this.#pending) {
      clearTimeout(p.timer);
      p.reject(new LanhaError('unavailable', `entry ${index} was not made durable: ${error.message}`));
    }
    this.#pending.clear();
    if (stalled) return;
    if (error instanceof EntryTooNewError) {
      // Not the disk: the log holds an entry of a newer lanha. The member stops applying there and
      // stays fenced (no vote, no lead, no DHCP), serving DNS, TFTP and NTP from what it applied,
      // until it is upgraded; a restart would only stop at the same entry again.
      this.#opts.log.error({ event: 'raft.entry_too_new', applied: this.fsm.appliedIndex, applyLevel: APPLY_LEVEL }, error.message);
      return;
    }
    const refused = writeRefused(error);
    if (refused !== null && !this.#closed) this.#waitForSpace(error, refused);
    else this.#fatal(error);
  }

  /**
   * The file system is full (a write, open or rename refused the data; cluster/raft/README.md, "Out
   * of space"). Fenced already: no proposal is acknowledged, it stops leading, DHCP is silent. The
   * process stays up, so DNS, TFTP and NTP serve on (an exit would only restart it into the same
   * full disk, dropping them every restart). Once enough space is free, the member reads its state
   * back from the disk and writes again, as after a stall.
   */
  #waitForSpace(error: Error, reason: StorageRefusal): void {
    this.#fullCount++;
    const space = this.#freeSpace();
    this.#full = { sinceMs: this.#opts.clock.monotonicMs(), error: error.message, space, reason };
    const dir = this.#opts.dir;
    if (reason === 'descriptors') {
      // A new segment, snapshot or hard-state file could not be opened: nothing was written, so
      // nothing is lost and nothing was acknowledged. Said once; it tries again every check.
      const { open, limit } = fdUsage();
      this.#opts.log.error({ event: 'raft.storage_fd_exhausted', dir, open, limit, fullCount: this.#fullCount, err: error },
        `out of file descriptors${open === null ? '' : ` (${open}${limit === null ? '' : ` of ${limit}`} open)`}, a Raft file in ${dir} could not be opened (${error.message}): this node accepts no writes (DHCP silent, DNS, TFTP and NTP serve on) and writes again by itself once it can open files; find what holds them (ls /proc/${process.pid}/fd) or raise LimitNOFILE`);
      this.#scheduleSpaceCheck();
      return;
    }
    if (reason === 'read-only') {
      this.#opts.log.error({ event: 'raft.storage_read_only', dir, fullCount: this.#fullCount, err: error },
        `the file system of ${dir} is read-only (${error.message}; ext4 remounts itself so after an error: check the kernel log): this node accepts no writes (DHCP silent, DNS, TFTP and NTP serve on) and writes again by itself once it is writable`);
      this.#scheduleSpaceCheck();
      return;
    }
    this.#opts.log.error({ event: 'raft.storage_full', dir, freeBytes: space?.freeBytes ?? null, totalBytes: space?.totalBytes ?? null, neededBytes: this.#spaceNeeded(), fullCount: this.#fullCount, err: error },
      `the file system of ${dir} is full (${spaceText(space)}; ${error.message}): this node accepts no writes (DHCP silent, DNS, TFTP and NTP serve on) and writes again by itself once ${mibText(this.#spaceNeeded())} are free`);
    this.#scheduleSpaceCheck();
  }

  #spaceNeeded(): number {
    return this.#opts.spaceNeededBytes ?? 1024 * 1024;
  }

  #freeSpace(): DiskSpace | null {
    return (this.#opts.freeSpace ?? statfsSpace)(this.#opts.dir);
  }

  #scheduleSpaceCheck(): void {
    this.#spaceTimer = setTimeout(() => { void this.#checkSpace(); }, this.#opts.spaceCheckMs ?? 2000);
  }

  /** Enough space again: a new WAL and core read back from the disk, the Fsm kept (as #rejoin). */
  async #checkSpace(): Promise<void> {
    const full = this.#full;
    if (this.#closed || full === null) return;
    const space = this.#freeSpace();
    full.space = space;
    if (full.reason === 'full' && (space === null || space.freeBytes < this.#spaceNeeded())) { this.#scheduleSpaceCheck(); return; }
    const log = this.#opts.log;
    const old = this.host;
    let opened: { wal: Wal; state: LoadedState };
    try {
      if (!this.#walClosed) {
        await old.stop();
        await this.#snapshotSave;
        await old.wal.close();
        this.#walClosed = true;
        // An fdatasync that failed meanwhile (a batch written before the disk filled) is write-back
        // lost: what the page cache shows may not be on the disk, so only a restart may read it.
        if (old.wal.syncFailed) throw new LanhaError('io', `an fdatasync in ${this.#opts.dir} failed while the file system was full: the state cannot be read back in this process`);
      }
      if (this.#closed) return;
      opened = await Wal.open(this.#opts.dir, this.#walOpts);
      // A write and an fsync before anything is acknowledged again (as after a stall).
      const fresh = opened.wal;
      await fresh.probe().catch(async (error: unknown) => { await fresh.close().catch(() => undefined); throw error; });
    } catch (error) {
      const refused = writeRefused(error);
      if (refused !== null) {
        // Read-only: tried every check, so at debug (a remount read-write is what ends it).
        if (full.reason === 'read-only' && refused === 'read-only') log.debug({ event: 'raft.storage_still_read_only', dir: this.#opts.dir, err: error }, 'still read-only');
        else if (refused === 'descriptors') log.debug({ event: 'raft.storage_still_fd_exhausted', dir: this.#opts.dir, err: error }, 'still out of file descriptors');
        else log.warn({ event: 'raft.storage_still_full', dir: this.#opts.dir, freeBytes: space?.freeBytes ?? null, err: error }, `the file system of ${this.#opts.dir} refused a write again before the Raft state could be opened (${(error as Error).message}); waiting`);
        full.reason = refused;
        this.#scheduleSpaceCheck();
        return;
      }
      this.#fatal(error instanceof Error ? error : new Error(String(error)));
      return;
    }
    if (this.#closed) { await opened.wal.close(); return; }
    if (this.#openedFenced) {
      // What a start writes beside the WAL, written now that it can be.
      try {
        if (this.#opts.memberFile !== undefined) recordOwner(this.#opts.dir, this.#opts.id);
        this.#membershipAtOpen(opened.state);
      } catch (error) {
        await opened.wal.close().catch(() => undefined);
        if (writeRefused(error) !== null) { this.#scheduleSpaceCheck(); return; }
        this.#fatal(error instanceof Error ? error : new Error(String(error)));
        return;
      }
      this.#openedFenced = false;
    }
    this.#walClosed = false;
    this.#full = null;
    this.#snapshotSaved = null;
    this.#snapshotError = null;
    const host = this.#build(opened.wal, opened.state, this.#tickMs, this.#pipelined);
    host.start();
    if (this.#single) host.node.campaign();
    host.kick();
    const returned = full.reason === 'full' ? { event: 'raft.storage_space_returned', text: `space is free again in ${this.#opts.dir} (${spaceText(space)})` }
      : full.reason === 'descriptors' ? { event: 'raft.storage_fd_recovered', text: `file descriptors are available again for ${this.#opts.dir}` }
      : { event: 'raft.storage_writable', text: `${this.#opts.dir} is writable again` };
    log.warn({ event: returned.event, dir: this.#opts.dir, freeBytes: space?.freeBytes ?? null, totalBytes: space?.totalBytes ?? null, fullForMs: Math.round(this.#opts.clock.monotonicMs() - full.sinceMs), term: host.node.term, lastIndex: host.node.lastIndex, applied: this.fsm.appliedIndex },
      `${returned.text}: the Raft state was read back from the disk at term ${host.node.term}, log up to ${host.node.lastIndex}; writes are accepted again`);
  }

  /**
   * The WAL is broken for good (a write or fdatasync failed: after an fdatasync error the kernel
   * may have dropped the pages it could not write, so nothing this process holds can be trusted).
   * Fenced already; the listeners (the daemon) end the process so that the service manager starts
   * it again from what is on the disk (systemd: Restart=on-failure). Without a listener the member
   * stays fenced until restarted.
   */
  #fatal(error: Error): void {
    if (this.#closed) return;
    this.#opts.log.fatal({ event: 'raft.storage_broken', err: error, dir: this.#opts.dir },
      `the Raft storage in ${this.#opts.dir} failed and cannot be trusted any more (${error.message}): this process must restart to read it back from the disk`);
    for (const listener of this.#fatalListeners) listener(error);
  }

  /** Calls `listener` when the storage failed for good and the process must restart. Returns unsubscribe. */
  onFatal(listener: (error: Error) => void): () => void {
    this.#fatalListeners.add(listener);
    return () => { this.#fatalListeners.delete(listener); };
  }

  /**
   * Fenced for a stall, and every stalled call has returned without an error: once a fresh write
   * and fsync succeed, the member rejoins with a new core read back from the disk, as a restart
   * would (cluster/raft/README.md, "Fenced for a stall"). Safe because the fenced member
   * acknowledged nothing it had not made durable (no vote, append answer or persisted report before
   * its fdatasync; fenced, it answered nothing at all), and a core started from the disk is one
   * Raft already tolerates: a crash and a restart. Its promises held in memory only (a heartbeat
   * answer's "no vote for another for an election timeout") are kept by the just-started rule, as
   * after a restart. It starts as a follower; a single node elects itself again.
   */
  async #rejoin(wal: Wal, tickMs: number, pipelined: boolean): Promise<void> {
    if (this.#closed) return;
    const log = this.#opts.log;
    log.warn({ event: 'raft.storage_returned', dir: this.#opts.dir }, 'the stalled storage call returned; testing the disk with a write and an fsync before rejoining');
    try {
      await this.#snapshotSave;
      await wal.probe();
    } catch (error) {
      this.#fatal(error instanceof Error ? error : new Error(String(error)));
      return;
    }
    if (this.#closed) return;
    const old = this.host;
    await old.stop();
    let state: LoadedState;
    try {
      state = loadState(this.#opts.dir);
    } catch (error) {
      this.#fatal(error instanceof Error ? error : new Error(String(error)));
      return;
    }
    this.#snapshotSaved = null;
    this.#snapshotError = null;
    const host = this.#build(wal, state, tickMs, pipelined);
    host.start();
    if (this.#single) host.node.campaign();
    host.kick();
    log.warn({ event: 'raft.rejoined', dir: this.#opts.dir, term: host.node.term, lastIndex: host.node.lastIndex, applied: this.fsm.appliedIndex },
      `storage works again: rejoined from the disk at term ${host.node.term}, log up to ${host.node.lastIndex}`);
  }

  #logTime(): number {
    return this.#logClock.stamp(this.host.node.term, this.fsm.lastAt);
  }

  logTimeMs(): number {
    return this.#logClock.now(this.host.node.term, this.fsm.lastAt);
  }

  async #waitFor(condition: () => boolean, timeoutMs: number): Promise<void> {
    const start = this.#opts.clock.monotonicMs();
    while (!condition()) {
      // Fenced for a full or read-only file system: it waits for it to take writes (#waitForSpace).
      if (this.host.fenced) {
        // ... and for an entry of a newer lanha: it stays up, fenced, as at run time (#onStorageError).
        if (this.#full !== null || this.host.fenced instanceof EntryTooNewError) return;
        throw this.host.fenced;
      }
      if (this.#opts.clock.monotonicMs() - start > timeoutMs) return;
      await new Promise((r) => setTimeout(r, 2));
    }
  }
}

/** A pending proposal's timing once applied at `nowMs` (a stage not seen, e.g. no own write yet, counts 0). */
function timingOf(p: Pending, nowMs: number): ProposalTiming {
  const writeAt = p.writeAt || nowMs;
  const persistedAt = p.persistedAt || nowMs;
  const syncAt = Math.min(persistedAt, Math.max(writeAt, p.syncAt || writeAt));
  return { queuedMs: Math.max(0, writeAt - p.proposedAt), persistMs: Math.max(0, persistedAt - writeAt), commitMs: Math.max(0, nowMs - persistedAt), syncWaitMs: syncAt - writeAt };
}

/**
 * The same bytes as encodeFsmSnapshot, made a slice of leases at a time with a turn of the event
 * loop between slices (the leases are nearly all of a DHCP site's state; fsm.ts stringifyInSlices).
 * `s` must not change meanwhile: Fsm.snapshot() returns copies.
 */
export async function encodeFsmSnapshotInSlices(s: FsmSnapshot): Promise<Uint8Array> {
  const encoder = new TextEncoder();
  const parts: Uint8Array[] = [];
  await stringifyInSlices((leases) => ({ v: 1, fsm: { ...s, leases } }), s.leases, (part) => { parts.push(encoder.encode(part)); });
  return Buffer.concat(parts);
}

export function encodeFsmSnapshot(s: FsmSnapshot): Uint8Array {
  return new TextEncoder().encode(JSON.stringify({ v: 1, fsm: s }));
}

export function decodeFsmSnapshot(bytes: Uint8Array): FsmSnapshot {
  const o = JSON.parse(new TextDecoder().decode(bytes)) as { v?: unknown; fsm?: FsmSnapshot };
  if (o.v !== 1 || !o.fsm) throw new Error('snapshot data has an unknown version');
  return o.fsm;
}

/** The state directory of the Raft member under node.stateDir. */
export function raftDir(stateDir: string): string {
  return join(stateDir, 'raft');
}

/**
 * A cluster member's Raft directory names the member it belongs to (`owner`, written at the first
 * open). A directory copied from another member would vote with that member's term and vote, and
 * count as this member's acknowledgement entries it never took: two leaders of one term, or a
 * commit lost, are then possible. So a start on another member's directory is refused, with what
 * to do. A directory from before the file is taken as this member's (the file is written then).
 */
export function checkOwner(dir: string, id: string): void {
  let owner: string;
  try {
    owner = readFileSync(join(dir, 'owner'), 'utf8').trim();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw error;
  }
  if (owner === id) return;
  throw new LanhaError('io', `${dir} holds the Raft state of member ${owner}, not of ${id} (node.name): a state directory copied from another member would vote with its votes and count its log as ${id}'s, so lanha does not start on it. `
    + `To give ${id} a new disk: move ${dir} aside (mv ${dir} ${dir}.${owner}) and start it; it rebuilds from the leader. If node.name is what is wrong, correct it`);
}

function recordOwner(dir: string, id: string): void {
  const file = join(dir, 'owner');
  if (!existsSync(file)) writeFileDurablySync(file, `${id}\n`);
}

/** The member file of a cluster member: beside its raft directory (RaftStateLogOptions.memberFile). */
export function memberFile(stateDir: string): string {
  return join(stateDir, 'raft.member');
}

function isStatusSource(channel: MemberStatusChannel): channel is MemberStatusChannel & MemberStatusSource {
  return typeof (channel as Partial<MemberStatusSource>).members === 'function';
}
