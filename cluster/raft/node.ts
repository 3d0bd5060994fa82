import type { Random } from '../../lib/random.js';
import { RaftLog } from './log.js';
import { committedIndex, voteResult } from './quorum.js';
import {
  EntryType, emptyMessage,
  type ConfChange, type ConfState, type Entry, type HardState, type Message, type NodeId, type Ready, type Role,
  type Snapshot, type SoftState,
} from './types.js';
import { decodeConfChange } from './conf.js';

// The Raft core: a pure state machine in the shape of etcd-io/raft. The host feeds it tick(),
// step(message) and propose(data), takes a Ready batch, persists/sends/applies it, then calls
// advance(). No sockets, timers, disk, clock or logging in here; randomness comes in through Random.
//
// Besides plain Raft (thesis, Ongaro 2014): pre-vote and check-quorum (a member that has heard a
// leader within the election timeout refuses to vote, so a rejoining member cannot disrupt), a
// leader lease measured from heartbeat send ticks, flow control (probe/replicate/snapshot with an
// in-flight limit), leadership transfer (TimeoutNow), learners, one-at-a-time membership changes,
// chunked snapshots, the witness rule (long election timeout, hands leadership to a server at once),
// and the stall hold (catchUp: ticks this member's own process missed age the lease at once, but its
// timeouts do not read them as its peers' silence until what arrived meanwhile has been stepped).

export interface RaftConfig {
  id: NodeId;
  /** Minimum election timeout; each member draws its timeout from [e, e + spread). */
  electionTicks: number;
  /** The random part of the election timeout; default electionTicks ([e, 2e), as etcd). */
  electionSpreadTicks?: number;
  heartbeatTicks: number;
  /** Leader lease length from a heartbeat's send tick; default 0.9 x electionTicks. */
  leaseTicks?: number;
  /** A witness multiplies its election timeout by this. */
  witnessFactor?: number;
  maxInflight?: number;
  maxEntriesPerMessage?: number;
  snapshotChunkBytes?: number;
  preVote?: boolean;
  checkQuorum?: boolean;
  /**
   * After a stall of this member's own process (RaftNode.catchUp), how many ticks a timeout that
   * reads the stall as its peers' silence waits for what arrived meanwhile; default 2 x heartbeatTicks.
   */
  stallGraceTicks?: number;
  random: Random;
}

/** What the host read from its disk at start-up (all of it already durable). */
export interface RaftStorage {
  hardState: HardState;
  /** The membership when there is no snapshot (a fresh cluster's bootstrap list). */
  conf: ConfState;
  snapshot?: Snapshot;
  entries: readonly Entry[];
  /**
   * This member lost its storage (its directory was moved aside after damage) and rejoins a cluster
   * it was a member of: its term and vote are gone, so it neither votes, pre-votes nor campaigns
   * until a leader has caught it up (README.md, "Damaged storage").
   */
  rebuilding?: boolean;
  /**
   * This member has no state at all and nothing saying it ever was a member (no member file): a
   * first start of a new cluster, or a member whose whole state directory was lost. It cannot tell
   * which, so it counts as rebuilding with one exception: while it has heard nothing showing the
   * cluster committed something before it came, it votes and campaigns as any member, so a new
   * cluster whose members are all fresh elects. Evidence (a peer's message showing a commit index
   * above 0, or a snapshot) ends the exception: from there it is a rebuild (README.md, "A member
   * with no state"). Honoured only when the log is empty; with entries it is a plain rebuild.
   */
  fresh?: boolean;
}

/**
 * Follower: a leader of this term told it (its heartbeat's `index`) that it had acknowledged entries
 * up to `acked`, and its log ends at `lastIndex` below that: its Raft state went back in time (a state
 * directory restored from an old backup or copied back). Raft "amnesia": it may have voted in this
 * term already, and entries committed with its help are gone from it.
 */
export interface Amnesia {
  leader: NodeId;
  term: number;
  acked: number;
  lastIndex: number;
  /** Set when its log was long enough but its entry at this index (at most `acked`) is of another term than the leader's. */
  divergedAt?: number;
}

/** A member that answered this leader with a log ending below what it had acknowledged: it lost its storage. */
export interface PeerLoss {
  peer: NodeId;
  term: number;
  /** The index it had acknowledged. */
  acked: number;
  /** Where its log ends now. */
  lastIndex: number;
}

/** What showed a fresh member that the cluster had a log before it came (RaftNode.freshEvidence). */
export interface FreshEvidence {
  from: NodeId;
  term: number;
  /** candidate-commit: a candidate knows a commit index; leader-commit: a leader's append or heartbeat carries one; snapshot. */
  why: 'candidate-commit' | 'leader-commit' | 'snapshot';
  /** The commit index (the snapshot's index) that showed it. */
  index: number;
}

type ProgressState = 'probe' | 'replicate' | 'snapshot';

interface Progress {
  match: number;
  next: number;
  state: ProgressState;
  /** Probe: one append is out, wait for its answer (or a heartbeat answer). */
  probeSent: boolean;
  /** Replicate: the last index of each append in flight. */
  inflight: number[];
  recentActive: boolean;
  /** Highest leader tick of a heartbeat this member acknowledged (leader lease). */
  ackedTick: number;
  /** Snapshot: the index being sent and the next byte to send. */
  pendingSnapshot: number;
  snapshotOffset: number;
  /**
   * The highest index this member acknowledged to this leader (never lowered, where match is when
   * it lost its storage): heartbeats carry it (`index`), so a member whose log went back in time
   * finds out it did (RaftNode.amnesia).
   */
  acked: number;
}

export type ProposeResult = { ok: true; index: number; term: number } | { ok: false; reason: 'not-leader' | 'transferring' | 'conf-pending' };

export class RaftNode {
  readonly id: NodeId;
  #cfg: Required<Omit<RaftConfig, 'leaseTicks' | 'electionSpreadTicks' | 'stallGraceTicks'>> & { leaseTicks: number; electionSpreadTicks: number; stallGraceTicks: number };
  #log: RaftLog;
  #term: number;
  #vote: NodeId | null;
  #role: Role = 'follower';
  #leader: NodeId | null = null;
  #conf: ConfState;
  #progress = new Map<NodeId, Progress>();
  #votes = new Map<NodeId, boolean>();
  #msgs: Message[] = [];
  #ticks = 0;
  #electionElapsed = 0;
  #heartbeatElapsed = 0;
  #randomizedTimeout = 0;
  #leadTransferee: NodeId | null = null;
  #pendingConfIndex = 0;
  #needBroadcast = false;
  /** The newest snapshot the host saved: sent to members that fell behind the compacted log. */
  #snapshot: Snapshot | undefined;
  /** A snapshot arriving in chunks from the leader. */
  #incoming: { index: number; term: number; chunks: Uint8Array[]; bytes: number } | undefined;
  #prevHard: HardState;
  #prevSoft: SoftState;
  /**
   * Until this tick a lease this member held as leader may still run (set when it stops leading).
   * It votes for nobody else before then (a transfer's TimeoutNow campaign aside): its own vote
   * would let another member win while its lease, and the VIP on it, still held. The VIP simulation
   * found it: a leader resumed after a pause, took the VIP on a fresh answer, stepped down on a
   * candidate's higher term and voted for it within the same millisecond; the winner took the VIP
   * before the old holder's next VIP tick let it go.
   */
  #ownLeaseEnd = -Infinity;
  /**
   * Rebuilding (RaftStorage.rebuilding): it has forgotten every vote it cast, and a vote given again
   * in a term where it already voted could elect a second leader of that term. It grants nothing
   * and never stands until an append from a leader found its log holding that leader's commit
   * index; each term it learns from a leader's message meanwhile is recorded with that leader as
   * its vote, so after a restart it still cannot vote for anyone else in it.
   */
  #rebuilding: boolean;
  /** Where the rebuild ended: the leader, its term and the commit index this member then held. */
  #rebuilt: { leader: NodeId; term: number; index: number } | undefined;
  /**
   * Fresh (RaftStorage.fresh): no state and no member file. Also #rebuilding; while both hold it
   * votes and campaigns as any member. Cleared for good by evidence that the cluster had a log
   * before this member came (#freshEvidence), or by joining one that did not.
   */
  #fresh: boolean;
  #freshEvidence: FreshEvidence | undefined;
  /** What showed this member's state went back in time (#noteAmnesia), and whether the host has not taken it yet. */
  #amnesia: Amnesia | undefined;
  #amnesiaNew = false;
  /** Rebuilding after amnesia: the index its log must reach before it votes again. */
  #mustReach = 0;
  /**
   * The highest commit index this member has heard of: its own, a leader's (appends, and the
   * heartbeat's `hint`), a candidate's, a voter's answer. Entries up to it are committed, so every
   * candidate that could be a correct leader holds them: it grants no (pre-)vote to a candidate
   * whose log ends below it and does not campaign while its own does (#promotable). This is what
   * keeps a member restored from an old backup (Raft "amnesia") from being elected, or electing,
   * without the entries it had helped commit when the leader it acknowledged is gone: the other
   * members heard that commit index (README.md, "Restored from an old backup"). Kept on disk in
   * the hard state (HardState.heard).
   */
  #heard: number;
  /**
   * The newest committed entry (index, term) this member knows of past its own commit (HardState.heardEntry):
   * from a heartbeat (its commit and the term there), a voter's answer, a snapshot. A candidate
   * holding it ends its log in that term or later, so one that does not (a long log of an older,
   * uncommitted term passes #heard) is refused too (#coversKnown), and this member does not stand
   * while its own entry there is another.
   */
  #heardEntry: { index: number; term: number } | undefined;
  /** Leader: members found to have lost entries they had acknowledged, for the host to log (at most 16 kept). */
  #peerLosses: PeerLoss[] = [];
  /**
   * Until this tick, this member's own process stalled lately (catchUp): the ticks of the stall are
   * time that passed (the lease aged with them) but not evidence that its peers fell silent, since
   * what they sent meanwhile is still being read. Until then a leader's check-quorum does not step
   * it down, a follower's election timeout does not start a campaign, and a follower that heard a
   * leader before the stall grants no (pre-)vote (README.md, "Stalls of this member's own process").
   */
  #holdUntil = 0;
  /** Stalls that held a timeout, and of those, the ones whose decision then went the other way (counters for status and benches). */
  #stallHeld = 0;
  #stallAverted = 0;
  /** A timeout a stall holds: 'leader' (check-quorum) or 'campaign'; cleared when it acts or the role changes. */
  #heldDecision: 'leader' | 'campaign' | null = null;

  constructor(config: RaftConfig, storage: RaftStorage) {
    this.id = config.id;
    this.#cfg = {
      witnessFactor: 1, maxInflight: 256, maxEntriesPerMessage: 512, snapshotChunkBytes: 256 * 1024, preVote: true, checkQuorum: true,
      ...config,
      leaseTicks: config.leaseTicks ?? Math.max(1, Math.floor(config.electionTicks * 0.9)),
      electionSpreadTicks: Math.max(1, config.electionSpreadTicks ?? config.electionTicks),
      stallGraceTicks: Math.max(1, config.stallGraceTicks ?? 2 * config.heartbeatTicks),
    };
    this.#log = RaftLog.restore(storage.snapshot?.meta, storage.entries, storage.hardState.commit);
    this.#snapshot = storage.snapshot;
    this.#conf = cloneConf(storage.snapshot?.meta.conf ?? storage.conf);
    this.#term = storage.hardState.term;
    this.#vote = storage.hardState.vote;
    this.#heard = Math.max(storage.hardState.heard ?? 0, this.#log.committed);
    this.#heardEntry = storage.hardState.heardEntry;
    const logEmpty = storage.entries.length === 0 && storage.snapshot === undefined;
    this.#fresh = storage.fresh === true && storage.rebuilding !== true && logEmpty;
    this.#rebuilding = storage.rebuilding === true || storage.fresh === true;
    // Membership changes in the stable log after the snapshot are applied when those entries apply;
    // committed ones are re-applied during replay, so start from the snapshot's membership.
    this.#prevHard = this.hardState();
    this.#prevSoft = { role: this.#role, leader: this.#leader };
    this.#resetRandomizedTimeout();
  }

  // ---- queries ---------------------------------------------------------------------------------

  get term(): number { return this.#term; }
  get role(): Role { return this.#role; }
  get leader(): NodeId | null { return this.#leader; }
  get conf(): ConfState { return cloneConf(this.#conf); }
  get commitIndex(): number { return this.#log.committed; }
  get appliedIndex(): number { return this.#log.applied; }
  get lastIndex(): number { return this.#log.lastIndex(); }
  get lastTerm(): number { return this.#log.lastTerm(); }
  /** Where the in-memory log starts (entries up to here are compacted away). */
  get compactedIndex(): number { return this.#log.snapIndex; }
  /** The index of the newest snapshot saved by the host. */
  get snapshotIndex(): number { return this.#snapshot?.meta.index ?? 0; }
  get ticks(): number { return this.#ticks; }
  get transferee(): NodeId | null { return this.#leadTransferee; }
  /** Rebuilding after lost storage: it neither votes nor campaigns yet (RaftStorage.rebuilding). */
  get rebuilding(): boolean { return this.#rebuilding; }
  /** Fresh: no state at all, no member file, and no sign yet that the cluster had a log before it came (RaftStorage.fresh). */
  get fresh(): boolean { return this.#fresh; }
  /** What ended a fresh start as a rebuild: who showed that the cluster had a log, and how. */
  get freshEvidence(): FreshEvidence | undefined { return this.#freshEvidence; }
  /** Leader: the members found since the last call to have lost entries they had acknowledged. */
  takePeerLosses(): PeerLoss[] {
    const out = this.#peerLosses;
    this.#peerLosses = [];
    return out;
  }
  /** Once a rebuild ended: the leader that caught this member up, its term, and the commit index then held. */
  get rebuilt(): { leader: NodeId; term: number; index: number } | undefined { return this.#rebuilt; }
  /** What showed this member's Raft state went back in time (undefined: nothing did). */
  get amnesia(): Amnesia | undefined { return this.#amnesia; }
  /** The amnesia evidence once, when new since the last call (the host logs it and records the rebuild). */
  takeAmnesia(): Amnesia | undefined {
    if (!this.#amnesiaNew) return undefined;
    this.#amnesiaNew = false;
    return this.#amnesia;
  }
  hardState(): HardState {
    const commit = this.#log.committed;
    const hs: HardState = this.#heard > commit ? { term: this.#term, vote: this.#vote, commit, heard: this.#heard } : { term: this.#term, vote: this.#vote, commit };
    const known = this.#knownEntry();
    if (known !== undefined) hs.heardEntry = known;
    return hs;
  }
  /** The newest committed entry known past this member's own commit (#heardEntry), while it is past it. */
  #knownEntry(): { index: number; term: number } | undefined {
    const e = this.#heardEntry;
    return e !== undefined && e.index > this.#log.committed ? e : undefined;
  }
  /** The newest committed entry this member knows the term of: #heardEntry, or its own commit. */
  #newestCommitted(): { index: number; term: number } {
    return this.#knownEntry() ?? { index: this.#log.committed, term: this.#log.term(this.#log.committed) ?? 0 };
  }
  /** Whether a log ending at `index` in `term` may hold the newest committed entry known here past its own commit (no: it lacks it). */
  #coversKnown(index: number, term: number): boolean {
    const e = this.#knownEntry();
    return e === undefined || term > e.term || (term === e.term && index >= e.index);
  }
  /** The highest commit index this member has heard of (#heard): it votes for no candidate, and does not stand, with a log ending below it. */
  get heardCommit(): number { return Math.max(this.#heard, this.#log.committed); }
  entryTerm(index: number): number | undefined { return this.#log.term(index); }
  entries(lo: number, hi: number): Entry[] | undefined { return this.#log.slice(lo, hi); }
  isVoter(id: NodeId = this.id): boolean { return this.#conf.voters.includes(id); }
  isWitness(id: NodeId = this.id): boolean { return this.#conf.witnesses.includes(id); }

  /** True while this leader holds a lease: a majority acknowledged a heartbeat sent within leaseTicks. */
  leaseValid(): boolean {
    if (this.#role !== 'leader') return false;
    return this.#ticks < this.#leaseEnd();
  }

  /** Whole ticks left of this leader's lease (0 when it holds none): the VIP guard's deadline. */
  leaseRemainingTicks(): number {
    if (this.#role !== 'leader') return 0;
    return Math.max(0, this.#leaseEnd() - this.#ticks);
  }

  /** The tick this leader's lease ends: leaseTicks after the newest send tick a majority acknowledged. */
  #leaseEnd(): number {
    return committedIndex(this.#conf.voters, (id) => (id === this.id ? this.#ticks : this.#progress.get(id)?.ackedTick ?? -Infinity)) + this.#cfg.leaseTicks;
  }

  /** Per voter (not this leader): ticks since the send of the newest heartbeat it acknowledged (null: none this term). */
  leaseAckAges(): Record<NodeId, number | null> {
    const out: Record<NodeId, number | null> = {};
    if (this.#role !== 'leader') return out;
    for (const id of this.#conf.voters) {
      if (id === this.id) continue;
      const acked = this.#progress.get(id)?.ackedTick ?? -Infinity;
      out[id] = acked === -Infinity ? null : this.#ticks - acked;
    }
    return out;
  }

  progress(): Record<NodeId, { match: number; next: number; state: ProgressState; active: boolean }> {
    const out: Record<NodeId, { match: number; next: number; state: ProgressState; active: boolean }> = {};
    for (const [id, p] of this.#progress) out[id] = { match: p.match, next: p.next, state: p.state, active: p.recentActive };
    return out;
  }

  // ---- inputs ----------------------------------------------------------------------------------

  tick(): void {
    this.#ticks++;
    // A decision held by a stall that was not taken on the tick the hold ended: what was read meanwhile averted it.
    if (this.#heldDecision !== null && this.#ticks > this.#holdUntil) { this.#heldDecision = null; this.#stallAverted++; }
    const held = this.#ticks < this.#holdUntil;
    if (this.#role === 'leader') {
      this.#heartbeatElapsed++;
      this.#electionElapsed++;
      if (this.#electionElapsed >= this.#cfg.electionTicks) {
        if (held && this.#leadTransferee === null) {
          // A stall's ticks say nothing of the voters' silence until what they sent meanwhile is read:
          // check once the hold ends (the lease aged all the same: leaseValid counts from send ticks).
          this.#holdDecision('leader');
        } else {
          this.#electionElapsed = 0;
          const quorum = !this.#cfg.checkQuorum || this.#quorumActive();
          if (this.#heldDecision === 'leader') { this.#heldDecision = null; if (quorum) this.#stallAverted++; }
          if (!quorum) {
            this.#becomeFollower(this.#term, null);
            return;
          }
          if (this.#leadTransferee !== null) {
            // A transfer that did not finish within an election timeout is abandoned, and this member
            // stops leading (HA.md: it campaigns again): its target's TimeoutNow campaign may still
            // arrive late and win, since a transfer's votes pass every voter's lease check, so this
            // term must not give it a lease (and the VIP) back. Before, it went on leading: after
            // `lanctl failover` timed out it took the VIP again while the target could still win.
            // Not held by a stall: it ends on time, not on silence.
            this.#becomeFollower(this.#term, null);
            return;
          }
        }
      }
      if (this.#heartbeatElapsed >= this.#cfg.heartbeatTicks) {
        this.#heartbeatElapsed = 0;
        this.#broadcastHeartbeat();
      }
      return;
    }
    this.#electionElapsed++;
    if (!this.#promotable()) {
      // A member that may not campaign (its log lacks entries it heard were committed, a snapshot
      // to install, a rebuild) still stops naming a leader it has not heard for an election
      // timeout: status, degraded mode's quorum check and forwarded proposals must not read that
      // silence as a leader (a follower behind its heard commit kept a dead leader for good).
      if (this.#leader !== null && this.#role === 'follower' && !held && this.#electionElapsed >= this.#cfg.electionTicks) this.#leader = null;
      return;
    }
    if (this.#electionElapsed >= this.#randomizedTimeout) {
      // Only a follower's timeout reads the time as a leader's silence. A candidate's says its own
      // election took too long: it starts the next at once, as before, so that votes of its old
      // term that waited in the sockets cannot make it leader of that term after a newer term has
      // committed entries (simulator seed 2054).
      if (held && this.#role === 'follower') {
        this.#holdDecision('campaign');
        return;
      }
      this.#heldDecision = null;
      this.#electionElapsed = 0;
      this.campaign();
    }
  }

  /**
   * Counts `n` ticks that passed since the last ones counted. `lateTicks`: how late the host's timer
   * ran (its process did not run for that long: an event-loop stall, a GC pause, SIGSTOP). From
   * one heartbeat interval late on, the ticks are still counted as time (the lease ages with them:
   * it never outlives real time), but a timeout they reach that would read them as the peers'
   * silence waits `stallGraceTicks` past them: the leader's check-quorum step-down, a follower's
   * campaign, and a follower's refusal to vote for others while it hears a leader stays
   * in force. The host steps what arrived during the stall, and the answers to the heartbeat these
   * ticks send, before then; a timeout still due once the hold ends acts as it would have.
   */
  catchUp(n: number, lateTicks = 0): void {
    if (n <= 0) return;
    if (lateTicks >= this.#cfg.heartbeatTicks) this.#holdUntil = Math.max(this.#holdUntil, this.#ticks + n + this.#cfg.stallGraceTicks);
    for (let i = 0; i < n; i++) this.tick();
  }

  /** How often a stall held a timeout (`held`), and how often what was read meanwhile then averted it (`averted`: the member kept its role). */
  get stallHolds(): { held: number; averted: number } { return { held: this.#stallHeld, averted: this.#stallAverted }; }

  #holdDecision(kind: 'leader' | 'campaign'): void {
    if (this.#heldDecision === kind) return;
    this.#heldDecision = kind;
    this.#stallHeld++;
  }

  /**
   * How many more tick() calls until one does more than count: a leader's heartbeat or quorum check,
   * a follower's or candidate's election timeout (at least 1; Infinity when no tick ever will: a
   * member that cannot campaign, a leader with nobody to send to). The ticks before it change
   * nothing but counters, so a host may sleep until then and feed them in one batch, as long as it
   * does so before the next message or time-dependent read (RaftHost catches up first). A timeout
   * held by a stall (catchUp) is due when the hold ends.
   */
  ticksUntilDue(): number {
    const holdLeft = this.#holdUntil - this.#ticks;
    if (this.#role === 'leader') {
      let alone = true;
      for (const id of this.#progress.keys()) if (id !== this.id) alone = false;
      if (alone && this.#leadTransferee === null) return Infinity;
      const check = this.#electionElapsed >= this.#cfg.electionTicks ? holdLeft : this.#cfg.electionTicks - this.#electionElapsed;
      return Math.max(1, Math.min(check, this.#cfg.heartbeatTicks - this.#heartbeatElapsed));
    }
    if (!this.#promotable()) {
      // Only forgetting a silent leader is due (tick()).
      if (this.#leader === null || this.#role !== 'follower') return Infinity;
      return Math.max(1, this.#cfg.electionTicks - this.#electionElapsed, holdLeft);
    }
    return Math.max(1, this.#randomizedTimeout - this.#electionElapsed, holdLeft);
  }

  /** Starts an election now (pre-vote first when enabled). A one-voter cluster elects itself at once. */
  campaign(transfer = false): void {
    if (!this.#promotable() || this.#role === 'leader') return;
    if (this.#cfg.preVote && !transfer) this.#campaign('pre', false);
    else this.#campaign('real', transfer);
  }

  propose(data: Uint8Array, type: EntryType = EntryType.normal): ProposeResult {
    if (this.#role !== 'leader') return { ok: false, reason: 'not-leader' };
    if (this.#leadTransferee !== null) return { ok: false, reason: 'transferring' };
    if (type === EntryType.config) {
      if (this.#pendingConfIndex > this.#log.applied) return { ok: false, reason: 'conf-pending' };
      this.#pendingConfIndex = this.#log.lastIndex() + 1;
    }
    const entry: Entry = { term: this.#term, index: this.#log.lastIndex() + 1, type, data };
    this.#log.append([entry]);
    this.#needBroadcast = true;
    return { ok: true, index: entry.index, term: entry.term };
  }

  /** Hands leadership to `to` (must be a voter): catch it up, then TimeoutNow. */
  transferLeadership(to: NodeId): boolean {
    if (this.#role !== 'leader' || to === this.id || !this.isVoter(to)) return false;
    const pr = this.#progress.get(to);
    if (!pr) return false;
    this.#leadTransferee = to;
    this.#electionElapsed = 0;
    if (pr.match === this.#log.lastIndex()) this.#send({ ...emptyMessage('timeout-now', this.id, to, this.#term) });
    else this.#sendAppend(to);
    return true;
  }

  step(m: Message): void {
    if (this.#fresh) this.#freshCheck(m);
    this.#noteHeard(m);
    if (this.#rebuilding && !this.#fresh && (m.type === 'prevote' || m.type === 'vote')) {
      // Rebuilding: it may have voted in this very term before it lost its storage. No answer
      // either (a refusal would carry no term worth telling); the candidate times out. The term
      // of a real election is taken on (as any member would), without a vote: it may be a term
      // it voted in before the loss, above the term of the leader it follows, and the rebuild
      // must end in a term at least as high (README.md, "A rebuilt member does not vote").
      if (m.type === 'vote' && m.term > this.#term) this.#becomeFollower(m.term, null);
      this.#refuseBehind(m);
      return;
    }
    if (m.term > this.#term) {
      if (m.type === 'prevote' || m.type === 'vote') {
        // Just (re)started counts as having heard a leader: we may have acknowledged its heartbeat
        // before a crash, and its lease must still run out before we help elect someone else.
        const heard = this.#leader !== null || this.#ticks < this.#cfg.electionTicks;
        // Just stalled (catchUp): the election timeout it reached may be only its own stall, and the
        // leader's heartbeats are still unread; until the hold ends it helps no one replace that leader.
        const inLease = this.#cfg.checkQuorum && heard && (this.#electionElapsed < this.#cfg.electionTicks || this.#ticks < this.#holdUntil);
        // We hear a leader, or our own lease as leader may still run: do not help anyone replace it.
        if ((inLease || this.#ticks < this.#ownLeaseEnd) && m.context !== 1) { this.#refuseBehind(m); return; }
      }
      if (m.type === 'prevote' || (m.type === 'prevote-resp' && !m.reject)) {
        // A pre-vote never changes terms; a granted pre-vote response carries the future term.
      } else if (m.type === 'append' || m.type === 'heartbeat' || m.type === 'snapshot') {
        this.#becomeFollower(m.term, m.from);
      } else {
        this.#becomeFollower(m.term, null);
      }
    } else if (m.term < this.#term) {
      if ((this.#cfg.checkQuorum || this.#cfg.preVote) && (m.type === 'append' || m.type === 'heartbeat')) {
        // A stale leader cut off for a while: tell it the term so it steps down.
        this.#send(emptyMessage('append-resp', this.id, m.from, this.#term));
      } else if (m.type === 'prevote') {
        this.#send({ ...this.#voteAnswer('prevote-resp', m.from, this.#term), reject: true });
      } else if (m.type === 'vote') {
        this.#refuseBehind(m);
      }
      return;
    }
    if (this.#rebuilding && this.#vote === null && (m.type === 'append' || m.type === 'heartbeat' || m.type === 'snapshot')) {
      // Rebuilding, the term a leader tells comes with that leader as our vote: on disk with the
      // term, so a restart before the rebuild ends cannot vote for anyone else in it (a vote for the
      // leader the term already has elects nobody new).
      this.#vote = m.from;
    }

    switch (m.type) {
      case 'prevote':
      case 'vote': {
        const canVote = this.#vote === m.from || (this.#vote === null && this.#leader === null) || (m.type === 'prevote' && m.term > this.#term);
        const ownLease = this.#ticks < this.#ownLeaseEnd && m.context !== 1;
        // A candidate whose log ends below a commit index this member heard of lacks committed
        // entries (#heard): never a correct leader, whatever its last term.
        const granted = canVote && !ownLease && m.index >= this.heardCommit && this.#coversKnown(m.index, m.logTerm) && this.#log.isUpToDate(m.index, m.logTerm);
        const respType = m.type === 'prevote' ? 'prevote-resp' : 'vote-resp';
        // The answer tells the candidate the highest commit index heard of here (older members send
        // 0): one whose log ends below it stops campaigning at once (#noteHeard).
        this.#send({ ...this.#voteAnswer(respType, m.from, granted ? m.term : this.#term), reject: !granted });
        if (granted && m.type === 'vote') {
          this.#electionElapsed = 0;
          this.#vote = m.from;
        }
        return;
      }
      default:
        break;
    }

    switch (this.#role) {
      case 'leader': this.#stepLeader(m); return;
      case 'candidate':
      case 'pre-candidate': this.#stepCandidate(m); return;
      case 'follower': this.#stepFollower(m); return;
    }
  }

  /**
   * Takes out of the outgoing queue the heartbeats and heartbeat answers of `persistedTerm` (the term
   * the host has on disk), for the host to send at once rather than after the Ready in progress is
   * persisted. They carry no entries, no vote and no term that is not on disk yet, so nothing an
   * fsync protects: a follower's answer promises only that it refuses to help elect anyone else for
   * an election timeout from now, which it keeps in memory (and a restarted member keeps by the
   * just-started rule in step()). Waiting behind a WAL write or fsync that is under way only delays
   * them: the leader lease (leaseValid) counts from a heartbeat's send tick, so a late answer is a
   * shorter lease, and with one voter dead the lease rests on one member's answers alone.
   */
  takeHeartbeats(persistedTerm: number): Message[] {
    if (this.#msgs.length === 0) return [];
    const out: Message[] = [];
    const keep: Message[] = [];
    for (const m of this.#msgs) {
      if ((m.type === 'heartbeat' || m.type === 'heartbeat-resp') && m.term === persistedTerm) out.push(m);
      else keep.push(m);
    }
    if (out.length === 0) return out;
    this.#msgs = keep;
    // Ticks caught up after a stall queue one heartbeat per heartbeat interval missed; only the
    // newest to each member says anything (its send tick is the one the lease counts from).
    const newest = new Map<string, Message>();
    for (const m of out) newest.set(`${m.type} ${m.to}`, m);
    return [...newest.values()];
  }

  // ---- the Ready cycle -------------------------------------------------------------------------

  hasReady(): boolean {
    if (this.#needBroadcast) return true;
    if (this.#msgs.length > 0 || this.#log.pendingSnapshot !== undefined) return true;
    if (Math.max(this.#log.stabled, this.#log.inProgress) < this.#log.lastIndex() || this.#log.nextCommitted(1).length > 0) return true;
    if (!sameHard(this.hardState(), this.#prevHard)) return true;
    return this.#role !== this.#prevSoft.role || this.#leader !== this.#prevSoft.leader;
  }

  ready(): Ready {
    if (this.#needBroadcast) {
      this.#needBroadcast = false;
      this.#broadcastAppend();
    }
    const hard = this.hardState();
    const entries = this.#log.unstable();
    const rd: Ready = {
      mustSync: entries.length > 0 || hard.term !== this.#prevHard.term || hard.vote !== this.#prevHard.vote,
      entries,
      committedEntries: this.#log.nextCommitted(),
      messages: this.#msgs,
    };
    this.#msgs = [];
    if (!sameHard(hard, this.#prevHard)) rd.hardState = hard;
    if (this.#log.pendingSnapshot) rd.snapshot = this.#log.pendingSnapshot;
    if (this.#role !== this.#prevSoft.role || this.#leader !== this.#prevSoft.leader) rd.softState = { role: this.#role, leader: this.#leader };
    return rd;
  }

  /** The host has persisted, sent and applied `rd` (accept + persisted in one step). */
  advance(rd: Ready): void {
    this.accept(rd);
    const last = rd.entries[rd.entries.length - 1];
    if (last) this.persisted(last.index, last.term);
    else this.#maybeSelfMatch();
  }

  /**
   * Pipelined hosts (etcd's async storage writes): the host has taken `rd` on, applied its committed
   * entries and started writing its entries, but they may not be durable yet. The next ready()
   * hands out only what came after; persisted() reports the write durable later, in order.
   */
  accept(rd: Ready): void {
    if (rd.hardState) this.#prevHard = rd.hardState;
    if (rd.softState) this.#prevSoft = rd.softState;
    if (rd.snapshot && this.#log.pendingSnapshot === rd.snapshot) this.#log.pendingSnapshot = undefined;
    const last = rd.entries[rd.entries.length - 1];
    if (last && last.index > this.#log.inProgress && this.#log.term(last.index) === last.term) this.#log.inProgress = last.index;
    for (const e of rd.committedEntries) {
      if (e.index <= this.#log.applied) continue;
      this.#log.applied = e.index;
      if (e.type === EntryType.config) this.#applyConf(e);
    }
  }

  /**
   * Entries up to `index` (of `term`) are durable on this member. A report whose entry was replaced
   * meanwhile (a newer leader truncated it) is ignored: the replacement is reported on its own.
   */
  persisted(index: number, term: number): void {
    if (index > this.#log.stabled && this.#log.term(index) === term) {
      this.#log.stabled = index;
      if (this.#log.inProgress < index) this.#log.inProgress = index;
    }
    this.#maybeSelfMatch();
  }

  /** A leader's own log counts toward the commit only up to what is durable here. */
  #maybeSelfMatch(): void {
    if (this.#role === 'leader') {
      const self = this.#progress.get(this.id);
      if (self && this.#log.stabled > self.match) {
        self.match = this.#log.stabled;
        if (this.#maybeCommit()) this.#broadcastAppend();
      }
    }
  }

  /**
   * Builds a snapshot of the applied state (the host persists it, then calls compact); undefined
   * while a snapshot from the leader is being installed (the state is about to be replaced).
   */
  snapshotAt(index: number, data: Uint8Array): Snapshot | undefined {
    if (this.#log.pendingSnapshot !== undefined || index !== this.#log.applied) return undefined;
    const term = this.#log.term(index);
    if (term === undefined) return undefined;
    return { meta: { index, term, conf: cloneConf(this.#conf) }, data };
  }

  /** The host saved `snapshot`: drop the log up to `keepFrom - 1` and serve the snapshot to laggards. */
  compact(snapshot: Snapshot, keepFrom: number = snapshot.meta.index + 1): void {
    this.#snapshot = snapshot;
    const upTo = Math.min(snapshot.meta.index, keepFrom - 1);
    const term = this.#log.term(upTo);
    if (term !== undefined && upTo > this.#log.snapIndex) this.#log.compact(upTo, term);
  }

  // ---- a fresh start ---------------------------------------------------------------------------

  /**
   * Fresh: does `m` show that the cluster committed something before this member came? Any peer's
   * commit index above 0 does: a candidate's (vote requests carry it), a leader's append, a
   * heartbeat (its commit is at most what this member acknowledged: it acknowledged entries it no
   * longer holds), and a snapshot (applied, so committed, entries). A new cluster shows none until
   * its first commit, and the majority that acknowledged that entry took appends of commit 0 and
   * joined (#handleAppend): from there a majority are members and elect among themselves, so a
   * member turned rebuilding by this always has a leader to catch it up once they are up. What a
   * member that never learned a commit index shows is not covered (README.md).
   */
  #freshCheck(m: Message): void {
    switch (m.type) {
      case 'prevote':
      case 'vote':
        if (m.commit > 0) this.#endFresh({ from: m.from, term: m.term, why: 'candidate-commit', index: m.commit });
        return;
      case 'heartbeat':
      case 'append':
        if (m.commit > 0) this.#endFresh({ from: m.from, term: m.term, why: 'leader-commit', index: m.commit });
        return;
      case 'snapshot':
        this.#endFresh({ from: m.from, term: m.term, why: 'snapshot', index: m.index });
        return;
      default:
        return;
    }
  }

  #endFresh(evidence: FreshEvidence): void {
    this.#fresh = false;
    this.#freshEvidence = evidence;
    // A campaign under way was started as a fresh member: it is abandoned (a rebuilding member
    // does not stand).
    if (this.#role === 'candidate' || this.#role === 'pre-candidate') this.#becomeFollower(this.#term, null);
  }

  // ---- roles -----------------------------------------------------------------------------------

  #promotable(): boolean {
    return this.isVoter() && this.#log.pendingSnapshot === undefined && (!this.#rebuilding || this.#fresh) && this.#log.lastIndex() >= this.#heard && this.#holdsKnown();
  }

  /** Whether this member's log holds the newest committed entry known past its commit (#heardEntry). */
  #holdsKnown(): boolean {
    const e = this.#knownEntry();
    return e === undefined || this.#log.term(e.index) === e.term;
  }

  /**
   * Every commit index a message shows is one the cluster reached (#heard): a leader's append and
   * heartbeat (capped at the member's match in `commit`, the leader's own in `hint`), a candidate's
   * request, a voter's answer, a snapshot's index. A campaign of this member whose log ends below
   * it is abandoned: it lacks committed entries, so it could not be a correct leader.
   */
  #noteHeard(m: Message): void {
    let seen = 0;
    // A committed entry whose term the message shows: (index, term).
    let entry: [number, number] = [0, 0];
    switch (m.type) {
      case 'append':
      case 'prevote':
      case 'vote':
        seen = m.commit;
        break;
      case 'prevote-resp':
      case 'vote-resp':
        seen = m.commit;
        entry = [m.index, m.logTerm];
        break;
      case 'heartbeat':
        seen = Math.max(m.commit, m.hint);
        entry = [m.commit, m.logTerm];
        break;
      case 'snapshot':
        seen = m.index;
        entry = [m.index, m.logTerm];
        break;
      default:
        return;
    }
    const [index, term] = entry;
    const newEntry = term > 0 && index > this.#log.committed && index > (this.#heardEntry?.index ?? 0);
    if (newEntry) this.#heardEntry = { index, term };
    if (seen <= this.#heard && !newEntry) return;
    this.#heard = Math.max(this.#heard, seen, newEntry ? index : 0);
    if ((this.#role === 'candidate' || this.#role === 'pre-candidate') && (this.#log.lastIndex() < this.#heard || !this.#holdsKnown())) this.#becomeFollower(this.#term, null);
  }

  /**
   * A (pre-)vote request this member leaves unanswered (it hears a leader, it just started, its own
   * lease may run, it is rebuilding, the request is of an older term) from a candidate whose log ends
   * below the highest commit index heard of here: refused after all, the answer carrying that index,
   * so the candidate, which lacks committed entries, stops campaigning at once (#noteHeard) instead
   * of winning with a voter that cannot tell. Silence had let a member restored from an old backup
   * be elected while the one member holding the entries it had helped commit had just restarted
   * (simulator, loose restores: seeds 2292, 3487). A refusal helps no one win, so it is sent
   * whatever held the answer back.
   */
  #refuseBehind(m: Message): void {
    if (m.index >= this.heardCommit && this.#coversKnown(m.index, m.logTerm)) return;
    this.#send({ ...this.#voteAnswer(m.type === 'prevote' ? 'prevote-resp' : 'vote-resp', m.from, this.#term), reject: true });
  }

  /**
   * A (pre-)vote answer with what this member knows was committed: the highest commit index
   * (`commit`) and the newest committed entry whose term it knows (`index`, `logTerm`).
   */
  #voteAnswer(type: 'prevote-resp' | 'vote-resp', to: NodeId, term: number): Message {
    const known = this.#newestCommitted();
    return { ...emptyMessage(type, this.id, to, term), commit: this.heardCommit, index: known.index, logTerm: known.term };
  }

  #resetRandomizedTimeout(): void {
    const factor = this.isWitness() ? this.#cfg.witnessFactor : 1;
    this.#randomizedTimeout = this.#cfg.electionTicks * factor + this.#cfg.random.int(this.#cfg.electionSpreadTicks * factor);
  }

  #reset(term: number): void {
    if (this.#role === 'leader') this.#ownLeaseEnd = Math.max(this.#ownLeaseEnd, this.#leaseEnd());
    if (term !== this.#term) {
      this.#term = term;
      this.#vote = null;
    }
    this.#leader = null;
    this.#electionElapsed = 0;
    this.#heartbeatElapsed = 0;
    this.#resetRandomizedTimeout();
    this.#votes.clear();
    this.#heldDecision = null;
    this.#leadTransferee = null;
    this.#needBroadcast = false;
    this.#progress.clear();
  }

  #becomeFollower(term: number, leader: NodeId | null): void {
    this.#reset(term);
    this.#role = 'follower';
    this.#leader = leader;
  }

  #campaign(kind: 'pre' | 'real', transfer: boolean): void {
    let term: number;
    if (kind === 'pre') {
      this.#reset(this.#term);
      this.#role = 'pre-candidate';
      term = this.#term + 1;
    } else {
      this.#reset(this.#term + 1);
      this.#role = 'candidate';
      this.#vote = this.id;
      term = this.#term;
    }
    this.#votes.set(this.id, true);
    if (voteResult(this.#conf.voters, this.#votes) === 'won') {
      if (kind === 'pre') this.#campaign('real', false);
      else this.#becomeLeader();
      return;
    }
    for (const id of this.#conf.voters) {
      if (id === this.id) continue;
      this.#send({
        ...emptyMessage(kind === 'pre' ? 'prevote' : 'vote', this.id, id, term),
        // The commit index tells a fresh member that the cluster committed something before it
        // came (#freshCheck); members from before it send 0 here.
        index: this.#log.lastIndex(), logTerm: this.#log.lastTerm(), commit: this.#log.committed, context: transfer ? 1 : 0,
      });
    }
  }

  #becomeLeader(): void {
    if (this.#fresh) {
      // Elected while fresh: no peer showed a commit index, a new cluster whose history is this
      // member's own from here.
      this.#fresh = false;
      this.#rebuilding = false;
      this.#rebuilt = { leader: this.id, term: this.#term, index: 0 };
    }
    this.#reset(this.#term);
    this.#role = 'leader';
    this.#leader = this.id;
    for (const id of [...this.#conf.voters, ...this.#conf.learners]) this.#progress.set(id, this.#newProgress());
    const self = this.#progress.get(this.id);
    if (self) { self.match = this.#log.stabled; self.recentActive = true; }
    // Anything uncommitted may hold a membership change: allow the next one only once it applies.
    this.#pendingConfIndex = this.#log.lastIndex();
    // An empty entry of this term: the only way to commit entries of earlier terms.
    this.#log.append([{ term: this.#term, index: this.#log.lastIndex() + 1, type: EntryType.normal, data: new Uint8Array(0) }]);
    this.#broadcastAppend();
    this.#broadcastHeartbeat();
  }

  #newProgress(): Progress {
    return { match: 0, next: this.#log.lastIndex() + 1, state: 'probe', probeSent: false, inflight: [], recentActive: false, ackedTick: -Infinity, pendingSnapshot: 0, snapshotOffset: 0, acked: 0 };
  }

  #quorumActive(): boolean {
    let active = 0;
    for (const id of this.#conf.voters) {
      const pr = this.#progress.get(id);
      if (id === this.id || pr?.recentActive) active++;
      if (pr && id !== this.id) pr.recentActive = false;
    }
    return active > Math.floor(this.#conf.voters.length / 2);
  }

  // ---- leader ----------------------------------------------------------------------------------

  #stepLeader(m: Message): void {
    const pr = this.#progress.get(m.from);
    if (!pr) return;
    pr.recentActive = true;
    switch (m.type) {
      case 'append-resp': {
        if (m.reject) {
          if (m.index === pr.match && m.hint < pr.match) this.#notePeerLoss(m.from, pr.match, m.hint);
          if (this.#decrease(pr, m.index, m.hint)) {
            if (pr.state === 'replicate') this.#toProbe(pr);
            this.#sendAppend(m.from);
          }
          return;
        }
        const wasPaused = this.#paused(pr);
        if (m.index > pr.match) {
          pr.match = m.index;
          pr.acked = Math.max(pr.acked, m.index);
          pr.next = Math.max(pr.next, m.index + 1);
          if (pr.state === 'probe') this.#toReplicate(pr);
          else if (pr.state === 'snapshot' && pr.match >= pr.pendingSnapshot) this.#toProbe(pr);
          else if (pr.state === 'replicate') pr.inflight = pr.inflight.filter((i) => i > m.index);
          if (this.#maybeCommit()) this.#broadcastAppend();
          else if (wasPaused) this.#sendAppend(m.from);
          while (this.#sendAppend(m.from, true)) { /* keep the pipe full */ }
          this.#maybeHandOver(m.from, pr);
        } else if (pr.state === 'probe') {
          pr.probeSent = false;
        }
        return;
      }
      case 'heartbeat-resp': {
        pr.ackedTick = Math.max(pr.ackedTick, m.context);
        if (m.reject && m.hint < pr.match) {
          // It lost the entries it had acknowledged (see #decrease): probe from where its log ends.
          this.#notePeerLoss(m.from, pr.match, m.hint);
          pr.match = m.hint;
          this.#toProbe(pr);
          this.#sendAppend(m.from);
          return;
        }
        if (pr.state === 'probe') pr.probeSent = false;
        else if (pr.state === 'replicate' && pr.inflight.length >= this.#cfg.maxInflight) pr.inflight.shift();
        else if (pr.state === 'snapshot') { this.#sendSnapshotChunk(m.from, pr); return; } // a chunk or its answer was lost
        if (pr.match < this.#log.lastIndex()) this.#sendAppend(m.from);
        // A witness leader whose hand-over was abandoned (its target paused or restarting past an
        // election timeout) tries again with the next caught-up server that answers: an append
        // answer may never come when nothing new is written, and the witness would lead for good.
        else if (this.#leadTransferee === null && this.isWitness()) this.#maybeHandOver(m.from, pr);
        return;
      }
      case 'snapshot-resp': {
        if (pr.state !== 'snapshot' || m.index !== pr.pendingSnapshot) return;
        if (m.reject) { this.#toProbe(pr); pr.next = pr.match + 1; this.#sendAppend(m.from); return; }
        if (m.done === true) {
          pr.match = Math.max(pr.match, m.index);
          pr.acked = Math.max(pr.acked, pr.match);
          this.#toProbe(pr);
          pr.next = pr.match + 1;
          this.#sendAppend(m.from);
          return;
        }
        if ((m.offset ?? 0) <= pr.snapshotOffset) return; // a duplicate or stale answer
        pr.snapshotOffset = m.offset ?? 0;
        this.#sendSnapshotChunk(m.from, pr);
        return;
      }
      default:
        return;
    }
  }

  /** Witness leaders and transfers: once the target (or any server voter) is caught up, hand over. */
  #maybeHandOver(from: NodeId, pr: Progress): void {
    if (pr.match !== this.#log.lastIndex()) return;
    if (this.#leadTransferee === from) {
      this.#send(emptyMessage('timeout-now', this.id, from, this.#term));
    } else if (this.#leadTransferee === null && this.isWitness() && this.isVoter(from) && !this.isWitness(from)) {
      this.#leadTransferee = from;
      this.#send(emptyMessage('timeout-now', this.id, from, this.#term));
    }
  }

  #decrease(pr: Progress, rejected: number, hint: number): boolean {
    if (rejected === pr.match && hint < pr.match) {
      // The follower lacks the entry it acknowledged last and says its log ends below it: it lost
      // its storage (a member rebuilt with an empty directory after damage, cluster/raft/README.md
      // "Damaged storage"). Probe from where it says its log ends: it gets the entries, or the
      // snapshot, again. Without this the leader never went below match + 1 and re-sent the same
      // rejected append at once, for good (a busy loop on both). The commit index never goes
      // back, so lowering match changes nothing already decided; a stale duplicate of an old
      // rejection costs a re-send of entries the follower still has.
      pr.match = hint;
      this.#toProbe(pr);
      return true;
    }
    if (pr.state === 'replicate') {
      if (rejected <= pr.match) return false;
      pr.next = pr.match + 1;
      return true;
    }
    if (pr.next - 1 !== rejected) return false; // an old rejection
    pr.next = Math.max(Math.min(rejected, hint + 1), pr.match + 1, 1);
    pr.probeSent = false;
    return true;
  }

  #notePeerLoss(peer: NodeId, acked: number, lastIndex: number): void {
    if (this.#peerLosses.length >= 16) this.#peerLosses.shift();
    this.#peerLosses.push({ peer, term: this.#term, acked, lastIndex });
  }

  #toProbe(pr: Progress): void {
    pr.state = 'probe';
    pr.probeSent = false;
    pr.inflight = [];
    pr.pendingSnapshot = 0;
    pr.next = pr.match + 1;
  }

  #toReplicate(pr: Progress): void {
    pr.state = 'replicate';
    pr.inflight = [];
    pr.next = pr.match + 1;
  }

  #paused(pr: Progress): boolean {
    if (pr.state === 'probe') return pr.probeSent;
    if (pr.state === 'replicate') return pr.inflight.length >= this.#cfg.maxInflight;
    return true;
  }

  #maybeCommit(): boolean {
    const index = committedIndex(this.#conf.voters, (id) => this.#progress.get(id)?.match ?? 0);
    if (index > this.#log.committed && this.#log.term(index) === this.#term) return this.#log.commitTo(index);
    return false;
  }

  /** Sends entries from pr.next. `onlyEntries`: do nothing when there is nothing new to send. */
  #sendAppend(to: NodeId, onlyEntries = false): boolean {
    const pr = this.#progress.get(to);
    if (!pr || to === this.id || this.#paused(pr)) return false;
    const prevIndex = pr.next - 1;
    const prevTerm = this.#log.term(prevIndex);
    const entries = this.#log.slice(pr.next, this.#log.lastIndex() + 1, this.#cfg.maxEntriesPerMessage);
    if (prevTerm === undefined || entries === undefined) {
      if (onlyEntries) return false;
      return this.#startSnapshot(to, pr);
    }
    if (onlyEntries && entries.length === 0) return false;
    this.#send({ ...emptyMessage('append', this.id, to, this.#term), index: prevIndex, logTerm: prevTerm, entries, commit: this.#log.committed });
    const last = entries[entries.length - 1];
    if (pr.state === 'replicate') {
      if (last) {
        pr.next = last.index + 1;
        pr.inflight.push(last.index);
      }
    } else {
      pr.probeSent = true;
    }
    return true;
  }

  #startSnapshot(to: NodeId, pr: Progress): boolean {
    const snap = this.#snapshot;
    if (!snap || !pr.recentActive) return false;
    pr.state = 'snapshot';
    pr.pendingSnapshot = snap.meta.index;
    pr.snapshotOffset = 0;
    pr.inflight = [];
    this.#sendSnapshotChunk(to, pr);
    return true;
  }

  #sendSnapshotChunk(to: NodeId, pr: Progress): void {
    const snap = this.#snapshot;
    if (!snap || snap.meta.index !== pr.pendingSnapshot) { this.#toProbe(pr); return; }
    const offset = pr.snapshotOffset;
    const end = Math.min(snap.data.length, offset + this.#cfg.snapshotChunkBytes);
    const chunk: Snapshot = { meta: snap.meta, data: snap.data.subarray(offset, end) };
    this.#send({ ...emptyMessage('snapshot', this.id, to, this.#term), index: snap.meta.index, logTerm: snap.meta.term, snapshot: chunk, offset, done: end === snap.data.length });
  }

  #broadcastAppend(): void {
    for (const id of this.#progress.keys()) if (id !== this.id) this.#sendAppend(id);
  }

  #broadcastHeartbeat(): void {
    for (const [id, pr] of this.#progress) {
      if (id === this.id) continue;
      const commit = Math.min(pr.match, this.#log.committed);
      this.#send({ ...emptyMessage('heartbeat', this.id, id, this.#term), commit, logTerm: this.#log.term(commit) ?? 0, index: pr.acked, hint: this.#log.committed, context: this.#ticks });
    }
  }

  // ---- candidate and follower ------------------------------------------------------------------

  #stepCandidate(m: Message): void {
    switch (m.type) {
      case 'append':
      case 'heartbeat':
      case 'snapshot':
        this.#becomeFollower(this.#term, m.from);
        this.#stepFollower(m);
        return;
      case 'prevote-resp':
      case 'vote-resp': {
        if ((m.type === 'prevote-resp') !== (this.#role === 'pre-candidate')) return;
        this.#votes.set(m.from, !m.reject);
        const result = voteResult(this.#conf.voters, this.#votes);
        if (result === 'won') {
          if (this.#role === 'pre-candidate') this.#campaign('real', false);
          else this.#becomeLeader();
        } else if (result === 'lost') {
          this.#becomeFollower(this.#term, null);
        }
        return;
      }
      default:
        return;
    }
  }

  #stepFollower(m: Message): void {
    switch (m.type) {
      case 'append': {
        this.#electionElapsed = 0;
        this.#leader = m.from;
        this.#handleAppend(m);
        return;
      }
      case 'heartbeat': {
        this.#electionElapsed = 0;
        this.#leader = m.from;
        // m.logTerm: the term of the leader's entry at m.commit (older leaders send 0). Ours differs
        // there: this log is not the one we acknowledged to this leader (a state directory put back
        // from a copy holding other, uncommitted entries at those indexes), gone back in time too.
        const diverged = m.logTerm !== 0 && m.commit > this.#log.committed && m.commit <= this.#log.lastIndex() && this.#log.term(m.commit) !== m.logTerm;
        // The leader counts entries up to m.commit as ours and we lack them: the storage was lost
        // (a member rebuilt empty). Say where the log ends, or an idle leader, with nothing new
        // to append, would never send them, and a rebuilding member would not vote for as long.
        // m.index: what we acknowledged to this leader (older leaders send 0); our log ending
        // below it went back in time (#noteAmnesia).
        if (m.index > this.#log.lastIndex() || diverged) this.#noteAmnesia(m.from, m.index, diverged ? m.commit : undefined);
        const lost = m.commit > this.#log.lastIndex() || m.index > this.#log.lastIndex() || diverged;
        // Committed only where our log is known to be the leader's: not from a log that lost what it
        // acknowledged (a copy put back may hold entries of an older term at those indexes; before,
        // they were applied as committed: simulator seed 16408, loose restores).
        if (!lost && m.commit > this.#log.committed) this.#log.commitTo(m.commit);
        this.#send({ ...emptyMessage('heartbeat-resp', this.id, m.from, this.#term), context: m.context, ...(lost ? { reject: true, hint: diverged ? this.#log.committed : this.#log.lastIndex() } : {}) });
        // An idle leader's commit may reach us only here (an append carrying it was not sent while
        // the member's flow was paused).
        if (!lost) this.#maybeRebuilt(m.from, m.commit);
        return;
      }
      case 'snapshot': {
        this.#electionElapsed = 0;
        this.#leader = m.from;
        this.#handleSnapshot(m);
        return;
      }
      case 'timeout-now':
        if (this.#promotable() && !this.#rebuilding) this.#campaign('real', true);
        return;
      default:
        return;
    }
  }

  #handleAppend(m: Message): void {
    const resp = emptyMessage('append-resp', this.id, m.from, this.#term);
    if (m.index < this.#log.committed) {
      this.#send({ ...resp, index: this.#log.committed });
      return;
    }
    if (this.#log.matchTerm(m.index, m.logTerm)) {
      const last = this.#log.maybeAppend(m.index, m.entries);
      const commit = Math.min(m.commit, last);
      if (commit > this.#log.committed) this.#log.commitTo(commit);
      this.#send({ ...resp, index: last });
      if (this.#fresh && this.#vote !== null) {
        // Still fresh: the leader knows no commit index (#freshCheck), so the cluster has committed
        // nothing yet, as far as anyone this member heard knows: a new cluster, whose history is
        // this member's own from here (its vote in this term is recorded): it joins as any member.
        this.#fresh = false;
        this.#rebuilding = false;
        this.#rebuilt = { leader: m.from, term: this.#term, index: 0 };
        return;
      }
      this.#maybeRebuilt(m.from, m.commit);
      return;
    }
    // Mismatch: hint the leader at our last index, or below the conflicting term.
    let hint = Math.min(m.index - 1, this.#log.lastIndex());
    const conflictTerm = this.#log.term(hint);
    if (conflictTerm !== undefined) {
      while (hint > this.#log.committed && (this.#log.term(hint - 1) ?? 0) === conflictTerm && conflictTerm > m.logTerm) hint--;
    }
    this.#send({ ...resp, index: m.index, reject: true, hint: Math.max(hint, this.#log.committed) });
  }

  /**
   * Rebuilding: `commit` from leader `from` of this term, and this member's log holds it. Caught up
   * once the entry at that commit index is of the leader's own term: the commit index then covers
   * every entry committed before its term (a new leader's commit index can lag until its first
   * entry commits), which includes every entry committed before the storage was lost (a leader
   * holds all committed entries), and the same index and term in both logs make them the same up
   * to it: its log is a fair yardstick for a candidate's again. From here it votes as any member:
   * in this term only for its recorded vote (the leader, set when the term was learned, or a vote
   * a fresh member cast in it), in later terms once each.
   */
  #maybeRebuilt(from: NodeId, commit: number): void {
    if (!this.#rebuilding || this.#fresh || commit < 1 || this.#vote === null) return;
    if (this.#log.lastIndex() < commit || this.#log.term(commit) !== this.#term) return;
    // Gone back in time: also past every entry it had acknowledged (#noteAmnesia).
    if (this.#log.lastIndex() < this.#mustReach) return;
    this.#rebuilding = false;
    this.#rebuilt = { leader: from, term: this.#term, index: commit };
  }

  /**
   * A leader of this term says this member acknowledged entries up to `acked`, and its log ends
   * below that: its state went back in time (restored from an old backup, copied back). It has
   * forgotten votes it cast and entries committed with its help, so from here it is rebuilding:
   * no vote, no pre-vote, no campaign, its vote in this term recorded for this leader, until its
   * log holds that leader's commit index in the leader's term and reaches past `acked` (the
   * leader lowered its match, so it counts toward no commit above what it holds meanwhile).
   */
  #noteAmnesia(leader: NodeId, acked: number, divergedAt?: number): void {
    this.#mustReach = Math.max(this.#mustReach, acked);
    if (!this.#rebuilding || this.#amnesia === undefined) {
      this.#amnesia = { leader, term: this.#term, acked, lastIndex: this.#log.lastIndex(), ...(divergedAt !== undefined ? { divergedAt } : {}) };
    }
    this.#amnesiaNew = true;
    this.#rebuilding = true;
    this.#fresh = false;
    this.#rebuilt = undefined;
    if (this.#vote === null) this.#vote = leader;
  }

  #handleSnapshot(m: Message): void {
    const chunk = m.snapshot;
    const resp = { ...emptyMessage('snapshot-resp', this.id, m.from, this.#term), index: m.index };
    if (!chunk) return;
    const offset = m.offset ?? 0;
    if (chunk.meta.index <= this.#log.committed || this.#log.matchTerm(chunk.meta.index, chunk.meta.term)) {
      // We already hold the entry the snapshot ends at: never throw away entries we may have
      // acknowledged; commit up to it and tell the leader the part known to match (our commit).
      if (chunk.meta.index > this.#log.committed) this.#log.commitTo(chunk.meta.index);
      this.#incoming = undefined;
      this.#send({ ...resp, done: true, index: m.index });
      this.#send({ ...emptyMessage('append-resp', this.id, m.from, this.#term), index: this.#log.committed });
      return;
    }
    if (offset === 0) this.#incoming = { index: chunk.meta.index, term: chunk.meta.term, chunks: [], bytes: 0 };
    const inc = this.#incoming;
    if (inc && inc.index === chunk.meta.index && offset < inc.bytes && offset + chunk.data.length <= inc.bytes) {
      this.#send({ ...resp, offset: inc.bytes }); // a chunk we already have: our answer was lost
      return;
    }
    if (!inc || inc.index !== chunk.meta.index || inc.bytes !== offset) {
      this.#incoming = undefined;
      this.#send({ ...resp, reject: true });
      return;
    }
    inc.chunks.push(chunk.data.slice());
    inc.bytes += chunk.data.length;
    if (m.done !== true) {
      this.#send({ ...resp, offset: inc.bytes });
      return;
    }
    const data = new Uint8Array(inc.bytes);
    let at = 0;
    for (const c of inc.chunks) { data.set(c, at); at += c.length; }
    this.#incoming = undefined;
    const snapshot: Snapshot = { meta: { ...chunk.meta, conf: cloneConf(chunk.meta.conf) }, data };
    this.#log.restoreSnapshot(snapshot);
    // It is also the snapshot this member serves if it leads before it takes one of its own: its log
    // now starts after it, and an older snapshot of its own would not reach a follower's log (the
    // simulator's seed 13159: a leader sent a member its stale snapshot, which the member already
    // covered, in a loop for good; with none, it would have sent nothing).
    this.#snapshot = snapshot;
    this.#conf = cloneConf(snapshot.meta.conf);
    this.#send({ ...resp, done: true });
  }

  // ---- membership ------------------------------------------------------------------------------

  #applyConf(entry: Entry): void {
    const change = decodeConfChange(entry.data);
    if (!change) return;
    applyConfChange(this.#conf, change);
    if (this.#role !== 'leader') return;
    for (const id of [...this.#conf.voters, ...this.#conf.learners]) {
      if (!this.#progress.has(id)) this.#progress.set(id, this.#newProgress());
    }
    for (const id of [...this.#progress.keys()]) {
      if (!this.#conf.voters.includes(id) && !this.#conf.learners.includes(id)) this.#progress.delete(id);
    }
    if (!this.isVoter()) {
      this.#becomeFollower(this.#term, null);
      return;
    }
    if (this.#maybeCommit()) this.#broadcastAppend();
  }

  #send(m: Message): void {
    this.#msgs.push(m);
  }
}

export function applyConfChange(conf: ConfState, change: ConfChange): void {
  const drop = (list: NodeId[], id: NodeId): void => {
    const i = list.indexOf(id);
    if (i >= 0) list.splice(i, 1);
  };
  switch (change.type) {
    case 'add-learner':
      if (!conf.voters.includes(change.id) && !conf.learners.includes(change.id)) conf.learners.push(change.id);
      if (change.witness === true && !conf.witnesses.includes(change.id)) conf.witnesses.push(change.id);
      return;
    case 'promote':
      if (!conf.learners.includes(change.id)) return;
      drop(conf.learners, change.id);
      conf.voters.push(change.id);
      return;
    case 'remove':
      drop(conf.voters, change.id);
      drop(conf.learners, change.id);
      drop(conf.witnesses, change.id);
      return;
  }
}

function cloneConf(c: ConfState): ConfState {
  return { voters: [...c.voters], learners: [...c.learners], witnesses: [...c.witnesses] };
}

function sameHard(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit && (a.heard ?? 0) === (b.heard ?? 0)
    && (a.heardEntry?.index ?? 0) === (b.heardEntry?.index ?? 0) && (a.heardEntry?.term ?? 0) === (b.heardEntry?.term ?? 0);
}
