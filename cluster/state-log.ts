import type { Command } from './commands.js';
import type { AppliedEntry, Fsm } from './fsm.js';
import type { Clock } from '../lib/clock.js';
import { LanhaError } from '../lib/errors.js';
import type { MemberStatusChannel } from './member-status.js';
import type { StopSteps } from '../lib/stop-steps.js';

// What services see of the replicated state. `propose` resolves once the command is durable on a
// majority and applied here; reads go to `fsm` (local state, possibly stale on a follower).

export interface StateLogStatus {
  mode: 'single-node-memory' | 'single-node' | 'cluster';
  role: 'leader' | 'follower' | 'candidate' | 'witness' | 'none';
  leader: string | null;
  term: number;
  commitIndex: number;
  appliedIndex: number;
  [detail: string]: unknown;
}

export interface StateLog {
  readonly fsm: Fsm;
  /** True while this node may propose and answer DHCP (leader with a valid lease). */
  isLeader(): boolean;
  propose(command: Command): Promise<AppliedEntry>;
  status(): StateLogStatus;
  /**
   * Log time now (cluster/log-time.ts): the clock lease expiries are stamped on, for comparing
   * with them. Unlike the wall clock it does not jump when someone steps the leader's clock.
   * Absent: the wall clock stands in.
   */
  logTimeMs?(): number;
  /**
   * The term of the committed entry at `index`, or undefined when it is not committed here or
   * compacted into a snapshot (the ACK audit, cluster/ack-audit.ts). Absent on a backend without
   * terms (etcd).
   */
  committedTerm?(index: number): number | undefined;
  /**
   * The applied state already holds every committed entry, as far as this leader can know: it has
   * applied an entry of its own term (a new leader's empty entry comes first, after every entry of
   * earlier terms), so no lease change of an older leader still waits to apply here. DHCP lease
   * caching answers from the applied state only then. Absent (etcd): never assumed.
   */
  stateCurrent?(): boolean;
  /**
   * When a message of `peer` last reached this member (monotonic ms; null: none since it started).
   * Degraded mode's hand-back reads it: a partner whose Raft messages arrive runs, whatever its reports say.
   */
  peerHeardAt?(peer: string): number | null;
  /** `steps` times its parts (lib/stop-steps.ts) for the daemon's stop lines. */
  close(steps?: StopSteps): Promise<void>;
  /** Why `command` would be refused by the proposal check now (null: it would not, or no check is set). */
  proposalRefusal?(command: Command): string | null;
  /**
   * Sets the check every proposal passes first: a reason string refuses it (the proposal fails with
   * it, nothing is written). The daemon refuses a command some member cannot apply
   * (cluster/apply-level.ts). Absent: the backend proposes everything.
   */
  setProposalCheck?(check: (command: Command) => string | null): void;
  /**
   * Exchanges member reports (role, indexes, version, config hash, ...) with the other members, if
   * the backend can: the Raft backend over its peer connections. Absent or a no-op: only the local
   * member is known in detail.
   */
  attachMemberStatus?(channel: MemberStatusChannel): void;
  /**
   * Calls `listener` when the backend's storage failed for good and only a restart of the process
   * can bring the member back (the Raft WAL after a write or fdatasync error). Returns unsubscribe.
   * Absent: the backend has no such failure.
   */
  onFatal?(listener: (error: Error) => void): () => void;
}

export class NotLeaderError extends LanhaError {
  readonly leader: string | null;
  constructor(leader: string | null) {
    super('not-leader', leader === null ? 'no leader is known right now; try again in a second' : `this node is not the leader; the leader is ${leader}`);
    this.leader = leader;
  }
}

/**
 * The command depended on state that another command changed first (etcd backend: the address's
 * lease key moved on since the proposer read it). Nothing was written; the proposer's state now
 * shows the other command, and the client's retry is decided on it.
 */
export class ConflictError extends LanhaError {
  constructor(message: string) {
    super('conflict', message);
  }
}

/** Log time now from `state` (wall time on a backend without it): what lease expiries are compared with. */
export function logNowMs(state: Pick<StateLog, 'logTimeMs'>, clock: Pick<Clock, 'wallMs'>): number {
  return state.logTimeMs?.() ?? clock.wallMs();
}

/**
 * A StateLog that keeps everything in memory and applies at once. Used by unit tests of services
 * and nowhere that promises durability.
 */
export class MemoryStateLog implements StateLog {
  readonly fsm: Fsm;
  #clock: Clock;
  #index = 0;
  #leader = true;

  constructor(fsm: Fsm, clock: Clock) {
    this.fsm = fsm;
    this.#clock = clock;
  }

  setLeader(leader: boolean): void { this.#leader = leader; }
  isLeader(): boolean { return this.#leader; }
  /** Every proposal applies at once here. */
  stateCurrent(): boolean { return this.#leader; }
  logTimeMs(): number { return Math.max(this.fsm.lastAt, this.#clock.wallMs()); }

  async propose(command: Command): Promise<AppliedEntry> {
    if (!this.#leader) throw new NotLeaderError(null);
    this.#index++;
    const at = Math.max(this.fsm.lastAt, this.#clock.wallMs());
    this.fsm.apply(this.#index, { at, command });
    return { index: this.#index, at, command };
  }

  status(): StateLogStatus {
    return { mode: 'single-node-memory', role: this.#leader ? 'leader' : 'follower', leader: null, term: 1, commitIndex: this.#index, appliedIndex: this.fsm.appliedIndex };
  }

  async close(): Promise<void> { /* nothing held */ }
}
