import t from 'tap';
import net from 'node:net';
import { silentLogger } from '../../lib/log.js';
import { OpsHttpServer } from './http-server.js';
import { ITEMS_PER_SLICE } from '../../lib/slices.js';
import { loopTurns } from '../../test/support/loop-turns.js';

// The read-only listener against slow clients: a connection that never finishes its headers is
// closed once headersTimeout passes (Node checks only every connectionsCheckingInterval, 30 s unless
// set), so slow clients cannot keep every maxConnections slot.

t.test('connections that never finish their headers are closed after headersTimeout; the slots serve again', async (t) => {
  const server = new OpsHttpServer({
    listen: { host: '127.0.0.1', port: 0 }, maxConnections: 4, log: silentLogger, pages: new Map([['/', () => ({ status: 200, contentType: 'text/plain', body: 'ok' })]]),
    readApi: async () => ({ status: 404, body: {} }), headersTimeoutMs: 400, requestTimeoutMs: 800,
  });
  await server.listen();
  const { sockets: slow, closings } = await openConnections(server.port, 4, 'GET / HTTP/1.1\r\nHost: x\r\n'); // and never the blank line
  t.teardown(async () => { for (const s of slow) s.destroy(); await server.close(); });
  // Well past headersTimeout, well short of Node's default 30 s check.
  const closed = await Promise.race([
    Promise.all(closings).then(() => true),
    new Promise<boolean>((r) => setTimeout(() => r(false), 10_000)),
  ]);
  t.ok(closed, 'every slow connection was closed by the server');
  const body = await getRoot(server.port);
  t.match(body, /^HTTP\/1\.1 200/, 'and a client is served again');
});

// Connections that send nothing held every slot (32 idle connects kept the pages and /metrics from
// everyone, 150 s and counting): idleMs (here well before headersTimeout) closes them.
t.test('connections that never send a byte are closed once idle; the slots serve again', async (t) => {
  const server = new OpsHttpServer({
    listen: { host: '127.0.0.1', port: 0 }, maxConnections: 4, log: silentLogger, pages: new Map([['/', () => ({ status: 200, contentType: 'text/plain', body: 'ok' })]]),
    readApi: async () => ({ status: 404, body: {} }), idleMs: 300,
  });
  await server.listen();
  const { sockets: idle, closings } = await openConnections(server.port, 4, null);
  t.teardown(async () => { for (const s of idle) s.destroy(); await server.close(); });
  const closed = await Promise.race([
    Promise.all(closings).then(() => true),
    new Promise<boolean>((r) => { setTimeout(() => r(false), 20_000).unref(); }),
  ]);
  t.ok(closed, 'every silent connection was closed by the server');
  const body = await getRoot(server.port);
  t.match(body, /^HTTP\/1\.1 200/, 'and a client is served again');
});

// One host that holds connections (or reconnects in a loop) must not take every slot: past
// maxConnectionsPerSource its new connections are closed at accept, and another host is served.
t.test('one address holds at most maxConnectionsPerSource; another address is served meanwhile', async (t) => {
  const server = new OpsHttpServer({
    listen: { host: '127.0.0.1', port: 0 }, maxConnections: 16, maxConnectionsPerSource: 3, log: silentLogger,
    pages: new Map([['/', () => ({ status: 200, contentType: 'text/plain', body: 'ok' })]]), readApi: async () => ({ status: 404, body: {} }), idleMs: 60_000,
  });
  await server.listen();
  const { sockets: held, closings } = await openConnections(server.port, 4, null);
  t.teardown(async () => { for (const s of held) s.destroy(); await server.close(); });
  await closings[3];
  t.equal(server.refusedPerSource, 1, 'the fourth from 127.0.0.1 was closed at accept');
  t.ok(held.slice(0, 3).every((s) => !s.destroyed), 'the first three stay open');
  t.match(await getRoot(server.port, '127.0.0.2'), /^HTTP\/1\.1 200/, 'another address is served');
  held[0]!.destroy();
  await new Promise((r) => setTimeout(r, 100));
  t.match(await getRoot(server.port), /^HTTP\/1\.1 200/, 'and 127.0.0.1 again once one of its connections ended');
});

/** One GET / on a fresh connection (from `from`): what the server sent before closing it. */
function getRoot(port: number, from = '127.0.0.1'): Promise<string> {
  return new Promise<string>((resolve) => {
    const c = net.connect({ port, host: '127.0.0.1', localAddress: from }, () => c.write('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'));
    let got = '';
    c.on('data', (d: Buffer) => { got += d.toString(); });
    c.on('close', () => resolve(got));
    c.on('error', () => resolve(got));
  });
}

/** `count` connections that send `first` (or nothing) and read whatever the server says; each one's close. */
async function openConnections(port: number, count: number, first: string | null): Promise<{ sockets: net.Socket[]; closings: Array<Promise<unknown>> }> {
  const sockets: net.Socket[] = [];
  const closings: Array<Promise<unknown>> = [];
  for (let i = 0; i < count; i++) {
    const s = net.connect(port, '127.0.0.1');
    s.on('error', () => undefined);
    s.resume(); // read what the server says, and its end
    closings.push(new Promise((r) => s.once('close', r)));
    await new Promise((r) => s.once('connect', r));
    if (first !== null) s.write(first);
    sockets.push(s);
  }
  return { sockets, closings };
}

/** One raw request line on a fresh connection: what the server sent before closing it. */
function raw(port: number, requestLine: string): Promise<string> {
  return new Promise<string>((resolve) => {
    const c = net.connect({ port, host: '127.0.0.1' }, () => c.write(`${requestLine}\r\nHost: x\r\nConnection: close\r\n\r\n`));
    let got = '';
    c.on('data', (d: Buffer) => { got += d.toString(); });
    c.on('close', () => resolve(got));
    c.on('error', () => resolve(got));
  });
}

// `GET //` made new URL() throw inside the request handler, and the unhandled rejection ended the
// whole daemon (DHCP, DNS, the Raft member) from one request to the status port.
t.test('request targets that are not plain paths get 400; a page that throws gets 500; the server stays up', async (t) => {
  const server = new OpsHttpServer({
    listen: { host: '127.0.0.1', port: 0 }, maxConnections: 16, log: silentLogger,
    pages: new Map([
      ['/', () => ({ status: 200, contentType: 'text/plain', body: 'ok' })],
      ['/broken', () => { throw new Error('a page bug'); }],
    ]),
    readApi: async () => { throw new Error('an API bug'); },
  });
  await server.listen();
  t.teardown(() => server.close());
  for (const target of ['//', '//evil.example/x', '///etc/passwd', 'http://evil.example/', '*']) {
    t.match(await raw(server.port, `GET ${target} HTTP/1.1`), /^HTTP\/1\.1 400/, `GET ${target}: 400`);
  }
  t.match(await raw(server.port, 'GET /broken HTTP/1.1'), /^HTTP\/1\.1 500/, 'a page that throws: 500');
  t.match(await raw(server.port, 'GET /v1/status HTTP/1.1'), /^HTTP\/1\.1 500/, 'an API read that throws: 500');
  // A CONNECT went to no listener and Node dropped the connection without an answer.
  const connect = await raw(server.port, 'CONNECT 127.0.0.1:22 HTTP/1.1');
  t.match(connect, /^HTTP\/1\.1 405/, 'CONNECT: 405');
  t.match(connect, /\r\nAllow: GET, HEAD\r\n/, 'naming the methods served');
  t.match(await getRoot(server.port), /^HTTP\/1\.1 200/, 'and the server still serves');
});

// The API mirror (GET /v1/leases?all=1 from a browser or a monitor) made its JSON text in one block of
// the daemon's loop, as the control socket did: at most ITEMS_PER_SLICE rows per turn, the same bytes.
t.test('an API answer with a long array is made into JSON text a slice at a time, the same bytes', async (t) => {
  let counter: ReturnType<typeof loopTurns> | undefined;
  const rows = Array.from({ length: 22_000 }, (_, i) => ({ toJSON: () => { counter?.seen(); return { ip: `10.0.${i >> 8}.${i & 255}`, n: i }; } }));
  const body = { now: 'x', leases: rows };
  const server = new OpsHttpServer({
    listen: { host: '127.0.0.1', port: 0 }, maxConnections: 4, log: silentLogger, pages: new Map(),
    readApi: async () => ({ status: 200, body }),
  });
  await server.listen();
  t.teardown(() => server.close());
  counter = loopTurns();
  const answer = await raw(server.port, 'GET /v1/leases?all=1 HTTP/1.1');
  const { most } = counter.stop();
  t.ok(most <= ITEMS_PER_SLICE, `the most rows stringified in one turn of the loop: ${most} of 22,000`);
  t.match(answer, /^HTTP\/1\.1 200/);
  t.equal(answer.slice(answer.indexOf('\r\n\r\n') + 4), JSON.stringify(body), 'the same bytes as JSON.stringify');
});
