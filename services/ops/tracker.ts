import type { AppliedEntry } from '../../cluster/fsm.js';
import { formatIpv4 } from '../../lib/ipv4.js';

// What the status page and /metrics remember beyond the current state: the last events (applied
// log entries, leader and VIP changes), how often the leader changed, and the last failover run on
// this node. Fed by the daemon (fsm entries, a status sample every half second, failover replies);
// pure bookkeeping, the caller passes the time.

export interface OpsEvent {
  at: string;
  kind: string;
  text: string;
  /** The log index, for events that are applied entries. */
  index: number | null;
}

export interface FailoverRecord {
  at: string;
  from: string;
  to: string;
  leader: string;
  /** VIP released here -> new leader serving, as the failover command measured it. */
  gapMs: number;
}

export interface Observed {
  role: string;
  leader: string | null;
  term: number;
  vipHeld: boolean | null;
}

export const EVENTS_KEPT = 50;

export class OpsTracker {
  #events: OpsEvent[] = [];
  #last: Observed | null = null;
  leaderChanges = 0;
  termChanges = 0;
  lastFailover: FailoverRecord | null = null;

  get events(): readonly OpsEvent[] { return this.#events; }

  add(atMs: number, kind: string, text: string, index: number | null = null): void {
    this.#events.push({ at: new Date(atMs).toISOString(), kind, text, index });
    if (this.#events.length > EVENTS_KEPT) this.#events.splice(0, this.#events.length - EVENTS_KEPT);
  }

  /** A status sample: notes leader, term, role and VIP changes since the previous one. */
  observe(now: Observed, atMs: number): void {
    const before = this.#last;
    this.#last = now;
    if (before === null) return;
    if (now.leader !== before.leader) {
      this.leaderChanges++;
      this.add(atMs, 'raft', now.leader === null ? `leader ${before.leader ?? '-'} lost (term ${now.term})` : `leader is now ${now.leader} (term ${now.term})`);
    }
    if (now.term !== before.term) this.termChanges++;
    if (now.role !== before.role) this.add(atMs, 'raft', `this node: ${before.role} -> ${now.role}`);
    if (now.vipHeld !== before.vipHeld && now.vipHeld !== null) this.add(atMs, 'vip', now.vipHeld ? 'VIP acquired here' : 'VIP released here');
  }

  /** An applied log entry, as an operator reads it. */
  entry(e: AppliedEntry): void {
    const c = e.command;
    switch (c.type) {
      case 'lease.grant':
        this.add(e.at, 'dhcp', `lease ${formatIpv4(c.ip)} to ${c.mac}${c.hostname === undefined ? '' : ` (${c.hostname})`}`, e.index);
        return;
      case 'lease.release': this.add(e.at, 'dhcp', `lease ${formatIpv4(c.ip)} released by ${c.mac}`, e.index); return;
      case 'lease.decline': this.add(e.at, 'dhcp', `address ${formatIpv4(c.ip)} declined by ${c.mac}`, e.index); return;
      case 'lease.expire': this.add(e.at, 'dhcp', `lease ${formatIpv4(c.ip)} expired`, e.index); return;
      case 'dns.set': this.add(e.at, 'dns', `record set: ${c.name} ${c.rrtype} ${c.data}`, e.index); return;
      case 'dns.delete': this.add(e.at, 'dns', `records deleted: ${c.name}${c.rrtype === undefined ? '' : ` ${c.rrtype}`}`, e.index); return;
      case 'node.boot': this.add(e.at, 'boot', `${c.mac}: ${c.event}${c.detail === undefined ? '' : ` ${c.detail}`}`, e.index); return;
      default: return;
    }
  }

  failover(result: { from?: unknown; to?: unknown; leader?: unknown; gapMs?: unknown }, atMs: number): void {
    if (typeof result.gapMs !== 'number') return;
    this.lastFailover = { at: new Date(atMs).toISOString(), from: String(result.from), to: String(result.to), leader: String(result.leader), gapMs: result.gapMs };
    this.add(atMs, 'failover', `failover ${this.lastFailover.from} -> ${this.lastFailover.leader}: gap ${result.gapMs} ms`);
  }
}
