import t from 'tap';
import fc from 'fast-check';
import { ENTRY_OVERHEAD, ForwardCache, cacheTtl, questionHash, ttlOffsets, wireCacheTtl, wireFromReply, wireOf, type CachedAnswer, type CacheEntry } from './cache.js';
import { scanQuery, type FastQuery } from './fast.js';
import { encodeName } from './name.js';
import { seedFromEnv } from '../../test/support/seeded.js';
import { CLASS_IN, concat, decodeMessage, emptyMessage, encodeMessage, RCODE, scanMessage, T, type DnsMessage, type DnsRecord, type Question } from './wire.js';

// The forwarding cache: TTL rules (RFC 2308 for negative answers), countdown on the wire path and
// the decoded path, ID/case/RD/OPT patched per asker, LRU eviction, and bounds in entries and bytes
// (the cache's own accounting, not RSS) under a flood of unique names.

const a = (ttl: number, name = 'x.example'): DnsRecord => ({ name, type: T.A, class: 1, ttl, rdata: Uint8Array.of(192, 0, 2, 1) });
const soa = (ttl: number, minimum: number): DnsRecord => ({
  name: 'example', type: T.SOA, class: 1, ttl,
  rdata: concat([encodeName('ns.example'), encodeName('admin.example'), new Uint8Array(16), Uint8Array.of(0, 0, minimum >> 8, minimum & 0xff)]),
});
const q = (name: string, type: number = T.A): Question => ({ name, type, class: CLASS_IN });
const limits = { entries: 1000, bytes: 1 << 20 };

function query(name: string, id: number, edns = false, type: number = T.A, dnssecOk = false): Buffer {
  const m = emptyMessage(id);
  m.rd = true;
  m.questions = [q(name, type)];
  if (edns) m.edns = { udpSize: 1232, extendedRcode: 0, version: 0, dnssecOk, options: [] };
  return Buffer.from(encodeMessage(m).bytes);
}

function decoded(b: Uint8Array): DnsMessage {
  const d = decodeMessage(b);
  if (!d.ok) throw new Error(d.error.code);
  return d.value;
}

/** What the fast path does with a query: scan, look up, build the reply (null on a miss). */
function serve(c: ForwardCache, msg: Buffer, nowMs: number): DnsMessage | null {
  const fq: FastQuery = { qEnd: 0, ednsLimit: 0, hash: 0 };
  if (!scanQuery(msg, fq)) throw new Error('not fast-shaped');
  const e = c.lookup(msg, fq, nowMs);
  return e === null ? null : decoded(c.reply(msg, fq, e, nowMs));
}

t.test('question hashes are signed 32-bit integers, the same from a query and from a stored key', async (t) => {
  // A hash above 2^31 would be a heap number in V8, boxed anew for every Map lookup on the hit path.
  let negative = 0;
  for (let i = 0; i < 200; i++) {
    const msg = query(`Host${i}.Example`, i);
    const fq: FastQuery = { qEnd: 0, ednsLimit: 0, hash: 0 };
    t.ok(scanQuery(msg, fq));
    const key = Uint8Array.from(query(`host${i}.example`, 0).subarray(12));
    const h = questionHash(key, key.length - 4);
    if (fq.hash !== h || h !== (h | 0)) { t.fail(`${i}: scanQuery ${fq.hash}, questionHash ${h}`); return; }
    if (h < 0) negative++;
  }
  t.ok(negative > 0, `${negative} of 200 hashes have the top bit set and are kept signed`);
});

t.test('TTLs: positive = smallest answer TTL, negative = min(SOA TTL, minimum), no SOA = not cached', async (t) => {
  t.equal(cacheTtl(q('x.example'), { rcode: 0, answers: [a(300), a(60)], authority: [], additional: [] }), 60);
  t.equal(cacheTtl(q('x.example'), { rcode: RCODE.NXDOMAIN, answers: [], authority: [soa(3600, 120)], additional: [] }), 120);
  t.equal(cacheTtl(q('x.example'), { rcode: RCODE.NOERROR, answers: [], authority: [soa(30, 120)], additional: [] }), 30, 'NODATA');
  t.equal(cacheTtl(q('x.example'), { rcode: RCODE.NXDOMAIN, answers: [], authority: [], additional: [] }), 0);
  t.equal(cacheTtl(q('x.example'), { rcode: RCODE.SERVFAIL, answers: [], authority: [], additional: [] }), 0);
});

t.test('TTLs with the top bit set count as 0 (RFC 2181 §8): such an answer is not cached, nor served counted down from 2^31', async (t) => {
  const top = 0x80000000;
  t.equal(cacheTtl(q('x.example'), { rcode: 0, answers: [a(top)], authority: [], additional: [] }), 0, 'positive');
  t.equal(cacheTtl(q('x.example'), { rcode: 0, answers: [a(300), a(0xffffffff)], authority: [], additional: [] }), 0, 'the smallest is the 0 it means');
  t.equal(cacheTtl(q('x.example'), { rcode: RCODE.NXDOMAIN, answers: [], authority: [soa(top, 120)], additional: [] }), 0, 'negative: SOA TTL');
  t.equal(cacheTtl(q('x.example'), { rcode: RCODE.NXDOMAIN, answers: [], authority: [soa(60, 120)], additional: [] }), 60);
  for (const ttl of [top, 0xffffffff]) {
    const reply = upstreamReply('x.example', { rcode: 0, answers: [a(ttl)], authority: [], additional: [] }, false);
    const scan = scanMessage(reply)!;
    t.equal(wireCacheTtl(reply, scan, 0), 0, `wire form, TTL ${ttl}`);
    t.equal(new ForwardCache(limits).store(q('x.example'), reply, decoded(reply), 0, scan), null, 'not stored');
  }
  // Stored for its answer's TTL, an additional record sent with the top bit set is served as 0.
  const c = new ForwardCache(limits);
  const reply = upstreamReply('x.example', { rcode: 0, answers: [a(300)], authority: [], additional: [a(top, 'ns.example')] }, false);
  t.ok(c.store(q('x.example'), reply, decoded(reply), 0, scanMessage(reply)!) !== null);
  const r = serve(c, query('x.example', 7), 2_000)!;
  t.same([r.answers[0]!.ttl, r.additional[0]!.ttl], [298, 0]);
});

t.test('only what answers the question is cached: records of other names, types or classes, and a negative answer\'s SOA from another zone, are not', async (t) => {
  const cname = (owner: string, target: string, ttl = 300): DnsRecord => ({ name: owner, type: T.CNAME, class: 1, ttl, rdata: encodeName(target) });
  const soaOf = (owner: string): DnsRecord => ({ ...soa(600, 300), name: owner });
  const cases: Array<[string, CachedAnswer, number]> = [
    ['the name asked', { rcode: 0, answers: [a(300, 'X.example')], authority: [], additional: [a(60, 'ns.other')] }, 300],
    ['a record for another name', { rcode: 0, answers: [a(300, 'victim.example')], authority: [], additional: [] }, 0],
    ['another name beside the answer', { rcode: 0, answers: [a(300), a(86_400, 'victim.example')], authority: [], additional: [] }, 0],
    ['a CNAME chain, in order', { rcode: 0, answers: [cname('x.example', 'y.example', 60), cname('Y.example', 'z.other'), a(120, 'z.other')], authority: [], additional: [] }, 60],
    ['a record for a name no CNAME led to', { rcode: 0, answers: [cname('x.example', 'y.example'), a(120, 'z.other')], authority: [], additional: [] }, 0],
    ['another type at the name asked', { rcode: 0, answers: [{ ...a(300), type: T.AAAA, rdata: new Uint8Array(16) }], authority: [], additional: [] }, 0],
    ['another class', { rcode: 0, answers: [{ ...a(300), class: 3 }], authority: [], additional: [] }, 0],
    ['a CNAME loop', { rcode: 0, answers: Array.from({ length: 12 }, (_, i) => cname(i % 2 === 0 ? 'x.example' : 'y.example', i % 2 === 0 ? 'y.example' : 'x.example')), authority: [], additional: [] }, 0],
    ['NXDOMAIN, SOA of the parent zone', { rcode: RCODE.NXDOMAIN, answers: [], authority: [soaOf('Example')], additional: [] }, 300],
    ['NXDOMAIN, SOA of the root', { rcode: RCODE.NXDOMAIN, answers: [], authority: [soaOf('')], additional: [] }, 300],
    ['NXDOMAIN, SOA of another zone', { rcode: RCODE.NXDOMAIN, answers: [], authority: [soaOf('other')], additional: [] }, 0],
    ['NXDOMAIN, SOA of a child of the name', { rcode: RCODE.NXDOMAIN, answers: [], authority: [soaOf('sub.x.example')], additional: [] }, 0],
    ['NXDOMAIN, SOA of a name that only ends alike', { rcode: RCODE.NXDOMAIN, answers: [], authority: [soaOf('ample')], additional: [] }, 0],
    ['NODATA, SOA of another zone', { rcode: 0, answers: [], authority: [soaOf('other')], additional: [] }, 0],
    ['NXDOMAIN after a CNAME, SOA of the target\'s zone', { rcode: RCODE.NXDOMAIN, answers: [cname('x.example', 'y.other')], authority: [soaOf('other')], additional: [] }, 300],
    ['NXDOMAIN after a CNAME shorter than the SOA\'s TTLs', { rcode: RCODE.NXDOMAIN, answers: [cname('x.example', 'y.other', 20)], authority: [soaOf('other')], additional: [] }, 20],
    ['NODATA at the end of a CNAME chain: the SOA\'s, not the chain\'s day', { rcode: 0, answers: [cname('x.example', 'y.other', 86_400)], authority: [soaOf('other')], additional: [] }, 300],
    ['NODATA at the end of a CNAME chain, no SOA', { rcode: 0, answers: [cname('x.example', 'y.other', 600)], authority: [], additional: [] }, 0],
  ];
  for (const [what, answer, ttl] of cases) {
    t.equal(cacheTtl(q('x.example'), answer), ttl, `${what}: decoded`);
    const reply = upstreamReply('x.example', answer);
    const scan = scanMessage(reply)!;
    t.equal(wireCacheTtl(reply, scan, answer.rcode), ttl, `${what}: from the bytes`);
    const stored = new ForwardCache(limits).store(q('x.example'), reply, answer, 0, scan);
    t.equal(stored !== null, ttl > 0, `${what}: ${ttl > 0 ? 'stored' : 'not stored'}`);
  }
});

t.test('wire path: the asker\'s ID, case, RD and OPT; TTLs count down in whole seconds; expiry', async (t) => {
  const c = new ForwardCache(limits);
  const answer: CachedAnswer = { rcode: 0, answers: [a(300, 'host.example'), a(60, 'host.example')], authority: [], additional: [] };
  t.ok(c.put(q('host.example'), answer, 1_000) !== null);
  const r = serve(c, query('HoSt.Example', 4321, true), 1_000 + 3_500)!;
  t.equal(r.id, 4321);
  t.ok(r.qr && r.rd && r.ra && !r.aa && !r.tc);
  t.equal(r.questions[0]!.name, 'HoSt.Example', 'the asker\'s case is echoed');
  t.equal(r.answers[0]!.name, 'HoSt.Example', 'owner names point at the question');
  t.same(r.answers.map((x) => x.ttl), [297, 57], 'counted down by 3 whole seconds');
  t.ok(r.edns !== null, 'OPT appended for an EDNS asker');
  t.equal(r.edns?.dnssecOk, false, 'no DO asked, none given');
  t.equal(serve(c, query('host.example', 4322, true, T.A, true), 1_000 + 3_500)!.edns?.dnssecOk, true, 'DO copied from the query (RFC 3225 §3)');
  const plain = serve(c, query('host.example', 1), 1_000 + 59_999)!;
  t.equal(plain.edns, null, 'no OPT for a plain asker');
  t.same(plain.answers.map((x) => x.ttl), [241, 1]);
  t.equal(serve(c, query('host.example', 2), 1_000 + 60_000), null, 'gone when the smallest TTL ran out');
  t.equal(c.size, 0);
});

t.test('negative answers (RFC 2308): NXDOMAIN and NODATA cached for min(SOA TTL, minimum), SOA served with it, counting down', async (t) => {
  const c = new ForwardCache(limits);
  c.put(q('gone.example'), { rcode: RCODE.NXDOMAIN, answers: [], authority: [soa(3600, 120)], additional: [] }, 0);
  c.put(q('x.example', T.AAAA), { rcode: RCODE.NOERROR, answers: [], authority: [soa(30, 120)], additional: [] }, 0);
  const nx = serve(c, query('gone.example', 1), 10_000)!;
  t.equal(nx.rcode, RCODE.NXDOMAIN);
  t.equal(nx.authority[0]!.type, T.SOA);
  t.equal(nx.authority[0]!.ttl, 110, 'SOA TTL = negative TTL (120) - 10 s');
  const nodata = serve(c, query('x.example', 2, false, T.AAAA), 10_000)!;
  t.equal(nodata.rcode, RCODE.NOERROR);
  t.equal(nodata.answers.length, 0);
  t.equal(nodata.authority[0]!.ttl, 20);
  t.equal(serve(c, query('x.example', 3, false, T.AAAA), 30_000), null, 'NODATA gone after 30 s');
  t.ok(serve(c, query('gone.example', 4), 119_000) !== null);
  t.equal(serve(c, query('gone.example', 5), 120_000), null, 'NXDOMAIN gone after 120 s');
  t.equal(c.put(q('nosoa.example'), { rcode: RCODE.NXDOMAIN, answers: [], authority: [], additional: [] }, 0), null, 'no SOA: not cached');
  t.equal(c.put(q('fail.example'), { rcode: RCODE.SERVFAIL, answers: [], authority: [], additional: [] }, 0), null, 'SERVFAIL: not cached');
});

t.test('decoded path (TCP, EDNS options): same records, TTLs counted down', async (t) => {
  const c = new ForwardCache(limits);
  c.put(q('host.example'), { rcode: 0, answers: [a(100, 'host.example')], authority: [], additional: [a(50, 'ns.example')] }, 0);
  const got = c.get(q('HOST.example'), 5_000)!;
  t.same(got.answers.map((r) => [r.name.toLowerCase(), r.ttl, [...r.rdata]]), [['host.example', 95, [192, 0, 2, 1]]]);
  t.same(got.additional.map((r) => [r.name, r.ttl]), [['ns.example', 45]]);
  t.equal(c.get(q('other.example'), 0), null);
});

t.test('a reply larger than the asker may take is sent truncated (TC=1, question, OPT)', async (t) => {
  const c = new ForwardCache(limits);
  const many = Array.from({ length: 40 }, (_, i) => ({ ...a(300, 'big.example'), rdata: Uint8Array.of(192, 0, 2, i) }));
  c.put(q('big.example'), { rcode: 0, answers: many, authority: [], additional: [] }, 0);
  const plain = serve(c, query('big.example', 9), 0)!;
  t.ok(plain.tc, 'over 512 without EDNS: TC=1');
  t.equal(plain.answers.length, 0);
  t.equal(plain.questions[0]!.name, 'big.example');
  const edns = serve(c, query('big.example', 9, true), 0)!;
  t.notOk(edns.tc, 'fits in 1232 with EDNS');
  t.equal(edns.answers.length, 40);
});

t.test('LRU: capacity in entries evicts the least recently used', async (t) => {
  const c = new ForwardCache({ entries: 2, bytes: 1 << 20 });
  const ans = (n: string): CachedAnswer => ({ rcode: 0, answers: [a(100, n)], authority: [], additional: [] });
  c.put(q('a.example'), ans('a.example'), 0);
  c.put(q('b.example'), ans('b.example'), 0);
  t.ok(serve(c, query('a.example', 1), 1) !== null);
  c.put(q('c.example'), ans('c.example'), 0);
  t.ok(serve(c, query('a.example', 1), 2) !== null, 'recently used kept');
  t.equal(serve(c, query('b.example', 1), 2), null, 'least recently used evicted');
  t.equal(c.size, 2);
  c.put(q('a.example'), ans('a.example'), 3);
  t.equal(c.size, 2, 'replacing an entry does not grow the cache');
});

t.test('a flood of unique names: entries and accounted bytes stay within the limits', async (t) => {
  const c = new ForwardCache({ entries: 10_000, bytes: 256 * 1024 });
  let maxBytes = 0;
  for (let i = 0; i < 50_000; i++) {
    const name = `r${i}-${(i * 7919) % 100_003}.flood.example`;
    c.put(q(name), { rcode: 0, answers: [a(300, name)], authority: [], additional: [] }, i);
    maxBytes = Math.max(maxBytes, c.bytes);
  }
  t.ok(maxBytes <= 256 * 1024, `bytes never above the limit (max ${maxBytes})`);
  t.ok(c.size > 100 && c.size < 10_000, `the byte bound holds the entries (${c.size})`);
  t.ok(c.bytes >= c.size * ENTRY_OVERHEAD, 'every entry is charged its overhead');
  const byCount = new ForwardCache({ entries: 100, bytes: 1 << 30 });
  for (let i = 0; i < 5_000; i++) byCount.put(q(`n${i}.example`), { rcode: 0, answers: [a(300, `n${i}.example`)], authority: [], additional: [] }, 0);
  t.equal(byCount.size, 100);
  t.ok(serve(byCount, query('n4999.example', 1), 0) !== null && serve(byCount, query('n0.example', 1), 0) === null, 'the newest kept, the oldest gone');
});

t.test('a cache at its bound reuses evicted entries for new ones, and a reused entry answers only what was stored in it', async (t) => {
  // A flood of unique names evicts an entry per store: the evicted entry (object and buffer) holds
  // the next one instead of a new allocation per miss that lives until it is evicted in turn.
  const c = new ForwardCache({ entries: 50, bytes: 1 << 20 });
  const made = new Set<object>();
  for (let i = 0; i < 2_000; i++) {
    const name = `u${i}.flood.example`;
    const answer: CachedAnswer = { rcode: 0, answers: [a(300, name)], authority: [], additional: [] };
    const e = c.store(q(name), upstreamReply(name, answer), answer, i);
    if (e !== null) made.add(e);
  }
  t.equal(c.size, 50);
  t.ok(made.size <= 50 + 2, `2,000 unique names stored in ${made.size} entry objects (at most the bound and a spare or two)`);
  // Answers of varying sizes, negative ones, names replaced and expired, in a small cache: every name
  // the cache still answers is answered exactly as a cache holding that one answer alone answers it.
  fc.assert(fc.property(fc.array(fc.tuple(fc.nat({ max: 30 }), fc.nat({ max: 3 }), fc.boolean(), fc.integer({ min: 1, max: 20 })), { minLength: 1, maxLength: 80 }),
    (steps) => {
      const small = new ForwardCache({ entries: 6, bytes: 6 * (ENTRY_OVERHEAD + 120) });
      const last = new Map<string, { answer: CachedAnswer; at: number }>();
      steps.forEach(([n, records, negative, ttl], i) => {
        const name = `n${n}.${'x'.repeat(n % 7 + 1)}.example`;
        const answer: CachedAnswer = negative
          ? { rcode: RCODE.NXDOMAIN, answers: [], authority: [soa(ttl, ttl)], additional: [] }
          : { rcode: 0, answers: Array.from({ length: records + 1 }, (_, k) => ({ ...a(ttl + k, name), rdata: Uint8Array.of(10, 0, k, n) })), authority: [], additional: [] };
        if (small.store(q(name), upstreamReply(name, answer), answer, i * 1_000) !== null) last.set(name, { answer, at: i * 1_000 });
      });
      const now = steps.length * 1_000 + 500;
      for (const [name, { answer, at }] of last) {
        const got = serve(small, query(name, 9, true), now);
        if (got === null) continue; // evicted or expired
        const alone = new ForwardCache(limits);
        alone.store(q(name), upstreamReply(name, answer), answer, at);
        if (JSON.stringify(got) !== JSON.stringify(serve(alone, query(name, 9, true), now))) return false;
      }
      return true;
    }), { seed: seedFromEnv(1035), numRuns: 500 });
  t.pass('every answer served from a reused entry equals the answer stored for that name alone');
});

t.test('entries sent to another process (insertWire) answer the same bytes there', async (t) => {
  const daemon = new ForwardCache(limits);
  const worker = new ForwardCache(limits);
  const w = daemon.put(q('host.example'), { rcode: 0, answers: [a(100, 'host.example')], authority: [soa(100, 100)], additional: [] }, 0)!;
  t.ok(worker.insertWire(structuredClone(w), 0));
  t.same(serve(worker, query('Host.example', 7, true), 2_000), serve(daemon, query('Host.example', 7, true), 2_000));
  t.notOk(worker.insertWire({ key: w.key, body: w.body.subarray(0, w.body.length - 1), ttlMs: 1000 }, 0), 'a malformed body is refused');
});

/** An upstream's reply to `name` as a resolver sends it: its own ID, AA, an OPT last. */
function upstreamReply(name: string, answer: CachedAnswer, opt = true): Uint8Array {
  const m = emptyMessage(0xbeef);
  m.qr = true; m.aa = true; m.rd = true; m.ra = true;
  m.rcode = answer.rcode;
  m.questions = [q(name)];
  m.answers = answer.answers; m.authority = answer.authority; m.additional = answer.additional;
  if (opt) m.edns = { udpSize: 1232, extendedRcode: 0, version: 0, dnssecOk: false, options: [] };
  return encodeMessage(m).bytes;
}

t.test('store: an upstream reply kept in its own bytes answers exactly as the encoded form does', async (t) => {
  const cases: Array<[string, CachedAnswer]> = [
    ['Host.Example', { rcode: 0, answers: [a(300, 'Host.Example'), a(60, 'Host.Example')], authority: [], additional: [a(50, 'ns.example')] }],
    ['gone.example', { rcode: RCODE.NXDOMAIN, answers: [], authority: [soa(3600, 120)], additional: [] }],
  ];
  for (const [name, answer] of cases) {
    const byWire = new ForwardCache(limits);
    const byPut = new ForwardCache(limits);
    const e = byWire.store(q(name), upstreamReply(name, answer), answer, 1_000)!;
    t.ok(e !== null, `${name}: stored`);
    byPut.put(q(name), answer, 1_000);
    for (const [asked, edns, at] of [[name.toUpperCase(), true, 4_500], [name.toLowerCase(), false, 60_000]] as const) {
      const got = serve(byWire, query(asked, 77, edns), at);
      const want = serve(byPut, query(asked, 77, edns), at);
      t.same(got, want, `${name}: asked as ${asked} at ${at} ms, same reply as the re-encoded entry`);
      t.ok(got !== null && !got.aa && got.ra && got.id === 77, 'AA cleared, RA set, the asker\'s ID');
    }
    t.same(byWire.size, 1);
    const other = new ForwardCache(limits);
    t.ok(other.insertWire(structuredClone(wireOf(e)), 1_000), 'the stored entry passes to another process');
    t.same(serve(other, query(name, 5), 2_000), serve(byWire, query(name, 5), 2_000));
  }
});

t.test('store: reply shapes the wire form does not take go through put; not cacheable is null', async (t) => {
  const answer: CachedAnswer = { rcode: 0, answers: [a(300, 'host.example')], authority: [], additional: [] };
  const reply = upstreamReply('host.example', answer);
  t.ok(wireFromReply(reply, false, 300) !== null, 'a trailing OPT is cut off');
  t.equal(wireFromReply(upstreamReply('host.example', { ...answer, additional: [a(5, 'x')] }, true).subarray(0, 20), false, 300), null, 'truncated bytes');
  const extRcode = Uint8Array.from(reply);
  extRcode[extRcode.length - 11 + 5] = 1; // the OPT's extended RCODE
  t.equal(wireFromReply(extRcode, false, 300), null, 'an extended RCODE is left to the decoder');
  // A name pointing into the header would change with every asker's ID: refused.
  const intoHeader = Uint8Array.from(upstreamReply('host.example', answer, false));
  const ownerAt = 12 + encodeName('host.example').length + 4;
  intoHeader[ownerAt] = 0xc0; intoHeader[ownerAt + 1] = 2;
  t.equal(wireFromReply(intoHeader, false, 300), null, 'a pointer into the header');
  const c = new ForwardCache(limits);
  t.equal(c.store(q('host.example'), reply, { ...answer, rcode: RCODE.SERVFAIL }, 0), null, 'SERVFAIL not cached');
  t.ok(c.store(q('host.example'), intoHeader, answer, 0) !== null, 'the odd shape is stored through put');
  t.same(serve(c, query('host.example', 1), 0)!.answers.map((r) => r.name), ['host.example']);
});

/** Any 32-bit TTL: mostly ordinary ones, sometimes the top bit set (RFC 2181 §8). */
const ttlArb = fc.oneof({ arbitrary: fc.nat(), weight: 4 }, { arbitrary: fc.integer({ min: 0x80000000, max: 0xffffffff }), weight: 1 });

t.test('a name that reads a TTL field (a pointer into it) is served as the reply had it, not as the countdown rewrote it', async (t) => {
  // Found by test/fuzz/dns-cache.test.ts: the SOA's MNAME is "ns" + a pointer to offset 30, inside
  // the SOA's own TYPE/CLASS/TTL; storing the negative TTL (and every countdown) changed the name.
  const reply = Uint8Array.from([18, 52, 129, 128, 0, 1, 0, 0, 0, 2, 0, 1, 1, 120, 7, 101, 120, 97, 109, 112, 108, 101, 0, 0, 1, 0, 1,
    192, 12, 0, 6, 0, 1, 0, 0, 1, 1, 0, 27, 2, 110, 115, 192, 30, 192, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0,
    192, 12, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 10, 0, 0, 1, 192, 12, 0, 5, 0, 1, 0, 0, 0, 0, 0, 2, 192, 12]);
  const want = decoded(reply).authority[0]!;
  const c = new ForwardCache(limits);
  t.ok(c.store(q('x.example'), reply, decoded(reply), 0, scanMessage(reply)!) !== null, 'stored (through put)');
  for (const nowMs of [0, 5_000]) {
    const got = serve(c, query('x.example', 1), nowMs)!.authority[0]!;
    t.same([...got.rdata], [...want.rdata], `SOA RDATA as sent, ${nowMs / 1000} s later`);
  }
});

t.test('lifetime and entry read from the reply\'s bytes (the miss path, nothing decoded) equal the decoded reply\'s', async (t) => {
  const names = fc.constantFrom('x.example', 'X.Example', 'y.example', 'other', 'example', '');
  const rrArb = fc.oneof(
    fc.tuple(ttlArb, fc.constantFrom('x.example', 'X.Example')).map(([ttl, n]) => a(ttl, n)),
    fc.tuple(ttlArb, names).map(([ttl, n]) => a(ttl, n)),
    fc.tuple(ttlArb, names, names).map(([ttl, n, target]): DnsRecord => ({ name: n, type: T.CNAME, class: 1, ttl, rdata: encodeName(target) })),
    fc.tuple(ttlArb, fc.nat({ max: 65535 })).map(([ttl, min]) => soa(ttl, min)),
    fc.tuple(ttlArb, fc.nat({ max: 65535 }), names).map(([ttl, min, n]) => ({ ...soa(ttl, min), name: n })),
  );
  fc.assert(fc.property(fc.constantFrom(RCODE.NOERROR, RCODE.NXDOMAIN, RCODE.SERVFAIL, RCODE.REFUSED), fc.array(rrArb, { maxLength: 3 }), fc.array(rrArb, { maxLength: 3 }), fc.boolean(),
    (rcode, answers, authority, opt) => {
      const answer: CachedAnswer = { rcode, answers, authority, additional: [] };
      const reply = upstreamReply('x.example', answer, opt);
      const scan = scanMessage(reply);
      if (scan === null || wireCacheTtl(reply, scan, rcode) !== cacheTtl(q('x.example'), answer)) return false;
      const byScan = new ForwardCache(limits).store(q('x.example'), reply, answer, 5_000, scan);
      const byDecoded = new ForwardCache(limits).store(q('x.example'), reply, answer, 5_000);
      if (byScan === null) return byDecoded === null;
      // The TTL offsets carried over from the reply's walk are the stored body's own.
      // (The entry's TTL table follows its answer: 2 bytes of offset, 4 of stored TTL per record.)
      // (The buffer may be longer than what it holds: entries' buffers are made in steps and reused.)
      const offsets = ttlOffsets(byScan.body);
      const used = (e: CacheEntry): Buffer => e.data.subarray(0, e.keyLength + e.body.length + 6 * e.records);
      const table = used(byScan).subarray(byScan.keyLength + byScan.body.length);
      const stored = Array.from({ length: byScan.records }, (_, i) => table.readUInt16BE(6 * i));
      return byDecoded !== null && used(byScan).equals(used(byDecoded)) && byScan.expiresAt === byDecoded.expiresAt && offsets !== null && stored.join() === offsets.join()
        && table.length === 6 * offsets.length;
    }), { seed: seedFromEnv(2181), numRuns: 3000 });
  t.pass('equal for every reply tried');
});

t.test('snapshot: live entries, oldest first, TTLs counted down and the lifetime left; another process serves them the same', async (t) => {
  const c = new ForwardCache(limits);
  c.put(q('a.example'), { rcode: 0, answers: [a(300, 'a.example')], authority: [], additional: [] }, 0);
  c.put(q('b.example'), { rcode: 0, answers: [a(2, 'b.example')], authority: [], additional: [] }, 0);
  c.put(q('c.example'), { rcode: 0, answers: [a(100, 'c.example')], authority: [], additional: [] }, 1_000);
  serve(c, query('a.example', 1), 1_000); // a becomes the most recently used
  const snap = c.snapshot(3_500);
  t.same(snap.map((w) => w.ttlMs), [97_500, 296_500], 'b expired; c then a (least recently used first), lifetime left');
  const other = new ForwardCache(limits);
  for (const w of structuredClone(snap)) t.ok(other.insertWire(w, 3_500));
  t.same(serve(other, query('A.example', 2), 3_500), serve(c, query('A.example', 2), 3_500), 'same answer, TTL 297, in both');
  t.equal(serve(other, query('a.example', 3), 3_500)!.answers[0]!.ttl, 297);
  t.equal(serve(other, query('c.example', 4), 3_500 + 97_500), null, 'gone when it would be gone here');
});

t.test('wireFromReply never throws on arbitrary bytes', async () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), fc.boolean(), (bytes, negative) => { wireFromReply(bytes, negative, 60); }), { numRuns: 2000 });
});

t.test('ttlOffsets never throws on arbitrary bytes', async () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => { ttlOffsets(bytes); }), { numRuns: 2000 });
});

t.test('the TTLs rewritten once per second of age serve the same bytes as counting each reply down from the stored TTLs, at any times in any order', async () => {
  const answer: CachedAnswer = { rcode: 0, answers: [a(300, 'host.example'), a(45, 'host.example')], authority: [soa(7, 3)], additional: [a(50, 'ns.example')] };
  const stored = upstreamReply('host.example', answer);
  fc.assert(fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 400_000 }), fc.boolean(), fc.constantFrom('host.example', 'HOST.example', 'hOsT.eXaMpLe')), { minLength: 1, maxLength: 12 }), (asks) => {
    const c = new ForwardCache(limits);
    const e = c.store(q('host.example'), stored, answer, 1_000);
    if (e === null) throw new Error('not stored');
    for (const [atMs, edns, asked] of asks) {
      const nowMs = 1_000 + atMs;
      const msg = query(asked, 4242, edns);
      const fq: FastQuery = { qEnd: 0, ednsLimit: 0, hash: 0 };
      if (!scanQuery(msg, fq)) throw new Error('not fast-shaped');
      const got = c.reply(msg, fq, e, nowMs);
      // The reference: the stored reply with the asker's ID, RD and question, every TTL counted down here.
      const want = decoded(stored);
      // Names compressed into the question (owners, the SOA's RDATA) carry the case asked: compared without case.
      const age = Math.floor(atMs / 1000);
      const down = (r: DnsRecord): string => `${r.name.toLowerCase()} ${r.type} ${r.class} ${r.ttl > age ? r.ttl - age : 0} ${Buffer.from(r.rdata).toString('latin1').toLowerCase()}`;
      const as = (r: DnsRecord): string => `${r.name.toLowerCase()} ${r.type} ${r.class} ${r.ttl} ${Buffer.from(r.rdata).toString('latin1').toLowerCase()}`;
      const m = decoded(got);
      const records = (d: DnsMessage, f: (r: DnsRecord) => string): string => [d.answers, d.authority, d.additional.filter((r) => r.type !== T.OPT)].map((s) => s.map(f).join()).join('|');
      const same = m.id === 4242 && m.rd && m.ra && !m.aa && m.questions[0]!.name === asked
        && records(m, as) === records(want, down) && (m.edns != null) === edns;
      if (!same) throw new Error(`at ${atMs} ms asked as ${asked}: ${JSON.stringify(m)}`);
    }
    // What another process gets is the entry as stored, whatever was served meanwhile.
    const w = wireOf(e);
    if (Buffer.compare(Buffer.from(w.body), Buffer.from(wireFromReply(stored, false, 45)!.body)) !== 0) throw new Error('wireOf changed by the countdown');
  }), { seed: seedFromEnv(1034), numRuns: 300 });
});

t.test('replyInto: replies written one after another into one reused area equal fresh ones, truncated or not, TTLs counted down', async () => {
  // The UDP path writes every hit's reply into the same scratch area (lib/udp-direct.ts DatagramSender).
  const many: CachedAnswer = { rcode: 0, answers: Array.from({ length: 40 }, (_, i) => ({ ...a(300 + i, 'big.example'), rdata: Uint8Array.of(192, 0, 2, i) })), authority: [], additional: [] };
  const small: CachedAnswer = { rcode: 0, answers: [a(120, 'small.example')], authority: [], additional: [] };
  const area = Buffer.alloc(4096, 0x5a);
  fc.assert(fc.property(fc.array(fc.tuple(fc.constantFrom('big.example', 'BIG.example', 'small.example', 'sMaLl.example'), fc.boolean(), fc.integer({ min: 0, max: 100_000 }), fc.integer({ min: 0, max: 65535 })), { minLength: 1, maxLength: 10 }), (asks) => {
    const c = new ForwardCache(limits);
    c.store(q('big.example'), upstreamReply('big.example', many), many, 0);
    c.store(q('small.example'), upstreamReply('small.example', small), small, 0);
    for (const [name, edns, atMs, id] of asks) {
      const msg = query(name, id, edns);
      const fq: FastQuery = { qEnd: 0, ednsLimit: 0, hash: 0 };
      if (!scanQuery(msg, fq)) throw new Error('not fast-shaped');
      const e = c.lookup(msg, fq, atMs);
      if (e === null) throw new Error('not cached');
      const out = area.subarray(0, c.replySize(fq, e));
      c.replyInto(out, msg, fq, e, atMs);
      const fresh = c.reply(msg, fq, e, atMs);
      if (Buffer.compare(out, fresh) !== 0) throw new Error(`${name} at ${atMs} ms: ${out.toString('hex')} != ${fresh.toString('hex')}`);
      const m = decoded(out);
      const big = name.toLowerCase() === 'big.example';
      if (m.id !== id || m.questions[0]!.name !== name || m.tc !== (big && !edns)) throw new Error(`${name}: id, question or TC`);
      if (!m.tc && m.answers[0]!.ttl !== (big ? 300 : 120) - Math.floor(atMs / 1000)) throw new Error(`${name} at ${atMs} ms: TTL ${m.answers[0]!.ttl}`);
    }
  }), { seed: seedFromEnv(4343), numRuns: 200 });
});
