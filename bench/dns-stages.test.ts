import t from 'tap';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { captured, inside, stages } from './dns-stages.js';
import { encodeName } from '../services/dns/name.js';

// The miss breakdown from a capture: a synthetic pcap (Ethernet link, as tcpdump writes on lo) with
// one forwarded miss (query, upstream query, upstream reply, answer), one miss answered without an
// upstream query (shed) and one never answered gives each stage its time, and garbage gives nothing.

function dns(id: number, name: string): Buffer {
  const q = Buffer.alloc(12);
  q.writeUInt16BE(id, 0);
  q.writeUInt16BE(1, 4);
  return Buffer.concat([q, Buffer.from(encodeName(name)), Buffer.from([0, 1, 0, 1])]);
}

function packet(tMs: number, sport: number, dport: number, payload: Buffer): Buffer {
  const eth = Buffer.alloc(14);
  eth.writeUInt16BE(0x0800, 12);
  const ip = Buffer.alloc(20);
  ip[0] = 0x45; ip[9] = 17;
  const udp = Buffer.alloc(8);
  udp.writeUInt16BE(sport, 0); udp.writeUInt16BE(dport, 2);
  const data = Buffer.concat([eth, ip, udp, payload]);
  const rec = Buffer.alloc(16);
  rec.writeUInt32LE(Math.floor(tMs / 1000), 0);
  rec.writeUInt32LE(Math.round((tMs % 1000) * 1000), 4);
  rec.writeUInt32LE(data.length, 8); rec.writeUInt32LE(data.length, 12);
  return Buffer.concat([rec, data]);
}

/** A pcap file header: little-endian, version 2.4, snaplen 262144, Ethernet. */
const PCAP_HEADER = Buffer.alloc(24);
PCAP_HEADER.writeUInt32LE(0xa1b2c3d4, 0); PCAP_HEADER.writeUInt16LE(2, 4); PCAP_HEADER.writeUInt16LE(4, 6); PCAP_HEADER.writeUInt32LE(262144, 16); PCAP_HEADER.writeUInt32LE(1, 20);
/** The ports of the two tests' captures: lanha's forwarder F and upstream socket U, the client C, the upstream's P. */
const F = 5300, U = 5301, C = 40000, P = 41000;

function scratch(t: { teardown(fn: () => void): void }, prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

t.test('each forwarded miss is split into in / upstream / out; shed and unanswered ones are counted apart', async (t) => {
  const dir = scratch(t, 'lanha-stages-');
  const file = join(dir, 'c.pcap');
  writeFileSync(file, Buffer.concat([PCAP_HEADER,
    packet(1000, C, F, dns(7, 'A1.m.test')), packet(1000.5, P, U, dns(99, 'a1.m.test')), packet(1002.5, U, P, dns(99, 'a1.m.test')), packet(1003, F, C, dns(7, 'a1.m.test')),
    packet(1010, C, F, dns(8, 'b2.m.test')), packet(1010.25, F, C, dns(8, 'b2.m.test')),
    packet(1020, C, F, dns(9, 'c3.m.test')),
  ]));
  const s = stages(file, F, U);
  t.same([s.answered, s.forwarded, s.unanswered], [2, 1, 1]);
  t.equal(s.in_p99, 0.5, 'query in -> upstream query out');
  t.equal(s.up_p99, 2, 'the upstream');
  t.equal(s.out_p99, 0.5, 'upstream reply in -> answer out');
  t.equal(s.own_p99, 1, 'in + out');
  t.equal(s.other_p99, 0.25, 'answered without an upstream query');
  writeFileSync(file, Buffer.from('not a capture at all, but long enough to look like one'));
  t.same(stages(file, F, U).answered, 0, 'garbage: nothing paired, no throw');
});

t.test('inside: the capture joined with the process\'s trace splits the own part into queue waits and work, and says what the process did meanwhile', async (t) => {
  const dir = scratch(t, 'lanha-inside-');
  const base = 1_700_000_000_000;
  const file = join(dir, 'c.pcap');
  // One miss: query in at +0, upstream query out at +10 (read at +8: 8 ms in the queue), upstream
  // reply in at +12, read at +13, answer out at +14.
  writeFileSync(file, Buffer.concat([PCAP_HEADER,
    packet(base, C, F, dns(7, 'a1.m.test')), packet(base + 10, P, U, dns(99, 'a1.m.test')), packet(base + 12, U, P, dns(99, 'a1.m.test')), packet(base + 14, F, C, dns(7, 'a1.m.test')),
  ]));
  const us = (ms: number): number => Math.round((base + ms) * 1000);
  mkdirSync(join(dir, 'trace'));
  writeFileSync(join(dir, 'trace', 'trace.1'), [
    `M a1.m.test ${us(8)} ${us(10)} ${us(13)} ${us(14)}`,
    `G ${us(2)} 5000 0`, // a 5 ms scavenge while the query waited
    `G ${us(20)} 3000 1`, // one after the miss: not in it
    `R ${us(0)} 0 0`, `R ${us(10)} 6000000 3000000`, `R ${us(20)} 8000000 3000000`,
  ].join('\n') + '\n');
  const raw = inside(captured(file, F, U), join(dir, 'trace'));
  const i = Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, Math.round(v * 1000) / 1000]));
  t.equal(i.joined, 1);
  t.equal(i.qwait_p99, 8, 'query arrived -> read');
  t.equal(i.jsin_p99, 2, 'read -> upstream query');
  t.equal(i.rwait_p99, 1, 'reply arrived -> read');
  t.equal(i.jsout_p99, 1, 'read -> answer');
  t.equal(i.slow_own, 12, 'own: 14 ms less the upstream\'s 2');
  t.equal(i.slow_gc, 5, 'the scavenge inside the own part');
  t.equal(i.slow_in_gc, 1);
  t.equal(i.slow_runq, 3, 'the run-queue wait of the first 10 ms (3 ms), none after');
  t.equal(i.slow_ran, 6.4, 'CPU: 6 ms up to the upstream query, 0.2 ms a ms after the reply');
  mkdirSync(join(dir, 'empty'));
  t.equal(inside(captured(file, F, U), join(dir, 'empty')).joined, 0, 'no trace files: nothing joined');
});
