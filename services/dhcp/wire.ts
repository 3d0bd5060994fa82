import { WireWriter } from '../../lib/wire-writer.js';
import { failed, type Decoded } from '../../lib/result.js';
import { DhcpOption } from './options.js';

// DHCPv4 message codec (RFC 2131 §2, RFC 2132, RFC 3396 long options, RFC 3046 option 82 last).
// Bytes <-> DhcpMessage; decoding never throws and returns a typed error. Options stay raw bytes
// keyed by code (options.ts gives them meaning). A decoded message's arrays (chaddr, sname, file,
// option values) are views of the datagram it came from, not copies: neither is written afterwards.
// No sockets, no clock, no logging: see server.ts.
//
//   0                   1                   2                   3
//   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//  +---------------+---------------+---------------+---------------+
//  |     op (1)    |   htype (1)   |   hlen (1)    |   hops (1)    |
//  +---------------+---------------+---------------+---------------+
//  |                            xid (4)                            |
//  +-------------------------------+-------------------------------+
//  |           secs (2)            |           flags (2)           |
//  +-------------------------------+-------------------------------+
//  |  ciaddr (4) | yiaddr (4) | siaddr (4) | giaddr (4)            |
//  +---------------------------------------------------------------+
//  |  chaddr (16)  |  sname (64)  |  file (128)                    |
//  +---------------------------------------------------------------+
//  |  magic cookie 99.130.83.99 (4)  |  options (variable, END)    |
//  +---------------------------------------------------------------+

export const HEADER_SIZE = 236;
export const OPTIONS_OFFSET = 240;
export const MAGIC_COOKIE = 0x63825363;
/** RFC 2131 §2: every client accepts at least a 576-octet IP datagram, i.e. 548 octets of DHCP. */
export const DEFAULT_MESSAGE_SIZE_MAX = 548;
/** RFC 1542 §3.4: some BOOTP relays and clients drop messages shorter than 300 octets. */
export const BOOTP_SIZE_MIN = 300;
const SNAME_SIZE = 64;
const FILE_SIZE = 128;
const CHADDR_SIZE = 16;
const OVERLOAD_FILE = 1;
const OVERLOAD_SNAME = 2;

export const BootOp = { Request: 1, Reply: 2 } as const;

export type DhcpDecodeErrorCode = 'short-header' | 'bad-cookie' | 'option-overrun' | 'missing-end' | 'hlen-too-large';

export interface DhcpMessage {
  op: number;
  htype: number;
  hlen: number;
  hops: number;
  xid: number;
  secs: number;
  flags: number;
  ciaddr: number;
  yiaddr: number;
  siaddr: number;
  giaddr: number;
  /** All 16 octets; the client's hardware address is the first `hlen`. */
  chaddr: Uint8Array;
  /** 64 octets; all zero when option overload used it for options. */
  sname: Uint8Array;
  /** 128 octets; all zero when option overload used it for options. */
  file: Uint8Array;
  /**
   * Options in first-seen order, each code once: RFC 3396 §5 fragments are already joined. PAD,
   * END and OVERLOAD (52) are structure, not options, and never appear here. 82 is always last.
   */
  options: Map<number, Uint8Array>;
}

export const FLAG_BROADCAST = 0x8000;

/** Decodes one DHCP/BOOTP datagram. */
export function decodeDhcp(bytes: Uint8Array): Decoded<DhcpMessage, DhcpDecodeErrorCode> {
  if (bytes.length < OPTIONS_OFFSET) return failed('short-header', bytes.length);
  const hlen = bytes[2]!;
  if (hlen > CHADDR_SIZE) return failed('hlen-too-large', 2, `hlen ${hlen}`);
  if (u32At(bytes, HEADER_SIZE) !== MAGIC_COOKIE) return failed('bad-cookie', HEADER_SIZE);

  const options = new OptionSink();
  const main = readOptionArea(bytes, OPTIONS_OFFSET, bytes.length, true, options);
  if (main !== null) return main;
  // RFC 2131 §4.1 / RFC 3396 §5: with overload, options continue in `file`, then `sname`.
  const overloadBytes = options.overload;
  const overload = overloadBytes?.length === 1 ? overloadBytes[0]! : 0;
  // The fixed fields are views of the datagram (decoding copies nothing it need not): a field
  // that carried options reads as all zeros.
  let file = bytes.subarray(108, 108 + FILE_SIZE);
  let sname = bytes.subarray(44, 44 + SNAME_SIZE);
  if (overload & OVERLOAD_FILE) {
    const error = readOptionArea(bytes, 108, 108 + FILE_SIZE, false, options);
    if (error !== null) return error;
    file = new Uint8Array(FILE_SIZE);
  }
  if (overload & OVERLOAD_SNAME) {
    const error = readOptionArea(bytes, 44, 44 + SNAME_SIZE, false, options);
    if (error !== null) return error;
    sname = new Uint8Array(SNAME_SIZE);
  }
  return { ok: true, value: withHeader(bytes, sname, file, options.finish()) };
}

/**
 * Decodes a BOOTP datagram (RFC 951) whose vendor area is not RFC 1048's (no magic cookie: a
 * vendor's own format, or zeros): the fixed header, and no options. decodeDhcp refuses such a
 * datagram (`bad-cookie`); only a BOOTREQUEST of at least RFC 951's 300 octets is read here.
 */
export function decodeBootp(bytes: Uint8Array): Decoded<DhcpMessage, DhcpDecodeErrorCode> {
  if (bytes.length < BOOTP_SIZE_MIN) return failed('short-header', bytes.length);
  const hlen = bytes[2]!;
  if (hlen > CHADDR_SIZE) return failed('hlen-too-large', 2, `hlen ${hlen}`);
  if (bytes[0] !== BootOp.Request || u32At(bytes, HEADER_SIZE) === MAGIC_COOKIE) return failed('bad-cookie', HEADER_SIZE);
  return { ok: true, value: withHeader(bytes, bytes.subarray(44, 44 + SNAME_SIZE), bytes.subarray(108, 108 + FILE_SIZE), new Map()) };
}

/** The fixed header's fields, read from the datagram (views, not copies), with the given sname, file and options. */
function withHeader(bytes: Uint8Array, sname: Uint8Array, file: Uint8Array, options: Map<number, Uint8Array>): DhcpMessage {
  return {
    op: bytes[0]!, htype: bytes[1]!, hlen: bytes[2]!, hops: bytes[3]!,
    xid: u32At(bytes, 4), secs: (bytes[8]! << 8) | bytes[9]!, flags: (bytes[10]! << 8) | bytes[11]!,
    ciaddr: u32At(bytes, 12), yiaddr: u32At(bytes, 16), siaddr: u32At(bytes, 20), giaddr: u32At(bytes, 24),
    chaddr: bytes.subarray(28, 28 + CHADDR_SIZE), sname, file, options,
  };
}

function u32At(bytes: Uint8Array, at: number): number {
  return ((bytes[at]! << 24) | (bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!) >>> 0;
}

/**
 * Collects options as they are read (RFC 3396 §5): every instance of a code is one value,
 * concatenated in order of appearance; the first OVERLOAD (52) is kept aside, as structure.
 */
class OptionSink {
  readonly map = new Map<number, Uint8Array>();
  overload: Uint8Array | undefined;
  /** Codes seen more than once: all their parts, in order. */
  #parts: Map<number, Uint8Array[]> | null = null;

  add(code: number, data: Uint8Array): void {
    if (code === DhcpOption.OptionOverload) { this.overload ??= data; return; }
    const first = this.map.get(code);
    if (first === undefined) { this.map.set(code, data); return; }
    this.#parts ??= new Map();
    const parts = this.#parts.get(code);
    if (parts) parts.push(data);
    else this.#parts.set(code, [first, data]);
  }

  /** The options in first-seen order, fragments joined, 82 last (RFC 3046 §2.1). */
  finish(): Map<number, Uint8Array> {
    if (this.#parts !== null) for (const [code, parts] of this.#parts) this.map.set(code, concat(parts));
    const relay = this.map.get(DhcpOption.RelayAgentInformation);
    if (relay !== undefined) {
      this.map.delete(DhcpOption.RelayAgentInformation);
      this.map.set(DhcpOption.RelayAgentInformation, relay);
    }
    return this.map;
  }
}

/** Reads code/length/value triples up to END; returns an error or null. */
function readOptionArea(
  bytes: Uint8Array, start: number, end: number, endRequired: boolean, out: OptionSink,
): { ok: false; error: { code: DhcpDecodeErrorCode; offset: number } } | null {
  let i = start;
  while (i < end) {
    const code = bytes[i]!;
    if (code === DhcpOption.Pad) { i++; continue; }
    if (code === DhcpOption.End) return null;
    const length = bytes[i + 1];
    if (length === undefined || i + 1 >= end || i + 2 + length > end) return failed('option-overrun', i);
    out.add(code, bytes.subarray(i + 2, i + 2 + length));
    i += 2 + length;
  }
  // RFC 2131 §3.1 (and RFC 2132 §3.2): the options field ends with END. In file/sname the field's
  // own end is tolerated, as real clients rarely fill them.
  return endRequired ? failed('missing-end', end) : null;
}

function concat(list: readonly Uint8Array[]): Uint8Array {
  let total = 0;
  for (const b of list) total += b.length;
  const out = new Uint8Array(total);
  let at = 0;
  for (const b of list) { out.set(b, at); at += b.length; }
  return out;
}

/** One option as it goes on the wire: code, length, data; longer values split per RFC 3396. */
interface Fragment { code: number; data: Uint8Array }

/**
 * Encodes a message in at most `sizeMax` octets (the client's maximum, option 57, or 548). When the
 * options do not fit and `file`/`sname` are empty, they carry the rest (option overload, RFC 2131
 * §4.1). Throws RangeError when even that is too small: the caller drops optional options.
 */
export function encodeDhcp(message: DhcpMessage, sizeMax: number): Uint8Array {
  // Every reply takes this path: sized once, written straight into the datagram, nothing copied
  // but the bytes. Options that need the file and sname fields go the general way below.
  let total = 0;
  let relay: Uint8Array | undefined;
  for (const [code, data] of message.options) {
    if (code === DhcpOption.OptionOverload) continue;
    if (code === DhcpOption.RelayAgentInformation) { relay = data; continue; }
    total += encodedSize(data.length);
  }
  if (relay !== undefined) total += encodedSize(relay.length);
  if (total > sizeMax - OPTIONS_OFFSET - 1) return encodeOverloaded(message, sizeMax);
  const out = new Uint8Array(Math.max(OPTIONS_OFFSET + total + 1, Math.min(BOOTP_SIZE_MIN, sizeMax)));
  out[0] = message.op; out[1] = message.htype; out[2] = message.hlen; out[3] = message.hops;
  putU32(out, 4, message.xid);
  const secs = message.secs & 0xffff, flags = message.flags & 0xffff;
  out[8] = secs >>> 8; out[9] = secs; out[10] = flags >>> 8; out[11] = flags;
  putU32(out, 12, message.ciaddr); putU32(out, 16, message.yiaddr); putU32(out, 20, message.siaddr); putU32(out, 24, message.giaddr);
  putField(out, 28, message.chaddr, CHADDR_SIZE);
  putField(out, 44, message.sname, SNAME_SIZE);
  putField(out, 108, message.file, FILE_SIZE);
  putU32(out, HEADER_SIZE, MAGIC_COOKIE);
  let at = OPTIONS_OFFSET;
  for (const [code, data] of message.options) {
    if (code === DhcpOption.OptionOverload || code === DhcpOption.RelayAgentInformation) continue;
    at = putOption(out, at, code, data);
  }
  if (relay !== undefined) at = putOption(out, at, DhcpOption.RelayAgentInformation, relay); // RFC 3046 §2.1: 82 goes last
  out[at] = DhcpOption.End;
  return out;
}

function putU32(out: Uint8Array, at: number, value: number): void {
  const v = value >>> 0;
  out[at] = v >>> 24; out[at + 1] = v >>> 16; out[at + 2] = v >>> 8; out[at + 3] = v;
}

/** A fixed field: shorter values are zero-padded (the datagram starts zeroed), longer ones cut. */
function putField(out: Uint8Array, at: number, bytes: Uint8Array, size: number): void {
  out.set(bytes.length <= size ? bytes : bytes.subarray(0, size), at);
}

/** One option at `at` (split per RFC 3396 §6 past 255 octets); returns the offset after it. */
function putOption(out: Uint8Array, at: number, code: number, data: Uint8Array): number {
  if (data.length <= 255) {
    out[at] = code; out[at + 1] = data.length;
    out.set(data, at + 2);
    return at + 2 + data.length;
  }
  for (let from = 0; from < data.length; from += 255) {
    const n = Math.min(255, data.length - from);
    out[at] = code; out[at + 1] = n;
    out.set(data.subarray(from, from + n), at + 2);
    at += 2 + n;
  }
  return at;
}

/** encodeDhcp when the options need more room than the options field: file and sname carry the rest. */
function encodeOverloaded(message: DhcpMessage, sizeMax: number): Uint8Array {
  const w = new WireWriter(Math.max(sizeMax, OPTIONS_OFFSET + 1));
  w.u8(message.op).u8(message.htype).u8(message.hlen).u8(message.hops);
  w.u32(message.xid).u16(message.secs).u16(message.flags);
  w.u32(message.ciaddr).u32(message.yiaddr).u32(message.siaddr).u32(message.giaddr);
  const snameAt = 44, fileAt = 108;
  w.bytes(fixed(message.chaddr, CHADDR_SIZE)).bytes(fixed(message.sname, SNAME_SIZE)).bytes(fixed(message.file, FILE_SIZE));
  w.u32(MAGIC_COOKIE);

  const ordered = [...message.options.entries()].filter(([code]) => code !== DhcpOption.RelayAgentInformation && code !== DhcpOption.OptionOverload);
  const relay = message.options.get(DhcpOption.RelayAgentInformation);
  if (relay) ordered.push([DhcpOption.RelayAgentInformation, relay]); // RFC 3046 §2.1: 82 goes last
  const mainRoom = sizeMax - OPTIONS_OFFSET - 1;
  const total = ordered.reduce((n, [, data]) => n + encodedSize(data.length), 0);

  if (total <= mainRoom) {
    for (const [code, data] of ordered) writeOption(w, code, data);
    w.u8(DhcpOption.End);
  } else {
    const fileFree = message.file.every((b) => b === 0), snameFree = message.sname.every((b) => b === 0);
    if (!fileFree && !snameFree) throw new RangeError(`options need ${total} octets; ${mainRoom} fit and file/sname are in use`);
    const areas: Array<{ room: number; frags: Fragment[]; at: number; flag: number }> = [{ room: mainRoom - 3, frags: [], at: -1, flag: 0 }];
    if (fileFree) areas.push({ room: FILE_SIZE - 1, frags: [], at: fileAt, flag: OVERLOAD_FILE });
    if (snameFree) areas.push({ room: SNAME_SIZE - 1, frags: [], at: snameAt, flag: OVERLOAD_SNAME });
    spill(ordered, areas);
    const used = areas.filter((a, i) => i > 0 && a.frags.length > 0).reduce((f, a) => f | a.flag, 0);
    writeOption(w, DhcpOption.OptionOverload, new Uint8Array([used]));
    for (const f of areas[0]!.frags) writeOption(w, f.code, f.data);
    w.u8(DhcpOption.End);
    const out = padded(w, sizeMax);
    for (const area of areas.slice(1)) {
      if (area.frags.length === 0) continue;
      const aw = new WireWriter(area.at === fileAt ? FILE_SIZE : SNAME_SIZE);
      for (const f of area.frags) writeOption(aw, f.code, f.data);
      aw.u8(DhcpOption.End);
      out.set(aw.finish(), area.at);
    }
    return out;
  }
  return padded(w, sizeMax);
}

function padded(w: WireWriter, sizeMax: number): Uint8Array {
  const minimum = Math.min(BOOTP_SIZE_MIN, sizeMax);
  if (w.offset < minimum) w.zeros(minimum - w.offset);
  return w.finish();
}

function encodedSize(length: number): number {
  return length === 0 ? 2 : length + 2 * Math.ceil(length / 255);
}

function writeOption(w: WireWriter, code: number, data: Uint8Array): void {
  if (data.length === 0) { w.u8(code).u8(0); return; }
  // RFC 3396 §6: a value longer than 255 octets is split into consecutive instances of the code.
  for (let at = 0; at < data.length; at += 255) {
    const part = data.subarray(at, Math.min(at + 255, data.length));
    w.u8(code).u8(part.length).bytes(part);
  }
}

/** Fills the areas in order with fragments; an option may continue from one area into the next. */
function spill(options: ReadonlyArray<[number, Uint8Array]>, areas: Array<{ room: number; frags: Fragment[] }>): void {
  let index = 0;
  for (const [code, data] of options) {
    let at = 0;
    do {
      let area = areas[index];
      while (area && area.room < (data.length === 0 ? 2 : 3)) area = areas[++index];
      if (!area) throw new RangeError('options do not fit even with file and sname overloaded');
      const take = Math.min(255, data.length - at, area.room - 2);
      area.frags.push({ code, data: data.subarray(at, at + take) });
      area.room -= take + 2;
      at += take;
    } while (at < data.length);
  }
}

function fixed(bytes: Uint8Array, size: number): Uint8Array {
  if (bytes.length === size) return bytes;
  const out = new Uint8Array(size);
  out.set(bytes.subarray(0, size));
  return out;
}

/** A fresh empty message with zeroed fixed fields. */
export function emptyMessage(): DhcpMessage {
  return {
    op: BootOp.Reply, htype: 1, hlen: 6, hops: 0, xid: 0, secs: 0, flags: 0,
    ciaddr: 0, yiaddr: 0, siaddr: 0, giaddr: 0,
    chaddr: new Uint8Array(CHADDR_SIZE), sname: new Uint8Array(SNAME_SIZE), file: new Uint8Array(FILE_SIZE),
    options: new Map(),
  };
}

/** Writes text into a fixed NUL-padded BOOTP field (sname, file); longer text is an error. */
export function fieldBytes(text: string, size: number): Uint8Array {
  const encoded = new TextEncoder().encode(text);
  if (encoded.length >= size) throw new RangeError(`"${text}" does not fit the ${size}-octet field`);
  const out = new Uint8Array(size);
  out.set(encoded);
  return out;
}

/** Text of a NUL-padded BOOTP field. */
export function fieldText(bytes: Uint8Array): string {
  const end = bytes.indexOf(0);
  return new TextDecoder().decode(end < 0 ? bytes : bytes.subarray(0, end));
}
