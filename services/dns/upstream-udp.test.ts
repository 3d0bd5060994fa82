import t from 'tap';
import dgram from 'node:dgram';
import { seededRandom, type Random } from '../../lib/random.js';
import { UpstreamUdp, type UpstreamWaiter } from './upstream-udp.js';
import { DatagramSender } from '../../lib/udp-direct.js';

// The shared upstream sockets against a loopback echo: replies reach the query whose ID they carry,
// on its socket only; a datagram with an ID nobody waits for is counted; at most socketsMax sockets
// take queries, each at most usesMax queries; a retired
// socket closes once its last query is done; close() closes everything.

t.test('queries share a few sockets, routed by ID; sockets retire after usesMax and close when drained', async (t) => {
  const echo = dgram.createSocket('udp4');
  echo.on('message', (m, r) => echo.send(m, r.port, r.address));
  // Queries counted per pool socket, not per source port: the kernel may give a new socket the
  // port of one the pool closed (a full test run once saw 6 queries on one port with usesMax 5).
  const perSocket = new Map<dgram.Socket, number>();
  // (Counted where the pool's sends go: its sockets' senders, lib/udp-direct.ts.)
  const send = DatagramSender.prototype.send;
  DatagramSender.prototype.send = function (this: DatagramSender, ...args: Parameters<typeof send>) {
    perSocket.set(this.socket, (perSocket.get(this.socket) ?? 0) + 1);
    return send.apply(this, args);
  };
  t.teardown(() => { DatagramSender.prototype.send = send; });
  await new Promise<void>((r) => echo.bind(0, '127.0.0.1', () => r()));
  t.teardown(() => echo.close());
  const port = echo.address().port;
  let unmatched = 0;
  const pool = new UpstreamUdp({ random: seededRandom(7), socketsMax: 2, usesMax: 5, onUnmatched: () => unmatched++ });

  const waiter = (onReply: (msg: Buffer) => void): UpstreamWaiter => ({ upstreamId: -1, upstreamSocket: null, onUpstreamReply: onReply });
  const ask = (): Promise<boolean> => new Promise((resolve) => {
    const w = waiter((msg) => {
      const id = (msg[0]! << 8) | msg[1]!;
      pool.release(w);
      resolve(id === w.upstreamId);
    });
    pool.take(4, w);
    const q = Buffer.alloc(12);
    q.writeUInt16BE(w.upstreamId, 0);
    if (!pool.send(w, q, port, '127.0.0.1')) { pool.release(w); resolve(false); }
  });

  const first = await Promise.all(Array.from({ length: 10 }, () => ask()));
  t.ok(first.every(Boolean), '10 queries at once: each got the reply with its own ID');
  t.ok(perSocket.size >= 2 && perSocket.size <= 3, `from 2-3 sockets (${perSocket.size}): two in turn, a third once one retired`);
  t.ok(await eventuallyTrue(() => pool.sockets <= 2), `retired sockets closed once drained: at most socketsMax left open (${pool.sockets})`);

  const more: boolean[] = [];
  for (let i = 0; i < 12; i++) more.push(await ask());
  t.ok(more.every(Boolean), '12 more one by one');
  t.ok([...perSocket.values()].every((n) => n <= 5), `no socket carried more than usesMax queries (${[...perSocket.values()].join(', ')})`);
  t.ok(perSocket.size >= 5, `22 queries from ${perSocket.size} sockets (at least 22 / usesMax)`);

  // A datagram carrying an ID no query waits for (late, forged) is counted and goes nowhere.
  const w = waiter(() => t.fail('a reply for another ID must not reach this query'));
  pool.take(4, w);
  const stray = Buffer.alloc(12);
  stray.writeUInt16BE((w.upstreamId + 1) & 0xffff, 0);
  pool.send(w, stray, port, '127.0.0.1');
  t.ok(await eventuallyTrue(() => unmatched === 1), 'the stray reply is counted');
  pool.release(w);
  // Released: its own ID reaches nobody now (counted as the stray was), and a second release is harmless.
  const late1 = waiter(() => undefined);
  pool.take(4, late1);
  const own = Buffer.alloc(12);
  own.writeUInt16BE(w.upstreamId, 0);
  if (late1.upstreamId !== w.upstreamId) {
    pool.send(late1, own, port, '127.0.0.1');
    t.ok(await eventuallyTrue(() => unmatched === 2), 'a reply with a released ID is counted, not delivered');
  }
  pool.release(late1);
  pool.release(w);
  pool.close();
  t.equal(pool.sockets, 0, 'close() closes every socket');
  let failed = false;
  const late = waiter(() => undefined);
  pool.take(4, late);
  if (!pool.send(late, Buffer.alloc(12), port, '127.0.0.1')) failed = true;
  pool.release(late);
  t.ok(await eventuallyTrue(() => failed || pool.sockets === 0), 'after close, a query fails or leaves no socket behind');
  t.equal(pool.sockets, 0);
});

t.test('a released ID is not taken again on its socket: a late reply to the old query cannot pass for the new one', (t) => {
  // A random source that gives the same ID every time: the worst case of two draws colliding.
  const pool = new UpstreamUdp({ random: { int: () => 4242 } as unknown as Random, socketsMax: 1, usesMax: 64 });
  t.teardown(() => pool.close());
  const waiter = (): UpstreamWaiter => ({ upstreamId: -1, upstreamSocket: null, onUpstreamReply: () => undefined });
  const ids: number[] = [];
  const sockets = new Set<object | null>();
  for (let i = 0; i < 40; i++) {
    const w = waiter();
    pool.take(4, w);
    sockets.add(w.upstreamSocket);
    ids.push(w.upstreamId);
    pool.release(w); // answered before the next one is asked
  }
  t.equal(sockets.size, 1, 'one socket took them all (socketsMax 1, usesMax 64)');
  t.equal(new Set(ids).size, ids.length, `40 queries one after another on one socket, each released before the next: 40 different IDs (${new Set(ids).size})`);
  t.end();
});

async function eventuallyTrue(check: () => boolean, timeoutMs = 2000): Promise<boolean> {
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; await new Promise((r) => setTimeout(r, 20))) if (check()) return true;
  return check();
}
