import { ExitCode, LanhaError, errorMessage } from '../lib/errors.js';
import { ConfigError, loadConfig } from '../config/index.js';
import { callDaemon, callDaemonOk } from '../lib/control-client.js';
import { formatTable } from '../lib/table.js';
import { DAEMON_OPTIONS, DAEMON_OPTION_HELP, DEFAULT_CONFIG, resolveSocket, type CliCommand } from './cli.js';
import { releaseAddress, vipCidr } from '../services/vip/address.js';
import type { FailoverResult } from '../services/vip/failover.js';

// lanctl vip release (no daemon needed: systemd runs it before start and after stop), vip status,
// and failover (asks the leader to hand leadership and the VIP to the other LAN-service node).

export const vipReleaseCommand: CliCommand = {
  path: ['vip', 'release'],
  summary: 'delete the VIP from its interface if this node has it (idempotent; systemd runs it at start and stop)',
  usage: 'vip release [--config FILE]',
  options: { config: { type: 'string', short: 'c' } },
  optionHelp: [['-c, --config FILE', `the node's config (default ${DEFAULT_CONFIG})`]],
  async run(args, io) {
    const file = typeof args.values['config'] === 'string' ? args.values['config'] : DEFAULT_CONFIG;
    let config;
    try {
      config = loadConfig(file);
    } catch (error) {
      if (error instanceof ConfigError) throw new LanhaError('config-invalid', error.message, ExitCode.config);
      throw new LanhaError('config-unreadable', errorMessage(error), ExitCode.config);
    }
    if (config.vip === undefined) {
      io.out(`${file} has no vip: block; nothing to release\n`);
      return ExitCode.ok;
    }
    try {
      const outcome = await releaseAddress(config.vip);
      io.out(outcome === 'released'
        ? `released ${vipCidr(config.vip)} from ${config.vip.interface}\n`
        : `${vipCidr(config.vip)} was not on ${config.vip.interface}; nothing to do\n`);
      return ExitCode.ok;
    } catch (error) {
      throw new LanhaError('unavailable', errorMessage(error));
    }
  },
};

interface VipStatusBody {
  address: string;
  interface: string;
  mode: string;
  held: boolean;
  holder: string | null;
  since: string | null;
  renewals: number;
  garps: number;
  counters: Record<string, number>;
}

export const vipStatusCommand: CliCommand = {
  path: ['vip', 'status'],
  summary: 'show the VIP: held here or by which node, since when, renewals and gratuitous ARPs',
  usage: 'vip status [--json] [--config FILE | --socket PATH]',
  options: { ...DAEMON_OPTIONS, json: { type: 'boolean' } },
  optionHelp: [['--json', 'print JSON for scripts'], ...DAEMON_OPTION_HELP],
  async run(args, io) {
    let body: VipStatusBody;
    try {
      body = await callDaemonOk(resolveSocket(args.values), 'GET', '/v1/vip') as VipStatusBody;
    } catch (error) {
      if (error instanceof LanhaError && error.code === 'not-found') {
        throw new LanhaError('not-found', 'the VIP is not enabled on this node (no `vip:` block, or a witness)', ExitCode.failure);
      }
      throw error;
    }
    if (args.values['json'] === true) {
      io.out(JSON.stringify(body, null, 2) + '\n');
      return ExitCode.ok;
    }
    io.out(formatTable(['vip', 'interface', 'mode', 'held here', 'holder', 'since', 'renewals', 'garps'], [[
      body.address, body.interface, body.mode, body.held ? 'yes' : 'no', body.holder ?? '-', body.since ?? '-', String(body.renewals), String(body.garps),
    ]]));
    return ExitCode.ok;
  },
};

export const failoverCommand: CliCommand = {
  path: ['failover'],
  summary: 'planned failover: the leader releases the VIP and hands leadership to the other LAN-service node',
  usage: 'failover [--to NODE] [--json] [--config FILE | --socket PATH]',
  options: { ...DAEMON_OPTIONS, to: { type: 'string' }, json: { type: 'boolean' } },
  optionHelp: [['--to NODE', 'the node to hand over to (default: the other LAN-service node)'], ['--json', 'print JSON for scripts'], ...DAEMON_OPTION_HELP],
  async run(args, io) {
    const to = typeof args.values['to'] === 'string' ? args.values['to'] : undefined;
    const reply = await callDaemon(resolveSocket(args.values), 'POST', '/v1/failover', to === undefined ? {} : { to }, 15_000);
    if (reply.status === 404) throw new LanhaError('not-found', 'failover needs the VIP service on this node (a `vip:` block in its config)');
    if (reply.status < 200 || reply.status >= 300) {
      const message = typeof reply.body === 'object' && reply.body !== null && 'error' in reply.body ? String((reply.body as { error: unknown }).error) : `HTTP ${reply.status}`;
      throw new LanhaError('api-error', message);
    }
    const r = reply.body as FailoverResult;
    if (args.values['json'] === true) {
      io.out(JSON.stringify(r, null, 2) + '\n');
      return ExitCode.ok;
    }
    io.out(`failover ${r.from} -> ${r.to}: ${r.leader} now leads; VIP released here ${r.gapMs} ms before the new leader was known (target caught up in ${r.catchUpMs} ms)\n`);
    return ExitCode.ok;
  },
};

export const vipCommands: CliCommand[] = [vipReleaseCommand, vipStatusCommand, failoverCommand];
