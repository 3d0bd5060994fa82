// A CA rotation with no outage: `lanctl init --tls --rotate-ca`, `--renew`, `--finish-rotation`. At
// each step the files are what `lanctl config check` accepts, and real TLS 1.3 handshakes (as the
// peer links make them: both sides present a certificate, each checks the other's against its
// cluster.tls.ca) succeed between a member already restarted with the step's files and one still
// on the step before: the order of the three rounds is what keeps the quorum. Refusals name the step.
import t from 'tap';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect, type TLSSocket } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bundleValidTo, caBundle } from '../../cluster/raft/tls.js';
import { runLanctl } from '../support/daemon.js';

t.setTimeout(300_000);
const dir = mkdtempSync(join(tmpdir(), 'lanha-tls-rotate-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const tlsDir = join(dir, 'tls');

function siteConfig(self: string): string {
  const file = join(dir, `${self}.yaml`);
  writeFileSync(file, `node: { name: ${self}, address: 10.20.0.2, stateDir: ${dir}/state, controlSocket: ${dir}/s.sock }
cluster:
  id: rack1
  tls: { ca: ${tlsDir}/ca.pem, cert: ${tlsDir}/${self}.pem, key: ${tlsDir}/${self}.key }
  members:
    - { name: lan-a, address: 10.20.0.2, port: 7400 }
    - { name: lan-b, address: 10.20.0.3, port: 7400 }
    - { name: witness, address: 10.20.0.9, port: 7400, role: witness }
`);
  return file;
}

/** What one member holds: its CA file's text, its certificate and key. */
interface Held { ca: string; cert: string; key: string }
const held = (member: string): Held => ({ ca: readFileSync(join(tlsDir, 'ca.pem'), 'utf8'), cert: readFileSync(join(tlsDir, `${member}.pem`), 'utf8'), key: readFileSync(join(tlsDir, `${member}.key`), 'utf8') });

/** A mutual TLS 1.3 handshake on loopback: whether each side accepted the other's certificate. */
async function handshake(server: Held, client: Held): Promise<{ serverAccepts: boolean; clientAccepts: boolean }> {
  const s = createServer({ ca: server.ca, cert: server.cert, key: server.key, minVersion: 'TLSv1.3', requestCert: true, rejectUnauthorized: false });
  const serverSide = new Promise<boolean>((resolve) => {
    s.once('secureConnection', (socket: TLSSocket) => { resolve(socket.authorized); socket.end(); });
    s.once('tlsClientError', () => resolve(false));
  });
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as { port: number }).port;
  try {
    const clientSide = await new Promise<boolean>((resolve) => {
      const c = connect({ host: '127.0.0.1', port, ca: client.ca, cert: client.cert, key: client.key, minVersion: 'TLSv1.3', rejectUnauthorized: false, checkServerIdentity: () => undefined });
      c.once('secureConnect', () => { resolve(c.authorized); c.end(); });
      c.once('error', () => resolve(false));
    });
    const serverAccepts = await Promise.race([serverSide, new Promise<boolean>((r) => setTimeout(() => r(false), 10_000))]);
    return { serverAccepts, clientAccepts: clientSide };
  } finally {
    s.close();
  }
}

const issuer = (pem: string, bundle: X509Certificate[]): number => bundle.findIndex((ca) => new X509Certificate(pem).checkIssued(ca) && new X509Certificate(pem).verify(ca.publicKey));

t.test('rotate, renew, finish: every step accepted and every mixed pair of steps still talks', async (t) => {
  const config = siteConfig('lan-a');
  siteConfig('lan-b');
  t.equal((await runLanctl(['init', '--tls', '--config', config])).code, 0);
  const old = { a: held('lan-a'), b: held('lan-b') };

  const early = await runLanctl(['init', '--tls', '--finish-rotation', '--config', config]);
  t.equal(early.code, 1);
  t.match(early.stderr, /holds one CA: no rotation is under way/);

  // 1. A second CA, trusted beside the first.
  const rotate = await runLanctl(['init', '--tls', '--rotate-ca', '--config', config]);
  t.equal(rotate.code, 0, rotate.stderr);
  t.match(rotate.stdout, /now holds the new CA's certificate and then the old one's/);
  t.match(rotate.stdout, /scp -p .*ca\.pem root@10\.20\.0\.3:/);
  const bundle = caBundle(readFileSync(join(tlsDir, 'ca.pem'), 'utf8'));
  t.equal(bundle.length, 2, 'ca.pem holds two CAs');
  t.equal(bundle[1]!.fingerprint256, caBundle(old.a.ca)[0]!.fingerprint256, 'the old CA second');
  t.ok(existsSync(join(tlsDir, 'ca-previous.key')), 'the old CA key is kept until the end');
  t.equal(bundleValidTo(readFileSync(join(tlsDir, 'ca.pem'), 'utf8')), new Date(Math.min(...bundle.map((c) => Date.parse(c.validTo)))).toISOString(), 'status and doctor watch the CA that ends first');
  const again = await runLanctl(['init', '--tls', '--rotate-ca', '--config', config]);
  t.equal(again.code, 1);
  t.match(again.stderr, /a rotation is under way/);
  const check1 = await runLanctl(['config', 'check', config]);
  t.equal(check1.code, 0, `config check with the bundle and an old-CA certificate: ${check1.stdout}${check1.stderr}`);
  const step1 = { ...old.a, ca: held('lan-a').ca };
  t.same(await handshake(step1, old.b), { serverAccepts: true, clientAccepts: true }, 'a member with the bundle and one not yet restarted talk');

  // 2. Member certificates from the new CA.
  const renewA = await runLanctl(['init', '--tls', '--renew', '--member', 'lan-a', '--config', config]);
  t.equal(renewA.code, 0, renewA.stderr);
  const newA = held('lan-a');
  t.equal(issuer(newA.cert, bundle), 0, 'the renewed certificate is the new CA\'s');
  t.same(await handshake(newA, step1), { serverAccepts: true, clientAccepts: true }, 'renewed and not yet renewed talk (both have the bundle)');
  t.same(await handshake(step1, newA), { serverAccepts: true, clientAccepts: true }, 'the other way round too');
  t.same(await handshake(newA, old.b), { serverAccepts: true, clientAccepts: false }, 'a member that never got the bundle refuses a renewed one: step 1 must be done everywhere first');
  const notYet = await runLanctl(['init', '--tls', '--finish-rotation', '--config', config]);
  t.equal(notYet.code, 1);
  t.match(notYet.stderr, /not every member has a certificate of the new CA yet: lan-b, witness/);
  t.equal(caBundle(readFileSync(join(tlsDir, 'ca.pem'), 'utf8')).length, 2, 'a refused finish changes nothing');
  const renewAll = await runLanctl(['init', '--tls', '--renew', '--config', config]);
  t.equal(renewAll.code, 0, renewAll.stderr);
  const step2b = held('lan-b');

  // 3. The new CA alone.
  const finish = await runLanctl(['init', '--tls', '--finish-rotation', '--config', config]);
  t.equal(finish.code, 0, finish.stderr);
  t.match(finish.stdout, /now holds the new CA alone \(1 old CA certificate dropped\)/);
  const after = caBundle(readFileSync(join(tlsDir, 'ca.pem'), 'utf8'));
  t.same(after.map((c) => c.fingerprint256), [bundle[0]!.fingerprint256], 'only the new CA is left');
  t.notOk(existsSync(join(tlsDir, 'ca-previous.key')), 'the old CA key is deleted');
  const final = held('lan-a');
  t.same(await handshake(final, step2b), { serverAccepts: true, clientAccepts: true }, 'finished and not yet restarted with the finished ca.pem talk');
  t.same(await handshake(final, { ...old.b, ca: step2b.ca }), { serverAccepts: false, clientAccepts: true }, 'after the finish an old-CA certificate is refused');
  for (const member of ['lan-a', 'lan-b']) {
    const check = await runLanctl(['config', 'check', siteConfig(member)]);
    t.equal(check.code, 0, `${member}: ${check.stdout}${check.stderr}`);
  }
});

t.test('usage: the rotation steps are separate runs', async (t) => {
  const r = await runLanctl(['init', '--tls', '--rotate-ca', '--renew', '--config', siteConfig('lan-a')]);
  t.equal(r.code, 2);
  t.match(r.stderr, /do not go together/);
});
