import { ExitCode, LanhaError } from '../lib/errors.js';
import { callDaemonOk } from '../lib/control-client.js';
import { formatDuration, formatTable } from '../lib/table.js';
import type { NodeDetail, NodeEvent, NodeRow } from '../cluster/nodes-view.js';
import { DAEMON_OPTIONS, DAEMON_OPTION_HELP, resolveSocket, type CliCommand } from './cli.js';

// `lanctl nodes`: compute nodes and their boot progress (reservations, leases, TFTP fetches), from
// the replicated state, so any node of the site gives the same answer.

const what = (e: NodeEvent | null): string => (e === null ? 'never seen' : e.detail === null ? e.event : `${e.event} ${e.detail}`);
const ago = (s: number | null): string => (s === null ? '-' : `${formatDuration(Math.max(0, s) * 1000)} ago`);

export const nodesCommand: CliCommand = {
  path: ['nodes'],
  summary: 'list compute nodes and their boot progress: reservation, lease, last DHCP/TFTP event',
  usage: 'nodes [--json] [--mac M] [--config FILE | --socket PATH]',
  options: { ...DAEMON_OPTIONS, json: { type: 'boolean' }, mac: { type: 'string' } },
  optionHelp: [['--json', 'print JSON for scripts'], ['--mac M', 'one node, with its event history'], ...DAEMON_OPTION_HELP],
  async run(args, io) {
    if (args.positionals.length > 0) throw new LanhaError('usage', `unexpected argument "${args.positionals[0]}"; for one node: lanctl nodes --mac M`, ExitCode.usage);
    const socket = resolveSocket(args.values);
    const mac = args.values['mac'];
    if (typeof mac === 'string') {
      const body = await callDaemonOk(socket, 'GET', `/v1/nodes?mac=${encodeURIComponent(mac)}`) as { node: NodeDetail };
      if (args.values['json'] === true) {
        io.out(JSON.stringify(body.node, null, 2) + '\n');
        return ExitCode.ok;
      }
      const n = body.node;
      io.out(`${n.mac}  ${n.ip ?? '-'}  ${n.hostname ?? '-'}${n.reserved ? '  (reserved)' : ''}  lease ${n.lease}` +
        `${n.leaseExpiresInS === null ? '' : `, ends in ${formatDuration(n.leaseExpiresInS * 1000)}`}\n\n`);
      io.out(n.events.length === 0 ? 'no events\n' : formatTable(['at', 'event', 'detail'], n.events.map((e) => [e.at, e.event, e.detail ?? '-'])));
      return ExitCode.ok;
    }
    const body = await callDaemonOk(socket, 'GET', '/v1/nodes') as { nodes: NodeRow[] };
    if (args.values['json'] === true) {
      io.out(JSON.stringify(body.nodes, null, 2) + '\n');
      return ExitCode.ok;
    }
    if (body.nodes.length === 0) {
      io.out('no nodes (no reservations, leases or boot events yet)\n');
      return ExitCode.ok;
    }
    io.out(formatTable(['mac', 'ip', 'hostname', 'lease', 'last', 'when', 'boot events'], body.nodes.map((n) => [
      n.mac, n.ip ?? '-', `${n.hostname ?? '-'}${n.reserved ? ' (r)' : ''}`, n.lease, what(n.last), ago(n.lastAgoS), String(n.bootEvents),
    ])));
    return ExitCode.ok;
  },
};
