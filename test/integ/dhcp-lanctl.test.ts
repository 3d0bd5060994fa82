// `lanctl leases` end to end on loopback (no root): a real `lanctl serve` with DHCP on a high port,
// a relay-style client at 127.0.0.2 (replies go to giaddr) doing DORA with a host name, then the
// table, --json, --mac/--ip filters, `leases release IP`, and --all showing the released lease.
import t from 'tap';
import { createSocket } from 'node:dgram';
import { runLanctl, scratchConfig, serveDaemon } from '../support/daemon.js';
import { freeUdpPort } from '../support/ports.js';
import { decodeDhcp, encodeDhcp, emptyMessage, BootOp } from '../../services/dhcp/wire.js';
import { DhcpOption, textBytes } from '../../services/dhcp/options.js';
import { formatIpv4 } from '../../lib/ipv4.js';

const port = await freeUdpPort();

function request(type: number, extra: Array<[number, Uint8Array]> = []): Uint8Array {
  const m = emptyMessage();
  m.op = BootOp.Request;
  m.xid = 0xabcd;
  m.hops = 1;
  m.giaddr = (127 << 24 | 2) >>> 0;
  m.chaddr.set([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
  m.options.set(DhcpOption.MessageType, Uint8Array.of(type));
  m.options.set(DhcpOption.HostName, textBytes('cli-node'));
  for (const [c, d] of extra) m.options.set(c, d);
  return encodeDhcp(m, 548);
}

t.test('lanctl leases lists, filters and releases', async (t) => {
  const scratch = scratchConfig(`node: { name: t, address: 127.0.0.1, stateDir: "{{dir}}/state", controlSocket: "{{dir}}/s.sock" }
dhcp:
  port: ${port}
  listen: 127.0.0.1
  subnets:
    - subnet: 127.0.0.0/8
      pools: [127.0.20.10-127.0.20.20]
      leaseTime: 1h
      reservations: [{ mac: "52:54:00:00:00:99", ip: 127.0.20.50, hostname: rack9 }]
`);
  const daemon = await serveDaemon(scratch.file);
  const socket = createSocket('udp4');
  try {
    await new Promise<void>((resolve) => socket.bind(port, '127.0.0.2', () => resolve()));
    const next = (): Promise<Uint8Array> => new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no reply within 3 s')), 3000);
      socket.once('message', (b) => { clearTimeout(timer); resolve(b); });
    });
    socket.send(request(1), port, '127.0.0.1');
    const offer = decodeDhcp(await next());
    t.ok(offer.ok);
    if (!offer.ok) return;
    const ip = formatIpv4(offer.value.yiaddr);
    t.equal(ip, '127.0.20.10');
    socket.send(request(3, [[DhcpOption.RequestedIpAddress, Uint8Array.from(ip.split('.').map(Number))], [DhcpOption.ServerIdentifier, Uint8Array.of(127, 0, 0, 1)]]), port, '127.0.0.1');
    const ack = decodeDhcp(await next());
    t.equal(ack.ok && ack.value.options.get(53)?.[0], 5, 'ACK');

    const sock = ['--socket', `${scratch.dir}/s.sock`];
    const table = await runLanctl(['leases', ...sock]);
    t.equal(table.code, 0, table.stderr);
    t.match(table.stdout, /^IP\s+MAC\s+HOSTNAME\s+CLIENT-ID\s+STATE\s+EXPIRES IN\s+SUBNET/);
    t.match(table.stdout, /127\.0\.20\.10\s+52:54:00:12:34:56\s+cli-node\s+-\s+bound\s+(59m\d+s|1h0m)\s+127\.0\.0\.0\/8/);
    t.match(table.stdout, /SUBNET\s+POOL\s+USED\s+FULL\n127\.0\.0\.0\/8\s+127\.0\.20\.10-127\.0\.20\.20\s+1\/11\s+9%/, 'pool use under the leases');
    t.match((await runLanctl(['status', ...sock])).stdout, /127\.0\.0\.0\/8\s+127\.0\.20\.10-127\.0\.20\.20\s+1\/11/, 'and in lanctl status');
    t.match(table.stdout, /SUBNET\s+LOG INDEX\s+ACKED BY\n/, 'the log index and the ACKing member are columns');
    const json = JSON.parse((await runLanctl(['leases', '--json', '--mac', '52-54-00-12-34-56', ...sock])).stdout) as Array<{ ip: string; index: number | null; ackedBy: string | null }>;
    t.same(json.map((l) => l.ip), ['127.0.20.10'], '--mac filter (any MAC spelling)');
    t.equal(json[0]?.ackedBy, 't', 'ACKed by this node (the proposer recorded in the entry)');
    t.ok(typeof json[0]?.index === 'number' && json[0].index > 0, 'committed at a log index');
    t.match(table.stdout, new RegExp(`127\\.0\\.0\\.0/8\\s+${String(json[0]?.index)}\\s+t\\n`), 'the table row says the same');

    // lanctl nodes: the client that just booted, and the reserved node that never did.
    const nodes = await runLanctl(['nodes', ...sock]);
    t.equal(nodes.code, 0, nodes.stderr);
    t.match(nodes.stdout, /^NAME\s+MAC\s+IP\s+PROFILE\s+GROUP\s+GENERATION\s+LEASE\s+LAST\s+WHEN\s+BOOT EVENTS/);
    t.match(nodes.stdout, /\(cli-node\)\s+52:54:00:12:34:56\s+127\.0\.20\.10\s+-\s+-\s+-\s+bound\s+dhcp lease 127\.0\.20\.10\s+\d+s ago\s+0/);
    t.match(nodes.stdout, /\(rack9\)\s+52:54:00:00:00:99\s+127\.0\.20\.50 \(r\)\s+-\s+-\s+-\s+none\s+never seen\s+-\s+0/);
    t.ok(nodes.stdout.indexOf('52:54:00:12:34:56') < nodes.stdout.indexOf('52:54:00:00:00:99'), 'the active node first');
    const one = JSON.parse((await runLanctl(['nodes', '--json', '--mac', '52:54:00:12:34:56', ...sock])).stdout) as { lease: string; events: Array<{ event: string }> };
    t.same([one.lease, one.events.map((e) => e.event)], ['bound', ['dhcp']], 'one node with its events');
    const unknown = await runLanctl(['nodes', '--mac', '52:54:00:00:00:01', ...sock]);
    t.equal(unknown.code, 1, 'an unknown MAC fails');
    t.match(unknown.stderr, /no node 52:54:00:00:00:01/);
    t.same(JSON.parse((await runLanctl(['leases', '--json', '--ip', '127.0.20.11', ...sock])).stdout), [], '--ip filter');
    const bad = await runLanctl(['leases', '--ip', 'nope', ...sock]);
    t.not(bad.code, 0);
    t.match(bad.stderr, /not an IPv4 address/);

    const rel = await runLanctl(['leases', 'release', '127.0.20.10', ...sock]);
    t.equal(rel.code, 0, rel.stderr);
    t.match(rel.stdout, 'released 127.0.20.10 (52:54:00:12:34:56)');
    t.match((await runLanctl(['leases', ...sock])).stdout, 'no leases');
    t.match((await runLanctl(['leases', '--all', ...sock])).stdout, /127\.0\.20\.10.*released/);
    const again = await runLanctl(['leases', 'release', '127.0.20.10', ...sock]);
    t.equal(again.code, 1);
    t.match(again.stderr, 'no bound lease for 127.0.20.10');

    const status = JSON.parse((await runLanctl(['status', '--json', ...sock])).stdout) as { services: { dhcp: { counters: Record<string, number>; pools: unknown } } };
    t.equal(status.services.dhcp.counters['sent.ack'], 1, 'lanctl status shows the DHCP counters');
    t.same(status.services.dhcp.pools, [{ subnet: '127.0.0.0/8', used: 0, total: 11, pools: [{ range: '127.0.20.10-127.0.20.20', used: 0, total: 11 }] }], 'and pool use (the lease was released)');
  } finally {
    socket.close();
    await daemon.stop();
    scratch.cleanup();
  }
});

t.test('dhcp.interface: a missing interface stops the start naming the key; an existing one is served', async (t) => {
  const yaml = (iface: string): string => `node: { name: t, address: 127.0.0.1, stateDir: "{{dir}}/state", controlSocket: "{{dir}}/s.sock" }
dhcp:
  port: ${port + 1}
  listen: 127.0.0.1
  interface: ${iface}
  subnets:
    - subnet: 127.0.0.0/8
      pools: [127.0.20.10-127.0.20.20]
`;
  const missing = scratchConfig(yaml('lhnope0'));
  t.teardown(missing.cleanup);
  const failed = await serveDaemon(missing.file).then(async (d) => { await d.stop(); return 'started'; }, (e: unknown) => String(e));
  t.match(failed, /daemon exited \(1\)/, 'lanctl serve exits 1 (start failed)');
  t.match(failed, /dhcp\.interface: \\"lhnope0\\" is not an interface on this node/, 'and says which key and why');
  const lo = scratchConfig(yaml('lo'));
  t.teardown(lo.cleanup);
  const daemon = await serveDaemon(lo.file);
  try {
    t.match(daemon.logs(), /"event":"dhcp\.listening"[^\n]*"interface":"lo"/, 'DHCP serves on lo and logs the interface');
  } finally {
    await daemon.stop();
  }
});
