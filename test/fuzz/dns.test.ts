import t from 'tap';
import fc from 'fast-check';
import { parseCidr } from '../../lib/ipv4.js';
import { decodeMessage, emptyMessage, encodeMessage, T } from '../../services/dns/wire.js';
import { handleQuery, prebuiltAnswer, replyLimit, type HandlerContext } from '../../services/dns/handler.js';
import { FastAnswers, fastReply, scanQuery, type FastQuery } from '../../services/dns/fast.js';
import { buildZoneSet } from '../../services/dns/zone.js';
import { seedFromEnv } from '../support/seeded.js';

// Fuzzing of the DNS decoder and of the whole request handler: random bytes and mutated real
// queries must never throw, never take long, and never produce a reply larger than the source may
// receive (512 bytes without EDNS, the OPT's size capped at 1232 with it).

const zones = buildZoneSet({
  zones: [{ name: 'lan', ttl: 60_000, negativeTtl: 30_000, records: ['www A 10.0.0.1', 'c CNAME www', ...Array.from({ length: 30 }, (_, i) => `big TXT "${'x'.repeat(100)}${i}"`)], leases: false }],
  reverseSubnets: [parseCidr('10.0.0.0/24')!], leaseNames: [], operatorRecords: [], serial: 1,
});
const seed = seedFromEnv(4242);

function seedQuery(name: string, type: number, edns: number | null): Uint8Array {
  const m = emptyMessage(1);
  m.questions = [{ name, type, class: 1 }];
  if (edns !== null) m.edns = { udpSize: edns, extendedRcode: 0, version: 0, dnssecOk: false, options: [{ code: 10, data: new Uint8Array(8) }] };
  return encodeMessage(m).bytes;
}

const base = [seedQuery('www.lan', T.A, null), seedQuery('big.lan', T.TXT, 1232), seedQuery('c.lan', T.A, 600), seedQuery('x.example', T.A, null)];
const mutated = fc.tuple(fc.constantFrom(...base), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }), fc.nat({ max: 40 }), fc.boolean())
  .map(([b, flips, cut, shorten]) => {
    const out = Uint8Array.from(b);
    for (const [at, v] of flips) out[at % out.length] = v;
    return shorten ? out.subarray(0, Math.max(0, out.length - cut)) : out;
  });
const packet = fc.oneof(fc.uint8Array({ maxLength: 600 }), mutated);

let slowest = 0;
function timed<T>(f: () => T): T {
  const s = performance.now();
  const r = f();
  slowest = Math.max(slowest, performance.now() - s);
  return r;
}

t.test('decoder never throws', async (t) => {
  fc.assert(fc.property(packet, (p) => { timed(() => decodeMessage(p)); return true; }), { seed, numRuns: 3000 });
  t.pass(`3000 packets, seed ${seed}`);
});

t.test('handler: no throw, replies within the size the source may receive', async (t) => {
  for (const transport of ['udp', 'tcp'] as const) {
    const ctx: HandlerContext = { zones, nodeName: 'fuzz', forwardAllowed: false, transport };
    fc.assert(fc.property(packet, (p) => {
      const d = timed(() => handleQuery(p, ctx));
      if (d.kind !== 'reply') return true;
      const q = decodeMessage(p);
      const limit = replyLimit(q.ok ? q.value : null, transport);
      return d.bytes.length <= limit && decodeMessage(d.bytes).ok;
    }), { seed, numRuns: 3000 });
  }
  t.pass(`seed ${seed}`);
});

t.test('fast path: no throw on hostile bytes, replies within limit', async (t) => {
  const fast = new FastAnswers();
  const fq: FastQuery = { qEnd: 0, ednsLimit: 0, hash: 0 };
  const ctx: HandlerContext = { zones, nodeName: 'fuzz', forwardAllowed: false, transport: 'udp' };
  fc.assert(fc.property(packet, (p) => {
    const b = Buffer.from(p);
    if (!timed(() => scanQuery(b, fq))) return true;
    const slow = handleQuery(b, ctx);
    if (slow.kind === 'reply' && slow.cacheable !== undefined && fast.get(b, fq) === null) {
      fast.add(b, fq, prebuiltAnswer(slow.cacheable.query, slow.cacheable.answer), slow.rcode);
    }
    const e = fast.get(b, fq);
    if (e === null) return true;
    const r = fastReply(b, fq, e, false, false);
    return r.length <= (fq.ednsLimit || 512) && decodeMessage(r).ok;
  }), { seed, numRuns: 3000 });
  t.ok(fast.size > 0, `${fast.size} prebuilt answers exercised`);
  // Timing is not asserted (a shared machine can pause any process for seconds; speed is bench:dns):
  // the codec is linear by construction (backward-only pointers, bounded names). Reported only.
  t.comment(`slowest single call ${slowest.toFixed(2)} ms`);
});
