import { formatTable } from '../../lib/table.js';

// The NTP part of `lanctl status` (text form): whether this node serves synchronised time, at
// which stratum, and its offset to each upstream and to the other LAN node. The JSON form carries
// the service's whole status() unchanged.

export interface NtpStatusBody {
  listening?: string[];
  synchronised?: boolean;
  mode?: string;
  stratum?: number;
  leap?: number;
  referenceId?: string;
  source?: string | null;
  offsetMs?: number | null;
  reason?: string;
  rootDelayMs?: number;
  rootDispersionMs?: number;
  sources?: Array<{ name: string; kind: string; reach: string; offsetMs: number | null; delayMs: number | null; stratum: number | null; problem: string | null }>;
}

export function formatNtpStatus(s: NtpStatusBody | undefined): string {
  if (s === undefined || s.synchronised === undefined) return '';
  const head = s.synchronised
    ? `ntp: synchronised (${s.reason ?? s.mode}), stratum ${s.stratum}, refid ${s.referenceId}`
      + (s.offsetMs === null || s.offsetMs === undefined ? '' : `, offset ${signedMs(s.offsetMs)}`)
      + `, root delay ${s.rootDelayMs} ms, root dispersion ${s.rootDispersionMs} ms`
    : `ntp: NOT SYNCHRONISED: serving leap 3 / stratum ${s.stratum}, clients will refuse this server (${s.reason})`;
  const sources = s.sources ?? [];
  if (sources.length === 0) return head + '\n';
  return head + '\n\n' + formatTable(['ntp source', 'kind', 'reach', 'offset', 'delay', 'stratum', 'state'], sources.map((x) => [
    x.name, x.kind, x.reach,
    x.offsetMs === null ? '-' : signedMs(x.offsetMs),
    x.delayMs === null ? '-' : `${x.delayMs.toFixed(3)} ms`,
    x.stratum === null ? '-' : String(x.stratum),
    x.problem ?? 'ok',
  ]));
}

function signedMs(ms: number): string {
  return `${ms >= 0 ? '+' : ''}${ms.toFixed(3)} ms`;
}
