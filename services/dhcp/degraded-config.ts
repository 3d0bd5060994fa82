import { formatCidr, formatIpv4 } from '../../lib/ipv4.js';
import { PoolOwnership, type OwnedPool } from '../../cluster/degraded.js';
import type { LanhaConfig } from '../../config/index.js';

// The pool split of a config (cluster/degraded.ts): every subnet's pools and its unknownPool, split
// between the two LAN members. Both members load the same file (their config hashes are compared),
// so both compute the same halves.

/** The two LAN members (not witnesses) of the config's cluster, or null when it has not exactly two. */
export function lanMembers(config: Pick<LanhaConfig, 'cluster'>): [string, string] | null {
  const servers = config.cluster?.members.filter((m) => m.role !== 'witness').map((m) => m.name) ?? [];
  return servers.length === 2 ? [servers[0]!, servers[1]!] : null;
}

/** The ownership of the config's pools, or null when degraded mode is off or cannot apply. */
export function ownershipOf(config: Pick<LanhaConfig, 'cluster' | 'dhcp'>): PoolOwnership | null {
  const members = lanMembers(config);
  if (config.dhcp?.degraded.enabled !== true || members === null) return null;
  const pools: OwnedPool[] = [];
  for (const s of config.dhcp.subnets) {
    pools.push({ subnet: formatCidr(s.subnet), ranges: s.pools });
    if (s.unknownPool !== undefined) pools.push({ subnet: formatCidr(s.subnet), ranges: [s.unknownPool] });
  }
  return new PoolOwnership(pools, members);
}

/** `lanctl config check`'s line: off, or the MCLT and each member's halves. */
export function degradedLine(config: Pick<LanhaConfig, 'cluster' | 'dhcp'>): string {
  if (config.dhcp === undefined) return '';
  const own = ownershipOf(config);
  if (own === null) return '  dhcp degraded: off (without a quorum DHCP is silent; dhcp.degraded.enabled: a member alone answers from its half of the pools)\n';
  const halves = own.members.map((m) => `${m} ${own.halves.filter((h) => h.owner === m).flatMap((h) => h.ranges.map((r) => `${formatIpv4(r.first)}-${formatIpv4(r.last)}`)).join(', ') || '(nothing)'}`);
  return `  dhcp degraded: on, MCLT ${Math.round(config.dhcp.degraded.mclt / 1000)} s; pool halves: ${halves.join('; ')}\n`;
}

/** What the DHCP status says of degraded mode (DegradedStateLog.view()). */
export interface DegradedView {
  enabled: true;
  active: boolean;
  since: string | null;
  mcltMs: number;
  ownHalf: string[];
  partner: string;
  promise: string;
  notDegradedBecause: string | null;
  /** The partner's LAN address answered the last ARP probe: its host is up, so this member does not go degraded. */
  partnerAnswersArp: string | null;
  journal: { path: string; id: string; pending: number };
  merged: Record<string, { conflicts: number; records: number; merges: number }>;
  counters: Record<string, number>;
}

/** The lines of `lanctl status` (and doctor's evidence): DEGRADED in capitals while alone. */
export function degradedText(d: DegradedView): string {
  const half = `${d.ownHalf.join(', ') || '(nothing)'}`;
  if (d.active) {
    return `DEGRADED since ${d.since ?? '?'}: no quorum and ${d.partner} silent, DHCP answers alone from this member's half of the pools (${half}), leases at most ${Math.round(d.mcltMs / 1000)} s (MCLT); ACKed leases durable on this node only (its degraded journal, ${d.journal.pending} bindings) until merged into the log\n`;
  }
  const pending = d.journal.pending > 0 ? `; ${d.journal.pending} bindings granted alone wait to be merged into the log` : '';
  return `dhcp degraded mode: ready, not degraded (${d.notDegradedBecause ?? '-'}); own half ${half}, MCLT ${Math.round(d.mcltMs / 1000)} s${pending}\n`;
}
