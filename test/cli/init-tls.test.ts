// `lanctl init --tls`: the cluster CA and one ECDSA P-256 key + certificate per member of the site
// config, keys mode 0600, each certificate signed by the CA and naming its member; never replaced
// without --force; and `lanctl config check` reads the files it made (and says what is wrong).
import t from 'tap';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { certDnsNames, certPin } from '../../cluster/raft/tls.js';
import { runLanctl } from '../support/daemon.js';

const dir = mkdtempSync(join(tmpdir(), 'lanha-init-tls-test-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const tlsDir = join(dir, 'tls');

function siteConfig(self: string, extra = ''): string {
  const file = join(dir, `${self}.yaml`);
  writeFileSync(file, `node: { name: ${self}, address: 10.20.0.2, stateDir: ${dir}/state, controlSocket: ${dir}/s.sock }
cluster:
  id: rack1
  tls: { ca: ${tlsDir}/ca.pem, cert: ${tlsDir}/${self}.pem, key: ${tlsDir}/${self}.key }
  members:
    - { name: lan-a, address: 10.20.0.2, port: 7400${extra} }
    - { name: lan-b, address: 10.20.0.3, port: 7400 }
    - { name: witness, address: 10.20.0.9, port: 7400, role: witness }
`);
  return file;
}

t.test('makes the CA and a key + certificate per member; refuses to replace them without --force', async (t) => {
  const config = siteConfig('lan-a');
  const r = await runLanctl(['init', '--tls', '--config', config]);
  t.equal(r.code, 0, r.stderr);
  const ca = new X509Certificate(readFileSync(join(tlsDir, 'ca.pem')));
  t.ok(ca.ca, 'the CA certificate is a CA');
  t.equal(statSync(join(tlsDir, 'ca.key')).mode & 0o777, 0o600, 'the CA key is mode 0600');
  for (const [name, ip] of [['lan-a', '10.20.0.2'], ['lan-b', '10.20.0.3'], ['witness', '10.20.0.9']] as const) {
    const cert = new X509Certificate(readFileSync(join(tlsDir, `${name}.pem`)));
    const key = createPrivateKey(readFileSync(join(tlsDir, `${name}.key`)));
    t.equal(statSync(join(tlsDir, `${name}.key`)).mode & 0o777, 0o600, `${name}: key mode 0600`);
    t.same([key.asymmetricKeyType, key.asymmetricKeyDetails?.namedCurve], ['ec', 'prime256v1'], `${name}: ECDSA P-256`);
    t.ok(cert.checkPrivateKey(key), `${name}: the key is the certificate's`);
    t.ok(cert.checkIssued(ca) && cert.verify(ca.publicKey), `${name}: signed by the CA`);
    t.same(certDnsNames(cert), [name], `${name}: DNS SAN = the member name`);
    t.match(cert.subjectAltName, `IP Address:${ip}`, `${name}: its address as IP SAN`);
    t.match(r.stdout, `${name}: ${join(tlsDir, `${name}.pem`)} ${join(tlsDir, `${name}.key`)}  certSha256: ${certPin(cert)}`, `${name}: its pin printed`);
  }
  t.match(r.stdout, `scp -p ${tlsDir}/ca.pem ${tlsDir}/lan-b.pem ${tlsDir}/lan-b.key root@10.20.0.3:${tlsDir}/    # lan-b`);
  t.match(r.stdout, `root@10.20.0.9:${tlsDir}/    # witness`);
  t.notMatch(r.stdout, /# lan-a/, 'nothing to copy to itself');
  t.notMatch(r.stdout, /scp[^\n]*ca\.key/, 'the CA key is copied nowhere');

  const caText = readFileSync(join(tlsDir, 'ca.pem'), 'utf8');
  const again = await runLanctl(['init', '--tls', '--config', config]);
  t.equal(again.code, 1, 'existing certificates are not replaced');
  t.match(again.stderr, /ca\.pem.*exist.*--force/);
  t.equal(readFileSync(join(tlsDir, 'ca.pem'), 'utf8'), caText, 'and are left as they were');
  const forced = await runLanctl(['init', '--tls', '--config', config, '--force']);
  t.equal(forced.code, 0, forced.stderr);
  t.not(readFileSync(join(tlsDir, 'ca.pem'), 'utf8'), caText, '--force makes a new CA');

  const usage = await runLanctl(['init', '--tls']);
  t.equal(usage.code, 2, 'without a config there are no members to make certificates for');
  t.match(usage.stderr, /needs --config FILE/);
});

t.test('config check reads the files: ok for the files made, and says what is wrong', async (t) => {
  if (!existsSync(join(tlsDir, 'lan-a.pem'))) await runLanctl(['init', '--tls', '--config', siteConfig('lan-a')]);
  const ok = await runLanctl(['config', 'check', siteConfig('lan-a')]);
  t.equal(ok.code, 0, ok.stderr);
  t.match(ok.stdout, /peer security: mutual TLS 1\.3/);

  const pin = certPin(new X509Certificate(readFileSync(join(tlsDir, 'lan-b.pem'))));
  const wrongPin = await runLanctl(['config', 'check', siteConfig('lan-a', `, certSha256: "${pin}"`)]);
  t.equal(wrongPin.code, 2, "lan-b's pin on lan-a");
  t.match(wrongPin.stderr, /cluster\.members\[0\]\.certSha256: does not match/);

  chmodSync(join(tlsDir, 'lan-a.key'), 0o644);
  t.teardown(() => chmodSync(join(tlsDir, 'lan-a.key'), 0o600));
  const loose = await runLanctl(['config', 'check', siteConfig('lan-a')]);
  t.equal(loose.code, 2);
  t.match(loose.stderr, /cluster\.tls\.key: .*lan-a\.key is mode 0644: readable by group or others \(chmod 600/);
  const serve = await runLanctl(['serve', '--config', siteConfig('lan-a')], { timeoutMs: 30_000 });
  t.equal(serve.code, 2, `serve refuses to start, with the exit status of a refused config: ${serve.stderr.slice(0, 600)}`);
  t.match(serve.stderr, /cluster\.tls\.key: .*lan-a\.key is mode 0644/);
});

t.test('a member added to the config gets its files with the CA here; the others are left as they are', async (t) => {
  const config = siteConfig('lan-a');
  if (!existsSync(join(tlsDir, 'ca.key'))) await runLanctl(['init', '--tls', '--config', config]);
  const before = { ca: readFileSync(join(tlsDir, 'ca.pem'), 'utf8'), a: readFileSync(join(tlsDir, 'lan-a.pem'), 'utf8') };
  rmSync(join(tlsDir, 'lan-b.pem'));
  rmSync(join(tlsDir, 'lan-b.key'));
  const r = await runLanctl(['init', '--tls', '--config', config]);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /added lan-b with the existing CA/);
  t.equal(readFileSync(join(tlsDir, 'ca.pem'), 'utf8'), before.ca, 'the CA is unchanged');
  t.equal(readFileSync(join(tlsDir, 'lan-a.pem'), 'utf8'), before.a, "lan-a's certificate is unchanged");
  const b = new X509Certificate(readFileSync(join(tlsDir, 'lan-b.pem')));
  t.ok(b.checkIssued(new X509Certificate(before.ca)), 'the new certificate is signed by the same CA');
  t.equal(statSync(join(tlsDir, 'lan-b.key')).mode & 0o777, 0o600);
  t.match(r.stdout, /# lan-b/);
  t.notMatch(r.stdout, /# witness/, 'only the added member has files to copy');

  rmSync(join(tlsDir, 'witness.key'));
  const half = await runLanctl(['init', '--tls', '--config', config]);
  t.equal(half.code, 1, 'a member with a certificate and no key is not patched up');
  t.match(half.stderr, /witness\.key is missing beside the other file/);
});

t.test('--renew: new member keys and certificates from the CA here, the CA kept; only the members asked for', async (t) => {
  const config = siteConfig('lan-a');
  if (!existsSync(join(tlsDir, 'ca.key'))) await runLanctl(['init', '--tls', '--config', config]);
  const read = (f: string): string => readFileSync(join(tlsDir, f), 'utf8');
  const before = { ca: read('ca.pem'), a: read('lan-a.pem'), aKey: read('lan-a.key'), b: read('lan-b.pem'), bKey: read('lan-b.key'), w: read('witness.pem') };
  const r = await runLanctl(['init', '--tls', '--config', config, '--renew', '--member', 'lan-b']);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /renewed lan-b with the existing CA/);
  t.match(r.stdout, /restart the renewed members one at a time/);
  t.equal(read('ca.pem'), before.ca, 'the CA is kept');
  t.equal(read('lan-a.pem'), before.a, 'lan-a untouched');
  t.equal(read('witness.pem'), before.w, 'the witness untouched');
  t.not(read('lan-b.pem'), before.b, 'lan-b has a new certificate');
  t.not(read('lan-b.key'), before.bKey, 'and a new key');
  const b = new X509Certificate(read('lan-b.pem'));
  t.ok(b.checkIssued(new X509Certificate(before.ca)) && b.checkPrivateKey(createPrivateKey(read('lan-b.key'))), 'signed by the same CA, for its new key');
  t.same(certDnsNames(b), ['lan-b']);
  t.equal(statSync(join(tlsDir, 'lan-b.key')).mode & 0o777, 0o600, 'the new key is mode 0600');
  t.match(r.stdout, `lan-b: ${join(tlsDir, 'lan-b.pem')} ${join(tlsDir, 'lan-b.key')}  certSha256: ${certPin(b)}`, 'its new pin printed');
  t.notOk(existsSync(join(tlsDir, 'lan-b.key.new')) || existsSync(join(tlsDir, 'lan-b.pem.new')), 'nothing left beside them');
  t.equal((await runLanctl(['config', 'check', siteConfig('lan-b')])).code, 0, 'config check takes the renewed files');

  const all = await runLanctl(['init', '--tls', '--config', config, '--renew']);
  t.equal(all.code, 0, all.stderr);
  t.not(read('lan-a.pem'), before.a, 'without --member every member is renewed');
  t.equal(read('ca.pem'), before.ca, 'the CA still kept');
  const pinned = await runLanctl(['init', '--tls', '--config', siteConfig('lan-a', `, certSha256: "${'ab'.repeat(32)}"`), '--renew', '--member', 'lan-a']);
  t.match(pinned.stdout, /WARNING: cluster\.members pins certSha256 for a renewed member/);

  t.match((await runLanctl(['init', '--tls', '--config', config, '--renew', '--member', 'nobody'])).stderr, /--member nobody: not in cluster\.members/);
  t.match((await runLanctl(['init', '--tls', '--config', config, '--renew', '--force'])).stderr, /--renew keeps the CA and --force makes a new one/);
  const elsewhere = await runLanctl(['init', '--tls', '--config', config, '--renew', '--dir', join(dir, 'empty')]);
  t.equal(elsewhere.code, 1);
  t.match(elsewhere.stderr, /ca\.pem is not here: renew on the machine that made the CA/);
});
