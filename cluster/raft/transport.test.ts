import t from 'tap';
import { connect } from 'node:net';
import { silentLogger } from '../../lib/log.js';
import { Transport } from './transport.js';
import { emptyMessage, type Message } from './types.js';
import { freePort } from '../../test/scenarios/raft/cluster-harness.js';

const KEY = new Uint8Array(32).fill(1);
const wait = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function pair(t: { teardown(fn: () => Promise<void>): void }, bKey = KEY, bCluster = 'c1') {
  const [pa, pb] = [await freePort(), await freePort()];
  const peers = { a: { host: '127.0.0.1', port: pa }, b: { host: '127.0.0.1', port: pb } };
  const a = new Transport({ self: 'a', clusterId: 'c1', key: KEY, listen: peers.a, peers, log: silentLogger });
  const b = new Transport({ self: 'b', clusterId: bCluster, key: bKey, listen: peers.b, peers, log: silentLogger });
  const atA: Message[] = [], atB: Message[] = [];
  await a.start((m) => atA.push(m));
  await b.start((m) => atB.push(m));
  t.teardown(async () => { await a.close(); await b.close(); });
  return { a, b, atA, atB, peers };
}

async function until(cond: () => boolean, ms = 3000): Promise<boolean> {
  const end = performance.now() + ms;
  while (!cond() && performance.now() < end) await wait(5);
  return cond();
}

t.test('members with the same key exchange messages both ways', async (t) => {
  const { a, b, atA, atB } = await pair(t);
  await until(() => (a.status()['peers'] as Record<string, { connected: boolean }>)['b']!.connected && (b.status()['peers'] as Record<string, { connected: boolean }>)['a']!.connected);
  const m = { ...emptyMessage('append', 'a', 'b', 3), index: 7, entries: [{ term: 3, index: 8, type: 0 as const, data: new Uint8Array([1, 2]) }] };
  a.send([m, { ...m, index: 8 }]);
  b.send([emptyMessage('append-resp', 'b', 'a', 3)]);
  t.ok(await until(() => atB.length === 2 && atA.length === 1), 'delivered');
  t.equal(atB[0]!.entries[0]!.index, 8);
  t.same([...atB[0]!.entries[0]!.data], [1, 2]);
});

t.test('a member with another key is refused and nothing it sends is delivered', async (t) => {
  const { a, b, atA, atB } = await pair(t, new Uint8Array(32).fill(2));
  a.send([emptyMessage('heartbeat', 'a', 'b', 1)]);
  await wait(300);
  b.send([emptyMessage('heartbeat', 'b', 'a', 1)]);
  await wait(300);
  t.equal(atA.length + atB.length, 0, 'no message crossed');
  const rejected = { ...(a.status()['counters'] as Record<string, number>), ...(b.status()['counters'] as Record<string, number>) };
  t.ok(Object.keys(rejected).some((k) => k.startsWith('rejected.bad-')), `refusals counted: ${JSON.stringify(rejected)}`);
});

t.test('another cluster id is refused', async (t) => {
  const { a, atB } = await pair(t, KEY, 'c2');
  a.send([emptyMessage('heartbeat', 'a', 'b', 1)]);
  await wait(300);
  t.equal(atB.length, 0);
  t.ok(Object.keys(a.status()['counters'] as object).some((k) => k.includes('wrong')), 'counted on the dialling side');
});

t.test('garbage and forged frames on the port are dropped without harm', async (t) => {
  const { a, b, atB, peers } = await pair(t);
  for (const junk of [Buffer.from('GET / HTTP/1.0\r\n\r\n'), Buffer.alloc(100, 0xff), Buffer.from([0, 0, 0, 60, 1, 3, 0, 0, 0, 0, 0, 0, 0, 1, ...new Array(56).fill(0)])]) {
    await new Promise<void>((resolve) => {
      const s = connect(peers.b.port, '127.0.0.1', () => s.write(junk));
      s.on('close', () => resolve());
      s.on('error', () => resolve());
      setTimeout(() => { s.destroy(); resolve(); }, 1000).unref();
    });
  }
  const counters = b.status()['counters'] as Record<string, number>;
  t.ok(Object.entries(counters).some(([k, v]) => k.startsWith('rejected.') && v >= 2), `rejections counted: ${JSON.stringify(counters)}`);
  await until(() => (a.status()['peers'] as Record<string, { connected: boolean }>)['b']!.connected);
  a.send([emptyMessage('heartbeat', 'a', 'b', 1)]);
  t.ok(await until(() => atB.length === 1), 'the real peer still gets through');
});
