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
  }
  return formatTable(['subnet', 'pool', 'used', 'full'], rows);
}
