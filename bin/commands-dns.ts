import { ExitCode, LanhaError } from '../lib/errors.js';
import { callDaemonOk } from '../lib/control-client.js';
import { formatTable } from '../lib/table.js';
import { parseDurationMs } from '../lib/scalars.js';
import { resolveSocket, type CliIo, type ParsedArgs } from './cli.js';

// lanctl records: the DNS records the daemon serves (config zones, operator records, lease names);
// lanctl records set / delete: operator records, replicated to every node through the state log.

interface RecordsBody {
  serial: number;
  records: Array<{ zone: string; name: string; type: string; ttl: number; data: string; source: string }>;
}

export async function recordsRun(args: ParsedArgs, io: CliIo): Promise<number> {
  if (args.positionals.length > 0) {
    throw new LanhaError('usage', `unexpected argument "${args.positionals[0]}"; to change records: lanctl records set NAME TYPE DATA, lanctl records delete NAME [TYPE [DATA]]`, ExitCode.usage);
  }
  // A daemon without DNS answers 404 saying which service is off and what to do (services/registry.ts apiPaths).
  const body = await callDaemonOk(resolveSocket(args.values), 'GET', '/v1/dns/records') as RecordsBody;
  if (args.values['json'] === true) {
    io.out(JSON.stringify(body, null, 2) + '\n');
    return ExitCode.ok;
  }
  io.out(`serial ${body.serial}\n`);
  io.out(formatTable(['name', 'ttl', 'type', 'data', 'source'], body.records.map((r) => [r.name + '.', String(r.ttl), r.type, r.data, r.source])));
  return ExitCode.ok;
}

export async function recordsSetRun(args: ParsedArgs, io: CliIo): Promise<number> {
  const [name, type, ...rest] = args.positionals;
  if (name === undefined || type === undefined || rest.length === 0) {
    throw new LanhaError('usage', 'give NAME TYPE DATA, e.g. lanctl records set printer.lan A 10.0.0.9', ExitCode.usage);
  }
  const request: { name: string; type: string; data: string; ttl?: number } = { name, type, data: rest.join(' ') };
  const ttlText = args.values['ttl'];
  if (typeof ttlText === 'string') {
    const ms = parseDurationMs(/^\d+$/.test(ttlText) ? Number(ttlText) : ttlText);
    if (ms === null) throw new LanhaError('usage', `--ttl ${ttlText} is not a duration (like 300, 30s, 5m or 1h)`, ExitCode.usage);
    request.ttl = Math.floor(ms / 1000);
  }
  const body = await callDaemonOk(resolveSocket(args.values), 'POST', '/v1/dns/records', request) as { set: { name: string; type: string; ttl: number; data: string }; serial: number };
  io.out(`set ${body.set.name}. ${body.set.ttl} ${body.set.type} ${body.set.data} (serial ${body.serial})\n`);
  return ExitCode.ok;
}

export async function recordsDeleteRun(args: ParsedArgs, io: CliIo): Promise<number> {
  const [name, type, ...rest] = args.positionals;
  if (name === undefined) throw new LanhaError('usage', 'give the record to delete: lanctl records delete NAME [TYPE [DATA]]', ExitCode.usage);
  const request: { name: string; type?: string; data?: string } = { name };
  if (type !== undefined) request.type = type;
  if (rest.length > 0) request.data = rest.join(' ');
  const body = await callDaemonOk(resolveSocket(args.values), 'POST', '/v1/dns/records/delete', request) as { deleted: number; serial: number };
  io.out(`deleted ${body.deleted} record${body.deleted === 1 ? '' : 's'} (serial ${body.serial})\n`);
  return ExitCode.ok;
}
