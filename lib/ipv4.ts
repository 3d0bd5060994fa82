// IPv4 addresses as unsigned 32-bit numbers: cheap to compare, add and hash.
export type Ipv4 = number;

const DOTTED = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** Parses dotted-quad text; null when it is not exactly four decimal octets 0..255. */
export function parseIpv4(text: string): Ipv4 | null {
  const m = DOTTED.exec(text);
  if (!m) return null;
  let value = 0;
  for (let i = 1; i <= 4; i++) {
    const part = m[i]!;
    if (part.length > 1 && part.startsWith('0')) return null; // no octal-looking octets
    const octet = Number(part);
    if (octet > 255) return null;
    value = value * 256 + octet;
  }
  return value >>> 0;
}

export function formatIpv4(ip: Ipv4): string {
  return `${ip >>> 24}.${(ip >>> 16) & 0xff}.${(ip >>> 8) & 0xff}.${ip & 0xff}`;
}

export function ipv4ToBytes(ip: Ipv4): Uint8Array {
  return new Uint8Array([ip >>> 24, (ip >>> 16) & 0xff, (ip >>> 8) & 0xff, ip & 0xff]);
}

export function ipv4FromBytes(bytes: Uint8Array, offset = 0): Ipv4 {
  return (((bytes[offset] ?? 0) << 24) | ((bytes[offset + 1] ?? 0) << 16) | ((bytes[offset + 2] ?? 0) << 8) | (bytes[offset + 3] ?? 0)) >>> 0;
}

export function prefixMask(prefixLength: number): Ipv4 {
  if (prefixLength <= 0) return 0;
  if (prefixLength >= 32) return 0xffffffff;
  return (0xffffffff << (32 - prefixLength)) >>> 0;
}

export interface Cidr {
  network: Ipv4;
  prefixLength: number;
}

/** Parses "a.b.c.d/n"; the host bits are cleared. */
export function parseCidr(text: string): Cidr | null {
  const slash = text.indexOf('/');
  if (slash < 0) return null;
  const ip = parseIpv4(text.slice(0, slash));
  const lenText = text.slice(slash + 1);
  if (ip === null || !/^\d{1,2}$/.test(lenText)) return null;
  const prefixLength = Number(lenText);
  if (prefixLength > 32) return null;
  return { network: (ip & prefixMask(prefixLength)) >>> 0, prefixLength };
}

export function formatCidr(cidr: Cidr): string {
  return `${formatIpv4(cidr.network)}/${cidr.prefixLength}`;
}

export function cidrContains(cidr: Cidr, ip: Ipv4): boolean {
  return ((ip & prefixMask(cidr.prefixLength)) >>> 0) === cidr.network;
}

export function broadcastOf(cidr: Cidr): Ipv4 {
  return (cidr.network | ~prefixMask(cidr.prefixLength)) >>> 0;
}

export interface Ipv4Range {
  first: Ipv4;
  last: Ipv4;
}

/** Parses "a.b.c.d-e.f.g.h" (inclusive, first <= last). */
export function parseIpv4Range(text: string): Ipv4Range | null {
  const parts = text.split('-');
  if (parts.length !== 2) return null;
  const first = parseIpv4(parts[0]!.trim());
  const last = parseIpv4(parts[1]!.trim());
  if (first === null || last === null || first > last) return null;
  return { first, last };
}

/** The in-addr.arpa name of an address, without a trailing dot. */
export function reverseName(ip: Ipv4): string {
  return `${ip & 0xff}.${(ip >>> 8) & 0xff}.${(ip >>> 16) & 0xff}.${ip >>> 24}.in-addr.arpa`;
}

/** "10.0.0.1" or "10.0.0.1:11123": an IPv4 address with an optional port (`defaultPort` when not given); null when it is neither. */
export function parseIpv4Endpoint(text: string, defaultPort: number): { address: string; port: number } | null {
  const m = /^([0-9.]+)(?::(\d{1,5}))?$/.exec(text.trim());
  if (!m || parseIpv4(m[1]!) === null) return null;
  const p = m[2] === undefined ? defaultPort : Number(m[2]);
  if (p < 1 || p > 65535) return null;
  return { address: m[1]!, port: p };
}
