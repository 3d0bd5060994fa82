import { parseIpv4 } from '../../lib/ipv4.js';
import type { Lease } from '../../cluster/fsm.js';
import type { InventoryNode } from '../../cluster/inventory.js';
import type { Resolve } from './render.js';

// Who is asking for a boot file: the client's address -> its bound lease in the replicated state
// -> its MAC -> a node of the inventory (cluster/inventory.ts; a node without a lease is found by
// its reserved address). A site whose inventory is empty falls back to the config: a node is known
// when a DHCP reservation holds its MAC (or, without a lease, its address); its name is the reservation's host name, else the lease's
// host name when that is a plain DNS label, else "node-<mac-with-dashes>".
// Pure apart from reading the state it is handed.

export interface LeaseLookup {
  lease(ip: number): Lease | undefined;
}

export interface ReservationLike {
  mac?: string | undefined;
  ip: number;
  hostname?: string | undefined;
}

const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** A host name usable as a node name: its first label, when that is a plain DNS label. */
export function nodeNameFrom(hostname: string | undefined): string | undefined {
  if (hostname === undefined) return undefined;
  const label = hostname.split('.')[0]!.toLowerCase();
  return LABEL.test(label) ? label : undefined;
}

/** The client's bound lease, or undefined. */
export function boundLease(leases: LeaseLookup | undefined, clientIp: string): Lease | undefined {
  const ip = parseIpv4(clientIp);
  const lease = ip === null ? undefined : leases?.lease(ip);
  return lease !== undefined && lease.state === 'bound' ? lease : undefined;
}

/** The fallback resolver: known = has a DHCP reservation in the config (by the lease's MAC, else by the address asked from). */
export function reservationResolver(leases: LeaseLookup | undefined, reservations: readonly ReservationLike[], defaultProfile: string | undefined): Resolve {
  return (clientIp) => {
    const lease = boundLease(leases, clientIp);
    const ip = parseIpv4(clientIp);
    const reservation = lease !== undefined
      ? reservations.find((r) => r.mac === lease.mac)
      : reservations.find((r) => r.ip === ip && r.mac !== undefined);
    const mac = lease?.mac ?? reservation?.mac;
    if (reservation === undefined || mac === undefined) return lease === undefined ? { unknown: true } : { unknown: true, mac: lease.mac };
    const name = nodeNameFrom(reservation.hostname) ?? nodeNameFrom(lease?.hostname) ?? `node-${mac.replaceAll(':', '-')}`;
    return { name, mac, ip: clientIp, profile: defaultProfile ?? '' };
  };
}

export interface InventoryLookup {
  readonly size: number;
  byMac(mac: string): InventoryNode | undefined;
  byIp(ip: number): InventoryNode | undefined;
}

/** The generation a node's boot files name (the deploy module's verified one), if any. */
export type GenerationOf = (node: InventoryNode) => string | undefined;

/** A generation's commit time in the log (ms), when it is known. */
export type CommittedAt = (generation: string) => number | undefined;

/**
 * The inventory resolver; `fallback` answers while the inventory holds no node at all. A node's
 * `changedAtMs` is the later of its inventory change and its generation's commit (both log times).
 */
export function inventoryResolver(leases: LeaseLookup | undefined, inventory: InventoryLookup, defaultProfile: string | undefined, generationOf: GenerationOf, fallback: Resolve, committedAt: CommittedAt = () => undefined): Resolve {
  return (clientIp) => {
    if (inventory.size === 0) return fallback(clientIp);
    const lease = boundLease(leases, clientIp);
    const ip = parseIpv4(clientIp);
    const node = (lease === undefined ? undefined : inventory.byMac(lease.mac)) ?? (ip === null ? undefined : inventory.byIp(ip));
    if (node === undefined) return lease === undefined ? { unknown: true } : { unknown: true, mac: lease.mac };
    const generation = generationOf(node);
    const changedAtMs = Math.max(node.changedAt, generation === undefined ? 0 : committedAt(generation) ?? 0);
    return {
      name: node.name, mac: node.mac, ip: clientIp, profile: node.profile ?? defaultProfile ?? '', changedAtMs,
      ...(node.group === undefined ? {} : { group: node.group }),
      ...(generation === undefined ? {} : { generation }),
    };
  };
}
