// Proves the probe's shell on loopback (high ports, no namespace): a round sends its DISCOVER to the
// target, takes a fake server's OFFER for its xid (and not one for another xid or from our own
// server id), names the sender's MAC from the neighbour table, and reports it; with the client port
// held by a socket without SO_REUSEADDR the round says so once (log and status) and never throws.
import t from 'tap';
import { createSocket, type Socket } from 'node:dgram';
import { createLogger } from '../../lib/log.js';
import { Counters } from '../../lib/counters.js';
import { seededRandom } from '../../lib/random.js';
import { systemClock } from '../../lib/clock.js';
import { parseIpv4 } from '../../lib/ipv4.js';
import { BootOp, decodeDhcp, encodeDhcp } from './wire.js';
import { DhcpOption, MessageType } from './options.js';
import { readRequest } from './request.js';
import { RogueWatch, startRogueProbe, type RogueProbe } from './rogue-probe.js';
import { probeMacFor } from './rogue.js';

const ARP = 'IP address       HW type     Flags       HW address            Mask     Device\n127.0.0.1        0x1         0x2         52:54:00:de:ad:01     *        lo\n';

/** A UDP port free on every address right now (the kernel's pick). */
async function freeUdpPort(): Promise<number> {
  const socket = createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '0.0.0.0', () => resolve()));
  const port = socket.address().port;
  await new Promise<void>((resolve) => socket.close(() => resolve()));
  return port;
}

function bound(port: number, reuseAddr: boolean): Promise<Socket> {
  const socket = createSocket({ type: 'udp4', reuseAddr });
  return new Promise((resolve, reject) => { socket.once('error', reject); socket.bind(port, '127.0.0.1', () => resolve(socket)); });
}

function setup(serverPort: number, clientPort: number) {
  const logs: Array<Record<string, unknown>> = [];
  const log = createLogger({ level: 'info', destination: { write: (s: string) => { logs.push(JSON.parse(s) as Record<string, unknown>); } } });
  const counters = new Counters();
  const watch = new RogueWatch({
    servers: { ours: new Set([parseIpv4('10.50.0.1')!]), ignored: new Set() }, probeMac: probeMacFor('probe-test'), clock: systemClock, log, counters, ageOutMs: 60_000,
  });
  const probe = startRogueProbe({
    watch, intervalMs: 1000, target: { address: '127.0.0.1', port: serverPort }, clientPort, clock: systemClock, random: seededRandom(7), log, counters,
    isServing: () => false, readNeighbours: () => ARP,
  });
  return { watch, probe, logs, counters };
}

t.test('a round hears a foreign OFFER for its xid and reports the server with the sender\'s MAC', async (t) => {
  const serverPort = await freeUdpPort();
  const clientPort = await freeUdpPort();
  const server = await bound(serverPort, false);
  const { watch, probe, counters } = setup(serverPort, clientPort);
  t.teardown(async () => { await probe.stop(); server.close(); });
  let discovers = 0;
  server.on('message', (bytes) => {
    const d = decodeDhcp(bytes);
    if (!d.ok) return;
    const r = readRequest(d.value);
    if (!r.ok || r.value.type !== 'discover') return;
    discovers += 1;
    const reply = (xid: number, serverId: number[]): Uint8Array => {
      const m = d.value;
      const out = { ...m, op: BootOp.Reply, xid, yiaddr: parseIpv4('10.50.0.201')!, options: new Map([[DhcpOption.MessageType, Uint8Array.of(MessageType.Offer)], [DhcpOption.ServerIdentifier, Uint8Array.from(serverId)], [DhcpOption.BootfileName, new TextEncoder().encode('rogue.efi')]]) };
      return encodeDhcp(out, 576);
    };
    // Another client's OFFER, our own server's, then the rogue's answer to the probe.
    server.send(reply(d.value.xid + 1, [10, 50, 0, 66]), clientPort, '127.0.0.1');
    server.send(reply(d.value.xid, [10, 50, 0, 1]), clientPort, '127.0.0.1');
    server.send(reply(d.value.xid, [10, 50, 0, 9]), clientPort, '127.0.0.1');
  });
  await probe.round();
  t.equal(discovers, 1, 'one DISCOVER per round');
  const servers = watch.list();
  t.equal(servers.length, 1, 'only the foreign server that answered the probe');
  t.same([servers[0]?.serverId, servers[0]?.source, servers[0]?.mac, servers[0]?.offered, servers[0]?.bootfile, servers[0]?.via],
    [parseIpv4('10.50.0.9'), parseIpv4('127.0.0.1'), '52:54:00:de:ad:01', parseIpv4('10.50.0.201'), 'rogue.efi', ['probe']]);
  t.equal(counters.get('rogue.offers'), 1);
  t.equal(counters.get('rogue.own-offers'), 1, 'our own server id is counted apart, never as rogue');
  t.equal(counters.get('rogue.probes'), 1);
  t.equal(probe.status()['state'], 'standby', 'this node does not serve DHCP: the timer does not probe');
});

t.test('a client port held without SO_REUSEADDR: the probe says so once and keeps running', async (t) => {
  const clientPort = await freeUdpPort();
  const holder = createSocket({ type: 'udp4', reuseAddr: false });
  await new Promise<void>((resolve) => holder.bind(clientPort, '0.0.0.0', () => resolve()));
  const { probe, logs }: { probe: RogueProbe; logs: Array<Record<string, unknown>> } = setup(await freeUdpPort(), clientPort);
  t.teardown(async () => { await probe.stop(); holder.close(); });
  await probe.round();
  await probe.round();
  const status = probe.status();
  t.equal(status['state'], 'failing');
  t.match(String(status['problem']), new RegExp(`cannot listen on udp 0.0.0.0:${clientPort}`));
  t.equal(logs.filter((l) => l['event'] === 'dhcp.rogue_probe.cannot_listen').length, 1, 'warned once for two rounds');
});
