import { formatIpv4, ipv4FromBytes, ipv4ToBytes, type Ipv4 } from '../../lib/ipv4.js';

// The DHCP option table: code -> name, value codec, RFC. The one source of truth for option names
// (logs, `lanctl`), for turning config values into bytes and for reading client options.
// Option bytes stay raw in the message (wire.ts); these codecs give them meaning. No sockets, no I/O.

/** How an option's bytes are read and written. */
export type OptionKind =
  | 'ip' | 'ips' | 'u8' | 'u16' | 'u32' | 'text' | 'bytes' | 'u8list'
  | 'routes'        // RFC 3442 classless static routes
  | 'domains'       // RFC 3397 DNS-encoded domain search list
  | 'userclass';    // RFC 3004 user class (list of length-prefixed items)

export interface OptionSpec {
  code: number;
  name: string;
  kind: OptionKind;
  rfc: string;
}

/** RFC 2132 and successor option codes; each constant's name follows the RFC's option name. */
export const DhcpOption = {
  Pad: 0,
  SubnetMask: 1,
  Router: 3,
  DomainNameServer: 6,
  HostName: 12,
  DomainName: 15,
  BroadcastAddress: 28,
  NtpServers: 42,
  VendorSpecific: 43,
  RequestedIpAddress: 50,
  IpAddressLeaseTime: 51,
  OptionOverload: 52,
  MessageType: 53,
  ServerIdentifier: 54,
  ParameterRequestList: 55,
  Message: 56,
  MaximumMessageSize: 57,
  RenewalTime: 58,
  RebindingTime: 59,
  VendorClassIdentifier: 60,
  ClientIdentifier: 61,
  TftpServerName: 66,
  BootfileName: 67,
  UserClass: 77,
  /** RFC 4039 Rapid Commit: empty; a DISCOVER carrying it may be answered by an ACK at once. */
  RapidCommit: 80,
  /** RFC 4702 Client FQDN. */
  ClientFqdn: 81,
  RelayAgentInformation: 82,
  ClientSystemArchitecture: 93,
  ClientNetworkInterface: 94,
  ClientMachineIdentifier: 97,
  DomainSearch: 119,
  ClasslessStaticRoute: 121,
  End: 255,
} as const;

const SPECS: OptionSpec[] = [
  { code: 1, name: 'subnet-mask', kind: 'ip', rfc: 'RFC 2132 §3.3' },
  { code: 2, name: 'time-offset', kind: 'u32', rfc: 'RFC 2132 §3.4' },
  { code: 3, name: 'router', kind: 'ips', rfc: 'RFC 2132 §3.5' },
  { code: 4, name: 'time-server', kind: 'ips', rfc: 'RFC 2132 §3.6' },
  { code: 6, name: 'domain-name-server', kind: 'ips', rfc: 'RFC 2132 §3.8' },
  { code: 7, name: 'log-server', kind: 'ips', rfc: 'RFC 2132 §3.9' },
  { code: 12, name: 'host-name', kind: 'text', rfc: 'RFC 2132 §3.14' },
  { code: 13, name: 'boot-file-size', kind: 'u16', rfc: 'RFC 2132 §3.15' },
  { code: 15, name: 'domain-name', kind: 'text', rfc: 'RFC 2132 §3.17' },
  { code: 17, name: 'root-path', kind: 'text', rfc: 'RFC 2132 §3.19' },
  { code: 26, name: 'interface-mtu', kind: 'u16', rfc: 'RFC 2132 §5.1' },
  { code: 28, name: 'broadcast-address', kind: 'ip', rfc: 'RFC 2132 §5.3' },
  { code: 33, name: 'static-route', kind: 'bytes', rfc: 'RFC 2132 §5.8' },
  { code: 42, name: 'ntp-servers', kind: 'ips', rfc: 'RFC 2132 §8.3' },
  { code: 43, name: 'vendor-specific', kind: 'bytes', rfc: 'RFC 2132 §8.4' },
  { code: 44, name: 'netbios-name-server', kind: 'ips', rfc: 'RFC 2132 §8.5' },
  { code: 50, name: 'requested-ip-address', kind: 'ip', rfc: 'RFC 2132 §9.1' },
  { code: 51, name: 'ip-address-lease-time', kind: 'u32', rfc: 'RFC 2132 §9.2' },
  { code: 52, name: 'option-overload', kind: 'u8', rfc: 'RFC 2132 §9.3' },
  { code: 53, name: 'dhcp-message-type', kind: 'u8', rfc: 'RFC 2132 §9.6' },
  { code: 54, name: 'server-identifier', kind: 'ip', rfc: 'RFC 2132 §9.7' },
  { code: 55, name: 'parameter-request-list', kind: 'u8list', rfc: 'RFC 2132 §9.8' },
  { code: 56, name: 'message', kind: 'text', rfc: 'RFC 2132 §9.9' },
  { code: 57, name: 'maximum-dhcp-message-size', kind: 'u16', rfc: 'RFC 2132 §9.10' },
  { code: 58, name: 'renewal-time', kind: 'u32', rfc: 'RFC 2132 §9.11' },
  { code: 59, name: 'rebinding-time', kind: 'u32', rfc: 'RFC 2132 §9.12' },
  { code: 60, name: 'vendor-class-identifier', kind: 'text', rfc: 'RFC 2132 §9.13' },
  { code: 61, name: 'client-identifier', kind: 'bytes', rfc: 'RFC 2132 §9.14' },
  { code: 66, name: 'tftp-server-name', kind: 'text', rfc: 'RFC 2132 §9.4' },
  { code: 67, name: 'bootfile-name', kind: 'text', rfc: 'RFC 2132 §9.5' },
  { code: 77, name: 'user-class', kind: 'userclass', rfc: 'RFC 3004' },
  { code: 80, name: 'rapid-commit', kind: 'bytes', rfc: 'RFC 4039' },
  { code: 81, name: 'client-fqdn', kind: 'bytes', rfc: 'RFC 4702' },
  { code: 82, name: 'relay-agent-information', kind: 'bytes', rfc: 'RFC 3046' },
  { code: 93, name: 'client-system-architecture', kind: 'u16', rfc: 'RFC 4578 §2.1' },
  { code: 94, name: 'client-network-interface', kind: 'bytes', rfc: 'RFC 4578 §2.2' },
  { code: 97, name: 'client-machine-identifier', kind: 'bytes', rfc: 'RFC 4578 §2.3' },
  { code: 119, name: 'domain-search', kind: 'domains', rfc: 'RFC 3397' },
  { code: 121, name: 'classless-static-route', kind: 'routes', rfc: 'RFC 3442' },
  { code: 150, name: 'tftp-server-address', kind: 'ips', rfc: 'RFC 5859' },
];

export const OPTION_TABLE: ReadonlyMap<number, OptionSpec> = new Map(SPECS.map((s) => [s.code, s]));

export function optionName(code: number): string {
  return OPTION_TABLE.get(code)?.name ?? `option-${code}`;
}

/** DHCP message types (option 53), RFC 2132 §9.6. */
export const MessageType = {
  Discover: 1, Offer: 2, Request: 3, Decline: 4, Ack: 5, Nak: 6, Release: 7, Inform: 8,
} as const;

const TYPE_NAMES = ['', 'discover', 'offer', 'request', 'decline', 'ack', 'nak', 'release', 'inform'] as const;
export type MessageTypeName = Exclude<(typeof TYPE_NAMES)[number], ''>;

export function messageTypeName(type: number): MessageTypeName | null {
  const name = TYPE_NAMES[type];
  return name === undefined || name === '' ? null : name;
}

// ---- value codecs ----------------------------------------------------------------------------

const utf8 = new TextDecoder('utf-8', { fatal: false });
const encoder = new TextEncoder();

export function textValue(bytes: Uint8Array): string {
  // Some clients NUL-terminate text options; the NUL is not part of the value.
  let end = bytes.length;
  while (end > 0 && bytes[end - 1] === 0) end--;
  return utf8.decode(bytes.subarray(0, end));
}

export function textBytes(text: string): Uint8Array { return encoder.encode(text); }

export function ipValue(bytes: Uint8Array): Ipv4 | null { return bytes.length === 4 ? ipv4FromBytes(bytes) : null; }

export function ipsValue(bytes: Uint8Array): Ipv4[] | null {
  if (bytes.length === 0 || bytes.length % 4 !== 0) return null;
  const out: Ipv4[] = [];
  for (let i = 0; i < bytes.length; i += 4) out.push(ipv4FromBytes(bytes, i));
  return out;
}

export function ipsBytes(ips: readonly Ipv4[]): Uint8Array {
  const out = new Uint8Array(ips.length * 4);
  ips.forEach((ip, i) => out.set(ipv4ToBytes(ip), i * 4));
  return out;
}

export function u16Value(bytes: Uint8Array): number | null { return bytes.length === 2 ? (bytes[0]! << 8) | bytes[1]! : null; }
export function u32Value(bytes: Uint8Array): number | null { return bytes.length === 4 ? ipv4FromBytes(bytes) : null; }
export function u8Bytes(value: number): Uint8Array { return new Uint8Array([value & 0xff]); }
export function u16Bytes(value: number): Uint8Array { return new Uint8Array([(value >>> 8) & 0xff, value & 0xff]); }
export function u32Bytes(value: number): Uint8Array { return ipv4ToBytes(value >>> 0); }

/** RFC 4578 §2.1: a list of 16-bit architecture types; the first is the one the client runs. */
export function archValues(bytes: Uint8Array): number[] | null {
  if (bytes.length === 0 || bytes.length % 2 !== 0) return null;
  const out: number[] = [];
  for (let i = 0; i < bytes.length; i += 2) out.push((bytes[i]! << 8) | bytes[i + 1]!);
  return out;
}

/**
 * RFC 3004 user class: length-prefixed items. iPXE and others send one bare string instead
 * ("iPXE"); when the bytes do not parse as items exactly, the whole option is one item.
 */
export function userClassValues(bytes: Uint8Array): string[] {
  const items: string[] = [];
  let i = 0;
  while (i < bytes.length) {
    const length = bytes[i]!;
    if (length === 0 || i + 1 + length > bytes.length) return [textValue(bytes)];
    items.push(textValue(bytes.subarray(i + 1, i + 1 + length)));
    i += 1 + length;
  }
  return items.length > 0 ? items : [textValue(bytes)];
}

export interface ClasslessRoute {
  destination: Ipv4;
  prefixLength: number;
  gateway: Ipv4;
}

/** RFC 3442 §2: width byte, only the significant octets of the destination, then the router. */
export function routesBytes(routes: readonly ClasslessRoute[]): Uint8Array {
  const out: number[] = [];
  for (const r of routes) {
    const significant = Math.ceil(r.prefixLength / 8);
    out.push(r.prefixLength, ...ipv4ToBytes(r.destination).subarray(0, significant), ...ipv4ToBytes(r.gateway));
  }
  return Uint8Array.from(out);
}

export function routesValue(bytes: Uint8Array): ClasslessRoute[] | null {
  const out: ClasslessRoute[] = [];
  let i = 0;
  while (i < bytes.length) {
    const prefixLength = bytes[i]!;
    if (prefixLength > 32) return null;
    const significant = Math.ceil(prefixLength / 8);
    if (i + 1 + significant + 4 > bytes.length) return null;
    const dest = new Uint8Array(4);
    dest.set(bytes.subarray(i + 1, i + 1 + significant));
    out.push({ destination: ipv4FromBytes(dest), prefixLength, gateway: ipv4FromBytes(bytes, i + 1 + significant) });
    i += 1 + significant + 4;
  }
  return out;
}

/** RFC 3397: the search list as DNS names (RFC 1035 §3.1), written without compression. */
export function domainsBytes(domains: readonly string[]): Uint8Array {
  const out: number[] = [];
  for (const domain of domains) {
    for (const label of domain.split('.').filter((l) => l.length > 0)) {
      const bytes = encoder.encode(label);
      out.push(bytes.length, ...bytes);
    }
    out.push(0);
  }
  return Uint8Array.from(out);
}

/** Reads an RFC 3397 list, following compression pointers (backwards only, so no loops). */
export function domainsValue(bytes: Uint8Array): string[] | null {
  const out: string[] = [];
  let i = 0;
  while (i < bytes.length) {
    const labels: string[] = [];
    let at = i;
    let next = -1;
    for (;;) {
      const length = bytes[at];
      if (length === undefined) return null;
      if (length === 0) { if (next < 0) next = at + 1; break; }
      if ((length & 0xc0) === 0xc0) {
        const target = ((length & 0x3f) << 8) | (bytes[at + 1] ?? 0);
        if (at + 1 >= bytes.length || target >= at) return null; // RFC 1035 §4.1.4: pointers go back
        if (next < 0) next = at + 2;
        at = target;
        continue;
      }
      if (length > 63 || at + 1 + length > bytes.length) return null;
      labels.push(textValue(bytes.subarray(at + 1, at + 1 + length)));
      at += 1 + length;
    }
    out.push(labels.join('.'));
    i = next;
  }
  return out;
}

/**
 * RFC 4702 §2 Client FQDN flags (the low four bits of the first octet):
 *
 *   0 1 2 3 4 5 6 7
 *  +-+-+-+-+-+-+-+-+
 *  |  MBZ  |N|E|O|S|   code 81, len, flags, RCODE1, RCODE2, domain name
 *  +-+-+-+-+-+-+-+-+
 */
export const FqdnFlag = {
  /** S: the server is to update (client) / updates (server) the A record. */
  ServerUpdate: 0x01,
  /** O: the server overrode the client's S. */
  Override: 0x02,
  /** E: the name is in DNS wire form (else ASCII, deprecated). */
  Encoded: 0x04,
  /** N: no DNS updates at all. */
  NoUpdate: 0x08,
} as const;

/**
 * RFC 4702 option 81 as flags and the name in dotted text (no trailing dot), or null when it does
 * not decode: under 3 octets, a wire-form label over 63 octets or past the end, a compression
 * pointer (RFC 4702 §2.1: not allowed), bytes after the root label. A wire-form name without the
 * root label is a partial name (§2.1) and is kept.
 */
export function clientFqdnValue(bytes: Uint8Array): { flags: number; name: string } | null {
  if (bytes.length < 3) return null;
  const flags = bytes[0]! & 0x0f;
  const body = bytes.subarray(3);
  if ((flags & FqdnFlag.Encoded) === 0) return { flags, name: textValue(body).replace(/\.$/, '') };
  const labels: string[] = [];
  let at = 0;
  while (at < body.length) {
    const length = body[at]!;
    if (length === 0) { if (at + 1 !== body.length) return null; break; }
    if (length > 63 || at + 1 + length > body.length) return null;
    labels.push(textValue(body.subarray(at + 1, at + 1 + length)));
    at += 1 + length;
  }
  return { flags, name: labels.join('.') };
}

/**
 * Option 81 as a server sends it (RFC 4702 §4: RCODE1 and RCODE2 are 255): `name` in the form the
 * client used (wire form when `flags` has E: fully qualified when it holds a dot, else partial).
 */
export function clientFqdnBytes(flags: number, name: string): Uint8Array {
  if ((flags & FqdnFlag.Encoded) === 0) {
    const text = encoder.encode(name);
    const out = new Uint8Array(3 + text.length);
    out.set([flags, 255, 255], 0);
    out.set(text, 3);
    return out;
  }
  const labels = name === '' ? [] : name.split('.').map((l) => encoder.encode(l).subarray(0, 63));
  const qualified = labels.length > 1;
  const out = new Uint8Array(3 + labels.reduce((n, l) => n + 1 + l.length, 0) + (qualified ? 1 : 0));
  out.set([flags, 255, 255], 0);
  let at = 3;
  for (const l of labels) { out[at++] = l.length; out.set(l, at); at += l.length; }
  return out; // the root label, when qualified, is the zero already there
}

/** RFC 3046 §2.0: relay agent sub-options (1 circuit id, 2 remote id), for logs. */
export function relayAgentValue(bytes: Uint8Array): Map<number, Uint8Array> | null {
  const out = new Map<number, Uint8Array>();
  let i = 0;
  while (i < bytes.length) {
    const code = bytes[i]!;
    const length = bytes[i + 1];
    if (length === undefined || i + 2 + length > bytes.length) return null;
    out.set(code, bytes.subarray(i + 2, i + 2 + length));
    i += 2 + length;
  }
  return out;
}

/**
 * Turns a config value for `options: { "<code>": value }` into bytes, using the table's kind:
 * "hex:0a0b" is always raw bytes; ip/ips kinds take dotted addresses separated by commas;
 * numbers go by the kind's width (u32 for unknown codes); other strings are text.
 */
export function configOptionBytes(code: number, value: string | number, parseIp: (s: string) => Ipv4 | null): Uint8Array | string {
  const kind = OPTION_TABLE.get(code)?.kind ?? 'bytes';
  if (typeof value === 'string' && value.startsWith('hex:')) {
    const hex = value.slice(4).replace(/[\s:]/g, '');
    if (!/^([0-9a-f]{2})*$/i.test(hex)) return 'is not hex bytes like "hex:0a0b0c"';
    return Uint8Array.from(hex.match(/../g) ?? [], (h) => parseInt(h, 16));
  }
  if (typeof value === 'number') {
    if (!Number.isInteger(value) || value < 0) return 'is not a non-negative integer';
    if (kind === 'u8') return u8Bytes(value);
    if (kind === 'u16') return u16Bytes(value);
    return u32Bytes(value);
  }
  if (kind === 'ip' || kind === 'ips') {
    const ips = value.split(',').map((s) => parseIp(s.trim()));
    if (ips.some((ip) => ip === null) || (kind === 'ip' && ips.length !== 1)) return `is not ${kind === 'ip' ? 'an IPv4 address' : 'a comma-separated IPv4 list'}`;
    return ipsBytes(ips as Ipv4[]);
  }
  if (kind === 'domains') return domainsBytes(value.split(',').map((s) => s.trim()));
  return textBytes(value);
}

/** A short human rendering of an option value, for logs and `lanctl explain`-style output. */
export function describeOption(code: number, bytes: Uint8Array): string {
  const kind = OPTION_TABLE.get(code)?.kind ?? 'bytes';
  const hex = (): string => [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');
  switch (kind) {
    case 'ip': case 'ips': return ipsValue(bytes)?.map(formatIpv4).join(',') ?? hex();
    case 'u8': return bytes.length === 1 ? String(bytes[0]) : hex();
    case 'u16': return String(u16Value(bytes) ?? hex());
    case 'u32': return String(u32Value(bytes) ?? hex());
    case 'text': return textValue(bytes);
    case 'u8list': return [...bytes].join(',');
    case 'userclass': return userClassValues(bytes).join(',');
    case 'domains': return domainsValue(bytes)?.join(',') ?? hex();
    case 'routes': return routesValue(bytes)?.map((r) => `${formatIpv4(r.destination)}/${r.prefixLength}->${formatIpv4(r.gateway)}`).join(',') ?? hex();
    case 'bytes': return hex();
  }
}
