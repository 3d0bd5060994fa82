import { WireWriter } from '../../lib/wire-writer.js';
import { decoded, failed, type Decoded } from '../../lib/result.js';
import { asciiLower, nameEnd, readName, splitName } from './name.js';

// The DNS message codec (RFC 1035 §4, EDNS(0) RFC 6891). Own code rather than a package: the hot
// path in server.ts never decodes a whole message (it answers from prebuilt bytes), so this codec
// serves the slow paths (first sight of a question, forwarding, FORMERR checks) and the tests.
//
//   header  | ID (16) | QR(1) OPCODE(4) AA TC RD | RA Z AD CD RCODE(4) | QD | AN | NS | AR |  12 bytes
//   question: QNAME QTYPE(16) QCLASS(16)
//   record:   NAME TYPE(16) CLASS(16) TTL(32) RDLENGTH(16) RDATA
//
// Records keep their RDATA uncompressed: names inside the RDATA of the types that RFC 3597 §4 lets
// be compressed are expanded on decode and may be compressed again on encode.

export const T = {
  A: 1, NS: 2, CNAME: 5, SOA: 6, PTR: 12, HINFO: 13, MX: 15, TXT: 16, AAAA: 28, SRV: 33, OPT: 41,
  IXFR: 251, AXFR: 252, ANY: 255,
} as const;

export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5, NOTAUTH: 9, BADVERS: 16 } as const;
export const CLASS_IN = 1;
export const CLASS_CH = 3;
/** QCLASS * (RFC 1035 §3.2.5). */
export const CLASS_ANY = 255;
export const OPCODE_QUERY = 0;
export const EDNS_OPT_NSID = 3;
/** The largest UDP answer we send (DNS flag day 2020): no IP fragmentation on ordinary paths. */
export const UDP_PAYLOAD_MAX = 1232;
export const HEADER_SIZE = 12;

const TYPE_NAMES: Record<number, string> = {
  1: 'A', 2: 'NS', 5: 'CNAME', 6: 'SOA', 12: 'PTR', 13: 'HINFO', 15: 'MX', 16: 'TXT', 28: 'AAAA', 33: 'SRV', 41: 'OPT',
  251: 'IXFR', 252: 'AXFR', 255: 'ANY',
};
export function typeName(type: number): string { return TYPE_NAMES[type] ?? `TYPE${type}`; }
export function typeFromName(name: string): number | null {
  const upper = name.toUpperCase();
  for (const [code, n] of Object.entries(TYPE_NAMES)) if (n === upper) return Number(code);
  const m = /^TYPE(\d{1,5})$/.exec(upper);
  return m && Number(m[1]) <= 65535 ? Number(m[1]) : null;
}

export interface Question { name: string; type: number; class: number }

export interface DnsRecord {
  name: string;
  type: number;
  class: number;
  ttl: number;
  /** Uncompressed RDATA. */
  rdata: Uint8Array;
}

export interface EdnsOption { code: number; data: Uint8Array }

export interface Edns {
  udpSize: number;
  extendedRcode: number;
  version: number;
  dnssecOk: boolean;
  options: EdnsOption[];
}

export interface DnsMessage {
  id: number;
  qr: boolean;
  opcode: number;
  aa: boolean;
  tc: boolean;
  rd: boolean;
  ra: boolean;
  ad: boolean;
  cd: boolean;
  /** The full rcode: header bits plus the OPT's extended bits. */
  rcode: number;
  questions: Question[];
  answers: DnsRecord[];
  authority: DnsRecord[];
  /** Additional records without the OPT pseudo-record (that is `edns`). */
  additional: DnsRecord[];
  edns: Edns | null;
}

export type WireErrorCode = 'short-header' | 'bad-question' | 'bad-record' | 'bad-rdata' | 'bad-opt' | 'trailing-bytes';

export function emptyMessage(id = 0): DnsMessage {
  return {
    id, qr: false, opcode: 0, aa: false, tc: false, rd: false, ra: false, ad: false, cd: false, rcode: 0,
    questions: [], answers: [], authority: [], additional: [], edns: null,
  };
}

/** Types whose RDATA names may be compressed (RFC 1035, RFC 3597 §4): [fixed prefix bytes, names]. */
const COMPRESSIBLE: Record<number, ReadonlyArray<'name' | number>> = {
  2: ['name'], 3: ['name'], 4: ['name'], 5: ['name'], 7: ['name'], 8: ['name'], 9: ['name'], 12: ['name'],
  6: ['name', 'name', 20], 14: ['name', 'name'], 15: [2, 'name'],
};
/** Types whose RDATA names are expanded when decoding but never compressed when encoding. */
const EXPAND_ONLY: Record<number, ReadonlyArray<'name' | number>> = { 33: [6, 'name'] };

export function decodeMessage(msg: Uint8Array, options: { allowTrailing?: boolean } = {}): Decoded<DnsMessage, WireErrorCode> {
  if (msg.length < HEADER_SIZE) return failed('short-header', 0);
  const flags = (msg[2]! << 8) | msg[3]!;
  const m = emptyMessage((msg[0]! << 8) | msg[1]!);
  m.qr = (flags & 0x8000) !== 0;
  m.opcode = (flags >> 11) & 0xf;
  m.aa = (flags & 0x0400) !== 0;
  m.tc = (flags & 0x0200) !== 0;
  m.rd = (flags & 0x0100) !== 0;
  m.ra = (flags & 0x0080) !== 0;
  m.ad = (flags & 0x0020) !== 0;
  m.cd = (flags & 0x0010) !== 0;
  m.rcode = flags & 0xf;
  const qd = u16(msg, 4), an = u16(msg, 6), ns = u16(msg, 8), ar = u16(msg, 10);
  let p = HEADER_SIZE;
  for (let i = 0; i < qd; i++) {
    const n = readName(msg, p);
    if (n === null || n.end + 4 > msg.length) return failed('bad-question', p);
    m.questions.push({ name: n.name, type: u16(msg, n.end), class: u16(msg, n.end + 2) });
    p = n.end + 4;
  }
  const sections: Array<[number, DnsRecord[]]> = [[an, m.answers], [ns, m.authority], [ar, m.additional]];
  for (let s = 0; s < 3; s++) {
    const [count, into] = sections[s]!;
    for (let i = 0; i < count; i++) {
      const n = readName(msg, p);
      if (n === null || n.end + 10 > msg.length) return failed('bad-record', p);
      const type = u16(msg, n.end), klass = u16(msg, n.end + 2), ttl = u32(msg, n.end + 4), rdlen = u16(msg, n.end + 8);
      const start = n.end + 10;
      if (start + rdlen > msg.length) return failed('bad-record', p);
      if (type === T.OPT) {
        // RFC 6891 §6.1.1: one OPT, in the additional section, owned by the root.
        if (s !== 2 || m.edns !== null || n.name !== '') return failed('bad-opt', p);
        const edns = decodeOpt(msg, start, rdlen, klass, ttl);
        if (edns === null) return failed('bad-opt', p);
        m.edns = edns;
        m.rcode |= edns.extendedRcode << 4;
      } else {
        const rdata = expandRdata(msg, type, start, rdlen);
        if (rdata === null) return failed('bad-rdata', start);
        into.push({ name: n.name, type, class: klass, ttl, rdata });
      }
      p = start + rdlen;
    }
  }
  if (p !== msg.length && options.allowTrailing !== true) return failed('trailing-bytes', p);
  return decoded(m);
}

/** Where each record of a message starts, its type and the offset of its TTL field. */
export interface RecordTable {
  start: number[];
  type: number[];
  ttlAt: number[];
}

/** Records up to which `scanMessage` makes its lists at their length at once. */
const SCAN_PRESIZED_MAX = 16;

/** A message `decodeMessage` accepts, walked without decoding: its records and its full RCODE. */
export interface MessageScan extends RecordTable {
  /** The header's RCODE plus the OPT's extended bits, as `decodeMessage` gives it. */
  rcode: number;
}

/**
 * The records of `msg` under exactly `decodeMessage`'s rules (null where it fails: names, RDATA
 * layouts, OPT placement and options, trailing bytes), allocating no names or records: for a
 * forwarded reply whose bytes are kept as they are (forward.ts). `into`: a scan to fill instead of
 * a new one (its lists reused: the forwarder scans every upstream reply into one, used before the
 * next is read). Never throws.
 */
export function scanMessage(msg: Uint8Array, into?: MessageScan): MessageScan | null {
  if (msg.length < HEADER_SIZE) return null;
  const qd = u16(msg, 4), an = u16(msg, 6), ns = u16(msg, 8), ar = u16(msg, 10);
  let p = HEADER_SIZE;
  for (let i = 0; i < qd; i++) {
    const end = nameEnd(msg, p);
    if (end < 0 || end + 4 > msg.length) return null;
    p = end + 4;
  }
  const total = an + ns + ar;
  // Lists made at their length when it is small (a reply's usual few records): pushed into from
  // empty, each grew a backing store of 17 slots first (~450 bytes a forwarded miss in all).
  let out: MessageScan;
  if (into !== undefined) {
    out = into;
    out.rcode = msg[3]! & 0xf;
    out.start.length = total; out.type.length = total; out.ttlAt.length = total;
  } else {
    out = total <= SCAN_PRESIZED_MAX
      ? { start: new Array<number>(total), type: new Array<number>(total), ttlAt: new Array<number>(total), rcode: msg[3]! & 0xf }
      : { start: [], type: [], ttlAt: [], rcode: msg[3]! & 0xf };
  }
  let opt = false;
  for (let i = 0; i < total; i++) {
    const end = nameEnd(msg, p);
    if (end < 0 || end + 10 > msg.length) return null;
    const type = u16(msg, end), rdlen = u16(msg, end + 8);
    const start = end + 10;
    if (start + rdlen > msg.length) return null;
    if (type === T.OPT) {
      // As decodeMessage: one OPT, in the additional section, owned by the root, options whole.
      if (i < an + ns || opt || !rootName(msg, p) || !optionsFit(msg, start, start + rdlen)) return null;
      opt = true;
      out.rcode |= msg[end + 4]! << 4;
    } else if (!rdataFits(msg, type, start, rdlen)) {
      return null;
    }
    // Every index below `total` is written or the scan fails: the lists are exactly the records.
    out.start[i] = p;
    out.type[i] = type;
    out.ttlAt[i] = end + 4;
    p = start + rdlen;
  }
  return p === msg.length ? out : null;
}

/** Whether the (valid) name at `p` is the root: following pointers, its first label is empty. */
function rootName(msg: Uint8Array, p: number): boolean {
  for (let steps = 0; steps < 256; steps++) {
    const len = msg[p]!;
    if ((len & 0xc0) !== 0xc0) return len === 0;
    p = ((len & 0x3f) << 8) | msg[p + 1]!;
  }
  return false;
}

function optionsFit(msg: Uint8Array, q: number, end: number): boolean {
  while (q < end) {
    if (q + 4 > end) return false;
    q += 4 + u16(msg, q + 2);
    if (q > end) return false;
  }
  return true;
}

/** `rdataNameOffsets`'s answer, reused (valid until the next call). */
const nameOffsetsScratch: number[] = [];

/**
 * Where each name in a record's RDATA starts, for the types whose RDATA names may be compressed
 * (`rdataFits` accepted it); none for the others (their RDATA is opaque bytes). Valid until the next call.
 */
export function rdataNameOffsets(msg: Uint8Array, type: number, start: number, rdlen: number): readonly number[] {
  const out = nameOffsetsScratch;
  out.length = 0;
  const layout = COMPRESSIBLE[type] ?? EXPAND_ONLY[type];
  if (layout === undefined) return out;
  let q = start;
  for (const item of layout) {
    if (item === 'name') {
      out.push(q);
      q = nameEnd(msg, q, start + rdlen);
      if (q < 0) break;
    } else {
      q += item;
    }
  }
  return out;
}

/** Whether `expandRdata` would accept this RDATA. */
function rdataFits(msg: Uint8Array, type: number, start: number, rdlen: number): boolean {
  const layout = COMPRESSIBLE[type] ?? EXPAND_ONLY[type];
  if (layout === undefined) return true;
  const end = start + rdlen;
  let q = start;
  for (const item of layout) {
    if (item === 'name') {
      q = nameEnd(msg, q, end);
      if (q < 0) return false;
    } else {
      if (q + item > end) return false;
      q += item;
    }
  }
  return q === end;
}

function decodeOpt(msg: Uint8Array, start: number, rdlen: number, klass: number, ttl: number): Edns | null {
  const options: EdnsOption[] = [];
  let q = start;
  const end = start + rdlen;
  while (q < end) {
    if (q + 4 > end) return null;
    const code = u16(msg, q), len = u16(msg, q + 2);
    if (q + 4 + len > end) return null;
    options.push({ code, data: msg.slice(q + 4, q + 4 + len) });
    q += 4 + len;
  }
  return { udpSize: klass, extendedRcode: ttl >>> 24, version: (ttl >>> 16) & 0xff, dnssecOk: (ttl & 0x8000) !== 0, options };
}

function expandRdata(msg: Uint8Array, type: number, start: number, rdlen: number): Uint8Array | null {
  const layout = COMPRESSIBLE[type] ?? EXPAND_ONLY[type];
  if (layout === undefined) return msg.slice(start, start + rdlen);
  const end = start + rdlen;
  const parts: Uint8Array[] = [];
  let q = start;
  for (const item of layout) {
    if (item === 'name') {
      const n = readName(msg, q, end);
      if (n === null) return null;
      parts.push(nameBytes(n.name));
      q = n.end;
    } else {
      if (q + item > end) return null;
      parts.push(msg.subarray(q, q + item));
      q += item;
    }
  }
  if (q !== end) return null;
  return concat(parts);
}

function nameBytes(name: string): Uint8Array {
  const labels = splitName(name)!;
  const out = new Uint8Array(labels.reduce((n, l) => n + l.length + 1, 1));
  let p = 0;
  for (const l of labels) {
    out[p++] = l.length;
    for (let i = 0; i < l.length; i++) out[p++] = l.charCodeAt(i);
  }
  return out;
}

export function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, b) => n + b.length, 0));
  let p = 0;
  for (const b of parts) { out.set(b, p); p += b.length; }
  return out;
}

/** Splits the uncompressed name at `offset` of `rdata` (no pointers allowed there). */
export function rdataName(rdata: Uint8Array, offset: number): { name: string; end: number } | null {
  return readName(rdata, offset);
}

// ---------------------------------------------------------------------------------------------
// Encoding

class Compressor {
  #offsets = new Map<string, number>();

  /** Writes `name` with pointers to earlier suffixes (case-insensitive), remembering new ones. */
  write(w: WireWriter, name: string, compress: boolean): void {
    const labels = splitName(name);
    if (labels === null) throw new Error(`cannot encode name "${name}"`);
    for (let i = 0; i < labels.length; i++) {
      const key = asciiLower(labels.slice(i).join('.'));
      const at = this.#offsets.get(key);
      if (compress && at !== undefined) { w.u16(0xc000 | at); return; }
      if (w.offset < 0x4000 && at === undefined) this.#offsets.set(key, w.offset);
      const l = labels[i]!;
      w.u8(l.length);
      for (let k = 0; k < l.length; k++) w.u8(l.charCodeAt(k));
    }
    w.u8(0);
  }
}

function writeRecord(w: WireWriter, c: Compressor, r: DnsRecord): void {
  c.write(w, r.name, true);
  w.u16(r.type).u16(r.class).u32(r.ttl);
  const lenAt = w.offset;
  w.u16(0);
  const layout = COMPRESSIBLE[r.type];
  if (layout === undefined) {
    w.bytes(r.rdata);
  } else {
    let q = 0;
    for (const item of layout) {
      if (item === 'name') {
        const n = readName(r.rdata, q);
        if (n === null) throw new Error(`bad rdata for ${typeName(r.type)} ${r.name}`);
        c.write(w, n.name, true);
        q = n.end;
      } else {
        w.bytes(r.rdata.subarray(q, q + item));
        q += item;
      }
    }
  }
  w.patchU16(lenAt, w.offset - lenAt - 2);
}

function writeOpt(w: WireWriter, e: Edns): void {
  w.u8(0).u16(T.OPT).u16(e.udpSize).u8(e.extendedRcode).u8(e.version).u16(e.dnssecOk ? 0x8000 : 0);
  const lenAt = w.offset;
  w.u16(0);
  for (const o of e.options) w.u16(o.code).u16(o.data.length).bytes(o.data);
  w.patchU16(lenAt, w.offset - lenAt - 2);
}

function writeHeader(w: WireWriter, m: DnsMessage, counts: [number, number, number, number], tc: boolean): void {
  const flags = (m.qr ? 0x8000 : 0) | ((m.opcode & 0xf) << 11) | (m.aa ? 0x0400 : 0) | (tc ? 0x0200 : 0) | (m.rd ? 0x0100 : 0)
    | (m.ra ? 0x0080 : 0) | (m.ad ? 0x0020 : 0) | (m.cd ? 0x0010 : 0) | (m.rcode & 0xf);
  w.u16(m.id).u16(flags).u16(counts[0]).u16(counts[1]).u16(counts[2]).u16(counts[3]);
}

/**
 * Encodes a message. When it does not fit in `limit` bytes, the answer is truncated the way
 * RFC 2181 §9 and RFC 6891 §7 ask: TC=1, the question, no records, but the OPT record kept.
 */
export function encodeMessage(m: DnsMessage, limit = 65535): { bytes: Uint8Array; truncated: boolean } {
  const edns = m.edns === null ? null : { ...m.edns, extendedRcode: m.rcode >>> 4 };
  const full = encodeSections(m, edns, false);
  if (full !== null && full.length <= limit) return { bytes: full, truncated: false };
  const short = encodeSections(m, edns, true);
  if (short === null || short.length > limit) throw new RangeError(`even a truncated answer exceeds ${limit} bytes`);
  return { bytes: short, truncated: true };
}

function encodeSections(m: DnsMessage, edns: Edns | null, truncate: boolean): Uint8Array | null {
  const w = new WireWriter(65535);
  const c = new Compressor();
  const records = truncate ? [] : [m.answers, m.authority, m.additional];
  const counts: [number, number, number, number] = [
    m.questions.length,
    truncate ? 0 : m.answers.length,
    truncate ? 0 : m.authority.length,
    (truncate ? 0 : m.additional.length) + (edns === null ? 0 : 1),
  ];
  try {
    writeHeader(w, m, counts, m.tc || truncate);
    for (const q of m.questions) {
      c.write(w, q.name, true);
      w.u16(q.type).u16(q.class);
    }
    for (const section of records) for (const r of section) writeRecord(w, c, r);
    if (edns !== null) writeOpt(w, edns);
  } catch (error) {
    if (error instanceof RangeError) return null;
    throw error;
  }
  return w.finish();
}

function u16(b: Uint8Array, at: number): number { return (b[at]! << 8) | b[at + 1]!; }
/** The big-endian 32-bit number at `at` (the caller checked the bounds). */
export function u32(b: Uint8Array, at: number): number { return ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0; }
/** Writes `v` as a big-endian uint32 at `at` (the inverse of `u32`). */
export function setU32(b: Uint8Array, at: number, v: number): void {
  b[at] = v >>> 24; b[at + 1] = (v >>> 16) & 0xff; b[at + 2] = (v >>> 8) & 0xff; b[at + 3] = v & 0xff;
}
