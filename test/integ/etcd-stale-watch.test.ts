// cluster.backend etcd, two `lanctl serve` daemons on loopback (no root) on a 3-member etcd the test
// starts: the follower watches through member e1 and the leader never talks to it. e1 is frozen
// (SIGSTOP: its connections stay open, so the follower's watch goes silent without ending), the
// leader ACKs a DHCP lease (relay-style client at 127.0.0.2), and etcd's history is compacted past
// the follower's last revision. The follower's daemon must notice the stall by itself, move its
// watch to another member, find the start revision compacted away, reload, and show the lease the
// leader granted (`lanctl leases`), with the same state hash as the leader; `lanctl status` says
// the watch stalled and that it reloaded.
import t from 'tap';
import { createSocket, type Socket } from 'node:dgram';
import { join } from 'node:path';
import { runLanctl, scratchConfig, serveDaemon, type ServedDaemon } from '../support/daemon.js';
import { freePort } from '../support/ports.js';
import { etcdAvailable, startEtcdCluster, type EtcdCluster } from '../support/etcd.js';
import { haveTools } from '../support/tools.js';
import { EtcdClient } from '../../cluster/etcd/client.js';
import { decodeDhcp, encodeDhcp, emptyMessage, BootOp } from '../../services/dhcp/wire.js';
import { DhcpOption } from '../../services/dhcp/options.js';
import { formatIpv4 } from '../../lib/ipv4.js';

t.setTimeout(300_000);

interface EtcdView {
  revision: number;
  staleWatches: number;
  reloads: number;
  watch: { endpoint: string; stale: boolean; lastStall: { endpoint: string; at: string } | null; stalls: Record<string, number> };
}
interface StatusView { cluster: { role: string; appliedIndex: number; stateHash?: string; etcd: EtcdView } }

const poll = async <T>(what: string, probe: () => Promise<T | null>, ms: number): Promise<T> => {
  const deadline = performance.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== null) return v;
    if (performance.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
};

function dhcpPacket(type: number, mac: number[], extra: Array<[number, Uint8Array]> = []): Uint8Array {
  const m = emptyMessage();
  m.op = BootOp.Request;
  m.xid = 0x5000 + mac[5]!;
  m.hops = 1;
  m.giaddr = (127 << 24 | 2) >>> 0;
  m.chaddr.set(mac);
  m.options.set(DhcpOption.MessageType, Uint8Array.of(type));
  for (const [c, d] of extra) m.options.set(c, d);
  return encodeDhcp(m, 548);
}

/** DISCOVER + REQUEST through the relay address; the IP ACKed. */
async function dora(socket: Socket, port: number, mac: number[]): Promise<string> {
  const next = (): Promise<Uint8Array> => new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no DHCP reply within 10 s')), 10_000);
    socket.once('message', (b) => { clearTimeout(timer); resolve(b); });
  });
  socket.send(dhcpPacket(1, mac), port, '127.0.0.1');
  const offer = decodeDhcp(await next());
  if (!offer.ok) throw new Error('the OFFER does not decode');
  const ip = formatIpv4(offer.value.yiaddr);
  socket.send(dhcpPacket(3, mac, [[DhcpOption.RequestedIpAddress, Uint8Array.from(ip.split('.').map(Number))], [DhcpOption.ServerIdentifier, Uint8Array.of(127, 0, 0, 1)]]), port, '127.0.0.1');
  const ack = decodeDhcp(await next());
  if (!ack.ok || ack.value.options.get(DhcpOption.MessageType)?.[0] !== 5) throw new Error(`no ACK for ${ip}`);
  return ip;
}

t.test('a daemon whose etcd watch stalls and whose history was compacted away catches up by itself', async (t) => {
  if (!etcdAvailable() && !haveTools(t, ['etcd'], 'etcd stale-watch daemon test (Debian etcd-server)')) return;
  const etcd: EtcdCluster = await startEtcdCluster(3);
  const daemons: ServedDaemon[] = [];
  const scratches: Array<{ cleanup: () => void }> = [];
  const frozen = etcd.members[1]!;
  t.teardown(async () => {
    frozen.child?.kill('SIGCONT');
    for (const d of daemons) await d.stop();
    await etcd.stop();
    for (const s of scratches) s.cleanup();
  });
  const [e0, e1, e2] = etcd.endpoints as [string, string, string];
  const config = (name: string, address: string, port: number, endpoints: string[]): { dir: string; file: string } => {
    const s = scratchConfig(`node: { name: ${name}, address: ${address}, stateDir: "{{dir}}/state", controlSocket: "{{dir}}/s.sock" }
cluster:
  id: stale-watch
  backend: etcd
  members: [{ name: a, address: 127.0.0.1 }, { name: b, address: 127.0.0.3 }]
  etcd: { endpoints: [${endpoints.map((e) => `"${e}"`).join(', ')}], leaseTtl: 1s, requestTimeout: 2s }
dhcp:
  port: ${port}
  listen: 127.0.0.1
  subnets:
    - subnet: 127.0.0.0/8
      pools: [127.0.30.10-127.0.30.20]
      leaseTime: 1h
`);
    scratches.push(s);
    return s;
  };
  const lanctl = async (dir: string, ...args: string[]): Promise<string> => {
    const r = await runLanctl([...args, '--socket', join(dir, 's.sock')], { timeoutMs: 60_000 });
    if (r.code !== 0) throw new Error(`lanctl ${args.join(' ')}: exit ${r.code}: ${r.stderr}`);
    return r.stdout;
  };
  const status = async (dir: string): Promise<StatusView> => JSON.parse(await lanctl(dir, 'status', '--json')) as StatusView;
  const leased = async (dir: string, ip: string): Promise<{ ip: string; mac: string } | null> => {
    const leases = JSON.parse(await lanctl(dir, 'leases', '--json')) as Array<{ ip: string; mac: string; state: string }>;
    return leases.find((l) => l.ip === ip && l.state === 'bound') ?? null;
  };

  // a leads: started first, and it never talks to e1. b follows, watching through e1.
  const portA = await freePort();
  const a = config('a', '127.0.0.1', portA, [e0, e2]);
  const b = config('b', '127.0.0.3', await freePort(), [e1, e0, e2]);
  daemons.push(await serveDaemon(a.file, { timeoutMs: 60_000 }));
  await poll('a to lead', async () => ((await status(a.dir)).cluster.role === 'leader' ? true : null), 30_000);
  daemons.push(await serveDaemon(b.file, { timeoutMs: 60_000 }));
  const bView = await poll('b to follow through e1', async () => {
    const s = await status(b.dir);
    return s.cluster.role === 'follower' && s.cluster.etcd.watch.endpoint === e1 ? s : null;
  }, 30_000);
  t.equal(bView.cluster.etcd.staleWatches, 0, 'b\'s watch has not stalled yet');

  const socket = createSocket('udp4');
  t.teardown(() => socket.close());
  await new Promise<void>((resolve) => socket.bind(portA, '127.0.0.2', () => resolve()));
  const first = await dora(socket, portA, [0x52, 0x54, 0x00, 0x00, 0x30, 0x01]);
  t.ok(await poll('b to see the first lease', () => leased(b.dir, first), 20_000), `b applied the first lease (${first}) through its watch`);

  frozen.child!.kill('SIGSTOP'); // e1 keeps its connections open: b's watch goes silent without ending
  try {
    const mac = [0x52, 0x54, 0x00, 0x00, 0x30, 0x02];
    const second = await dora(socket, portA, mac);
    t.pass(`a ACKed ${second} with e1 frozen`);
    // Compact etcd's history past b's last revision: the watch b restarts elsewhere cannot start there.
    // One write beside the prefix first: compacting at the second lease's own revision would keep
    // that revision, and a watch restarted from it would need no reload.
    let compactedAt = 0;
    const raw = new EtcdClient({ endpoints: [e0, e2] });
    try {
      const { revision } = await raw.txn([], [{ put: { key: '/lanha/stale-watch-test/pad', value: new TextEncoder().encode('past the lease') } }]);
      await raw.compact(revision);
      compactedAt = Date.now();
      t.comment(`compacted etcd at revision ${revision}`);
    } finally {
      raw.close();
    }
    const lease = await poll(`b to show ${second}`, () => leased(b.dir, second), 60_000);
    t.equal(lease.mac, '52:54:00:00:30:02', `b shows the lease a granted while b's watch was stalled (${second})`);
    const [sa, sb] = await poll('b and a at the same applied index', async () => {
      const [x, y] = await Promise.all([status(a.dir), status(b.dir)]);
      return x.cluster.appliedIndex === y.cluster.appliedIndex ? [x, y] as const : null;
    }, 20_000);
    t.equal(sb.cluster.stateHash, sa.cluster.stateHash, 'with the same replicated state as a');
    const e = sb.cluster.etcd;
    t.ok(e.staleWatches >= 1, `b noticed its watch stalled (${e.staleWatches} time(s)), through ${e.watch.lastStall?.endpoint}`);
    // What matters is that b follows again while e1 stays frozen, whichever endpoint it is on at this
    // instant: a lease a grants now reaches b.
    const third = await dora(socket, portA, [0x52, 0x54, 0x00, 0x00, 0x30, 0x03]);
    const followed = await poll(`b to show ${third} with e1 still frozen`, () => leased(b.dir, third), 30_000);
    t.equal(followed.mac, '52:54:00:00:30:03', `b follows again with e1 frozen (${third}; watching through ${(await status(b.dir)).cluster.etcd.watch.endpoint})`);
    // Other writes under the prefix (member reports) can show the stall before the compaction; b's
    // watch then restarted in time and needed no reload. Once the stall came after it, it must reload.
    const stalledAt = Date.parse(e.watch.lastStall?.at ?? '');
    if (stalledAt >= compactedAt) t.ok(e.reloads >= 1, `b found its revision compacted away and reloaded the state (${e.reloads} reload(s))`);
    else t.comment(`b saw its watch stall before the compaction and restarted it in time (${e.reloads} reload(s))`);
    // Every stall b recorded, over the whole run, was through the frozen member: a watch restarted
    // on a healthy one, or a reload, is progress, never a stall (each false one cost a needless
    // watch restart and kept b off a healthy member for a minute).
    const stalls = (await status(b.dir)).cluster.etcd.watch.stalls;
    t.same(Object.keys(stalls), [e1], `b's stalls were all through the frozen member ${e1} (${JSON.stringify(stalls)})`);
    const text = await lanctl(b.dir, 'status');
    t.match(text, /stalled \d+ time\(s\)|watch STALE/, 'lanctl status says the watch stalled');
  } finally {
    frozen.child?.kill('SIGCONT');
  }
});
