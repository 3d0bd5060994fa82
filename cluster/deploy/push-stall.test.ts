// A push to a node that keeps its SSH connection open but stops answering SFTP (a hung disk) ends
// with a message naming the step, within the step bound, instead of hanging the job; a node that
// goes silent altogether (not even keepalives answered) is noticed after the keepalive limit, long
// before the step bound; a node that drops the connection fails the step at once; a malformed host
// key blob is not shown (nor does it throw in the verifier). The servers are ssh2's own Server on
// loopback (no root, no sshd), some behind a TCP relay that can go silent or cut the connection.
import t from 'tap';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createConnection, createServer, type AddressInfo, type Socket } from 'node:net';
import ssh2 from 'ssh2';
import { connectPinned, fetchHostKey, offeredKeyText, pushToNode, type PushFile } from './push.js';
import { sshKeyPair } from '../../test/support/ssh-keys.js';

const { Server, utils } = ssh2;
const STATUS = utils.sftp.STATUS_CODE;

/** Where the fake SFTP server stops answering. */
type HangAt = 'write' | 'realpath' | 'never';

function fakeServer(hostKey: string, hangAt: HangAt): Promise<{ port: number; close: () => void }> {
  const server = new Server({ hostKeys: [hostKey] }, (client) => {
    client.on('error', () => undefined);
    client.on('authentication', (ctx) => ctx.accept());
    client.on('ready', () => {
      client.on('session', (accept) => {
        const session = accept();
        session.on('sftp', (acceptSftp) => {
          const sftp = acceptSftp();
          sftp.on('REALPATH', (id, path) => { if (hangAt !== 'realpath') sftp.name(id, [{ filename: path, longname: path, attrs: {} as never }]); });
          sftp.on('LSTAT', (id, path) => {
            if (path === '/dst') sftp.attrs(id, { mode: 0o40755, uid: 0, gid: 0, size: 0, atime: 0, mtime: 0 });
            else sftp.status(id, STATUS.NO_SUCH_FILE);
          });
          sftp.on('OPENDIR', (id) => sftp.handle(id, Buffer.from('d')));
          sftp.on('READDIR', (id) => sftp.status(id, STATUS.EOF));
          sftp.on('OPEN', (id) => sftp.handle(id, Buffer.from('f')));
          sftp.on('WRITE', (id) => { if (hangAt === 'never') sftp.status(id, STATUS.OK); });
          sftp.on('CLOSE', (id) => sftp.status(id, STATUS.OK));
          sftp.on('REMOVE', (id) => sftp.status(id, STATUS.OK));
        });
      });
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ port: (server.address() as AddressInfo).port, close: () => server.close() })));
}

t.test('a node that stops answering mid-push fails that step in bounded time, naming it', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'lanha-push-stall-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const content = Buffer.alloc(300_000, 7);
  writeFileSync(join(dir, 'agent'), content);
  const file: PushFile = { source: join(dir, 'agent'), local: join(dir, 'agent'), name: 'agent', size: content.length, mode: 0o755, sha256: createHash('sha256').update(content).digest('hex') };
  const host = sshKeyPair();
  const user = sshKeyPair();
  for (const hangAt of ['write', 'realpath'] as const) {
    const server = await fakeServer(host.private, hangAt);
    t.teardown(server.close);
    const client = await connectPinned({ node: 'n1', host: '127.0.0.1', port: server.port, user: 'root' }, host.public, Buffer.from(user.private));
    let bytes = 0;
    const started = performance.now();
    // A bound well over what any answered step takes on a loaded machine: the test is that it ends.
    const error = await pushToNode(client, 'n1', [file], '/dst', undefined, (n) => { bytes = n; }, async () => undefined, { stepMs: 5000, thenMs: 5000 })
      .then(() => null, (e: unknown) => e as Error);
    const ms = performance.now() - started;
    t.ok(error, `${hangAt}: the push failed`);
    t.match(error?.message, hangAt === 'write' ? /^n1: writing \/dst\/\.agent\.lanha-[0-9a-f]{8} at \d+ got no answer in 5 s \(the node or the network stalled\)/ : /^n1: realpath \/dst got no answer/, `${hangAt}: the message names the step`);
    t.ok(ms < 60_000, `${hangAt}: it ended (in ${Math.round(ms)} ms), not never`);
    t.equal(bytes, 0, 'no byte was acknowledged');
    client.end();
  }
});

/** A TCP relay to `port` that can go silent (drops everything both ways, keeps the connection) or cut every connection. */
function relay(port: number): Promise<{ port: number; silence(): void; cut(): void; close(): void }> {
  let mode: 'pass' | 'silent' = 'pass';
  const sockets = new Set<Socket>();
  const server = createServer((inbound) => {
    const outbound = createConnection({ host: '127.0.0.1', port });
    for (const [from, to] of [[inbound, outbound], [outbound, inbound]] as const) {
      sockets.add(from);
      from.on('data', (d: Buffer) => { if (mode === 'pass') to.write(d); });
      from.on('error', () => undefined);
      from.on('close', () => { sockets.delete(from); to.destroy(); });
    }
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({
    port: (server.address() as AddressInfo).port,
    silence: () => { mode = 'silent'; },
    cut: () => { for (const s of sockets) s.destroy(); },
    close: () => { for (const s of sockets) s.destroy(); server.close(); },
  })));
}

// The step bound is ten minutes here: the tests end only because the silence or the cut is noticed
// by itself. Before, a silent node was noticed when ssh2's own keepalive count ran out and the
// step then waited out its bound anyway (ssh2 never answers a request made on a closed channel,
// such as the SFTP close after a failed write), and a dropped connection waited out that bound too.
for (const fault of ['silent', 'cut'] as const) {
  t.test(`a node whose connection goes ${fault === 'silent' ? 'silent' : 'away'} mid-push fails at once, saying so`, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'lanha-push-lost-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const content = Buffer.alloc(16 << 20, 3);
    writeFileSync(join(dir, 'agent'), content);
    const file: PushFile = { source: join(dir, 'agent'), local: join(dir, 'agent'), name: 'agent', size: content.length, mode: 0o755, sha256: createHash('sha256').update(content).digest('hex') };
    const host = sshKeyPair();
    const user = sshKeyPair();
    const server = await fakeServer(host.private, 'never');
    t.teardown(server.close);
    const link = await relay(server.port);
    t.teardown(link.close);
    const client = await connectPinned({ node: 'n1', host: '127.0.0.1', port: link.port, user: 'root' }, host.public, Buffer.from(user.private), 10_000, { intervalMs: 200, countMax: 3 });
    let flipped = false;
    const onBytes = (): void => {
      if (flipped) return;
      flipped = true;
      if (fault === 'silent') link.silence(); else link.cut();
    };
    const error = await pushToNode(client, 'n1', [file], '/dst', undefined, onBytes, async () => undefined, { stepMs: 600_000, thenMs: 600_000 })
      .then(() => null, (e: unknown) => e as Error);
    t.ok(flipped, 'the fault came mid-file');
    if (fault === 'silent') {
      t.match(error?.message, /^n1: the connection went silent for 0\.8 s while writing \/dst\/\.agent\.lanha-[0-9a-f]{8} at \d+: nothing came back from the node, not even an answer to the ssh keepalives sent every 0\.2 s/, 'the keepalive limit noticed it, and the message says so');
    } else {
      t.match(error?.message, /^n1: the connection was lost while writing \/dst\/\.agent\.lanha-[0-9a-f]{8} at \d+ \((the node closed the connection|.*ECONNRESET.*)\); files already in place stay/, 'the loss is reported as it happened, naming the step');
    }
    t.notMatch(error?.message, /got no answer|No response from server/, 'not the step bound, not ssh2\'s words');
    client.end();
  });
}

t.test('a node that answers is not cut off by the bound: every byte is written', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'lanha-push-ok-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const content = Buffer.alloc(100_000, 9);
  writeFileSync(join(dir, 'agent'), content);
  const host = sshKeyPair();
  const user = sshKeyPair();
  const server = await fakeServer(host.private, 'never');
  t.teardown(server.close);
  const client = await connectPinned({ node: 'n1', host: '127.0.0.1', port: server.port, user: 'root' }, host.public, Buffer.from(user.private));
  let bytes = 0;
  // The fake server has no fsync extension and no exec: the push gets past every write and fails on the fsync request, not on a stall.
  const error = await pushToNode(client, 'n1', [{ source: join(dir, 'agent'), local: join(dir, 'agent'), name: 'agent', size: content.length, mode: 0o644, sha256: 'x' }], '/dst', undefined, (n) => { bytes = n; }, async () => undefined, { stepMs: 10_000, thenMs: 10_000 })
    .then(() => null, (e: unknown) => e as Error);
  t.equal(bytes, content.length, 'every byte was written');
  t.notMatch(error?.message ?? '', /got no answer/);
  client.end();
});

t.test('a host key offered by a server: shown as "type base64" only when the blob names its type', async (t) => {
  const host = sshKeyPair();
  const server = await fakeServer(host.private, 'never');
  t.teardown(server.close);
  const offered = await fetchHostKey({ node: 'n1', host: '127.0.0.1', port: server.port, user: 'root' }, 5000);
  t.equal(offered, host.public.split(' ').slice(0, 2).join(' '), 'a real server\'s key');
  const blob = (type: string, rest = 'x'): Buffer => { const b = Buffer.from(type, 'latin1'); const len = Buffer.alloc(4); len.writeUInt32BE(b.length); return Buffer.concat([len, b, Buffer.from(rest)]); };
  t.equal(offeredKeyText(Buffer.alloc(0)), undefined, 'empty');
  t.equal(offeredKeyText(Buffer.from([0, 0])), undefined, 'shorter than a length');
  t.equal(offeredKeyText(Buffer.from([0xff, 0xff, 0xff, 0xff, 1])), undefined, 'a length past the end');
  t.equal(offeredKeyText(blob('ssh-ed25519\n10.0.0.9 ssh-rsa')), undefined, 'a type with a line break');
  t.equal(offeredKeyText(blob('\u001b[2J')), undefined, 'a terminal escape');
  t.match(offeredKeyText(blob('ssh-ed25519')), /^ssh-ed25519 [A-Za-z0-9+/=]+$/);
  t.equal(offeredKeyText(blob('x509v3-sign-rsa')), undefined, 'a type lanha cannot pin');
});
