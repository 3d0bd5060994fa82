import type { Cidr, Ipv4 } from '../lib/ipv4.js';
import type { InventoryContext } from './inventory-check.js';
import { recordOwners, staticRecordNames, zoneApexOwners } from '../services/names.js';
import { siteAddressRoles, type SiteConfig } from '../services/dhcp/site-addresses.js';

// What the inventory checks read of the config (the subnets, reservations, names and profiles), as
// plain code over the parsed config, apart from the `nodes:` schema (inventory-config.ts), so the
// daemon uses it without loading the schemas.

interface ContextConfig extends SiteConfig {
  dhcp?: { serverId?: Ipv4 | undefined; listen?: Ipv4 | undefined; subnets: ReadonlyArray<{ subnet: Cidr; domain?: string | undefined; reservations: ReadonlyArray<{ mac?: string | undefined; ip: Ipv4; hostname?: string | undefined }> }> } | undefined;
  dns?: { zones: ReadonlyArray<{ name: string; leases: boolean; records: readonly string[] }> } | undefined;
}

/**
 * The validation context a config gives: the DHCP subnets, the config reservations with where they
 * are written, and the DNS names static records (and `operatorRecords`, the replicated ones) hold in
 * the zones a node's name goes to (its subnet's domain, the `leases: true` zones).
 */
export function inventoryContext(config: ContextConfig, operatorRecords: () => Iterable<string> = () => []): InventoryContext {
  const subnets = config.dhcp?.subnets ?? [];
  const domains = new Set(subnets.flatMap((s) => (s.domain === undefined ? [] : [s.domain.toLowerCase().replace(/\.$/, '')])));
  const zones = (config.dns?.zones ?? []).filter((z) => z.leases || domains.has(z.name.toLowerCase().replace(/\.$/, ''))).map((z) => z.name.toLowerCase().replace(/\.$/, ''));
  const staticNames = staticRecordNames(config.dns?.zones ?? []);
  const records = recordOwners(() => zones, function* () {
    yield* staticNames;
    yield* operatorRecords();
  });
  const apexes = zoneApexOwners(() => zones, (config.dns?.zones ?? []).map((z) => z.name));
  return {
    subnets: subnets.map((s) => s.subnet),
    siteAddresses: siteAddressRoles(config),
    reservations: subnets.flatMap((s, i) => s.reservations.map((r, j) => ({ mac: r.mac, ip: r.ip, hostname: r.hostname, where: `dhcp.subnets[${i}].reservations[${j}]` }))),
    dnsName: (label) => {
      for (const owner of [apexes, records]) for (const holder of owner.holdersOf(label, 0)) return holder;
      return undefined;
    },
  };
}

/**
 * Profile names the config defines (the bootfiles module's `profiles:` block, a list of {name} or a
 * map by name; none without the block), read loosely, so this module does not depend on that
 * schema. A node naming another profile is accepted and flagged by `lanctl nodes`.
 */
export function knownProfiles(config: object): ReadonlySet<string> {
  const profiles = (config as { profiles?: unknown }).profiles;
  if (Array.isArray(profiles)) return new Set(profiles.flatMap((p) => (typeof p === 'object' && p !== null && typeof (p as { name?: unknown }).name === 'string' ? [(p as { name: string }).name] : [])));
  if (typeof profiles === 'object' && profiles !== null) return new Set(Object.keys(profiles));
  return new Set();
}

/**
 * The profile names `lanctl nodes` checks a node's profile against on this member, or null (check
 * nothing) on a witness: it renders no boot files, and its config has no reason to carry
 * `profiles:`, so every node there was flagged "(unknown!)".
 */
export function profilesKnownHere(config: { node: { role: string } }): ReadonlySet<string> | null {
  return config.node.role === 'witness' ? null : knownProfiles(config);
}
