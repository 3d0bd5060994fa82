// The pcap stream a capture child (`tcpdump -w -`) writes, read for one thing: the kernel's stamp of
// each NTP datagram, with what lets the server find it again: for a request, the source address and
// port and the client's transmit timestamp (what the handler sees of the same datagram); for a reply,
// the transmit timestamp we wrote into it. A request's stamp is the one the kernel put on it in its
// receive path, before any process woke (what SO_TIMESTAMPNS would give); a reply's, where the
// kernel handed it to the device.
// Incremental: bytes arrive in pipe-sized pieces, records may straddle them. Never throws: a stream
// that is not pcap, or a record that is not an IPv4/IPv6 UDP datagram long enough to be NTP, is
// reported or skipped, never read past its end. No I/O here: see capture.ts.
//
//   global header (24 bytes, the writer's byte order, told by the magic):
//   +--------------------+---------+---------+----------+---------+---------+----------+
//   | magic a1b2c3d4 /us | major 2 | minor 4 | thiszone | sigfigs | snaplen | linktype |
//   |       a1b23c4d /ns |  (2)    |  (2)    |   (4)    |   (4)   |   (4)   |   (4)    |
//   +--------------------+---------+---------+----------+---------+---------+----------+
//   record: ts_sec (4) | ts_us or ts_ns (4) | incl_len (4) | orig_len (4) | incl_len bytes of packet
//
//   link layers: EN10MB (14 bytes, ethertype at 12, one 802.1Q tag skipped), LINUX_SLL (16, packet
//   type at 0, protocol at 14), LINUX_SLL2 (20, protocol at 0, packet type at 10), NULL (4, AF in
//   the writer's order), LOOP (4, AF big endian), RAW/IPV4/IPV6 (none); only the Linux cooked
//   headers tell a packet sent from one received. Then IPv4 (unfragmented) or IPv6 (UDP as the
//   first next header), UDP (8), and the NTP header: its transmit timestamp is bytes 40-47.

export const PCAP_GLOBAL_HEADER_LENGTH = 24;
export const PCAP_RECORD_HEADER_LENGTH = 16;
/** A record longer than this is not what our capture asked for (-s 128): the stream is broken. */
export const PCAP_RECORD_MAX = 65_535;

export const LinkType = {
  /** DLT_NULL: BSD loopback, a 4-byte address family in the writer's byte order. */
  Null: 0,
  /** DLT_EN10MB: Ethernet II. */
  Ethernet: 1,
  /** DLT_RAW (as written by libpcap on Linux). */
  Raw: 101,
  /** DLT_LOOP: OpenBSD loopback, the family big endian. */
  Loop: 108,
  /** DLT_LINUX_SLL: Linux cooked capture v1 (`-i any`). */
  LinuxSll: 113,
  /** LINKTYPE_IPV4. */
  Ipv4: 228,
  /** LINKTYPE_IPV6. */
  Ipv6: 229,
  /** DLT_LINUX_SLL2: Linux cooked capture v2. */
  LinuxSll2: 276,
} as const;

const NTP_TRANSMIT_OFFSET = 40;
const NTP_MIN = 48;

/** One NTP-sized UDP datagram as captured: who sent it to which port, its transmit timestamp, the kernel's stamp. */
export interface CapturedDatagram {
  /** Source address as Node's dgram prints it in `rinfo.address`. */
  address: string;
  port: number;
  destinationPort: number;
  /** Sent by this host (true), received (false), or not told by the link layer (null). */
  outgoing: boolean | null;
  /** The sender's transmit timestamp (NTP bytes 40-47), as two 32-bit halves. */
  transmitHi: number;
  transmitLo: number;
  /** The kernel's stamp of the packet, ns since the Unix epoch (CLOCK_REALTIME). */
  kernelNs: bigint;
}

/** The key a request is found by, built alike from the capture and from the handler's datagram. */
export function requestKey(address: string, port: number, transmitHi: number, transmitLo: number): string {
  return `${address}|${port}|${transmitHi}|${transmitLo}`;
}

/** The key of a request the handler holds: its source and bytes 40-47 (null when too short). */
export function datagramKey(address: string, port: number, msg: Uint8Array): string | null {
  if (msg.length < NTP_MIN) return null;
  // A link-local IPv6 source carries its zone (`fe80::1%eth0`) in rinfo; the capture cannot see it.
  const zone = address.indexOf('%');
  return requestKey(zone < 0 ? address : address.slice(0, zone), port, readU32(msg, NTP_TRANSMIT_OFFSET, false), readU32(msg, NTP_TRANSMIT_OFFSET + 4, false));
}

export type PcapEvent =
  | { kind: 'datagram'; datagram: CapturedDatagram }
  /** A record that was not an NTP-sized UDP datagram over IPv4/IPv6 (skipped). */
  | { kind: 'skipped'; reason: string }
  /** The stream cannot be read further (not pcap, an unknown link type, a record of absurd size). */
  | { kind: 'broken'; reason: string };

interface Header { swapped: boolean; nano: boolean; linkType: number }

/**
 * Reads a pcap byte stream piece by piece. `push` returns the events of every record completed by
 * these bytes; after a `broken` event it returns nothing more (the stream has no resync point).
 */
export class PcapReader {
  private header: Header | null = null;
  private pending: Uint8Array = new Uint8Array(0);
  private brokenReason: string | null = null;
  /** Bytes held for a record not yet complete (at most one record plus its header). */
  get buffered(): number { return this.pending.length; }
  get broken(): string | null { return this.brokenReason; }
  get linkType(): number | null { return this.header?.linkType ?? null; }

  push(chunk: Uint8Array): PcapEvent[] {
    if (this.brokenReason !== null) return [];
    const data = this.pending.length === 0 ? chunk : concat(this.pending, chunk);
    const events: PcapEvent[] = [];
    let at = 0;
    if (this.header === null) {
      if (data.length < PCAP_GLOBAL_HEADER_LENGTH) { this.pending = data.slice(); return events; }
      const header = readGlobalHeader(data);
      if (typeof header === 'string') return this.fail(header, events);
      this.header = header;
      at = PCAP_GLOBAL_HEADER_LENGTH;
    }
    const { swapped, nano, linkType } = this.header;
    while (data.length - at >= PCAP_RECORD_HEADER_LENGTH) {
      const sec = readU32(data, at, swapped);
      const frac = readU32(data, at + 4, swapped);
      const included = readU32(data, at + 8, swapped);
      if (included > PCAP_RECORD_MAX) return this.fail(`record of ${included} bytes (more than ${PCAP_RECORD_MAX})`, events);
      if (frac >= (nano ? 1_000_000_000 : 1_000_000)) return this.fail(`record stamp fraction ${frac} out of range`, events);
      if (data.length - at - PCAP_RECORD_HEADER_LENGTH < included) break;
      const start = at + PCAP_RECORD_HEADER_LENGTH;
      const kernelNs = BigInt(sec) * 1_000_000_000n + BigInt(nano ? frac : frac * 1000);
      events.push(decodeRecord(data.subarray(start, start + included), linkType, swapped, kernelNs));
      at = start + included;
    }
    this.pending = at === data.length ? new Uint8Array(0) : data.slice(at);
    return events;
  }

  private fail(reason: string, events: PcapEvent[]): PcapEvent[] {
    this.brokenReason = reason;
    this.pending = new Uint8Array(0);
    events.push({ kind: 'broken', reason });
    return events;
  }
}

function readGlobalHeader(b: Uint8Array): Header | string {
  const big = readU32(b, 0, false);
  const little = readU32(b, 0, true);
  let swapped: boolean;
  let nano: boolean;
  if (big === 0xa1b2c3d4 || big === 0xa1b23c4d) { swapped = false; nano = big === 0xa1b23c4d; }
  else if (little === 0xa1b2c3d4 || little === 0xa1b23c4d) { swapped = true; nano = little === 0xa1b23c4d; }
  else return `not a pcap stream (magic ${hex(big)})`;
  const major = readU16(b, 4, swapped);
  if (major !== 2) return `pcap version ${major} (2 expected)`;
  // The top bits of the link-type field carry FCS information (pcap spec §4): only the low 16 name it.
  const linkType = readU32(b, 20, swapped) & 0xffff;
  if (!Object.values(LinkType).includes(linkType as never)) return `link type ${linkType} not read`;
  return { swapped, nano, linkType };
}

/** The Linux packet type of a packet this host sent (linux/if_packet.h). */
const PACKET_OUTGOING = 4;
const ETHERTYPE_IPV4 = 0x0800;
const ETHERTYPE_IPV6 = 0x86dd;
const ETHERTYPE_VLAN = 0x8100;
const AF_INET = 2;
/** AF_INET6 differs by system (Linux 10, BSDs 24/28/30): any of them means IPv6 here. */
const AF_INET6 = new Set([10, 24, 28, 30]);

function decodeRecord(packet: Uint8Array, linkType: number, swapped: boolean, kernelNs: bigint): PcapEvent {
  let at: number;
  let ethertype: number;
  let outgoing: boolean | null = null;
  switch (linkType) {
    case LinkType.Ethernet:
      if (packet.length < 14) return skip('short link header');
      ethertype = readU16(packet, 12, false);
      at = 14;
      if (ethertype === ETHERTYPE_VLAN) {
        if (packet.length < 18) return skip('short link header');
        ethertype = readU16(packet, 16, false);
        at = 18;
      }
      break;
    case LinkType.LinuxSll:
      if (packet.length < 16) return skip('short link header');
      outgoing = readU16(packet, 0, false) === PACKET_OUTGOING;
      ethertype = readU16(packet, 14, false);
      at = 16;
      break;
    case LinkType.LinuxSll2:
      if (packet.length < 20) return skip('short link header');
      outgoing = packet[10] === PACKET_OUTGOING;
      ethertype = readU16(packet, 0, false);
      at = 20;
      break;
    case LinkType.Null:
    case LinkType.Loop: {
      if (packet.length < 4) return skip('short link header');
      const family = readU32(packet, 0, linkType === LinkType.Null ? swapped : false);
      ethertype = family === AF_INET ? ETHERTYPE_IPV4 : AF_INET6.has(family) ? ETHERTYPE_IPV6 : 0;
      at = 4;
      break;
    }
    default: // Raw, Ipv4, Ipv6: the version nibble says which
      if (packet.length < 1) return skip('empty packet');
      ethertype = packet[0]! >> 4 === 4 ? ETHERTYPE_IPV4 : packet[0]! >> 4 === 6 ? ETHERTYPE_IPV6 : 0;
      at = 0;
  }
  if (ethertype === ETHERTYPE_IPV4) return decodeIpv4(packet, at, outgoing, kernelNs);
  if (ethertype === ETHERTYPE_IPV6) return decodeIpv6(packet, at, outgoing, kernelNs);
  return skip(`not IP (ethertype ${hex(ethertype)})`);
}

function decodeIpv4(p: Uint8Array, at: number, outgoing: boolean | null, kernelNs: bigint): PcapEvent {
  if (p.length - at < 20) return skip('short IPv4 header');
  if (p[at]! >> 4 !== 4) return skip('not IPv4');
  const ihl = (p[at]! & 15) * 4;
  if (ihl < 20 || p.length - at < ihl) return skip('bad IPv4 header length');
  if (p[at + 9] !== 17) return skip('not UDP');
  // A fragment (offset or more-fragments set) is not a whole request: the kernel reassembles it and
  // the handler's stamp falls back to the estimate.
  if ((readU16(p, at + 6, false) & 0x3fff) !== 0) return skip('IPv4 fragment');
  const address = `${p[at + 12]}.${p[at + 13]}.${p[at + 14]}.${p[at + 15]}`;
  return decodeUdp(p, at + ihl, address, outgoing, kernelNs);
}

function decodeIpv6(p: Uint8Array, at: number, outgoing: boolean | null, kernelNs: bigint): PcapEvent {
  if (p.length - at < 40) return skip('short IPv6 header');
  if (p[at]! >> 4 !== 6) return skip('not IPv6');
  if (p[at + 6] !== 17) return skip('not UDP (or UDP behind extension headers)');
  return decodeUdp(p, at + 40, formatIpv6(p.subarray(at + 8, at + 24)), outgoing, kernelNs);
}

function decodeUdp(p: Uint8Array, at: number, address: string, outgoing: boolean | null, kernelNs: bigint): PcapEvent {
  if (p.length - at < 8 + NTP_MIN) return skip('too short for an NTP packet');
  const ntp = at + 8;
  return {
    kind: 'datagram',
    datagram: {
      address, port: readU16(p, at, false), destinationPort: readU16(p, at + 2, false), outgoing,
      transmitHi: readU32(p, ntp + NTP_TRANSMIT_OFFSET, false), transmitLo: readU32(p, ntp + NTP_TRANSMIT_OFFSET + 4, false), kernelNs,
    },
  };
}

/** An IPv6 address as Node prints it (RFC 5952: lower case, the longest run of 2+ zero groups as ::). */
export function formatIpv6(b: Uint8Array): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((b[i]! << 8) | b[i + 1]!);
  let bestAt = -1, bestLength = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) { bestAt = i; bestLength = j - i; }
    i = j;
  }
  // IPv4-mapped (::ffff:a.b.c.d) as inet_ntop writes it.
  if (bestAt === 0 && bestLength === 5 && groups[5] === 0xffff) return `::ffff:${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  const text = (from: number, to: number): string => groups.slice(from, to).map((g) => g.toString(16)).join(':');
  if (bestAt < 0) return text(0, 8);
  return `${text(0, bestAt)}::${text(bestAt + bestLength, 8)}`;
}

const skip = (reason: string): PcapEvent => ({ kind: 'skipped', reason });

function readU16(b: Uint8Array, at: number, little: boolean): number {
  return little ? b[at]! | (b[at + 1]! << 8) : (b[at]! << 8) | b[at + 1]!;
}

function readU32(b: Uint8Array, at: number, little: boolean): number {
  return little
    ? (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0
    : ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

const hex = (v: number): string => `0x${v.toString(16)}`;
