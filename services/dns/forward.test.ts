import t from 'tap';
import dgram from 'node:dgram';
import { Counters } from '../../lib/counters.js';
import { systemClock } from '../../lib/clock.js';
import { seededRandom } from '../../lib/random.js';
import { ForwardCache, wireOf } from './cache.js';
import { Forwarder, checkReply, forwardWith, inFlightShares, queryBytes, queryInto } from './forward.js';
import type { ReplySink } from './fast-send.js';
import { forwardedReply } from './handler.js';
import { rcodeReply, scanQuery, type FastQuery } from './fast.js';
import { encodeName } from './name.js';
import { answerA } from '../../test/support/dns-upstream.js';
import { CLASS_IN, RCODE, T, decodeMessage, emptyMessage, encodeMessage, scanMessage, type DnsRecord } from './wire.js';

// The forwarder against a real loopback upstream: while the process is backlogged (`busy`), a new
// miss gets SERVFAIL at once and nothing goes upstream, but a question already in flight is still
// joined; once not busy, misses go upstream and are cached. And the hand-built upstream query
// decodes as the encoder's would.

t.test('busy: new misses SERVFAIL at once and are counted; questions in flight are joined; not busy again: asked and cached', async (t) => {
  const up = dgram.createSocket('udp4');
  const asked: string[] = [];
  let hold: Array<() => void> | null = [];
  up.on('message', (msg, rinfo) => {
    const d = decodeMessage(msg);
    if (!d.ok) return;
    const q = d.value.questions[0]!;
    asked.push(q.name);
    const r = emptyMessage(d.value.id);
    r.qr = true; r.ra = true; r.rd = true;
    r.questions = [q];
    r.answers = [{ name: q.name, type: T.A, class: CLASS_IN, ttl: 60, rdata: Uint8Array.of(192, 0, 2, 1) }];
    const send = (): void => up.send(encodeMessage(r).bytes, rinfo.port, rinfo.address);
    if (hold !== null) hold.push(send); else send();
  });
  await new Promise<void>((r) => up.bind(0, '127.0.0.1', () => r()));
  const counters = new Counters();
  let busy = false;
  const f = new Forwarder({
    upstreams: [{ address: '127.0.0.1', port: up.address().port }], timeoutMs: 2000, cache: new ForwardCache({ entries: 100, bytes: 1 << 20 }),
    clock: systemClock, random: seededRandom(1), counters, maxInFlight: 10, busy: () => busy,
  });
  const q = (name: string) => ({ name, type: T.A, class: CLASS_IN });
  const first = f.resolve(q('joined.example'));
  t.ok(first instanceof Promise, 'not busy: asked upstream');
  await new Promise((r) => setTimeout(r, 50));
  busy = true;
  const shed = f.resolve(q('new.example'));
  t.notOk(shed instanceof Promise, 'busy: answered at once');
  t.equal((shed as { rcode: number }).rcode, RCODE.SERVFAIL);
  t.equal(counters.get('dns.forward.busy'), 1);
  const joined = f.resolve(q('JOINED.example'));
  t.ok(joined instanceof Promise, 'busy, but the same question is in flight: joined');
  const release = hold!;
  hold = null;
  for (const send of release) send();
  const [a, b] = await Promise.all([first, joined]);
  t.same([a.rcode, b.rcode, a.answers.length, b.answers.length], [0, 0, 1, 1], 'both askers get the one upstream answer');
  t.ok(a.entry !== null, 'and it was cached');
  busy = false;
  const later = await f.resolve(q('new.example'));
  t.equal(later.rcode, 0, 'not busy again: asked upstream');
  t.same(asked.map((n) => n.toLowerCase()), ['joined.example', 'new.example'], 'nothing went upstream while busy');
  t.equal(counters.get('dns.forward.upstream_replies'), 2, 'two upstream replies timed');
  t.ok(counters.get('dns.forward.upstream_wait_us') >= 50_000, `their wait summed in us, the held one's 50 ms included (${counters.get('dns.forward.upstream_wait_us')})`);
  f.close();
  up.close();
});

t.test('an upstream whose every send fails at once: the asker gets SERVFAIL, nothing stays in flight, the next miss is asked again', async (t) => {
  const counters = new Counters();
  const f = new Forwarder({
    // Port 0: dgram's send throws before anything leaves (the send-failed path, without a network).
    upstreams: [{ address: '127.0.0.1', port: 0 }], timeoutMs: 2000, cache: new ForwardCache({ entries: 100, bytes: 1 << 20 }),
    clock: systemClock, random: seededRandom(2), counters, maxInFlight: 1,
  });
  t.teardown(() => f.close());
  const q = { name: 'fails.example', type: T.A, class: CLASS_IN };
  for (const round of [1, 2]) {
    const answer = await f.resolve(q);
    t.equal(answer.rcode, RCODE.SERVFAIL, `round ${round}: SERVFAIL`);
    t.equal(f.inFlight, 0, `round ${round}: no asker left waiting (maxInFlight 1 still admits the next)`);
  }
  t.equal(counters.get('dns.forward.upstream_query'), 4, 'two attempts per miss, both misses asked');
  t.equal(counters.get('dns.forward.servfail'), 2);
  t.equal(counters.get('dns.forward.overload'), 0, 'never refused as overloaded');
});

t.test('checkReply: our ID, QR and question (any case; by bytes or by name), a message the decoder accepts', async (t) => {
  const reply = (id: number, name: string, type: number = T.A, qr = true): Uint8Array => {
    const m = emptyMessage(id);
    m.qr = qr;
    m.questions = [{ name, type, class: CLASS_IN }];
    m.answers = [{ name, type: T.A, class: CLASS_IN, ttl: 60, rdata: Uint8Array.of(192, 0, 2, 1) }];
    return encodeMessage(m).bytes;
  };
  const q = { name: 'www.Example', type: T.A, class: CLASS_IN };
  const sent = new Uint8Array([...encodeName('www.Example'), 0, T.A, 0, CLASS_IN]);
  for (const question of [sent, null]) {
    const how = question === null ? 'by name' : 'by bytes';
    t.same(checkReply(reply(7, 'WWW.example'), 7, q, question)?.rcode, 0, `${how}: another case is our question`);
    t.equal(checkReply(reply(8, 'www.example'), 7, q, question), null, `${how}: another ID`);
    t.equal(checkReply(reply(7, 'www.example', T.A, false), 7, q, question), null, `${how}: not a response`);
    t.equal(checkReply(reply(7, 'ww.example'), 7, q, question), null, `${how}: another name`);
    t.equal(checkReply(reply(7, 'www.example', T.AAAA), 7, q, question), null, `${how}: another type`);
    const broken = reply(7, 'www.example');
    t.equal(checkReply(broken.subarray(0, broken.length - 1), 7, q, question), null, `${how}: a message the decoder refuses`);
    t.equal(scanMessage(broken.subarray(0, broken.length - 1)), null);
  }
});

t.test('queryBytes: the hand-built upstream query is what the encoder makes', async (t) => {
  const question = new Uint8Array([...encodeName('Www.Example'), 0, T.AAAA, 0, CLASS_IN]);
  const d = decodeMessage(queryBytes(0x1234, question));
  t.ok(d.ok);
  if (!d.ok) return;
  t.same([d.value.id, d.value.rd, d.value.qr, d.value.questions, d.value.edns?.udpSize, d.value.answers.length], [0x1234, true, false, [{ name: 'Www.Example', type: T.AAAA, class: CLASS_IN }], 1232, 0]);
  // Written into a reused buffer (the upstream socket's scratch area) from a query's question: every byte.
  const query = Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, ...question, 0xee]);
  const dirty = new Uint8Array(12 + question.length + 11).fill(0xab);
  queryInto(dirty, 0x1234, query, 12, 12 + question.length);
  t.same(Buffer.from(dirty), Buffer.from(queryBytes(0x1234, question)), 'queryInto over old bytes: the same query');
});

t.test('rcodeReply: the SERVFAIL made from the query\'s bytes decodes as the encoded one', async (t) => {
  for (const [edns, dnssecOk] of [[false, false], [true, false], [true, true]]) {
    for (const rd of [false, true]) {
      const m = emptyMessage(0xabcd);
      m.rd = rd;
      m.questions = [{ name: 'Odd.Case.example', type: T.MX, class: CLASS_IN }];
      if (edns) m.edns = { udpSize: 4096, extendedRcode: 0, version: 0, dnssecOk: dnssecOk!, options: [] };
      const msg = Buffer.from(encodeMessage(m).bytes);
      const fq: FastQuery = { qEnd: 0, ednsLimit: 0, hash: 0 };
      t.ok(scanQuery(msg, fq));
      const quick = decodeMessage(rcodeReply(msg, fq, RCODE.SERVFAIL, true));
      const slow = decodeMessage(forwardedReply(m, { nodeName: 'n', transport: 'udp' }, RCODE.SERVFAIL, [], [], []));
      t.ok(quick.ok && slow.ok);
      if (quick.ok && slow.ok) t.same(quick.value, slow.value, `edns ${edns}, DO ${dnssecOk}, rd ${rd}`);
      if (quick.ok) t.equal(quick.value.edns?.dnssecOk ?? false, dnssecOk, 'DO as asked (RFC 3225 §3)');
    }
  }
});

t.test('crafted upstream replies with CNAME chains: a negative answer lives min(SOA TTL, SOA MINIMUM, every CNAME TTL), its SOA served with that; a positive one min over the chain', async (t) => {
  const up = dgram.createSocket('udp4');
  const soa = (zone: string, ttl: number, minimum: number) => ({
    name: zone, type: T.SOA, class: CLASS_IN, ttl,
    rdata: Uint8Array.from([...encodeName(`ns.${zone}`), ...encodeName(`admin.${zone}`), ...new Uint8Array(16), 0, 0, minimum >> 8, minimum & 0xff]),
  });
  const cname = (owner: string, target: string, ttl: number) => ({ name: owner, type: T.CNAME, class: CLASS_IN, ttl, rdata: encodeName(target) });
  // name -> [rcode, answers, authority]
  const replies: Record<string, [number, DnsRecord[], DnsRecord[]]> = {
    'nx.example': [RCODE.NXDOMAIN, [cname('nx.example', 'mid.example', 3600), cname('mid.example', 'gone.other', 20)], [soa('other', 600, 300)]],
    'nodata.example': [RCODE.NOERROR, [cname('nodata.example', 'v4only.other', 86_400)], [soa('other', 600, 45)]],
    'soattl.example': [RCODE.NXDOMAIN, [cname('soattl.example', 'gone.other', 900)], [soa('other', 10, 300)]],
    'pos.example': [RCODE.NOERROR, [cname('pos.example', 'host.other', 15), { name: 'host.other', type: T.A, class: CLASS_IN, ttl: 300, rdata: Uint8Array.of(192, 0, 2, 7) }], []],
    'nosoa.example': [RCODE.NOERROR, [cname('nosoa.example', 'v4only.other', 600)], []],
  };
  up.on('message', (msg, rinfo) => {
    const d = decodeMessage(msg);
    if (!d.ok) return;
    const q = d.value.questions[0]!;
    const [rcode, answers, authority] = replies[q.name.toLowerCase()]!;
    const r = emptyMessage(d.value.id);
    r.qr = true; r.ra = true; r.rd = true; r.rcode = rcode;
    r.questions = [q];
    r.answers = answers;
    r.authority = authority;
    up.send(encodeMessage(r).bytes, rinfo.port, rinfo.address);
  });
  await new Promise<void>((r) => up.bind(0, '127.0.0.1', () => r()));
  const f = new Forwarder({
    upstreams: [{ address: '127.0.0.1', port: up.address().port }], timeoutMs: 2000, cache: new ForwardCache({ entries: 100, bytes: 1 << 20 }),
    clock: systemClock, random: seededRandom(1), counters: new Counters(), maxInFlight: 10, busy: () => false,
  });
  t.teardown(() => { f.close(); up.close(); });
  const cases: Array<[string, number, number | null, string]> = [
    ['nx.example', T.A, 20, 'NXDOMAIN after a chain: the shortest CNAME (20 s) under SOA 600 / MINIMUM 300'],
    ['nodata.example', T.AAAA, 45, 'NODATA at the end of a chain (CNAME 86,400 s): the SOA MINIMUM, not a day'],
    ['soattl.example', T.A, 10, 'the SOA\'s own TTL when it is the smallest'],
    ['pos.example', T.A, 15, 'positive: the CNAME\'s 15 s, not the A record\'s 300'],
    ['nosoa.example', T.AAAA, null, 'a chain to no record of the type, without a SOA: negative, not cached'],
  ];
  for (const [name, type, ttl, what] of cases) {
    const got = await f.resolve({ name, type, class: CLASS_IN });
    if (ttl === null) { t.equal(got.entry, null, what); continue; }
    t.ok(got.entry !== null, `${what}: cached`);
    if (got.entry === null) continue;
    t.equal(Math.round(got.entry.expiresAt - got.entry.storedAt), ttl * 1000, what); // monotonic ms are fractional
    const served = decodeMessage(wireOf(got.entry).body);
    if (!served.ok) { t.fail('the stored answer decodes'); continue; }
    const soaTtl = served.value.authority.find((r) => r.type === T.SOA)?.ttl;
    if (name !== 'pos.example') t.equal(soaTtl, ttl, `${name}: the SOA is served with the negative TTL`);
  }
});

t.test('every UDP attempt waits on one deadline list and one timer: a silent upstream times all out, an answering one leaves none waiting', async (t) => {
  const silent = dgram.createSocket('udp4');
  const answering = dgram.createSocket('udp4');
  let heard = 0;
  silent.on('message', () => { heard++; });
  answering.on('message', (msg, rinfo) => {
    const r = answerA(msg, 60, [192, 0, 2, 1]);
    if (r !== null) answering.send(r, rinfo.port, rinfo.address);
  });
  await new Promise<void>((r) => silent.bind(0, '127.0.0.1', () => r()));
  await new Promise<void>((r) => answering.bind(0, '127.0.0.1', () => r()));
  const counters = new Counters();
  const f = new Forwarder({
    upstreams: [{ address: '127.0.0.1', port: silent.address().port }], timeoutMs: 2000, cache: new ForwardCache({ entries: 100, bytes: 1 << 20 }),
    domains: [{ name: 'answered.example', upstreams: [{ address: '127.0.0.1', port: answering.address().port }] }],
    clock: systemClock, random: seededRandom(3), counters, maxInFlight: 100,
  });
  t.teardown(() => { f.close(); silent.close(); answering.close(); });
  const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
  const before = timers();
  const asked = Array.from({ length: 30 }, (_, i) => f.resolve({ name: `q${i}.silent.example`, type: T.A, class: CLASS_IN }));
  t.equal(f.attemptsWaiting, 30, '30 attempts waiting');
  t.equal(timers() - before, 1, 'on one timer (was one per attempt)');
  const answers = await Promise.all(asked);
  t.ok(answers.every((a) => a.rcode === RCODE.SERVFAIL), 'each timed out to SERVFAIL');
  // Two attempts each (one where a busy machine's timer fired past the whole timeout), each timed out.
  const timedOut = counters.get('dns.forward.upstream_timeout');
  t.ok(timedOut >= 30 && timedOut <= 60 && timedOut === counters.get('dns.forward.upstream_query'), `every attempt timed out (${timedOut})`);
  t.equal(heard, timedOut, 'and each attempt was sent');
  t.equal(f.attemptsWaiting, 0);
  t.equal(f.inFlight, 0);
  const good = await Promise.all(Array.from({ length: 10 }, (_, i) => f.resolve({ name: `q${i}.answered.example`, type: T.A, class: CLASS_IN })));
  t.ok(good.every((a) => a.rcode === RCODE.NOERROR && a.answers.length === 1), 'answered attempts answer');
  t.equal(f.attemptsWaiting, 0, 'answered attempts leave the deadline list at once');
  t.equal(counters.get('dns.forward.upstream_timeout'), timedOut, 'and never time out');
});

t.test('trace: an answered miss is traced with its four steps in order, a shed one with its read time', async (t) => {
  const up = dgram.createSocket('udp4');
  up.on('message', (msg, rinfo) => {
    const d = decodeMessage(msg);
    if (!d.ok) return;
    const r = emptyMessage(d.value.id);
    r.qr = true; r.ra = true; r.rd = true;
    r.questions = d.value.questions;
    r.answers = [{ name: d.value.questions[0]!.name, type: T.A, class: CLASS_IN, ttl: 60, rdata: Uint8Array.of(192, 0, 2, 1) }];
    setTimeout(() => up.send(encodeMessage(r).bytes, rinfo.port, rinfo.address), 5);
  });
  await new Promise<void>((r) => up.bind(0, '127.0.0.1', () => r()));
  t.teardown(() => up.close());
  const misses: Array<[string, number, number, number, number]> = [];
  const sheds: number[] = [];
  const f = new Forwarder({
    upstreams: [{ address: '127.0.0.1', port: up.address().port }], timeoutMs: 2000, cache: new ForwardCache({ entries: 100, bytes: 1 << 20 }),
    clock: systemClock, random: seededRandom(2), counters: new Counters(), maxInFlight: 1,
    trace: { miss: (...m) => { misses.push(m); }, shed: (at) => { sheds.push(at); }, stood: () => {} },
  });
  t.teardown(() => f.close());
  const before = systemClock.monotonicMs();
  const asked = f.resolve({ name: 'Traced.example', type: T.A, class: CLASS_IN });
  const shed = f.resolve({ name: 'other.example', type: T.A, class: CLASS_IN });
  t.equal((shed as { rcode: number }).rcode, RCODE.SERVFAIL, 'past the cap: SERVFAIL at once');
  t.equal(sheds.length, 1, 'and traced as shed');
  t.ok(sheds[0]! >= before);
  await asked;
  t.equal(misses.length, 1, 'the answered miss traced once');
  const [name, read, sent, reply, answered] = misses[0]!;
  t.equal(name, 'Traced.example');
  t.ok(before <= read && read <= sent && sent < reply && reply <= answered, `read ${read} <= sent ${sent} < reply ${reply} <= answered ${answered}`);
  t.ok(reply - sent >= 4, 'the upstream\'s 5 ms are between the send and the reply');
});

// A UDP asker folded into its flight (forwardWith's `udp`: no closure and no query object per miss,
// the query copied) gets the bytes the callback path gives the same query: a cached answer with its
// ID, case and OPT, an answer not cached (decoded and encoded), SERVFAIL past the cap at once. The
// caller's buffer may change once the call returns. A second asker joins the flight with its own ID
// and case; flights are reused, each later miss answered for its own question.
t.test('folded UDP askers: the callback path\'s replies, joined askers with their own ID and case, flights reused', async (t) => {
  const up = dgram.createSocket('udp4');
  const asked: string[] = [];
  let hold: Array<() => void> | null = null;
  up.on('message', (msg, rinfo) => {
    const d = decodeMessage(msg);
    if (!d.ok) return;
    const name = d.value.questions[0]!.name;
    asked.push(name.toLowerCase());
    const r = answerA(msg, name.toLowerCase().startsWith('zero') ? 0 : 60, [192, 0, 2, 1])!;
    const send = (): void => up.send(r, rinfo.port, rinfo.address);
    if (hold !== null) hold.push(send); else send();
  });
  await new Promise<void>((r) => up.bind(0, '127.0.0.1', () => r()));
  const f = new Forwarder({
    upstreams: [{ address: '127.0.0.1', port: up.address().port }], timeoutMs: 2000, cache: new ForwardCache({ entries: 100, bytes: 1 << 20 }),
    clock: systemClock, random: seededRandom(4), counters: new Counters(), maxInFlight: 3,
  });
  t.teardown(() => { f.close(); up.close(); });
  const forward = forwardWith(f, 'n', systemClock);
  const got: Array<{ bytes: Uint8Array; port: number; address: string; inSlot: boolean }> = [];
  // The sink's buffers, as a batch hands out its slots: an answer from a cache entry is written into one.
  const slots = new Set<Uint8Array>();
  const out: ReplySink = { buffer: (n) => { const b = new Uint8Array(n); slots.add(b); return b; }, send: () => 1 };
  const to = { sendUdp: (_out: unknown, bytes: Uint8Array, port: number, address: string) => { got.push({ bytes: Uint8Array.from(bytes), port, address, inSlot: slots.has(bytes) }); } };
  const query = (name: string, id: number, edns: boolean | 'do'): { msg: Buffer; fq: FastQuery } => {
    const m = emptyMessage(id);
    m.rd = true;
    m.questions = [{ name, type: T.A, class: CLASS_IN }];
    if (edns !== false) m.edns = { udpSize: 1232, extendedRcode: 0, version: 0, dnssecOk: edns === 'do', options: [] };
    const msg = Buffer.from(encodeMessage(m).bytes);
    const fq: FastQuery = { qEnd: 0, ednsLimit: 0, hash: 0 };
    t.ok(scanQuery(msg, fq));
    return { msg, fq };
  };
  let lastInSlot = false;
  const folded = async (name: string, id: number, edns: boolean | 'do'): Promise<Uint8Array> => {
    const before = got.length;
    const { msg, fq } = query(name, id, edns);
    forward.udp!(msg, fq, to, out, 5300 + id, '127.0.0.9');
    msg.fill(0); // the flight keeps a copy
    while (got.length === before) await new Promise((r) => setTimeout(r, 5));
    t.same([got[before]!.port, got[before]!.address], [5300 + id, '127.0.0.9'], `${name}: sent to its asker`);
    lastInSlot = got[before]!.inSlot;
    return got[before]!.bytes;
  };
  const viaCallback = (name: string, id: number, edns: boolean | 'do'): Promise<Uint8Array> => new Promise((resolve) => {
    const { msg, fq } = query(name, id, edns);
    const q = { name, type: T.A, class: CLASS_IN };
    forward(q, null, 'udp', (bytes) => resolve(Uint8Array.from(bytes)), { msg, fq });
  });
  const summary = (bytes: Uint8Array) => {
    const d = decodeMessage(bytes);
    if (!d.ok) return null;
    return { id: d.value.id, rcode: d.value.rcode, name: d.value.questions[0]?.name, answers: d.value.answers.length, opt: d.value.edns != null };
  };

  for (const [name, edns] of [['Www.Example', true], ['zero.Example', 'do'], ['plain.example', false], ['Signed.example', 'do']] as const) {
    const a = await folded(name, 7, edns);
    const cached = !name.startsWith('zero');
    t.equal(lastInSlot, cached, `${name}: ${cached ? 'written into the sink\'s buffer (no buffer of its own, no copy)' : 'TTL 0, not cached: encoded'}`);
    t.same(summary(a), { id: 7, rcode: 0, name, answers: 1, opt: edns !== false }, `${name}: its ID, its case, the answer${edns !== false ? ', the OPT' : ''}`);
    const d = decodeMessage(a);
    t.equal(d.ok && d.value.edns?.dnssecOk === true, edns === 'do', `${name}: DO as asked (RFC 3225)`);
    t.same(Buffer.from(a), Buffer.from(await viaCallback(name, 7, edns)), `${name}: the callback path's bytes`);
  }

  hold = [];
  const before = got.length;
  const first = query('joined.example', 21, true);
  forward.udp!(first.msg, first.fq, to, out, 5321, '127.0.0.9');
  const second = query('JOINED.Example', 22, false);
  forward.udp!(second.msg, second.fq, to, out, 5322, '127.0.0.9');
  t.equal(f.inFlight, 2, 'two askers waiting on one flight');
  const third = query('other.example', 23, false);
  forward.udp!(third.msg, third.fq, to, out, 5323, '127.0.0.9');
  const shed = query('fourth.example', 24, true);
  forward.udp!(shed.msg, shed.fq, to, out, 5324, '127.0.0.9');
  t.equal(got.length, before + 1, 'past the cap: answered at once');
  t.same(summary(got[before]!.bytes), { id: 24, rcode: RCODE.SERVFAIL, name: 'fourth.example', answers: 0, opt: true }, 'with SERVFAIL');
  while (hold.length < 2) await new Promise((r) => setTimeout(r, 5));
  const release = hold;
  hold = null;
  for (const send of release) send();
  while (got.length < before + 4) await new Promise((r) => setTimeout(r, 5));
  const byPort = new Map(got.slice(before + 1).map((g) => [g.port, summary(g.bytes)]));
  t.same(byPort.get(5321), { id: 21, rcode: 0, name: 'joined.example', answers: 1, opt: true }, 'the first asker');
  t.same(byPort.get(5322), { id: 22, rcode: 0, name: 'JOINED.Example', answers: 1, opt: false }, 'the joined one: its own ID, case, no OPT');
  t.same(byPort.get(5323), { id: 23, rcode: 0, name: 'other.example', answers: 1, opt: false });
  t.equal(asked.filter((n) => n === 'joined.example').length, 1, 'the joined question went upstream once');
  t.equal(f.inFlight, 0);

  for (let i = 0; i < 20; i++) {
    const name = `Reused${i}.example`;
    t.same(summary(await folded(name, 100 + i, i % 2 === 0)), { id: 100 + i, rcode: 0, name, answers: 1, opt: i % 2 === 0 }, `${name}: its own answer from a reused flight`);
  }
});

t.test('inFlightShares: the workers that read UDP hold most of the bound, the daemon an eighth, and the part of a worker that holds none', async (t) => {
  const one = inFlightShares(1024, 1);
  t.same([one.worker, one.daemon, one.daemonWith(0), one.daemonWith(1)], [896, 128, 1024, 128], 'one worker: 896 + 128; the whole bound while it holds none');
  const two = inFlightShares(1024, 2);
  t.same([two.worker, two.daemon, two.daemonWith(1)], [448, 128, 576], 'two workers, one of them down');
  for (const max of [1, 2, 3, 4, 7, 150, 1000, 65_536]) {
    for (const workers of [0, 1, 2, 3, 8]) {
      const s = inFlightShares(max, workers);
      for (let holding = 0; holding <= workers; holding++) {
        const total = s.daemonWith(holding) + s.worker * holding;
        if (max >= workers + 1 && total > max) t.fail(`max ${max}, ${workers} workers, ${holding} holding: ${total} in all`);
        if (s.daemonWith(holding) < 1) t.fail(`max ${max}, ${workers} workers: the daemon holds none`);
      }
    }
  }
  t.same(inFlightShares(150, 0), { ...inFlightShares(150, 0), worker: 0, daemon: 150 }, 'no workers: the daemon holds it all');
});

t.test('setMaxInFlight: a lowered bound takes no new miss until the count is back under it', async (t) => {
  const up = dgram.createSocket('udp4');
  up.on('message', () => undefined); // silent
  await new Promise<void>((r) => up.bind(0, '127.0.0.1', () => r()));
  const counters = new Counters();
  const f = new Forwarder({
    upstreams: [{ address: '127.0.0.1', port: up.address().port }], timeoutMs: 300, cache: new ForwardCache({ entries: 100, bytes: 1 << 20 }),
    clock: systemClock, random: seededRandom(5), counters, maxInFlight: 4,
  });
  const q = (name: string) => ({ name, type: T.A, class: CLASS_IN });
  const waiting = [0, 1, 2].map((i) => f.resolve(q(`w${i}.example`)));
  t.ok(waiting.every((w) => w instanceof Promise), 'three wait');
  f.setMaxInFlight(2);
  t.equal(f.maxInFlight, 2);
  const shed = f.resolve(q('over.example'));
  t.notOk(shed instanceof Promise, 'over the lowered bound: SERVFAIL at once');
  t.equal(counters.get('dns.forward.overload'), 1);
  f.setMaxInFlight(8);
  t.ok(f.resolve(q('under.example')) instanceof Promise, 'raised: waits');
  await Promise.all(waiting);
  f.close();
  up.close();
});
