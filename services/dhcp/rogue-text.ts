import { formatTable } from '../../lib/table.js';

// The rogue-server part of `lanctl status` (text form): the other DHCP servers seen on this
// network lately and, when the probe cannot run, why. The JSON form carries `services.dhcp.rogue`.

export interface RogueServerRow {
  serverId: string;
  source: string | null;
  mac: string | null;
  offered: string | null;
  bootfile: string | null;
  client: string | null;
  via: string[];
  firstSeen: string;
  lastSeen: string;
}

export interface RogueStatusBody {
  probe: { state: string; intervalMs: number; problem: string | null } | null;
  servers: RogueServerRow[];
}

const clock = (iso: string): string => iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z');

/** '' when nothing was seen and the probe runs (or is off on purpose). */
export function formatRogueStatus(rogue: RogueStatusBody | undefined): string {
  if (rogue === undefined) return '';
  let out = '';
  const probe = rogue.probe;
  if (probe !== null && probe.state === 'failing') out += `rogue DHCP probe: ${probe.problem}\n`;
  if (rogue.servers.length === 0) return out;
  out += `OTHER DHCP SERVERS on this network (${rogue.servers.length}): find each by its MAC or address and turn its DHCP off, or list it in dhcp.rogueProbe.ignore\n`;
  return out + formatTable(['server id', 'from', 'mac', 'offered', 'boot file', 'seen by', 'first seen', 'last seen'], rogue.servers.map((s) => [
    s.serverId, s.source ?? '-', s.mac ?? '-', s.offered ?? '-', s.bootfile ?? '-',
    s.via.map((v) => (v === 'request' ? `client ${s.client ?? '?'}` : v)).join(', '), clock(s.firstSeen), clock(s.lastSeen),
  ]));
}
