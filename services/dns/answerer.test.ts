// The answerer's UDP send never throws out of a reply path: a forwarded answer that comes back after
// its socket closed (the VIP went, and with it the socket bound on it) is counted and dropped. Before,
// send() on the closed socket threw ERR_SOCKET_DGRAM_NOT_RUNNING from the forwarder's callback.
import t from 'tap';
import dgram from 'node:dgram';
import { parseConfig } from '../../config/index.js';
import { silentLogger } from '../../lib/log.js';
import { systemClock } from '../../lib/clock.js';
import { DnsAnswerer, type ForwardQuery } from './answerer.js';
import { DatagramSender } from '../../lib/udp-direct.js';
import { buildZoneSet } from './zone.js';
import fc from 'fast-check';
import { parseCidr } from '../../lib/ipv4.js';
import { handleQuery } from './handler.js';
import { scanQuery } from './fast.js';
import { CLASS_CH, CLASS_IN, RCODE, T, type Question } from './wire.js';
import { readName } from './name.js';

/** The question of a fast-shaped query whose question ends at `qEnd`. */
function questionOf(msg: Uint8Array, qEnd: number): Question {
  const at = qEnd - 4;
  return { name: readName(msg, 12, at)!.name, type: (msg[at]! << 8) | msg[at + 1]!, class: (msg[at + 2]! << 8) | msg[at + 3]! };
}

t.test('a reply sent on a closed socket is counted, not thrown', async (t) => {
  const config = parseConfig(`node: { name: lan-a, address: 127.0.0.1, stateDir: /tmp/x, controlSocket: /tmp/x.sock }
dns: { port: 5353, zones: [{ name: rack.lan, records: ["ns A 127.0.0.1"] }] }
`);
  const answerer = new DnsAnswerer({
    cfg: config.dns!, nodeName: 'lan-a', clock: systemClock, log: silentLogger,
    zones: buildZoneSet({ zones: [], reverseSubnets: [], leaseNames: [], operatorRecords: [], serial: 1 }),
  });
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  await new Promise<void>((resolve) => socket.close(() => resolve()));
  const rinfo = { address: '127.0.0.1', port: 9, family: 'IPv4', size: 0 } as const;
  const out = new DatagramSender(socket);
  t.doesNotThrow(() => answerer.sendUdp(out, new Uint8Array(12), rinfo.port, rinfo.address));
  t.equal(answerer.counters.toJSON()['dns.udp.send_failed'], 1, 'counted as a failed send');
});

// A plain query (the fast path's shape) that misses every table goes to the forwarder routed from
// its bytes (`query` null: not decoded); every other query is decided by the decoding path. Either
// way the decision is handleQuery's: the same question forwarded, or the same reply bytes.
t.test('property: a miss is routed from its bytes exactly as handleQuery decides, without decoding', async (t) => {
  const config = parseConfig(`node: { name: lan-a, address: 127.0.0.1, stateDir: /tmp/x, controlSocket: /tmp/x.sock }
dns: { port: 5353, forward: { upstreams: ["127.0.0.1:9"], allow: [127.0.0.0/8] } }
`);
  const zones = buildZoneSet({
    zones: [{ name: 'lan', ttl: 60_000, negativeTtl: 30_000, records: ['www A 10.20.0.80'], leases: false }],
    reverseSubnets: [parseCidr('10.20.0.0/24')!], leaseNames: [], operatorRecords: [], serial: 1,
  });
  const answerer = new DnsAnswerer({ cfg: config.dns!, nodeName: 'lan-a', clock: systemClock, log: silentLogger, zones });
  const sent: Uint8Array[] = [];
  const out = { send: (b: Uint8Array) => { sent.push(Uint8Array.from(b)); return 1; }, buffer: (n: number) => Buffer.alloc(n) } as unknown as DatagramSender;
  const rinfo = { address: '127.0.0.1', port: 9, family: 'IPv4', size: 0 } as const;
  let routedFromBytes = 0;
  let byUdp = 0;
  const label = fc.constantFrom('www', 'WWW', 'lan', 'LAN', 'nope', 'example', 'x.y', '20', '10', 'in-addr', 'arpa', 'a'.repeat(63));
  fc.assert(fc.property(fc.array(label, { maxLength: 6 }), fc.constantFrom(T.A, T.AAAA, T.AXFR, T.IXFR, T.OPT, T.TXT, 255),
    fc.constantFrom(CLASS_IN, CLASS_CH, 255, 4), fc.boolean(), fc.integer({ min: 0, max: 0xffff }), (labels, type, klass, edns, id) => {
      const name = labels.flatMap((l) => [l.length, ...Buffer.from(l, 'latin1')]);
      const opt = edns ? [0, 0, 41, 4, 0, 0, 0, 0, 0, 0, 0] : [];
      const msg = Buffer.from([id >> 8, id & 0xff, 1, 0, 0, 1, 0, 0, 0, 0, 0, edns ? 1 : 0, ...name, 0, type >> 8, type & 0xff, klass >> 8, klass & 0xff, ...opt]);
      const d = handleQuery(msg, { zones, nodeName: 'lan-a', forwardAllowed: true, transferAllowed: false, transport: 'udp' });
      sent.length = 0;
      let forwarded: { q: Question; decoded: boolean } | null = null;
      // Odd IDs: a forwarder that takes routed queries by `udp` (the question read back from the bytes it got).
      const forward: ForwardQuery = (q, query) => { forwarded = { q, decoded: query !== null }; };
      if ((id & 1) === 1) forward.udp = (m, fq) => { forwarded = { q: questionOf(m, fq.qEnd), decoded: false }; byUdp++; };
      answerer.udp(out, msg, rinfo, forward);
      if (d.kind === 'forward') {
        const f = forwarded as { q: Question; decoded: boolean } | null;
        if (f === null || f.q.name !== d.question.name || f.q.type !== d.question.type || f.q.class !== d.question.class) return false;
        if (!f.decoded) routedFromBytes++;
        return sent.length === 0;
      }
      if (forwarded !== null) return false;
      if (d.kind === 'reply') return sent.length === 1 && Buffer.compare(sent[0]!, d.bytes) === 0;
      return sent.length === 0;
    }), { numRuns: 1500 });
  t.ok(routedFromBytes > 100, `plain misses were routed from their bytes (${routedFromBytes} of 1500)`);
  t.ok(byUdp > 50, `through the forwarder's udp when it has one (${byUdp})`);
  // A name of 256 bytes on the wire has the fast path's shape but is one byte over the limit: FORMERR, as decoded.
  const long = [...[63, 63, 63, 62].flatMap((n) => [n, ...new Array(n).fill(0x61)]), 0];
  const msg = Buffer.from([0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, ...long, 0, 1, 0, 1]);
  t.ok(scanQuery(msg, { qEnd: 0, ednsLimit: 0, hash: 0 }), 'the fast path\'s shape');
  sent.length = 0;
  answerer.udp(out, msg, rinfo, () => t.fail('not forwarded'));
  t.equal(sent.length, 1);
  t.equal(sent[0]![3]! & 0xf, RCODE.FORMERR, 'a 256-byte name gets FORMERR');
});

// A cache hit is answered at the time its turn of the event loop read its first datagram: the
// answerer reads the clock once a turn, not once a hit (a clock read was most of what a hit's
// JavaScript cost beyond a prebuilt answer's, bench/dns-js-cost.ts `both`), and the TTLs served
// count down from the stored ones by that time's whole seconds, turn after turn.
t.test('cache hits: one clock read per turn, TTLs counted down to the turn\'s time', async (t) => {
  const config = parseConfig(`node: { name: lan-a, address: 127.0.0.1, stateDir: /tmp/x, controlSocket: /tmp/x.sock }
dns: { port: 5353, forward: { upstreams: ["127.0.0.1:9"], allow: [127.0.0.0/8] } }
`);
  let nowMs = 0;
  let reads = 0;
  const clock = { monotonicMs: () => { reads++; return nowMs; }, wallMs: () => nowMs };
  const answerer = new DnsAnswerer({ cfg: config.dns!, nodeName: 'lan-a', clock, log: silentLogger,
    zones: buildZoneSet({ zones: [], reverseSubnets: [], leaseNames: [], operatorRecords: [], serial: 1 }) });
  const query = (id: number): Buffer => Buffer.from([id >> 8, id & 0xff, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 4, ...Buffer.from('host'), 3, ...Buffer.from('lan'), 0, 0, 1, 0, 1]);
  const stored = query(0);
  const body = Buffer.concat([stored, Buffer.from([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 100, 0, 4, 192, 0, 2, 7])]);
  body[2] = 0x80; body[3] = 0x80; body[7] = 1;
  t.ok(answerer.forwardCache!.insertWire({ key: Uint8Array.from(stored.subarray(12)), body, ttlMs: 100_000 }, 0));
  const ttls: number[] = [];
  const out = { send: (b: Uint8Array) => { ttls.push(Buffer.from(b).readUInt32BE(b.length - 10)); return 1; }, buffer: (n: number) => Buffer.alloc(n) } as unknown as DatagramSender;
  const rinfo = { address: '127.0.0.1', port: 9, family: 'IPv4', size: 0 } as const;
  const forward: ForwardQuery = () => t.fail('a hit was forwarded');
  nowMs = 500;
  reads = 0;
  for (let i = 0; i < 32; i++) { answerer.udp(out, query(i + 1), rinfo, forward); nowMs += 100; }
  t.equal(reads, 1, 'the clock read once for the turn\'s 32 hits');
  t.same(ttls, new Array(32).fill(100), 'every hit of the turn answered as of its first read (0.5 s: age 0)');
  await new Promise((resolve) => setImmediate(resolve));
  ttls.length = 0;
  answerer.udp(out, query(99), rinfo, forward);
  t.same(ttls, [97], 'the next turn at 3.7 s: counted down by 3 s');
  t.equal(answerer.forwardHits, 33);
});
