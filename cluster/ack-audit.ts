import { formatIpv4 } from '../lib/ipv4.js';
import type { Lease } from './fsm.js';

// The ACK audit: after a leadership change, did every lease this node ACKed survive? The DHCP
// server records the log index (and Raft term) of each grant it ACKed in a bounded ring; once the
// new leader's log is settled here, each record is checked against the committed log: an entry at
// that index with that term is the same entry (Raft's log matching), a different term means the
// ACKed entry was replaced, i.e. lost. Where the log no longer holds the index (compacted into a
// snapshot, or a backend without terms: etcd), the lease itself is read: still at that index, or
// changed by a later command (superseded), or older than the ACK (lost).
// The durability promise (DESIGN.md) says the count is always 0; this makes it a checked fact.
// Pure: no clock, no I/O; the daemon feeds it status samples and the log lookup.

export interface AckRecord {
  /** The log index of the committed grant the ACK stated. */
  index: number;
  /** Its Raft term; null on a backend without terms (etcd: a revision, once written, is final). */
  term: number | null;
  ip: number;
  mac: string;
  /** The entry's log time (Lease.changedAt of the grant it made). */
  at: number;
  /** About when the ACK was sent: the wall time its REQUEST came in (shown only). */
  sentAt: number;
}

/** What this node's committed log says of an index: its term, or undefined (compacted away, or no terms). */
export type CommittedTerm = (index: number) => number | undefined;

export interface AuditView {
  commitIndex: number;
  /** Absent on a backend without terms: only the lease check runs. */
  committedTerm?: CommittedTerm | undefined;
  lease(ip: number): Pick<Lease, 'mac' | 'index' | 'changedAt'> | undefined;
}

/**
 * kept: the entry is in the committed log (or the lease still carries it); superseded: a later
 * command changed that lease (renewal, release, another client after it ended); lost: the ACKed
 * entry is not in the log; pending: not decidable yet (beyond the commit of an unsettled term);
 * unknown: neither the log nor the state holds anything to decide by (a forgotten lease).
 */
const ackKey = (ack: AckRecord): string => `${ack.index}/${ack.ip}`;

export type AckVerdict = 'kept' | 'superseded' | 'lost' | 'pending' | 'unknown';

/**
 * Judges one ACK. `settledTerm`: the term of the committed entry at `view.commitIndex` (a leader
 * commits an entry of its own term first; every entry after it in the final log has that term or a
 * newer one), or null when not known.
 */
export function judgeAck(ack: AckRecord, view: AuditView, settledTerm: number | null): AckVerdict {
  if (ack.index > view.commitIndex) {
    // Past the commit: an entry of an older term than the settled one can never come after it.
    return ack.term !== null && settledTerm !== null && settledTerm > ack.term ? 'lost' : 'pending';
  }
  const term = ack.term === null ? undefined : view.committedTerm?.(ack.index);
  if (term !== undefined) return term === ack.term ? 'kept' : 'lost';
  const lease = view.lease(ack.ip);
  if (lease === undefined) return 'unknown';
  if (lease.index === ack.index) return lease.mac === ack.mac ? 'kept' : 'lost';
  if (lease.index !== undefined) return lease.index > ack.index ? 'superseded' : 'lost';
  // A declined address carries no index: a decline after the ACK superseded it.
  return lease.changedAt > ack.at ? 'superseded' : 'unknown';
}

export interface AuditCounts { checked: number; kept: number; superseded: number; lost: number; pending: number; unknown: number }

/** Judges every record; returns the counts and the indexes judged lost. */
export function auditAcks(acks: readonly AckRecord[], view: AuditView, settledTerm: number | null): AuditCounts & { lostAcks: AckRecord[] } {
  const out = { checked: 0, kept: 0, superseded: 0, lost: 0, pending: 0, unknown: 0, lostAcks: [] as AckRecord[] };
  for (const ack of acks) {
    const verdict = judgeAck(ack, view, settledTerm);
    out.checked++;
    out[verdict]++;
    if (verdict === 'lost') out.lostAcks.push(ack);
  }
  return out;
}

export interface LogSample {
  leader: string | null;
  term: number;
  commitIndex: number;
  appliedIndex: number;
}

export interface AckAuditRun extends AuditCounts {
  at: string;
  leader: string;
  term: number;
  /** Lost ACKs this run found that no earlier run had counted. */
  newlyLost: number;
}

export interface LostAck { ip: string; mac: string; index: number; term: number | null; sentAt: string }

export interface AckAuditSummary {
  /** ACKs held in the ring now, and how many it holds at most. */
  recorded: number;
  capacity: number;
  audits: number;
  lastAudit: AckAuditRun | null;
  /** ACKed leases whose entry is gone from the committed log, since the daemon started (each counted once). */
  lostTotal: number;
  /** The newest lost ones (at most LOST_SHOWN). */
  lost: LostAck[];
  /** A leadership change seen and not yet audited (the new leader's log not applied here yet). */
  due: boolean;
}

export const ACKS_KEPT = 4096;
const LOST_SHOWN = 16;

/** The ring of ACKs this node sent and the audits run on it. Time is passed in. */
export class AckLedger {
  readonly capacity: number;
  #ring: AckRecord[] = [];
  /** The ACKs already judged lost, by index and address (on etcd, the commands of one txn share its revision as their index). */
  #judgedLost = new Set<string>();
  #lost: LostAck[] = [];
  #seen: { leader: string | null; term: number } | null = null;
  #due = false;
  #audits = 0;
  #lostTotal = 0;
  #last: AckAuditRun | null = null;

  constructor(capacity = ACKS_KEPT) {
    this.capacity = Math.max(1, capacity);
  }

  get recorded(): readonly AckRecord[] { return this.#ring; }

  record(ack: AckRecord): void {
    this.#ring.push(ack);
    if (this.#ring.length <= this.capacity) return;
    // One in, one out on every ACK once full: shift() (V8 moves the array's start, no copy), and the
    // lost set is asked only when it holds anything.
    while (this.#ring.length > this.capacity) {
      const gone = this.#ring.shift()!;
      if (this.#judgedLost.size > 0) this.#judgedLost.delete(ackKey(gone));
    }
  }

  /** Records written before a restart (the journal): audited once the log here is settled. */
  load(acks: readonly AckRecord[]): void {
    for (const ack of acks) this.record(ack);
    if (this.#ring.length > 0) this.#due = true;
  }

  /**
   * A status sample. A change of leader or term makes an audit due; it runs once a leader is known,
   * everything committed is applied here and the commit is settled in the current term (the
   * leader's first entry of the term committed), and again while some records stay pending.
   */
  observe(sample: LogSample, view: AuditView, nowMs: number): AckAuditRun | null {
    const seen = this.#seen;
    if (seen !== null && (seen.leader !== sample.leader || seen.term !== sample.term)) this.#due = true;
    this.#seen = { leader: sample.leader, term: sample.term };
    if (!this.#due) return null;
    if (this.#ring.length === 0) { this.#due = false; return null; }
    if (sample.leader === null || sample.appliedIndex < sample.commitIndex || view.commitIndex < sample.commitIndex) return null;
    let settledTerm: number | null = null;
    if (view.committedTerm !== undefined) {
      const t = view.committedTerm(sample.commitIndex);
      if (t !== sample.term) return null; // the new leader has not committed in its term yet
      settledTerm = t;
    }
    const pending = this.#ring.filter((a) => !this.#judgedLost.has(ackKey(a)));
    const counts = auditAcks(pending, view, settledTerm);
    for (const ack of counts.lostAcks) {
      this.#judgedLost.add(ackKey(ack));
      this.#lost.push({ ip: formatIpv4(ack.ip), mac: ack.mac, index: ack.index, term: ack.term, sentAt: new Date(ack.sentAt).toISOString() });
    }
    if (this.#lost.length > LOST_SHOWN) this.#lost.splice(0, this.#lost.length - LOST_SHOWN);
    this.#lostTotal += counts.lostAcks.length;
    this.#audits++;
    this.#due = counts.pending > 0;
    const { lostAcks, ...rest } = counts;
    this.#last = {
      at: new Date(nowMs).toISOString(), leader: sample.leader, term: sample.term, ...rest,
      // The ones counted lost before stay lost: they are part of this run's picture too.
      lost: rest.lost + (this.#ring.length - pending.length), checked: rest.checked + (this.#ring.length - pending.length), newlyLost: lostAcks.length,
    };
    return this.#last;
  }

  summary(): AckAuditSummary {
    return { recorded: this.#ring.length, capacity: this.capacity, audits: this.#audits, lastAudit: this.#last, lostTotal: this.#lostTotal, lost: [...this.#lost], due: this.#due };
  }
}

/** One line for `lanctl status` and the status page: the count and what it rests on. */
export function describeAckAudit(s: AckAuditSummary): string {
  const last = s.lastAudit;
  if (last === null) {
    if (s.recorded === 0) return 'ACKed leases lost: 0 (this node has sent no ACK to check since it started; the audit runs on the node that ACKed)';
    return `ACKed leases lost: 0 (no audit yet: ${s.recorded} ACK${s.recorded === 1 ? '' : 's'} recorded, ${s.due ? 'waiting for the new leader\'s log to be applied here' : 'no leadership change since'})`;
  }
  const extra = [last.superseded > 0 ? `${last.superseded} superseded by a later command` : '', last.pending > 0 ? `${last.pending} not decided yet` : '', last.unknown > 0 ? `${last.unknown} not checkable (lease gone)` : ''].filter((x) => x !== '');
  return `ACKed leases lost: ${s.lostTotal} (last audit ${last.at} under leader ${last.leader}, term ${last.term}: ${last.checked} ACK${last.checked === 1 ? '' : 's'} checked, ${last.kept} in the committed log${extra.length === 0 ? '' : `, ${extra.join(', ')}`}; ${s.audits} audit${s.audits === 1 ? '' : 's'} since start)`
    + (s.lost.length === 0 ? '' : `; lost: ${s.lost.map((l) => `${l.ip} ${l.mac} (index ${l.index}, term ${l.term ?? '-'})`).join(', ')}`);
}
