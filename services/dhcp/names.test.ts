// Proves issue 12's DHCP name and pool rules through the handler (no sockets) and the DNS zones
// built from the same replicated state: a reserved name is never taken over (not before the
// reserved client boots, not after), a lease name never takes over another client's lease name or a
// static DNS record, the second claimant gets no name and an info line names both MACs; a full pool
// is warned about (rate-limited), counted on its own counter and shown as used/total per pool.
import t from 'tap';
import { Fsm } from '../../cluster/fsm.js';
import { MemoryStateLog } from '../../cluster/state-log.js';
import { ManualClock } from '../../test/support/manual-clock.js';
import { ephemeralPorts } from '../../test/support/ports.js';
import { createLogger } from '../../lib/log.js';
import { cryptoRandom } from '../../lib/random.js';
import { formatIpv4, parseIpv4 } from '../../lib/ipv4.js';
import { parseConfig } from '../../config/index.js';
import { startDhcp } from './server.js';
import type { DhcpHandler } from './server.js';
import { DnsServer } from '../dns/server.js';
import { decodeDhcp, encodeDhcp, emptyMessage, BootOp } from './wire.js';
import { DhcpOption } from './options.js';
import { formatRdata } from '../dns/rdata.js';
import { T } from '../dns/wire.js';
import { nameHeldBy, type NameOwners } from '../names.js';

const CONFIG = `
node: { name: t1, address: 10.50.0.1, stateDir: /nonexistent, controlSocket: /nonexistent.sock }
dhcp:
  listen: 127.0.0.1
  serverId: 10.50.0.1
  subnets:
    - subnet: 10.50.0.0/24
      pools: [10.50.0.100-10.50.0.102]
      domain: lab.lan
      reservations:
        - { mac: "52:54:00:00:00:01", ip: 10.50.0.11, hostname: node01 }
dns:
  listen: [127.0.0.1]
  zones:
    - name: lab.lan
      leases: true
      records: ["printer A 10.50.0.250"]
`;

interface Lab { handler: DhcpHandler; fsm: Fsm; clock: ManualClock; logs: Array<Record<string, unknown>>; dns: DnsServer; stop: () => Promise<void> }

async function lab(text = CONFIG): Promise<Lab> {
  const config = ephemeralPorts(parseConfig(text), ['dhcp']); // DNS is built, never started
  const clock = new ManualClock(1_000_000, 1_700_000_000_000);
  const fsm = new Fsm();
  const state = new MemoryStateLog(fsm, clock);
  const logs: Array<Record<string, unknown>> = [];
  const log = createLogger({ level: 'info', destination: { write: (s: string) => { logs.push(JSON.parse(s) as Record<string, unknown>); } } });
  const dhcp = await startDhcp({ config, log, clock, random: cryptoRandom, state }) as Awaited<ReturnType<typeof startDhcp>> & { handler: DhcpHandler };
  const dns = new DnsServer({ config, log, clock, random: cryptoRandom, state });
  return { handler: dhcp.handler, fsm, clock, logs, dns, stop: () => dhcp.stop() };
}

function packet(type: number, mac: string, hostname?: string, requested?: string, clientId?: Uint8Array, extra: Array<[number, Uint8Array]> = []): Uint8Array {
  const m = emptyMessage();
  m.op = BootOp.Request;
  m.xid = 0x4242;
  m.chaddr.set(mac.split(':').map((h) => parseInt(h, 16)));
  m.options.set(DhcpOption.MessageType, Uint8Array.of(type));
  if (hostname !== undefined) m.options.set(DhcpOption.HostName, new TextEncoder().encode(hostname));
  if (clientId !== undefined) m.options.set(DhcpOption.ClientIdentifier, clientId);
  for (const [code, value] of extra) m.options.set(code, value);
  if (requested) {
    m.options.set(DhcpOption.RequestedIpAddress, Uint8Array.from(requested.split('.').map(Number)));
    m.options.set(DhcpOption.ServerIdentifier, Uint8Array.of(10, 50, 0, 1));
  }
  return encodeDhcp(m, 548);
}

/** DISCOVER + REQUEST; the address ACKed, or null when there was no offer. */
async function lease(l: Lab, mac: string, hostname?: string, clientId?: Uint8Array): Promise<string | null> {
  return (await exchange(l, mac, hostname, clientId))?.ip ?? null;
}

/** DISCOVER + REQUEST with `extra` options in both; the address and the ACK's options, or null when there was no offer. */
async function exchange(l: Lab, mac: string, hostname?: string, clientId?: Uint8Array, extra: Array<[number, Uint8Array]> = []): Promise<{ ip: string; ack: Map<number, Uint8Array> | null } | null> {
  const offers = await l.handler.handle(packet(1, mac, hostname, undefined, clientId, extra), '127.0.0.1:68', l.clock.wallMs());
  if (offers.length === 0) return null;
  const offer = decodeDhcp(offers[0]!.bytes);
  if (!offer.ok) throw new Error('bad offer');
  const ip = formatIpv4(offer.value.yiaddr);
  const acks = await l.handler.handle(packet(3, mac, hostname, ip, clientId, extra), '127.0.0.1:68', l.clock.wallMs());
  const ack = acks[0] === undefined ? null : decodeDhcp(acks[0].bytes);
  return { ip, ack: ack?.ok === true ? ack.value.options : null };
}

function resolves(l: Lab, name: string): string[] {
  l.dns.rebuild();
  return (l.dns.zones.resolve(name, T.A)?.answers ?? []).map((r) => formatRdata(r.type, r.rdata));
}

const refusals = (l: Lab): Array<Record<string, unknown>> => l.logs.filter((e) => e['event'] === 'dhcp.name.refused');

t.test('a reserved name cannot be taken: the intruder gets an address but no name, the reserved MAC keeps it', async (t) => {
  const l = await lab();
  t.teardown(l.stop);
  const intruder = await lease(l, '02:00:00:00:00:66', 'node01');
  t.equal(intruder, '10.50.0.100', 'the intruder still gets a pool address');
  t.equal(l.fsm.lease(parseIpv4(intruder!)!)?.hostname, undefined, 'but its lease carries no name');
  t.same(resolves(l, 'node01.lab.lan'), [], 'node01 does not point at the intruder');
  const [line] = refusals(l);
  t.ok(line, 'an info line says so');
  t.equal(line?.['level'], 'info');
  t.equal(line?.['mac'], '02:00:00:00:00:66', 'naming the claimant');
  t.equal(line?.['holderMac'], '52:54:00:00:00:01', 'and the reservation\'s MAC');
  t.equal(await lease(l, '52:54:00:00:00:01', 'whatever'), '10.50.0.11', 'the reserved MAC gets its address');
  t.same(resolves(l, 'node01.lab.lan'), ['10.50.0.11'], 'and its name');
  t.equal(l.handler.counters.toJSON()['name.refused'], 1);
});

t.test('an intruder lease already in the state (granted before this check) loses the name to the reservation in DNS', async (t) => {
  const l = await lab();
  t.teardown(l.stop);
  const at = l.clock.wallMs();
  l.fsm.apply(1, { at, command: { type: 'lease.grant', ip: parseIpv4('10.50.0.100')!, mac: '02:00:00:00:00:66', hostname: 'node01', subnet: '10.50.0.0/24', leaseMs: 3_600_000 } });
  l.fsm.apply(2, { at: at + 1000, command: { type: 'lease.grant', ip: parseIpv4('10.50.0.11')!, mac: '52:54:00:00:00:01', hostname: 'node01', subnet: '10.50.0.0/24', leaseMs: 3_600_000 } });
  t.same(resolves(l, 'node01.lab.lan'), ['10.50.0.11'], 'the reservation wins although the intruder was granted first');
  t.ok(l.logs.some((e) => String(e['msg']).includes('belongs to dhcp.subnets[0].reservations[0]')), 'the refused name is logged');
});

t.test('a lease name never takes over another client\'s lease name or a static record', async (t) => {
  const l = await lab();
  t.teardown(l.stop);
  t.equal(await lease(l, '02:00:00:00:00:0a', 'web'), '10.50.0.100');
  t.equal(await lease(l, '02:00:00:00:00:0b', 'WEB'), '10.50.0.101');
  t.equal(l.fsm.lease(parseIpv4('10.50.0.101')!)?.hostname, undefined, 'the second claimant gets no name');
  t.same(resolves(l, 'web.lab.lan'), ['10.50.0.100'], 'the first keeps it');
  const [line] = refusals(l);
  t.equal(line?.['mac'], '02:00:00:00:00:0b');
  t.equal(line?.['holderMac'], '02:00:00:00:00:0a');
  t.equal(await lease(l, '02:00:00:00:00:0a', 'web'), '10.50.0.100', 'the holder renews with its own name');
  t.equal(l.fsm.lease(parseIpv4('10.50.0.100')!)?.hostname, 'web');
  t.equal(await lease(l, '02:00:00:00:00:0c', 'printer'), '10.50.0.102');
  t.equal(l.fsm.lease(parseIpv4('10.50.0.102')!)?.hostname, undefined, 'a static record keeps its name');
  t.same(resolves(l, 'printer.lab.lan'), ['10.50.0.250']);
  t.equal(refusals(l)[1]?.['holder'], 'DNS record printer.lab.lan');
});

t.test('a machine whose client id changes (initramfs udhcpc sends 01+MAC, then the OS its DUID) keeps its name on the new lease', async (t) => {
  // The new grant ends the MAC's old lease (cluster/fsm.ts: a MAC moving to a new address gives up
  // the old one), so the name the old lease held goes with it: refusing it left the machine without
  // a DNS name until its next renewal asked again.
  const l = await lab();
  t.teardown(l.stop);
  const mac = '02:00:00:00:00:d1';
  t.equal(await lease(l, mac, 'pi7', Uint8Array.from([1, 2, 0, 0, 0, 0, 0xd1])), '10.50.0.100', 'the initramfs, client id 01+MAC');
  t.same(resolves(l, 'pi7.lab.lan'), ['10.50.0.100']);
  l.clock.advance(3000);
  const duid = Uint8Array.from([0xff, 0, 0, 0, 1, 0, 4, 1, 2, 3, 4, 5, 6, 7, 8]);
  const os = await lease(l, mac, 'pi7', duid);
  t.equal(l.fsm.lease(parseIpv4(os!)!)?.hostname, 'pi7', 'the OS lease carries the name');
  t.same(resolves(l, 'pi7.lab.lan'), [os], 'and DNS points at the OS lease');
  t.same(refusals(l), [], 'nothing refused');
  // Another MAC still cannot take it.
  const other = await lease(l, '02:00:00:00:00:d2', 'pi7');
  t.equal(l.fsm.lease(parseIpv4(other!)!)?.hostname, undefined, 'another machine gets no name');
});

t.test('an inventory node\'s name belongs to its MAC', async (t) => {
  const l = await lab();
  t.teardown(l.stop);
  l.fsm.apply(1, { at: l.clock.wallMs(), command: { type: 'node.add', name: 'rack1-n3', mac: '02:aa:00:00:00:03' } });
  t.ok(l.fsm.inventory.byName('rack1-n3'), 'the node is in the inventory');
  t.ok(await lease(l, '02:00:00:00:00:77', 'rack1-n3'));
  t.equal(refusals(l)[0]?.['holder'], 'inventory node rack1-n3', 'another MAC gets no name');
  t.equal(refusals(l)[0]?.['holderMac'], '02:aa:00:00:00:03');
  const own = await lease(l, '02:aa:00:00:00:03', 'rack1-n3');
  t.equal(l.fsm.lease(parseIpv4(own!)!)?.hostname, 'rack1-n3', 'the node itself gets it');
});

t.test('name owners plug in: an inventory-like owner is asked after reservations and before leases', async (t) => {
  const inventory: NameOwners = { kind: 'inventory', holdersOf: (label) => (label === 'rack1-n3' ? [{ kind: 'inventory', mac: '02:aa:00:00:00:03', what: 'inventory node rack1-n3' }] : []) };
  t.equal(nameHeldBy('rack1-n3', { mac: '02:aa:00:00:00:03' }, [inventory], 0), undefined, 'its own node may use the name');
  t.equal(nameHeldBy('RACK1-N3.lab.lan', { mac: '02:00:00:00:00:01' }, [inventory], 0)?.what, 'inventory node rack1-n3', 'any other client may not');
});

t.test('pool exhaustion: a rate-limited warning naming subnet and pool, its own counter, used/total per pool', async (t) => {
  const l = await lab();
  t.teardown(l.stop);
  for (let i = 0; i < 3; i++) t.ok(await lease(l, `02:00:00:00:01:0${i}`), `client ${i} leased`);
  t.same(l.handler.poolUse(l.clock.wallMs()), [{ subnet: '10.50.0.0/24', used: 3, total: 3, pools: [{ range: '10.50.0.100-10.50.0.102', used: 3, total: 3 }] }]);
  for (let i = 0; i < 20; i++) t.equal(await lease(l, `02:00:00:00:02:${String(10 + i)}`), null, `client ${i} beyond the pool gets no offer`);
  const counters = l.handler.counters.toJSON();
  t.equal(counters['allocation-failed.pool-exhausted'], 20, 'counted on its own counter');
  t.equal(counters['silent'], undefined, 'not on the generic silent one');
  const warnings = l.logs.filter((e) => e['event'] === 'dhcp.pool.exhausted');
  t.ok(warnings.length >= 1 && warnings.length <= 5, `warned, rate-limited (${warnings.length} lines for 20 failures)`);
  t.equal(warnings[0]?.['level'], 'warn');
  t.equal(warnings[0]?.['subnet'], '10.50.0.0/24');
  t.same(warnings[0]?.['pools'], ['10.50.0.100-10.50.0.102']);
});

t.test('a DISCOVER flood holding every free address as an offer: a new client takes back the oldest, counted and warned', async (t) => {
  const l = await lab();
  t.teardown(l.stop);
  const discover = async (mac: string): Promise<string | null> => {
    const offers = await l.handler.handle(packet(1, mac), '127.0.0.1:68', l.clock.wallMs());
    const offer = offers[0] === undefined ? undefined : decodeDhcp(offers[0].bytes);
    return offer?.ok === true ? formatIpv4(offer.value.yiaddr) : null;
  };
  const flood = [];
  for (let i = 0; i < 3; i++) flood.push(await discover(`02:00:00:00:03:0${i}`));
  t.same(flood, ['10.50.0.100', '10.50.0.101', '10.50.0.102'], 'the flood holds the whole pool as offers');
  t.equal(await lease(l, '02:00:00:00:04:01'), null, 'a client right after the flood gets nothing (the offers are younger than 250 ms)');
  l.clock.advance(300);
  t.equal(await lease(l, '02:00:00:00:04:02'), '10.50.0.100', '300 ms later a real client gets the oldest offer\'s address');
  t.equal(l.fsm.lease(parseIpv4('10.50.0.100')!)?.mac, '02:00:00:00:04:02', 'and its lease');
  const counters = l.handler.counters.toJSON();
  t.equal(counters['offer.reclaimed'], 1, 'counted');
  const warned = l.logs.filter((e) => e['event'] === 'dhcp.offer.reclaimed');
  t.equal(warned.length, 1, 'warned once');
  t.equal(warned[0]?.['offeredTo'], 'mac:02:00:00:00:03:00', 'naming whose offer it was');
  const nak = await l.handler.handle(packet(3, '02:00:00:00:03:00', undefined, '10.50.0.100'), '127.0.0.1:68', l.clock.wallMs());
  t.equal(nak[0]?.kind, 'nak', 'the flood client\'s late REQUEST for the address is NAKed');
});

t.test('option 81 (Client FQDN) names a client that sends no option 12; hostile or refused names publish nothing', async (t) => {
  // Wire form (E) as dhclient, dhcpcd, systemd-networkd and NetworkManager send it, ASCII as busybox
  // udhcpc -F does; each case is a fresh client and says what its lease must carry. An option 81
  // that does not decode is ignored (counted as option.fqdn-malformed) and not answered.
  const wire = (...labels: string[]): number[] => labels.map((x) => new TextEncoder().encode(x)).flatMap((b) => [b.length, ...b]);
  const ascii = (text: string): number[] => [...new TextEncoder().encode(text)];
  const cases: Array<{ what: string; option: number[]; name: string | undefined; replyFlags: number }> = [
    { what: 'wire form, fully qualified (S|E)', option: [0x05, 0, 0, ...wire('Alpha', 'example', 'org'), 0], name: 'alpha', replyFlags: 0x05 },
    { what: 'wire form, partial (no root label)', option: [0x05, 0, 0, ...wire('beta')], name: 'beta', replyFlags: 0x05 },
    { what: 'ASCII with a trailing dot, S clear: we publish anyway (O)', option: [0x00, 0, 0, ...ascii('gamma.example.org.')], name: 'gamma', replyFlags: 0x03 },
    { what: 'N: the client asks for no DNS update', option: [0x0c, 0, 0, ...wire('delta'), 0], name: undefined, replyFlags: 0x0c },
    { what: 'a compression pointer (not allowed in option 81)', option: [0x05, 0, 0, ...wire('eps'), 0xc0, 3], name: undefined, replyFlags: -1 },
    { what: 'a 64-octet label', option: [0x05, 0, 0, 64, ...ascii('z'.repeat(64)), 0], name: undefined, replyFlags: -1 },
    { what: 'a label running past the option', option: [0x05, 0, 0, 9, ...ascii('short')], name: undefined, replyFlags: -1 },
    { what: 'bytes after the root label', option: [0x05, 0, 0, ...wire('zeta'), 0, 4, ...ascii('junk')], name: undefined, replyFlags: -1 },
    { what: 'shorter than flags + RCODEs', option: [0x05, 0], name: undefined, replyFlags: -1 },
    { what: 'an empty name', option: [0x05, 0, 0], name: undefined, replyFlags: 0x0c },
    { what: 'non-ASCII and dots in a wire label become a DNS label', option: [0x05, 0, 0, ...wire('h\u00e9 t.a'), 0], name: 'h--t', replyFlags: 0x05 },
    { what: 'a wildcard', option: [0x05, 0, 0, ...wire('*'), 0], name: undefined, replyFlags: 0x0c },
    { what: 'a reserved name (node01) is refused', option: [0x05, 0, 0, ...wire('node01', 'lab', 'lan'), 0], name: undefined, replyFlags: 0x0c },
    { what: 'a static record\'s name (printer) is refused', option: [0x01, 0, 0, ...ascii('printer')], name: undefined, replyFlags: 0x08 },
  ];
  let n = 0x10;
  for (const c of cases) {
    const l = await lab(); // the pool holds three addresses: a fresh state per case
    t.teardown(l.stop);
    const mac = `02:00:00:00:81:${(n++).toString(16)}`;
    const r = await exchange(l, mac, undefined, undefined, [[DhcpOption.ClientFqdn, Uint8Array.from(c.option)]]);
    t.ok(r?.ack, `${c.what}: still leased`);
    t.equal(l.fsm.lease(parseIpv4(r!.ip)!)?.hostname, c.name, `${c.what}: lease name ${String(c.name)}`);
    const back = r?.ack?.get(DhcpOption.ClientFqdn);
    if (c.replyFlags < 0) { t.equal(back, undefined, `${c.what}: undecodable, so no option 81 in the ACK`); continue; }
    t.equal(back?.[0], c.replyFlags, `${c.what}: ACK flags 0x${c.replyFlags.toString(16)}`);
    t.same([back?.[1], back?.[2]], [255, 255], `${c.what}: RCODE1/2 255 (RFC 4702 §4)`);
    if (c.name !== undefined) t.same(resolves(l, `${c.name}.lab.lan`), [r!.ip], `${c.what}: DNS answers it`);
  }
  const l = await lab();
  t.teardown(l.stop);
  const alpha = await exchange(l, '02:00:00:00:81:10', undefined, undefined, [[DhcpOption.ClientFqdn, Uint8Array.of(0x05, 0, 0, ...wire('alpha'), 0)]]);
  t.same([...alpha!.ack!.get(DhcpOption.ClientFqdn)!.subarray(3)], [...wire('alpha', 'lab', 'lan'), 0], 'the ACK names the FQDN it is published under, in wire form');
  const both = await exchange(l, '02:00:00:00:81:f0', 'twelve', undefined, [[DhcpOption.ClientFqdn, Uint8Array.of(0x05, 0, 0, ...wire('eightyone'), 0)]]);
  t.equal(l.fsm.lease(parseIpv4(both!.ip)!)?.hostname, 'twelve', 'option 12 wins when a client sends both');
  await exchange(l, '02:00:00:00:81:f1', undefined, undefined, [[DhcpOption.ClientFqdn, Uint8Array.of(0x05, 0, 0, 0xc0, 3)]]);
  t.equal(l.handler.counters.toJSON()['option.fqdn-malformed'], 2, 'an undecodable option 81 is counted (DISCOVER and REQUEST)');
});

t.test('wpad, isatap and localhost are never a client\'s name (a WPAD client would proxy everyone\'s web traffic)', async (t) => {
  const l = await lab();
  t.teardown(l.stop);
  const ip = await lease(l, '02:00:00:00:00:77', 'WPAD');
  t.ok(ip, 'the client still gets an address');
  t.equal(l.fsm.lease(parseIpv4(ip!)!)?.hostname, undefined, 'but no name');
  t.same(resolves(l, 'wpad.lab.lan'), [], 'wpad.lab.lan does not resolve to it');
  const line = refusals(l).find((e) => e['name'] === 'wpad');
  t.equal(line?.['holderKind'], 'refused', 'the refusal says why');
  const fq = await exchange(l, '02:00:00:00:00:78', undefined, undefined, [[DhcpOption.ClientFqdn, Uint8Array.of(0x05, 0, 0, 6, ...new TextEncoder().encode('isatap'), 0)]]);
  t.equal(l.fsm.lease(parseIpv4(fq!.ip)!)?.hostname, undefined, 'isatap by option 81 neither');
  t.equal(fq?.ack?.get(DhcpOption.ClientFqdn)?.[0], 0x0c, 'and option 81 back says no name is published (N)');
  const o = await lab(); // the pool holds three addresses
  t.teardown(o.stop);
  const fqdnOf = async (mac: string, label: string): Promise<number | undefined> => {
    const offers = await o.handler.handle(packet(1, mac, undefined, undefined, undefined, [[DhcpOption.ClientFqdn, Uint8Array.of(0x05, 0, 0, label.length, ...new TextEncoder().encode(label), 0)]]), '127.0.0.1:68', o.clock.wallMs());
    const offer = offers[0] === undefined ? null : decodeDhcp(offers[0].bytes);
    return offer?.ok === true ? offer.value.options.get(DhcpOption.ClientFqdn)?.[0] : undefined;
  };
  t.equal(await fqdnOf('02:00:00:00:00:7a', 'isatap'), 0x0c, 'the OFFER already says N for a name the grant would refuse');
  t.equal(await fqdnOf('02:00:00:00:00:7b', 'fine'), 0x05, 'and S for one it would keep');
  // A lease granted before this rule keeps the name in the state, but DNS does not publish it.
  const at = l.clock.wallMs();
  l.fsm.apply(l.fsm.appliedIndex + 1, { at, command: { type: 'lease.grant', ip: parseIpv4('10.50.0.102')!, mac: '02:00:00:00:00:79', hostname: 'localhost', subnet: '10.50.0.0/24', leaseMs: 3_600_000 } });
  t.same(resolves(l, 'localhost.lab.lan'), [], 'an old lease named localhost is not published');
  t.equal(l.handler.counters.toJSON()['name.refused'], 2);
});

t.test('a client cannot take the name of a lanha node (this one or a cluster member)', async (t) => {
  const l = await lab();
  t.teardown(l.stop);
  const ip = await lease(l, '02:00:00:00:00:7c', 'T1');
  t.equal(l.fsm.lease(parseIpv4(ip!)!)?.hostname, undefined, 'the client named like node t1 gets no name');
  t.equal(refusals(l).find((e) => e['name'] === 't1')?.['holderKind'], 'member', 'the refusal names the node');
  const at = l.clock.wallMs();
  l.fsm.apply(l.fsm.appliedIndex + 1, { at, command: { type: 'lease.grant', ip: parseIpv4('10.50.0.102')!, mac: '02:00:00:00:00:7d', hostname: 't1', subnet: '10.50.0.0/24', leaseMs: 3_600_000 } });
  t.same(resolves(l, 't1.lab.lan'), [], 'nor does DNS publish it from a lease granted before this rule');
});

t.test('a client cannot take a name that is the apex of another zone of ours (zone lab.lan would hold bmc.lab.lan A)', async (t) => {
  const l = await lab(`${CONFIG}    - name: bmc.lab.lan\n      records: ["r1 A 10.50.0.240"]\n`);
  t.teardown(l.stop);
  const ip = await lease(l, '02:00:00:00:00:7e', 'Bmc');
  t.ok(ip, 'the client still gets an address');
  t.equal(l.fsm.lease(parseIpv4(ip!)!)?.hostname, undefined, 'but no name');
  t.equal(refusals(l).find((e) => e['name'] === 'bmc')?.['holderKind'], 'zone', 'the refusal names the zone');
  t.equal(l.handler.counters.toJSON()['name.refused'], 1);
  const at = l.clock.wallMs();
  l.fsm.apply(l.fsm.appliedIndex + 1, { at, command: { type: 'lease.grant', ip: parseIpv4('10.50.0.102')!, mac: '02:00:00:00:00:7f', hostname: 'bmc', subnet: '10.50.0.0/24', leaseMs: 3_600_000 } });
  l.dns.rebuild();
  const parent = l.dns.zones.zones.find((z) => z.origin === 'lab.lan')!;
  t.equal(parent.nodes.get('bmc.lab.lan'), undefined, 'nor does zone lab.lan hold it from a lease granted before this rule');
  t.same(resolves(l, 'r1.bmc.lab.lan'), ['10.50.0.240'], 'the other zone still answers');
});

t.test('a client cannot take a name our zones point at (NS, SOA primary, MX, SRV, CNAME, operator record targets) with no address of its own', async (t) => {
  const zone = '      primary: ns2.lab.lan\n      records: ["printer A 10.50.0.250", "@ NS ns1", "@ MX 10 mail", "www CNAME web", "_ldap._tcp SRV 0 0 389 dc"]\n';
  const l = await lab(CONFIG.replace('      records: ["printer A 10.50.0.250"]\n', zone).replace('10.50.0.100-10.50.0.102', '10.50.0.100-10.50.0.120'));
  t.teardown(l.stop);
  const at = l.clock.wallMs();
  l.fsm.apply(l.fsm.appliedIndex + 1, { at, command: { type: 'dns.set', name: 'files.lab.lan', rrtype: 'CNAME', ttl: 300, data: 'nas' } });
  const names = ['NS1', 'ns2', 'mail', 'web', 'dc', 'nas'];
  for (const [i, name] of names.entries()) {
    const ip = await lease(l, `02:00:00:00:01:0${i}`, name);
    t.ok(ip, `the client named ${name} still gets an address`);
    t.equal(l.fsm.lease(parseIpv4(ip!)!)?.hostname, undefined, `but not the name ${name}`);
  }
  t.same(refusals(l).map((e) => [e['name'], e['holderKind']]), names.map((n) => [n.toLowerCase(), 'target']), 'each refusal names a target');
  t.match(String(refusals(l)[0]?.['holder']), /ns1\.lab\.lan, the NS target of lab\.lan/);
  t.ok(await lease(l, '02:00:00:00:01:09', 'fine'), 'another name is granted');
  t.same(resolves(l, 'fine.lab.lan').length, 1);
  // A lease granted before this rule (in the state already) is not published under a target either.
  l.fsm.apply(l.fsm.appliedIndex + 1, { at, command: { type: 'lease.grant', ip: parseIpv4('10.50.0.130')!, mac: '02:00:00:00:01:0f', hostname: 'ns1', subnet: '10.50.0.0/24', leaseMs: 3_600_000 } });
  t.same(resolves(l, 'ns1.lab.lan'), [], 'ns1.lab.lan is not the old lease\'s address');
});

t.test('a reservation may fill a name our zones point at: the operator named it', async (t) => {
  const l = await lab(CONFIG.replace('"printer A 10.50.0.250"', '"printer A 10.50.0.250", "@ NS node01"'));
  t.teardown(l.stop);
  t.equal(await lease(l, '52:54:00:00:00:01', 'node01'), '10.50.0.11');
  t.same(resolves(l, 'node01.lab.lan'), ['10.50.0.11'], 'the NS target resolves to the reserved address');
  t.same(refusals(l), []);
});
