import { formatIpv4 } from '../lib/ipv4.js';
import type { InventoryNode } from './inventory.js';
import type { PowerConfig } from './power-config.js';

export type { PowerConfig } from './power-config.js';

// Power control of compute nodes (`lanctl nodes power on|off|cycle|status`): lanha knows no PDU, PoE
// switch or BMC; the site names a command per action (ipmitool, a smart plug's CLI, a PoE port
// script) as an argument list with {{variables}} from the inventory, and the daemon runs it per
// node. No shell: the list is passed to execve as it is, so a value can never add an argument or a
// command. This file is the plan (which command for which node); the config block's schema is
// power-config.ts (kept apart so `lanctl` loads no schema code to print a usage), running is
// power-run.ts. Pure.

export const POWER_ACTIONS = ['on', 'off', 'cycle', 'status'] as const;
export type PowerAction = typeof POWER_ACTIONS[number];

/** Variables an argument may hold, each from the inventory node (or the action asked). */
export const POWER_VARIABLES = ['name', 'mac', 'mac_dashes', 'ip', 'group', 'profile', 'action'] as const;
export type PowerVariable = typeof POWER_VARIABLES[number];

const KNOWN = new Set<string>(POWER_VARIABLES);
const TAG = /\{\{\s*([A-Za-z0-9_.-]*)\s*\}\}/g;

/** Problems with one argument template: unknown variables, a "{{" that starts no tag. */
export function argumentProblems(arg: string): string[] {
  const problems: string[] = [];
  for (const m of arg.matchAll(TAG)) if (!KNOWN.has(m[1]!)) problems.push(`uses an unknown variable "{{${m[1]}}}" (known: ${POWER_VARIABLES.join(', ')})`);
  const starts = new Set([...arg.matchAll(TAG)].map((m) => m.index));
  for (let at = arg.indexOf('{{'); at >= 0; at = arg.indexOf('{{', at + 2)) if (!starts.has(at)) problems.push('has a "{{" that starts no variable (write {{name}})');
  return problems;
}

/** What `lanctl config check` says of the block: the programs it runs, and the groups with their own. */
export function powerSummary(config: PowerConfig): string {
  const programs = [...new Set([config.command, ...POWER_ACTIONS.map((a) => config[a])].flatMap((c) => (c === undefined ? [] : [c[0]!])))];
  const groups = Object.keys(config.groups);
  return `${programs.join(', ') || 'per group'}${groups.length > 0 ? `; groups ${groups.join(', ')}` : ''}`;
}

/** One node's planned command, or why it has none. */
export type PowerPlan =
  | { node: string; ok: true; argv: string[]; env: Record<string, string> }
  | { node: string; ok: false; error: string };

/** The values of a node's variables; `ip` is its reservation, else `leaseIp` (its current lease), else none. */
export function powerValues(node: InventoryNode, action: PowerAction, leaseIp: number | undefined): Partial<Record<PowerVariable, string>> {
  const ip = node.ip ?? leaseIp;
  const values: Partial<Record<PowerVariable, string>> = { name: node.name, mac: node.mac, mac_dashes: node.mac.replaceAll(':', '-'), action };
  if (ip !== undefined) values.ip = formatIpv4(ip);
  if (node.group !== undefined) values.group = node.group;
  if (node.profile !== undefined) values.profile = node.profile;
  return values;
}

/** The command for `action` on `node`: its group's, else the site's; per-action entries before `command`. */
export function planPower(config: PowerConfig, node: InventoryNode, action: PowerAction, leaseIp?: number): PowerPlan {
  const group = node.group === undefined ? undefined : config.groups[node.group];
  const template = group?.[action] ?? group?.command ?? config[action] ?? config.command;
  if (template === undefined) {
    return { node: node.name, ok: false, error: `no power command for "${action}"${node.group === undefined ? '' : ` (group ${node.group})`}: set power.${action} or power.command` };
  }
  const values = powerValues(node, action, leaseIp);
  const args: string[] = [];
  for (const arg of template) {
    let missing: string | undefined;
    args.push(arg.replace(TAG, (_, name: string) => {
      const v = values[name as PowerVariable];
      if (v === undefined) missing ??= name;
      return v ?? '';
    }));
    if (missing !== undefined) return { node: node.name, ok: false, error: `the power command needs {{${missing}}}, which ${node.name} has not${missing === 'ip' ? ' (no reservation and no lease)' : ''}` };
  }
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(values)) env[`LANHA_${k.toUpperCase()}`] = v;
  return { node: node.name, ok: true, argv: args, env };
}

/** Which nodes a request names: NAMEs (each must exist), a group, or all. Errors name what is wrong. */
export function selectNodes(all: readonly InventoryNode[], request: { names: readonly string[]; group?: string | undefined; all?: boolean | undefined }): { ok: true; nodes: InventoryNode[] } | { ok: false; error: string } {
  const ways = Number(request.names.length > 0) + Number(request.group !== undefined) + Number(request.all === true);
  if (ways !== 1) return { ok: false, error: 'name the nodes one way: NAME..., --group G or --all' };
  if (request.all === true) return all.length === 0 ? { ok: false, error: 'the inventory has no nodes (lanctl nodes add NAME --mac M)' } : { ok: true, nodes: [...all] };
  if (request.group !== undefined) {
    const nodes = all.filter((n) => n.group === request.group);
    return nodes.length === 0 ? { ok: false, error: `no node is in group ${request.group}` } : { ok: true, nodes };
  }
  const byName = new Map(all.map((n) => [n.name, n]));
  const unknown = request.names.filter((n) => !byName.has(n.toLowerCase()));
  if (unknown.length > 0) return { ok: false, error: `no node named ${unknown.join(', ')} (lanctl nodes lists them)` };
  return { ok: true, nodes: [...new Set(request.names.map((n) => n.toLowerCase()))].map((n) => byName.get(n)!) };
}
