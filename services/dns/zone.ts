import type { Cidr } from '../../lib/ipv4.js';
import { cidrContains, reverseName, formatIpv4 } from '../../lib/ipv4.js';
import { encodeName, isSubdomain, nameKey, readName, parentName } from './name.js';
import { absoluteName, formatRdata, parseRecordLine, recordTarget } from './rdata.js';
import { CLASS_IN, RCODE, T, concat, typeName, typeFromName, type DnsRecord } from './wire.js';

// The pure zone store: built from the config's zones, the operator records and the lease names of
// the replicated state; answers a question with authoritative semantics (RFC 1034 §4.3.2, RFC 2308
// negative answers, RFC 8482 minimal ANY). No clock, no sockets: server.ts rebuilds it when the
// replicated state changes and caches the encoded answers.

export type RecordSource = 'static' | 'operator' | 'inventory' | 'lease' | 'reservation' | 'reverse' | 'soa';

export interface ZoneRecord {
  name: string;
  type: number;
  ttl: number;
  rdata: Uint8Array;
  source: RecordSource;
}

export interface Zone {
  readonly origin: string;
  readonly soa: ZoneRecord;
  /** Negative-answer TTL: min(SOA TTL, SOA minimum) (RFC 2308 §5). */
  readonly negativeTtl: number;
  /** Owner key -> type -> records. */
  readonly nodes: Map<string, Map<number, ZoneRecord[]>>;
  /** Every name that exists: owners and the empty non-terminals between them and the apex. */
  readonly names: Set<string>;
}

export interface ZoneInput {
  name: string;
  /** Milliseconds, as the config holds them. */
  ttl: number;
  negativeTtl: number;
  primary?: string | undefined;
  admin?: string | undefined;
  records: readonly string[];
  leases: boolean;
}

export interface LeaseName {
  ip: number;
  hostname: string;
  grantedAt: number;
  /**
   * 'inventory': a compute node's own name (cluster/inventory.ts): placed before every lease name, in
   * the zone named by its subnet's `domain` whether or not that zone has `leases: true`.
   */
  source: 'inventory' | 'lease' | 'reservation';
  /** The lease's subnet's `domain`: the name goes in that zone when it is a `leases: true` zone. */
  domain?: string | undefined;
  /**
   * Who holds it (MAC or client id): one client's bindings in two subnets of one domain share the
   * name (an A each); another holder's binding does not get it.
   */
  owner?: string | undefined;
}
export interface OperatorRecord { name: string; rrtype: string; ttl: number; data: string }

export interface ZoneSetInput {
  zones: readonly ZoneInput[];
  /** Subnets whose reverse zones are served (DHCP subnets and `dns.subnets`). */
  reverseSubnets: readonly Cidr[];
  leaseNames: readonly LeaseName[];
  operatorRecords: readonly OperatorRecord[];
  serial: number;
  /** Problems the caller found while gathering the input (lease names refused), logged with the zone's. */
  warnings?: readonly string[] | undefined;
}

export interface Answer {
  rcode: number;
  answers: DnsRecord[];
  authority: DnsRecord[];
  additional: DnsRecord[];
  /** Set when the answer is a CNAME chain leaving our zones: the name it ends at, for the forwarder to finish. */
  chainOut?: string;
}

export interface ListedRecord { zone: string; name: string; type: string; ttl: number; data: string; source: RecordSource }

const CHASE_MAX = 8;

class ZoneBuilder {
  readonly origin: string;
  readonly ttl: number;
  readonly nodes = new Map<string, Map<number, ZoneRecord[]>>();
  readonly names = new Set<string>();

  constructor(origin: string, ttl: number) {
    this.origin = origin;
    this.ttl = ttl;
    this.names.add(origin);
  }

  has(name: string): boolean { return this.nodes.has(name); }
  hasType(name: string, type: number): boolean { return this.nodes.get(name)?.has(type) ?? false; }

  add(r: ZoneRecord): void {
    let node = this.nodes.get(r.name);
    if (!node) { node = new Map(); this.nodes.set(r.name, node); }
    let set = node.get(r.type);
    if (!set) { set = []; node.set(r.type, set); }
    if (set.some((x) => equalBytes(x.rdata, r.rdata))) return;
    // An RRset has one TTL (RFC 2181 §5.2): the first record's.
    set.push(set.length > 0 ? { ...r, ttl: set[0]!.ttl } : r);
    for (let n: string | null = r.name; n !== null && n !== this.origin && isSubdomain(n, this.origin); n = parentName(n)) this.names.add(n);
  }
}

export class ZoneSet {
  readonly zones: readonly Zone[];
  readonly serial: number;
  /** Problems found while building (bad operator records, refused lease names), for the log. */
  readonly warnings: readonly string[];
  #byOrigin: Map<string, Zone>;
  /** Every origin in wire form, letters lowercased (for `holdsWire`). */
  #originWire: Uint8Array[];

  constructor(zones: Zone[], serial: number, warnings: string[]) {
    this.zones = zones;
    this.serial = serial;
    this.warnings = warnings;
    this.#byOrigin = new Map(zones.map((z) => [z.origin, z]));
    this.#originWire = zones.map((z) => {
      const w = encodeName(z.origin);
      for (let i = 0; i < w.length; i++) if (w[i]! >= 0x41 && w[i]! <= 0x5a) w[i] = w[i]! | 0x20;
      return w;
    });
  }

  /**
   * Whether the uncompressed wire name in `msg` from `start` (its labels, the root's 0 last, before
   * `end`) is in one of our zones: `find` of its text's key, answered from its bytes (the forwarding
   * path routes a miss with it instead of decoding the query). `msg` must hold a whole name there.
   */
  holdsWire(msg: Uint8Array, start: number, end: number): boolean {
    const origins = this.#originWire;
    for (let p = start; p < end; p += msg[p]! + 1) {
      const length = end - p;
      for (let k = 0; k < origins.length; k++) {
        const o = origins[k]!;
        if (o.length !== length) continue;
        let same = true;
        for (let i = 0; i < length; i++) {
          let c = msg[p + i]!;
          if (c >= 0x41 && c <= 0x5a) c |= 0x20;
          if (c !== o[i]) { same = false; break; }
        }
        if (same) return true;
      }
      if (msg[p] === 0) break;
    }
    return false;
  }

  /** The zone holding `key` (longest origin match), or null when the name is not ours. */
  find(key: string): Zone | null {
    for (let n: string | null = key; n !== null; n = parentName(n)) {
      const z = this.#byOrigin.get(n);
      if (z) return z;
    }
    return null;
  }

  /**
   * Authoritative answer for a question, or null when no zone of ours holds the name. `qname` keeps
   * the asker's case; the answer's first owner name is `qname` so it compresses onto the question.
   */
  resolve(qname: string, qtype: number): Answer | null {
    let key = nameKey(qname);
    let zone = this.find(key);
    if (zone === null) return null;
    const out: Answer = { rcode: RCODE.NOERROR, answers: [], authority: [], additional: [] };
    let owner = qname;
    for (let hop = 0; hop < CHASE_MAX; hop++) {
      // A name that does not exist may be covered by a wildcard at its closest encloser (RFC 4592).
      const node = zone.nodes.get(key) ?? (zone.names.has(key) ? undefined : wildcardAt(zone, key));
      if (node === undefined) {
        if (!zone.names.has(key)) out.rcode = RCODE.NXDOMAIN;
        out.authority.push(negativeSoa(zone));
        return out;
      }
      if (qtype === T.ANY) {
        // RFC 8482: one RRset is a complete answer to ANY.
        const first = node.values().next().value as ZoneRecord[];
        for (const r of first) out.answers.push(wireRecord(owner, r));
        return out;
      }
      const set = node.get(qtype);
      if (set !== undefined) {
        for (const r of set) out.answers.push(wireRecord(owner, r));
        this.#addGlue(out, set);
        return out;
      }
      const cname = node.get(T.CNAME)?.[0];
      if (cname === undefined || qtype === T.CNAME) {
        out.authority.push(negativeSoa(zone));
        return out;
      }
      out.answers.push(wireRecord(owner, cname));
      const target = readName(cname.rdata, 0)?.name ?? '';
      const targetZone = this.find(target);
      if (targetZone === null) {
        out.chainOut = target; // outside our zones: the handler forwards the rest when the asker may forward
        return out;
      }
      owner = target;
      key = target;
      zone = targetZone;
    }
    return out;
  }

  /** Addresses of in-zone NS, MX and SRV targets (RFC 1035 §3.3.9, RFC 2782) in the additional section. */
  #addGlue(out: Answer, set: readonly ZoneRecord[]): void {
    const type = set[0]?.type;
    const at = type === T.NS ? 0 : type === T.MX ? 2 : type === T.SRV ? 6 : -1;
    if (at < 0) return;
    for (const r of set) {
      const target = readName(r.rdata, at)?.name;
      if (target === undefined) continue;
      const node = this.find(target)?.nodes.get(target);
      for (const t of [T.A, T.AAAA]) for (const g of node?.get(t) ?? []) out.additional.push(wireRecord(target, g));
    }
  }

  list(): ListedRecord[] {
    const out: ListedRecord[] = [];
    for (const z of this.zones) {
      out.push(listed(z, z.soa));
      for (const r of recordsInOrder(z)) out.push(listed(z, r));
    }
    return out;
  }

  /**
   * The whole zone whose apex is `qname`, as a zone transfer sends it (RFC 5936 §2.2): the SOA,
   * every other record, the SOA again. Null when `qname` is no apex of ours.
   */
  transfer(qname: string): DnsRecord[] | null {
    const z = this.#byOrigin.get(nameKey(qname));
    if (z === undefined) return null;
    const soa = wireRecord(z.origin, z.soa);
    return [soa, ...recordsInOrder(z).map((r) => wireRecord(r.name, r)), soa];
  }
}

/**
 * The `*` node under `key`'s closest encloser (its nearest ancestor that exists in the zone), if any:
 * a wildcard answers for names that do not exist, never for a name that does, not even an empty
 * non-terminal, and not across an existing name (RFC 4592 §2.2, §3.3.1).
 */
function wildcardAt(zone: Zone, key: string): Map<number, ZoneRecord[]> | undefined {
  for (let n = parentName(key); n !== null; n = parentName(n)) {
    if (zone.names.has(n)) return zone.nodes.get(`*.${n}`);
  }
  return undefined;
}

/** Every record of the zone but the SOA: the apex's first, then the other names in order. */
function recordsInOrder(z: Zone): ZoneRecord[] {
  const order = (n: string): string => (n === z.origin ? '' : n);
  const out: ZoneRecord[] = [];
  for (const [, node] of [...z.nodes].sort(([a], [b]) => (order(a) < order(b) ? -1 : order(a) > order(b) ? 1 : 0))) {
    for (const [type, set] of node) if (type !== T.SOA) out.push(...set);
  }
  return out;
}

function listed(z: Zone, r: ZoneRecord): ListedRecord {
  return { zone: z.origin, name: r.name, type: typeName(r.type), ttl: r.ttl, data: formatRdata(r.type, r.rdata), source: r.source };
}

function wireRecord(owner: string, r: ZoneRecord): DnsRecord {
  return { name: owner, type: r.type, class: CLASS_IN, ttl: r.ttl, rdata: r.rdata };
}

function negativeSoa(z: Zone): DnsRecord {
  return { name: z.origin, type: T.SOA, class: CLASS_IN, ttl: z.negativeTtl, rdata: z.soa.rdata };
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** "10.20.0.0/24" -> "0.20.10.in-addr.arpa"; prefixes off an octet boundary widen to the octet. */
export function reverseZoneName(cidr: Cidr): string {
  const octets = Math.max(1, Math.floor(cidr.prefixLength / 8));
  const parts: number[] = [];
  for (let i = 0; i < octets; i++) parts.push((cidr.network >>> (24 - 8 * i)) & 0xff);
  return `${parts.reverse().join('.')}.in-addr.arpa`;
}

/** A label a DHCP client's host name can give: its first label, lowercased, if it is a valid one. */
export function leaseLabel(hostname: string): string | null {
  const label = hostname.split('.')[0]!.toLowerCase();
  return /^(?!-)[a-z0-9-]{1,63}(?<!-)$/.test(label) ? label : null;
}

function u32(n: number): Uint8Array {
  return Uint8Array.of(n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
}

function soaRecord(origin: string, mname: string, rname: string, serial: number, ttl: number, minimum: number): ZoneRecord {
  const rdata = concat([encodeName(mname), encodeName(rname), u32(serial >>> 0), u32(3600), u32(600), u32(86400), u32(minimum)]);
  return { name: origin, type: T.SOA, ttl, rdata, source: 'soa' };
}

/**
 * Parsed config record lines, by origin and text: zones are rebuilt on every lease change, and the
 * config's lines do not change between rebuilds.
 */
const parsedLines = new Map<string, ReturnType<typeof parseRecordLine>>();

function parseLine(line: string, origin: string): ReturnType<typeof parseRecordLine> {
  const key = `${origin}\u0000${line}`;
  let r = parsedLines.get(key);
  if (r === undefined) {
    if (parsedLines.size >= 100_000) parsedLines.clear();
    r = parseRecordLine(line, origin);
    parsedLines.set(key, r);
  }
  return r;
}

export function buildZoneSet(input: ZoneSetInput): ZoneSet {
  const warnings: string[] = [...(input.warnings ?? [])];
  const builders: Array<{ b: ZoneBuilder; z: ZoneInput | null }> = [];
  const byOrigin = new Map<string, ZoneBuilder>();
  const serial = (input.serial >>> 0) || 1;

  for (const z of input.zones) {
    const b = new ZoneBuilder(nameKey(z.name), Math.floor(z.ttl / 1000));
    builders.push({ b, z });
    byOrigin.set(b.origin, b);
    for (const line of z.records) {
      const r = parseLine(line, b.origin);
      if (!r.ok) { warnings.push(`zone ${b.origin}: record "${line}" ${r.error}`); continue; }
      if (!isSubdomain(r.value.name, b.origin)) { warnings.push(`zone ${b.origin}: record "${line}" is outside the zone`); continue; }
      b.add({ name: r.value.name, type: r.value.type, ttl: r.value.ttl ?? b.ttl, rdata: r.value.rdata, source: 'static' });
    }
  }
  const first = input.zones[0];
  for (const cidr of input.reverseSubnets) {
    const origin = reverseZoneName(cidr);
    if (byOrigin.has(origin)) continue;
    const b = new ZoneBuilder(origin, first ? Math.floor(first.ttl / 1000) : 3600);
    builders.push({ b, z: null });
    byOrigin.set(origin, b);
  }
  const zoneOf = (key: string): ZoneBuilder | null => {
    for (let n: string | null = key; n !== null; n = parentName(n)) {
      const b = byOrigin.get(n);
      if (b) return b;
    }
    return null;
  };

  for (const r of input.operatorRecords) {
    const b = zoneOf(nameKey(r.name));
    const type = typeFromName(r.rrtype);
    if (b === null || type === null) { warnings.push(`operator record ${r.name} ${r.rrtype} is outside our zones or of an unknown type`); continue; }
    const parsed = parseRecordLine(`${r.name}. ${r.ttl} ${r.rrtype} ${r.data}`, b.origin);
    if (!parsed.ok) { warnings.push(`operator record ${r.name} ${r.rrtype} ${r.data} ${parsed.error}`); continue; }
    b.add({ name: parsed.value.name, type, ttl: r.ttl, rdata: parsed.value.rdata, source: 'operator' });
  }

  // Names our zones point at (NS, SOA primary, MX, SRV, CNAME, PTR targets): no client's lease name
  // fills one (it would receive the name server's, mail's or service's traffic); a reservation or an
  // inventory node, named by the operator, may.
  const targets = new Map<string, string>();
  for (const { b, z } of builders) {
    if (z?.primary !== undefined) targets.set(nameKey(z.primary), `the SOA primary of zone ${b.origin}`);
    for (const node of b.nodes.values()) for (const [type, set] of node) for (const r of set) {
      const target = recordTarget(type, r.rdata);
      if (target !== null && !targets.has(target)) targets.set(target, `the ${typeName(type)} target of ${r.name}`);
    }
  }

  // Lease names: static and operator names win, and no name is the apex of another zone of ours; then
  // inventory nodes' and reservations' names (a node's or reservation's name is its own); between
  // leases, the earliest grant keeps a name.
  const leaseZones = builders.filter((x) => x.z?.leases === true).map((x) => x.b);
  const rank = (l: LeaseName): number => (l.source === 'inventory' ? 0 : l.source === 'reservation' ? 1 : 2);
  const sorted = [...input.leaseNames].sort((a, b) => rank(a) - rank(b) || a.grantedAt - b.grantedAt || a.ip - b.ip);
  /** Name -> the owner it went to ('' when unknown: never shared). */
  const taken = new Map<string, string>();
  const leasePtrs: Array<{ ip: number; target: string; source: LeaseName['source'] }> = [];
  for (const l of sorted) {
    const label = leaseLabel(l.hostname);
    if (label === null) { warnings.push(`lease ${formatIpv4(l.ip)}: host name "${l.hostname}" is not a valid DNS label`); continue; }
    const zones = l.source === 'inventory' ? builders.filter((x) => x.z !== null).map((x) => x.b) : leaseZones;
    const own = l.domain === undefined ? undefined : zones.find((b) => b.origin === nameKey(l.domain!));
    for (const b of own === undefined ? leaseZones : [own]) {
      const name = `${label}.${b.origin}`;
      // Another zone of ours has this name as its apex: an A here would sit in this zone's transfers.
      if (byOrigin.has(name)) { warnings.push(`lease ${formatIpv4(l.ip)}: name ${name} is the apex of a zone of ours; not published`); continue; }
      const target = l.source === 'lease' ? targets.get(name) : undefined;
      if (target !== undefined) { warnings.push(`lease ${formatIpv4(l.ip)}: name ${name} is ${target}, which no client may claim; not published`); continue; }
      const holder = taken.get(name);
      if (holder !== undefined && (holder === '' || holder !== l.owner)) { warnings.push(`lease ${formatIpv4(l.ip)}: name ${name} already belongs to another lease or inventory node`); continue; }
      if (holder === undefined && b.has(name)) { warnings.push(`lease ${formatIpv4(l.ip)}: name ${name} is a static record; the static record wins`); continue; }
      taken.set(name, l.owner ?? '');
      b.add({ name, type: T.A, ttl: Math.min(b.ttl, 300), rdata: u32(l.ip), source: l.source });
      leasePtrs.push({ ip: l.ip, target: name, source: l.source });
    }
  }

  // PTRs: static A records first, then leases, into the automatic reverse zones; existing PTRs win.
  const staticA: Array<{ ip: number; target: string }> = [];
  for (const { b, z } of builders) {
    if (z === null) continue;
    for (const [name, node] of b.nodes) {
      for (const r of node.get(T.A) ?? []) {
        if (r.source === 'static' || r.source === 'operator') staticA.push({ ip: ((r.rdata[0]! << 24) | (r.rdata[1]! << 16) | (r.rdata[2]! << 8) | r.rdata[3]!) >>> 0, target: name });
      }
    }
  }
  const ptrs: Array<{ ip: number; target: string; source: RecordSource }> = [...staticA.map((x) => ({ ...x, source: 'reverse' as const })), ...leasePtrs];
  for (const p of ptrs) {
    const rev = reverseName(p.ip);
    const b = zoneOf(rev);
    if (b === null || !input.reverseSubnets.some((c) => cidrContains(c, p.ip))) continue;
    if (b.hasType(rev, T.PTR)) continue;
    b.add({ name: rev, type: T.PTR, ttl: Math.min(b.ttl, 300), rdata: encodeName(p.target), source: p.source });
  }

  // SOA (serial from the replicated state) and apex NS.
  const zones: Zone[] = [];
  const defaultPrimary = first ? (first.primary ?? firstNs(byOrigin.get(nameKey(first.name))!) ?? nameKey(first.name)) : 'localhost';
  for (const { b, z } of builders) {
    const negMs = z?.negativeTtl ?? first?.negativeTtl ?? 60_000;
    const minimum = Math.floor(negMs / 1000);
    const mname = z?.primary ?? firstNs(b) ?? defaultPrimary;
    const admin = z?.admin ?? first?.admin;
    const rname = admin === undefined ? `hostmaster.${b.origin}` : admin.includes('@') ? admin.replace('@', '.') : absoluteName(admin, b.origin);
    const given = b.nodes.get(b.origin)?.get(T.SOA)?.[0];
    let soa = soaRecord(b.origin, mname, rname, serial, given?.ttl ?? b.ttl, minimum);
    if (given !== undefined) {
      // A SOA written in the zone keeps its names and timers; the serial is always ours.
      const m = readName(given.rdata, 0), r = m && readName(given.rdata, m.end);
      if (m && r) {
        const rd = given.rdata.slice();
        rd.set(u32(serial), r.end);
        soa = { ...given, rdata: rd, source: 'soa' };
      }
    }
    const node = b.nodes.get(b.origin) ?? new Map<number, ZoneRecord[]>();
    node.set(T.SOA, [soa]);
    b.nodes.set(b.origin, node);
    if (!node.has(T.NS)) b.add({ name: b.origin, type: T.NS, ttl: b.ttl, rdata: encodeName(mname), source: 'soa' });
    const soaMin = readSoaMinimum(soa.rdata);
    zones.push({ origin: b.origin, soa, negativeTtl: Math.min(soa.ttl, soaMin), nodes: b.nodes, names: b.names });
  }
  return new ZoneSet(zones, serial, warnings);
}

function firstNs(b: ZoneBuilder): string | undefined {
  const ns = b.nodes.get(b.origin)?.get(T.NS)?.[0];
  return ns === undefined ? undefined : readName(ns.rdata, 0)?.name;
}

function readSoaMinimum(rdata: Uint8Array): number {
  const at = rdata.length - 4;
  return ((rdata[at]! << 24) | (rdata[at + 1]! << 16) | (rdata[at + 2]! << 8) | rdata[at + 3]!) >>> 0;
}
