import { parseIpv4 } from '../../lib/ipv4.js';
import type { Lease } from '../../cluster/fsm.js';
import type { Resolve } from './render.js';

// Who is asking for a boot file: the client's address -> its bound lease in the replicated state
// -> its MAC -> a known node. Until the inventory (cluster/inventory.ts) is wired, a node is known
// when the config holds a DHCP reservation for its MAC; its name is the reservation's host name,
// else the lease's host name when that is a plain DNS label, else "node-<mac-with-dashes>".
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

/** The fallback resolver: known = has a DHCP reservation in the config. */
export function reservationResolver(leases: LeaseLookup | undefined, reservations: readonly ReservationLike[], defaultProfile: string | undefined): Resolve {
  return (clientIp) => {
    const lease = boundLease(leases, clientIp);
    if (lease === undefined) return { unknown: true };
    const reservation = reservations.find((r) => r.mac === lease.mac);
    if (reservation === undefined) return { unknown: true, mac: lease.mac };
    const name = nodeNameFrom(reservation.hostname) ?? nodeNameFrom(lease.hostname) ?? `node-${lease.mac.replaceAll(':', '-')}`;
    return { name, mac: lease.mac, ip: clientIp, profile: defaultProfile ?? '' };
  };
}
