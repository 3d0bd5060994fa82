import { z } from 'zod';
import { ipv4, mac } from '../lib/schema.js';
import { broadcastOf, cidrContains, formatCidr, formatIpv4, type Cidr, type Ipv4 } from '../lib/ipv4.js';
import { nameProblem, type InventoryContext } from './inventory-check.js';

// The config's `nodes:` block: compute nodes that seed the replicated inventory. On start the leader
// proposes `node.add` for each one the log has never held (by name); after that the log is the
// truth, changed with `lanctl nodes set/remove` (see README "Inventory: config and log").

const tag = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, { message: 'is not a name of 1-63 letters, digits, ".", "_" or "-"' });

export const nodeEntry = z.object({
  name: z.string().refine((s) => nameProblem(s) === null, { message: 'is not a DNS label (1-63 letters, digits and "-", not starting or ending with "-", no dots)' })
    .transform((s) => s.toLowerCase()),
  mac,
  ip: ipv4.optional(),
  /** A `profiles:` entry (bootfiles); an unknown one is accepted and flagged by `lanctl nodes`. */
  profile: tag.optional(),
  group: tag.optional(),
}).strict();

export const nodesConfig = z.array(nodeEntry);

export type NodeEntry = z.output<typeof nodeEntry>;

export interface ConfigIssue { path: Array<string | number>; message: string }

/**
 * What spans entries and blocks: a name, MAC or IP given twice (the message names the other entry),
 * an IP outside every DHCP subnet or on its network/broadcast address, a MAC or IP a dhcp reservation
 * already has.
 */
export function nodesConfigIssues(nodes: readonly NodeEntry[], subnets: ReadonlyArray<{ subnet: Cidr; reservations: ReadonlyArray<{ mac?: string | undefined; ip: Ipv4 }> }>): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const seen = { name: new Map<string, number>(), mac: new Map<string, number>(), ip: new Map<number, number>() };
  nodes.forEach((n, i) => {
    for (const key of ['name', 'mac', 'ip'] as const) {
      const value = n[key];
      if (value === undefined) continue;
      const map = seen[key] as Map<string | number, number>;
      const first = map.get(value);
      if (first !== undefined) issues.push({ path: ['nodes', i, key], message: `is already nodes[${first}].${key} (${nodes[first]!.name})` });
      else map.set(value, i);
    }
    if (n.ip !== undefined && subnets.length > 0) {
      const s = subnets.find((x) => cidrContains(x.subnet, n.ip!));
      if (s === undefined) issues.push({ path: ['nodes', i, 'ip'], message: `is in none of the dhcp.subnets (${subnets.map((x) => formatCidr(x.subnet)).join(', ')})` });
      else if (s.subnet.prefixLength <= 30 && (n.ip === s.subnet.network || n.ip === broadcastOf(s.subnet))) issues.push({ path: ['nodes', i, 'ip'], message: `is the network or broadcast address of ${formatCidr(s.subnet)}` });
    }
    subnets.forEach((s, si) => s.reservations.forEach((r, ri) => {
      if (r.mac !== undefined && r.mac === n.mac) issues.push({ path: ['nodes', i, 'mac'], message: `is already dhcp.subnets[${si}].reservations[${ri}].mac (${formatIpv4(r.ip)}); keep one of the two` });
      else if (n.ip !== undefined && r.ip === n.ip) issues.push({ path: ['nodes', i, 'ip'], message: `is already dhcp.subnets[${si}].reservations[${ri}].ip; keep one of the two` });
    }));
  });
  return issues;
}

// The validation context and the profile names live in inventory-context.ts (no schema there: the
// daemon uses them without loading zod); kept here for the config's other readers.
export { inventoryContext, knownProfiles, profilesKnownHere } from './inventory-context.js';
