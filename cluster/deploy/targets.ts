import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { LanhaError } from '../../lib/errors.js';
import type { DeployConfig } from './config.js';
import type { Fsm } from '../fsm.js';
import { formatIpv4 } from '../../lib/ipv4.js';
import { parseHostKey, type SshTarget } from './rsync.js';

// Who a deploy goes to: `--to` names nodes or groups, from deploy.targets and the inventory (a
// node's reserved address, else its live lease's); each needs a pinned host key, or the whole job is
// refused before anything is sent. Also the per-node overlay files (hostname, machine-id, hosts) as
// data. Pure: the replicated state is read, never changed.

export interface TargetEntry {
  name: string;
  host: string;
  port: number;
  groups: string[];
}

/** deploy.targets, then the inventory's nodes that have an address and are not listed there. */
export function fleetTargets(config: DeployConfig, fsm: Fsm): TargetEntry[] {
  const out: TargetEntry[] = config.targets.map((t) => ({ name: t.name, host: t.host, port: t.port, groups: [...t.groups] }));
  // A set, not a search of `out` per node: that grew with the square of the inventory (254 ms of CPU
  // per call at 10,000 nodes, and a job builds every node's overlay from it).
  const listed = new Set(out.map((t) => t.name));
  for (const node of fsm.inventory.all()) {
    if (listed.has(node.name)) continue;
    const ip = node.ip ?? fsm.liveLeaseByMac(node.mac, fsm.lastAt)?.ip;
    if (ip === undefined) continue;
    out.push({ name: node.name, host: formatIpv4(ip), port: 22, groups: node.group !== undefined ? [node.group] : [] });
  }
  return out;
}

/** The pinned key of a node: the inventory's, then the one `lanctl nodes trust` recorded here, then deploy.hostKeys. */
export function pinnedKey(config: DeployConfig, fsm: Fsm, node: string): string | undefined {
  return fsm.inventory.byName(node)?.hostKey ?? fsm.rootfs.hostKey(node) ?? config.hostKeys[node];
}

export interface ResolvedTarget extends SshTarget {
  groups: string[];
  hostKey: string;
}

/** Node names for `--to a,b,group`: each word a node name or a group; unknown words are an error. */
export function resolveNames(targets: readonly TargetEntry[], to: string): string[] {
  const words = to.split(',').map((w) => w.trim()).filter((w) => w !== '');
  if (words.length === 0) throw new LanhaError('usage', '--to names no node: give node names or groups, comma-separated');
  const names: string[] = [];
  const unknown: string[] = [];
  for (const word of words) {
    const byName = targets.find((t) => t.name === word);
    const byGroup = targets.filter((t) => t.groups.includes(word));
    if (byName) names.push(byName.name);
    else if (byGroup.length > 0) names.push(...byGroup.map((t) => t.name));
    else unknown.push(word);
  }
  if (unknown.length > 0) {
    throw new LanhaError('not-found', `unknown node or group: ${unknown.join(', ')} (known nodes: ${targets.map((t) => t.name).join(', ') || 'none; add nodes (lanctl nodes add) or deploy.targets'})`);
  }
  return [...new Set(names)];
}

/**
 * Throws when `--to` reaches a LAN member of the cluster, by name or through a group: a rootfs sync
 * there would replace the member's own files under the destination (`--delete`). The other members
 * are in deploy.targets on purpose (the leader copies generations to them), so the name resolves.
 */
export function refuseMembers(targets: readonly TargetEntry[], to: string, members: readonly string[], self: string, destination: string): void {
  const isMember = (name: string): boolean => name === self || members.includes(name);
  const reached: string[] = [];
  for (const word of to.split(',').map((w) => w.trim()).filter((w) => w !== '')) {
    if (isMember(word)) reached.push(word);
    else if (!targets.some((t) => t.name === word)) reached.push(...targets.filter((t) => t.groups.includes(word) && isMember(t.name)).map((t) => `${t.name} (in group ${word})`));
  }
  if (reached.length === 0) return;
  const what = (name: string): string => `${name} is ${name.startsWith(`${self} `) || name === self ? 'this LAN member' : 'a LAN member of this cluster'}`;
  throw new LanhaError('usage', `${reached.map(what).join('; ')}, not a compute node: a rootfs sync would replace its own files under ${destination} with the generation (rsync --delete). Nothing was started; name compute nodes only (lanctl nodes lists them)`);
}

/** Targets with their pinned keys; throws naming every node that has none. */
export function resolveTargets(targets: readonly TargetEntry[], keyOf: (node: string) => string | undefined, user: string, names: readonly string[]): ResolvedTarget[] {
  const unpinned: string[] = [];
  const resolved: ResolvedTarget[] = [];
  for (const name of names) {
    const t = targets.find((x) => x.name === name);
    if (!t) throw new LanhaError('not-found', `unknown node ${name}, or it has no address yet`);
    const key = keyOf(name);
    if (key === undefined || !parseHostKey(key)) { unpinned.push(name); continue; }
    resolved.push({ node: name, host: t.host, port: t.port, user, groups: t.groups, hostKey: key });
  }
  if (unpinned.length > 0) {
    throw new LanhaError('usage', `no pinned host key for ${unpinned.join(', ')}: nothing was sent. Run ${unpinned.map((n) => `\`lanctl nodes trust ${n}\``).join(', ')} (or set deploy.hostKeys)`);
  }
  return resolved;
}

export interface OverlayFile {
  /** Relative to the rootfs root, no leading "/". */
  path: string;
  content: string;
  mode: number;
}

/** The files every node gets on top of the shared tree. */
export function overlayFiles(node: string, clusterId: string, hosts: ReadonlyArray<{ name: string; ip: string }>): OverlayFile[] {
  // A stable machine-id per node and site: the same node keeps its id across deploys and rollbacks.
  const machineId = createHash('sha256').update(`lanha-machine-id\0${clusterId}\0${node}`).digest('hex').slice(0, 32);
  const lines = ['127.0.0.1\tlocalhost', '::1\tlocalhost ip6-localhost ip6-loopback', `127.0.1.1\t${node}`,
    ...hosts.filter((h) => h.name !== node).map((h) => `${h.ip}\t${h.name}`)];
  return [
    { path: 'etc/hostname', content: `${node}\n`, mode: 0o644 },
    { path: 'etc/machine-id', content: `${machineId}\n`, mode: 0o444 },
    { path: 'etc/hosts', content: lines.join('\n') + '\n', mode: 0o644 },
  ];
}

/** The hosts-file lines: targets whose host is an IPv4 address. */
export function hostsFromTargets(targets: readonly TargetEntry[]): Array<{ name: string; ip: string }> {
  return targets.filter((t) => /^\d+\.\d+\.\d+\.\d+$/.test(t.host)).map((t) => ({ name: t.name, ip: t.host }));
}

export function hasOverlayDir(dir: string | undefined, node: string): dir is string {
  return dir !== undefined && existsSync(`${dir}/${node}`);
}
