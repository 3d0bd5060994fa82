import { ExitCode, LanhaError } from '../lib/errors.js';
import { callDaemonOk } from '../lib/control-client.js';
import { formatDuration, formatTable } from '../lib/table.js';
import { resolveSocket, type CliIo, type ParsedArgs } from './cli.js';
import { expiresInText, type LeaseRow } from '../services/dhcp/leases-api.js';
import type { SubnetUse } from '../services/dhcp/allocator.js';
import { formatPoolUse } from '../services/dhcp/pool-text.js';

// `lanctl leases` and `lanctl leases release`: DHCP leases through the daemon's control API.

export async function leasesRun(args: ParsedArgs, io: CliIo): Promise<number> {
  if (args.positionals.length > 0) throw new LanhaError('usage', `unexpected argument "${args.positionals[0]}"; to release a lease: lanctl leases release IP|MAC`, ExitCode.usage);
  const query = new URLSearchParams();
  if (typeof args.values['mac'] === 'string') query.set('mac', args.values['mac']);
  if (typeof args.values['ip'] === 'string') query.set('ip', args.values['ip']);
  if (args.values['all'] === true) query.set('all', '1');
  const text = query.toString();
  const body = await callDaemonOk(resolveSocket(args.values), 'GET', `/v1/leases${text ? `?${text}` : ''}`) as { leases: LeaseRow[]; pools?: SubnetUse[] };
  if (args.values['json'] === true) {
    io.out(JSON.stringify(body.leases, null, 2) + '\n');
    return ExitCode.ok;
  }
  if (body.leases.length === 0) {
    io.out('no leases\n');
  } else {
    io.out(formatTable(['ip', 'mac', 'hostname', 'client-id', 'state', 'expires in', 'subnet', 'log index', 'ACKed by'], body.leases.map((l) => [
      l.ip, l.mac, l.hostname ?? '-', l.clientId ?? '-', l.state, expiresInText(l), l.subnet,
      l.index === null ? '-' : String(l.index), l.ackedBy ?? 'unknown',
    ])));
  }
  const pools = formatPoolUse(body.pools);
  if (pools !== '') io.out('\n' + pools);
  return ExitCode.ok;
}

export async function leasesReleaseRun(args: ParsedArgs, io: CliIo): Promise<number> {
  const target = args.positionals[0];
  if (target === undefined || args.positionals.length > 1) throw new LanhaError('usage', 'give exactly one lease: lanctl leases release IP|MAC', ExitCode.usage);
  const body = await callDaemonOk(resolveSocket(args.values), 'POST', '/v1/leases/release', { target }) as { released: Array<{ ip: string; mac: string }> };
  for (const r of body.released) io.out(`released ${r.ip} (${r.mac})\n`);
  return ExitCode.ok;
}
