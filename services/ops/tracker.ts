import type { AppliedEntry } from '../../cluster/fsm.js';
import { formatIpv4 } from '../../lib/ipv4.js';
import type { ProbeWindowResult } from './gap-window.js';

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
  /** Its named parts: release here, then the new holder's (vote, lease wait, ip addr, sockets bound, first GARP). */
  parts: Array<[string, number]>;
}

/** A new VIP holder's report of its half of a gap (a `vip.takeover` log entry, seen on every member). */
export interface TakeoverRecord {
  at: string;
  node: string;
  trigger: 'transfer' | 'election';
  parts: Array<[string, number]>;
  totalMs: number;
}

/** One protocol's gap of a failover, what the number covers, and whether a probe measured it or it is derived from the timed parts. */
export interface ProtocolGap { protocol: 'vip' | 'dns' | 'ntp' | 'tftp' | 'dhcp'; trigger: 'transfer' | 'election'; seconds: number; method: 'probe' | 'derived'; measures: string }

/** The last probe windows of this node (gap-probe.ts), per trigger. */
export interface ProbedGaps { transfer?: ProbeWindowResult | null; election?: ProbeWindowResult | null }

/** The parts before the new holder's `ip addr`: until then it leads with a valid lease, so it answers DHCP. */
function untilLease(parts: ReadonlyArray<readonly [string, number]>): number {
  const i = parts.findIndex(([name]) => name === 'ip addr');
  return (i < 0 ? parts : parts.slice(0, i)).reduce((n, [, ms]) => n + ms, 0);
}

/**
 * The gap per protocol. Measured where this node probed the VIP during the failover (gap-probe.ts:
 * the first answer per protocol after the start); otherwise derived from the parts the daemons
 * timed: the VIP services (DNS, NTP, TFTP) come back for a client at the new holder's first GARP,
 * once its sockets are bound on the VIP; DHCP (broadcast, not on the VIP, never probed) as soon as
 * the new leader's lease is valid. A planned failover counts from the release on the old holder; an
 * election from the moment the new holder last heard the old leader (the crash lies between that
 * and one heartbeat later).
 */
export function protocolGaps(planned: FailoverRecord | null, takeover: TakeoverRecord | null, probed: ProbedGaps = {}): ProtocolGap[] {
  const out: ProtocolGap[] = [];
  const vipServices = (trigger: ProtocolGap['trigger'], ms: number | null, from: string, probe: ProbeWindowResult | null | undefined): void => {
    for (const protocol of ['vip', 'dns', 'ntp', 'tftp'] as const) {
      const p = probe?.gaps.find((g) => g.protocol === protocol);
      if (p !== undefined && p.seconds !== null) {
        out.push({ protocol, trigger, seconds: p.seconds, method: 'probe', measures: `${probe!.since} -> the first answer ${protocol === 'vip' ? 'of any protocol' : `to a ${protocol} probe`} sent from ${probe!.from} to ${probe!.target}` });
      } else if (ms !== null) {
        out.push({ protocol, trigger, seconds: ms / 1000, method: 'derived', measures: protocol === 'vip' ? `${from} -> the new holder's first GARP` : `${from} -> first GARP (answers on the VIP from then; sockets bound before it)` });
      }
    }
  };
  if (planned !== null) {
    vipServices('transfer', planned.gapMs, 'VIP released here', probed.transfer);
    out.push({ protocol: 'dhcp', trigger: 'transfer', seconds: untilLease(planned.parts) / 1000, method: 'derived', measures: 'VIP released here -> new leader\'s lease valid (it answers DHCP)' });
  }
  const election = takeover !== null && takeover.trigger === 'election' ? takeover : null;
  if (election !== null || (probed.election ?? null) !== null) {
    vipServices('election', election?.totalMs ?? null, 'old leader last heard', probed.election);
    if (election !== null) out.push({ protocol: 'dhcp', trigger: 'election', seconds: untilLease(election.parts) / 1000, method: 'derived', measures: 'old leader last heard -> new leader\'s lease valid' });
  }
  return out;
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
  lastTakeover: TakeoverRecord | null = null;
  /** This node's last failover probe windows (gap-probe.ts), and whether it probes at all. */
  probed: ProbedGaps = {};
  probing = false;

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
      case 'vip.takeover':
        this.lastTakeover = { at: new Date(e.at).toISOString(), node: c.node, trigger: c.trigger, parts: c.parts, totalMs: c.totalMs };
        this.add(e.at, 'vip', `${c.node} took the VIP (${c.trigger}) ${c.totalMs} ms after ${c.trigger === 'transfer' ? 'the hand-over' : 'it last heard the old leader'}`, e.index);
        return;
      default: return;
    }
  }

  failover(result: { from?: unknown; to?: unknown; leader?: unknown; gapMs?: unknown; parts?: unknown }, atMs: number): void {
    if (typeof result.gapMs !== 'number') return;
    const parts = Array.isArray(result.parts) ? (result.parts as unknown[]).filter((p): p is [string, number] => Array.isArray(p) && typeof p[0] === 'string' && typeof p[1] === 'number') : [];
    this.lastFailover = { at: new Date(atMs).toISOString(), from: String(result.from), to: String(result.to), leader: String(result.leader), gapMs: result.gapMs, parts };
    this.add(atMs, 'failover', `failover ${this.lastFailover.from} -> ${this.lastFailover.leader}: gap ${result.gapMs} ms`);
  }
}
