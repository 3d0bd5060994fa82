import { formatTable } from '../../lib/table.js';

// The etcd part of `lanctl status` (text form): backend, prefix, revision, the election holder and
// each endpoint's health. The JSON form carries the whole StateLog status unchanged.

export interface EtcdStatusBody {
  backend?: string;
  appliedIndex?: number;
  leaseValid?: boolean;
  leaseRemainingMs?: number;
  /** Applying stopped at an entry of a newer lanha (cluster/apply-level.ts). */
  applyStopped?: string | null;
  etcd?: {
    endpoints: string[];
    endpoint: string;
    health: Array<{ endpoint: string; ok: boolean; error: string | null; version?: string; isLeader?: boolean; revision?: number }>;
    prefix: string;
    revision: number;
    holder: { name: string; epoch: number; self: boolean } | null;
    leaseTtlS: number;
    lastError: string | null;
    skipped: number;
    foreign: number;
    reloads: number;
    watch?: { endpoint: string; stale: boolean; staleForMs: number; lastStall: { at: string; endpoint: string; appliedRevision: number; missedRevision: number } | null; stalls?: Record<string, number> };
    staleWatches?: number;
    handoff?: string | null;
    txns?: number;
    txnCommands?: number;
    conflicts?: number;
    shed?: number;
  };
}

export function formatEtcdStatus(c: EtcdStatusBody): string {
  const e = c.etcd;
  if (c.backend !== 'etcd' || e === undefined) return '';
  const holder = e.holder === null ? 'none (no lanha leader: DHCP is not answered)' : `${e.holder.name} (epoch ${e.holder.epoch})`;
  const lines = [
    `backend: etcd, prefix ${e.prefix}, revision ${e.revision}, applied ${c.appliedIndex ?? 0}, election holder ${holder}, lease TTL ${e.leaseTtlS} s`
      + (c.leaseValid === true ? `, held here (${Math.round((c.leaseRemainingMs ?? 0) / 100) / 10} s left)` : ''),
  ];
  if (c.applyStopped) lines.push(`APPLY STOPPED: ${c.applyStopped}`);
  if (e.skipped > 0 || e.foreign > 0) lines.push(`skipped under the prefix: ${e.skipped} undecodable entries, ${e.foreign} keys lanha did not write`);
  if (e.reloads > 0) lines.push(`reloaded from a snapshot ${e.reloads} time(s) (fell behind etcd's compaction)`);
  if ((e.txns ?? 0) > 0) {
    lines.push(`proposed here: ${e.txnCommands} commands in ${e.txns} txns (${Math.round(((e.txnCommands ?? 0) / (e.txns ?? 1)) * 10) / 10} a txn), `
      + `${e.conflicts ?? 0} refused on an address that changed first, ${e.shed ?? 0} refused while etcd was not keeping up`);
  }
  if (e.handoff) lines.push(`planned failover: only ${e.handoff} may take the election until it does (or the handoff key expires)`);
  const w = e.watch;
  if (w?.stale) lines.push(`watch STALE for ${Math.round(w.staleForMs / 100) / 10} s: the state here lags etcd (the watch through ${w.lastStall?.endpoint ?? w.endpoint} stopped delivering); ${w.lastStall !== null && w.endpoint !== w.lastStall.endpoint ? `following again through ${w.endpoint}` : 'restarting the watch on another endpoint'}`);
  else if (w?.lastStall) lines.push(`watch current through ${w.endpoint}; it stalled ${e.staleWatches ?? 1} time(s), last at ${w.lastStall.at} through ${w.lastStall.endpoint} (at revision ${w.lastStall.appliedRevision}, etcd had ${w.lastStall.missedRevision})`);
  if (e.lastError) lines.push(`last etcd error: ${e.lastError}`);
  const health = new Map(e.health.map((h) => [h.endpoint, h]));
  const rows = e.endpoints.map((url) => {
    const h = health.get(url);
    const state = h === undefined ? 'not checked yet' : h.ok ? (h.isLeader ? 'healthy, etcd leader' : 'healthy') : `DOWN: ${h.error ?? ''}`;
    return [url, url === e.endpoint ? 'yes' : '', state, h?.version ?? '-', h?.revision !== undefined ? String(h.revision) : '-'];
  });
  return lines.join('\n') + '\n\n' + formatTable(['etcd endpoint', 'in use', 'health', 'version', 'revision'], rows);
}
