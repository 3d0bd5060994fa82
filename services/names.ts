import type { Ipv4 } from '../lib/ipv4.js';
import type { Lease } from '../cluster/fsm.js';
import type { InventoryView } from '../cluster/inventory.js';
import { parseRecordLine, recordTarget } from './dns/rdata.js';
import { typeName } from './dns/wire.js';

// Who may use a host name. A DHCP client asks for a name (option 12); the name goes into the lease
// and from there into DNS. One function decides whether the client may have it: the owners are
// asked in order of precedence (reservations, then whatever else is plugged in: inventory nodes,
// names no client may claim, static and operator records, other clients' live leases, grants in flight) and the first owner
// that knows the name decides. If that owner is the asking client, the name is its own; if it is
// anyone else, the client gets no name (as dnsmasq does: the second claimant is not renamed, it is
// simply not published). Pure: no clock (nowMs comes in), no log; the caller logs the refusal.

/** One holder of a name, for the refusal's log line. */
export interface NameHolder {
  /** "reservation", "lease", "record", "inventory", "pending" ... */
  kind: string;
  mac?: string | undefined;
  /** Option 61 in hex, for reservations by client id and leases that carry one. */
  clientId?: string | undefined;
  ip?: Ipv4 | undefined;
  /** What to say about it: "dhcp.subnets[0].reservations[3]", "record node01.lan A". */
  what: string;
}

/** One kind of owner: every holder of `label` it knows (lower-case first label of a host name). */
export interface NameOwners {
  readonly kind: string;
  holdersOf(label: string, nowMs: number): Iterable<NameHolder>;
}

export interface NameClaimant { mac: string; clientId?: string | undefined }

/** The label a host name is published under: its first label, lower case. */
export function nameLabel(hostname: string): string {
  return (hostname.split('.')[0] ?? '').toLowerCase();
}

function isClaimant(holder: NameHolder, claimant: NameClaimant): boolean {
  // A live lease of the same MAC under another client id is the same machine whose client id
  // changed (initramfs udhcpc sends 01+MAC, the OS's networkd its DUID): the grant ends that lease
  // (cluster/fsm.ts: a MAC moving to a new address gives up the old one), so its name is this one's.
  if (holder.kind === 'lease' && holder.mac !== undefined && holder.mac === claimant.mac) return true;
  // As sameClient() in the allocator: client ids decide when both sides have one, else MACs.
  if (holder.clientId !== undefined && claimant.clientId !== undefined) return holder.clientId === claimant.clientId;
  return holder.mac !== undefined && holder.mac === claimant.mac;
}

/**
 * The holder that keeps `hostname` from `claimant`, or undefined when the claimant may use it. The
 * first owner (in the order given) with any holder of the name decides.
 */
export function nameHeldBy(hostname: string, claimant: NameClaimant, owners: readonly NameOwners[], nowMs: number): NameHolder | undefined {
  const label = nameLabel(hostname);
  for (const owner of owners) {
    let other: NameHolder | undefined;
    for (const holder of owner.holdersOf(label, nowMs)) {
      if (isClaimant(holder, claimant)) return undefined;
      other ??= holder;
    }
    if (other !== undefined) return other;
  }
  return undefined;
}

/**
 * Labels no DHCP client may take for itself (a reservation or inventory node may still be given
 * one by the operator): `wpad` (browsers and Windows fetch wpad.<search domain>/wpad.dat for their
 * proxy settings, so a client publishing it proxies everyone's web traffic), `isatap` (IPv6 tunnel
 * router discovery, same hijack), both on Windows DNS Server's global query block list; `localhost`
 * (software that qualifies it with the search domain would reach the client).
 */
export const CLIENT_REFUSED_LABELS: ReadonlySet<string> = new Set(['wpad', 'isatap', 'localhost']);

/** The labels of CLIENT_REFUSED_LABELS as an owner that is never the claimant. */
export function refusedLabelOwners(): NameOwners {
  return {
    kind: 'refused',
    holdersOf: (label) => (CLIENT_REFUSED_LABELS.has(label) ? [{ kind: 'refused', what: `the name ${label}, which no client may claim (proxy or tunnel discovery, loopback)` }] : []),
  };
}

/** The names of this node and the cluster's members (config): a client must not take the name an operator reaches a server by. */
export function memberNameOwners(names: Iterable<string>): NameOwners {
  const labels = new Set([...names].map(nameLabel));
  return {
    kind: 'member',
    holdersOf: (label) => (labels.has(label) ? [{ kind: 'member', what: `the name of lanha node ${label}` }] : []),
  };
}

/** This node's name and every cluster member's (config). */
export function memberNames(config: { node: { name: string }; cluster?: { members: ReadonlyArray<{ name: string }> } | undefined }): string[] {
  return [config.node.name, ...(config.cluster?.members ?? []).map((m) => m.name)];
}

interface ReservationLike { mac?: string | undefined; clientId?: string | undefined; ip: Ipv4; hostname?: string | undefined }

/** Reservation names (config): a reservation's name belongs to its client, always. */
export function reservationOwners(subnets: ReadonlyArray<{ reservations: readonly ReservationLike[] }>, normalizeClientId: (id: string) => string = (id) => id): NameOwners {
  const byLabel = new Map<string, NameHolder[]>();
  subnets.forEach((s, i) => s.reservations.forEach((r, k) => {
    if (r.hostname === undefined) return;
    const label = nameLabel(r.hostname);
    const holder: NameHolder = { kind: 'reservation', mac: r.mac, clientId: r.clientId === undefined ? undefined : normalizeClientId(r.clientId), ip: r.ip, what: `dhcp.subnets[${i}].reservations[${k}]` };
    byLabel.set(label, [...(byLabel.get(label) ?? []), holder]);
  }));
  return { kind: 'reservation', holdersOf: (label) => byLabel.get(label) ?? [] };
}

/** Compute-node inventory names (replicated, cluster/inventory.ts): a node's name belongs to its MAC. */
export function inventoryOwners(inventory: Pick<InventoryView, 'byName'>): NameOwners {
  return {
    kind: 'inventory',
    holdersOf(label) {
      const node = inventory.byName(label);
      return node === undefined ? [] : [{ kind: 'inventory', mac: node.mac, ip: node.ip, what: `inventory node ${node.name}` }];
    },
  };
}

/** DNS names that are not lease names: static zone records (config) and operator records (replicated). */
export function recordOwners(leaseZones: () => readonly string[], recordNames: () => Iterable<string>): NameOwners {
  return {
    kind: 'record',
    holdersOf(label) {
      const wanted = new Set(leaseZones().map((z) => `${label}.${z}`));
      const out: NameHolder[] = [];
      if (wanted.size === 0) return out;
      for (const name of recordNames()) if (wanted.has(name)) out.push({ kind: 'record', what: `DNS record ${name}` });
      return out;
    },
  };
}

/** A zone or host name as a key: lower case, no trailing dot. */
const key = (z: string): string => z.toLowerCase().replace(/\.$/, '');

/**
 * The apexes of our own zones: with zones `lan` (lease names) and `mgmt.lan`, a client named `mgmt`
 * would put `mgmt.lan A <its address>` into zone `lan`, the apex of the other zone: every secondary
 * that transfers `lan` (AXFR) would answer it, and its PTR would name the zone. No lease or node
 * may hold a name that is a zone of ours.
 */
export function zoneApexOwners(leaseZones: () => readonly string[], zoneNames: Iterable<string>): NameOwners {
  const apexes = new Set([...zoneNames].map(key));
  return {
    kind: 'zone',
    holdersOf(label) {
      const out: NameHolder[] = [];
      for (const z of leaseZones()) {
        const name = `${label}.${key(z)}`;
        if (apexes.has(name)) out.push({ kind: 'zone', what: `the apex of DNS zone ${name}, a zone of its own` });
      }
      return out;
    },
  };
}

/** A name one of our zones points at, and which record points at it ("the NS target in zone lan"). */
export type ZoneTarget = readonly [name: string, what: string];

/**
 * The names our zones' config points at: each zone's `primary` (the SOA MNAME) and the targets of its
 * NS, CNAME, MX, SRV, PTR and SOA record lines. Lines that do not parse are skipped (DNS warns).
 */
export function zoneTargets(zones: ReadonlyArray<{ name: string; primary?: string | undefined; records: readonly string[] }>): ZoneTarget[] {
  const out: ZoneTarget[] = [];
  for (const z of zones) {
    const origin = key(z.name);
    if (z.primary !== undefined) out.push([key(z.primary), `the SOA primary of zone ${origin}`]);
    for (const line of z.records) {
      const r = parseRecordLine(line, origin);
      const target = r.ok ? recordTarget(r.value.type, r.value.rdata) : null;
      if (r.ok && target !== null) out.push([target, `the ${typeName(r.value.type)} target of ${r.value.name}`]);
    }
  }
  return out;
}

/** The targets of operator records (replicated), each read in the zone of ours that holds it. */
export function* operatorTargets(zoneNames: readonly string[], records: Iterable<{ name: string; rrtype: string; data: string }>): Generator<ZoneTarget> {
  for (const rec of records) {
    if (!/^(NS|CNAME|MX|SRV|PTR|SOA)$/i.test(rec.rrtype)) continue;
    const owner = key(rec.name);
    const origin = zoneNames.map(key).filter((z) => owner === z || owner.endsWith(`.${z}`)).sort((a, b) => b.length - a.length)[0];
    if (origin === undefined) continue;
    const r = parseRecordLine(`${owner}. 0 ${rec.rrtype} ${rec.data}`, origin);
    const target = r.ok ? recordTarget(r.value.type, r.value.rdata) : null;
    if (r.ok && target !== null) yield [target, `the ${typeName(r.value.type)} target of operator record ${r.value.name}`];
  }
}

/**
 * Names our zones point at (NS and SOA primary, MX, SRV, CNAME and PTR targets): a client named `ns1`
 * in a zone whose NS is `ns1` with no address of its own would put `ns1.lan A <its address>` there and
 * receive what is sent to the zone's name server (or mail exchanger, or service). No client may claim
 * one; a reservation or inventory node, named by the operator, may fill it (they come first).
 */
export function targetOwners(leaseZones: () => readonly string[], targets: () => Iterable<ZoneTarget>): NameOwners {
  return {
    kind: 'target',
    holdersOf(label) {
      const wanted = new Set(leaseZones().map((z) => `${label}.${key(z)}`));
      const out: NameHolder[] = [];
      if (wanted.size === 0) return out;
      for (const [name, what] of targets()) if (wanted.has(name)) out.push({ kind: 'target', what: `${name}, ${what}` });
      return out;
    },
  };
}

/**
 * The owner names of zone-file record lines (`records:` of each zone): the first field, "@" for the
 * apex, relative names completed with the zone, lower case, no trailing dot.
 */
export function staticRecordNames(zones: ReadonlyArray<{ name: string; records: readonly string[] }>): Set<string> {
  const out = new Set<string>();
  for (const z of zones) {
    const origin = z.name.toLowerCase().replace(/\.$/, '');
    for (const line of z.records) {
      const owner = line.trim().split(/[ \t]/)[0] ?? '';
      if (owner === '') continue;
      out.add(owner === '@' ? origin : owner.endsWith('.') ? owner.slice(0, -1).toLowerCase() : `${owner}.${origin}`.toLowerCase());
    }
  }
  return out;
}

/** Read access to the replicated leases, as cluster/fsm.ts gives it. */
export interface LeaseSource {
  readonly appliedIndex: number;
  lease(ip: Ipv4): Lease | undefined;
  leases(): Iterable<Lease>;
}

/**
 * Other clients' live leases, indexed by label. The index is rebuilt only when the replicated state
 * moved since the last look and is checked against the lease itself on every use, so a burst of
 * grants costs one rebuild per commit at most, not a scan per request.
 */
export function leaseOwners(source: LeaseSource): NameOwners {
  let index = new Map<string, Ipv4[]>();
  let builtAt = -1;
  return {
    kind: 'lease',
    holdersOf(label, nowMs) {
      if (builtAt !== source.appliedIndex) {
        index = new Map();
        for (const l of source.leases()) {
          if (l.hostname === undefined || l.state !== 'bound') continue;
          const key = nameLabel(l.hostname);
          const ips = index.get(key);
          if (ips === undefined) index.set(key, [l.ip]); else ips.push(l.ip);
        }
        builtAt = source.appliedIndex;
      }
      const out: NameHolder[] = [];
      for (const ip of index.get(label) ?? []) {
        const l = source.lease(ip);
        if (l === undefined || l.state !== 'bound' || l.expiresAt <= nowMs || l.hostname === undefined || nameLabel(l.hostname) !== label) continue;
        out.push({ kind: 'lease', mac: l.mac, clientId: l.clientId, ip: l.ip, what: `the lease of ${l.mac}` });
      }
      return out;
    },
  };
}
