import { WireReader } from '../../lib/wire-reader.js';
import { decoded, failed, type Decoded } from '../../lib/result.js';

// NTP packet codec (RFC 5905 §7.3), extension fields (RFC 7822) and the two time formats: the 64-bit
// timestamp (32.32 seconds since the era start) and the 32-bit short format (16.16 seconds). Era
// handling resolves a 32-bit seconds field to the era nearest a pivot time (RFC 5905 §6: era 1
// starts 2036-02-07T06:28:16Z). No sockets, no clock; decoding never throws.
//
//   0                   1                   2                   3
//   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |LI | VN  |Mode |    Stratum    |     Poll      |   Precision   |  0
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |                  Root Delay (short format)                    |  4
//  |                Root Dispersion (short format)                 |  8
//  |                        Reference ID                           | 12
//  +                  Reference Timestamp (64)                     + 16
//  +                  Origin Timestamp (64)                        + 24
//  +                  Receive Timestamp (64)                       + 32
//  +                  Transmit Timestamp (64)                      + 40
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |  Extension fields (v4 only: type 16, length 16, value, padded to 4) ... | 48
//  |  Legacy MAC (key id 32 + digest 128/160), optional            |

export const HEADER_LENGTH = 48;

/** RFC 5905 §7.3 "Mode". */
export const NtpMode = {
  Reserved: 0,
  SymmetricActive: 1,
  SymmetricPassive: 2,
  Client: 3,
  Server: 4,
  Broadcast: 5,
  /** NTP control message (ntpq); never answered. */
  Control: 6,
  /** Private use (ntpdc monlist, CVE-2013-5211); never answered. */
  Private: 7,
} as const;

/** RFC 5905 §7.3 "LI Leap Indicator". */
export const LeapIndicator = {
  NoWarning: 0,
  LastMinute61: 1,
  LastMinute59: 2,
  /** Clock unsynchronised: clients must not use this server. */
  Unsynchronised: 3,
} as const;
export type Leap = 0 | 1 | 2 | 3;

/** RFC 5905 §7.3: stratum 16 means unsynchronised; 0 on the wire is a Kiss-o'-Death. */
export const STRATUM_UNSYNCHRONISED = 16;
export const STRATUM_KOD = 0;

/** Seconds from 1900-01-01 (NTP era 0) to 1970-01-01 (Unix epoch). */
export const NTP_UNIX_OFFSET_S = 2_208_988_800;
const NS_PER_S = 1_000_000_000n;
const OFFSET_NS = BigInt(NTP_UNIX_OFFSET_S) * NS_PER_S;
const TWO_32 = 0x1_0000_0000n;

/** A raw 64-bit NTP timestamp: seconds and fraction as on the wire; the era is implicit. */
export interface NtpTimestamp {
  seconds: number;
  fraction: number;
}

export const ZERO_TIMESTAMP: NtpTimestamp = Object.freeze({ seconds: 0, fraction: 0 });

export interface ExtensionField {
  type: number;
  /** The value bytes (after type and length, padding included). */
  value: Uint8Array;
}

export interface NtpPacket {
  leap: Leap;
  version: number;
  mode: number;
  stratum: number;
  /** log2 seconds, signed. */
  poll: number;
  /** log2 seconds, signed. */
  precision: number;
  /** Short format, raw 16.16. */
  rootDelay: number;
  /** Short format, raw 16.16. */
  rootDispersion: number;
  /** Raw 32 bits: an IPv4 address, or four ASCII characters (stratum 0/1). */
  referenceId: number;
  referenceTimestamp: NtpTimestamp;
  originTimestamp: NtpTimestamp;
  receiveTimestamp: NtpTimestamp;
  transmitTimestamp: NtpTimestamp;
  extensions: ExtensionField[];
  /** Legacy symmetric-key MAC (key id + digest), if present. */
  mac: Uint8Array | null;
}

export type NtpDecodeError = 'short' | 'bad-trailer';

/**
 * Decodes one datagram. Bytes after the header are extension fields (v4 only, RFC 7822 §7.5) and/or a
 * legacy MAC of 20 or 24 bytes; anything else after the header is refused, never read past.
 */
export function decodeNtp(bytes: Uint8Array): Decoded<NtpPacket, NtpDecodeError> {
  if (bytes.byteLength < HEADER_LENGTH) return failed('short', bytes.byteLength);
  const r = new WireReader(bytes);
  const first = r.u8();
  const packet: NtpPacket = {
    leap: (first >>> 6) as Leap,
    version: (first >>> 3) & 7,
    mode: first & 7,
    stratum: r.u8(),
    poll: (r.u8() << 24) >> 24,
    precision: (r.u8() << 24) >> 24,
    rootDelay: r.u32(),
    rootDispersion: r.u32(),
    referenceId: r.u32(),
    referenceTimestamp: readTimestamp(r),
    originTimestamp: readTimestamp(r),
    receiveTimestamp: readTimestamp(r),
    transmitTimestamp: readTimestamp(r),
    extensions: [],
    mac: null,
  };
  const trailer = decodeTrailer(bytes, packet.version, packet.extensions);
  if (trailer === null) return failed('bad-trailer', HEADER_LENGTH);
  packet.mac = trailer.mac;
  return decoded(packet);
}

const MAC_LENGTHS = new Set([20, 24]);
/** RFC 7822 §7.5: the smallest extension field is 16 octets (the last one may carry a MAC after it). */
const EXTENSION_LENGTH_MIN = 16;

function decodeTrailer(bytes: Uint8Array, version: number, out: ExtensionField[]): { mac: Uint8Array | null } | null {
  let at = HEADER_LENGTH;
  const end = bytes.byteLength;
  if (at === end) return { mac: null };
  // Before v4 there are no extension fields: a trailer can only be a MAC.
  if (version >= 4) {
    while (end - at > 0 && !MAC_LENGTHS.has(end - at)) {
      if (end - at < EXTENSION_LENGTH_MIN) return null;
      const type = (bytes[at]! << 8) | bytes[at + 1]!;
      const length = (bytes[at + 2]! << 8) | bytes[at + 3]!;
      if (length < EXTENSION_LENGTH_MIN || length % 4 !== 0 || length > end - at) return null;
      out.push({ type, value: bytes.subarray(at + 4, at + length) });
      at += length;
    }
  }
  if (at === end) return { mac: null };
  if (MAC_LENGTHS.has(end - at)) return { mac: bytes.subarray(at, end) };
  return null;
}

function readTimestamp(r: WireReader): NtpTimestamp {
  return { seconds: r.u32(), fraction: r.u32() };
}

/** The encoded length of a packet: header, extension fields, MAC. */
export function encodedLength(packet: NtpPacket): number {
  let n = HEADER_LENGTH;
  for (const e of packet.extensions) n += 4 + e.value.byteLength;
  return n + (packet.mac?.byteLength ?? 0);
}

/** Encodes a packet into a new buffer (the responder's hot path writes in place instead). */
export function encodeNtp(packet: NtpPacket): Uint8Array {
  const out = new Uint8Array(encodedLength(packet));
  writeHeader(out, packet);
  let at = HEADER_LENGTH;
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  for (const e of packet.extensions) {
    view.setUint16(at, e.type);
    view.setUint16(at + 2, 4 + e.value.byteLength);
    out.set(e.value, at + 4);
    at += 4 + e.value.byteLength;
  }
  if (packet.mac) out.set(packet.mac, at);
  return out;
}

/** Writes the 48-byte header into `out` (at least 48 bytes long). */
export function writeHeader(out: Uint8Array, p: Omit<NtpPacket, 'extensions' | 'mac'>): void {
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  view.setUint8(0, ((p.leap & 3) << 6) | ((p.version & 7) << 3) | (p.mode & 7));
  view.setUint8(1, p.stratum & 0xff);
  view.setInt8(2, clampInt8(p.poll));
  view.setInt8(3, clampInt8(p.precision));
  view.setUint32(4, p.rootDelay >>> 0);
  view.setUint32(8, p.rootDispersion >>> 0);
  view.setUint32(12, p.referenceId >>> 0);
  writeTimestamp(view, 16, p.referenceTimestamp);
  writeTimestamp(view, 24, p.originTimestamp);
  writeTimestamp(view, 32, p.receiveTimestamp);
  writeTimestamp(view, 40, p.transmitTimestamp);
}

function clampInt8(v: number): number {
  return Math.max(-128, Math.min(127, Math.trunc(v)));
}

export function writeTimestamp(view: DataView, at: number, ts: NtpTimestamp): void {
  view.setUint32(at, ts.seconds >>> 0);
  view.setUint32(at + 4, ts.fraction >>> 0);
}

/** Offset of the transmit timestamp: the shell fills it in just before the send. */
export const TRANSMIT_OFFSET = 40;

// --- time formats -------------------------------------------------------------------------------

/** A Unix time in nanoseconds as a 64-bit NTP timestamp (the era is dropped, RFC 5905 §6). */
export function timestampFromUnixNs(unixNs: bigint): NtpTimestamp {
  const ntpNs = unixNs + OFFSET_NS;
  let seconds = ntpNs / NS_PER_S;
  let nanos = ntpNs % NS_PER_S;
  if (nanos < 0n) { nanos += NS_PER_S; seconds -= 1n; }
  return {
    seconds: Number(BigInt.asUintN(32, seconds)),
    fraction: Number((nanos << 32n) / NS_PER_S),
  };
}

/**
 * The Unix time (ns) of a timestamp, taking the era that puts it nearest `pivotUnixNs` (so a
 * timestamp written just after the 2036 rollover, seconds near 0, reads as 2036, not 1900).
 */
export function unixNsFromTimestamp(ts: NtpTimestamp, pivotUnixNs: bigint): bigint {
  const pivotNtpS = floorDiv(pivotUnixNs + OFFSET_NS, NS_PER_S);
  let delta = BigInt(ts.seconds >>> 0) - BigInt.asUintN(32, pivotNtpS);
  if (delta >= TWO_32 / 2n) delta -= TWO_32;
  else if (delta < -TWO_32 / 2n) delta += TWO_32;
  const ntpS = pivotNtpS + delta;
  // Round to nearest so ns -> fraction -> ns is exact (2^-32 s is finer than 1 ns).
  const nanos = (BigInt(ts.fraction >>> 0) * NS_PER_S + (1n << 31n)) >> 32n;
  return ntpS * NS_PER_S + nanos - OFFSET_NS;
}

/** RFC 5905 §6: the era number of an absolute NTP time (seconds since 1900-01-01, any size). */
export function eraOf(ntpSeconds: bigint): bigint {
  return floorDiv(ntpSeconds, TWO_32);
}

function floorDiv(a: bigint, b: bigint): bigint {
  const q = a / b;
  return (a % b !== 0n && (a < 0n) !== (b < 0n)) ? q - 1n : q;
}

/** True for the all-zero timestamp, which means "unknown" (RFC 5905 §7.3). */
export function isZeroTimestamp(ts: NtpTimestamp): boolean {
  return ts.seconds === 0 && ts.fraction === 0;
}

export function timestampsEqual(a: NtpTimestamp, b: NtpTimestamp): boolean {
  return a.seconds === b.seconds && a.fraction === b.fraction;
}

/** Seconds as the 16.16 short format, saturating at its range (0 .. 65535.99998). */
export function shortFromSeconds(seconds: number): number {
  if (!(seconds > 0)) return 0;
  return Math.min(0xffffffff, Math.round(seconds * 65536)) >>> 0;
}

export function secondsFromShort(short: number): number {
  return (short >>> 0) / 65536;
}

/** Four ASCII characters (a kiss code or a stratum-1 source name like "GPS") as a reference id. */
export function asciiReferenceId(text: string): number {
  let id = 0;
  for (let i = 0; i < 4; i++) id = (id * 256) + (i < text.length ? text.charCodeAt(i) & 0x7f : 0);
  return id >>> 0;
}

export function referenceIdText(id: number, stratum: number): string {
  if (stratum <= 1) {
    let s = '';
    for (let shift = 24; shift >= 0; shift -= 8) {
      const c = (id >>> shift) & 0xff;
      if (c !== 0) s += c >= 0x20 && c < 0x7f ? String.fromCharCode(c) : '?';
    }
    return s;
  }
  return [id >>> 24, (id >>> 16) & 0xff, (id >>> 8) & 0xff, id & 0xff].join('.');
}
