import type { Command } from './commands.js';
import { Fsm } from './fsm.js';
import { decideDegradedGrant, type DegradedRecord, type PoolOwnership } from './degraded.js';

// A lone LAN member's leases while degraded (HA.md 2.4): the committed state as both members last
// agreed on it, with this member's degraded journal laid over it. Pure: time comes in as `nowMs`,
// the journal's durability is the caller's (services/dhcp/degraded-state.ts writes and fsyncs each
// record before the ACK). The overlay is a second Fsm with the journal applied as the merge entry
// would apply it (cluster/fsm.ts, `lease.merge`), so what DHCP answers from here is what the
// cluster will hold once the journal is merged.

export type DegradedOutcome =
  | { kind: 'record'; record: DegradedRecord }
  /** Applied to the overlay only, never journaled (a reclaimed expiry: the leader's sweep redoes it). */
  | { kind: 'local' }
  | { kind: 'refused'; reason: string };

export interface DegradedLeasesOptions {
  self: string;
  ownership: PoolOwnership;
  mcltMs: number;
  /** The replicated state: what was committed before the quorum went. */
  committed: Fsm;
  /** The journal's id (records merged under it are not merged again). */
  journal: string;
}

export class DegradedLeases {
  readonly overlay = new Fsm();
  readonly self: string;
  readonly ownership: PoolOwnership;
  readonly mcltMs: number;
  #committed: Fsm;
  #journal: string;
  #records: DegradedRecord[] = [];
  /** The newest record held per address. */
  #latest = new Map<number, DegradedRecord>();
  /** Sequence number of the first record held (records before it were merged and cleared). */
  #from = 1;
  #index = 0;

  constructor(o: DegradedLeasesOptions) {
    this.self = o.self;
    this.ownership = o.ownership;
    this.mcltMs = o.mcltMs;
    this.#committed = o.committed;
    this.#journal = o.journal;
    this.rebase();
  }

  get journal(): string { return this.#journal; }
  /** Records not merged yet, oldest first; the first is number `from`. */
  get records(): readonly DegradedRecord[] { return this.#records; }
  get from(): number { return this.#from; }
  get upTo(): number { return this.#from + this.#records.length - 1; }

  /**
   * A binding of a record held (not merged yet) keeps `ip` from any client but `mac` (null: from
   * every client) until its end: the committed state does not know it yet.
   */
  overlayHolds(ip: number, mac: string | null, nowMs: number): boolean {
    const r = this.#latest.get(ip);
    return r !== undefined && r.state !== 'released' && r.expiresAt > nowMs && r.mac !== mac;
  }

  /** Reloads the overlay from the committed state and the records held (at entry, after a merge). */
  rebase(): void {
    this.#latest.clear();
    for (const r of this.#records) this.#latest.set(r.ip, r);
    const snapshot = this.#committed.snapshot();
    this.overlay.restore(snapshot);
    this.#index = snapshot.appliedIndex;
    if (this.#records.length > 0) this.#applyRecords(this.#records, this.#from);
  }

  /** Records read back from the journal file (a restart while degraded): held and laid over. */
  load(journal: string, from: number, records: readonly DegradedRecord[]): void {
    this.#journal = journal;
    this.#from = from;
    this.#records = [...records];
    this.rebase();
  }

  /**
   * The merge committed records up to `upTo` of journal `journal`: they leave the journal (the
   * caller rewrites the file), and the overlay is rebuilt on the new committed state.
   */
  merged(journal: string, upTo: number): void {
    if (journal === this.#journal && upTo >= this.#from) {
      const drop = Math.min(this.#records.length, upTo - this.#from + 1);
      this.#records = this.#records.slice(drop);
      this.#from += drop;
    }
    this.rebase();
  }

  /** What a lease command becomes alone: a journal record, an overlay-only change, or a refusal. */
  decide(command: Command, nowMs: number): DegradedOutcome {
    switch (command.type) {
      case 'lease.grant': {
        const decision = decideDegradedGrant({ ip: command.ip, mac: command.mac, leaseMs: command.leaseMs }, this.#committed.lease(command.ip), this.overlay.lease(command.ip), this.self, this.ownership, this.mcltMs, nowMs);
        if (!decision.ok) return { kind: 'refused', reason: decision.reason };
        return { kind: 'record', record: {
          ip: command.ip, mac: command.mac, subnet: command.subnet, state: 'bound', at: nowMs, expiresAt: nowMs + decision.leaseMs,
          ...(command.clientId === undefined ? {} : { clientId: command.clientId }), ...(command.hostname === undefined ? {} : { hostname: command.hostname }),
        } };
      }
      case 'lease.release': {
        const lease = this.overlay.lease(command.ip);
        if (lease === undefined || lease.mac !== command.mac || lease.state !== 'bound') return { kind: 'refused', reason: 'not bound to this client' };
        return { kind: 'record', record: { ip: command.ip, mac: command.mac, subnet: lease.subnet, state: 'released', at: nowMs, expiresAt: nowMs } };
      }
      case 'lease.decline': {
        const lease = this.overlay.lease(command.ip);
        if (lease !== undefined && lease.mac !== command.mac && lease.state === 'bound' && lease.expiresAt > nowMs) return { kind: 'refused', reason: 'another client\'s binding' };
        // Quarantined at least MCLT: the partner keeps to the committed state's view of the address.
        return { kind: 'record', record: { ip: command.ip, mac: command.mac, subnet: lease?.subnet ?? '', state: 'declined', at: nowMs, expiresAt: nowMs + Math.max(command.quarantineMs, this.mcltMs) } };
      }
      case 'lease.expire':
        return { kind: 'local' };
      default:
        return { kind: 'refused', reason: `${command.type} needs a quorum` };
    }
  }

  /** A record made durable by the caller: held and laid over. Returns its sequence number. */
  add(record: DegradedRecord): number {
    this.#records.push(record);
    this.#latest.set(record.ip, record);
    const seq = this.upTo;
    this.#applyRecords([record], seq);
    return seq;
  }

  /** An overlay-only change (an expiry reclaimed while alone). */
  applyLocal(command: Command, nowMs: number): void {
    this.overlay.apply(++this.#index, { at: nowMs, command });
  }

  /** The merge entry for the records held (null when there are none). */
  mergeCommand(): Extract<Command, { type: 'lease.merge' }> | null {
    if (this.#records.length === 0) return null;
    return { type: 'lease.merge', node: this.self, journal: this.#journal, from: this.#from, upTo: this.upTo, records: [...this.#records] };
  }

  #applyRecords(records: readonly DegradedRecord[], from: number): void {
    // A loop, not Math.max(...spread): a journal kept through a long stretch alone can hold more
    // records than a call takes arguments (RangeError past about 100,000).
    let at = this.overlay.lastAt;
    for (const r of records) if (r.at > at) at = r.at;
    this.overlay.apply(++this.#index, { at, by: this.self, command: { type: 'lease.merge', node: this.self, journal: this.#journal, from, upTo: from + records.length - 1, records: [...records] } });
  }
}
