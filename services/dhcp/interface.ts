import type { NetworkInterfaceInfo } from 'node:os';
import { cidrContains, formatIpv4, parseCidr, parseIpv4, type Cidr, type Ipv4 } from '../../lib/ipv4.js';
import type { Result } from '../../lib/result.js';

// `dhcp.interface`: the LAN interface DHCP serves. Node's dgram has neither SO_BINDTODEVICE nor
// IP_PKTINFO, so the socket cannot be tied to the interface and a broadcast from an unconfigured
// client (source 0.0.0.0) does not say where it came in. What can be enforced is done here: the
// interface must exist and carry an address in a configured subnet (checked at start), that subnet
// is the one direct clients get addresses from, and a direct (not relayed) packet from an address
// outside the interface's networks is dropped. Pure: the interface table comes in as a value.

export interface InterfaceAddress {
  address: Ipv4;
  cidr: Cidr;
}

/**
 * The IPv4 addresses of interface `name` in `table` (os.networkInterfaces()), or why it cannot be
 * served: absent, or no IPv4 address inside any of `subnets`. Messages are predicates on the key.
 */
export function resolveInterface(name: string, table: NodeJS.Dict<NetworkInterfaceInfo[]>, subnets: readonly Cidr[]): Result<InterfaceAddress[], string> {
  const infos = table[name];
  if (infos === undefined) {
    const names = Object.keys(table).sort().join(', ');
    return { ok: false, error: `dhcp.interface: "${name}" is not an interface on this node (it has ${names === '' ? 'none' : names})` };
  }
  const addresses = ipv4Addresses(infos);
  if (!addresses.some((a) => subnets.some((s) => cidrContains(s, a.address)))) {
    const has = addresses.length === 0 ? 'no IPv4 address' : addresses.map((a) => `${formatIpv4(a.address)}/${a.cidr.prefixLength}`).join(', ');
    return { ok: false, error: `dhcp.interface: "${name}" has no address in any dhcp.subnets entry (it has ${has})` };
  }
  return { ok: true, value: addresses };
}

/** The IPv4 addresses among `infos` (one interface's entries of os.networkInterfaces()). */
export function ipv4Addresses(infos: readonly NetworkInterfaceInfo[]): InterfaceAddress[] {
  const addresses: InterfaceAddress[] = [];
  for (const info of infos) {
    if (info.family !== 'IPv4' || info.cidr === null) continue;
    const address = parseIpv4(info.address);
    const cidr = parseCidr(info.cidr);
    if (address !== null && cidr !== null) addresses.push({ address, cidr });
  }
  return addresses;
}

/**
 * The addresses replies to 255.255.255.255 may be sent from, best first; empty when none lies in
 * the local subnet `local`. Linux sends a limited broadcast from a socket bound to a local address
 * out of the device that owns that address, whatever the routing table says (net/ipv4/route.c,
 * "user can direct multicasts and limited broadcast via necessary interface"): the one way to pick
 * the interface without SO_BINDTODEVICE or IP_PKTINFO, which Node's dgram lacks. `preferred` (the
 * dhcp.interface addresses, node.address) first, then `host` (os.networkInterfaces(), which leaves
 * out a link without carrier, so it cannot be the only source); never `floating` (the VIP), which
 * leaves with leadership. The shell binds the first one the kernel takes.
 */
export function broadcastSources(local: Cidr, host: readonly Ipv4[], preferred: readonly (Ipv4 | undefined)[], floating: Ipv4 | undefined): Ipv4[] {
  const usable = (a: Ipv4 | undefined): a is Ipv4 => a !== undefined && a !== floating && cidrContains(local, a);
  return [...new Set([...preferred.filter(usable), ...host.filter(usable)])];
}

/** May a packet from `source` (not relayed) be served on this interface? 0.0.0.0 cannot be told apart. */
export function fromInterface(source: Ipv4, addresses: readonly InterfaceAddress[]): boolean {
  return source === 0 || addresses.some((a) => cidrContains(a.cidr, source));
}
