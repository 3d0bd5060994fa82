// Replies batched per turn (fast-send.ts) are byte for byte the replies sent one at a time: the
// answerer serves random turns of queries (our zones and forwarded cache hits, any ID, case, RD,
// EDNS, the clock moving between turns) into a ReplyBatch and into a plain sink, and every reply the
// batch sends equals its twin, in order. Also: a send the socket queued keeps its bytes, refusals
// are counted, full batches and replies larger than a slot go out at once, in order; a reply
// allocates no view once its slot and length were seen; a forwarded answer with no reply of its
// turn waiting leaves at once.
import t from 'tap';
import dgram from 'node:dgram';
import fc from 'fast-check';
import { parseConfig } from '../../config/index.js';
import { silentLogger } from '../../lib/log.js';
import { SEND_DONE, SEND_FAILED, SEND_QUEUED } from '../../lib/udp-direct.js';
import { seedFromEnv } from '../../test/support/seeded.js';
import { systemClock } from '../../lib/clock.js';
import { seededRandom } from '../../lib/random.js';
import { answerA } from '../../test/support/dns-upstream.js';
import { DnsAnswerer } from './answerer.js';
import { Forwarder, forwardWith } from './forward.js';
import { BATCH_REPLIES_MAX, BATCH_SLOT_BYTES, BATCH_VIEWS_MAX, ReplyBatch, TurnEnd, type ReplySink } from './fast-send.js';
import { CLASS_IN, decodeMessage, emptyMessage, encodeMessage, T } from './wire.js';
import { buildZoneSet } from './zone.js';

interface Sent { bytes: Buffer; port: number; address: string }

/** A DatagramSender stand-in: keeps a copy of what it was given, answers with `result`. */
function recorder(result: () => number = () => SEND_DONE): { sent: Sent[]; held: Uint8Array[]; send(b: Uint8Array, port: number, address: string): number } {
  const sent: Sent[] = [];
  const held: Uint8Array[] = [];
  return {
    sent, held,
    send(b, port, address) {
      const r = result();
      sent.push({ bytes: Buffer.from(b), port, address });
      if (r === SEND_QUEUED) held.push(b);
      return r;
    },
  };
}

function query(name: string, type: number, id: number, rd: boolean, edns: number | undefined): Buffer {
  const m = emptyMessage(id);
  m.rd = rd;
  m.questions = [{ name, type, class: CLASS_IN }];
  if (edns !== undefined) m.edns = { udpSize: edns, extendedRcode: 0, version: 0, dnssecOk: false, options: [] };
  return Buffer.from(encodeMessage(m).bytes);
}

t.test('property: batched replies equal the replies sent one at a time (ID, case, TTLs, OPT)', async (t) => {
  const config = parseConfig(`node: { name: lan-a, address: 127.0.0.1, stateDir: /tmp/x, controlSocket: /tmp/x.sock }
dns: { port: 5353, forward: { upstreams: ["127.0.0.1:9"], allow: [127.0.0.0/8] } }
`);
  const zones = buildZoneSet({
    zones: [{ name: 'lan', ttl: 60_000, negativeTtl: 30_000, records: ['www A 10.20.0.80', 'www AAAA fd00::80', 'txt TXT "a" "b"'], leases: false }],
    reverseSubnets: [], leaseNames: [], operatorRecords: [], serial: 1,
  });
  let nowMs = 1_000_000;
  const clock = { monotonicMs: () => nowMs, wallMs: () => nowMs };
  const answerer = new DnsAnswerer({ cfg: config.dns!, nodeName: 'lan-a', clock, log: silentLogger, zones });
  const cache = answerer.forwardCache!;
  const fill = (): void => {
    for (const [name, ttl] of [['host.example', 300], ['short.example', 7], ['other.test', 86_400]] as const) {
      cache.put({ name, type: T.A, class: CLASS_IN }, {
        rcode: 0, answers: [{ name, type: T.A, class: CLASS_IN, ttl, rdata: Uint8Array.of(192, 0, 2, ttl & 0xff) }], authority: [], additional: [],
      }, nowMs);
    }
  };
  const one = recorder();
  const plain: ReplySink = { buffer: (n) => Buffer.alloc(n), send: (b, port, address) => one.send(b, port, address) };
  const out = recorder();
  let flushes: (() => void)[] = [];
  const batch = new ReplyBatch(out, () => t.fail('no send refused'), (f) => { flushes.push(f); });
  const names = ['www.lan', 'WWW.Lan', 'txt.lan', 'nope.lan', 'host.example', 'HOST.example', 'Short.Example', 'other.TEST'];
  const ask = fc.record({
    name: fc.constantFrom(...names), type: fc.constantFrom(T.A, T.AAAA, T.TXT), id: fc.integer({ min: 0, max: 0xffff }),
    rd: fc.boolean(), edns: fc.option(fc.constantFrom(512, 1232, 4096), { nil: undefined }), port: fc.integer({ min: 1, max: 0xffff }),
  });
  let compared = 0;
  fc.assert(fc.property(fc.array(fc.array(ask, { minLength: 1, maxLength: 40 }), { minLength: 1, maxLength: 5 }), fc.integer({ min: 0, max: 3_000 }), (turns, stepMs) => {
    nowMs = 1_000_000;
    fill();
    for (const turn of turns) {
      nowMs += stepMs;
      one.sent.length = 0;
      out.sent.length = 0;
      for (const a of turn) {
        const msg = query(a.name, a.type, a.id, a.rd, a.edns);
        const rinfo = { address: '127.0.0.1', port: a.port, family: 'IPv4', size: msg.length } as const;
        answerer.udp(plain, msg, rinfo, () => undefined);
        answerer.udp(batch, msg, rinfo, () => undefined);
      }
      // Nothing leaves before the turn ends, unless the batch filled up.
      if (turn.length < BATCH_REPLIES_MAX && out.sent.length !== 0) return false;
      const f = flushes;
      flushes = [];
      if (f.length !== (one.sent.length > 0 ? 1 : 0)) return false;
      f[0]?.();
      if (out.sent.length !== one.sent.length) return false;
      for (let i = 0; i < out.sent.length; i++) {
        const x = out.sent[i]!;
        const y = one.sent[i]!;
        if (x.port !== y.port || x.address !== y.address || Buffer.compare(x.bytes, y.bytes) !== 0) return false;
        compared++;
      }
    }
    return true;
  }), { seed: seedFromEnv(15), numRuns: 200 });
  t.ok(compared > 1000, `${compared} replies compared`);
  t.ok(answerer.forwardHits > 100 && answerer.fastHits > 100, `hits on both tables (forwarded ${answerer.forwardHits}, ours ${answerer.fastHits})`);
});

t.test('a send the socket queued keeps its bytes while later replies are written', async (t) => {
  let result = SEND_QUEUED;
  const out = recorder(() => result);
  const flushes: (() => void)[] = [];
  const batch = new ReplyBatch(out, () => t.fail('not refused'), (f) => { flushes.push(f); });
  const first = batch.buffer(100);
  first.fill(0x11);
  batch.send(first, 53, '127.0.0.1');
  flushes.shift()!();
  result = SEND_DONE;
  for (let i = 0; i < 3; i++) {
    const b = batch.buffer(100);
    b.fill(0x22 + i);
    batch.send(b, 53, '127.0.0.1');
    flushes.shift()!();
  }
  t.equal(out.held.length, 1);
  t.ok(out.held[0]!.every((x) => x === 0x11), 'the queued reply\'s bytes are unchanged');
  t.same(out.sent.map((s) => s.bytes[0]), [0x11, 0x22, 0x23, 0x24]);
});

t.test('refused sends are counted; a full batch or a reply larger than a slot goes out at once, in order; foreign bytes are copied', async (t) => {
  let refused = 0;
  let n = 0;
  const out = recorder(() => (n++ % 3 === 0 ? SEND_FAILED : SEND_DONE));
  const flushes: (() => void)[] = [];
  const batch = new ReplyBatch(out, () => refused++, (f) => { flushes.push(f); });
  for (let i = 0; i < BATCH_REPLIES_MAX; i++) {
    const b = batch.buffer(40);
    b.fill(i);
    t.equal(batch.send(b, 1000 + i, '127.0.0.1'), SEND_DONE);
  }
  t.equal(out.sent.length, BATCH_REPLIES_MAX, 'a full batch is sent without waiting for the turn');
  t.same(out.sent.map((s) => s.port), Array.from({ length: BATCH_REPLIES_MAX }, (_, i) => 1000 + i), 'in the order written');
  t.equal(refused, Math.ceil(BATCH_REPLIES_MAX / 3), 'every refusal counted');
  t.equal(batch.pending, 0);
  t.equal(flushes.length, 1, 'the turn\'s flush was scheduled once');
  flushes.shift()!(); // the end of that turn: nothing left to send
  t.equal(out.sent.length, BATCH_REPLIES_MAX);
  out.sent.length = 0;
  // A reply larger than a slot leaves at once, after the replies written before it.
  for (let i = 0; i < 3; i++) {
    const b = batch.buffer(BATCH_SLOT_BYTES);
    b.fill(i);
    batch.send(b, 53, '127.0.0.1');
  }
  t.equal(out.sent.length, 0, 'slot-sized replies wait for the turn');
  const large = batch.buffer(BATCH_SLOT_BYTES + 1);
  large.fill(0x55);
  batch.send(large, 53, '127.0.0.1');
  t.same(out.sent.map((s) => [s.bytes.length, s.bytes[0]]), [[BATCH_SLOT_BYTES, 0], [BATCH_SLOT_BYTES, 1], [BATCH_SLOT_BYTES, 2], [BATCH_SLOT_BYTES + 1, 0x55]], 'in the order written');
  t.equal(batch.pending, 0);
  t.ok(out.sent.slice(0, 3).every((s, i) => s.bytes.every((x) => x === i)), 'each reply as written');
  out.sent.length = 0;
  const first = batch.buffer(30);
  first.fill(0x31);
  batch.send(first, 53, '127.0.0.1');
  const foreign = Buffer.alloc(30, 0x7e);
  batch.send(foreign, 53, '127.0.0.1');
  foreign.fill(0);
  batch.flush();
  t.equal(out.sent.length, 2);
  t.ok(out.sent[0]!.bytes.every((x) => x === 0x31), 'a reply written in its slot is not overwritten by the next');
  t.ok(out.sent[1]!.bytes.every((x) => x === 0x7e), 'bytes from elsewhere were copied when sent');
  t.equal(flushes.length, 1, 'one flush scheduled for the next turn');
});

t.test('a reply allocates nothing once its slot and length were seen; the views are bounded and dropped with a queued arena', async (t) => {
  let result = SEND_DONE;
  const out = recorder(() => result);
  const flushes: (() => void)[] = [];
  const batch = new ReplyBatch(out, () => t.fail('not refused'), (f) => { flushes.push(f); });
  const turn = (sizes: number[]): Uint8Array[] => sizes.map((size, i) => {
    const b = batch.buffer(size);
    b.fill(i + 1);
    batch.send(b, 53, '127.0.0.1');
    return b;
  });
  const a = turn([40, 90, 40]);
  batch.flush();
  const b = turn([40, 90, 40]);
  batch.flush();
  t.ok(a.every((v, i) => v === b[i]), 'the same view objects, turn after turn');
  t.not(a[0], a[2], 'each slot has its own view');
  t.same(out.sent.map((s) => s.bytes[0]), [1, 2, 3, 1, 2, 3]);
  // More lengths than the bound: each still gets the right bytes (made per reply past the bound).
  out.sent.length = 0;
  for (let size = 1; size <= BATCH_VIEWS_MAX / BATCH_REPLIES_MAX + 100; size++) {
    for (let i = 0; i < BATCH_REPLIES_MAX; i++) {
      const v = batch.buffer(size);
      v.fill(size & 0xff);
      batch.send(v, 53, '127.0.0.1');
    }
  }
  t.ok(out.sent.every((s) => s.bytes.length > 0 && s.bytes.every((x) => x === (s.bytes.length & 0xff))), `${out.sent.length} replies of many lengths, each as written`);
  // A queued send keeps the old arena: the next reply's view is a new one, in a new arena.
  result = SEND_QUEUED;
  const held = turn([40]);
  batch.flush();
  result = SEND_DONE;
  const next = turn([40]);
  t.not(next[0], held[0], 'a new view after a queued send');
  t.not(next[0]!.buffer, held[0]!.buffer, 'in a new arena');
  next[0]!.fill(0x99);
  t.ok(held[0]!.every((x) => x === 1), 'the queued reply keeps its bytes');
  batch.flush();
  t.equal(flushes.length, 1, 'flushes were explicit; one scheduled at first');
});

t.test('a forwarded answer leaves as the upstream\'s reply is read when no reply of the turn waits, behind the ones that wait otherwise', async (t) => {
  const up = dgram.createSocket('udp4');
  up.on('message', (msg, rinfo) => { const r = answerA(msg, 60, [192, 0, 2, 5]); if (r !== null) up.send(r, rinfo.port, rinfo.address); });
  await new Promise<void>((resolve) => up.bind(0, '127.0.0.1', () => resolve()));
  const config = parseConfig(`node: { name: lan-a, address: 127.0.0.1, stateDir: /tmp/x, controlSocket: /tmp/x.sock }
dns: { port: 5353, forward: { upstreams: ["127.0.0.1:${up.address().port}"], allow: [127.0.0.0/8] } }
`);
  const zones = buildZoneSet({
    zones: [{ name: 'lan', ttl: 60_000, negativeTtl: 30_000, records: ['www A 10.20.0.80'], leases: false }],
    reverseSubnets: [], leaseNames: [], operatorRecords: [], serial: 1,
  });
  const answerer = new DnsAnswerer({ cfg: config.dns!, nodeName: 'lan-a', clock: systemClock, log: silentLogger, zones });
  const forwarder = new Forwarder({
    upstreams: config.dns!.forward!.upstreams, timeoutMs: 2000, cache: answerer.forwardCache!, clock: systemClock,
    random: seededRandom(3), counters: answerer.counters, maxInFlight: 10,
  });
  t.teardown(() => { forwarder.close(); up.close(); });
  const forward = forwardWith(forwarder, 'lan-a', systemClock);
  const out = recorder();
  const flushes: (() => void)[] = [];
  const batch = new ReplyBatch(out, () => t.fail('not refused'), (f) => { flushes.push(f); });
  const ask = (name: string, id: number, port: number): void => {
    const msg = query(name, T.A, id, true, 1232);
    answerer.udp(batch, msg, { address: '127.0.0.1', port, family: 'IPv4', size: msg.length }, forward);
  };
  const sent = async (n: number): Promise<boolean> => {
    for (const deadline = Date.now() + 10_000; out.sent.length < n && Date.now() < deadline;) await new Promise((r) => setTimeout(r, 2));
    return out.sent.length >= n;
  };
  const summary = (b: Uint8Array): string => {
    const d = decodeMessage(b);
    return d.ok ? `${d.value.id} ${d.value.questions[0]?.name} ${d.value.answers.map((a) => a.rdata.join('.')).join(',')}` : 'undecodable';
  };

  ask('miss.example', 1, 5301);
  t.ok(await sent(1), 'the answer left');
  t.equal(flushes.length, 0, 'as the upstream\'s reply was read: no end-of-turn flush waited for');
  t.equal(summary(out.sent[0]!.bytes), '1 miss.example 192.0.2.5', 'the upstream\'s answer, with the asker\'s ID');
  t.same([out.sent[0]!.port, out.sent[0]!.address], [5301, '127.0.0.1']);

  // A reply of this turn waits (an answer from our zone): the forwarded one goes behind it, together.
  ask('www.lan', 2, 5302);
  t.equal(flushes.length, 1, 'the zone answer waits for the end of the turn');
  ask('other.example', 3, 5303);
  for (const deadline = Date.now() + 10_000; batch.pending < 2 && Date.now() < deadline;) await new Promise((r) => setTimeout(r, 2));
  t.equal(batch.pending, 2, 'the forwarded answer queued behind it');
  t.equal(out.sent.length, 1, 'neither left yet');
  flushes.shift()!();
  t.same(out.sent.slice(1).map((s) => summary(s.bytes)), ['2 www.lan 10.20.0.80', '3 other.example 192.0.2.5'], 'in the order written');

  // Sent at once from the arena and queued by the socket: the bytes stay, the next replies get a new arena.
  let result = SEND_QUEUED;
  const held = recorder(() => result);
  const lone = new ReplyBatch(held, () => t.fail('not refused'), () => t.fail('nothing to flush'));
  const b = lone.buffer(40);
  b.fill(0x41);
  t.equal(lone.sendAlone(b, 53, '127.0.0.1'), SEND_DONE);
  result = SEND_DONE;
  const next = lone.buffer(40);
  t.not(next.buffer, b.buffer, 'a new arena after a queued send');
  next.fill(0x42);
  t.ok(held.held[0]!.every((x) => x === 0x41), 'the queued answer keeps its bytes');
});

t.test('a turn of answers costs one setImmediate: the end of the turn and the batch\'s flush share it, in order', async (t) => {
  const config = parseConfig(`node: { name: lan-a, address: 127.0.0.1, stateDir: /tmp/x, controlSocket: /tmp/x.sock }
dns: { port: 5353 }
`);
  const zones = buildZoneSet({
    zones: [{ name: 'lan', ttl: 60_000, negativeTtl: 30_000, records: ['www A 10.20.0.80'], leases: false }],
    reverseSubnets: [], leaseNames: [], operatorRecords: [], serial: 1,
  });
  const answerer = new DnsAnswerer({ cfg: config.dns!, nodeName: 'lan-a', clock: systemClock, log: silentLogger, zones });
  const out = recorder();
  const real = globalThis.setImmediate;
  let immediates = 0;
  globalThis.setImmediate = ((run: (...a: unknown[]) => void, ...args: unknown[]) => { immediates++; return real(run, ...args); }) as typeof setImmediate;
  try {
    const batch = new ReplyBatch(out, () => t.fail('not refused'));
    for (let turn = 0; turn < 3; turn++) {
      const before = immediates;
      for (let i = 0; i < 5; i++) {
        const msg = query('www.lan', T.A, turn * 10 + i, true, undefined);
        answerer.udp(batch, msg, { address: '127.0.0.1', port: 6000 + i, family: 'IPv4', size: msg.length }, () => undefined);
      }
      t.equal(immediates - before, 1, `turn ${turn}: five answers, one setImmediate (two before: the answerer's end of turn and the batch's flush)`);
      t.equal(out.sent.length, turn * 5, 'the answers wait for it');
      await new Promise((r) => real(r));
      t.equal(out.sent.length, (turn + 1) * 5, 'and leave with it');
    }
  } finally {
    globalThis.setImmediate = real;
  }
  const order: string[] = [];
  const runs: Array<() => void> = [];
  const end = new TurnEnd((run) => { runs.push(run); });
  end.schedule(() => order.push('a'));
  end.schedule(() => { order.push('b'); end.schedule(() => order.push('c')); });
  t.equal(runs.length, 1, 'two in one turn: one immediate');
  runs.shift()!();
  t.same(order, ['a', 'b'], 'run in the order scheduled');
  t.equal(runs.length, 1, 'one scheduled while they run: the next turn\'s');
  runs.shift()!();
  t.same(order, ['a', 'b', 'c']);
  // One that throws does not keep the others from running (a flush skipped for good would keep
  // its batch's replies and never schedule another), and its error still surfaces.
  end.schedule(() => { throw new Error('boom'); });
  end.schedule(() => order.push('d'));
  t.throws(() => runs.shift()!(), /boom/, 'the error is thrown');
  t.same(order, ['a', 'b', 'c', 'd'], 'after the rest ran');
  end.schedule(() => order.push('e'));
  t.equal(runs.length, 1, 'and the next turn is scheduled as usual');
  runs.shift()!();
  t.same(order, ['a', 'b', 'c', 'd', 'e']);
});
