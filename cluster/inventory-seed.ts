import type { Logger } from '../lib/log.js';
import { errorMessage } from '../lib/errors.js';
import { formatIpv4 } from '../lib/ipv4.js';
import type { Command } from './commands.js';
import type { Inventory } from './inventory.js';
import { checkAdd, type InventoryContext } from './inventory-check.js';
import type { NodeEntry } from './inventory-config.js';
import type { StateLog } from './state-log.js';

// How the config's `nodes:` block meets the replicated inventory. The leader proposes `node.add
// origin: config` for each config node whose name the log has never held; a name once seeded is
// never seeded again, so `lanctl nodes remove` sticks across restarts and failovers. A config node
// whose log entry differs is only reported: the log is the truth after the first seeding.

export interface SeedPlan {
  propose: Command[];
  /** Config nodes whose log entry differs: "rack1: config says ip 10.0.0.21, the log 10.0.0.22". */
  differs: string[];
  /** Config nodes that cannot be added (a clash with the log): the message names it. */
  refused: string[];
}

function show(value: number | string | undefined, ip = false): string {
  if (value === undefined) return 'none';
  return ip && typeof value === 'number' ? formatIpv4(value) : String(value);
}

export function seedPlan(inventory: Inventory, nodes: readonly NodeEntry[], ctx: InventoryContext): SeedPlan {
  const plan: SeedPlan = { propose: [], differs: [], refused: [] };
  for (const n of nodes) {
    const existing = inventory.byName(n.name);
    if (existing !== undefined) {
      const diffs: string[] = [];
      if (existing.mac !== n.mac) diffs.push(`mac ${n.mac}, the log ${existing.mac}`);
      if (existing.ip !== n.ip) diffs.push(`ip ${show(n.ip, true)}, the log ${show(existing.ip, true)}`);
      if (existing.profile !== n.profile) diffs.push(`profile ${show(n.profile)}, the log ${show(existing.profile)}`);
      if (existing.group !== n.group) diffs.push(`group ${show(n.group)}, the log ${show(existing.group)}`);
      if (diffs.length > 0) plan.differs.push(`${n.name}: config says ${diffs.join('; ')}`);
      continue;
    }
    if (inventory.wasSeeded(n.name)) continue; // removed since: the log is the truth
    const checked = checkAdd(inventory, { name: n.name, mac: n.mac, ip: n.ip, profile: n.profile, group: n.group }, ctx);
    if (!checked.ok) { plan.refused.push(`${n.name}: ${checked.error}`); continue; }
    plan.propose.push({ ...checked.command, origin: 'config' });
  }
  return plan;
}

/**
 * Seeds the inventory from the config whenever this node leads, until nothing is left to do; checks
 * again every `intervalMs` (a follower may become leader later). Logs differences once per start.
 */
export function startInventorySeeder(options: { state: StateLog; nodes: readonly NodeEntry[]; context: () => InventoryContext; log: Logger; intervalMs?: number }): { stop(): void; run(): Promise<void> } {
  const { state, nodes, log } = options;
  const reported = new Set<string>();
  let running = false;
  let done = nodes.length === 0;
  const run = async (): Promise<void> => {
    if (running || done || !state.isLeader()) return;
    running = true;
    try {
      const plan = seedPlan(state.fsm.inventory, nodes, options.context());
      for (const line of [...plan.differs, ...plan.refused]) {
        if (reported.has(line)) continue;
        reported.add(line);
        if (plan.differs.includes(line)) log.info({ event: 'inventory.config_differs' }, `config node ${line}; the log is the truth after seeding: use lanctl nodes set`);
        else log.warn({ event: 'inventory.config_refused' }, `config node ${line}; not added`);
      }
      for (const command of plan.propose) {
        await state.propose(command);
        if (command.type === 'node.add') log.info({ event: 'inventory.seeded', node: command.name, mac: command.mac }, `node ${command.name} added to the inventory from the config`);
      }
      done = true;
    } catch (error) {
      log.warn({ event: 'inventory.seed_failed', err: errorMessage(error) }, 'seeding the inventory from the config failed; retrying');
    } finally {
      running = false;
    }
  };
  const timer = setInterval(() => { void run(); }, options.intervalMs ?? 2000);
  timer.unref();
  void run();
  return { stop: () => clearInterval(timer), run };
}
