import { seededRandom, type Random } from '../../lib/random.js';
import { RaftNode } from '../../cluster/raft/node.js';
import { auditAcks, type AckRecord } from '../../cluster/ack-audit.js';
import { EntryType, type ConfState, type Entry, type HardState, type Message, type NodeId, type Ready, type Snapshot } from '../../cluster/raft/types.js';

// A deterministic simulation of a whole cluster of real RaftNode cores: a seeded network (delay,
// loss, duplication, reorder, symmetric and one-way partitions), disks (fsync latency, a crash
// drops the unsynced part of a batch, possibly keeping a torn prefix of it), crash/restart, pause,
// and clock drift, and lost storage: a member restarted with an empty disk (its directory moved
// aside after damage) rejoins as a rebuilding member (RaftStorage.rebuilding); one that lost its
// whole state directory, member file too, starts as a fresh one (RaftStorage.fresh), as every
// member does at the start of the run: one loss at a time, the next only once every member has
// joined again. Two hosts: one Ready at a time (persist, then advance), or pipelined like
// cluster/raft/host.ts (accept a Ready, write it, take the next while its fsync runs, report each
// persisted in order; a term/vote change or a snapshot waits for the batches before it), where a crash
// keeps any prefix of the entries of every batch not yet synced. Pauses are stalls of a member's own
// process (its timer and its reads stop; what arrives waits), one member at a time or every member at
// once (a loaded machine running them all); on resuming, the host catches up the ticks it missed
// (RaftNode.catchUp: the lease ages, the timeouts the stall reached wait for what arrived meanwhile)
// and then steps what waited. After every event it checks the Raft safety properties, and after each
// resume that a leader's lease did not outlive the stall; at the end it heals every fault and
// requires a leader and full convergence within a bounded time.
//
// Everything comes from one seed, so a failure replays exactly with LANHA_SEED=<seed>.

const TICK_MS = 50;
const ELECTION_TICKS = 10;
const HEARTBEAT_TICKS = 2;
/** RaftNode's default lease: 0.9 x the election timeout. */
const LEASE_TICKS = Math.floor(ELECTION_TICKS * 0.9);

export interface SimReport {
  seed: number;
  violations: string[];
  events: number;
  elections: number;
  committed: number;
  acked: number;
  /** Acknowledged entries the ACK audit (cluster/ack-audit.ts) found in a member's committed log, summed over members. */
  audited: number;
  crashes: number;
  /** Restarts with the storage lost (rebuilt members), the whole state directory included or not. */
  wipes: number;
  /** Restarts on a state directory restored from an older copy (SimOptions.backups). */
  restores: number;
  /** Of those, restarts with the whole state directory lost (member file too: a fresh start). */
  wholeWipes: number;
  snapshotsSent: number;
  healedLeaderMs: number;
  /** Stalls of a member's own process (a pause of one member, or of every member at once, counts once). */
  stalls: number;
  /**
   * faults 'stalls': per kind of stall (`leader`, `follower`, `all`) and length (`short`: under two
   * election timeouts, the longest a follower may wait; `long`), the stalls and the elections that
   * followed them (before the next stall).
   */
  stallElections: Record<string, { stalls: number; elections: number }>;
  /** RaftNode.stallHolds summed over the members' cores. */
  stallHolds: { held: number; averted: number };
  trace: string[];
}

interface Disk {
  hard: HardState;
  snapshot: Snapshot | undefined;
  /** Entries after the snapshot, by index. */
  entries: Entry[];
}

interface Sm { index: number; hash: number }

interface Batch { rd: Ready; barrier: boolean; doneAt: number }

interface SimNode {
  id: NodeId;
  core: RaftNode | undefined;
  inc: number;
  disk: Disk;
  sm: Sm;
  busy: boolean;
  inflight: Ready | undefined;
  /** Pipelined host: batches written (in order) whose fsync has not completed; a barrier batch is last. */
  queue: Batch[];
  paused: boolean;
  pausedAt: number;
  drift: number;
  lastCommit: number;
  lastTickAt: number;
  deferred: Message[];
  /**
   * What the member file says (cluster/raft-state-log.ts): fresh (no state, nothing saying it was a
   * member: every member at the start, and after losing the whole state directory), rebuilding
   * (lost its storage, or a fresh one that heard the cluster had a log), member; none: no file, as
   * before the fresh rule (SimOptions.withoutFreshRule).
   */
  membership: 'fresh' | 'rebuilding' | 'member' | 'none';
  /** SimOptions.backups: a copy of the disk and member file, taken while it ran. */
  backup?: { disk: Disk; membership: SimNode['membership'] } | undefined;
  /** Restored from a copy: the log end it had before, until it holds that much again. */
  restoredFrom?: number | undefined;
}

type Event =
  | { t: number; seq: number; kind: 'tick'; node: number; inc: number }
  | { t: number; seq: number; kind: 'deliver'; msg: Message }
  | { t: number; seq: number; kind: 'persisted'; node: number; inc: number }
  | { t: number; seq: number; kind: 'fault' }
  | { t: number; seq: number; kind: 'resume'; node: number; inc: number }
  | { t: number; seq: number; kind: 'propose' };

class Heap {
  #a: Event[] = [];
  get size(): number { return this.#a.length; }
  push(e: Event): void {
    const a = this.#a;
    a.push(e);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (less(a[p]!, a[i]!)) break;
      [a[p], a[i]] = [a[i]!, a[p]!];
      i = p;
    }
  }
  pop(): Event | undefined {
    const a = this.#a;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0 && last) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1, r = l + 1;
        let m = i;
        if (l < a.length && less(a[l]!, a[m]!)) m = l;
        if (r < a.length && less(a[r]!, a[m]!)) m = r;
        if (m === i) break;
        [a[m], a[i]] = [a[i]!, a[m]!];
        i = m;
      }
    }
    return top;
  }
}

function lastIndexOf(d: Disk): number {
  return d.entries[d.entries.length - 1]?.index ?? d.snapshot?.meta.index ?? 0;
}

function copyDisk(d: Disk): Disk {
  return { hard: { ...d.hard }, snapshot: d.snapshot, entries: d.entries.slice() };
}

function less(x: Event, y: Event): boolean {
  return x.t < y.t || (x.t === y.t && x.seq < y.seq);
}

function fnv(h: number, bytes: Uint8Array): number {
  let x = h >>> 0;
  for (let i = 0; i < bytes.length; i++) x = Math.imul(x ^ bytes[i]!, 16777619) >>> 0;
  return x;
}

export interface SimOptions {
  /** Virtual ms of chaos before everything heals. */
  chaosMs?: number;
  /**
   * Take the fresh-start rule out: a member that lost its whole state directory starts as a plain
   * first start did before it (votes as any member), to show what the rule prevents.
   */
  withoutFreshRule?: boolean;
  /** Keep a trace of notable events (for failure reports). */
  trace?: boolean;
  /** Batches a member's host may have in flight: 1 = one Ready at a time; more = pipelined. Default: from the seed. */
  pipelineDepth?: number;
  /**
   * The host's catch-up after a pause holds the timeouts the stall reached until what arrived
   * meanwhile is stepped (RaftNode.catchUp; the default). false: the host before, which fed the
   * missed ticks one by one (tick()) and acted on them first.
   */
  stallHold?: boolean;
  /**
   * 'stalls': the only faults are stalls of members' own processes (the leader's, a follower's, or
   * every member's at once, 0.5-4 election timeouts), on a network without loss: what bench
   * raft-stall counts leadership changes over. Default 'all'.
   */
  faults?: 'all' | 'stalls';
  /**
   * Disks that go back in time: a member's state directory is copied (a backup) now and then, and a
   * restart may find that copy put back (its raft directory and member file as they were), behind
   * what it acknowledged since: Raft "amnesia" (RaftNode.amnesia). One member at a time, as wipes.
   * true: put back only while every other member is up, the network whole and a leader elected, and
   * the other faults wait until the member knows (a leader's heartbeat told it) or holds what it had
   * again. 'loose': put back at any restart, whatever else is down or cut off, and the faults go on.
   */
  backups?: boolean | 'loose';
}

/** The host a seed runs: a third one Ready at a time, the rest pipelined 2 or 8 deep (drawn apart from the seed's other draws). */
export function pipelineDepthOf(seed: number): number {
  return [1, 2, 8][seededRandom(seed ^ 0x5eed1e55).int(3)]!;
}

export function runSim(seed: number, options: SimOptions = {}): SimReport {
  return new Sim(seed, options).run();
}

class Sim {
  #seed: number;
  #rng: Random;
  #now = 0;
  #seq = 0;
  #q = new Heap();
  #nodes: SimNode[];
  #ids: NodeId[];
  #conf: ConfState;
  #loss: number;
  #dup: number;
  #maxDelay: number;
  #fsyncMax: number;
  #depth: number;
  #blocked = new Set<string>();
  #chaosMs: number;
  #healed = false;
  #violations: string[] = [];
  #trace: string[] = [];
  #traceOn: boolean;
  #events = 0;
  #leaderOfTerm = new Map<number, NodeId>();
  #committed = new Map<number, number>(); // index -> term
  #hashAt = new Map<number, number>(); // index -> state hash after applying it
  #pending: Array<{ node: number; inc: number; index: number; term: number }> = [];
  #acked = new Map<number, number>(); // index -> term
  #audited = 0;
  #elections = 0;
  #crashes = 0;
  #snapshotsSent = 0;
  #proposals = 0;
  #knownLeaders = new Set<string>();
  /** Draws whether a restart lost its storage, apart from the seed's other draws. */
  #wipeRng: Random;
  #backupRng: Random | undefined;
  #restores = 0;
  #looseRestores: boolean;
  #wipes = 0;
  #wholeWipes = 0;
  #withoutFreshRule: boolean;
  /** Draws for stalls of every member at once, apart from the seed's other draws. */
  #stallRng: Random;
  #stallHold: boolean;
  #stallsOnly: boolean;
  #stalls = 0;
  #stallKind: string | null = null;
  #stallElections: Record<string, { stalls: number; elections: number }> = {};

  constructor(seed: number, options: SimOptions) {
    this.#seed = seed;
    this.#rng = seededRandom(seed);
    this.#wipeRng = seededRandom(seed ^ 0x10575707);
    this.#backupRng = options.backups !== undefined && options.backups !== false ? seededRandom(seed ^ 0xbac0b) : undefined;
    this.#looseRestores = options.backups === 'loose';
    this.#stallRng = seededRandom(seed ^ 0x57a115);
    this.#stallHold = options.stallHold !== false;
    this.#stallsOnly = options.faults === 'stalls';
    const r = this.#rng;
    const n = r.float() < 0.7 ? 3 : 5;
    this.#ids = Array.from({ length: n }, (_, i) => `n${i + 1}`);
    const witnesses = n === 3 && r.float() < 0.5 ? ['n3'] : [];
    this.#conf = { voters: [...this.#ids], learners: [], witnesses };
    this.#loss = r.float() < 0.3 ? 0 : r.float() * 0.2;
    this.#dup = r.float() < 0.5 ? 0 : r.float() * 0.1;
    if (this.#stallsOnly) { this.#loss = 0; this.#dup = 0; }
    this.#maxDelay = 1 + r.int(40);
    this.#fsyncMax = r.int(25);
    this.#chaosMs = options.chaosMs ?? 2000 + r.int(3000);
    this.#traceOn = options.trace === true;
    this.#withoutFreshRule = options.withoutFreshRule === true;
    this.#depth = options.pipelineDepth ?? pipelineDepthOf(seed);
    this.#nodes = this.#ids.map((id) => {
      const node: SimNode = {
        id, core: undefined, inc: 0, disk: { hard: { term: 0, vote: null, commit: 0 }, snapshot: undefined, entries: [] },
        sm: { index: 0, hash: 2166136261 }, busy: false, inflight: undefined, queue: [], paused: false, pausedAt: 0,
        drift: 1 + (r.float() * 0.04 - 0.02), lastCommit: 0, lastTickAt: 0, deferred: [], membership: this.#withoutFreshRule ? 'none' : 'fresh',
      };
      return node;
    });
    this.#nodes.forEach((_, i) => this.#start(i));
    // Stalls only: the first once a leader is settled (elected within 2 election timeouts at most).
    this.#push({ t: this.#stallsOnly ? 1500 : 100 + r.int(300), seq: 0, kind: 'fault' });
    this.#push({ t: 50, seq: 0, kind: 'propose' });
  }

  run(): SimReport {
    const hardStop = this.#chaosMs + 15_000;
    let healedLeaderMs = -1;
    while (this.#q.size > 0 && this.#violations.length === 0) {
      const e = this.#q.pop()!;
      this.#now = e.t;
      if (!this.#healed && this.#now >= this.#chaosMs) this.#heal();
      this.#events++;
      this.#handle(e);
      this.#check();
      if (this.#healed && healedLeaderMs < 0 && this.#converged()) {
        healedLeaderMs = this.#now - this.#chaosMs;
        break;
      }
      if (this.#now > hardStop) break;
    }
    if (this.#violations.length === 0) {
      this.#checkLogMatching();
      if (healedLeaderMs < 0) {
        this.#violate(`no stable leader with every member caught up within ${hardStop - this.#chaosMs} ms after healing`);
        for (const n of this.#nodes) {
          const c = n.core;
          this.#trace.push(`${n.id} (${n.membership}${c?.fresh ? ', core fresh' : c?.rebuilding ? ', core rebuilding' : ''}): ${c ? `${c.role} term ${c.term} commit ${c.commitIndex} last ${c.lastIndex} lease ${c.leaseValid()} ${JSON.stringify(c.role === 'leader' ? c.progress() : {})}` : 'down'} applied ${n.sm.index} busy ${n.busy} inflight ${n.inflight ? JSON.stringify({ e: n.inflight.entries.map((x) => x.index), c: n.inflight.committedEntries.map((x) => x.index), m: n.inflight.messages.length, h: n.inflight.hardState, s: n.inflight.snapshot?.meta.index }) : "-"}`);
        }
      }
      for (const [index, term] of this.#acked) {
        if (this.#committed.get(index) !== term) this.#violate(`acknowledged entry ${index}@${term} is not in the committed log`);
      }
      this.#auditAcks();
    }
    return {
      seed: this.#seed, violations: this.#violations, events: this.#events, elections: this.#elections, committed: this.#committed.size,
      acked: this.#acked.size, audited: this.#audited, crashes: this.#crashes, wipes: this.#wipes, restores: this.#restores, wholeWipes: this.#wholeWipes, snapshotsSent: this.#snapshotsSent, healedLeaderMs,
      stalls: this.#stalls, stallElections: this.#stallElections, stallHolds: this.#nodes.reduce((sum, n) => ({ held: sum.held + (n.core?.stallHolds.held ?? 0), averted: sum.averted + (n.core?.stallHolds.averted ?? 0) }), { held: 0, averted: 0 }),
      trace: this.#trace,
    };
  }

  /** The daemon's ACK audit on every live member's log after the heal: what it judges must agree with the checker (none lost). */
  #auditAcks(): void {
    const acks: AckRecord[] = [...this.#acked].map(([index, term]) => ({ index, term, ip: index, mac: 'sim', at: 0, sentAt: 0 }));
    for (const n of this.#nodes) {
      const c = n.core;
      if (c === undefined) continue;
      const view = { commitIndex: c.commitIndex, committedTerm: (i: number) => (i <= c.commitIndex ? c.entryTerm(i) : undefined), lease: () => undefined };
      const r = auditAcks(acks, view, c.entryTerm(c.commitIndex) ?? null);
      if (r.lost > 0) this.#violate(`${n.id}: the ACK audit counts ${r.lost} acknowledged entries lost: ${r.lostAcks.map((a) => `${a.index}@${a.term}`).join(', ')}`);
      this.#audited += r.kept;
    }
  }

  // ---- node lifecycle ----------------------------------------------------------------------------

  #start(i: number): void {
    const n = this.#nodes[i]!;
    n.inc++;
    // The member file at start-up (cluster/raft-state-log.ts): fresh with entries on the disk joined
    // (a rebuild without the term and vote of the entries on the disk too).
    if (n.membership === 'fresh' && (n.disk.entries.length > 0 || n.disk.snapshot)) {
      const lastTerm = n.disk.entries[n.disk.entries.length - 1]?.term ?? n.disk.snapshot?.meta.term ?? 0;
      n.membership = n.disk.hard.vote !== null && n.disk.hard.term >= lastTerm ? 'member' : 'rebuilding';
    }
    const storage = {
      hardState: { ...n.disk.hard }, conf: this.#conf, entries: n.disk.entries.slice(), ...(n.disk.snapshot ? { snapshot: n.disk.snapshot } : {}),
      rebuilding: n.membership === 'rebuilding', fresh: n.membership === 'fresh',
    };
    n.core = new RaftNode({
      id: n.id, electionTicks: ELECTION_TICKS, heartbeatTicks: HEARTBEAT_TICKS, witnessFactor: 3, random: seededRandom(this.#seed * 31 + i * 7 + n.inc),
      snapshotChunkBytes: 8, maxInflight: 4, maxEntriesPerMessage: 4,
    }, storage);
    n.sm = n.disk.snapshot ? decodeSm(n.disk.snapshot.data) : { index: 0, hash: 2166136261 };
    n.busy = false;
    n.inflight = undefined;
    n.queue = [];
    n.lastCommit = n.core.commitIndex;
    n.lastTickAt = this.#now;
    this.#push({ t: this.#now + this.#tickEvery(n), seq: 0, kind: 'tick', node: i, inc: n.inc });
  }

  #crash(i: number): void {
    const n = this.#nodes[i]!;
    if (!n.core) return;
    this.#crashes++;
    const rd = n.inflight;
    if (rd && this.#rng.float() < 0.5) {
      // The batch was being written when power went: any prefix of it may be on disk (no one was
      // told about it), possibly the hard state too (it is replaced atomically: all or nothing).
      if (rd.hardState && this.#rng.float() < 0.5) this.#persistHard(n, rd.hardState);
      const keep = this.#rng.int(rd.entries.length + 1);
      if (!rd.snapshot) this.#persistEntries(n, rd.entries.slice(0, keep));
    }
    if (n.queue.length > 0 && this.#rng.float() < 0.5) this.#crashPipeline(n);
    this.#tr(`crash ${n.id}`);
    n.core = undefined;
    n.inflight = undefined;
    n.queue = [];
    n.busy = false;
    n.paused = false;
    n.deferred = [];
  }

  /**
   * The member's storage is lost: its raft directory (moved aside after damage; the member file says
   * member, so it starts rebuilding), or its whole state directory (a new SD card: no member file,
   * so it starts fresh; without the rule, as a plain first start that counts as a member at once).
   */
  #wipe(n: SimNode, whole: boolean): void {
    n.disk = { hard: { term: 0, vote: null, commit: 0 }, snapshot: undefined, entries: [] };
    n.sm = { index: 0, hash: 2166136261 };
    n.membership = !whole ? 'rebuilding' : this.#withoutFreshRule ? 'none' : 'fresh';
    this.#wipes++;
    if (whole) this.#wholeWipes++;
  }

  #tickEvery(n: SimNode): number {
    return TICK_MS * n.drift;
  }

  // ---- events ------------------------------------------------------------------------------------

  #push(e: Event): void {
    e.seq = this.#seq++;
    this.#q.push(e);
  }

  #handle(e: Event): void {
    switch (e.kind) {
      case 'tick': {
        const n = this.#nodes[e.node]!;
        if (!n.core || n.inc !== e.inc) return;
        this.#push({ t: this.#now + this.#tickEvery(n), seq: 0, kind: 'tick', node: e.node, inc: e.inc });
        if (n.paused) return;
        n.core.tick();
        this.#heartbeatsNow(n);
        this.#pump(e.node);
        return;
      }
      case 'deliver': {
        const i = this.#ids.indexOf(e.msg.to);
        const n = this.#nodes[i]!;
        if (!n.core) return;
        if (n.paused) { n.deferred.push(e.msg); return; }
        if (e.msg.type === 'snapshot') this.#snapshotsSent++;
        n.core.step(e.msg);
        this.#heartbeatsNow(n);
        this.#pump(i);
        return;
      }
      case 'persisted': {
        const n = this.#nodes[e.node]!;
        if (!n.core || n.inc !== e.inc || (!n.inflight && n.queue.length === 0)) return;
        if (n.paused) { this.#push({ t: this.#now + 10, seq: 0, kind: 'persisted', node: e.node, inc: e.inc }); return; }
        if (n.inflight) this.#finish(e.node, n.inflight);
        else this.#finishPipelined(e.node);
        return;
      }
      case 'resume': {
        const n = this.#nodes[e.node]!;
        if (n.core && n.inc === e.inc && n.paused) this.#resume(e.node);
        return;
      }
      case 'fault':
        if (!this.#healed) {
          if (this.#stallsOnly) this.#stallFault(); // it schedules the next one
          else {
            this.#fault();
            this.#push({ t: this.#now + 50 + this.#rng.int(400), seq: 0, kind: 'fault' });
          }
        }
        return;
      case 'propose': {
        if (this.#proposals < 400 && !this.#healed) {
          for (let i = 0; i < this.#nodes.length; i++) {
            const n = this.#nodes[i]!;
            if (!n.core || n.paused || n.core.role !== 'leader') continue;
            const data = new Uint8Array(4);
            new DataView(data.buffer).setUint32(0, ++this.#proposals);
            const r = n.core.propose(data);
            if (r.ok) this.#pending.push({ node: i, inc: n.inc, index: r.index, term: r.term });
            this.#pump(i);
          }
        }
        this.#push({ t: this.#now + 5 + this.#rng.int(60), seq: 0, kind: 'propose' });
        return;
      }
    }
  }

  /** As cluster/raft/host.ts after each tick and step: heartbeats and their answers of the term on disk go out at once. */
  #heartbeatsNow(n: SimNode): void {
    if (n.core) this.#sendAll(n.core.takeHeartbeats(n.disk.hard.term));
  }

  /** The host loop: one Ready at a time; persist (takes fsync time), then send, apply, advance. */
  #pump(i: number): void {
    if (this.#depth > 1) { this.#pumpPipelined(i); return; }
    const n = this.#nodes[i]!;
    const core = n.core;
    if (!core || n.busy || n.paused || !core.hasReady()) return;
    const rd = core.ready();
    n.busy = true;
    n.inflight = rd;
    const termVoteOnDisk = !rd.hardState || (rd.hardState.term === n.disk.hard.term && rd.hardState.vote === n.disk.hard.vote);
    if (core.role === 'leader' && termVoteOnDisk) {
      const early = rd.messages.filter((m) => m.type === 'append' || m.type === 'heartbeat' || m.type === 'snapshot');
      rd.messages = rd.messages.filter((m) => !(m.type === 'append' || m.type === 'heartbeat' || m.type === 'snapshot'));
      this.#sendAll(early);
    }
    this.#push({ t: this.#now + (rd.mustSync ? this.#rng.int(this.#fsyncMax + 1) : 0), seq: 0, kind: 'persisted', node: i, inc: n.inc });
  }

  #finish(i: number, rd: Ready): void {
    const n = this.#nodes[i]!;
    const core = n.core!;
    if (rd.snapshot) {
      n.disk.snapshot = rd.snapshot;
      n.disk.entries = [];
      n.sm = decodeSm(rd.snapshot.data);
    }
    this.#persistEntries(n, rd.entries);
    if (rd.hardState) this.#persistHard(n, rd.hardState);
    this.#sendAll(rd.messages);
    for (const e of rd.committedEntries) this.#apply(i, e);
    core.advance(rd);
    n.busy = false;
    n.inflight = undefined;
    // Now and then the host snapshots what it applied and compacts.
    if (n.sm.index - core.snapshotIndex > 15 && this.#rng.float() < 0.2) {
      const snap = core.snapshotAt(n.sm.index, encodeSm(n.sm));
      if (!snap) { this.#pump(i); return; }
      n.disk.snapshot = snap;
      n.disk.entries = n.disk.entries.filter((e) => e.index > snap.meta.index);
      core.compact(snap, Math.max(core.compactedIndex + 1, n.sm.index - this.#rng.int(6)));
    }
    this.#pump(i);
  }

  /**
   * The pipelined host (cluster/raft/host.ts): each Ready is accepted and written at once, its
   * committed entries applied, its appends sent early by a leader; its fsync ends after the one
   * before it; only then are its entries reported persisted and its answers sent. A Ready with a
   * new term or vote, or a snapshot, waits for every batch before it and holds back the next.
   */
  #pumpPipelined(i: number): void {
    const n = this.#nodes[i]!;
    for (;;) {
      const core = n.core;
      if (!core || n.paused || !core.hasReady()) return;
      const lastBatch = n.queue[n.queue.length - 1];
      if (lastBatch?.barrier || n.queue.length >= this.#depth) return;
      const rd = core.ready();
      const termVoteOnDisk = !rd.hardState || (rd.hardState.term === n.disk.hard.term && rd.hardState.vote === n.disk.hard.vote);
      const barrier = !termVoteOnDisk || rd.snapshot !== undefined;
      if (core.role === 'leader' && termVoteOnDisk) {
        const early = rd.messages.filter((m) => m.type === 'append' || m.type === 'heartbeat' || m.type === 'snapshot');
        rd.messages = rd.messages.filter((m) => !(m.type === 'append' || m.type === 'heartbeat' || m.type === 'snapshot'));
        this.#sendAll(early);
      }
      const doneAt = Math.max(lastBatch?.doneAt ?? 0, this.#now + (rd.mustSync ? this.#rng.int(this.#fsyncMax + 1) : 0));
      n.queue.push({ rd, barrier, doneAt });
      this.#push({ t: doneAt, seq: 0, kind: 'persisted', node: i, inc: n.inc });
      if (barrier) return;
      for (const e of rd.committedEntries) this.#apply(i, e);
      core.accept(rd);
    }
  }

  #finishPipelined(i: number): void {
    const n = this.#nodes[i]!;
    const b = n.queue[0]!;
    if (b.barrier) {
      n.queue.shift();
      n.inflight = b.rd;
      this.#finish(i, b.rd);
      return;
    }
    n.queue.shift();
    const core = n.core!;
    this.#persistEntries(n, b.rd.entries);
    if (b.rd.hardState) this.#persistHard(n, b.rd.hardState);
    this.#sendAll(b.rd.messages);
    const last = b.rd.entries[b.rd.entries.length - 1];
    if (last) core.persisted(last.index, last.term);
    if (n.sm.index - core.snapshotIndex > 15 && this.#rng.float() < 0.2) {
      const snap = core.snapshotAt(n.sm.index, encodeSm(n.sm));
      if (snap) {
        n.disk.snapshot = snap;
        n.disk.entries = n.disk.entries.filter((e) => e.index > snap.meta.index);
        core.compact(snap, Math.max(core.compactedIndex + 1, n.sm.index - this.#rng.int(6)));
      }
    }
    this.#pump(i);
  }

  /**
   * Power went with pipelined batches unsynced: any prefix of their entries, in write order, may be on
   * disk (the WAL cuts at the first torn record). A barrier batch was not written before the ones
   * ahead of it were durable, so it is the whole queue or not written at all.
   */
  #crashPipeline(n: SimNode): void {
    const head = n.queue[0]!;
    if (head.barrier) {
      if (head.rd.hardState && this.#rng.float() < 0.5) this.#persistHard(n, head.rd.hardState);
      if (!head.rd.snapshot) this.#persistEntries(n, head.rd.entries.slice(0, this.#rng.int(head.rd.entries.length + 1)));
      return;
    }
    const written = n.queue.filter((b) => !b.barrier);
    let keep = this.#rng.int(written.reduce((sum, b) => sum + b.rd.entries.length, 0) + 1);
    for (const b of written) {
      if (keep <= 0) break;
      this.#persistEntries(n, b.rd.entries.slice(0, keep));
      keep -= b.rd.entries.length;
    }
  }

  #persistEntries(n: SimNode, entries: readonly Entry[]): void {
    for (const e of entries) {
      const base = n.disk.snapshot?.meta.index ?? 0;
      if (e.index <= base) continue;
      n.disk.entries.length = Math.min(n.disk.entries.length, e.index - base - 1);
      if (n.disk.entries.length !== e.index - base - 1) {
        this.#violate(`${n.id}: disk append of ${e.index} leaves a gap after ${base + n.disk.entries.length}`);
        return;
      }
      n.disk.entries.push(e);
    }
  }

  #persistHard(n: SimNode, hs: HardState): void {
    const old = n.disk.hard;
    if (hs.term < old.term) this.#violate(`${n.id}: persisted term went back ${old.term} -> ${hs.term}`);
    if (hs.term === old.term && old.vote !== null && hs.vote !== old.vote) this.#violate(`${n.id}: persisted vote changed in term ${hs.term}: ${old.vote} -> ${hs.vote}`);
    // As the WAL: the highest commit index heard of (HardState.heard) and the newest committed entry
    // known (heardEntry) reach the disk only with a term or vote change (the hardstate file); the
    // commit index rides with every batch.
    const written = hs.term !== old.term || hs.vote !== old.vote;
    const heard = written ? hs.heard : old.heard;
    const heardEntry = written ? hs.heardEntry : old.heardEntry;
    n.disk.hard = { term: hs.term, vote: hs.vote, commit: hs.commit, ...(heard !== undefined ? { heard } : {}), ...(heardEntry !== undefined ? { heardEntry } : {}) };
  }

  #apply(i: number, e: Entry): void {
    const n = this.#nodes[i]!;
    if (e.index !== n.sm.index + 1) {
      this.#violate(`${n.id}: applied ${e.index} after ${n.sm.index}`);
      return;
    }
    n.sm.index = e.index;
    const tag = new Uint8Array([e.term & 0xff, e.type]);
    n.sm.hash = fnv(fnv(n.sm.hash, tag), e.data);
    const known = this.#hashAt.get(e.index);
    if (known === undefined) this.#hashAt.set(e.index, n.sm.hash);
    else if (known !== n.sm.hash) this.#violate(`${n.id}: state hash after ${e.index} differs from another member's (state-machine safety)`);
    const term = this.#committed.get(e.index);
    if (term !== undefined && term !== e.term) this.#violate(`${n.id}: applied ${e.index}@${e.term} but ${e.index}@${term} was committed`);
    this.#committed.set(e.index, e.term);
    this.#pending = this.#pending.filter((p) => {
      if (p.node !== i || p.inc !== n.inc || p.index !== e.index) return true;
      if (p.term === e.term && e.type === EntryType.normal) this.#acked.set(e.index, e.term);
      return false;
    });
  }

  #sendAll(msgs: readonly Message[]): void {
    for (const m of msgs) {
      if (this.#blocked.has(`${m.from}>${m.to}`)) continue;
      if (this.#rng.float() < this.#loss) continue;
      const copies = this.#rng.float() < this.#dup ? 2 : 1;
      for (let c = 0; c < copies; c++) this.#push({ t: this.#now + 1 + this.#rng.int(this.#maxDelay), seq: 0, kind: 'deliver', msg: m });
    }
  }

  // ---- faults ------------------------------------------------------------------------------------

  #fault(): void {
    const r = this.#rng;
    const k = r.int(10);
    const i = r.int(this.#nodes.length);
    const n = this.#nodes[i]!;
    const b = this.#backupRng;
    // A member back on an old copy is a silent failure until it knows (a leader it acknowledged
    // told it: RaftNode.amnesia) or holds what it had again: the faults wait until then (one
    // that never hears such a leader cannot know, cluster/raft/README.md "Restored from an old
    // backup"); from there on, every fault again, leader crashes and partitions included.
    for (const x of this.#nodes) if (x.restoredFrom !== undefined && x.core !== undefined && (x.core.lastIndex >= x.restoredFrom || x.core.amnesia !== undefined)) x.restoredFrom = undefined;
    if (b !== undefined && !this.#looseRestores && this.#nodes.some((x) => x.restoredFrom !== undefined)) { this.#tr('quiet: a restored member is catching up'); return; }
    if (b !== undefined && n.core !== undefined && n.membership === 'member' && n.backup === undefined && b.float() < 0.5) {
      n.backup = { disk: copyDisk(n.disk), membership: n.membership };
      this.#tr(`backup of ${n.id}: term ${n.disk.hard.term}, log to ${n.disk.entries[n.disk.entries.length - 1]?.index ?? 0}`);
    }
    switch (k) {
      case 0:
      case 1: { // symmetric partition into two sides
        this.#blocked.clear();
        const side = new Set(this.#ids.filter(() => r.float() < 0.5));
        for (const a of this.#ids) for (const b of this.#ids) if (side.has(a) !== side.has(b)) this.#blocked.add(`${a}>${b}`);
        this.#tr(`partition {${[...side].join(',')}}`);
        return;
      }
      case 2: { // one-way link loss
        const a = this.#ids[r.int(this.#ids.length)]!, b = this.#ids[r.int(this.#ids.length)]!;
        if (a !== b) this.#blocked.add(`${a}>${b}`);
        this.#tr(`cut ${a}>${b}`);
        return;
      }
      case 3:
        this.#blocked.clear();
        this.#tr('heal network');
        return;
      case 4:
      case 5:
        if (n.core) this.#crash(i);
        else {
          // A quarter of the restarts lose the raft directory, an eighth the whole state directory:
          // one member at a time, once every member has joined (a member that never took part is
          // the case the fresh rule names as not covered, cluster/raft/README.md); a whole loss
          // only once every other member learned a commit index.
          let lost = '';
          const b = this.#backupRng;
          // One storage gone back in time or lost at a time: not while another restored member has
          // not caught up, nor while another is rebuilding (two of three members' disks behind what
          // they acknowledged is a majority's storage lost, which no protocol survives).
          const restoring = this.#nodes.some((x) => x !== n && (x.restoredFrom !== undefined || x.membership !== 'member'));
          if (b !== undefined && n.backup !== undefined && !restoring && (this.#looseRestores || this.#restoreUnderLeader(n)) && b.float() < 0.8) {
            n.restoredFrom = lastIndexOf(n.disk);
            n.disk = copyDisk(n.backup.disk);
            n.membership = n.backup.membership;
            n.backup = undefined;
            this.#restores++;
            lost = ` (state directory restored from a copy: term ${n.disk.hard.term}, log to ${n.disk.entries[n.disk.entries.length - 1]?.index ?? n.disk.snapshot?.meta.index ?? 0})`;
          } else if (this.#nodes.every((x) => x.membership === 'member') && !restoring) {
            const w = this.#wipeRng.float();
            if (w < 0.25) { this.#wipe(n, false); lost = ' (storage lost: rebuilding)'; }
            else if (w < 0.375 && this.#nodes.every((x) => x === n || x.disk.hard.commit > 0 || x.disk.snapshot !== undefined)) {
              this.#wipe(n, true);
              lost = ' (whole state directory lost: fresh)';
            }
          }
          this.#start(i);
          this.#tr(`restart ${n.id}${lost}`);
        }
        return;
      case 6:
        if (n.core && !n.paused) { this.#pause(n); this.#stalls++; this.#tr(`pause ${n.id}`); }
        else this.#resume(i);
        return;
      case 7:
        // Every member's process stalls at once (one loaded machine runs them all, as in CI) and
        // each resumes a little apart, in its own order.
        if (this.#stallRng.float() < 0.5) this.#stallMany(this.#nodes.map((_, k) => k), 250 + this.#stallRng.int(1750));
        return;
      default:
        return; // quiet spell
    }
  }

  /** SimOptions.backups true: a copy is put back only while every other member is up, the network whole and a leader elected. */
  #restoreUnderLeader(n: SimNode): boolean {
    return this.#blocked.size === 0 && this.#nodes.every((x) => x.membership === 'member' && (x === n || (x.core !== undefined && !x.paused)))
      && this.#nodes.some((x) => x !== n && x.core?.role === 'leader');
  }

  /** faults 'stalls': the leader's process (half the time), a follower's, or every member's at once, for 0.5-4 election timeouts. */
  #stallFault(): void {
    const r = this.#stallRng;
    const ms = 250 + r.int(1750);
    const leader = this.#nodes.findIndex((n) => n.core?.role === 'leader' && !n.paused);
    const pick = r.float();
    let kind: string;
    if (pick < 0.25) { kind = 'all'; this.#stallMany(this.#nodes.map((_, k) => k), ms); }
    else if (pick < 0.75 && leader >= 0) { kind = 'leader'; this.#stallMany([leader], ms); }
    else { const k = r.int(this.#nodes.length); kind = k === leader ? 'leader' : 'follower'; this.#stallMany([k], ms); }
    this.#stallKind = `${kind} ${ms < 2 * ELECTION_TICKS * TICK_MS ? 'short' : 'long'}`;
    const c = this.#stallElections[this.#stallKind] ??= { stalls: 0, elections: 0 };
    c.stalls++;
    // The next stall once this one is over and the cluster had time to settle.
    this.#push({ t: this.#now + ms + 1000 + this.#rng.int(1000), seq: 0, kind: 'fault' });
  }

  /** Stalls the processes of `which` (those up and running) for about `ms`; each resumes within 20 ms of the others. */
  #stallMany(which: number[], ms: number): void {
    const hit = which.filter((k) => this.#nodes[k]!.core !== undefined && !this.#nodes[k]!.paused);
    if (hit.length === 0) return;
    this.#stalls++;
    for (const k of hit) {
      const n = this.#nodes[k]!;
      this.#pause(n);
      this.#push({ t: this.#now + ms + this.#stallRng.int(20), seq: 0, kind: 'resume', node: k, inc: n.inc });
    }
    this.#tr(`stall ${hit.map((k) => this.#nodes[k]!.id).join(',')} ${ms} ms`);
  }

  #pause(n: SimNode): void {
    n.paused = true;
    n.pausedAt = this.#now;
  }

  #resume(i: number): void {
    const n = this.#nodes[i]!;
    if (!n.core || !n.paused) return;
    n.paused = false;
    // The host catches up the ticks it missed before it handles anything else (the lease ages);
    // every one of them came late (RaftNode.catchUp holds the timeouts they reach).
    const missed = Math.min(Math.floor((this.#now - n.pausedAt) / this.#tickEvery(n)), 1000);
    if (this.#stallHold) n.core.catchUp(missed, missed);
    else for (let k = 0; k < missed; k++) n.core.tick();
    const msgs = n.deferred;
    n.deferred = [];
    this.#heartbeatsNow(n);
    for (const m of msgs) { n.core.step(m); this.#heartbeatsNow(n); }
    // What arrived during the stall answers heartbeats sent before it: the lease left must be what
    // was left when the stall began (at most LEASE_TICKS) less the stall, in real time.
    const core = n.core;
    if (core.leaseRemainingTicks() > Math.max(0, LEASE_TICKS - missed)) {
      this.#violate(`${n.id}: ${core.leaseRemainingTicks()} ticks of lease left after a stall of ${missed} ticks (lease ${LEASE_TICKS} ticks): it outlived real time`);
    }
    this.#tr(`resume ${n.id}`);
    this.#pump(i);
  }

  #heal(): void {
    this.#healed = true;
    this.#blocked.clear();
    this.#loss = 0;
    this.#dup = 0;
    this.#nodes.forEach((n, i) => {
      if (!n.core) this.#start(i);
      else if (n.paused) this.#resume(i);
    });
    this.#tr('heal all');
  }

  // ---- checks ------------------------------------------------------------------------------------

  #check(): void {
    const leasing: NodeId[] = [];
    for (const n of this.#nodes) {
      const core = n.core;
      if (!core) continue;
      // The member file follows a fresh core at once (before anything it takes is written) when it
      // heard the cluster had a log: rebuilding. A rebuild, or a join of a new cluster, is over (the
      // member file says member) once the core says so, what the leader had committed is applied
      // here and the leader's term and a vote are on the disk (or a later term: that one is over).
      // Without a member file (before the fresh rule) a term on the disk made a member.
      if (n.membership === 'fresh' && !core.fresh && core.rebuilding) n.membership = 'rebuilding';
      // Found out gone back in time (RaftNode.amnesia): the host writes rebuilding to the member file at once.
      if (n.membership === 'member' && core.rebuilding && core.amnesia !== undefined) n.membership = 'rebuilding';
      const done = core.rebuilt;
      if ((n.membership === 'rebuilding' || n.membership === 'fresh') && !core.rebuilding && done && n.sm.index >= done.index
        && (n.disk.hard.term > done.term || (n.disk.hard.term === done.term && n.disk.hard.vote !== null))) n.membership = 'member';
      if (n.membership === 'none' && n.disk.hard.term > 0) n.membership = 'member';
      if (core.commitIndex < n.lastCommit) this.#violate(`${n.id}: commit went back ${n.lastCommit} -> ${core.commitIndex}`);
      n.lastCommit = core.commitIndex;
      if (core.role === 'leader') {
        const key = `${core.term}`;
        const had = this.#leaderOfTerm.get(core.term);
        if (had === undefined) {
          this.#leaderOfTerm.set(core.term, n.id);
          this.#elections++;
          if (this.#stallKind !== null && !this.#healed) this.#stallElections[this.#stallKind]!.elections++;
          this.#tr(`leader ${n.id} term ${core.term}`);
        } else if (had !== n.id) {
          this.#violate(`two leaders in term ${core.term}: ${had} and ${n.id} (election safety)`);
        }
        if (!this.#knownLeaders.has(key)) {
          this.#knownLeaders.add(key);
          // Leader completeness: every entry committed so far is in the new leader's log.
          for (const [index, term] of this.#committed) {
            if (index <= core.compactedIndex) continue;
            if (core.entryTerm(index) !== term) this.#violate(`leader ${n.id} of term ${core.term} lacks committed entry ${index}@${term} (leader completeness)`);
          }
        }
        // A leader handing over (a witness, or a transfer) serves nothing on its lease: RaftStateLog.isLeader
        // and the VIP (test/sim/vip-sim.ts) count it only with no transfer under way, and the
        // target's transfer campaign may win at any moment (seed 5163: a witness leader still held
        // its lease when the server it handed over to got its first acknowledgement).
        if (!n.paused && core.leaseValid() && core.transferee === null) leasing.push(n.id);
      }
    }
    if (leasing.length > 1) this.#violate(`two leaders hold a lease at once: ${leasing.join(', ')}`);
    if (this.#events % 64 === 0) this.#checkLogMatching();
  }

  /** Log matching: two logs with an entry of the same index and term agree on everything before it. */
  #checkLogMatching(): void {
    const live = this.#nodes.filter((n) => n.core);
    for (let a = 0; a < live.length; a++) {
      for (let b = a + 1; b < live.length; b++) {
        const x = live[a]!.core!, y = live[b]!.core!;
        const lo = Math.max(x.compactedIndex, y.compactedIndex) + 1;
        let hi = Math.min(x.lastIndex, y.lastIndex);
        while (hi >= lo && x.entryTerm(hi) !== y.entryTerm(hi)) hi--;
        if (hi < lo) continue;
        const xs = x.entries(lo, hi + 1)!, ys = y.entries(lo, hi + 1)!;
        for (let k = 0; k < xs.length; k++) {
          const p = xs[k]!, q = ys[k]!;
          if (p.term !== q.term || !sameBytes(p.data, q.data)) {
            this.#violate(`${live[a]!.id} and ${live[b]!.id} agree at ${hi} but differ at ${p.index} (log matching)`);
            return;
          }
        }
      }
    }
  }

  #converged(): boolean {
    const leaders = this.#nodes.filter((n) => n.core?.role === 'leader' && n.core.leaseValid());
    if (leaders.length !== 1) return false;
    const leader = leaders[0]!.core!;
    if (leader.commitIndex < leader.lastIndex || leader.entryTerm(leader.commitIndex) !== leader.term) return false;
    // Every member has joined too: a fresh or rebuilding one left over would not vote.
    return this.#nodes.every((n) => n.sm.index === leader.commitIndex && n.core?.commitIndex === leader.commitIndex && n.membership === 'member');
  }

  #violate(text: string): void {
    this.#violations.push(`seed ${this.#seed} t=${Math.round(this.#now)}ms: ${text}`);
  }

  #tr(text: string): void {
    if (this.#traceOn) this.#trace.push(`${Math.round(this.#now)} ${text}`);
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function encodeSm(sm: Sm): Uint8Array {
  return new TextEncoder().encode(`${sm.index}:${sm.hash}`);
}

function decodeSm(bytes: Uint8Array): Sm {
  const [index, hash] = new TextDecoder().decode(bytes).split(':');
  return { index: Number(index), hash: Number(hash) };
}
