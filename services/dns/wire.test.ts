import t from 'tap';
import fc from 'fast-check';
import { isDeepStrictEqual } from 'node:util';
import { readHexFile } from '../../test/support/hex.js';
import { repoPath } from '../../test/support/paths.js';
import { encodeName, nameEnd, readName, splitName } from './name.js';
import { formatRdata, parseRecordLine } from './rdata.js';
import { CLASS_IN, T, decodeMessage, emptyMessage, encodeMessage, scanMessage, type DnsMessage, type DnsRecord } from './wire.js';

const golden = readHexFile(repoPath('test', 'golden', 'dns', 'capture.hex'));

t.test('decodes dig queries and dnsmasq answers from the real-client capture', async (t) => {
  const [q5, r6, r11, q50, q52, r53, q54, r55, q56, r57, q58, r59] = golden;
  const q = decodeMessage(q5!);
  t.ok(q.ok);
  if (!q.ok) return;
  t.equal(q.value.id, 0x5a78, 'frame 5 id');
  t.ok(q.value.rd, 'dig sets RD');
  t.ok(q.value.ad, 'dig 9.18 sets AD in queries');
  t.same(q.value.questions, [{ name: 'srv.e2e.lan', type: T.A, class: CLASS_IN }]);
  t.equal(q.value.edns?.udpSize, 1232);
  t.same(q.value.edns?.options.map((o) => o.code), [10], 'COOKIE option');

  const a = decodeMessage(r6!);
  t.ok(a.ok && a.value.qr && a.value.answers.length === 1);
  if (a.ok) {
    t.equal(a.value.answers[0]!.name, 'srv.e2e.lan', 'owner decompressed from the pointer to offset 12');
    t.equal(formatRdata(T.A, a.value.answers[0]!.rdata), '10.97.0.1');
  }
  const nx = decodeMessage(r11!);
  t.ok(nx.ok && nx.value.rcode === 3, 'frame 11 NXDOMAIN');
  const soa = decodeMessage(r57!);
  t.ok(soa.ok);
  if (soa.ok) {
    const r = soa.value.answers[0]!;
    t.equal(r.type, T.SOA);
    t.match(formatRdata(T.SOA, r.rdata), /^srv\.e2e\.lan\. hostmaster\.e2e\.lan\. \d+ 1200 120 604800 600$/, 'SOA names expanded from compression');
  }
  const ptr = decodeMessage(r55!);
  t.ok(ptr.ok && formatRdata(T.PTR, ptr.value.answers[0]!.rdata) === 'srv.e2e.lan.');
  const aaaa = decodeMessage(r53!);
  t.ok(aaaa.ok && formatRdata(T.AAAA, aaaa.value.answers[0]!.rdata) === 'fd97::1');
  for (const p of [q50, q52, q54, q56, q58, r59]) t.ok(decodeMessage(p!).ok);
});

t.test('names: compression pointers only backwards, limits enforced', async (t) => {
  // A pointer to itself (a loop) and a forward pointer are refused.
  t.equal(readName(Uint8Array.of(0xc0, 0x00), 0), null, 'self pointer');
  t.equal(readName(Uint8Array.of(0xc0, 0x02, 0x00), 0), null, 'forward pointer');
  // Backward pointer works: "a" at 0, then pointer at 3 -> 0.
  t.same(readName(Uint8Array.of(1, 0x61, 0, 0xc0, 0x00), 3), { name: 'a', end: 5 });
  // Two pointers each pointing further back are fine; a cycle cannot be built.
  t.equal(readName(Uint8Array.of(0x40, 0), 0), null, 'extended label type refused');
  t.equal(splitName('a'.repeat(64) + '.lan'), null, 'label over 63');
  t.equal(splitName(Array(130).fill('a').join('.')), null, 'name over 255 bytes');
  t.ok(splitName(Array(127).fill('a').join('.')), '254-byte name is fine');
  t.same([...encodeName('A.b')], [1, 0x41, 1, 0x62, 0]);
  t.equal(readName(encodeName('x\\.y.lan'), 0)?.name, 'x\\.y.lan', 'escaped dot survives');
});

t.test('readName gives the text the label-by-label reading gives (escapes, pointers, limits), on arbitrary bytes', async (t) => {
  // The straightforward reading, as readName was written before it built one string per name.
  const reference = (msg: Uint8Array, offset: number, limit = msg.length): { name: string; end: number } | null => {
    let p = offset, end = -1, wireLength = 1, floor = offset;
    const labels: string[] = [];
    for (;;) {
      if (p >= limit) return null;
      const len = msg[p]!;
      if (len === 0) return { name: labels.join('.'), end: end < 0 ? p + 1 : end };
      if ((len & 0xc0) === 0xc0) {
        if (p + 1 >= limit) return null;
        const target = ((len & 0x3f) << 8) | msg[p + 1]!;
        if (end < 0) end = p + 2;
        if (target >= floor) return null;
        floor = target; p = target; continue;
      }
      if ((len & 0xc0) !== 0) return null;
      wireLength += len + 1;
      if (wireLength > 255 || p + 1 + len > limit) return null;
      labels.push([...msg.subarray(p + 1, p + 1 + len)].map((c) => (c === 0x2e || c === 0x5c ? '\\' : '') + String.fromCharCode(c)).join(''));
      p += len + 1;
    }
  };
  const labelBytes = fc.uint8Array({ minLength: 1, maxLength: 63 }).map((b) => Uint8Array.of(b.length, ...b));
  const nameBytes = fc.array(labelBytes, { maxLength: 6 }).map((ls) => Uint8Array.of(...ls.flatMap((l) => [...l]), 0));
  fc.assert(fc.property(fc.oneof(fc.uint8Array({ maxLength: 300 }), nameBytes, fc.tuple(nameBytes, nameBytes).map(([a, b]) => Uint8Array.of(...a, ...b, 0xc0, 0))), fc.nat({ max: 300 }), (bytes, at) => {
    const got = readName(bytes, at % (bytes.length + 1));
    const want = reference(bytes, at % (bytes.length + 1));
    return isDeepStrictEqual(got, want);
  }), { numRuns: 5000 });
  t.same(readName(encodeName('x\\.y.lan'), 0), { name: 'x\\.y.lan', end: 9 }, 'an escaped dot');
  t.same(readName(Uint8Array.of(0), 0), { name: '', end: 1 }, 'the root');
});

t.test('nameEnd: where readName ends, or -1 where it gives null, on arbitrary bytes and offsets', async (t) => {
  const hand = [Uint8Array.of(0xc0, 0x00), Uint8Array.of(0xc0, 0x02, 0x00), Uint8Array.of(1, 0x61, 0, 0xc0, 0x00), Uint8Array.of(0x40, 0), encodeName('x\\.y.lan')];
  for (const bytes of hand) for (let at = 0; at <= bytes.length; at++) t.equal(nameEnd(bytes, at), readName(bytes, at)?.end ?? -1, `${[...bytes]} at ${at}`);
  fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat({ max: 300 }), fc.nat({ max: 300 }), (bytes, at, cut) => {
    const limit = Math.min(bytes.length, cut);
    return nameEnd(bytes, at, limit) === (readName(bytes, at, limit)?.end ?? -1);
  }), { numRuns: 5000 });
  // Long chains of labels and pointers (the 255-byte limit, pointer walks) meet on both sides.
  const long = new Uint8Array(600);
  for (let i = 0; i < 600; i += 2) { long[i] = 1; long[i + 1] = 0x61; }
  long[599] = 0;
  for (const at of [0, 300, 340, 598]) t.equal(nameEnd(long, at), readName(long, at)?.end ?? -1);
});

t.test('zone-file rdata parse/format round trip', async (t) => {
  const cases: Array<[string, string]> = [
    ['www A 10.0.0.5', '10.0.0.5'],
    ['www AAAA fd00::80', 'fd00::80'],
    ['www AAAA 2001:db8:1:2:3:4:5:6', '2001:db8:1:2:3:4:5:6'],
    ['boot CNAME www', 'www.lan.'],
    ['@ MX 10 mail', '10 mail.lan.'],
    ['_ntp._udp SRV 0 5 123 ns1.other.', '0 5 123 ns1.other.'],
    ['@ TXT "two words" "and more"', '"two words" "and more"'],
    ['@ 60 IN NS ns1', 'ns1.lan.'],
    ['@ SOA ns1 hostmaster 7 3600 600 86400 60', 'ns1.lan. hostmaster.lan. 7 3600 600 86400 60'],
  ];
  for (const [line, text] of cases) {
    const r = parseRecordLine(line, 'lan');
    t.ok(r.ok, line);
    if (r.ok) t.equal(formatRdata(r.value.type, r.value.rdata), text, line);
  }
  for (const bad of ['www A 10.0.0.300', 'www AAAA zz::1', '@ MX mail', 'x SRV 1 2 3', 'x BOGUS 1', '@ TXT "open', 'x CNAME a..b']) {
    t.notOk(parseRecordLine(bad, 'lan').ok, `refused: ${bad}`);
  }
});

const labelArb = fc.stringMatching(/^[A-Za-z0-9_-]{1,12}$/);
const nameArb = fc.array(labelArb, { minLength: 0, maxLength: 5 }).map((l) => l.join('.'));
const recordArb: fc.Arbitrary<DnsRecord> = fc.oneof(
  fc.record({ name: nameArb, type: fc.constant<number>(T.A), class: fc.constant(1), ttl: fc.nat(), rdata: fc.uint8Array({ minLength: 4, maxLength: 4 }) }),
  fc.record({ name: nameArb, type: fc.constant<number>(T.TXT), class: fc.constant(1), ttl: fc.nat(), rdata: fc.uint8Array({ maxLength: 40 }).map((b) => Uint8Array.of(b.length, ...b)) }),
  fc.record({ name: nameArb, type: fc.constant<number>(T.CNAME), class: fc.constant(1), ttl: fc.nat(), rdata: nameArb.map(encodeName) }),
  fc.record({ name: nameArb, type: fc.constant<number>(T.MX), class: fc.constant(1), ttl: fc.nat(), rdata: nameArb.map((n) => Uint8Array.of(0, 10, ...encodeName(n))) }),
);

t.test('encode/decode round trip (names compared case-insensitively: compression may reuse a suffix in another case)', async (t) => {
  const lower = (m: DnsMessage): unknown => JSON.parse(JSON.stringify(m, (k, v: unknown) => {
    if (k === 'name' && typeof v === 'string') return v.toLowerCase();
    if (v instanceof Uint8Array) return [...v];
    return v;
  }));
  fc.assert(fc.property(
    fc.record({ id: fc.integer({ min: 0, max: 65535 }), q: nameArb, an: fc.array(recordArb, { maxLength: 6 }), ar: fc.array(recordArb, { maxLength: 3 }), edns: fc.boolean() }),
    ({ id, q, an, ar, edns }) => {
      const m = emptyMessage(id);
      m.qr = true;
      m.questions = [{ name: q, type: T.A, class: 1 }];
      m.answers = an;
      m.additional = ar;
      if (edns) m.edns = { udpSize: 1232, extendedRcode: 0, version: 0, dnssecOk: false, options: [{ code: 3, data: Uint8Array.of(1, 2) }] };
      const { bytes } = encodeMessage(m);
      const d = decodeMessage(bytes);
      if (!d.ok) return false;
      // CNAME/MX rdata may have been compressed on the wire and expanded again; compare lowercased wire names.
      const norm = (r: DnsRecord): DnsRecord => ({ ...r, rdata: r.type === T.CNAME || r.type === T.MX ? Uint8Array.from(r.rdata, (c) => (c >= 0x41 && c <= 0x5a ? c | 0x20 : c)) : r.rdata });
      const a = { ...d.value, answers: d.value.answers.map(norm), additional: d.value.additional.map(norm) };
      const b = { ...m, answers: m.answers.map(norm), additional: m.additional.map(norm) };
      return isDeepStrictEqual(lower(a), lower(b));
    },
  ), { numRuns: 200 });
});

t.test('scanMessage accepts exactly what decodeMessage accepts, with its RCODE and one entry per record, into a reused scan too', async (t) => {
  const soaArb: fc.Arbitrary<DnsRecord> = fc.record({ name: nameArb, type: fc.constant<number>(T.SOA), class: fc.constant(1), ttl: fc.nat(),
    rdata: fc.tuple(nameArb, nameArb, fc.uint8Array({ minLength: 20, maxLength: 20 })).map(([a, b, tail]) => Uint8Array.of(...encodeName(a), ...encodeName(b), ...tail)) });
  const messageArb = fc.record({ q: nameArb, an: fc.array(recordArb, { maxLength: 4 }), ns: fc.array(fc.oneof(recordArb, soaArb), { maxLength: 2 }), ar: fc.array(recordArb, { maxLength: 2 }),
    edns: fc.boolean(), rcode: fc.integer({ min: 0, max: 15 }), ext: fc.integer({ min: 0, max: 3 }) }).map(({ q, an, ns, ar, edns, rcode, ext }) => {
    const m = emptyMessage(1);
    m.qr = true;
    m.rcode = rcode | (edns ? ext << 4 : 0);
    m.questions = [{ name: q, type: T.A, class: 1 }];
    m.answers = an; m.authority = ns; m.additional = ar;
    if (edns) m.edns = { udpSize: 1232, extendedRcode: ext, version: 0, dnssecOk: false, options: [{ code: 3, data: Uint8Array.of(1, 2) }] };
    return encodeMessage(m).bytes;
  });
  // Whole messages, the same with bytes overwritten or cut, and random bytes.
  const mutated = fc.tuple(messageArb, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }), fc.nat({ max: 30 }))
    .map(([b, flips, cut]) => {
      const out = Uint8Array.from(b);
      for (const [at, v] of flips) out[at % out.length] = v;
      return out.subarray(0, Math.max(0, out.length - cut));
    });
  let accepted = 0;
  // One scan filled again and again (as the forwarder does for every upstream reply): each time what a new one holds.
  const reused = { start: [], type: [], ttlAt: [], rcode: 0 };
  fc.assert(fc.property(fc.oneof(messageArb, mutated, fc.uint8Array({ maxLength: 200 })), (bytes) => {
    const d = decodeMessage(bytes);
    const s = scanMessage(bytes);
    const into = scanMessage(bytes, reused);
    if (!d.ok) return s === null && into === null;
    accepted++;
    const records = d.value.answers.length + d.value.authority.length + d.value.additional.length + (d.value.edns === null ? 0 : 1);
    return s !== null && s.rcode === d.value.rcode && s.start.length === records && s.type.length === records && into === reused && isDeepStrictEqual({ ...into }, { ...s });
  }), { numRuns: 3000 });
  t.ok(accepted > 500, `many messages were valid (${accepted})`);
});

t.test('truncation: TC=1, question and OPT kept, records dropped', async (t) => {
  const m = emptyMessage(7);
  m.qr = true;
  m.questions = [{ name: 'big.lan', type: T.TXT, class: 1 }];
  for (let i = 0; i < 20; i++) m.answers.push({ name: 'big.lan', type: T.TXT, class: 1, ttl: 60, rdata: Uint8Array.of(100, ...new Uint8Array(100).fill(0x61 + (i % 26))) });
  m.edns = { udpSize: 1232, extendedRcode: 0, version: 0, dnssecOk: false, options: [] };
  const full = encodeMessage(m);
  t.notOk(full.truncated);
  t.ok(full.bytes.length > 1232);
  const cut = encodeMessage(m, 1232);
  t.ok(cut.truncated);
  const d = decodeMessage(cut.bytes);
  t.ok(d.ok && d.value.tc && d.value.answers.length === 0 && d.value.edns !== null && d.value.questions.length === 1);
});

t.test('decoder refuses malformed messages with a reason', async (t) => {
  const m = emptyMessage(1);
  m.questions = [{ name: 'a.lan', type: 1, class: 1 }];
  const ok = encodeMessage(m).bytes;
  t.equal(decodeMessage(ok.subarray(0, 5)).ok, false);
  const d1 = decodeMessage(ok.subarray(0, ok.length - 1));
  t.equal(!d1.ok && d1.error.code, 'bad-question');
  const trailing = Uint8Array.of(...ok, 0);
  const d2 = decodeMessage(trailing);
  t.equal(!d2.ok && d2.error.code, 'trailing-bytes');
  // Two OPT records: FORMERR material (RFC 6891 §6.1.1).
  const two = Uint8Array.of(...ok, 0, 0, 41, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 41, 4, 0, 0, 0, 0, 0, 0, 0);
  two[11] = 2;
  const d3 = decodeMessage(two);
  t.equal(!d3.ok && d3.error.code, 'bad-opt');
});
