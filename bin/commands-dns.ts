import { ExitCode, LanhaError } from '../lib/errors.js';
import { callDaemonOk } from '../lib/control-client.js';
import { formatTable } from '../lib/table.js';
import { DAEMON_OPTIONS, DAEMON_OPTION_HELP, resolveSocket, type CliCommand } from './cli.js';

// lanctl records: the DNS records the daemon serves (config zones, operator records, lease names).

interface RecordsBody {
  serial: number;
  records: Array<{ zone: string; name: string; type: string; ttl: number; data: string; source: string }>;
}

export const recordsCommand: CliCommand = {
  path: ['records'],
  summary: 'list the DNS records served: static (config), operator, lease-derived and reverse',
  usage: 'records [--json] [--config FILE | --socket PATH]',
  options: { ...DAEMON_OPTIONS, json: { type: 'boolean' } },
  optionHelp: [['--json', 'print JSON for scripts'], ...DAEMON_OPTION_HELP],
  async run(args, io) {
    let body: RecordsBody;
    try {
      body = await callDaemonOk(resolveSocket(args.values), 'GET', '/v1/dns/records') as RecordsBody;
    } catch (error) {
      if (error instanceof LanhaError && error.code === 'not-found') {
        throw new LanhaError('not-found', 'DNS is not enabled on this node (no `dns:` block in its config)', ExitCode.failure);
      }
      throw error;
    }
    if (args.values['json'] === true) {
      io.out(JSON.stringify(body, null, 2) + '\n');
      return ExitCode.ok;
    }
    io.out(`serial ${body.serial}\n`);
    io.out(formatTable(['name', 'ttl', 'type', 'data', 'source'], body.records.map((r) => [r.name + '.', String(r.ttl), r.type, r.data, r.source])));
    return ExitCode.ok;
  },
};
