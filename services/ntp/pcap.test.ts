import t from 'tap';
import fc from 'fast-check';
import { readHexPacket } from '../../test/support/hex.js';
import { repoPath } from '../../test/support/paths.js';
import { datagramKey, formatIpv6, LinkType, PcapReader, requestKey, type PcapEvent } from './pcap.js';
import { seedFromEnv } from '../../test/support/seeded.js';

// The pcap reader of the kernel-stamp capture: real tcpdump streams (test/golden/ntp/) give the
// request's source, port, transmit timestamp and the kernel's stamp, whichever way the bytes are cut
// into pieces; made-up streams cover the other link types, the direction and IPv6; hostile and
// truncated streams never throw, never yield a datagram from bytes past a record, and a stream
// that is not pcap is reported once as broken.

const golden = (name: string): Uint8Array => readHexPacket(repoPath('test', 'golden', 'ntp', name));
const budgetMs = Number(process.env['LANHA_FUZZ_MS'] ?? 3000);

const datagrams = (events: PcapEvent[]) => events.flatMap((e) => (e.kind === 'datagram' ? [e.datagram] : []));

t.test('a real tcpdump -i any stream (LINUX_SLL2, ns) gives the request and its kernel stamp', async (t) => {
  const bytes = golden('tcpdump-any-sll2-ns.hex');
  const reader = new PcapReader();
  const events = reader.push(bytes);
  t.same(datagrams(events), [{
    address: '127.0.0.1', port: 52291, destinationPort: 123, outgoing: false,
    transmitHi: 0xeebb6f5c, transmitLo: 0xdee2d000, kernelNs: 1796272348_875107820n,
  }]);
  t.equal(reader.linkType, LinkType.LinuxSll2);
  t.equal(reader.buffered, 0, 'nothing left over');
  // The same key as the handler builds from the datagram it reads (bytes 40-47 of the NTP payload).
  const ntp = bytes.subarray(bytes.length - 48);
  t.equal(datagramKey('127.0.0.1', 52291, ntp), requestKey('127.0.0.1', 52291, 0xeebb6f5c, 0xdee2d000));
});

t.test('the same request from tcpdump -i lo (EN10MB, us) carries the same stamp to the microsecond', async (t) => {
  const [d] = datagrams(new PcapReader().push(golden('tcpdump-lo-en10mb-us.hex')));
  t.match(d, { address: '127.0.0.1', port: 52291, destinationPort: 123, outgoing: null, transmitHi: 0xeebb6f5c, transmitLo: 0xdee2d000 });
  t.equal(d!.kernelNs, 1796272348_875107000n);
});

t.test('a stream cut anywhere, even byte by byte, reads the same', async (t) => {
  const bytes = golden('tcpdump-any-sll2-ns.hex');
  const whole = datagrams(new PcapReader().push(bytes));
  for (const cut of [1, 7, 23, 24, 25, 39, 40, 41, bytes.length - 1]) {
    const r = new PcapReader();
    t.same(datagrams([...r.push(bytes.subarray(0, cut)), ...r.push(bytes.subarray(cut))]), whole, `cut at ${cut}`);
  }
  const r = new PcapReader();
  const events: PcapEvent[] = [];
  for (const b of bytes) events.push(...r.push(Uint8Array.of(b)));
  t.same(datagrams(events), whole, 'byte by byte');
});

/** A pcap stream (big endian) of the given link type and packets. */
function stream(linkType: number, packets: Uint8Array[], nano = true): Uint8Array {
  const head = Buffer.alloc(24);
  head.writeUInt32BE(nano ? 0xa1b23c4d : 0xa1b2c3d4, 0);
  head.writeUInt16BE(2, 4); head.writeUInt16BE(4, 6); head.writeUInt32BE(128, 16); head.writeUInt32BE(linkType, 20);
  const parts: Buffer[] = [head];
  packets.forEach((p, i) => {
    const rec = Buffer.alloc(16);
    rec.writeUInt32BE(1_800_000_000 + i, 0); rec.writeUInt32BE(123_456, 4); rec.writeUInt32BE(p.length, 8); rec.writeUInt32BE(p.length, 12);
    parts.push(rec, Buffer.from(p));
  });
  return Buffer.concat(parts);
}

function ipv4Udp(src: string, sport: number, dport: number, transmit = 0x1122334455667788n): Buffer {
  const ip = Buffer.alloc(20);
  ip[0] = 0x45; ip[9] = 17; ip.set(src.split('.').map(Number), 12); ip.set([10, 0, 0, 1], 16);
  const udp = Buffer.alloc(8);
  udp.writeUInt16BE(sport, 0); udp.writeUInt16BE(dport, 2);
  const ntp = Buffer.alloc(48);
  ntp[0] = 0x23; ntp.writeBigUInt64BE(transmit, 40);
  return Buffer.concat([ip, udp, ntp]);
}

t.test('every link type we read, the direction where the link layer tells it, and IPv6', async (t) => {
  const ip = ipv4Udp('10.1.2.3', 40000, 123);
  const sll = Buffer.concat([Buffer.from([0, 4, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0x08, 0x00]), ip]); // PACKET_OUTGOING
  const sll2 = Buffer.concat([Buffer.from([0x08, 0x00, 0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0]), ip]); // PACKET_HOST
  const vlan = Buffer.concat([Buffer.alloc(12), Buffer.from([0x81, 0x00, 0x00, 0x05, 0x08, 0x00]), ip]);
  const loop = Buffer.concat([Buffer.from([0, 0, 0, 2]), ip]);
  for (const [name, type, packet, outgoing] of [
    ['LINUX_SLL sent', LinkType.LinuxSll, sll, true], ['LINUX_SLL2 received', LinkType.LinuxSll2, sll2, false],
    ['EN10MB with a VLAN tag', LinkType.Ethernet, vlan, null], ['LOOP', LinkType.Loop, loop, null], ['RAW', LinkType.Raw, ip, null],
  ] as const) {
    const [d] = datagrams(new PcapReader().push(stream(type, [packet])));
    t.match(d, { address: '10.1.2.3', port: 40000, destinationPort: 123, outgoing, transmitHi: 0x11223344, transmitLo: 0x55667788, kernelNs: 1_800_000_000_000_123_456n }, name);
  }
  const [us] = datagrams(new PcapReader().push(stream(LinkType.Raw, [ip], false)));
  t.equal(us!.kernelNs, 1_800_000_000_123_456_000n, 'microsecond stamps scaled to ns');

  const v6 = Buffer.alloc(40);
  v6[0] = 0x60; v6[6] = 17; v6.set([0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], 8);
  const [d6] = datagrams(new PcapReader().push(stream(LinkType.Ipv6, [Buffer.concat([v6, ip.subarray(20)])])));
  t.equal(d6!.address, 'fe80::1');
  t.equal(datagramKey('fe80::1%eth0', 40000, ip.subarray(28)), requestKey('fe80::1', 40000, 0x11223344, 0x55667788), 'the zone rinfo carries is not part of the key');
});

t.test('IPv6 addresses print as Node prints them', async (t) => {
  const cases: Array<[number[], string]> = [
    [[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1], '2001:db8::1:0:0:1'],
    [[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], '::'],
    [[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], '::1'],
    [[0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1], '2001:db8:1:1:1:1:1:1'],
    [[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1], '2001:db8:0:1:1:1:1:1'],
    [[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1], '::ffff:10.0.0.1'],
  ];
  for (const [bytes, text] of cases) t.equal(formatIpv6(Uint8Array.from(bytes)), text);
});

t.test('what is not a request is skipped; a stream that is not pcap is broken once', async (t) => {
  const tcp = ipv4Udp('10.1.2.3', 1, 123); tcp[9] = 6;
  const fragment = ipv4Udp('10.1.2.3', 1, 123); fragment[6] = 0x20;
  const short = ipv4Udp('10.1.2.3', 1, 123).subarray(0, 60);
  const events = new PcapReader().push(stream(LinkType.Raw, [tcp, fragment, short, Uint8Array.of(0x99)]));
  t.same(events.map((e) => (e.kind === 'skipped' ? e.reason : e.kind)), ['not UDP', 'IPv4 fragment', 'too short for an NTP packet', 'not IP (ethertype 0x0)']);

  const text = new PcapReader();
  t.match(text.push(Buffer.from('tcpdump: listening on any, link-type LINUX_SLL2\n')), [{ kind: 'broken', reason: /not a pcap stream/ }]);
  t.same(text.push(stream(LinkType.Raw, [tcp])), [], 'nothing after broken');
  const link = stream(147, []);
  t.match(new PcapReader().push(link), [{ kind: 'broken', reason: 'link type 147 not read' }]);
  const huge = Buffer.from(stream(LinkType.Raw, [tcp]));
  huge.writeUInt32BE(0x7fffffff, 24 + 8);
  const r = new PcapReader();
  t.match(r.push(huge), [{ kind: 'broken', reason: /record of 2147483647 bytes/ }]);
  t.equal(r.buffered, 0, 'a broken stream holds no bytes');
});

t.test('hostile and truncated streams never throw and hold at most one record', async (t) => {
  const valid = golden('tcpdump-any-sll2-ns.hex');
  const arbitrary = fc.oneof(
    fc.uint8Array({ maxLength: 600 }),
    // A real header followed by random records: the record walk, not the magic check, is tried.
    fc.uint8Array({ maxLength: 600 }).map((tail) => Uint8Array.from([...valid.subarray(0, 24), ...tail])),
    // The real stream with a few bytes changed and cut short.
    fc.tuple(fc.array(fc.tuple(fc.nat({ max: valid.length - 1 }), fc.nat({ max: 255 })), { maxLength: 6 }), fc.nat({ max: valid.length }))
      .map(([edits, cut]) => { const b = Uint8Array.from(valid); for (const [i, v] of edits) b[i] = v; return b.subarray(0, cut); }),
  );
  let runs = 0;
  fc.assert(fc.property(arbitrary, fc.array(fc.nat({ max: 600 }), { maxLength: 4 }), (bytes, cuts) => {
    const r = new PcapReader();
    let at = 0;
    const events: PcapEvent[] = [];
    for (const cut of [...cuts.sort((a, b) => a - b), bytes.length]) {
      events.push(...r.push(bytes.subarray(at, Math.max(at, Math.min(cut, bytes.length)))));
      at = Math.max(at, Math.min(cut, bytes.length));
      if (r.buffered > 24 + 16 + 65_535) throw new Error(`holds ${r.buffered} bytes`);
    }
    for (const d of datagrams(events)) {
      if (!(d.port >= 0 && d.port <= 65535 && d.kernelNs >= 0n)) throw new Error(`bad datagram ${JSON.stringify(d, (_, v) => (typeof v === 'bigint' ? String(v) : v))}`);
    }
    if (events.filter((e) => e.kind === 'broken').length > 1) throw new Error('broken twice');
    runs++;
  }), { seed: seedFromEnv(1414), interruptAfterTimeLimit: budgetMs, numRuns: Number.MAX_SAFE_INTEGER });
  t.ok(runs > 100, `${runs} streams read without a throw`);
});
