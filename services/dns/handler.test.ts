import t from 'tap';
import fc from 'fast-check';
import { readHexFile } from '../../test/support/hex.js';
import { repoPath } from '../../test/support/paths.js';
import { parseCidr } from '../../lib/ipv4.js';
import { FastAnswers, fastReply, fastReplyInto, fastReplySize, scanQuery, type FastQuery } from './fast.js';
import { forwardedReply, handleQuery, prebuiltAnswer, type HandlerContext } from './handler.js';
import { formatRdata } from './rdata.js';
import { CLASS_CH, RCODE, T, decodeMessage, emptyMessage, encodeMessage, type DnsMessage } from './wire.js';
import { buildZoneSet } from './zone.js';

const bigTxt = Array.from({ length: 12 }, (_, i) => `big TXT "${String.fromCharCode(97 + i).repeat(200)}"`);
const zones = buildZoneSet({
  zones: [{ name: 'e2e.lan', ttl: 600_000, negativeTtl: 600_000, primary: 'srv.e2e.lan', records: ['srv A 10.97.0.1', 'srv AAAA fd97::1', 'static1 A 10.97.0.50', ...bigTxt, 'mid TXT "' + 'm'.repeat(250) + '" "' + 'n'.repeat(250) + '"'], leases: true }],
  reverseSubnets: [parseCidr('10.97.0.0/24')!], leaseNames: [], operatorRecords: [], serial: 9,
});
const ctx: HandlerContext = { zones, nodeName: 'lan-a', forwardAllowed: false, transport: 'udp' };

function query(name: string, type: number, opts: { edns?: number; nsid?: boolean; id?: number; klass?: number; version?: number; dnssecOk?: boolean } = {}): Uint8Array {
  const m = emptyMessage(opts.id ?? 0x1234);
  m.rd = true;
  m.questions = [{ name, type, class: opts.klass ?? 1 }];
  if (opts.edns !== undefined) m.edns = { udpSize: opts.edns, extendedRcode: 0, version: opts.version ?? 0, dnssecOk: opts.dnssecOk ?? false, options: opts.nsid ? [{ code: 3, data: new Uint8Array(0) }] : [] };
  return encodeMessage(m).bytes;
}

function reply(bytes: Uint8Array, c: HandlerContext = ctx): DnsMessage {
  const d = handleQuery(bytes, c);
  if (d.kind !== 'reply') throw new Error(`expected a reply, got ${d.kind}`);
  const m = decodeMessage(d.bytes);
  if (!m.ok) throw new Error(`undecodable reply ${m.error.code}`);
  return m.value;
}

t.test('header gate: no reply, FORMERR, NOTIMP', async (t) => {
  t.equal(handleQuery(new Uint8Array(5), ctx).kind, 'drop', 'short header: silence');
  const resp = query('srv.e2e.lan', T.A);
  resp[2] = resp[2]! | 0x80;
  t.equal(handleQuery(resp, ctx).kind, 'drop', 'a response is never answered');
  const notify = query('e2e.lan', T.SOA);
  notify[2] = (notify[2]! & 0x87) | (4 << 3);
  const n = reply(notify);
  t.equal(n.rcode, RCODE.NOTIMP);
  t.equal(n.opcode, 4, 'opcode echoed');
  const two = query('srv.e2e.lan', T.A);
  two[5] = 2;
  t.equal(reply(two).rcode, RCODE.FORMERR, 'QDCOUNT 2 refused before decoding');
  const cut = query('srv.e2e.lan', T.A).subarray(0, 20);
  t.equal(reply(cut).rcode, RCODE.FORMERR, 'header fine, body broken: FORMERR');
});

t.test('authoritative answers with AA, EDNS echo, NSID, BADVERS, CH id.server, REFUSED', async (t) => {
  const a = reply(query('SRV.e2e.LAN', T.A, { edns: 4096 }));
  t.ok(a.aa && a.qr && a.rd && !a.ra);
  t.equal(a.questions[0]!.name, 'SRV.e2e.LAN', 'question case echoed');
  t.equal(a.answers[0]!.name, 'SRV.e2e.LAN');
  t.equal(a.edns?.udpSize, 1232, 'we advertise 1232');
  t.equal(a.edns?.dnssecOk, false, 'no DO asked, none in the reply');
  t.equal(reply(query('srv.e2e.lan', T.A, { edns: 1232, dnssecOk: true })).edns?.dnssecOk, true, 'DO copied into the reply (RFC 3225 §3)');
  t.equal(reply(query('nope.e2e.lan', T.A, { edns: 1232, dnssecOk: true, nsid: true })).edns?.dnssecOk, true, 'DO copied on the decoding path too (NXDOMAIN with NSID)');
  const nsid = reply(query('srv.e2e.lan', T.A, { edns: 1232, nsid: true }));
  t.equal(Buffer.from(nsid.edns!.options.find((o) => o.code === 3)!.data).toString(), 'lan-a', 'NSID carries the node name');
  const bad = reply(query('srv.e2e.lan', T.A, { edns: 1232, version: 1 }));
  t.equal(bad.rcode, RCODE.BADVERS, 'EDNS version 1 -> BADVERS');
  t.equal(bad.answers.length, 0);
  const id = reply(query('id.server', T.TXT, { klass: CLASS_CH }));
  t.equal(formatRdata(T.TXT, id.answers[0]!.rdata), '"lan-a"');
  const out = reply(query('example.com', T.A));
  t.equal(out.rcode, RCODE.REFUSED, 'not ours and no forwarding: REFUSED');
  t.notOk(out.aa);
  t.equal(reply(query('e2e.lan', T.AXFR)).rcode, RCODE.REFUSED, 'no zone transfer to a source outside transfer.allow');
  const fwd = handleQuery(query('example.com', T.A), { ...ctx, forwardAllowed: true });
  t.equal(fwd.kind, 'forward');
  t.equal(reply(query('1.0.97.10.in-addr.arpa', T.PTR)).answers.length, 1);
});

t.test('a CNAME chain leaving our zones: forwarded to its end for askers that may forward, with our records first', async (t) => {
  const cnames = buildZoneSet({
    zones: [{ name: 'lan', ttl: 600_000, negativeTtl: 60_000, primary: 'ns1.lan', records: ['ns1 A 10.0.0.1', 'cdn CNAME www.example.com.', 'hop CNAME cdn'], leases: false }],
    reverseSubnets: [], leaseNames: [], operatorRecords: [], serial: 1,
  });
  const lan: HandlerContext = { zones: cnames, nodeName: 'lan-a', forwardAllowed: true, transport: 'udp' };
  const d = handleQuery(query('HoP.lan', T.AAAA), lan);
  if (d.kind !== 'forward') { t.fail(`expected forward, got ${d.kind}`); return; }
  t.same(d.question, { name: 'www.example.com', type: T.AAAA, class: 1 }, 'the chain\'s end is forwarded, with the type asked');
  t.same(d.chain?.map((r) => [r.name, r.type, formatRdata(r.type, r.rdata)]), [['HoP.lan', T.CNAME, 'cdn.lan.'], ['cdn.lan', T.CNAME, 'www.example.com.']], 'both CNAMEs of ours, the first under the name asked');
  t.equal(d.query.questions[0]!.name, 'HoP.lan', 'the asker\'s query kept for the reply');
  const upstream = [{ name: 'www.example.com', type: T.AAAA, class: 1, ttl: 300, rdata: Uint8Array.from([0x20, 1, 0xd, 0xb8, ...Array(11).fill(0), 1]) }];
  const m = decodeMessage(forwardedReply(d.query, { nodeName: 'lan-a', transport: 'udp' }, RCODE.NOERROR, upstream, [], [], d.chain));
  if (!m.ok) { t.fail('undecodable'); return; }
  t.same(m.value.answers.map((r) => [r.name, formatRdata(r.type, r.rdata)]), [['HoP.lan', 'cdn.lan.'], ['cdn.lan', 'www.example.com.'], ['www.example.com', '2001:db8::1']], 'the reply: our chain, then the upstream\'s answer');
  t.equal(m.value.questions[0]!.name, 'HoP.lan', 'under the question asked');
  t.ok(m.value.ra && !m.value.aa, 'RA, not authoritative (part of it came from upstream)');
  const outsider = handleQuery(query('cdn.lan', T.A), { ...lan, forwardAllowed: false });
  if (outsider.kind !== 'reply') { t.fail(`expected a reply, got ${outsider.kind}`); return; }
  t.equal(outsider.cacheable, undefined, 'the CNAME alone, for a source that may not forward, is never prebuilt (a LAN asker would get it from the table)');
  const o = decodeMessage(outsider.bytes);
  t.same(o.ok ? o.value.answers.map((r) => r.type) : null, [T.CNAME], 'a source that may not forward gets our CNAME alone');
  t.equal(handleQuery(query('cdn.lan', T.CNAME), lan).kind, 'reply', 'the CNAME asked for itself is ours to answer');
});

t.test('zone transfer (RFC 5936): SOA first and last, every record once, split into messages, question in the first only', async (t) => {
  const many = buildZoneSet({
    zones: [{ name: 'big.lan', ttl: 600_000, negativeTtl: 60_000, primary: 'ns.big.lan', leases: false,
      records: ['ns A 10.1.0.1', ...Array.from({ length: 2000 }, (_, i) => `host${i} A 10.1.${i >> 8}.${i & 255}`)] }],
    reverseSubnets: [], leaseNames: [], operatorRecords: [], serial: 77,
  });
  const tcp: HandlerContext = { zones: many, nodeName: 'lan-a', forwardAllowed: false, transferAllowed: true, transport: 'tcp' };
  const d = handleQuery(query('BIG.lan', T.AXFR, { id: 4321 }), tcp);
  if (d.kind !== 'transfer') throw new Error(`expected a transfer, got ${d.kind}`);
  t.ok(d.messages.length > 1, `${d.messages.length} messages`);
  const msgs = d.messages.map((b) => { const m = decodeMessage(b); if (!m.ok) throw new Error(m.error.code); return m.value; });
  t.ok(msgs.every((m) => m.id === 4321 && m.qr && m.aa && m.rcode === RCODE.NOERROR), 'each message: our ID, QR, AA, NOERROR');
  t.ok(d.messages.every((b) => b.length <= 65535), 'each message fits a TCP frame');
  t.same(msgs.map((m) => m.questions.length), [1, ...msgs.slice(1).map(() => 0)], 'the question in the first message only');
  const records = msgs.flatMap((m) => m.answers);
  t.equal(records.length, d.records);
  t.equal(records[0]!.type, T.SOA, 'SOA first');
  t.equal(records.at(-1)!.type, T.SOA, 'SOA last');
  t.equal(records.filter((r) => r.type === T.SOA).length, 2, 'no other SOA');
  const listed = many.list().filter((r) => r.zone === 'big.lan');
  t.equal(records.length, listed.length + 1, 'every record of the zone, as lanctl records lists it');
  t.equal(new Set(records.slice(1, -1).map((r) => `${r.name}/${r.type}/${formatRdata(r.type, r.rdata)}`)).size, records.length - 2, 'each once');
  t.equal(handleQuery(query('big.lan', T.IXFR), tcp).kind, 'transfer', 'IXFR over TCP: the whole zone (no history kept)');

  const udp = { ...tcp, transport: 'udp' as const };
  const ixfr = reply(query('big.lan', T.IXFR), udp);
  t.same(ixfr.answers.map((r) => r.type), [T.SOA], 'IXFR over UDP: the SOA alone, the secondary comes over TCP');
  t.equal(reply(query('big.lan', T.AXFR), udp).rcode, RCODE.REFUSED, 'AXFR over UDP: refused (TCP only)');
  t.equal(reply(query('host1.big.lan', T.AXFR), tcp).rcode, RCODE.NOTAUTH, 'not a zone apex of ours: NOTAUTH');
  t.equal(reply(query('example.com', T.AXFR), tcp).rcode, RCODE.NOTAUTH);
  t.equal(reply(query('big.lan', T.AXFR), { ...tcp, transferAllowed: false }).rcode, RCODE.REFUSED, 'source not allowed: REFUSED');
});

t.test('truncation: over the asker\'s limit -> TC=1 with OPT kept; TCP gets it whole', async (t) => {
  const plain = reply(query('big.e2e.lan', T.TXT));
  t.ok(plain.tc, 'no EDNS: 512 limit');
  t.equal(plain.answers.length, 0);
  const edns = reply(query('big.e2e.lan', T.TXT, { edns: 4096 }));
  t.ok(edns.tc, 'over 1232 even with a larger advertised size');
  t.ok(edns.edns !== null, 'OPT kept in the truncated answer');
  const mid = reply(query('mid.e2e.lan', T.TXT, { edns: 1232 }));
  t.notOk(mid.tc, '~550 bytes fit the EDNS limit');
  t.ok(reply(query('mid.e2e.lan', T.TXT)).tc, 'but not 512');
  const tcp = reply(query('big.e2e.lan', T.TXT), { ...ctx, transport: 'tcp' });
  t.notOk(tcp.tc);
  t.equal(tcp.answers.length, 12);
});

t.test('golden: the capture\'s dig queries get the answers dnsmasq gave (our TTLs and AA aside)', async (t) => {
  const packets = readHexFile(repoPath('test', 'golden', 'dns', 'capture.hex'));
  const byId = new Map<number, DnsMessage>();
  for (const p of packets) { const d = decodeMessage(p); if (d.ok && d.value.qr) byId.set(d.value.id, d.value); }
  let compared = 0;
  for (const p of packets) {
    const d = decodeMessage(p);
    if (!d.ok || d.value.qr) continue;
    const theirs = byId.get(d.value.id);
    if (theirs === undefined) continue;
    const ours = reply(p);
    t.equal(ours.id, d.value.id);
    t.equal(ours.rcode, theirs.rcode, `rcode for ${d.value.questions[0]!.name}`);
    // SOA contents (serial, timers) are each server's own; compare the rest by value.
    const show = (m: DnsMessage): string[] => m.answers.map((r) => (r.type === T.SOA ? 'SOA' : formatRdata(r.type, r.rdata)));
    t.same(show(ours), show(theirs), `answers for ${d.value.questions[0]!.name}`);
    t.ok(ours.edns !== null, 'EDNS echoed to dig');
    compared++;
  }
  t.ok(compared >= 5, `${compared} query/answer pairs compared`);
});

t.test('property: the fast path gives the same bytes as the slow path', async (t) => {
  const fast = new FastAnswers();
  const fq: FastQuery = { qEnd: 0, ednsLimit: 0, hash: 0 };
  const names = ['srv.e2e.lan', 'SRV.E2E.lan', 'static1.e2e.lan', 'nope.e2e.lan', 'big.e2e.lan', 'mid.e2e.lan', 'e2e.lan', '50.0.97.10.in-addr.arpa'];
  fc.assert(fc.property(fc.constantFrom(...names), fc.constantFrom(T.A, T.AAAA, T.TXT, T.SOA, T.PTR, T.NS), fc.option(fc.constantFrom(512, 1232, 4096, 100), { nil: undefined }), fc.integer({ min: 0, max: 65535 }), fc.constantFrom<'udp' | 'tcp'>('udp', 'tcp'), fc.boolean(), (name, type, edns, id, transport, dnssecOk) => {
    const q = Buffer.from(query(name, type, edns === undefined ? { id } : { id, edns, dnssecOk }));
    const slow = handleQuery(q, { ...ctx, transport });
    if (slow.kind !== 'reply') return false;
    if (!scanQuery(q, fq)) return false;
    let e = fast.get(q, fq);
    if (e === null && slow.cacheable !== undefined) {
      fast.add(q, fq, prebuiltAnswer(slow.cacheable.query, slow.cacheable.answer), slow.rcode);
      e = fast.get(q, fq);
    }
    if (e === null) return false;
    const quick = fastReply(q, fq, e, false, transport === 'tcp');
    return Buffer.compare(quick, Buffer.from(slow.bytes)) === 0;
  }), { numRuns: 400 });
  t.ok(fast.size > 0);
});

t.test('property: replies written one after another into one reused area are each the slow path\'s bytes', async (t) => {
  // The UDP path writes every reply into the same scratch area (lib/udp-direct.ts DatagramSender):
  // whatever the previous reply left there, every byte of the next must be its own.
  const fast = new FastAnswers();
  const fq: FastQuery = { qEnd: 0, ednsLimit: 0, hash: 0 };
  const area = Buffer.alloc(4096, 0xa5);
  const names = ['srv.e2e.lan', 'SRV.E2E.lan', 'static1.e2e.lan', 'nope.e2e.lan', 'big.e2e.lan', 'mid.e2e.lan', 'e2e.lan', '50.0.97.10.in-addr.arpa'];
  const ask = fc.tuple(fc.constantFrom(...names), fc.constantFrom(T.A, T.AAAA, T.TXT, T.SOA, T.PTR, T.NS), fc.option(fc.constantFrom(512, 1232, 4096, 100), { nil: undefined }), fc.integer({ min: 0, max: 65535 }), fc.boolean(), fc.boolean());
  let written = 0;
  fc.assert(fc.property(fc.array(ask, { minLength: 1, maxLength: 8 }), (asks) => {
    for (const [name, type, edns, id, rd, dnssecOk] of asks) {
      const q = Buffer.from(query(name, type, edns === undefined ? { id } : { id, edns, dnssecOk }));
      if (!rd) q[2] = q[2]! & ~0x01;
      const slow = handleQuery(q, { ...ctx, transport: 'udp' });
      if (slow.kind !== 'reply' || !scanQuery(q, fq)) return false;
      let e = fast.get(q, fq);
      if (e === null && slow.cacheable !== undefined) {
        fast.add(q, fq, prebuiltAnswer(slow.cacheable.query, slow.cacheable.answer), slow.rcode);
        e = fast.get(q, fq);
      }
      if (e === null) return false;
      const out = area.subarray(0, fastReplySize(fq, e, false));
      fastReplyInto(out, q, fq, e, false, false);
      written++;
      if (Buffer.compare(out, Buffer.from(slow.bytes)) !== 0) return false;
    }
    return true;
  }), { numRuns: 300 });
  t.ok(written > 300, `${written} replies written into the area`);
});

t.test('fast path refuses what it cannot answer verbatim', async (t) => {
  const fq: FastQuery = { qEnd: 0, ednsLimit: 0, hash: 0 };
  t.notOk(scanQuery(Buffer.from(query('srv.e2e.lan', T.A, { edns: 1232, nsid: true })), fq), 'NSID needs the slow path');
  t.notOk(scanQuery(Buffer.from(query('srv.e2e.lan', T.A, { edns: 1232, version: 1 })), fq), 'EDNS version 1');
  const withTrailing = Buffer.concat([Buffer.from(query('srv.e2e.lan', T.A)), Buffer.of(0)]);
  t.notOk(scanQuery(withTrailing, fq), 'trailing bytes');
  const resp = Buffer.from(query('srv.e2e.lan', T.A));
  resp[2] = resp[2]! | 0x80;
  t.notOk(scanQuery(resp, fq), 'responses');
  t.ok(scanQuery(Buffer.from(readHexFile(repoPath('test', 'golden', 'dns', 'capture.hex'))[0]!), fq), 'dig query with a COOKIE option is fine');
  t.equal(fq.ednsLimit, 1232);
});

t.test('golden: kdig and glibc queries (captured in a lab) take the right path and get the right answer', async (t) => {
  const [kdig, kdigNsid, glibc] = readHexFile(repoPath('test', 'golden', 'dns', 'clients.hex'));
  const zonesLan = buildZoneSet({ zones: [{ name: 'lan', ttl: 60_000, negativeTtl: 30_000, records: ['www A 10.0.0.80'], leases: false }], reverseSubnets: [], leaseNames: [], operatorRecords: [], serial: 3 });
  const c: HandlerContext = { zones: zonesLan, nodeName: 'lan-b', forwardAllowed: false, transport: 'udp' };
  const fq: FastQuery = { qEnd: 0, ednsLimit: 0, hash: 0 };
  for (const [name, p] of [['kdig', kdig!], ['glibc', glibc!]] as const) {
    t.ok(scanQuery(Buffer.from(p), fq), `${name} query fits the fast path`);
    t.equal(fq.ednsLimit, 0, `${name}: no EDNS`);
    const r = reply(p, c);
    t.equal(r.id, decodeMessage(p).ok ? (p[0]! << 8) | p[1]! : -1);
    t.same(r.answers.map((x) => formatRdata(x.type, x.rdata)), ['10.0.0.80'], `${name} gets the A record`);
    t.equal(r.edns, null, `${name}: no OPT in the reply to a query without one`);
  }
  t.notOk(scanQuery(Buffer.from(kdigNsid!), fq), 'NSID query takes the slow path');
  const n = reply(kdigNsid!, c);
  t.equal(n.answers[0]?.type, T.SOA);
  t.equal(Buffer.from(n.edns!.options[0]!.data).toString(), 'lan-b');
  t.equal(n.edns!.udpSize, 1232, 'kdig offered 4096; we say 1232');
});
