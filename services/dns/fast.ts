import { HEADER_SIZE, EDNS_OPT_NSID, UDP_PAYLOAD_MAX } from './wire.js';

// The hot path: prebuilt wire answers keyed by the question's bytes. A plain query (one question,
// no compression, at most an OPT record without NSID) is answered by copying the prebuilt answer,
// patching ID/RD/RA in and copying the asker's question over the prebuilt one, so the name's case is
// echoed (the answer's owner names are pointers to offset 12). No decoding, no strings, one buffer.
//
// An entry holds the answer without OPT; an EDNS asker gets the 11-byte OPT appended. Answers
// larger than the asker may receive use the truncated form (header + question, TC=1, OPT kept).

/**
 * One prebuilt answer, all in one buffer: the lowercased question bytes (name + type + class, the
 * key), the full answer without OPT, then its truncated form (header + question, TC=1: what an asker
 * gets when the full answer + OPT is over its limit). Offsets rather than a view per part: a lookup
 * runs cache-cold between two datagrams, and each view is one more object to fetch from memory.
 */
export interface FastEntry {
  /** A chunk shared with the entries added before and after it (or a buffer of its own if large). */
  readonly data: Buffer;
  /** Where the key starts in `data`. */
  readonly start: number;
  /** Bytes of the key; the full answer follows it. */
  readonly keyLength: number;
  /** Bytes of the full answer; the truncated form (HEADER_SIZE + keyLength bytes) follows it. */
  readonly fullLength: number;
  readonly rcode: number;
  next: FastEntry | null;
}

/** Facts about a query the fast path can answer; null fields mean "go the slow way". */
export interface FastQuery {
  /** Offset just after the question. */
  qEnd: number;
  /** 0 = no OPT, else the reply size limit the OPT allows. */
  ednsLimit: number;
  /**
   * FNV-1a of the lowercased question, as a signed 32-bit integer (`questionHash`): V8 keeps it a
   * small integer, where an unsigned one above 2^31 is a heap number boxed anew for every Map lookup.
   */
  hash: number;
}

const OPT_SIZE = 11;

/**
 * Checks a query is plain enough for the fast path and hashes its question. Returns false (and the
 * caller takes the slow path) for anything else; never throws, never reads past `msg.length`.
 */
export function scanQuery(msg: Buffer, out: FastQuery): boolean {
  const len = msg.length;
  if (len < HEADER_SIZE + 5) return false;
  // QR=0, opcode 0; QD=1, AN=0, NS=0, AR<=1
  if ((msg[2]! & 0xf8) !== 0 || msg[4] !== 0 || msg[5] !== 1 || msg[6] !== 0 || msg[7] !== 0 || msg[8] !== 0 || msg[9] !== 0 || msg[10] !== 0) return false;
  const ar = msg[11]!;
  if (ar > 1) return false;
  let p = HEADER_SIZE;
  let h = 0x811c9dc5;
  for (;;) {
    if (p >= len) return false;
    const l = msg[p]!;
    if (l > 63) return false;
    h = Math.imul(h ^ l, 0x01000193);
    if (l === 0) { p++; break; }
    const end = p + 1 + l;
    if (end > len || end - HEADER_SIZE > 255) return false;
    for (let i = p + 1; i < end; i++) {
      let c = msg[i]!;
      if (c >= 0x41 && c <= 0x5a) c |= 0x20;
      h = Math.imul(h ^ c, 0x01000193);
    }
    p = end;
  }
  if (p + 4 > len) return false;
  for (let i = p; i < p + 4; i++) h = Math.imul(h ^ msg[i]!, 0x01000193);
  p += 4;
  out.qEnd = p;
  out.hash = h | 0;
  out.ednsLimit = 0;
  if (ar === 0) return p === len;
  // The one additional record must be an OPT at the root, version 0, without NSID (RFC 6891).
  if (p + OPT_SIZE > len || msg[p] !== 0 || msg[p + 1] !== 0 || msg[p + 2] !== 41 || msg[p + 6] !== 0) return false;
  const size = (msg[p + 3]! << 8) | msg[p + 4]!;
  const rdlen = (msg[p + 9]! << 8) | msg[p + 10]!;
  if (p + OPT_SIZE + rdlen !== len) return false;
  for (let q = p + OPT_SIZE; q < len;) {
    if (q + 4 > len) return false;
    const code = (msg[q]! << 8) | msg[q + 1]!;
    if (code === EDNS_OPT_NSID) return false;
    q += 4 + ((msg[q + 2]! << 8) | msg[q + 3]!);
    if (q > len) return false;
  }
  out.ednsLimit = size < 512 ? 512 : size > UDP_PAYLOAD_MAX ? UDP_PAYLOAD_MAX : size;
  return true;
}

function sameQuestion(e: FastEntry, msg: Buffer, qEnd: number): boolean {
  const n = e.keyLength;
  if (qEnd - HEADER_SIZE !== n) return false;
  const key = e.data;
  const at = e.start;
  const nameEnd = n - 4;
  for (let i = 0; i < n; i++) {
    let c = msg[HEADER_SIZE + i]!;
    if (i < nameEnd && c >= 0x41 && c <= 0x5a) c |= 0x20;
    if (c !== key[at + i]) return false;
  }
  return true;
}

/** Entries are written one after another into chunks of this size (a larger one gets its own buffer). */
export const FAST_CHUNK_BYTES = 64 * 1024;

export class FastAnswers {
  #map = new Map<number, FastEntry>();
  #size = 0;
  #chunk: Buffer | null = null;
  #chunkUsed = 0;
  readonly maxEntries: number;

  constructor(maxEntries = 20_000) {
    this.maxEntries = maxEntries;
  }

  get size(): number { return this.#size; }

  clear(): void {
    this.#map.clear();
    this.#size = 0;
    this.#chunk = null;
  }

  get(msg: Buffer, q: FastQuery): FastEntry | null {
    for (let e = this.#map.get(q.hash) ?? null; e !== null; e = e.next) if (sameQuestion(e, msg, q.qEnd)) return e;
    return null;
  }

  /** Stores the prebuilt answer `full` (no OPT, built for this question) for the question in `msg`. */
  add(msg: Buffer, q: FastQuery, full: Uint8Array, rcode: number): void {
    if (this.#size >= this.maxEntries) this.clear(); // a flood of random names must not grow memory
    const keyLength = q.qEnd - HEADER_SIZE;
    // Key, answer and truncated form one after another in a chunk of the table's own (allocated
    // for it: slices of Node's shared 8 KiB pool would each keep a whole slab alive), which the
    // entries around it share, so a lookup fetches one object fewer; cleared with the table.
    const bytes = keyLength + full.length + q.qEnd;
    let data: Buffer;
    let start = 0;
    if (bytes > FAST_CHUNK_BYTES / 4) {
      data = Buffer.allocUnsafeSlow(bytes);
    } else {
      if (this.#chunk === null || this.#chunkUsed + bytes > FAST_CHUNK_BYTES) {
        this.#chunk = Buffer.allocUnsafeSlow(FAST_CHUNK_BYTES);
        this.#chunkUsed = 0;
      }
      data = this.#chunk;
      start = this.#chunkUsed;
      this.#chunkUsed += bytes;
    }
    msg.copy(data, start, HEADER_SIZE, q.qEnd);
    for (let i = start; i < start + keyLength - 4; i++) { const c = data[i]!; if (c >= 0x41 && c <= 0x5a) data[i] = c | 0x20; }
    data.set(full, start + keyLength);
    const t = start + keyLength + full.length;
    data.copy(data, t, start + keyLength, start + keyLength + q.qEnd);
    data[t + 2] = data[t + 2]! | 0x02;
    data.fill(0, t + 6, t + 12); // AN = NS = AR = 0
    const entry: FastEntry = { data, start, keyLength, fullLength: full.length, rcode, next: this.#map.get(q.hash) ?? null };
    this.#map.set(q.hash, entry);
    this.#size++;
  }
}

/**
 * The reply to `msg` from a prebuilt entry: ID, RD, the asker's question bytes, RA when `ra`, the
 * OPT when the query had one. `limit` is 512 for plain UDP, the OPT's size for EDNS, 65535 for TCP.
 */
export function fastReply(msg: Buffer, q: FastQuery, e: FastEntry, ra: boolean, tcp: boolean): Buffer {
  const out = Buffer.allocUnsafe(fastReplySize(q, e, tcp));
  fastReplyInto(out, msg, q, e, ra, tcp);
  return out;
}

/** The size of `fastReply`'s reply: the prebuilt answer or its truncated form, plus the OPT if asked. */
export function fastReplySize(q: FastQuery, e: FastEntry, tcp: boolean): number {
  const opt = q.ednsLimit !== 0 ? OPT_SIZE : 0;
  const limit = tcp ? 65535 : opt !== 0 ? q.ednsLimit : 512;
  return (e.fullLength + opt > limit ? HEADER_SIZE + e.keyLength : e.fullLength) + opt;
}

/**
 * `fastReply` written into `out`, which is `fastReplySize` bytes long (a reused buffer: every byte
 * of it is written).
 */
export function fastReplyInto(out: Uint8Array, msg: Buffer, q: FastQuery, e: FastEntry, ra: boolean, tcp: boolean): void {
  const withOpt = q.ednsLimit !== 0;
  const limit = tcp ? 65535 : withOpt ? q.ednsLimit : 512;
  let from = e.start + e.keyLength;
  let length = e.fullLength;
  if (length + (withOpt ? OPT_SIZE : 0) > limit) { from += length; length = HEADER_SIZE + e.keyLength; }
  // A byte loop: Buffer's copy() and TypedArray set() on a part of a buffer each make a view per
  // call (argument checks, an object), more than these hundred-odd bytes cost to copy.
  const data = e.data;
  for (let i = 0; i < length; i++) out[i] = data[from + i]!;
  out[0] = msg[0]!;
  out[1] = msg[1]!;
  out[2] = out[2]! | (msg[2]! & 0x01);
  if (ra) out[3] = out[3]! | 0x80;
  for (let i = HEADER_SIZE; i < q.qEnd; i++) out[i] = msg[i]!;
  if (withOpt) appendOpt(out, length, msg, q.qEnd);
}

/**
 * Writes our OPT at `at` of a reply (`out` holds the header) and counts it in ARCOUNT: our UDP size,
 * extended RCODE and version 0, no options, and the DO bit as the query's OPT (at `queryOpt` of
 * `msg`, right after a fast-shaped query's question) had it: RFC 3225 §3 has the server copy DO
 * into the response (a resolver such as systemd-resolved reads a missing DO as "no DNSSEC here").
 */
export function appendOpt(out: Uint8Array, at: number, msg: Uint8Array, queryOpt: number): void {
  out[at] = 0;
  out[at + 1] = 0; out[at + 2] = 41; // root owner, TYPE OPT
  out[at + 3] = UDP_PAYLOAD_MAX >> 8; out[at + 4] = UDP_PAYLOAD_MAX & 0xff;
  out[at + 5] = 0; out[at + 6] = 0; // extended RCODE, version
  out[at + 7] = msg[queryOpt + 7]! & 0x80; out[at + 8] = 0; // DO as asked, the other flags zero
  out[at + 9] = 0; out[at + 10] = 0;
  const ar = ((out[10]! << 8) | out[11]!) + 1;
  out[10] = ar >> 8; out[11] = ar & 0xff;
}

/**
 * A reply that carries only an RCODE for a fast-shaped query (`scanQuery` filled `q`): the asker's
 * ID, RD and question, QR, RA when `ra`, no records but our OPT when the query had one. What the
 * forwarder sends when it cannot answer (SERVFAIL), without decoding or encoding anything.
 */
export function rcodeReply(msg: Uint8Array, q: FastQuery, rcode: number, ra: boolean): Buffer {
  const withOpt = q.ednsLimit !== 0;
  const out = Buffer.alloc(q.qEnd + (withOpt ? OPT_SIZE : 0));
  out.set(msg.subarray(0, q.qEnd));
  out[2] = 0x80 | (msg[2]! & 0x01); // QR, opcode 0 (scanQuery checked), RD as asked
  out[3] = (ra ? 0x80 : 0) | (rcode & 0x0f);
  out[6] = 0; out[7] = 0; out[8] = 0; out[9] = 0;
  out[10] = 0; out[11] = 0;
  if (withOpt) appendOpt(out, q.qEnd, msg, q.qEnd);
  return out;
}
