import t from 'tap';
import fc from 'fast-check';
import { Fsm } from '../../cluster/fsm.js';
import { MemoryStateLog } from '../../cluster/state-log.js';
import { parseCidr, parseIpv4 } from '../../lib/ipv4.js';
import { silentLogger } from '../../lib/log.js';
import { cryptoRandom } from '../../lib/random.js';
import { parseConfig } from '../../config/index.js';
import { ManualClock } from '../../test/support/manual-clock.js';
import { ephemeralPorts } from '../../test/support/ports.js';
import { formatRdata } from './rdata.js';
import { nameKey, readName } from './name.js';
import { RCODE, T } from './wire.js';
import { buildZoneSet, reverseZoneName, type ZoneInput } from './zone.js';
import { DnsServer } from './server.js';

const lan: ZoneInput = {
  name: 'lan', ttl: 3_600_000, negativeTtl: 60_000, primary: 'ns1.lan', records: [
    '@ NS ns1', 'ns1 A 10.20.0.2', 'www A 10.20.0.80', 'www AAAA fd00::80', 'boot CNAME www', 'ext CNAME host.example.',
    'loop1 CNAME loop2', 'loop2 CNAME loop1', '@ MX 10 mail', 'mail A 10.20.0.25', '_ntp._udp SRV 0 0 123 ns1', 'a.b.deep A 10.20.0.9',
    'node07 A 10.20.0.99',
  ], leases: true,
};

const texts = (rs: ReadonlyArray<{ type: number; rdata: Uint8Array }>): string[] => rs.map((r) => formatRdata(r.type, r.rdata));

t.test('authoritative semantics: answers, CNAME chase, NXDOMAIN vs NODATA, empty non-terminals, glue', async (t) => {
  const z = buildZoneSet({ zones: [lan], reverseSubnets: [parseCidr('10.20.0.0/24')!], leaseNames: [], operatorRecords: [], serial: 5 });
  t.same(z.warnings, []);
  const www = z.resolve('WwW.LaN', T.A)!;
  t.equal(www.rcode, RCODE.NOERROR);
  t.equal(www.answers[0]!.name, 'WwW.LaN', 'owner echoes the question case');
  t.same(texts(www.answers), ['10.20.0.80']);
  const boot = z.resolve('boot.lan', T.A)!;
  t.same(texts(boot.answers), ['www.lan.', '10.20.0.80'], 'CNAME then the target A');
  t.same(texts(z.resolve('boot.lan', T.CNAME)!.answers), ['www.lan.'], 'CNAME asked directly is not chased');
  t.same(texts(z.resolve('ext.lan', T.A)!.answers), ['host.example.'], 'out-of-zone target left to the resolver');
  t.ok(z.resolve('loop1.lan', T.A)!.answers.length <= 8, 'CNAME loop bounded');
  const nx = z.resolve('nope.lan', T.A)!;
  t.equal(nx.rcode, RCODE.NXDOMAIN);
  t.equal(nx.authority[0]!.type, T.SOA);
  t.equal(nx.authority[0]!.ttl, 60, 'negative TTL = min(SOA TTL, minimum)');
  t.match(texts(nx.authority)[0]!, /^ns1\.lan\. hostmaster\.lan\. 5 /, 'serial from the replicated state');
  const nodata = z.resolve('www.lan', T.TXT)!;
  t.equal(nodata.rcode, RCODE.NOERROR);
  t.same(nodata.answers, []);
  t.equal(nodata.authority[0]!.type, T.SOA);
  t.equal(z.resolve('b.deep.lan', T.A)!.rcode, RCODE.NOERROR, 'empty non-terminal is NODATA, not NXDOMAIN (RFC 8020)');
  const mx = z.resolve('lan', T.MX)!;
  t.same(texts(mx.additional), ['10.20.0.25'], 'MX target address in additional');
  t.same(texts(z.resolve('_ntp._udp.lan', T.SRV)!.additional), ['10.20.0.2']);
  t.equal(z.resolve('example.com', T.A), null, 'not ours');
  t.equal(z.resolve('lan', T.ANY)!.answers.length >= 1, true, 'ANY gets one RRset (RFC 8482)');
  const types = new Set(z.resolve('lan', T.ANY)!.answers.map((r) => r.type));
  t.equal(types.size, 1);
  // reverse zone from the subnet, PTRs from static A records
  t.same(texts(z.resolve('80.0.20.10.in-addr.arpa', T.PTR)!.answers), ['www.lan.']);
  t.equal(z.resolve('81.0.20.10.in-addr.arpa', T.PTR)!.rcode, RCODE.NXDOMAIN);
  t.equal(reverseZoneName(parseCidr('10.20.0.0/16')!), '20.10.in-addr.arpa');
  t.equal(reverseZoneName(parseCidr('10.20.16.0/20')!), '20.10.in-addr.arpa');
});

t.test('lease names: appear and vanish with the lease, static wins, first holder keeps a name', async (t) => {
  const clock = new ManualClock();
  const fsm = new Fsm();
  const state = new MemoryStateLog(fsm, clock);
  const config = parseConfig(`
node: { name: t1, role: server, address: 127.0.0.1, stateDir: /tmp/lanha-dns-zone-test, controlSocket: /tmp/lanha-dns-zone-test.sock }
dhcp:
  subnets:
    - subnet: 10.20.0.0/24
      pools: [10.20.0.100-10.20.0.199]
      reservations: [{ mac: "52:54:00:00:00:09", ip: 10.20.0.9, hostname: reserved9 }]
dns:
  zones:
    - name: lan
      leases: true
      records: ["node07 A 10.20.0.99"]
`);
  const dns = new DnsServer({ config, log: silentLogger, clock, random: cryptoRandom, state });
  const serial0 = dns.zones.serial;
  const ip = (s: string): number => parseIpv4(s)!;
  await state.propose({ type: 'lease.grant', ip: ip('10.20.0.150'), mac: '02:00:00:00:00:01', hostname: 'Pi-One', subnet: '10.20.0.0/24', leaseMs: 3_600_000 });
  dns.rebuild();
  t.ok(dns.zones.serial > serial0, 'serial went up');
  t.same(texts(dns.zones.resolve('pi-one.lan', T.A)!.answers), ['10.20.0.150']);
  t.same(texts(dns.zones.resolve('150.0.20.10.in-addr.arpa', T.PTR)!.answers), ['pi-one.lan.']);
  // A static name is not taken over by a lease.
  await state.propose({ type: 'lease.grant', ip: ip('10.20.0.151'), mac: '02:00:00:00:00:02', hostname: 'node07', subnet: '10.20.0.0/24', leaseMs: 3_600_000 });
  // Another client claiming an existing lease name does not take it.
  clock.advance(1000);
  await state.propose({ type: 'lease.grant', ip: ip('10.20.0.152'), mac: '02:00:00:00:00:03', hostname: 'pi-one', subnet: '10.20.0.0/24', leaseMs: 3_600_000 });
  // A reservation's host name is used when the client sends none.
  await state.propose({ type: 'lease.grant', ip: ip('10.20.0.9'), mac: '52:54:00:00:00:09', subnet: '10.20.0.0/24', leaseMs: 3_600_000 });
  dns.rebuild();
  t.same(texts(dns.zones.resolve('node07.lan', T.A)!.answers), ['10.20.0.99'], 'static record wins');
  t.same(texts(dns.zones.resolve('pi-one.lan', T.A)!.answers), ['10.20.0.150'], 'first holder keeps the name');
  t.equal(dns.zones.resolve('152.0.20.10.in-addr.arpa', T.PTR)!.rcode, RCODE.NXDOMAIN, 'no PTR for a refused name');
  t.same(texts(dns.zones.resolve('reserved9.lan', T.A)!.answers), ['10.20.0.9'], 'reservation name');
  t.ok(dns.zones.warnings.some((w) => w.includes('static record wins')));
  const serial1 = dns.zones.serial;
  await state.propose({ type: 'lease.release', ip: ip('10.20.0.150'), mac: '02:00:00:00:00:01' });
  dns.rebuild();
  t.ok(dns.zones.serial > serial1, 'serial went up on release');
  t.same(texts(dns.zones.resolve('pi-one.lan', T.A)!.answers), ['10.20.0.152'], 'the waiting claimant gets the freed name');
  t.equal(dns.zones.resolve('150.0.20.10.in-addr.arpa', T.PTR)!.rcode, RCODE.NXDOMAIN, 'PTR gone with the lease');
  await state.propose({ type: 'lease.release', ip: ip('10.20.0.152'), mac: '02:00:00:00:00:03' });
  dns.rebuild();
  t.equal(dns.zones.resolve('pi-one.lan', T.A)!.rcode, RCODE.NXDOMAIN, 'name gone with the last lease');
  // Operator records from the log.
  await state.propose({ type: 'dns.set', name: 'printer.lan', rrtype: 'A', ttl: 120, data: '10.20.0.60' });
  dns.rebuild();
  const printer = dns.zones.resolve('printer.lan', T.A)!;
  t.same(texts(printer.answers), ['10.20.0.60']);
  t.equal(printer.answers[0]!.ttl, 120);
  t.ok(dns.zones.list().some((r) => r.name === 'printer.lan' && r.source === 'operator'));
  await dns.stop();
});

t.test('lease names follow the replicated state by subscription (no explicit rebuild)', async (t) => {
  const clock = new ManualClock();
  const state = new MemoryStateLog(new Fsm(), clock);
  const config = ephemeralPorts(parseConfig(`
node: { name: t2, role: server, address: 127.0.0.1, stateDir: /tmp/lanha-dns-zone-test, controlSocket: /tmp/lanha-dns-zone-test2.sock }
dns: { listen: [127.0.0.1], subnets: [10.30.0.0/24], zones: [{ name: rack.lan, leases: true }] }
`));
  const dns = new DnsServer({ config, log: silentLogger, clock, random: cryptoRandom, state });
  await dns.start();
  await state.propose({ type: 'lease.grant', ip: parseIpv4('10.30.0.7')!, mac: '02:00:00:00:00:07', hostname: 'n7', subnet: '10.30.0.0/24', leaseMs: 60_000 });
  await new Promise((r) => setImmediate(r));
  t.same(texts(dns.zones.resolve('n7.rack.lan', T.A)!.answers), ['10.30.0.7']);
  await dns.stop();
});

t.test('property: lookups are case-insensitive and answers echo the asked case', async (t) => {
  const z = buildZoneSet({ zones: [lan], reverseSubnets: [], leaseNames: [], operatorRecords: [], serial: 1 });
  const names = ['www.lan', 'boot.lan', 'lan', 'nope.lan', 'a.b.deep.lan', 'b.deep.lan', '_ntp._udp.lan'];
  fc.assert(fc.property(fc.constantFrom(...names), fc.array(fc.boolean(), { maxLength: 20 }), fc.constantFrom(T.A, T.AAAA, T.MX, T.TXT, T.SRV, T.CNAME, T.NS, T.SOA), (name, flips, type) => {
    const mixed = [...name].map((c, i) => (flips[i % Math.max(1, flips.length)] ? c.toUpperCase() : c)).join('');
    const a = z.resolve(name, type)!;
    const b = z.resolve(mixed, type)!;
    if (a.rcode !== b.rcode || a.answers.length !== b.answers.length) return false;
    if (b.answers.length > 0 && b.answers[0]!.name !== mixed) return false;
    return a.answers.every((r, i) => r.type === b.answers[i]!.type && Buffer.compare(r.rdata, b.answers[i]!.rdata) === 0);
  }), { numRuns: 300 });
  t.pass('case-insensitive');
});

t.test('property: every name that resolves NOERROR with answers has records in list(); NXDOMAIN names have none', async (t) => {
  fc.assert(fc.property(fc.array(fc.tuple(fc.stringMatching(/^[a-z]{1,3}$/), fc.integer({ min: 1, max: 254 })), { maxLength: 15 }), fc.stringMatching(/^[a-z]{1,3}$/), (recs, probe) => {
    const zone: ZoneInput = { name: 'p.lan', ttl: 60_000, negativeTtl: 30_000, records: recs.map(([n, o]) => `${n} A 10.9.0.${o}`), leases: false };
    const z = buildZoneSet({ zones: [zone], reverseSubnets: [parseCidr('10.9.0.0/24')!], leaseNames: [], operatorRecords: [], serial: 1 });
    const listed = new Set(z.list().filter((r) => r.type === 'A').map((r) => r.name));
    const r = z.resolve(`${probe}.p.lan`, T.A)!;
    return listed.has(`${probe}.p.lan`) ? r.answers.length > 0 : r.rcode === RCODE.NXDOMAIN;
  }), { numRuns: 200 });
  t.pass('list and resolve agree');
});

t.test('lease names go to the zone named by their subnet\'s domain when there is one', async (t) => {
  const zone = (name: string): ZoneInput => ({ name, ttl: 60_000, negativeTtl: 30_000, records: [], leases: true });
  const z = buildZoneSet({
    zones: [zone('rack.lan'), zone('lab.lan')], reverseSubnets: [], operatorRecords: [], serial: 2,
    leaseNames: [
      { ip: parseIpv4('10.1.0.5')!, hostname: 'a', grantedAt: 1, source: 'lease', domain: 'lab.lan' },
      { ip: parseIpv4('10.2.0.5')!, hostname: 'b', grantedAt: 1, source: 'lease' },
    ],
  });
  t.equal(z.resolve('a.lab.lan', T.A)!.answers.length, 1);
  t.equal(z.resolve('a.rack.lan', T.A)!.rcode, RCODE.NXDOMAIN, 'not in the other lease zone');
  t.equal(z.resolve('b.lab.lan', T.A)!.answers.length, 1, 'no domain: every lease zone');
  t.equal(z.resolve('b.rack.lan', T.A)!.answers.length, 1);
});

t.test('a lease or node name that is the apex of another zone of ours is not published (it would sit in the parent zone\'s AXFR)', async (t) => {
  const zone = (name: string, leases: boolean, records: string[] = []): ZoneInput => ({ name, ttl: 60_000, negativeTtl: 30_000, records, leases });
  const z = buildZoneSet({
    zones: [zone('lan', true), zone('mgmt.lan', false, ['bmc1 A 10.0.0.9'])], reverseSubnets: [parseCidr('10.0.0.0/24')!], operatorRecords: [], serial: 2,
    leaseNames: [
      { ip: parseIpv4('10.0.0.99')!, hostname: 'MGMT', grantedAt: 1, source: 'lease', domain: 'lan' },
      { ip: parseIpv4('10.0.0.98')!, hostname: 'mgmt', grantedAt: 1, source: 'inventory', domain: 'lan' },
      { ip: parseIpv4('10.0.0.97')!, hostname: 'fine', grantedAt: 1, source: 'lease', domain: 'lan' },
    ],
  });
  const lan = z.zones.find((x) => x.origin === 'lan')!;
  t.equal(lan.nodes.get('mgmt.lan'), undefined, 'zone lan holds nothing at mgmt.lan');
  t.same(['99', '98', '97'].map((n) => z.resolve(`${n}.0.0.10.in-addr.arpa`, T.PTR)!.answers.length), [0, 0, 1], 'and no PTR names it');
  t.equal(z.resolve('fine.lan', T.A)!.answers.length, 1, 'other names are published');
  t.same(z.warnings.filter((w) => /apex/.test(w)).length, 2, 'each refusal is a warning');
  t.match(z.warnings.join('\n'), /lease 10\.0\.0\.99: name mgmt\.lan is the apex of a zone of ours; not published/);
});

t.test('wildcards (RFC 4592): names that do not exist under the closest encloser, never existing names', async (t) => {
  const z = buildZoneSet({
    zones: [{ name: 'lan', ttl: 600_000, negativeTtl: 60_000, leases: true, records: [
      '*.apps A 10.20.0.50', '*.apps TXT "wild"', 'real.apps A 10.20.0.51', 'x.deep.apps A 10.20.0.52', '*.alias CNAME real.apps',
    ] }],
    reverseSubnets: [], leaseNames: [{ ip: parseIpv4('10.20.0.60')!, hostname: 'leased', grantedAt: 1, source: 'lease' }], operatorRecords: [], serial: 3,
  });
  t.same(z.warnings, []);
  const a = z.resolve('Foo.Apps.lan', T.A)!;
  t.same([a.rcode, texts(a.answers), a.answers[0]!.name], [RCODE.NOERROR, ['10.20.0.50'], 'Foo.Apps.lan'], 'synthesised with the asked name as owner');
  t.same(texts(z.resolve('x.y.apps.lan', T.A)!.answers), ['10.20.0.50'], 'several labels below the encloser');
  t.same(texts(z.resolve('real.apps.lan', T.A)!.answers), ['10.20.0.51'], 'an existing name is not covered');
  const nodata = z.resolve('real.apps.lan', T.TXT)!;
  t.same([nodata.rcode, nodata.answers.length], [RCODE.NOERROR, 0], 'nor is another type at an existing name (NODATA)');
  const ent = z.resolve('deep.apps.lan', T.A)!;
  t.same([ent.rcode, ent.answers.length], [RCODE.NOERROR, 0], 'an empty non-terminal exists: NODATA, no wildcard');
  const below = z.resolve('q.deep.apps.lan', T.A)!;
  t.equal(below.rcode, RCODE.NXDOMAIN, 'the closest encloser deep.apps has no wildcard: NXDOMAIN');
  const wildNodata = z.resolve('foo.apps.lan', T.AAAA)!;
  t.same([wildNodata.rcode, wildNodata.answers.length, wildNodata.authority[0]?.type], [RCODE.NOERROR, 0, T.SOA], 'a wildcard without the type: NODATA');
  t.equal(z.resolve('apps.lan', T.A)!.rcode, RCODE.NOERROR, 'the wildcard\'s parent is an empty non-terminal');
  t.equal(z.resolve('nothing.lan', T.A)!.rcode, RCODE.NXDOMAIN, 'no wildcard at the apex: NXDOMAIN');
  const chased = z.resolve('any.alias.lan', T.A)!;
  t.same(chased.answers.map((r) => r.type), [T.CNAME, T.A], 'a wildcard CNAME is chased');
  t.same(texts(z.resolve('leased.lan', T.A)!.answers), ['10.20.0.60'], 'lease names are unaffected');
});

/** A DNS server over an in-memory state log, with DHCP subnets `subnets` (YAML list lines) and `zones` (YAML flow list). */
async function leaseDns(tag: string, subnets: string, zones: string): Promise<{ clock: ManualClock; state: MemoryStateLog; dns: DnsServer; settle: () => Promise<void> }> {
  const clock = new ManualClock(Date.UTC(2026, 11, 1));
  const state = new MemoryStateLog(new Fsm(), clock);
  const settle = async (): Promise<void> => { clock.advance(1000); await new Promise((r) => setTimeout(r, 0)); };
  const config = ephemeralPorts(parseConfig(`
node: { name: t3, role: server, address: 127.0.0.1, stateDir: /tmp/lanha-dns-${tag}-test, controlSocket: /tmp/lanha-dns-${tag}-test.sock }
dhcp:
  subnets:
${subnets}
dns: { listen: [127.0.0.1], workers: 0, zones: ${zones} }
`));
  const dns = new DnsServer({ config, log: silentLogger, clock, random: cryptoRandom, state });
  await dns.start();
  return { clock, state, dns, settle };
}
const ip = (s: string): number => parseIpv4(s)!;

t.test('inventory nodes: A + PTR under their subnet\'s domain, before any lease; a lease never takes a node\'s name', async (t) => {
  const { state, dns, settle } = await leaseDns('inv', `
    - { subnet: 10.40.0.0/24, pools: [10.40.0.100-10.40.0.120], domain: rack.lan }
    - { subnet: 10.41.0.0/24, pools: [10.41.0.100-10.41.0.120], domain: lab.lan }`, '[{ name: rack.lan, leases: false }, { name: lab.lan, leases: true }]');
  const serial0 = dns.zones.serial;
  await state.propose({ type: 'node.add', name: 'rack1', mac: '52:54:00:00:04:01', ip: ip('10.40.0.21') });
  await state.propose({ type: 'node.add', name: 'lab1', mac: '52:54:00:00:04:02' });
  // A client claiming a node's name, and the pool node's own lease (its hostname is its node name).
  await state.propose({ type: 'lease.grant', ip: ip('10.41.0.100'), mac: '52:54:00:00:04:09', hostname: 'rack1', subnet: '10.41.0.0/24', leaseMs: 3_600_000 });
  await state.propose({ type: 'lease.grant', ip: ip('10.41.0.101'), mac: '52:54:00:00:04:02', hostname: 'lab1', subnet: '10.41.0.0/24', leaseMs: 3_600_000 });
  await new Promise((r) => setImmediate(r));
  t.ok(dns.zones.serial > serial0, 'the serial moved');
  t.same(texts(dns.zones.resolve('rack1.rack.lan', T.A)!.answers), ['10.40.0.21'], 'reserved IP, in its subnet\'s domain zone (leases: false there)');
  t.same(texts(dns.zones.resolve('21.0.40.10.in-addr.arpa', T.PTR)!.answers), ['rack1.rack.lan.'], 'and its PTR');
  t.same(texts(dns.zones.resolve('lab1.lab.lan', T.A)!.answers), ['10.41.0.101'], 'a node without IP: named by its lease');
  t.same(texts(dns.zones.resolve('101.0.41.10.in-addr.arpa', T.PTR)!.answers), ['lab1.lab.lan.']);
  t.equal(dns.zones.resolve('rack1.lab.lan', T.A)!.answers.length, 1, 'the client named "rack1" gets it only in another zone, not the node\'s');
  t.ok(dns.zones.list().some((r) => r.name === 'rack1.rack.lan' && r.source === 'inventory'), 'listed as inventory');
  await settle();
  await state.propose({ type: 'node.set', name: 'rack1', ip: ip('10.40.0.22') });
  await settle();
  t.same(texts(dns.zones.resolve('rack1.rack.lan', T.A)!.answers), ['10.40.0.22'], 'follows node.set without an explicit rebuild');
  await settle();
  await state.propose({ type: 'node.remove', name: 'rack1' });
  await settle();
  t.equal(dns.zones.resolve('rack1.rack.lan', T.A)!.rcode, RCODE.NXDOMAIN, 'gone with the node');
  await dns.stop();
});

t.test('inventory names win over earlier leases with the same name in the same zone', async (t) => {
  const zone: ZoneInput = { name: 'lan', ttl: 60_000, negativeTtl: 30_000, records: [], leases: true };
  const z = buildZoneSet({
    zones: [zone], reverseSubnets: [parseCidr('10.9.0.0/24')!], operatorRecords: [], serial: 2,
    leaseNames: [
      { ip: parseIpv4('10.9.0.5')!, hostname: 'n1', grantedAt: 1, source: 'lease' },
      { ip: parseIpv4('10.9.0.6')!, hostname: 'n1', grantedAt: 99, source: 'inventory' },
    ],
  });
  t.same(texts(z.resolve('n1.lan', T.A)!.answers), ['10.9.0.6']);
  t.ok(z.warnings.some((w) => w.includes('10.9.0.5') && w.includes('inventory node')));
});

t.test('property: holdsWire (a name\'s bytes) says what find says of its decoded text', async (t) => {
  const corp: ZoneInput = { name: 'Corp.Example', ttl: 60_000, negativeTtl: 30_000, records: [], leases: false };
  const z = buildZoneSet({ zones: [lan, corp], reverseSubnets: [parseCidr('10.20.0.0/24')!], leaseNames: [], operatorRecords: [], serial: 1 });
  const none = buildZoneSet({ zones: [], reverseSubnets: [], leaseNames: [], operatorRecords: [], serial: 1 });
  const labels = ['lan', 'LaN', 'rack', 'corp', 'CORP', 'example', 'in-addr', 'arpa', '20', '10', '0', 'x.y', 'lan\\', 'an', 'a'];
  fc.assert(fc.property(fc.array(fc.constantFrom(...labels), { maxLength: 7 }), fc.integer({ min: 0, max: 3 }), (parts, pad) => {
    // The name's wire form at an offset, with bytes after it (holdsWire reads only [start, end)).
    const body = parts.flatMap((l) => [l.length, ...Buffer.from(l, 'latin1')]);
    const msg = Uint8Array.from([...new Array(pad).fill(7), ...body, 0, 9, 9]);
    const end = pad + body.length + 1;
    const text = readName(msg, pad)!.name;
    return z.holdsWire(msg, pad, end) === (z.find(nameKey(text)) !== null) && !none.holdsWire(msg, pad, end);
  }), { numRuns: 2000 });
  t.equal(z.holdsWire(Uint8Array.from([3, 0x6c, 0x61, 0x6e, 0]), 0, 5), true, 'the apex itself');
  t.equal(z.holdsWire(Uint8Array.from([4, 0x78, 0x6c, 0x61, 0x6e, 0]), 0, 6), false, '"xlan" is not under "lan"');
  t.equal(z.holdsWire(Uint8Array.from([0]), 0, 1), false, 'the root is not ours');
});

t.test('one MAC bound in two subnets: every live binding is named, and a release of one keeps the other', async (t) => {
  // An inventory node without an IP (and a plain client) holding a lease in two subnets behind two
  // relays: each binding gets its A + PTR in its own subnet's domain, two bindings in one domain
  // share the name; when the newer binding ends, the older one keeps its name.
  const { state, dns, settle } = await leaseDns('two', `
    - { subnet: 10.40.0.0/24, pools: [10.40.0.100-10.40.0.120], domain: rack.lan }
    - { subnet: 10.41.0.0/24, pools: [10.41.0.100-10.41.0.120], domain: lab.lan }
    - { subnet: 10.42.0.0/24, pools: [10.42.0.100-10.42.0.120], domain: lab.lan }`, '[{ name: rack.lan, leases: true }, { name: lab.lan, leases: true }]');
  const node = '52:54:00:00:05:01', client = '52:54:00:00:05:02';
  await state.propose({ type: 'node.add', name: 'lab2', mac: node });
  await state.propose({ type: 'lease.grant', ip: ip('10.41.0.100'), mac: node, hostname: 'lab2', subnet: '10.41.0.0/24', leaseMs: 3_600_000 });
  await state.propose({ type: 'lease.grant', ip: ip('10.41.0.101'), mac: client, hostname: 'vm1', subnet: '10.41.0.0/24', leaseMs: 3_600_000 });
  await settle();
  await state.propose({ type: 'lease.grant', ip: ip('10.40.0.100'), mac: node, hostname: 'lab2', subnet: '10.40.0.0/24', leaseMs: 3_600_000 });
  await state.propose({ type: 'lease.grant', ip: ip('10.42.0.100'), mac: node, hostname: 'lab2', subnet: '10.42.0.0/24', leaseMs: 3_600_000 });
  await state.propose({ type: 'lease.grant', ip: ip('10.42.0.101'), mac: client, hostname: 'vm1', subnet: '10.42.0.0/24', leaseMs: 3_600_000 });
  await settle();
  dns.rebuild();
  t.same(texts(dns.zones.resolve('lab2.rack.lan', T.A)!.answers), ['10.40.0.100'], 'the newest binding, in its domain');
  t.same(texts(dns.zones.resolve('lab2.lab.lan', T.A)!.answers).sort(), ['10.41.0.100', '10.42.0.100'], 'the node\'s two bindings in one domain share its name');
  t.same(texts(dns.zones.resolve('100.0.41.10.in-addr.arpa', T.PTR)!.answers), ['lab2.lab.lan.'], 'each binding has its PTR');
  t.same(texts(dns.zones.resolve('100.0.42.10.in-addr.arpa', T.PTR)!.answers), ['lab2.lab.lan.']);
  t.same(texts(dns.zones.resolve('vm1.lab.lan', T.A)!.answers).sort(), ['10.41.0.101', '10.42.0.101'], 'a plain client\'s two bindings too');
  t.same(texts(dns.zones.resolve('101.0.42.10.in-addr.arpa', T.PTR)!.answers), ['vm1.lab.lan.']);
  t.notOk(dns.zones.warnings.some((w) => w.includes('already belongs')), 'no warning that its own binding holds the name');
  await state.propose({ type: 'lease.release', ip: ip('10.40.0.100'), mac: node });
  await state.propose({ type: 'lease.release', ip: ip('10.42.0.100'), mac: node });
  await settle();
  dns.rebuild();
  t.equal(dns.zones.resolve('lab2.rack.lan', T.A)!.rcode, RCODE.NXDOMAIN, 'the released binding\'s name is gone');
  t.same(texts(dns.zones.resolve('lab2.lab.lan', T.A)!.answers), ['10.41.0.100'], 'the older binding, still live, keeps its name');
  await dns.stop();
});

t.test('a lease name that is a name our zones point at (NS, SOA primary, MX, SRV, CNAME, PTR, operator targets) is not published; reservation and node names are', async (t) => {
  const z = buildZoneSet({
    zones: [{ name: 'lan', ttl: 60_000, negativeTtl: 30_000, leases: true, primary: 'soa1.lan', records: ['@ NS ns1', '@ MX 10 mail', 'www CNAME web', '_x._tcp SRV 0 0 1 dc', 'nas A 10.0.0.5', '@ NS nas'] },
      { name: '0.0.10.in-addr.arpa', ttl: 60_000, negativeTtl: 30_000, leases: false, records: ['250 PTR printer.lan.'] }],
    reverseSubnets: [parseCidr('10.0.0.0/24')!], operatorRecords: [{ name: 'files.lan', rrtype: 'CNAME', ttl: 60, data: 'share' }], serial: 2,
    leaseNames: [
      ...['ns1', 'soa1', 'mail', 'web', 'dc', 'printer', 'share'].map((hostname, i) => ({ ip: parseIpv4(`10.0.0.${100 + i}`)!, hostname, grantedAt: 1, source: 'lease' as const })),
      { ip: parseIpv4('10.0.0.11')!, hostname: 'ns1', grantedAt: 1, source: 'reservation', owner: 'r' },
      { ip: parseIpv4('10.0.0.12')!, hostname: 'mail', grantedAt: 1, source: 'inventory', owner: 'n' },
      { ip: parseIpv4('10.0.0.99')!, hostname: 'fine', grantedAt: 1, source: 'lease' },
    ],
  });
  const a = (name: string): string[] => z.resolve(name, T.A)!.answers.map((r) => r.rdata.join('.'));
  t.same(['soa1', 'web', 'dc', 'printer', 'share'].map((n) => a(`${n}.lan`)), [[], [], [], [], []], 'no client address at a target');
  t.same(a('ns1.lan'), ['10.0.0.11'], 'the reservation fills the NS target');
  t.same(a('mail.lan'), ['10.0.0.12'], 'the inventory node fills the MX target');
  t.same(a('nas.lan'), ['10.0.0.5'], 'a target with its own record keeps it');
  t.same(a('fine.lan'), ['10.0.0.99'], 'other names are published');
  t.equal(z.warnings.filter((w) => /which no client may claim/.test(w)).length, 7, 'each refusal is a warning');
  t.match(z.warnings.join('\n'), /lease 10\.0\.0\.100: name ns1\.lan is the NS target of lan, which no client may claim; not published/);
});
