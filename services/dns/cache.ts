import { asciiLower, encodeName, isSubdomain, nameEnd, nameUnderAt, readName, sameNameAt } from './name.js';
import { CLASS_ANY, HEADER_SIZE, RCODE, T, rdataNameOffsets, decodeMessage, u32, setU32, emptyMessage, encodeMessage, type DnsRecord, type MessageScan, type Question, type RecordTable } from './wire.js';

export type { RecordTable } from './wire.js';
import { appendOpt, type FastQuery } from './fast.js';

// The forwarding cache (pure; time is an argument), kept in wire form so a hit is answered where
// the query arrives without decoding or encoding anything: copy the stored answer, patch the ID,
// RD and the asker's question bytes in (owner names point at the question, so its case is echoed),
// count every TTL down by the whole seconds the entry has been here, append the OPT.
//
// Positive answers live for the smallest TTL of their answer records (a CNAME chain's included),
// negative ones (NXDOMAIN, NODATA, a CNAME chain to a name without the type asked) for the
// smallest of the SOA's TTL, its MINIMUM and the chain's CNAME TTLs (RFC 2308 §5), and that SOA is
// served with that TTL, counted down; a negative answer without a SOA is not cached (RFC 2308 §5),
// nor an answer with records that do not answer the question (`cacheTtl`).
// The cache is bounded in entries and in bytes (what it holds plus ENTRY_OVERHEAD per entry for the
// objects around it); the least recently used entry goes first. Every process that answers UDP
// holds one: the daemon fills its own from the upstreams' answers and sends each new entry to the
// workers (`put` returns it, `insertWire` takes it), so all of them serve the same answers.

export interface CachedAnswer {
  rcode: number;
  answers: DnsRecord[];
  authority: DnsRecord[];
  additional: DnsRecord[];
}

export interface CacheLimits {
  entries: number;
  bytes: number;
}

/** What the daemon sends a worker for one new entry: the key, the prebuilt answer, its lifetime. */
export interface WireEntry {
  key: Uint8Array;
  body: Uint8Array;
  ttlMs: number;
  /** Offsets of the TTL fields in `body` when the maker already walked it (`wireFromReply`); never sent between processes. */
  ttlAt?: readonly number[];
}

/** Bytes counted per entry besides its key and answer: the entry object, its buffer, map slots. */
export const ENTRY_OVERHEAD = 256;
/**
 * Removed entries (evicted, expired, replaced) kept to hold the next ones stored, object and buffer
 * both, and the largest buffer kept so. In a cache at its bound every miss evicts one entry: made
 * anew, each entry (its object, its buffer with the buffer's own backing store and tracking) lived
 * until evicted, so every scavenge of the answering process copied the entries stored since the
 * last one and promoted them, and the old generation filled with evicted ones (a one-entry cache
 * halved the miss flood's GC time: services/dns/README.md).
 */
const SPARES_MAX = 64;
const SPARE_BYTES_MAX = 2048;
/** Entry buffers are made in multiples of this, so a spare fits answers of about the same size. */
const ENTRY_BYTES_STEP = 64;
const POSITIVE_TTL_MAX = 86_400;
const NEGATIVE_TTL_MAX = 3_600;
const OPT_SIZE = 11;

/**
 * A cached answer. An entry removed from the cache (evicted, expired, replaced) is reused for one
 * stored later: use an entry only within the synchronous span of the `lookup` or `store` that gave
 * it (as the answering path does), never after an await.
 */
export interface CacheEntry {
  /**
   * Lowercased question (name + type + class) followed by the answer and its TTL table: one
   * allocation, of at least `keyLength + body.length + 6 * records` bytes (what is after is unused).
   */
  data: Buffer;
  keyLength: number;
  hash: number;
  /**
   * Records in the answer: after the answer, `data` holds per record the offset of its TTL field
   * in the answer (2 bytes) and the TTL as stored, before any countdown (4 bytes), so an entry is
   * one buffer and one object besides its view (two typed arrays more per entry, each promoted
   * and later collected with it, were a large part of a miss's cost in a churning cache).
   */
  records: number;
  /** The answer alone: a view of `data`, its TTLs counted down by `aged` seconds. */
  body: Buffer;
  /** Whole seconds the TTLs in `data` are counted down by (`countDown` moves it as the clock does). */
  aged: number;
  storedAt: number;
  expiresAt: number;
  cost: number;
  /** Hash chain. */
  chain: CacheEntry | null;
  /** LRU list: `newer` towards the most recently used. */
  older: CacheEntry | null;
  newer: CacheEntry | null;
}

/**
 * A TTL as received: RFC 2181 §8 asks to treat a value with the most significant bit set as 0 (an
 * upstream's 0x80000000 must not be cached for the longest lifetime we allow).
 */
export function ttlReceived(ttl: number): number {
  return ttl >= 0x80000000 ? 0 : ttl;
}

/** CNAMEs a cached answer may follow from the question's name (a longer chain is not cached). */
const CNAME_CHAIN_MAX = 8;
/** Answer records checked against the question; a larger answer is passed on but not cached. */
const ANSWERS_CHECKED_MAX = 512;

/**
 * How long an upstream's answer to `q` may be cached, in seconds (0: not at all). Only what answers
 * the question is cached: every answer record belongs to `q`'s name or to a CNAME target reached
 * from it (RFC 1034 §3.6.2), in `q`'s class, of `q`'s type (or a CNAME); a negative answer's SOA
 * is for the name asked or one of its ancestors (RFC 2308 §3). An answer carrying records for other
 * names (an upstream's junk, or a forged reply that got through) is passed on once, not kept.
 */
export function cacheTtl(q: Question, a: CachedAnswer): number {
  if (a.rcode !== RCODE.NOERROR && a.rcode !== RCODE.NXDOMAIN) return 0;
  const chain = answerChain(q, a.answers);
  if (chain === null) return 0;
  // Every record of the answer counts, the CNAMEs of a chain too: none may outlive its own TTL.
  let chainTtl = POSITIVE_TTL_MAX;
  for (const r of a.answers) chainTtl = Math.min(chainTtl, ttlReceived(r.ttl));
  if (!isNegative(q, a)) return chainTtl;
  const soa = a.authority.find((r) => r.type === T.SOA);
  if (soa === undefined || soa.rdata.length < 4 || !chain.some((n) => isSubdomain(n, soa.name))) return 0;
  return Math.min(NEGATIVE_TTL_MAX, ttlReceived(soa.ttl), ttlReceived(soaMinimum(soa)), chainTtl);
}

/**
 * Whether `a` answers `q` negatively: NXDOMAIN, or NOERROR without a record of the type asked
 * (NODATA), a CNAME chain that ends at a name without one included (RFC 2308 §2.2). Such an answer
 * lives for min(SOA TTL, SOA MINIMUM, each CNAME's TTL) (§5), and its SOA is served with that.
 */
export function isNegative(q: Question, a: CachedAnswer): boolean {
  return a.rcode !== RCODE.NOERROR || !a.answers.some((r) => r.type !== T.CNAME || q.type === T.CNAME || q.type === T.ANY);
}

/** The names `answers` may hold records for (the question's, then each CNAME target), or null when one answers something else. */
function answerChain(q: Question, answers: readonly DnsRecord[]): string[] | null {
  if (answers.length > ANSWERS_CHECKED_MAX) return null;
  const chain = [asciiLower(q.name)];
  for (const r of answers) {
    if ((r.class !== q.class && q.class !== CLASS_ANY) || !chain.includes(asciiLower(r.name))) return null;
    if (r.type === T.CNAME) {
      const target = readName(r.rdata, 0);
      if (target === null || chain.length > CNAME_CHAIN_MAX) return null;
      chain.push(asciiLower(target.name));
    } else if (r.type !== q.type && q.type !== T.ANY) {
      return null;
    }
  }
  return chain;
}

/**
 * `cacheTtl` of a reply read from its bytes: `table` walks the same bytes (`scanMessage`), `rcode`
 * is its full RCODE, its question is the one asked (`checkReply`). Equal to `cacheTtl` of the
 * decoded reply (cache.test.ts), without decoding it.
 */
export function wireCacheTtl(msg: Uint8Array, table: RecordTable, rcode: number): number {
  if (rcode !== RCODE.NXDOMAIN && rcode !== RCODE.NOERROR) return 0;
  const an = (msg[6]! << 8) | msg[7]!;
  const ns = (msg[8]! << 8) | msg[9]!;
  const links = wireAnswerChain(msg, table, an);
  if (links < 0) return 0;
  const chain = chainScratch;
  let chainTtl = POSITIVE_TTL_MAX;
  for (let i = 0; i < an; i++) chainTtl = Math.min(chainTtl, ttlReceived(u32(msg, table.ttlAt[i]!)));
  if (!wireIsNegative(msg, table, rcode)) return chainTtl;
  for (let i = an; i < an + ns && i < table.type.length; i++) {
    if (table.type[i] !== T.SOA) continue;
    const at = table.ttlAt[i]!;
    const owner = table.start[i]!;
    let under = false;
    for (let k = 0; k < links && !under; k++) under = nameUnderAt(msg, chain[k]!, owner);
    if (!under) return 0;
    const rdEnd = at + 6 + ((msg[at + 4]! << 8) | msg[at + 5]!);
    if (rdEnd - (at + 6) < 4) return 0;
    return Math.min(NEGATIVE_TTL_MAX, ttlReceived(u32(msg, at)), ttlReceived(u32(msg, rdEnd - 4)), chainTtl); // SOA MINIMUM: RDATA's last 4 bytes
  }
  return 0;
}

/** `isNegative` of a reply read from its bytes (`table` walks them, `rcode` is its RCODE). */
export function wireIsNegative(msg: Uint8Array, table: RecordTable, rcode: number): boolean {
  if (rcode !== RCODE.NOERROR) return true;
  const an = Math.min((msg[6]! << 8) | msg[7]!, table.type.length);
  const qEnd = nameEnd(msg, HEADER_SIZE);
  const qtype = qEnd < 0 ? -1 : (msg[qEnd]! << 8) | msg[qEnd + 1]!;
  for (let i = 0; i < an; i++) if (table.type[i] !== T.CNAME || qtype === T.CNAME || qtype === T.ANY) return false;
  return true;
}

/**
 * The chain `wireAnswerChain` fills, reused; its length is what the call returns, never cut (setting
 * an array's length to 0 drops its backing store, and the next push allocates one: ~100 bytes a miss).
 */
const chainScratch: number[] = [];

/** `answerChain` on the wire: offsets of the names the first `an` records may belong to, in `chainScratch`; how many (-1: none may be cached). */
function wireAnswerChain(msg: Uint8Array, table: RecordTable, an: number): number {
  if (an > ANSWERS_CHECKED_MAX) return -1;
  const qEnd = nameEnd(msg, HEADER_SIZE);
  const qtype = (msg[qEnd]! << 8) | msg[qEnd + 1]!;
  const qclass = (msg[qEnd + 2]! << 8) | msg[qEnd + 3]!;
  const chain = chainScratch;
  let links = 0;
  chain[links++] = HEADER_SIZE;
  for (let i = 0; i < an; i++) {
    const at = table.ttlAt[i]!;
    const owner = table.start[i]!;
    const klass = (msg[at - 2]! << 8) | msg[at - 1]!;
    if (klass !== qclass && qclass !== CLASS_ANY) return -1;
    let inChain = false;
    for (let k = 0; k < links && !inChain; k++) inChain = sameNameAt(msg, chain[k]!, owner);
    if (!inChain) return -1;
    const type = table.type[i]!;
    if (type === T.CNAME) {
      if (links > CNAME_CHAIN_MAX) return -1;
      chain[links++] = at + 6; // the RDATA: the target's name
    } else if (type !== qtype && qtype !== T.ANY) {
      return -1;
    }
  }
  return links;
}

function soaMinimum(soa: DnsRecord): number {
  return u32(soa.rdata, soa.rdata.length - 4);
}

/** FNV-1a over a question's bytes, letters lowercased in the name, as a signed 32-bit integer: the hash `scanQuery` computes. */
export function questionHash(bytes: Uint8Array, nameEnd: number, length = bytes.length): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < length; i++) {
    let c = bytes[i]!;
    if (i < nameEnd && c >= 0x41 && c <= 0x5a) c |= 0x20;
    h = Math.imul(h ^ c, 0x01000193);
  }
  return h | 0;
}

/** The cache key of a question: its lowercased uncompressed wire form (name, type, class). */
export function questionKey(q: Question): Uint8Array {
  const name = encodeName(q.name);
  const key = new Uint8Array(name.length + 4);
  key.set(name);
  for (let i = 0; i < name.length; i++) { const c = key[i]!; if (c >= 0x41 && c <= 0x5a) key[i] = c | 0x20; }
  key[name.length] = q.type >> 8; key[name.length + 1] = q.type & 0xff;
  key[name.length + 2] = q.class >> 8; key[name.length + 3] = q.class & 0xff;
  return key;
}


/**
 * The records of a message (answer, authority, additional), or null when the message does not
 * parse. Never throws.
 */
export function recordTable(msg: Uint8Array): RecordTable | null {
  if (msg.length < HEADER_SIZE) return null;
  const u16 = (at: number): number => (msg[at]! << 8) | msg[at + 1]!;
  const qd = u16(4);
  const rr = u16(6) + u16(8) + u16(10);
  let p = HEADER_SIZE;
  for (let i = 0; i < qd; i++) {
    const end = nameEnd(msg, p);
    if (end < 0 || end + 4 > msg.length) return null;
    p = end + 4;
  }
  const out: RecordTable = { start: [], type: [], ttlAt: [] };
  for (let i = 0; i < rr; i++) {
    const end = nameEnd(msg, p);
    if (end < 0 || end + 10 > msg.length) return null;
    out.start.push(p);
    out.type.push(u16(end));
    out.ttlAt.push(end + 4);
    p = end + 10 + u16(end + 8);
    if (p > msg.length) return null;
  }
  return p === msg.length ? out : null;
}

/**
 * Offsets of the TTL fields of every record in a message (answer, authority, additional), or null
 * when the message does not parse. Never throws.
 */
export function ttlOffsets(msg: Uint8Array): number[] | null {
  return recordTable(msg)?.ttlAt ?? null;
}

/**
 * Whether the name at `p` (accepted by nameEnd) reads a byte marked in `patched`: a compression
 * pointer may point anywhere earlier, even into a header or a TTL field, and those bytes are
 * rewritten when the entry is stored and served, which would change the name.
 */
function readsPatched(msg: Uint8Array, p: number, ttlAt: readonly number[], count: number): boolean {
  for (let steps = 0; steps < 256 && p < msg.length; steps++) {
    const len = msg[p]!;
    const last = len === 0 ? p : (len & 0xc0) === 0xc0 ? p + 1 : p + len;
    if (p < HEADER_SIZE) return true;
    // The bytes [p, last] against each TTL field [at, at + 3] (a handful of records: no index).
    for (let i = 0; i < count; i++) { const at = ttlAt[i]!; if (p <= at + 3 && last >= at) return true; }
    if (len === 0) return false;
    if ((len & 0xc0) === 0xc0) {
      p = ((len & 0x3f) << 8) | (msg[p + 1] ?? 0);
      continue;
    }
    p += len + 1;
  }
  return false;
}

/** Whether a name of the reply (an owner's, or one in RDATA) reads its header or a TTL field. */
function namesReadPatched(reply: Uint8Array, table: RecordTable, count: number): boolean {
  const ttlAt = table.ttlAt;
  for (let i = 0; i < count; i++) {
    if (readsPatched(reply, table.start[i]!, ttlAt, count)) return true;
    const at = ttlAt[i]!;
    const names = rdataNameOffsets(reply, table.type[i]!, at + 6, (reply[at + 4]! << 8) | reply[at + 5]!);
    for (let k = 0; k < names.length; k++) if (readsPatched(reply, names[k]!, ttlAt, count)) return true;
  }
  return false;
}

/**
 * The cache form of an upstream's reply, made from its own bytes instead of re-encoding its records
 * (the forwarding miss path; `put` is the general form): ID 0, QR and RA set, AA/TC/AD/CD cleared,
 * the OPT dropped, every SOA of a negative answer given the negative TTL `ttlS` (RFC 2308 §5).
 * Null when the reply does not have the simple shape this needs (one uncompressed question, the
 * OPT as the last record if any, no name reading the header or a TTL field, which are rewritten):
 * the caller then uses `put`.
 * Never throws.
 */
export function wireFromReply(reply: Uint8Array, negative: boolean, ttlS: number, table = recordTable(reply)): WireEntry | null {
  const shape = table === null ? null : replyShape(reply, table);
  if (shape === null) return null;
  const body = Uint8Array.from(reply.subarray(0, shape.end));
  patchReply(body, 0, reply, shape, table!, negative, ttlS);
  const key = Uint8Array.from(reply.subarray(HEADER_SIZE, shape.qEnd));
  for (let i = 0; i < key.length - 4; i++) { const c = key[i]!; if (c >= 0x41 && c <= 0x5a) key[i] = c | 0x20; }
  // The body is the reply's bytes up to the OPT: its records' TTLs sit where the reply's did.
  const ttlAt = shape.records === table!.ttlAt.length ? table!.ttlAt : table!.ttlAt.slice(0, shape.records);
  return { key, body, ttlMs: ttlS * 1000, ttlAt };
}

/** A reply `wireFromReply` can keep as it is: where its question and its kept bytes end, its records and ARCOUNT without the OPT. */
interface ReplyShape { qEnd: number; end: number; records: number; arcount: number }

/** `replyShape`'s answer when the caller gives none to fill (`store`'s one, used before the next store). */
const STORE_SHAPE: ReplyShape = { qEnd: 0, end: 0, records: 0, arcount: 0 };

/** `wireFromReply`'s shape checks (see there), into `into` when given; null: the general way. */
function replyShape(reply: Uint8Array, table: RecordTable, into?: ReplyShape): ReplyShape | null {
  if (reply[4] !== 0 || reply[5] !== 1) return null;
  let p = HEADER_SIZE;
  while (p < reply.length && reply[p] !== 0) {
    if (reply[p]! > 63) return null; // a compressed question: leave it to put()
    p += reply[p]! + 1;
  }
  const qEnd = p + 5;
  if (qEnd > reply.length) return null;
  let end = reply.length;
  let arcount = (reply[10]! << 8) | reply[11]!;
  const count = table.type.length;
  for (let i = 0; i < count; i++) {
    if (table.type[i] === T.OPT) {
      // Only a last OPT with no extended RCODE is cut off; anything else goes the general way.
      if (i !== count - 1 || arcount === 0 || reply[table.ttlAt[i]!] !== 0) return null;
      end = table.start[i]!;
      arcount--;
    }
  }
  const records = end === reply.length ? count : count - 1;
  if (namesReadPatched(reply, table, records)) return null;
  if (into === undefined) return { qEnd, end, records, arcount };
  into.qEnd = qEnd; into.end = end; into.records = records; into.arcount = arcount;
  return into;
}

/** The kept bytes of `reply` copied to `out` at `at` made its cache form: header rewritten, a negative answer's SOAs given `ttlS`. */
function patchReply(out: Uint8Array, at: number, reply: Uint8Array, shape: ReplyShape, table: RecordTable, negative: boolean, ttlS: number): void {
  out[at] = 0; out[at + 1] = 0;
  out[at + 2] = 0x80; // QR; opcode 0, AA/TC/RD clear (RD is the asker's, patched per reply)
  out[at + 3] = 0x80 | (reply[3]! & 0x0f); // RA, the RCODE
  out[at + 10] = shape.arcount >> 8; out[at + 11] = shape.arcount & 0xff;
  if (negative) {
    const ancount = (reply[6]! << 8) | reply[7]!;
    const nscount = (reply[8]! << 8) | reply[9]!;
    for (let i = ancount; i < ancount + nscount && i < shape.records; i++) {
      if (table.type[i] !== T.SOA) continue;
      setU32(out, at + table.ttlAt[i]!, ttlS);
    }
  }
}

/** What another process needs to store the same entry (`insertWire`): as it was stored, and its lifetime. */
export function wireOf(e: CacheEntry): WireEntry {
  const body = Uint8Array.from(e.body);
  const data = e.data;
  for (let i = 0, t = e.keyLength + e.body.length; i < e.records; i++, t += 6) setU32(body, (data[t]! << 8) | data[t + 1]!, u32(data, t + 2));
  return { key: e.data.subarray(0, e.keyLength), body, ttlMs: e.expiresAt - e.storedAt };
}

/**
 * Counts the TTLs in `e`'s stored answer down to its age at `nowMs` (whole seconds since it was
 * stored, never below 0), from the TTLs it was stored with. A no-op until the next second.
 */
function countDown(e: CacheEntry, nowMs: number): void {
  const age = nowMs > e.storedAt ? Math.floor((nowMs - e.storedAt) / 1000) : 0;
  if (age === e.aged) return;
  const data = e.data;
  const k = e.keyLength;
  for (let i = 0, t = k + e.body.length; i < e.records; i++, t += 6) {
    const stored = u32(data, t + 2);
    setU32(data, k + ((data[t]! << 8) | data[t + 1]!), stored > age ? stored - age : 0);
  }
  e.aged = age;
}

export class ForwardCache {
  readonly limits: CacheLimits;
  /** Entries by their question's hash, chained per bucket (a fixed array: no hash table rebuilt as entries come and go). */
  #buckets: Array<CacheEntry | null>;
  #mask: number;
  /** Removed entries kept for reuse (SPARES_MAX). */
  #spares: CacheEntry[] = [];
  #size = 0;
  #bytes = 0;
  /** Least recently used end of the LRU list, and its other end. */
  #oldest: CacheEntry | null = null;
  #newest: CacheEntry | null = null;

  constructor(limits: CacheLimits) {
    this.limits = limits;
    let buckets = 16;
    while (buckets < limits.entries && buckets < 1 << 16) buckets *= 2;
    this.#buckets = new Array<CacheEntry | null>(buckets).fill(null);
    this.#mask = buckets - 1;
  }

  get size(): number { return this.#size; }
  /** The bytes the cache accounts for (answers + keys + ENTRY_OVERHEAD per entry). */
  get bytes(): number { return this.#bytes; }

  /** The fresh entry for the question in `msg` (scanned by `scanQuery` into `q`), or null. */
  lookup(msg: Uint8Array, q: FastQuery, nowMs: number): CacheEntry | null {
    const qLength = q.qEnd - HEADER_SIZE;
    for (let e = this.#buckets[q.hash & this.#mask] ?? null; e !== null; e = e.chain) {
      if (e.keyLength !== qLength) continue;
      const data = e.data;
      const nameEnd = qLength - 4;
      let same = true;
      for (let i = 0; i < qLength; i++) {
        let c = msg[HEADER_SIZE + i]!;
        if (i < nameEnd && c >= 0x41 && c <= 0x5a) c |= 0x20;
        if (c !== data[i]) { same = false; break; }
      }
      if (!same) continue;
      if (nowMs >= e.expiresAt) { this.#remove(e); return null; }
      this.#touch(e);
      return e;
    }
    return null;
  }

  /**
   * The reply to `msg` from entry `e`: the asker's ID, RD and question, TTLs counted down, OPT if
   * asked; over UDP cut to what the asker may take (TC=1). `e` may have been evicted since.
   */
  reply(msg: Uint8Array, q: FastQuery, e: CacheEntry, nowMs: number, tcp = false): Buffer {
    const out = Buffer.allocUnsafe(this.replySize(q, e, tcp));
    this.replyInto(out, msg, q, e, nowMs, tcp);
    return out;
  }

  /** The size of `reply`'s reply: the answer, or header and question alone (TC=1), plus the OPT if asked. */
  replySize(q: FastQuery, e: CacheEntry, tcp = false): number {
    const optSize = q.ednsLimit !== 0 ? OPT_SIZE : 0;
    const limit = tcp ? 65535 : optSize !== 0 ? q.ednsLimit : 512;
    return (e.body.length + optSize > limit ? q.qEnd : e.body.length) + optSize;
  }

  /** `reply` written into `out`, which is `replySize` bytes long (a reused buffer: every byte of it is written). */
  replyInto(out: Uint8Array, msg: Uint8Array, q: FastQuery, e: CacheEntry, nowMs: number, tcp = false): void {
    const withOpt = q.ednsLimit !== 0;
    const limit = tcp ? 65535 : withOpt ? q.ednsLimit : 512;
    const optSize = withOpt ? OPT_SIZE : 0;
    let length: number;
    if (e.body.length + optSize > limit) {
      length = q.qEnd;
      out.set(e.body.subarray(0, length));
      out[2] = out[2]! | 0x02;
      out.fill(0, 6, 12);
    } else {
      // The stored answer's TTLs are rewritten once per second of its age, not once per reply.
      countDown(e, nowMs);
      length = e.body.length;
      out.set(e.body);
    }
    out[0] = msg[0]!;
    out[1] = msg[1]!;
    out[2] = out[2]! | (msg[2]! & 0x01);
    for (let i = HEADER_SIZE; i < q.qEnd; i++) out[i] = msg[i]!;
    if (withOpt) appendOpt(out, length, msg, q.qEnd);
  }

  /** The cached answer for `q` as records with TTLs counted down (for queries off the fast path), or null. */
  get(q: Question, nowMs: number): CachedAnswer | null {
    const key = questionKey(q);
    const fq: FastQuery = { qEnd: HEADER_SIZE + key.length, ednsLimit: 0, hash: questionHash(key, key.length - 4) };
    const msg = new Uint8Array(HEADER_SIZE + key.length);
    msg.set(key, HEADER_SIZE);
    const e = this.lookup(msg, fq, nowMs);
    if (e === null) return null;
    countDown(e, nowMs);
    const d = decodeMessage(Buffer.from(e.body));
    if (!d.ok) return null;
    return { rcode: d.value.rcode, answers: d.value.answers, authority: d.value.authority, additional: d.value.additional };
  }

  /**
   * Stores an upstream's answer to `q` (a negative answer's SOA gets the negative TTL). Returns what
   * to send the other processes, or null when the answer is not cached (SERVFAIL, TTL 0, too big).
   */
  put(q: Question, answer: CachedAnswer, nowMs: number): WireEntry | null {
    const ttl = cacheTtl(q, answer);
    if (ttl <= 0 || this.limits.entries === 0) return null;
    const entry = this.#encoded(q, answer, ttl, isNegative(q, answer));
    return entry !== null && this.insertWire(entry, nowMs) ? entry : null;
  }

  /** The wire entry for `answer` encoded by us (a negative answer's SOA given `ttl`); null when too big. */
  #encoded(q: Question, answer: CachedAnswer, ttl: number, negative: boolean): WireEntry | null {
    const authority = negative ? answer.authority.map((r) => (r.type === T.SOA ? { ...r, ttl } : r)) : answer.authority;
    const m = emptyMessage(0);
    m.qr = true;
    m.ra = true;
    m.rcode = answer.rcode;
    m.questions = [{ name: q.name, type: q.type, class: q.class }];
    m.answers = answer.answers;
    m.authority = authority;
    m.additional = answer.additional.filter((r) => r.type !== T.OPT);
    let body: Uint8Array;
    try {
      body = encodeMessage(m, 65535).bytes;
    } catch {
      return null;
    }
    return { key: questionKey(q), body, ttlMs: ttl * 1000 };
  }

  /**
   * Stores an upstream's reply bytes `reply` to `q`, decoded as `answer` (checked against `q` by the
   * caller), in their own wire form when it has the simple shape (`wireFromReply`), else through
   * `put`. Returns the stored entry (to answer the askers from and to pass on), or null when the
   * answer is not cached.
   */
  store(q: Question, reply: Uint8Array, answer: CachedAnswer, nowMs: number, scan?: MessageScan): CacheEntry | null {
    // With the reply's scan, its lifetime and shape are read from its bytes: the records are
    // decoded (by `answer`) only when the wire form cannot be kept.
    const ttl = scan === undefined ? cacheTtl(q, answer) : wireCacheTtl(reply, scan, answer.rcode);
    if (ttl <= 0 || this.limits.entries === 0) return null;
    const negative = scan === undefined ? isNegative(q, answer) : wireIsNegative(reply, scan, answer.rcode);
    const table = scan ?? recordTable(reply);
    const shape = table === null ? null : replyShape(reply, table, STORE_SHAPE);
    if (shape !== null) {
      // Straight into the entry's one buffer: no intermediate copies of the key and the answer.
      const keyLength = shape.qEnd - HEADER_SIZE;
      const e = this.#allocate(keyLength, shape.end, shape.records);
      if (e === null) return null;
      const data = e.data;
      data.set(reply.subarray(HEADER_SIZE, shape.qEnd), 0);
      for (let i = 0; i < keyLength - 4; i++) { const c = data[i]!; if (c >= 0x41 && c <= 0x5a) data[i] = c | 0x20; }
      data.set(reply.subarray(0, shape.end), keyLength);
      patchReply(data, keyLength, reply, shape, table!, negative, ttl);
      return this.#link(e, keyLength, shape.end, table!.ttlAt, shape.records, ttl * 1000, nowMs);
    }
    const w = this.#encoded(q, answer, ttl, negative);
    return w === null ? null : this.#insert(w, nowMs);
  }

  /** Stores an entry made by another process's `put`. False when it is malformed or over the limits. */
  insertWire(w: WireEntry, nowMs: number): boolean {
    return this.#insert(w, nowMs) !== null;
  }

  #insert(w: WireEntry, nowMs: number): CacheEntry | null {
    const offsets = w.ttlAt ?? ttlOffsets(w.body);
    if (offsets === null || w.key.length < 5 || w.ttlMs <= 0) return null;
    const e = this.#allocate(w.key.length, w.body.length, offsets.length);
    if (e === null) return null;
    e.data.set(w.key, 0);
    e.data.set(w.body, w.key.length);
    return this.#link(e, w.key.length, w.body.length, offsets, offsets.length, w.ttlMs, nowMs);
  }

  /**
   * An entry not in the cache whose buffer takes the key, answer and TTL table (a spare when one
   * fits, else a new one), or null when over the limits. Its fields are set by `#link`.
   */
  #allocate(keyLength: number, bodyLength: number, records: number): CacheEntry | null {
    const size = keyLength + bodyLength + 6 * records;
    const cost = size + ENTRY_OVERHEAD;
    if (keyLength < 5 || cost > this.limits.bytes || this.limits.entries === 0) return null;
    const spares = this.#spares;
    for (let i = spares.length - 1; i >= 0; i--) {
      const e = spares[i]!;
      if (e.data.length < size) continue;
      spares[i] = spares[spares.length - 1]!;
      spares.pop();
      return e;
    }
    // Its own allocation: a slice of Node's shared pool would keep a whole 8 KiB slab alive.
    const data = Buffer.allocUnsafeSlow(Math.ceil(size / ENTRY_BYTES_STEP) * ENTRY_BYTES_STEP);
    return {
      data, keyLength: 0, hash: 0, records: 0, body: data.subarray(0, 0), aged: 0, storedAt: 0, expiresAt: 0, cost: 0,
      chain: null, older: null, newer: null,
    };
  }

  /** Stores `e` (from `#allocate`, key and answer written into its buffer) with its records' TTL table, evicting as the limits ask. */
  #link(e: CacheEntry, keyLength: number, bodyLength: number, ttlAt: ArrayLike<number>, records: number, ttlMs: number, nowMs: number): CacheEntry {
    const data = e.data;
    // Every record's TTL is served counted down from what is stored: one the upstream sent with the
    // top bit set is stored as the 0 it means (RFC 2181 §8), not counted down from 2^31 and more.
    for (let i = 0, t = keyLength + bodyLength; i < records; i++, t += 6) {
      const at = ttlAt[i]!;
      if (data[keyLength + at]! >= 0x80) data.fill(0, keyLength + at, keyLength + at + 4);
      data[t] = at >> 8; data[t + 1] = at & 0xff;
      setU32(data, t + 2, u32(data, keyLength + at));
    }
    const cost = keyLength + bodyLength + 6 * records + ENTRY_OVERHEAD;
    const hash = questionHash(data, keyLength - 4, keyLength);
    const old = this.#find(data, keyLength, hash);
    if (old !== null) this.#remove(old);
    while (this.#size >= this.limits.entries || this.#bytes + cost > this.limits.bytes) this.#remove(this.#oldest!);
    // A spare's view of the answer is kept when the answer sits where it did (a flood of names of
    // one length: every entry alike), else made anew.
    if (e.keyLength !== keyLength || e.body.length !== bodyLength) e.body = data.subarray(keyLength, keyLength + bodyLength);
    e.keyLength = keyLength; e.hash = hash; e.records = records; e.aged = 0;
    e.storedAt = nowMs; e.expiresAt = nowMs + ttlMs; e.cost = cost;
    const bucket = hash & this.#mask;
    e.chain = this.#buckets[bucket] ?? null;
    this.#buckets[bucket] = e;
    e.older = this.#newest; e.newer = null;
    if (this.#newest !== null) this.#newest.newer = e;
    this.#newest = e;
    if (this.#oldest === null) this.#oldest = e;
    this.#size++;
    this.#bytes += cost;
    return e;
  }

  /**
   * Every live entry, least recently used first, as another process stores it (`insertWire`): TTLs
   * already counted down and the lifetime left, so it counts on from where this process is. For a
   * worker that starts after this process cached answers.
   */
  snapshot(nowMs: number): WireEntry[] {
    const out: WireEntry[] = [];
    for (let e = this.#oldest; e !== null; e = e.newer) {
      const ttlMs = e.expiresAt - nowMs;
      if (ttlMs <= 0) continue;
      countDown(e, nowMs);
      out.push({ key: Uint8Array.from(e.data.subarray(0, e.keyLength)), body: Buffer.from(e.body), ttlMs });
    }
    return out;
  }

  clear(): void {
    this.#buckets.fill(null);
    this.#spares = [];
    this.#size = 0;
    this.#bytes = 0;
    this.#oldest = this.#newest = null;
  }

  #find(data: Uint8Array, keyLength: number, hash: number): CacheEntry | null {
    for (let e = this.#buckets[hash & this.#mask] ?? null; e !== null; e = e.chain) {
      if (e.keyLength === keyLength && sameBytes(e.data, data, keyLength)) return e;
    }
    return null;
  }

  #touch(e: CacheEntry): void {
    if (this.#newest === e) return;
    this.#unlink(e);
    e.older = this.#newest;
    e.newer = null;
    if (this.#newest !== null) this.#newest.newer = e;
    this.#newest = e;
    if (this.#oldest === null) this.#oldest = e;
  }

  #unlink(e: CacheEntry): void {
    if (e.older !== null) e.older.newer = e.newer; else this.#oldest = e.newer;
    if (e.newer !== null) e.newer.older = e.older; else this.#newest = e.older;
    e.older = e.newer = null;
  }

  #remove(e: CacheEntry): void {
    this.#unlink(e);
    const bucket = e.hash & this.#mask;
    const head = this.#buckets[bucket] ?? null;
    if (head === e) {
      this.#buckets[bucket] = e.chain;
    } else {
      for (let p = head; p !== null; p = p.chain) if (p.chain === e) { p.chain = e.chain; break; }
    }
    e.chain = null;
    this.#size--;
    this.#bytes -= e.cost;
    if (this.#spares.length < SPARES_MAX && e.data.length <= SPARE_BYTES_MAX) this.#spares.push(e);
  }
}

/** Whether the first `length` bytes of `a` and `b` are equal (a key of a few dozen bytes: a loop, not a call into C++). */
function sameBytes(a: Uint8Array, b: Uint8Array, length: number): boolean {
  for (let i = 0; i < length; i++) if (a[i] !== b[i]) return false;
  return true;
}
