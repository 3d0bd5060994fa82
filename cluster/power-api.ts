import type { ApiRoutes } from '../lib/control-server.js';
import type { Logger } from '../lib/log.js';
import { POWER_ACTIONS, planPower, selectNodes, type PowerAction, type PowerConfig } from './power.js';
import { NOT_RUN, PowerRunner, type PowerResult } from './power-run.js';
import type { StateLog } from './state-log.js';
import type { BootCommand } from './boot-relay.js';
import { proposable } from './apply-level.js';

// `lanctl nodes power`: POST /v1/nodes/power runs the site's power command per node on this daemon
// (any member with the `power:` block: a node that lost its quorum can still power-cycle the stuck
// ones), logs each result, and records on/off/cycle in the node's boot timeline (event `power`; on
// another member through the leader, cluster/boot-relay.ts), so `lanctl nodes show --timeline` tells a
// boot that followed a power cycle wherever the command ran.

export interface PowerApiOptions {
  state: StateLog;
  /** The `power:` block, or undefined when this node's config has none. */
  config: PowerConfig | undefined;
  /** The daemon's runner (power.parallel over every request at once); one of this block's own when absent. */
  runner?: PowerRunner;
  log: Logger;
  /** Wall-clock ms, to read whether a node's lease is still live. */
  wallMs: () => number;
  /**
   * Records a boot timeline event: proposed here on the leader, held for the leader elsewhere
   * (cluster/boot-relay.ts). Absent: proposed on the leader only.
   */
  recordBoot?: (command: BootCommand) => void;
}

export interface PowerReply { action: PowerAction; results: PowerResult[] }

function field(body: unknown, key: string): unknown {
  return typeof body === 'object' && body !== null ? (body as Record<string, unknown>)[key] : undefined;
}

export function powerRoutes(o: PowerApiOptions): ApiRoutes {
  const runner = o.runner ?? (o.config === undefined ? undefined : new PowerRunner(o.config.parallel));
  return {
    'POST /v1/nodes/power': async ({ body, signal }) => {
      const config = o.config;
      if (config === undefined || runner === undefined) return { status: 400, body: { error: 'this node\'s config has no power: block: give the command that switches a node (power.command, with {{name}}, {{mac}}, {{ip}}, {{action}}...), then restart the daemon' } };
      const action = field(body, 'action');
      if (typeof action !== 'string' || !(POWER_ACTIONS as readonly string[]).includes(action)) return { status: 400, body: { error: `the action must be one of ${POWER_ACTIONS.join(', ')}` } };
      const names = field(body, 'names') ?? [];
      const group = field(body, 'group');
      if (!Array.isArray(names) || names.some((n) => typeof n !== 'string') || (group !== undefined && typeof group !== 'string')) return { status: 400, body: { error: 'names must be a list of node names and group a name' } };
      const selected = selectNodes(o.state.fsm.inventory.all(), { names: names as string[], group: group as string | undefined, all: field(body, 'all') === true });
      if (!selected.ok) return { status: 400, body: { error: selected.error } };
      const now = o.wallMs();
      const plans = selected.nodes.map((n) => {
        const lease = o.state.fsm.leaseByMac(n.mac);
        return planPower(config, n, action as PowerAction, lease !== undefined && lease.state === 'bound' && lease.expiresAt > now ? lease.ip : undefined);
      });
      const results = await runner.run(plans, { timeoutMs: config.timeout, wallNow: o.wallMs, ...(signal === undefined ? {} : { signal }) });
      const notRun = results.filter((r) => r.error === NOT_RUN).length;
      if (notRun > 0) o.log.warn({ event: 'power.abandoned', action, notRun }, `power ${action}: the request was abandoned; ${notRun} of ${results.length} commands were not run`);
      for (const [i, r] of results.entries()) {
        const node = selected.nodes[i]!;
        if (r.error === NOT_RUN) continue; // nothing happened to it: no line, no timeline event
        const facts = { event: 'power.command', node: r.node, action, result: r.result, exitCode: r.exitCode, signal: r.signal, ms: r.ms };
        if (r.result === 'ok') o.log.info(facts, `power ${action} ${r.node}: ok${r.output === '' ? '' : ` (${r.output.split('\n')[0]})`}`);
        else o.log.warn({ ...facts, error: r.error }, `power ${action} ${r.node}: ${r.result}${r.error === '' ? '' : `: ${r.error.split('\n')[0]}`}`);
        if (action === 'status') continue;
        // The time the switch happened here: a member that is not the leader hands it on about a second later.
        const event: BootCommand = { type: 'node.boot', mac: node.mac, event: 'power', detail: `${action} ${r.result}${r.exitCode !== null && r.result !== 'ok' ? ` (exit ${r.exitCode})` : ''}`, at: r.endedAt ?? o.wallMs() };
        if (o.recordBoot !== undefined) o.recordBoot(event);
        else if (o.state.isLeader()) o.state.propose(proposable(event, o.state.proposalRefusal?.bind(o.state))).catch(() => undefined);
      }
      const reply: PowerReply = { action: action as PowerAction, results };
      return { status: 200, body: reply };
    },
  };
}
