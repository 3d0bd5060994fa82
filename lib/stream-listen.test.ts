import t from 'tap';
import net from 'node:net';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger, LogLimiter } from './log.js';
import { httpDeadlines, keepListening, listenOn } from './stream-listen.js';
import { ControlServer } from './control-server.js';
import { callDaemon } from './control-client.js';

// A listening server that reports a failed accept must stay up: Node reports it as an 'error' event
// on the server (net.js onconnection), and an 'error' event with no listener is thrown. The control
// socket closes connections past its cap at accept and serves again once they end.

function acceptError(code: string): NodeJS.ErrnoException {
  // The shape net.js gives a failed accept.
  return Object.assign(new Error(`accept ${code}`), { code, errno: -24, syscall: 'accept' });
}

function capture(): { log: ReturnType<typeof createLogger>; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const log = createLogger({ level: 'info', destination: { write: (s: string) => { lines.push(JSON.parse(s) as Record<string, unknown>); } } });
  return { log, lines };
}

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => resolve(s));
    s.once('error', reject);
  });
}

t.test('an accept failure on a bare server is thrown: the class keepListening exists for', async (t) => {
  const server = net.createServer();
  await listenOn(server, { port: 0, host: '127.0.0.1' });
  t.teardown(() => server.close());
  t.throws(() => server.emit('error', acceptError('EMFILE')), /EMFILE/);
});

t.test('keepListening: counted, logged rate-limited, and the server accepts the next connection', async (t) => {
  const server = net.createServer((s) => s.end('hello'));
  await listenOn(server, { port: 0, host: '127.0.0.1' });
  t.teardown(() => server.close());
  const { log, lines } = capture();
  let failed = 0;
  keepListening(server, { log, count: () => { failed++; }, event: 'x.accept_failed', what: 'test listener', limiter: new LogLimiter(60_000, 2), nowMs: () => 0 });
  for (let i = 0; i < 5; i++) server.emit('error', acceptError('EMFILE'));
  server.emit('error', acceptError('ENOBUFS'));
  t.equal(failed, 6, 'every failure counted');
  const logged = lines.filter((l) => l.event === 'x.accept_failed');
  t.equal(logged.length, 2, 'logged up to the limiter burst');
  t.match(String(logged[0]?.msg), /test listener: a connection could not be accepted \(EMFILE\); still listening \(out of file descriptors/);
  t.equal(logged[0]?.code, 'EMFILE');
  const port = (server.address() as net.AddressInfo).port;
  const s = await connect(port);
  const got = await new Promise<string>((resolve) => { let b = ''; s.on('data', (d) => { b += String(d); }); s.on('end', () => resolve(b)); });
  t.equal(got, 'hello', 'still serving');
});

t.test('listenOn rejects with the bind error', async (t) => {
  const a = net.createServer();
  await listenOn(a, { port: 0, host: '127.0.0.1' });
  t.teardown(() => a.close());
  const b = net.createServer();
  await t.rejects(listenOn(b, { port: (a.address() as net.AddressInfo).port, host: '127.0.0.1' }), { code: 'EADDRINUSE' });
  t.equal(b.listenerCount('error'), 0, 'the bind listener is gone either way');
});

t.test('httpDeadlines: checked within half the header timeout, 0.1-1 s', async (t) => {
  t.same(httpDeadlines(5_000, 30_000), { headersTimeout: 5_000, requestTimeout: 30_000, connectionsCheckingInterval: 1000 });
  t.equal(httpDeadlines(400, 1000).connectionsCheckingInterval, 200);
  t.equal(httpDeadlines(100, 100).connectionsCheckingInterval, 100);
});

t.test('control socket: connections past the cap are closed at accept; it serves once they end', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'lh-control-'));
  const path = join(dir, 'control.sock');
  const { log, lines } = capture();
  const control = new ControlServer(path, log, { maxConnections: 3 });
  control.route('GET /v1/ping', () => ({ status: 200, body: { pong: true } }));
  await control.listen();
  t.teardown(async () => { await control.close(); rmSync(dir, { recursive: true, force: true }); });
  t.equal(statSync(path).mode & 0o777, 0o660);

  const idle: net.Socket[] = [];
  for (let i = 0; i < 3; i++) {
    idle.push(await new Promise<net.Socket>((resolve, reject) => { const s = net.connect(path, () => resolve(s)); s.once('error', reject); }));
  }
  // The fourth is accepted by the kernel and closed by the server without a reply.
  const extra = net.connect(path);
  const closed = await new Promise<string>((resolve) => {
    let b = '';
    extra.on('data', (d) => { b += String(d); });
    extra.on('error', () => undefined);
    extra.on('close', () => resolve(b));
  });
  t.equal(closed, '', 'closed with nothing sent');
  t.equal(control.refused, 1);
  await t.rejects(callDaemon(path, 'GET', '/v1/ping'), /closed the connection before replying .*maximum of control connections open; retry/, 'lanctl says why');
  t.equal(control.refused, 2);
  t.ok(lines.some((l) => l.event === 'control.connections_full'), 'a warning says why');

  for (const s of idle) s.destroy();
  // The server counts a connection gone once its side closes: ask until it does (bounded).
  let reply: Awaited<ReturnType<typeof callDaemon>> | undefined;
  for (let i = 0; i < 100 && reply === undefined; i++) {
    reply = await callDaemon(path, 'GET', '/v1/ping').catch(async () => { await new Promise((r) => setTimeout(r, 20)); return undefined; });
  }
  t.equal(reply?.status, 200);
  t.same(reply?.body, { pong: true });
});

t.test('control socket: a connection that sends nothing is closed when idle; a slow reply is not cut', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'lh-control-'));
  const path = join(dir, 'control.sock');
  const control = new ControlServer(path, capture().log, { idleMs: 200 });
  control.route('GET /v1/slow', async () => { await new Promise((r) => setTimeout(r, 800)); return { status: 200, body: { done: true } }; });
  await control.listen();
  t.teardown(async () => { await control.close(); rmSync(dir, { recursive: true, force: true }); });
  const silent = net.connect(path);
  silent.on('error', () => undefined);
  const closedAt = await new Promise<boolean>((resolve) => { silent.once('close', () => resolve(true)); setTimeout(() => resolve(false), 20_000); });
  t.ok(closedAt, 'the silent connection was closed by the server');
  const reply = await callDaemon(path, 'GET', '/v1/slow');
  t.same(reply, { status: 200, body: { done: true } }, 'a reply slower than the idle limit still arrives');
});
