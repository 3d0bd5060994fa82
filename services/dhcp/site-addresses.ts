import { parseIpv4, type Ipv4 } from '../../lib/ipv4.js';

// The site's own addresses a config names. Plain code over the parsed config, apart from the
// `dhcp:` schema (config.ts), so the daemon's services use it without loading the schemas.

/** What siteAddressRoles reads of the whole config (config/index.ts's LanhaConfig fits it). */
export interface SiteConfig {
  node?: { address?: Ipv4 | undefined } | undefined;
  vip?: { address: { address: Ipv4 } } | undefined;
  cluster?: { members: ReadonlyArray<{ name: string; address: string }> } | undefined;
  dhcp?: { serverId?: Ipv4 | undefined; listen?: Ipv4 | undefined } | undefined;
}

/**
 * The site's own addresses a config names, each with what it is: node address, VIP, every
 * member's address, the DHCP server id and listen address. No client is ever given one.
 */
export function siteAddressRoles(config: SiteConfig): Map<Ipv4, string> {
  const roles = new Map<Ipv4, string>();
  const add = (ip: Ipv4 | null | undefined, what: string): void => { if (ip !== null && ip !== undefined && !roles.has(ip)) roles.set(ip, what); };
  add(config.vip?.address.address, 'the VIP (vip.address)');
  for (const m of config.cluster?.members ?? []) add(parseIpv4(m.address), `the address of cluster member ${m.name}`);
  add(config.node?.address, 'this node\'s address (node.address)');
  add(config.dhcp?.serverId, 'the DHCP server id (dhcp.serverId)');
  add(config.dhcp?.listen, 'the DHCP listen address (dhcp.listen)');
  return roles;
}

/** siteAddressRoles' addresses alone. */
export function siteAddressesOf(config: SiteConfig): Ipv4[] {
  return [...siteAddressRoles(config).keys()];
}
