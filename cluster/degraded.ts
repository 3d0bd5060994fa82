import type { Ipv4, Ipv4Range } from '../lib/ipv4.js';
import type { Lease } from './fsm.js';

// Degraded split-pool DHCP (HA.md 2.4, "Degraded mode"), the pure part: who owns which half of each
// dynamic pool, what a LAN member alone (no quorum) may grant, the records of its degraded journal,
// and how those records merge into the replicated state once a quorum is back. No I/O, no clock:
// time comes in as `nowMs` (log time, the clock lease expiries are stamped on).
//
// The rules, after ISC DHCP failover (draft-ietf-dhc-failover-12) and Kea HA's partner-down state:
// - every pool is split in two halves, one per LAN member; a member alone allocates new addresses
//   from its own half only, and a leader with its partner away borrows nothing from the partner's;
// - MCLT (maximum client lead time): a lone member grants at most MCLT to a new binding and renews a
//   binding at most to its last committed expiry + MCLT; an address goes to another client only once
//   its committed expiry + MCLT has passed. The partner, alone on its side, keeps to the same rules,
//   so whatever each side granted, no address was bound to two clients at once;
// - the merge takes, per (ip, mac), the later expiry. An overlap with another client's binding
//   cannot happen under the rules above; it is counted as a conflict (and tests assert 0).
//
// Ownership is derived from the config (the pools and the two LAN members' names), and each member
// reports a digest of its halves to the others: this first version has no `PoolOwnership` log
// entry, so the split changes only when the pools or the members do, and a member whose partner
// last reported other halves does not go degraded.

/** Milliseconds: the default MCLT, as ISC's and Kea's one hour. */
export const MCLT_DEFAULT_MS = 3_600_000;

/** A pool as ownership sees it: a subnet's ranges (or its unknownPool's), named by the subnet's id. */
export interface OwnedPool {
  subnet: string;
  ranges: readonly Ipv4Range[];
}

/** One half of a pool: the ranges one member owns. */
export interface PoolHalf {
  subnet: string;
  owner: string;
  ranges: Ipv4Range[];
}

/**
 * The split of every pool between the two LAN members: the first half of each pool's addresses
 * (in range order; the larger half when odd) to the member whose name sorts first, the rest to the
 * other. Deterministic from the config, so both members compute the same split.
 */
export class PoolOwnership {
  readonly members: readonly [string, string];
  readonly halves: readonly PoolHalf[];

  constructor(pools: readonly OwnedPool[], members: readonly string[]) {
    if (members.length !== 2 || members[0] === members[1]) throw new Error(`pool ownership needs two LAN members, got ${JSON.stringify(members)}`);
    const [a, b] = [...members].sort() as [string, string];
    this.members = [a, b];
    const halves: PoolHalf[] = [];
    for (const pool of pools) {
      const size = pool.ranges.reduce((n, r) => n + (r.last - r.first + 1), 0);
      const first = Math.ceil(size / 2);
      const own: [Ipv4Range[], Ipv4Range[]] = [[], []];
      let seen = 0;
      for (const r of pool.ranges) {
        const n = r.last - r.first + 1;
        const inFirst = Math.max(0, Math.min(n, first - seen));
        if (inFirst > 0) own[0].push({ first: r.first, last: r.first + inFirst - 1 });
        if (inFirst < n) own[1].push({ first: r.first + inFirst, last: r.last });
        seen += n;
      }
      halves.push({ subnet: pool.subnet, owner: a, ranges: own[0] }, { subnet: pool.subnet, owner: b, ranges: own[1] });
    }
    this.halves = halves;
  }

  /** The member owning a pool address; undefined for an address in no pool (a reservation's, a node's). */
  ownerOf(ip: Ipv4): string | undefined {
    for (const h of this.halves) if (h.ranges.some((r) => ip >= r.first && ip <= r.last)) return h.owner;
    return undefined;
  }

  /** The other LAN member. */
  partnerOf(member: string): string {
    return this.members[0] === member ? this.members[1] : this.members[0];
  }
}

/** One record of a degraded journal: a binding as the lone member left it (DegradedJournalMerge's entries). */
export interface DegradedRecord {
  ip: Ipv4;
  mac: string;
  clientId?: string;
  hostname?: string;
  subnet: string;
  state: 'bound' | 'released' | 'declined';
  /** Log time (of the degraded member) of the decision. */
  at: number;
  /** bound: the binding's end; released: `at`; declined: the quarantine's end. */
  expiresAt: number;
}

/** What a lone member asked to grant: the grant's address, client and lease time. */
export interface DegradedAsk {
  ip: Ipv4;
  mac: string;
  leaseMs: number;
}

export type DegradedDecision = { ok: true; leaseMs: number } | { ok: false; reason: string };

/**
 * A grant decided alone (HA.md degraded rules 1, 2 and 4). `committed` is the replicated state's
 * lease of the address (what both members last agreed on); `current` the lone member's view with
 * its own journal applied (another client's degraded binding still running refuses the address).
 * Returns the lease time to grant (the asked one, capped), or why nothing may be granted.
 */
export function decideDegradedGrant(ask: DegradedAsk, committed: Lease | undefined, current: Lease | undefined, self: string, ownership: PoolOwnership, mcltMs: number, nowMs: number): DegradedDecision {
  if (current !== undefined && current.mac !== ask.mac && current.state === 'bound' && current.expiresAt > nowMs) {
    return { ok: false, reason: 'address bound to another client' };
  }
  let limit = -Infinity;
  const owner = ownership.ownerOf(ask.ip);
  const mine = owner === undefined || owner === self;
  // Rule 4: another client's committed binding (or quarantine, or release) keeps the address from
  // anyone else until its end + MCLT: the partner may have renewed it up to then.
  const otherHeld = committed !== undefined && committed.mac !== ask.mac && committed.expiresAt + mcltMs > nowMs;
  if (mine && !otherHeld) limit = nowMs + mcltMs; // rule 1: a new binding from its own half, at most MCLT
  if (committed !== undefined && committed.mac === ask.mac && committed.state === 'bound') {
    limit = Math.max(limit, committed.expiresAt + mcltMs); // rule 2: TSFP + MCLT
  }
  if (limit === -Infinity) {
    return { ok: false, reason: otherHeld ? `committed to another client until ${mcltMs / 1000} s after its end (MCLT)` : `owned by ${owner ?? 'no one'}: not this member's half of the pool` };
  }
  const leaseMs = Math.min(ask.leaseMs, limit - nowMs);
  if (leaseMs < 1000) return { ok: false, reason: 'its committed expiry + MCLT has passed' };
  return { ok: true, leaseMs };
}

/**
 * A leader's grant while degraded mode is on (HA.md 2.4, normal rules 1 and 4): new bindings from its
 * own half only (the leader borrows nothing: the partner, were it cut off now, would give its half
 * away alone); in the partner's half only the client's own binding, renewed no further than what the
 * partner is known to hold + MCLT. The partner holds the binding's expiry once it applied the
 * binding's entry (`lease.index` <= `partnerApplied`, its last reported applied index); else it holds
 * some earlier one, and the binding is not extended at all. Every renewal there thus stays within
 * MCLT of an expiry the partner knows, which is what lets the partner, alone, reuse an address at
 * its known expiry + MCLT.
 */
export function decideLeaderGrant(ask: DegradedAsk, current: Lease | undefined, self: string, ownership: PoolOwnership, mcltMs: number, partnerApplied: number, nowMs: number): DegradedDecision {
  const owner = ownership.ownerOf(ask.ip);
  if (owner === undefined || owner === self) return { ok: true, leaseMs: ask.leaseMs };
  if (current === undefined || current.mac !== ask.mac || current.state !== 'bound') return { ok: false, reason: `owned by ${owner}: not this member's half of the pool` };
  const limit = partnerKnowsUntil(current, mcltMs, partnerApplied);
  const leaseMs = Math.min(ask.leaseMs, limit - nowMs);
  if (leaseMs < 1000) return { ok: false, reason: `in ${owner}'s half, and past the expiry ${owner} holds + MCLT` };
  return { ok: true, leaseMs };
}

/** How far a binding in the partner's half may run (decideLeaderGrant). */
export function partnerKnowsUntil(lease: Lease, mcltMs: number, partnerApplied: number): number {
  return lease.index !== undefined && lease.index <= partnerApplied ? lease.expiresAt + mcltMs : lease.expiresAt;
}

/** How a merged record changes the lease of its address. */
export type MergeOutcome = { kind: 'set'; lease: Lease } | { kind: 'keep' } | { kind: 'conflict'; other: string };

/**
 * One degraded record merged into the replicated lease of its address (DegradedJournalMerge,
 * HA.md degraded rule 5): per (ip, mac) the later expiry wins; a release or decline counts only if
 * newer than what the state holds; a record of another client's address that overlaps that
 * client's binding in time is a conflict and changes nothing. `index` and `by` mark the set lease.
 */
export function mergeRecord(current: Lease | undefined, r: DegradedRecord, index: number, by: string): MergeOutcome {
  const fromRecord = (): Lease => ({
    ip: r.ip, mac: r.mac, subnet: r.subnet, state: r.state, grantedAt: r.at, expiresAt: r.expiresAt, changedAt: r.at, index, ackedBy: by,
    ...(r.clientId === undefined ? {} : { clientId: r.clientId }), ...(r.hostname === undefined ? {} : { hostname: r.hostname }),
  });
  if (current === undefined) return { kind: 'set', lease: fromRecord() };
  if (current.mac !== r.mac) {
    const overlap = current.state === 'bound' && r.state === 'bound' && current.grantedAt < r.expiresAt && r.at < current.expiresAt;
    if (overlap) return { kind: 'conflict', other: current.mac };
    return r.at > current.changedAt ? { kind: 'set', lease: fromRecord() } : { kind: 'keep' };
  }
  if (r.state === 'bound') {
    if (current.state === 'bound' && current.expiresAt >= r.expiresAt) return { kind: 'keep' };
    if (current.state !== 'bound' && current.changedAt > r.at) return { kind: 'keep' }; // released or declined after it
    const lease = fromRecord();
    if (current.state === 'bound') lease.grantedAt = Math.min(current.grantedAt, r.at);
    if (lease.hostname === undefined && current.hostname !== undefined) lease.hostname = current.hostname;
    return { kind: 'set', lease };
  }
  return r.at > current.changedAt ? { kind: 'set', lease: fromRecord() } : { kind: 'keep' };
}

/** A journal record read from the wire or the disk: checked field by field (never trusted). */
export function parseDegradedRecord(raw: unknown): DegradedRecord | null {
  if (raw === null || typeof raw !== 'object') return null;
  const o = raw as Record<string, unknown>;
  const int = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
  const str = (v: unknown, max: number): v is string => typeof v === 'string' && v.length > 0 && v.length <= max;
  if (!int(o['ip']) || o['ip'] > 0xffffffff || !str(o['mac'], 64) || !str(o['subnet'], 64) || !int(o['at']) || !int(o['expiresAt'])) return null;
  if (o['state'] !== 'bound' && o['state'] !== 'released' && o['state'] !== 'declined') return null;
  if (o['clientId'] !== undefined && !str(o['clientId'], 600)) return null;
  if (o['hostname'] !== undefined && !str(o['hostname'], 255)) return null;
  return {
    ip: o['ip'], mac: o['mac'], subnet: o['subnet'], state: o['state'], at: o['at'], expiresAt: o['expiresAt'],
    ...(o['clientId'] === undefined ? {} : { clientId: o['clientId'] as string }), ...(o['hostname'] === undefined ? {} : { hostname: o['hostname'] as string }),
  };
}

/**
 * The degraded mode's entry conditions (HA.md 2.5, DEGRADED-SOLO), as a pure judgement of what the
 * shell observed. Returns null when this member may go degraded, else the first reason it may not.
 */
export interface DegradedEntryFacts {
  /** Monotonic ms without a quorum (0: it has one). */
  noQuorumMs: number;
  /** The VIP answered an ARP probe (another holder), of the last 3 probes 100 ms apart; null: not probed yet. */
  vipAnswered: boolean | null;
  /** The partner was heard (a member report, a Raft message, an ARP answer) within the window. */
  partnerHeard: boolean;
  /** The state directory is a member's whole one (not lost, not rebuilding or fresh). */
  stateValid: boolean;
  /** The partner last reported other pool halves than this member's (another config, or degraded mode off there). */
  partnerConfigDiffers: boolean;
  /** The partner's LAN address when it answered the last ARP probe (its host is up: not a dead partner); null: silent or not probed. */
  partnerArp?: string | null;
  /**
   * What the partner's ports said to a TCP connect in the same probe (PartnerPorts): `refused` when
   * its cluster port and its DNS port both answered with a reset, its machine up and nothing
   * listening (its lanha down), not a cut link (dropped: `silent`) nor a partner that serves (`open`).
   */
  partnerPorts?: PartnerPorts | null;
}

/**
 * A TCP connect to the partner's cluster port and its DNS port (over UDP with `dns.tcp: false`, or
 * its NTP port without DNS: a datagram the kernel answers with port unreachable), on its cluster address: `refused`
 * when both reset it (a machine up with no lanha listening: killed, crashed, stopped; a paused
 * lanha's kernel still accepts), `open` when one accepted (it runs: the cluster link is what
 * failed), `silent` when neither answered in time (a cut link or a firewall dropping).
 */
export type PartnerPorts = 'refused' | 'open' | 'silent';

/** How long without a quorum before a member may go degraded (HA.md 2.5). */
export const DEGRADED_AFTER_MS = 5000;

export function degradedRefusal(f: DegradedEntryFacts): string | null {
  if (!f.stateValid) return 'the state directory is new, rebuilding or was lost (HA.md degraded rule 6)';
  if (f.noQuorumMs < DEGRADED_AFTER_MS) return f.noQuorumMs === 0 ? 'the cluster has a quorum' : `no quorum for ${Math.round(f.noQuorumMs)} ms, under ${DEGRADED_AFTER_MS} ms`;
  if (f.partnerConfigDiffers) return 'the partner last reported other pool halves (another pool config, or dhcp.degraded off there)';
  if (f.partnerHeard) return 'the partner is still heard';
  // Its lanha down on a machine that is up (both its ports reset): nothing serves there, nothing holds the VIP degraded.
  if (f.partnerArp != null && f.partnerPorts !== 'refused') return `partner ${f.partnerArp} answers ARP: a cluster-link problem, not a dead partner`;
  if (f.vipAnswered === null) return 'the VIP was not probed yet';
  if (f.vipAnswered) return 'another node answers ARP for the VIP';
  return null;
}

/**
 * The first records of a journal that fit in one member report (cluster/member-status.ts refuses a
 * report over REPORT_BYTES_MAX, and then the member looks silent): at most `maxRecords`, and at most
 * `maxBytes` of their JSON. At least one record, so a journal always moves (one record is < 1 KiB).
 */
export function reportSlice(records: readonly DegradedRecord[], maxRecords: number, maxBytes: number): DegradedRecord[] {
  let bytes = 0;
  let n = 0;
  for (const r of records) {
    if (n >= maxRecords) break;
    bytes += JSON.stringify(r).length + 1;
    if (bytes > maxBytes && n > 0) break;
    n++;
  }
  return records.slice(0, n);
}

/** What a member's report says of its degraded mode and the VIP (cluster/member-status.ts `degradedVip`). */
export interface DegradedVipReport {
  /** Its degraded mode is on: it may take the VIP, flagged degraded, at any moment until it hears a leader. */
  active: boolean;
  /** It holds the VIP degraded, or the `ip addr del` of its degraded holding has not returned yet. */
  held: boolean;
  /** Monotonic ms it has been without a quorum when it sent the report (0: it had one). */
  noQuorumMs: number;
}

/**
 * A degraded holding's guard deadline: each VIP tick that finds this member still degraded (every
 * 20 ms while it holds) moves it this far ahead; a daemon stalled longer loses the VIP to its guard,
 * as a leader's lease would (services/vip/server.ts).
 */
export const DEGRADED_HOLD_MS = 1000;

/** How late a report may arrive after it was sent, as the hand-back below counts it. */
export const REPORT_TRANSIT_SLACK_MS = 1000;
/** Beyond a degraded holder's guard deadline: the guard's `ip addr del`, timer lateness, report jitter. */
export const HAND_BACK_SLACK_MS = 500;

export interface HandBackFacts {
  nowMs: number;
  /** Monotonic ms this member started hearing reports (its process start): a partner silent since may hold the VIP. */
  startedMs: number;
  /** The partner's latest report since then: when it arrived (monotonic ms here) and what it said; null: none. */
  partner: { receivedMs: number; degraded: DegradedVipReport | null } | null;
  /** A member sends its report this often (cluster/member-status.ts). */
  reportEveryMs: number;
  /** A degraded holding's guard deadline, moved on by each tick that finds it still degraded (services/vip/server.ts). */
  holdMs: number;
  /**
   * What this member's own ARP probe since its start found of a partner not heard from since
   * (services/dhcp/degraded-state.ts): `off-lan` when the partner's address and the VIP, both in
   * the VIP's subnet as this member's own address is, went unanswered; `lanha-down` when the
   * partner's address answered but the VIP did not and its ports reset (PartnerPorts `refused`:
   * nothing of lanha runs there, nothing holds the VIP); `answers` when the partner's
   * address answered; `probing`; absent: not probed (no VIP, or an address off the VIP's subnet).
   */
  partnerArp?: 'off-lan' | 'lanha-down' | 'answers' | 'probing';
  /**
   * Monotonic ms this member last received a Raft message of the partner since its start (null or
   * absent: none). The partner was up then and may have renewed its guard, so a partner silent on
   * reports is counted silent only from then: its reports may be lost on a one-way cluster link
   * (it dials this member, this member cannot dial it) while it runs and holds the VIP degraded.
   */
  partnerRaftMs?: number | null;
  /**
   * Monotonic ms this member, leading, first wrote the partner a report saying so (on the
   * connection the partner dialled, the one its Raft messages come on; null or absent: none since it
   * leads). Within the transit slack the partner has it and lets go at its next look, or it was paused
   * and its guard deletes the VIP `holdMs` after its last look.
   */
  leadReportMs?: number | null;
  /**
   * This member's last ARP probe of the VIP (arping -D) made for the hand-back: when it ended
   * (monotonic ms) and whether another MAC answered (null: none yet). Absent: no probe is asked for,
   * and silence alone lets the leader add the VIP. Present: where nothing but the partner's silence
   * (no report saying it let go) lets the leader add the VIP, it adds only on a probe that ended
   * within VIP_PROBE_FRESH_MS with nobody answering; an answer holds it back (the partner holds the
   * VIP degraded over a cluster link cut both ways, where no report or Raft message comes at all).
   */
  vipProbe?: { endedMs: number; answered: boolean } | null;
}

/** A hand-back probe of the VIP counts this long after it ended (it takes about 1.2 s; its samples are its first 0.2 s). */
export const VIP_PROBE_FRESH_MS = 1500;
/** The hand-back probe starts this long before the partner's silence is long enough, so its answer comes as the wait ends. */
export const VIP_PROBE_LEAD_MS = 1300;

/** What the hand-back decides (handBackVerdict): why not yet (null: add the VIP), and whether to ARP-probe the VIP now. */
export interface HandBackVerdict {
  refusal: string | null;
  probe: boolean;
}

/**
 * The hand-back of the VIP from a degraded holder to a leader (HA.md 2.5), as the leader judges it
 * before adding the VIP: null when the partner surely holds no degraded VIP now, else why not yet.
 * A partner whose reports do not come but whose Raft messages do (a one-way cluster link: they
 * ride the connection it dials, its reports the one this member dials) is up: counted silent from
 * its last Raft message, or done once this member's report saying it leads has had the time to reach
 * it and its guard the time to run out (it lets go on that report, or was paused and its guard ran out).
 * A partner not heard from since this member started, whose LAN address and the VIP this member
 * found silent to ARP since (`partnerArp: 'off-lan'`), holds nothing on this LAN: no wait (a
 * leader restarted while its partner's machine is down adds the VIP once elected and probed).
 * The partner lets go as soon as it hears a leader, and says so in its next report; one that went
 * silent (paused, dead, cut off) renewed its guard at most until its next report was due, so its
 * guard deleted the VIP `reportEveryMs + holdMs` after its last report (plus the slack). A report
 * without degraded mode (off there, an older version) is a partner that never holds it degraded; a
 * report of a partner with a quorum and not degraded is good until that partner could have gone
 * degraded (DEGRADED_AFTER_MS without a quorum, counted from what it reported, less the transit).
 */
export function handBackRefusal(f: HandBackFacts): string | null {
  return handBackVerdict(f).refusal;
}

/**
 * handBackRefusal, and whether the leader should ARP-probe the VIP now (`vipProbe` given): a
 * hand-back that rests on the partner's silence alone waits for a fresh probe nobody answered.
 */
export function handBackVerdict(f: HandBackFacts): HandBackVerdict {
  const p = f.partner;
  const silentMs = f.reportEveryMs + f.holdMs + HAND_BACK_SLACK_MS;
  const told = f.leadReportMs == null ? Infinity : f.leadReportMs + REPORT_TRANSIT_SLACK_MS + f.holdMs + HAND_BACK_SLACK_MS;
  // Silent since its last report (or this member's start) or its last Raft message, whichever is later.
  const quietSince = Math.max(p === null ? f.startedMs : p.receivedMs, f.partnerRaftMs ?? -Infinity);
  const waitEnd = Math.min(quietSince + silentMs, told);
  const oneWay = quietSince > (p === null ? f.startedMs : p.receivedMs)
    ? `; its Raft messages arrive, its reports do not (a one-way cluster link): it runs, and lets go on this leader's report (waiting up to ${Math.ceil((waitEnd - f.nowMs) / 100) / 10} s)` : '';
  const add: HandBackVerdict = { refusal: null, probe: false };
  // Not yet: the wait on the partner's silence; the probe starts as the wait nears its end.
  const wait = (refusal: string): HandBackVerdict => ({ refusal, probe: f.vipProbe !== undefined && waitEnd - f.nowMs <= VIP_PROBE_LEAD_MS });
  if (p === null) {
    // Its machine down or off this LAN: a VIP it holds is not on this LAN, and while this member
    // answers ARP on it the partner cannot enter degraded mode (it probes this member's address).
    if (f.partnerArp === 'off-lan' || f.partnerArp === 'lanha-down') return add;
    if (f.nowMs >= waitEnd) return bySilence(f);
    if (oneWay !== '') return wait(`the partner has not reported since this member started${oneWay}`);
    const arp = f.partnerArp === 'answers' ? '; its LAN address answers ARP: its machine is up, its lanha down or its cluster link cut'
      : f.partnerArp === 'probing' ? '; its LAN address is being ARP-probed (silent, with the VIP: no wait)' : '';
    return wait(`the partner has not reported since this member started: it may still hold the VIP degraded (waiting up to ${Math.ceil((f.startedMs + silentMs - f.nowMs) / 100) / 10} s for its report or its guard${arp})`);
  }
  const d = p.degraded;
  if (d === null) return add;
  if (!d.active && !d.held && f.nowMs < p.receivedMs + DEGRADED_AFTER_MS - d.noQuorumMs - REPORT_TRANSIT_SLACK_MS) return add;
  if (f.nowMs >= waitEnd) return bySilence(f);
  if (d.held) return wait(`the partner's latest report says it holds the VIP degraded: it lets go on hearing this leader${oneWay}`);
  if (d.active) return wait(`the partner's latest report says it is in degraded mode: it may take the VIP until it hears this leader${oneWay}`);
  return wait(`the partner's latest report says it has been without a quorum for ${Math.round(d.noQuorumMs / 100) / 10} s: it may go degraded and take the VIP${oneWay}`);
}

/**
 * The partner silent long enough (its guard ran out, or this leader's report reached it): with
 * `vipProbe` asked for, the VIP must also be silent to ARP now. A partner cut off both ways (no
 * report, no Raft message) may run and hold the VIP degraded all along; only the LAN tells.
 */
function bySilence(f: HandBackFacts): HandBackVerdict {
  const v = f.vipProbe;
  if (v === undefined) return { refusal: null, probe: false };
  const fresh = v !== null && f.nowMs - v.endedMs <= VIP_PROBE_FRESH_MS;
  if (fresh && !v.answered) return { refusal: null, probe: false };
  if (fresh && v.answered) {
    return { refusal: 'the partner is silent, but another MAC answers ARP for the VIP: the partner holds it degraded over a cluster link cut both ways (or another device has the address); held back until it lets go', probe: true };
  }
  return { refusal: 'the partner is silent: ARP-probing the VIP before adding it (a partner cut off both ways may hold it degraded)', probe: true };
}
