// The control socket's HTTP server against request targets new URL() cannot take and handlers that
// throw: each gets an answer (400, 500) and the server keeps serving, where an unhandled rejection
// would have ended the daemon.
import t from 'tap';
import net from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger, silentLogger } from './log.js';
import { ControlServer } from './control-server.js';
import { ITEMS_PER_SLICE } from './slices.js';
import { loopTurns } from '../test/support/loop-turns.js';

function raw(path: string, requestLine: string): Promise<string> {
  return new Promise<string>((resolve) => {
    const c = net.connect(path, () => c.write(`${requestLine}\r\nHost: lanha\r\nConnection: close\r\n\r\n`));
    let got = '';
    c.on('data', (d: Buffer) => { got += d.toString(); });
    c.on('close', () => resolve(got));
    c.on('error', () => resolve(got));
  });
}

t.test('bad request targets get 400, a throwing handler 500, and the server stays up', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'lanha-control-'));
  const socket = join(dir, 'c.sock');
  const server = new ControlServer(socket, silentLogger);
  server.route('GET /v1/ok', () => ({ status: 200, body: { ok: true } }));
  server.route('GET /v1/broken', () => { throw new Error('a handler bug'); });
  await server.listen();
  t.teardown(async () => { await server.close(); rmSync(dir, { recursive: true, force: true }); });
  for (const target of ['//', '//evil/x', 'http://evil/', '*']) {
    t.match(await raw(socket, `GET ${target} HTTP/1.1`), /^HTTP\/1\.1 400/, `GET ${target}: 400`);
  }
  t.match(await raw(socket, 'GET /v1/broken HTTP/1.1'), /^HTTP\/1\.1 500/, 'a throwing handler: 500');
  t.match(await raw(socket, 'CONNECT lanha:1 HTTP/1.1'), /^HTTP\/1\.1 405 [^]*\r\nAllow: GET, POST\r\n/, 'CONNECT: 405 naming the methods served (it was dropped unanswered)');
  const ok = await raw(socket, 'GET /v1/ok?x=1 HTTP/1.1');
  t.match(ok, /^HTTP\/1\.1 200/, 'and the server still serves');
  t.match(ok, /"ok":true/);
});

t.test('the daemon\'s own answer time per route: counted, last and longest, a slow one said', async (t) => {
  // The server reads its answer times on a clock the test moves: the slow handler takes 1100 ms of
  // it, the quick one none, so the figures are exact however loaded the machine is.
  const dir = mkdtempSync(join(tmpdir(), 'lanha-control-'));
  const socket = join(dir, 'c.sock');
  const lines: Array<Record<string, unknown>> = [];
  const log = createLogger({ level: 'info', destination: { write: (s: string) => { lines.push(JSON.parse(s) as Record<string, unknown>); } } });
  let nowMs = 5000;
  const server = new ControlServer(socket, log, { nowMs: () => nowMs });
  server.route('GET /v1/ok', () => ({ status: 200, body: { ok: true } }));
  server.route('GET /v1/slow', async () => { await new Promise((r) => setTimeout(r, 10)); nowMs += 1100; return { status: 200, body: {} }; });
  server.route('GET /v1/edge', () => { nowMs += 999.9; return { status: 200, body: {} }; });
  await server.listen();
  t.teardown(async () => { await server.close(); rmSync(dir, { recursive: true, force: true }); });
  t.same(server.status().answers, {}, 'nothing answered yet');
  await raw(socket, 'GET /v1/ok HTTP/1.1');
  await raw(socket, 'GET /v1/ok HTTP/1.1');
  await raw(socket, 'GET /v1/slow HTTP/1.1');
  await raw(socket, 'GET /v1/edge HTTP/1.1');
  await raw(socket, 'GET /v1/none HTTP/1.1');
  const answers = server.status().answers;
  t.same(Object.keys(answers).sort(), ['GET /v1/edge', 'GET /v1/ok', 'GET /v1/slow'], 'per route, unknown paths not kept');
  t.same(answers['GET /v1/ok'], { count: 2, lastMs: 0, maxMs: 0, slow: 0 }, 'a quick answer: no time passed');
  t.same(answers['GET /v1/slow'], { count: 1, lastMs: 1100, maxMs: 1100, slow: 1 }, 'the slow handler\'s time is in it, counted slow');
  t.same(answers['GET /v1/edge'], { count: 1, lastMs: 999.9, maxMs: 999.9, slow: 0 }, 'just under 1 s is not slow');
  t.match(lines.filter((l) => l['event'] === 'control.slow_answer'), [{ route: 'GET /v1/slow', ms: 1100 }], 'and the slow one said, alone');
});

// `lanctl leases --all --json` with 22,000 leases: the answer's JSON text was made in one block of the
// daemon's loop (with the rows, 70-90 ms), DHCP waiting behind it. Counted by the items' toJSON: at
// most ITEMS_PER_SLICE of them per turn of the loop, and the bytes JSON.stringify gives.
t.test('an answer with a long array is made into JSON text a slice at a time, the same bytes', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'lanha-control-'));
  const socket = join(dir, 'c.sock');
  const server = new ControlServer(socket, silentLogger);
  let counter: ReturnType<typeof loopTurns> | undefined;
  const rows = Array.from({ length: 22_000 }, (_, i) => ({ toJSON: () => { counter?.seen(); return { ip: `10.0.${i >> 8}.${i & 255}`, n: i }; } }));
  const body = { now: 'x', leases: rows, pools: [] };
  server.route('GET /v1/leases', () => ({ status: 200, body }));
  await server.listen();
  t.teardown(async () => { await server.close(); rmSync(dir, { recursive: true, force: true }); });
  counter = loopTurns();
  const answer = await raw(socket, 'GET /v1/leases HTTP/1.1');
  const { most } = counter.stop();
  t.ok(most <= ITEMS_PER_SLICE, `the most rows stringified in one turn of the loop: ${most} of 22,000`);
  const text = JSON.stringify(body);
  t.match(answer, new RegExp(`^HTTP/1\\.1 200 [^]*\\r\\nContent-Length: ${Buffer.byteLength(text)}\\r\\n`, 'i'), 'the whole length in the header');
  t.equal(answer.slice(answer.indexOf('\r\n\r\n') + 4), text, 'the same bytes as JSON.stringify');
});
