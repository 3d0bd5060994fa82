import t from 'tap';
import fc from 'fast-check';
import { ForwardCache } from '../../services/dns/cache.js';
import { checkReply } from '../../services/dns/forward.js';
import { scanQuery, type FastQuery } from '../../services/dns/fast.js';
import { asciiLower, encodeName } from '../../services/dns/name.js';
import { concat, decodeMessage, emptyMessage, encodeMessage, scanMessage, T, type DnsRecord } from '../../services/dns/wire.js';
import { seedFromEnv } from '../support/seeded.js';

// The forwarding cache against the full decoder as the oracle: an upstream reply that passes
// checkReply (real shapes, then bytes flipped: pointers anywhere, odd RDATA, OPT placement)
// and is stored, is served to the asker as a message the decoder accepts, with the reply's records
// (names in any case, TTLs as stored), never more than the asker may take; nothing throws.
// LANHA_SEED and LANHA_FUZZ_RUNS (default 3000) for longer local runs.

const seed = seedFromEnv(1035);
const question = { name: 'x.example', type: T.A, class: 1 };
const names = fc.constantFrom('x.example', 'X.EXAMPLE', 'x.example', 'x.example', 'y.example', 'example', '');
const rr: fc.Arbitrary<DnsRecord> = fc.oneof(
  fc.tuple(fc.nat({ max: 100_000 }), names).map(([ttl, name]) => ({ name, type: T.A, class: 1, ttl, rdata: Uint8Array.of(10, 0, 0, 1) })),
  fc.tuple(fc.nat({ max: 100_000 }), names, names).map(([ttl, name, target]) => ({ name, type: T.CNAME, class: 1, ttl, rdata: encodeName(target) })),
  fc.tuple(fc.nat({ max: 100_000 }), names).map(([ttl, name]) => ({ name, type: T.SOA, class: 1, ttl,
    rdata: concat([encodeName(`ns.${name}`), encodeName('x.example'), new Uint8Array(16), Uint8Array.of(0, 0, 1, 0)]) })),
  fc.tuple(fc.nat({ max: 100_000 }), names).map(([ttl, name]) => ({ name, type: T.MX, class: 1, ttl, rdata: concat([Uint8Array.of(0, 5), encodeName('y.example')]) })),
);
const reply = fc.record({ rcode: fc.constantFrom(0, 0, 3, 2), an: fc.array(rr, { maxLength: 4 }), ns: fc.array(rr, { maxLength: 2 }), ar: fc.array(rr, { maxLength: 2 }), opt: fc.boolean() })
  .map(({ rcode, an, ns, ar, opt }) => {
    const m = emptyMessage(0x1234);
    m.qr = true; m.rd = true; m.ra = true; m.rcode = rcode;
    m.questions = [question];
    m.answers = an; m.authority = ns; m.additional = ar;
    if (opt) m.edns = { udpSize: 1232, extendedRcode: 0, version: 0, dnssecOk: false, options: [] };
    return encodeMessage(m).bytes;
  });
const mutated = fc.tuple(reply, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 3 }))
  .map(([b, flips]) => {
    const out = Uint8Array.from(b);
    // Keep ID and question bytes so the reply still matches the query.
    for (const [at, v] of flips) { const i = at % out.length; if (i >= 2 && (i < 4 || i > 12 + 15)) out[i] = v; }
    return out;
  });

function asker(id: number, edns: boolean): Buffer {
  const m = emptyMessage(id);
  m.rd = true;
  m.questions = [{ ...question, name: 'X.example' }];
  if (edns) m.edns = { udpSize: 1232, extendedRcode: 0, version: 0, dnssecOk: false, options: [] };
  return Buffer.from(encodeMessage(m).bytes);
}

// Names compare in any case, inside RDATA too (a compressed target may point at the asker's question).
const lower = (r: DnsRecord): string => `${r.name.toLowerCase()}/${r.type}/${r.class}/${Buffer.from(r.rdata.map((c) => (c >= 0x41 && c <= 0x5a ? c | 0x20 : c))).toString('hex')}`;

t.test('a stored reply is served as the decoder reads the reply', async (t) => {
  let stored = 0;
  fc.assert(fc.property(fc.oneof(reply, mutated), fc.boolean(), (bytes, edns) => {
    const scan = checkReply(bytes, 0x1234, question);
    if (scan === null) return true;
    const d = decodeMessage(bytes);
    if (!d.ok) return false; // checkReply accepts only what the decoder does
    const cache = new ForwardCache({ entries: 10, bytes: 1 << 20 });
    const e = cache.store(question, bytes, d.value, 1_000, scan);
    if (e === null) return true;
    stored++;
    const msg = asker(77, edns);
    const fq: FastQuery = { qEnd: 0, ednsLimit: 0, hash: 0 };
    if (!scanQuery(msg, fq)) return false;
    const hit = cache.lookup(msg, fq, 1_000);
    if (hit === null) return false;
    const out = cache.reply(msg, fq, hit, 1_000);
    if (out.length > (edns ? 1232 : 512)) return false;
    const r = decodeMessage(out);
    if (!r.ok || r.value.id !== 77 || r.value.questions[0]!.name !== 'X.example' || r.value.rcode !== d.value.rcode) return false;
    if (r.value.tc) return r.value.answers.length === 0;
    return r.value.answers.map(lower).join() === d.value.answers.map(lower).join()
      && r.value.authority.map(lower).join() === d.value.authority.map(lower).join()
      && r.value.additional.map(lower).join() === d.value.additional.map(lower).join();
  }), { seed, numRuns: Number(process.env['LANHA_FUZZ_RUNS'] ?? 3000) });
  t.ok(stored > 0, `${stored} replies stored and served, seed ${seed}`);
});

t.test('checkReply accepts exactly the replies the decoder reads as a response with our ID and question (any case)', async (t) => {
  const ours = Uint8Array.from([1, 120, 7, 101, 120, 97, 109, 112, 108, 101, 0, 0, 1, 0, 1]); // x.example A IN, as sent
  let accepted = 0;
  fc.assert(fc.property(fc.oneof(reply, mutated), fc.boolean(), (bytes, withBytes) => {
    const scan = checkReply(bytes, 0x1234, question, withBytes ? ours : null);
    const d = decodeMessage(bytes);
    const want = d.ok && d.value.qr && d.value.id === 0x1234 && d.value.questions.length === 1
      && asciiLower(d.value.questions[0]!.name) === question.name && d.value.questions[0]!.type === question.type && d.value.questions[0]!.class === question.class;
    if (scan !== null) accepted++;
    return (scan !== null) === want && (scan === null || (d.ok && scan.rcode === d.value.rcode));
  }), { seed, numRuns: Number(process.env['LANHA_FUZZ_RUNS'] ?? 3000) });
  t.ok(accepted > 0, `${accepted} replies accepted, seed ${seed}`);
});
