import t from 'tap';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BootHttpServer, parseRange, type ServedFile } from '../../services/boot/http.js';
import { BootFiles } from '../../services/boot/provider.js';
import { bootConfig, bootHttpConfig, profilesConfig } from '../../services/boot/config.js';
import type { Resolved } from '../../services/boot/render.js';
import { createLogger } from '../../lib/log.js';
import { systemClock } from '../../lib/clock.js';
import { haveTools } from '../support/tools.js';

// The read-only boot HTTP listener on 127.0.0.1 (port 0) against curl: a kernel whole and in
// ranges (checksums), HEAD, 404, 405 with Allow, 416, traversal and symlink escapes refused,
// per-client iPXE scripts for two client addresses (--interface), the connection caps (per source
// address and overall) and the header timeout for a client that never finishes its request. Loopback only.

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

function curl(args: string[]): Promise<{ code: number; out: Buffer; err: string }> {
  return new Promise((resolve) => {
    execFile('curl', ['-sS', ...args], { timeout: 30_000, maxBuffer: 64 << 20, encoding: 'buffer' }, (error, stdout, stderr) => {
      const code = error ? (typeof (error as { code?: unknown }).code === 'number' ? (error as { code: number }).code : 1) : 0;
      resolve({ code, out: stdout, err: stderr.toString() });
    });
  });
}

t.test('parseRange: the forms RFC 9110 allows, one range', async (t) => {
  t.same(parseRange(undefined, 100), { kind: 'all' });
  t.same(parseRange('bytes=0-9', 100), { kind: 'range', start: 0, end: 9 });
  t.same(parseRange('bytes=90-', 100), { kind: 'range', start: 90, end: 99 });
  t.same(parseRange('bytes=-10', 100), { kind: 'range', start: 90, end: 99 });
  t.same(parseRange('bytes=-1000', 100), { kind: 'range', start: 0, end: 99 });
  t.same(parseRange('bytes=50-1000', 100), { kind: 'range', start: 50, end: 99 });
  t.same(parseRange('bytes=100-', 100), { kind: 'unsatisfiable' });
  t.same(parseRange('bytes=-0', 100), { kind: 'unsatisfiable' });
  t.same(parseRange('bytes=9-0', 100), { kind: 'all' }, 'an invalid range is ignored');
  t.same(parseRange('bytes=0-1,5-6', 100), { kind: 'all' }, 'several ranges: the whole file');
  t.same(parseRange('items=0-1', 100), { kind: 'all' });
});

t.test('boot HTTP listener with curl', async (t) => {
  if (!haveTools(t, ['curl'], 'boot HTTP test')) return;
  const top = mkdtempSync(join(tmpdir(), 'lanha-boot-http-'));
  chmodSync(top, 0o755);
  const root = join(top, 'root');
  mkdirSync(join(root, 'arm64'), { recursive: true });
  mkdirSync(join(top, 'outside'));
  const kernel = randomBytes(3 * 1048576 + 123);
  writeFileSync(join(root, 'arm64', 'Image'), kernel, { mode: 0o644 });
  writeFileSync(join(root, 'private'), 'secret\n', { mode: 0o600 });
  writeFileSync(join(top, 'outside', 'secret'), 'outside the root\n', { mode: 0o644 });
  symlinkSync(join(top, 'outside', 'secret'), join(root, 'escape'));

  const lines: Array<Record<string, unknown>> = [];
  const log = createLogger({ level: 'info', destination: { write: (s: string) => { lines.push(JSON.parse(s) as Record<string, unknown>); } } });
  const nodes: Record<string, Resolved> = {
    '127.0.0.2': { name: 'node-a', mac: '52:54:00:0c:00:02', ip: '127.0.0.2', profile: 'x86' },
    '127.0.0.3': { name: 'node-b', mac: '52:54:00:0c:00:03', ip: '127.0.0.3', profile: 'x86' },
    '127.0.0.5': { name: 'node-e', mac: '52:54:00:0c:00:05', ip: '127.0.0.5', profile: 'no-such-profile' },
  };
  const profiles = profilesConfig.parse({ x86: { arch: 'x86_64', kernel: 'arm64/Image', bootargs: 'console=ttyS0 host={{name}}' } });
  const bootFiles = new BootFiles({ boot: bootConfig.parse({}), profiles, resolve: (ip) => nodes[ip] ?? { unknown: true }, log, clock: systemClock });
  const served: ServedFile[] = [];
  const server = new BootHttpServer({
    config: { ...bootHttpConfig.parse({ maxConnections: 4, maxConnectionsPerSource: 3, headersTimeout: '1s', requestTimeout: '2s' }), port: 0 },
    addresses: ['127.0.0.1'], rootReal: root, bootFiles, log, clock: systemClock, served: (f) => served.push(f),
  });
  await server.start();
  const port = server.port();
  bootFiles.httpPort = port;
  const url = (path: string): string => `http://127.0.0.1:${port}/${path}`;
  t.teardown(async () => { await server.stop(); rmSync(top, { recursive: true, force: true }); });

  await t.test('a kernel whole, in ranges, and HEAD', async (t) => {
    const whole = await curl(['-f', url('arm64/Image')]);
    t.equal(sha(whole.out), sha(kernel), 'whole file, checksum matches');
    const part = await curl(['-f', '-r', '1000-1999', '-D', '-', '-o', join(top, 'part'), url('arm64/Image')]);
    t.match(part.out.toString(), /^HTTP\/1\.1 206/);
    t.match(part.out.toString(), new RegExp(`content-range: bytes 1000-1999/${kernel.length}`, 'i'));
    const range = await curl(['-f', '-r', '1000-1999', url('arm64/Image')]);
    t.ok(range.out.equals(kernel.subarray(1000, 2000)), 'the range bytes');
    const tail = await curl(['-f', '-H', 'Range: bytes=-500', url('arm64/Image')]);
    t.ok(tail.out.equals(kernel.subarray(kernel.length - 500)), 'a suffix range');
    const head = await curl(['-I', url('arm64/Image')]);
    t.match(head.out.toString(), new RegExp(`content-length: ${kernel.length}`, 'i'));
    t.match(head.out.toString(), /accept-ranges: bytes/i);
    const beyond = await curl(['-H', `Range: bytes=${kernel.length}-`, '-o', '/dev/null', '-w', '%{http_code}', url('arm64/Image')]);
    t.equal(beyond.out.toString(), '416');
  });

  await t.test('refusals: 404, 405 with Allow, traversal, symlink escape, private file', async (t) => {
    const code = async (args: string[]): Promise<string> => (await curl(['-o', '/dev/null', '-w', '%{http_code}', ...args])).out.toString();
    t.equal(await code([url('missing')]), '404');
    t.equal(await code(['-X', 'POST', url('arm64/Image')]), '405');
    t.equal(await code(['-X', 'CONNECT', url('arm64/Image')]), '405', 'CONNECT: 405 (it was dropped unanswered)');
    const allow = await curl(['-X', 'PUT', '-D', '-', '-o', '/dev/null', url('arm64/Image')]);
    t.match(allow.out.toString(), /allow: GET, HEAD/i);
    t.equal(await code(['--path-as-is', url('../outside/secret')]), '400', '../ refused');
    t.equal(await code(['--path-as-is', url('arm64/../../outside/secret')]), '400');
    t.equal(await code([url('%2e%2e/outside/secret')]), '400', 'an encoded .. refused');
    t.equal(await code([url('..%2foutside%2fsecret')]), '400');
    t.equal(await code([url('escape')]), '403', 'a symlink out of the root');
    t.equal(await code([url('private')]), '403', 'not world-readable');
    t.equal(await code([url('')]), '400', 'the root itself');
    const body = await curl([url('escape')]);
    t.notMatch(body.out.toString(), /outside the root/);
  });

  await t.test('per-client iPXE scripts from two addresses', async (t) => {
    const a = await curl(['-f', '--interface', '127.0.0.2', url('boot.ipxe')]);
    const b = await curl(['-f', '--interface', '127.0.0.3', url('boot.ipxe')]);
    t.match(a.out.toString(), new RegExp(`kernel --name kernel http://127\\.0\\.0\\.1:${port}/arm64/Image console=ttyS0 host=node-a`));
    t.match(b.out.toString(), /host=node-b/);
    const unknown = await curl(['-f', '--interface', '127.0.0.4', url('boot.ipxe')]);
    t.match(unknown.out.toString(), /lanctl nodes accept \$\{netX\/mac\} NAME/);
    const broken = await curl(['--interface', '127.0.0.5', '-w', '\n%{http_code}', url('boot.ipxe')]);
    t.match(broken.out.toString(), /could not be rendered \(see the server log\)\n\n500$/, 'a render error with no last good file: 500');
    t.ok(lines.some((l) => l['event'] === 'boot.render.failed' && l['node'] === 'node-e'), 'logged with the node');
    const ranged = await curl(['-f', '--interface', '127.0.0.2', '-r', '0-6', url('boot.ipxe')]);
    t.equal(ranged.out.toString(), '#!ipxe\n', 'ranges work on rendered files too');
    t.ok(served.some((f) => f.file === 'boot.ipxe' && f.mac === '52:54:00:0c:00:02' && f.rendered && f.bytes > 0), 'a served event with the node\'s MAC');
    t.ok(served.some((f) => f.file === 'arm64/Image' && f.bytes === kernel.length), 'a served event for the kernel with its bytes');
  });

  await t.test('the connection caps (per source, then overall) and the header timeout', async (t) => {
    // resume(): a paused socket never reads the server's FIN, so it would never close.
    const open = (from: string): Promise<Socket> => new Promise((ok, fail) => { const s = connect({ port, host: '127.0.0.1', localAddress: from }, () => ok(s)); s.once('error', fail); s.resume(); });
    const closed = (s: Socket): Promise<void> => new Promise((ok) => { if (s.destroyed) ok(); else s.once('close', () => ok()); });
    const held = [await open('127.0.0.1'), await open('127.0.0.1'), await open('127.0.0.1')];
    for (const s of held) s.write('GET /arm64/Image HTTP/1.1\r\nHost: x\r\n'); // headers never finished
    const extra = await open('127.0.0.1');
    extra.on('error', () => undefined);
    await closed(extra);
    t.pass('a fourth connection from one address over maxConnectionsPerSource 3 is closed at once');
    t.equal(server.counters.toJSON()['boot.http.busy_per_source'], 1);
    t.ok(lines.some((l) => l.event === 'boot.http.source_limit' && l.client === '127.0.0.1'), 'logged with the address');
    const other = await curl(['-f', '-o', '/dev/null', '-w', '%{http_code}', '--interface', '127.0.0.4', url('arm64/Image')]);
    t.equal(other.out.toString(), '200', 'another address is served meanwhile');
    held.push(await open('127.0.0.4'));
    held[3]!.write('GET /arm64/Image HTTP/1.1\r\nHost: x\r\n');
    const past = await open('127.0.0.6');
    past.on('error', () => undefined);
    await closed(past);
    t.pass('a fifth connection over maxConnections 4 is closed at once, whatever its address');
    t.ok((server.counters.toJSON()['boot.http.busy'] ?? 0) >= 1);
    await Promise.all(held.map(closed));
    t.pass('clients that never finish their headers are closed (headersTimeout)');
    t.ok((server.counters.toJSON()['boot.http.timed_out'] ?? 0) >= 4, 'counted as timed out (408)');
    const after = await curl(['-f', '-o', '/dev/null', '-w', '%{http_code}', url('arm64/Image')]);
    t.equal(after.out.toString(), '200', 'served again once they are gone');
  });
});

/** One raw GET (curl would normalise `..` away); the status code answered. */
function rawGet(port: number, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s: Socket = connect(port, '127.0.0.1', () => s.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`));
    let got = '';
    s.setEncoding('latin1');
    s.on('data', (d: string) => { got += d; });
    s.on('error', reject);
    s.on('close', () => resolve(Number(/^HTTP\/1\.1 (\d+)/.exec(got)?.[1] ?? 0)));
  });
}

t.test('a refused path is counted and a debug line says what was asked and why, escaped', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'lanha-boot-http-refused-'));
  const lines: Array<Record<string, unknown>> = [];
  const log = createLogger({ level: 'debug', destination: { write: (s: string) => { lines.push(JSON.parse(s) as Record<string, unknown>); } } });
  const bootFiles = new BootFiles({ boot: bootConfig.parse({}), profiles: profilesConfig.parse({}), resolve: () => ({ unknown: true }), log, clock: systemClock });
  const server = new BootHttpServer({ config: { ...bootHttpConfig.parse({}), port: 0 }, addresses: ['127.0.0.1'], rootReal: root, bootFiles, log, clock: systemClock });
  await server.start();
  t.teardown(async () => { await server.stop(); rmSync(root, { recursive: true, force: true }); });
  const asked = ['/a/../../etc/passwd', '/%E0%A4%A', '/a%5Cb', '/%1b%5b2J%c2%9bx'];
  const codes: number[] = [];
  for (const path of asked) codes.push(await rawGet(server.port(), path));
  t.same(codes, [400, 400, 400, 404]);
  t.match(server.counters.toJSON(), { 'boot.http.bad_path': 3, 'boot.http.refused.not-found': 1 });
  const said = lines.filter((l) => l['event'] === 'boot.http.bad_path' || l['event'] === 'boot.http.refused').map((l) => [l['event'], l['reason'], l['path'], l['client']]);
  t.same(said, [
    ['boot.http.bad_path', 'dotdot', '/a/../../etc/passwd', '127.0.0.1'],
    ['boot.http.bad_path', 'bad-percent-encoding', '/%E0%A4%A', '127.0.0.1'],
    ['boot.http.bad_path', 'backslash', '/a%5Cb', '127.0.0.1'],
    ['boot.http.refused', 'not-found', '\\u001b[2J\\u009bx', '127.0.0.1'],
  ], 'each refusal is a debug line naming the path (control characters escaped) and the reason');
  t.notMatch(JSON.stringify(lines), /[\u007f-\u009f]/, 'no raw C1 control in any line');
});
