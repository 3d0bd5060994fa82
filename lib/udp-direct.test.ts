import t from 'tap';
import dgram from 'node:dgram';
import { DatagramSender, SEND_DONE, SEND_FAILED, SEND_QUEUED, onDatagram } from './udp-direct.js';
import { dgramState } from './udp-reading.js';

// Datagrams taken straight from a socket's handle and replies given straight to it (lib/udp-direct.ts),
// on loopback; the queued-send bookkeeping with a handle that queues every send.

async function bound(): Promise<dgram.Socket> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', () => resolve()));
  return s;
}

function collect(socket: dgram.Socket, n: number): Promise<Buffer[]> {
  const got: Buffer[] = [];
  return new Promise((resolve) => socket.on('message', (m) => { got.push(m); if (got.length === n) resolve(got); }));
}

t.test('onDatagram: a bound socket delivers through its handle, not the message event, errors still reach the socket', async (t) => {
  const server = await bound();
  const client = await bound();
  t.teardown(() => { server.close(); client.close(); });
  let events = 0;
  server.on('message', () => events++);
  const got: { text: string; port: number; address: string }[] = [];
  let gotAll: () => void = () => undefined;
  const all = new Promise<void>((resolve) => { gotAll = resolve; });
  t.ok(onDatagram(server, (msg, rinfo) => { got.push({ text: msg.toString(), port: rinfo.port, address: rinfo.address }); if (got.length === 3) gotAll(); }), 'hooked the handle');
  for (const text of ['one', 'two', '']) client.send(text, server.address().port, '127.0.0.1');
  await all;
  t.same(got.map((g) => g.text), ['one', 'two', ''], 'every datagram, an empty one included, in order');
  t.same(got[0], { text: 'one', port: client.address().port, address: '127.0.0.1' }, 'with its source');
  t.equal(events, 0, 'the message event is no longer used');
  // A receive error (negative nread) still goes the socket's way: dgram's own handler emits 'error'.
  const handle = dgramState(server)!.handle as unknown as { onmessage: (n: number, h: unknown, b: unknown, r: unknown) => void };
  const err = new Promise<Error>((resolve) => server.once('error', resolve));
  handle.onmessage(-11, handle, undefined, undefined);
  t.match((await err).message, /recvmsg/, 'error event');
});

t.test('onDatagram: a socket not bound yet gets a message listener (and still delivers once bound)', async (t) => {
  const server = dgram.createSocket('udp4');
  const client = await bound();
  t.teardown(() => { server.close(); client.close(); });
  const got = new Promise<string>((resolve) => { t.notOk(onDatagram(server, (msg) => resolve(msg.toString())), 'not hooked: no handle callback yet'); });
  await new Promise<void>((resolve) => server.bind(0, '127.0.0.1', () => resolve()));
  client.send('late', server.address().port, '127.0.0.1');
  t.equal(await got, 'late');
});

t.test('DatagramSender: replies written in the one scratch area arrive each as it was sent', async (t) => {
  const server = await bound();
  const client = await bound();
  t.teardown(() => { server.close(); client.close(); });
  const sender = new DatagramSender(server);
  t.ok(sender.direct, 'this Node has the handle shapes');
  const n = 50;
  const arrived = collect(client, n);
  const areas = new Set<ArrayBufferLike>();
  for (let i = 0; i < n; i++) {
    const size = 12 + (i % 5);
    const b = sender.buffer(size);
    t.equal(b.length, size);
    b.fill(i); // overwrites the previous reply's bytes: they must have left already
    areas.add(b.buffer);
    t.equal(sender.send(b, client.address().port, '127.0.0.1'), SEND_DONE);
  }
  t.equal(areas.size, 1, 'every reply written in the same area');
  const got = await arrived;
  t.same(got.map((m) => [m.length, m[0], m[m.length - 1]]), Array.from({ length: n }, (_, i) => [12 + (i % 5), i, i]), 'each datagram as it was when sent');
  t.not(sender.buffer(5000).buffer, [...areas][0], 'a reply larger than the area gets a buffer of its own');
});

t.test('DatagramSender: failures are returned, never thrown, and a bad port never reaches the handle', async (t) => {
  const server = await bound();
  const sender = new DatagramSender(server);
  t.equal(sender.send(Buffer.from('x'), 70_000, '127.0.0.1'), SEND_FAILED, 'port out of range');
  t.equal(sender.send(Buffer.from('x'), 1.5, '127.0.0.1'), SEND_FAILED, 'port not an integer');
  t.equal(sender.send(Buffer.from('x'), 9, 'not-an-address'), SEND_FAILED, 'not an IP literal');
  await new Promise<void>((resolve) => server.close(() => resolve()));
  t.equal(sender.send(Buffer.from('x'), 9, '127.0.0.1'), SEND_FAILED, 'closed socket');
});

t.test('DatagramSender: a send the handle queues keeps its bytes, request and list; the next reply goes elsewhere', async (t) => {
  // A stand-in socket whose handle queues every send (what libuv does when the send buffer is full).
  const calls: { req: object; list: (Uint8Array | null)[]; bytes: Uint8Array }[] = [];
  const handle = {
    send(req: object, list: (Uint8Array | null)[], count: number, port: number, address: string, hasCallback: boolean): number {
      t.equal(count, 1); t.equal(port, 53); t.equal(address, '127.0.0.1'); t.equal(hasCallback, false);
      calls.push({ req, list, bytes: list[0]! });
      return 0;
    },
    recvStart: () => 0, recvStop: () => 0, lookup: () => undefined,
  };
  const socket = { [Symbol('state symbol')]: { handle, receiving: true } } as unknown as dgram.Socket;
  const sender = new DatagramSender(socket);
  t.ok(sender.direct);
  const a = sender.buffer(20);
  t.equal(sender.send(a, 53, '127.0.0.1'), SEND_QUEUED);
  const b = sender.buffer(20);
  t.not(b.buffer, a.buffer, 'the queued reply\'s area is not written again');
  t.equal(sender.send(b, 53, '127.0.0.1'), SEND_QUEUED);
  t.not(calls[1]!.req, calls[0]!.req, 'a new request object per queued send');
  t.not(calls[1]!.list, calls[0]!.list, 'and a new list');
  t.equal((calls[0]!.req as { list?: unknown }).list, calls[0]!.list, 'the queued request holds its list (and so its bytes)');
  t.equal(calls[0]!.list[0], a, 'the list still holds the first reply');
});

t.test('DatagramSender: a socket without the handle shapes sends through dgram, each reply in its own buffer', async (t) => {
  const sent: Uint8Array[] = [];
  const socket = { send: (b: Uint8Array) => { sent.push(b); } } as unknown as dgram.Socket;
  const sender = new DatagramSender(socket);
  t.notOk(sender.direct);
  const a = sender.buffer(12);
  const b = sender.buffer(12);
  t.not(a.buffer === b.buffer && a.byteOffset === b.byteOffset, true, 'two buffers');
  t.equal(sender.send(a, 53, '127.0.0.1'), SEND_QUEUED, 'dgram keeps the bytes');
  t.equal(sent[0], a);
  const throwing = new DatagramSender({ send: () => { throw new Error('not running'); } } as unknown as dgram.Socket);
  t.equal(throwing.send(a, 53, '127.0.0.1'), SEND_FAILED, 'a throw is a failure');
});

async function connectedTo(peer: dgram.Socket): Promise<dgram.Socket> {
  const s = await bound();
  await new Promise<void>((resolve) => s.connect(peer.address().port, '127.0.0.1', () => resolve()));
  return s;
}

t.test('DatagramSender: a connected socket sends with no destination, straight through its handle', async (t) => {
  const client = await bound();
  const server = await connectedTo(client);
  t.teardown(() => { server.close(); client.close(); });
  const sender = new DatagramSender(server);
  t.ok(sender.direct);
  const arrived = collect(client, 3);
  t.equal(sender.send(Buffer.from('one')), SEND_DONE, 'the four-argument send of a connected socket');
  t.equal(sender.send(Buffer.from('two')), SEND_DONE);
  t.equal(sender.send(Buffer.from('x'), client.address().port, '127.0.0.1'), SEND_FAILED, 'a destination on a connected socket is refused');
  t.equal(sender.send(Buffer.from('three')), SEND_DONE);
  t.same((await arrived).map(String), ['one', 'two', 'three']);
  const unconnected = new DatagramSender(client);
  t.equal(unconnected.send(Buffer.from('x')), SEND_FAILED, 'no destination on an unconnected socket is refused');
});

t.test('DatagramSender: a connected send the handle queues keeps its bytes; no port or address reaches the handle', async (t) => {
  const calls: unknown[][] = [];
  const handle = {
    send(...args: unknown[]): number { calls.push(args); return 0; },
    recvStart: () => 0, recvStop: () => 0, lookup: () => undefined,
  };
  const socket = { [Symbol('state symbol')]: { handle, receiving: true } } as unknown as dgram.Socket;
  const sender = new DatagramSender(socket);
  const a = Buffer.from('first');
  t.equal(sender.send(a), SEND_QUEUED);
  t.equal(sender.send(Buffer.from('second')), SEND_QUEUED);
  t.equal(calls[0]!.length, 4, 'req, list, count, hasCallback');
  t.same(calls[0]!.slice(2), [1, false]);
  t.not(calls[1]![1], calls[0]![1], 'a new list after a queued send');
  t.equal((calls[0]![1] as Uint8Array[])[0], a, 'the queued list still holds the first packet');
});

t.test('DatagramSender: without the handle shapes a connected socket sends through dgram with no destination', async (t) => {
  const client = await bound();
  const server = await connectedTo(client);
  t.teardown(() => { server.close(); client.close(); });
  // The same socket seen without its internal state (what another Node would give).
  const plain = { send: (...args: unknown[]) => (server.send as (...a: unknown[]) => void)(...args) } as unknown as dgram.Socket;
  const sender = new DatagramSender(plain);
  t.notOk(sender.direct);
  const arrived = collect(client, 2);
  t.equal(sender.send(Buffer.from('a')), SEND_QUEUED);
  let late = 0;
  t.equal(sender.send(Buffer.from('b'), undefined, undefined, () => late++), SEND_QUEUED);
  t.same((await arrived).map(String), ['a', 'b']);
  t.equal(late, 0);
});

t.test('DatagramSender and onDatagram inside a worker thread: the handle shapes are there too', async (t) => {
  const { Worker } = await import('node:worker_threads');
  const module = new URL('./udp-direct.js', import.meta.url).href;
  const code = `
    const { parentPort } = require('node:worker_threads');
    const dgram = require('node:dgram');
    import(${JSON.stringify(module)}).then(async ({ DatagramSender, onDatagram }) => {
      const a = dgram.createSocket('udp4'); const b = dgram.createSocket('udp4');
      await new Promise((r) => a.bind(0, '127.0.0.1', r)); await new Promise((r) => b.bind(0, '127.0.0.1', r));
      await new Promise((r) => a.connect(b.address().port, '127.0.0.1', r));
      const got = new Promise((r) => { parentPort.postMessage({ hooked: onDatagram(b, (m) => r(String(m))) }); });
      const sender = new DatagramSender(a);
      parentPort.postMessage({ direct: sender.direct, sent: sender.send(Buffer.from('from a worker')) });
      parentPort.postMessage({ got: await got });
      a.close(); b.close();
    });`;
  const worker = new Worker(code, { eval: true });
  const messages: Record<string, unknown> = {};
  await new Promise<void>((resolve, reject) => {
    worker.on('message', (m: Record<string, unknown>) => { Object.assign(messages, m); if ('got' in m) resolve(); });
    worker.on('error', reject);
  });
  await worker.terminate();
  t.same(messages, { hooked: true, direct: true, sent: SEND_DONE, got: 'from a worker' });
});
