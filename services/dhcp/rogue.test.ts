// Proves the rogue-server detector's pure parts and its hook in the handler, without sockets: which
// OFFERs heard by the probe and which clients' REQUESTs name another server (ours, ignored, foreign,
// not the probe's), the bounded ageing table and its warning limit, the neighbour-table reader, and
// that the DHCP handler never serves its own probe (no offer, no rate-limit bucket, no pending node)
// and counts a client's choice of another server once per server in the log.
import t from 'tap';
import { Fsm } from '../../cluster/fsm.js';
import { MemoryStateLog } from '../../cluster/state-log.js';
import { createLogger } from '../../lib/log.js';
import { parseIpv4, type Ipv4 } from '../../lib/ipv4.js';
import { parseConfig } from '../../config/index.js';
import { ManualClock } from '../../test/support/manual-clock.js';
import { DhcpHandler } from './server.js';
import { BootOp, FLAG_BROADCAST, decodeDhcp, emptyMessage, encodeDhcp, fieldBytes, type DhcpMessage } from './wire.js';
import { DhcpOption, MessageType } from './options.js';
import { readRequest } from './request.js';
import {
  RogueTable, classifyOffer, classifyRequest, neighbourMac, probeDiscover, probeMacFor, type OurServers, type ProbeId, type Sighting,
} from './rogue.js';
import { rogueAgeOutMs } from './rogue-probe.js';

const ip = (text: string): Ipv4 => parseIpv4(text)!;
const SERVERS: OurServers = { ours: new Set([ip('10.50.0.1'), ip('10.50.0.2'), ip('10.50.0.3')]), ignored: new Set([ip('10.50.0.250')]) };
const PROBE: ProbeId = { mac: probeMacFor('site-a'), xid: 0x1234567 };

function offer(o: { xid?: number; mac?: string; serverId?: string | null; type?: number; yiaddr?: string; file?: string; bootOption?: string; siaddr?: string }): DhcpMessage {
  const m = emptyMessage();
  m.op = BootOp.Reply;
  m.xid = o.xid ?? PROBE.xid;
  m.chaddr.set((o.mac ?? PROBE.mac).split(':').map((h) => parseInt(h, 16)), 0);
  m.yiaddr = ip(o.yiaddr ?? '10.50.0.201');
  if (o.siaddr !== undefined) m.siaddr = ip(o.siaddr);
  if (o.file !== undefined) m.file = fieldBytes(o.file, 128);
  m.options.set(DhcpOption.MessageType, Uint8Array.of(o.type ?? MessageType.Offer));
  if (o.serverId !== null) m.options.set(DhcpOption.ServerIdentifier, Uint8Array.from((o.serverId ?? '10.50.0.9').split('.').map(Number)));
  if (o.bootOption !== undefined) m.options.set(DhcpOption.BootfileName, new TextEncoder().encode(o.bootOption));
  // Through the codec, as the probe's socket hands it over.
  const decoded = decodeDhcp(encodeDhcp(m, 576));
  if (!decoded.ok) throw new Error('test offer does not decode');
  return decoded.value;
}

function request(o: { type?: number; mac?: string; serverId?: string; requested?: string; ciaddr?: string; giaddr?: string }): Uint8Array {
  const m = emptyMessage();
  m.op = BootOp.Request;
  m.xid = 0x99;
  m.chaddr.set((o.mac ?? '52:54:00:00:00:01').split(':').map((h) => parseInt(h, 16)), 0);
  if (o.ciaddr) m.ciaddr = ip(o.ciaddr);
  if (o.giaddr) { m.giaddr = ip(o.giaddr); m.hops = 1; }
  m.options.set(DhcpOption.MessageType, Uint8Array.of(o.type ?? MessageType.Request));
  if (o.serverId) m.options.set(DhcpOption.ServerIdentifier, Uint8Array.from(o.serverId.split('.').map(Number)));
  if (o.requested) m.options.set(DhcpOption.RequestedIpAddress, Uint8Array.from(o.requested.split('.').map(Number)));
  return encodeDhcp(m, 548);
}

function client(bytes: Uint8Array) {
  const d = decodeDhcp(bytes);
  if (!d.ok) throw new Error('does not decode');
  const r = readRequest(d.value);
  if (!r.ok) throw new Error(r.problem);
  return r.value;
}

t.test('the probe MAC: locally administered, unicast, fixed per site, different between sites', async (t) => {
  const mac = probeMacFor('site-a');
  const first = parseInt(mac.slice(0, 2), 16);
  t.equal(first & 0x02, 0x02, 'locally administered bit set');
  t.equal(first & 0x01, 0, 'unicast (a multicast chaddr is refused by every server)');
  t.equal(probeMacFor('site-a'), mac, 'the same every round and on every member');
  t.not(probeMacFor('site-b'), mac, 'another site probes from another MAC, so each answers the other');
  t.match(mac, /^02:6c:68:[0-9a-f]{2}:[0-9a-f]{2}:[0-9a-f]{2}$/);
});

t.test('the probe DISCOVER asks for a broadcast OFFER and decodes as a client request from the probe MAC', async (t) => {
  const decoded = decodeDhcp(encodeDhcp(probeDiscover(PROBE), 576));
  t.ok(decoded.ok);
  if (!decoded.ok) return;
  t.equal(decoded.value.flags & FLAG_BROADCAST, FLAG_BROADCAST, 'broadcast flag: a unicast OFFER to a MAC no interface has is never heard');
  const r = readRequest(decoded.value);
  t.ok(r.ok);
  if (!r.ok) return;
  t.equal(r.value.type, 'discover');
  t.equal(r.value.mac, PROBE.mac);
  t.equal(r.value.xid, PROBE.xid);
  t.equal(r.value.hostname, 'lanha-rogue-probe', 'names itself in the other server\'s log');
  t.ok(r.value.parameterRequest.includes(DhcpOption.BootfileName), 'asks for the boot file it would be given');
});

t.test('classifyOffer: another server\'s OFFER to the probe is foreign; ours and ignored ones are not; others\' OFFERs are not the probe\'s', async (t) => {
  const source = ip('10.50.0.9');
  const foreign = classifyOffer(offer({ siaddr: '10.50.0.9', bootOption: 'pxelinux.0' }), source, PROBE, SERVERS);
  t.same(foreign, { kind: 'foreign', sighting: { serverId: ip('10.50.0.9'), via: 'probe', source, offered: ip('10.50.0.201'), bootfile: 'pxelinux.0', nextServer: ip('10.50.0.9') } });
  const fileField = classifyOffer(offer({ file: 'wrong.efi' }), source, PROBE, SERVERS);
  t.equal(fileField.kind === 'foreign' && fileField.sighting.bootfile, 'wrong.efi', 'the boot file from the BOOTP file field when option 67 is absent');
  t.same(classifyOffer(offer({ serverId: '10.50.0.1' }), ip('10.50.0.1'), PROBE, SERVERS), { kind: 'ours' }, 'our server id');
  t.same(classifyOffer(offer({ serverId: '10.50.0.3' }), ip('10.50.0.3'), PROBE, SERVERS), { kind: 'ours' }, 'a member\'s address');
  t.same(classifyOffer(offer({ serverId: '10.50.0.250' }), ip('10.50.0.250'), PROBE, SERVERS), { kind: 'ignored', serverId: ip('10.50.0.250') }, 'dhcp.rogueProbe.ignore');
  t.same(classifyOffer(offer({ xid: PROBE.xid + 1 }), source, PROBE, SERVERS), { kind: 'not-ours-to-judge' }, 'another xid: some client\'s OFFER');
  t.same(classifyOffer(offer({ mac: '52:54:00:00:00:01' }), source, PROBE, SERVERS), { kind: 'not-ours-to-judge' }, 'another chaddr');
  t.same(classifyOffer(offer({ type: MessageType.Ack }), source, PROBE, SERVERS), { kind: 'not-ours-to-judge' }, 'an ACK, not an OFFER');
  const noId = classifyOffer(offer({ serverId: null }), ip('10.50.0.77'), PROBE, SERVERS);
  t.equal(noId.kind === 'foreign' && noId.sighting.serverId, ip('10.50.0.77'), 'without option 54 the source address stands for the server');
  t.same(classifyOffer(offer({ serverId: null }), ip('10.50.0.2'), PROBE, SERVERS), { kind: 'ours' }, 'and our own source address is ours');
});

t.test('classifyRequest: a SELECTING REQUEST naming another server is foreign; ours, renewals, relayed and INIT-REBOOT are not', async (t) => {
  const foreign = classifyRequest(client(request({ serverId: '10.50.0.9', requested: '10.50.0.201' })), SERVERS);
  t.same(foreign, { kind: 'foreign', sighting: { serverId: ip('10.50.0.9'), via: 'request', client: '52:54:00:00:00:01', offered: ip('10.50.0.201') } });
  t.same(classifyRequest(client(request({ serverId: '10.50.0.1', requested: '10.50.0.101' })), SERVERS), { kind: 'ours' });
  t.same(classifyRequest(client(request({ serverId: '10.50.0.250' })), SERVERS), { kind: 'ignored', serverId: ip('10.50.0.250') });
  t.same(classifyRequest(client(request({ requested: '10.50.0.101' })), SERVERS), { kind: 'not-ours-to-judge' }, 'INIT-REBOOT: no server id');
  t.same(classifyRequest(client(request({ serverId: '10.50.0.9', ciaddr: '10.50.0.201' })), SERVERS), { kind: 'not-ours-to-judge' }, 'ciaddr set: not SELECTING');
  t.same(classifyRequest(client(request({ serverId: '10.50.0.9', giaddr: '10.51.0.1' })), SERVERS), { kind: 'not-ours-to-judge' }, 'relayed: the relay forwards to servers the operator chose');
  t.same(classifyRequest(client(request({ type: MessageType.Discover, serverId: '10.50.0.9' })), SERVERS), { kind: 'not-ours-to-judge' }, 'a DISCOVER');
});

t.test('RogueTable: merges sightings per server, warns on the first and then once per warnEveryMs, ages quiet servers out, stays bounded', async (t) => {
  const table = new RogueTable({ ageOutMs: 30_000, warnEveryMs: 600_000, entriesMax: 3 });
  const probe: Sighting = { serverId: ip('10.50.0.9'), via: 'probe', source: ip('10.50.0.9'), mac: '52:54:00:aa:bb:cc', offered: ip('10.50.0.201') };
  const first = table.observe(probe, 1_000, 5_000);
  t.same([first.isNew, first.warn], [true, true], 'a new server is warned about');
  const again = table.observe({ serverId: ip('10.50.0.9'), via: 'request', client: '52:54:00:00:00:07', offered: ip('10.50.0.202') }, 11_000, 15_000);
  t.same([again.isNew, again.warn], [false, false], 'seen again within the warning interval: no second line');
  const s = table.list()[0]!;
  t.same([s.via, s.offers, s.requests, s.mac, s.client, s.offered, s.firstSeenWallMs, s.lastSeenWallMs], [['probe', 'request'], 1, 1, '52:54:00:aa:bb:cc', '52:54:00:00:00:07', ip('10.50.0.202'), 5_000, 15_000]);
  t.same(table.age(40_999), [], 'not yet quiet for ageOutMs');
  t.equal(table.observe(probe, 601_000, 605_000).warn, true, 'still there after warnEveryMs: warned again');
  t.equal(table.age(631_000).length, 1, 'quiet for ageOutMs: dropped');
  t.equal(table.size, 0);
  for (let i = 1; i <= 5; i++) table.observe({ serverId: ip(`10.50.1.${i}`), via: 'request' }, 700_000 + i, 700_000 + i);
  t.equal(table.size, 3, 'bounded: forged REQUESTs naming made-up servers cannot grow it');
  t.same(table.list().map((x) => x.serverId), [ip('10.50.1.5'), ip('10.50.1.4'), ip('10.50.1.3')], 'the ones seen longest ago went first');
});

t.test('the age-out time is a few quiet probe rounds (60 s rounds when the probe is off)', async (t) => {
  t.equal(rogueAgeOutMs(60_000), 3 * (60_000 + 4_000));
  t.equal(rogueAgeOutMs(1_000), 3 * (1_000 + 1_000), 'the window is capped at the interval');
  t.equal(rogueAgeOutMs(0), 3 * (60_000 + 4_000));
});

t.test('neighbourMac reads /proc/net/arp: resolved entries only', async (t) => {
  const table = [
    'IP address       HW type     Flags       HW address            Mask     Device',
    '10.50.0.9        0x1         0x2         52:54:00:AA:BB:CC     *        eth0',
    '10.50.0.10       0x1         0x0         00:00:00:00:00:00     *        eth0',
    '10.50.0.11       0x1         0x6         52:54:00:aa:bb:11     *        eth0',
  ].join('\n') + '\n';
  t.equal(neighbourMac(table, ip('10.50.0.9')), '52:54:00:aa:bb:cc');
  t.equal(neighbourMac(table, ip('10.50.0.10')), null, 'incomplete: not resolved yet');
  t.equal(neighbourMac(table, ip('10.50.0.11')), '52:54:00:aa:bb:11', 'permanent and complete');
  t.equal(neighbourMac(table, ip('10.50.0.12')), null, 'absent');
  t.equal(neighbourMac('', ip('10.50.0.9')), null, 'no table (not Linux)');
});

const CONFIG = `
node: { name: t1, address: 10.50.0.1 }
dhcp:
  rateLimit: { perMac: 2, perMacWindow: 10s, global: 2000 }
  rogueProbe: { ignore: [10.50.0.250] }
  subnets:
    - subnet: 10.50.0.0/24
      pools: [10.50.0.100-10.50.0.120]
`;

function setup(): { handler: DhcpHandler; logs: Array<Record<string, unknown>>; clock: ManualClock } {
  const config = parseConfig(CONFIG);
  const clock = new ManualClock();
  const logs: Array<Record<string, unknown>> = [];
  const log = createLogger({ level: 'info', destination: { write: (s: string) => { logs.push(JSON.parse(s) as Record<string, unknown>); } } });
  const handler = new DhcpHandler({ config: config.dhcp!, state: new MemoryStateLog(new Fsm(), clock), nodeAddress: config.node.address, log, clock, rogue: { probeMac: PROBE.mac, clock } });
  return { handler, logs, clock };
}

t.test('the handler never serves its own probe: no OFFER, no rate-limit drop, no pending netboot node, nothing received', async (t) => {
  const { handler, clock } = setup();
  const discover = probeDiscover(PROBE);
  discover.options.set(DhcpOption.VendorClassIdentifier, new TextEncoder().encode('PXEClient:Arch:00000:UNDI:002001'));
  const bytes = encodeDhcp(discover, 576);
  for (let i = 0; i < 10; i++) {
    t.same(await handler.handle(bytes, '10.50.0.1:68', clock.wallMs()), [], `probe ${i + 1}: no reply`);
  }
  const counters = handler.counters.toJSON();
  t.equal(counters['rogue.own-probe-heard'], 10);
  t.equal(counters['received.discover'], undefined, 'not counted as a client DISCOVER');
  t.same(Object.keys(counters).filter((k) => k.startsWith('dropped.') || k.startsWith('sent.') || k.startsWith('inventory.')), [], 'no drop (the per-MAC burst is 2), no offer, no pending node');
  t.equal(handler.allocator.offerCount, 0, 'no address held for it');
  const real = await handler.handle(encodeDhcp(probeDiscover({ mac: "52:54:00:00:00:05", xid: 7 }), 576), '0.0.0.0:68', clock.wallMs());
  t.equal(real.length, 1, 'a real client still gets its OFFER');
});

t.test('the handler counts a client\'s REQUEST for another server\'s offer, warns once per server, and not for ours or ignored ones', async (t) => {
  const { handler, logs, clock } = setup();
  await handler.handle(request({ serverId: '10.50.0.9', requested: '10.50.0.201' }), '0.0.0.0:68', clock.wallMs());
  clock.advance(1000);
  await handler.handle(request({ mac: '52:54:00:00:00:02', serverId: '10.50.0.9', requested: '10.50.0.202' }), '0.0.0.0:68', clock.wallMs());
  await handler.handle(request({ mac: '52:54:00:00:00:03', serverId: '10.50.0.1', requested: '10.50.0.100' }), '0.0.0.0:68', clock.wallMs());
  await handler.handle(request({ mac: '52:54:00:00:00:04', serverId: '10.50.0.250', requested: '10.50.0.99' }), '0.0.0.0:68', clock.wallMs());
  const servers = handler.rogue!.list();
  t.same(servers.map((s) => [s.serverId, s.requests, s.client, s.via]), [[ip('10.50.0.9'), 2, '52:54:00:00:00:02', ['request']]], 'one foreign server, seen twice');
  t.equal(handler.counters.get('rogue.requests'), 2);
  t.equal(handler.counters.get('rogue.ignored'), 1, 'the ignored server is counted apart');
  const warned = logs.filter((l) => l['event'] === 'dhcp.rogue_server');
  t.equal(warned.length, 1, 'one warning for two sightings of one server');
  t.equal(warned[0]?.['level'], 'warn');
  t.equal(warned[0]?.['serverId'], '10.50.0.9');
  t.match(String(warned[0]?.['msg']), /turn its DHCP server off/);
  clock.advance(rogueAgeOutMs(60_000));
  t.same(handler.rogue!.list(), [], 'aged out after a few quiet intervals');
  t.ok(logs.some((l) => l['event'] === 'dhcp.rogue_server.gone'), 'and said so');
});

t.test('a handler without the watch looks at no REQUEST for other servers', async (t) => {
  const config = parseConfig(CONFIG);
  const clock = new ManualClock();
  const handler = new DhcpHandler({ config: config.dhcp!, state: new MemoryStateLog(new Fsm(), clock), nodeAddress: config.node.address, log: createLogger({ level: 'silent' }) });
  await handler.handle(request({ serverId: '10.50.0.9', requested: '10.50.0.201' }), '0.0.0.0:68', clock.wallMs());
  t.equal(handler.rogue, undefined);
  t.equal(handler.counters.get('rogue.requests'), 0);
});


