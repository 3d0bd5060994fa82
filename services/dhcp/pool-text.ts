import { formatTable } from '../../lib/table.js';
import type { SubnetUse } from './allocator.js';

// The pool part of `lanctl status` and `lanctl leases` (text form): per subnet and per pool, the
// addresses held (live bindings and decline quarantines) out of those the pool has.

/** A table of pool use, one line per subnet and one per pool under it; '' when there is none. */
export function formatPoolUse(pools: readonly SubnetUse[] | undefined): string {
  if (pools === undefined || pools.length === 0) return '';
  const percent = (used: number, total: number): string => (total === 0 ? '-' : `${Math.round((100 * used) / total)}%`);
  const rows: string[][] = [];
  for (const s of pools) {
    rows.push([s.subnet, 'all pools', `${s.used}/${s.total}`, percent(s.used, s.total)]);
    if (s.pools.length > 1) for (const p of s.pools) rows.push(['', p.range, `${p.used}/${p.total}`, percent(p.used, p.total)]);
    else if (s.pools[0] !== undefined) rows[rows.length - 1]![1] = s.pools[0].range;
    const u = s.unknownPool;
    if (u !== undefined) rows.push(['', `${u.range} (unknownPool)`, `${u.used}/${u.total}`, percent(u.used, u.total)]);
  }
  return formatTable(['subnet', 'pool', 'used', 'full'], rows);
}

/** A subnet's client mode in `lanctl status --json` (`services.dhcp.clients`). */
export interface SubnetClients {
  subnet: string;
  clients: 'all' | 'known';
  /** The unknownPool's range, or null. */
  unknownPool: string | null;
  /** Requests of unknown clients that got no reply. */
  ignored: number;
}

/** One line per subnet for known clients only (inventory mode); '' when every subnet serves all clients. */
export function formatClientModes(modes: readonly SubnetClients[] | undefined): string {
  let out = '';
  for (const m of modes ?? []) {
    if (m.clients !== 'known') continue;
    const unknown = m.unknownPool === null ? `unknown clients get no reply (${m.ignored} requests ignored)` : `unknown clients get ${m.unknownPool} without boot options`;
    out += `dhcp ${m.subnet}: known clients only (a reservation or an inventory node); ${unknown}\n`;
  }
  return out;
}
