// The checks on `cluster.tls` (config check and the daemon's start share them): each way the files
// can be wrong gives one problem under the key path that names it, and good files give the material;
// plus the schema rules: pins' form, pins without TLS, and keyFile with tls refused.
import t from 'tap';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { makeCaCert, makeClusterCerts, makeMemberCert, writeP256Key } from './tls-certs.js';
import { certPin, clusterTlsMaterial, type TlsProblem } from './tls.js';
import { ConfigError, parseConfig } from '../../config/index.js';

const dir = mkdtempSync(join(tmpdir(), 'lanha-tls-check-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const good = makeClusterCerts(dir, 'c1', [{ name: 'a' }, { name: 'b' }], { ca: 30, member: 30 });
const otherDir = join(dir, 'other');
mkdirSync(otherDir);
const other = makeClusterCerts(otherDir, 'c1', [{ name: 'a' }], { ca: 30, member: 30 });
const members = [{ name: 'a', address: '127.0.0.1', port: 7400, role: 'server' as const }, { name: 'b', address: '127.0.0.2', port: 7400, role: 'server' as const }];

function check(files: { ca?: string; cert?: string; key?: string }, nowMs = NOW, pinA?: string): TlsProblem[] {
  const tls = { ca: good.caCert, cert: good.members['a']!.cert, key: good.members['a']!.key, ...files };
  const read = clusterTlsMaterial({ tls, members: [{ ...members[0]!, ...(pinA ? { certSha256: pinA } : {}) }, members[1]!] }, 'a', nowMs);
  return read.ok ? [] : read.problems;
}

const notPem = join(dir, 'not.pem');
writeFileSync(notPem, 'hello\n');
const looseKey = join(dir, 'loose.key');
copyFileSync(good.members['a']!.key, looseKey);
chmodSync(looseKey, 0o640);
const expiredKey = join(dir, 'expired.key');
writeP256Key(expiredKey);
const expiredCert = join(dir, 'expired.pem');
writeFileSync(expiredCert, makeMemberCert({ name: 'a', keyFile: expiredKey, caCertFile: good.caCert, caKeyFile: good.caKey, days: -1 }));

const NOW = Date.now(); // after every certificate above was made (notBefore is their making)

t.test('good files give the material, pins normalized', async (t) => {
  const pin = certPin(new X509Certificate(readFileSync(good.members['a']!.cert)));
  const colons = pin.toUpperCase().match(/../g)!.join(':');
  const read = clusterTlsMaterial({ tls: { ca: good.caCert, cert: good.members['a']!.cert, key: good.members['a']!.key }, members: [{ ...members[0]!, certSha256: colons }, members[1]!] }, 'a', NOW);
  t.ok(read.ok);
  if (read.ok) t.same(read.material.pins, { a: pin });
});

const cases: Array<[string, () => TlsProblem[], string, RegExp]> = [
  ['an unreadable file', () => check({ ca: join(dir, 'missing.pem') }), 'cluster.tls.ca', /cannot read .*missing\.pem: ENOENT/],
  ['a certificate that is not PEM', () => check({ cert: notPem }), 'cluster.tls.cert', /is not a PEM certificate/],
  ['a key that is not PEM', () => check({ key: notPem }), 'cluster.tls.key', /is not a PEM private key/],
  ['a key that does not match the certificate', () => check({ key: good.members['b']!.key }), 'cluster.tls.key', /does not match the certificate/],
  ['a certificate another CA signed', () => check({ cert: other.members['a']!.cert, key: other.members['a']!.key }), 'cluster.tls.cert', /is not signed by the CA/],
  ['a certificate naming another member', () => check({ cert: good.members['b']!.cert, key: good.members['b']!.key }), 'cluster.tls.cert', /names DNS:b, not this member \(a\)/],
  ['an expired certificate', () => check({ cert: expiredCert, key: expiredKey }), 'cluster.tls.cert', /expired on/],
  ['a certificate not valid yet (clock behind)', () => check({}, NOW - 2 * 86_400_000), 'cluster.tls.cert', /is not valid before/],
  ['a key readable by others', () => check({ key: looseKey }), 'cluster.tls.key', /is mode 0640: readable by group or others/],
  ['a CA file that is a member certificate', () => check({ ca: good.members['b']!.cert }), 'cluster.tls.ca', /is not a CA certificate/],
  ['its own pin wrong', () => check({}, NOW, 'ab'.repeat(32)), 'cluster.members[0].certSha256', /does not match/],
];
for (const [name, run, path, message] of cases) {
  t.test(`${name}: one problem under ${path}`, async (t) => {
    const problems = run();
    const hit = problems.find((p) => p.path === path && message.test(p.message));
    t.ok(hit, JSON.stringify(problems));
  });
}

const base = (cluster: string): string => `node: { name: a, address: 127.0.0.1, stateDir: ${dir}/state }
cluster:
  id: c1
${cluster}`;
const membersYaml = `  members:
    - { name: a, address: 127.0.0.1, port: 7400 }
    - { name: b, address: 127.0.0.2, port: 7400 }
`;
function configError(text: string): string {
  try {
    parseConfig(text);
    return '';
  } catch (error) {
    if (error instanceof ConfigError) return error.message;
    throw error;
  }
}

t.test('schema: keyFile and tls together are refused; pins need tls and a SHA-256 form', async (t) => {
  const tls = `  tls: { ca: /x/ca.pem, cert: /x/a.pem, key: /x/a.key }\n`;
  t.equal(configError(base(tls + membersYaml)), '', 'tls alone is fine');
  t.match(configError(base(tls + '  keyFile: /x/k\n' + membersYaml)), /cluster\.keyFile: .*is set and so is cluster\.tls: give one/);
  t.match(configError(base(tls + membersYaml.replace('port: 7400 }', 'port: 7400, certSha256: "12:34" }'))), /cluster\.members\[0\]\.certSha256: "12:34" is not a SHA-256 fingerprint/);
  t.match(configError(base('  keyFile: /x/k\n' + membersYaml.replace('port: 7400 }', `port: 7400, certSha256: "${'ab'.repeat(32)}" }`))), /cluster\.members\[0\]\.certSha256: .*is set but cluster\.tls is not/);
  t.match(configError(base(`  tls: { ca: /x/ca.pem, cert: /x/a.pem }\n` + membersYaml)), /cluster\.tls\.key: is required but missing/);
  t.match(configError(base(`  tls: { ca: /x/ca.pem, cert: /x/a.pem, key: /x/a.key, ciphers: x }\n` + membersYaml)), /cluster\.tls\.ciphers: unknown key/);
});

t.test('a CA file: text around the blocks is let be; a private key, another block or a damaged certificate is named by its block', async (t) => {
  const caPem = readFileSync(good.caCert, 'utf8');
  const otherCa = readFileSync(other.caCert, 'utf8');
  const write = (name: string, text: string): string => { const f = join(dir, name); writeFileSync(f, text); return f; };
  t.same(check({ ca: write('commented.pem', `# the new CA\n${caPem}\nsome notes !!\n\n${otherCa}trailing`) }), [], 'comments between PEM blocks');
  t.same(check({ ca: write('fifty.pem', `${caPem}${otherCa}`.repeat(25)) }), [], 'a bundle of 50 certificates');
  const withKey = write('with-key.pem', `${caPem}${readFileSync(good.caKey, 'utf8')}`);
  t.same(check({ ca: withKey }), [{ path: 'cluster.tls.ca', message: `${withKey} (PEM block 2, PRIVATE KEY) holds a private key: the CA file goes to every member; keep the key apart (ca.key) and leave only certificates in ${withKey}` }],
    'the CA key in the CA file is refused (it was skipped, and the file went to every member)');
  const withCsr = write('with-csr.pem', `${caPem}-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n`);
  t.match(check({ ca: withCsr }), [{ path: 'cluster.tls.ca', message: /\(PEM block 2, CERTIFICATE REQUEST\) is not a certificate/ }]);
  const damaged = write('damaged.pem', `${otherCa}${caPem.slice(0, 200)}\n-----END CERTIFICATE-----\n`);
  t.match(check({ ca: damaged }), [{ path: 'cluster.tls.ca', message: /\(PEM block 2, CERTIFICATE\) is not a readable certificate/ }]);
});

t.test('a FIFO or a huge file in place of a TLS file is refused, not read (config check hung on a FIFO)', async (t) => {
  const fifo = join(dir, 'ca.fifo');
  t.equal(spawnSync('mkfifo', [fifo]).status, 0);
  // In a child: on the old code the read blocks for good.
  const script = `import('${new URL('./tls.js', import.meta.url).href}').then((m) => { const r = m.clusterTlsMaterial({ tls: { ca: ${JSON.stringify(fifo)}, cert: ${JSON.stringify(good.members['a']!.cert)}, key: ${JSON.stringify(good.members['a']!.key)} }, members: [] }, 'a', Date.now()); console.log(JSON.stringify(r.ok ? [] : r.problems)); })`;
  const run = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 15_000 });
  t.equal(run.signal, null, 'the check ended by itself');
  t.same(JSON.parse(run.stdout || '[]'), [{ path: 'cluster.tls.ca', message: `${fifo} is not a regular file` }]);
  const huge = join(dir, 'huge.pem');
  writeFileSync(huge, Buffer.alloc((1 << 20) + 1, 0x41));
  t.match(check({ ca: huge }), [{ path: 'cluster.tls.ca', message: /is 1048577 bytes, more than a TLS file holds/ }]);
});

t.test('a key of the wrong type is named with its type', async (t) => {
  const rsa = join(dir, 'rsa.key');
  t.equal(spawnSync('openssl', ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:1024', '-out', rsa]).status, 0);
  chmodSync(rsa, 0o600);
  t.match(check({ key: rsa }), [{ path: 'cluster.tls.key', message: `${rsa} is an RSA key; the peer links use ECDSA P-256 keys (lanctl init --tls makes them)` }]);
});

t.test('mid-rotation, an old CA that ran out does not stop a member whose certificate is the new CA\'s from starting', async (t) => {
  const rot = join(dir, 'rotation');
  mkdirSync(rot);
  const oldKey = join(rot, 'old.key');
  writeP256Key(oldKey);
  const oldCa = join(rot, 'old.pem');
  writeFileSync(oldCa, makeCaCert(oldKey, 'lanha cluster CA old', 1));
  const newKey = join(rot, 'new.key');
  writeP256Key(newKey);
  const newCa = join(rot, 'new.pem');
  writeFileSync(newCa, makeCaCert(newKey, 'lanha cluster CA new', 30));
  const bundle = join(rot, 'ca.pem');
  writeFileSync(bundle, readFileSync(newCa, 'utf8') + readFileSync(oldCa, 'utf8'));
  const leaf = (ca: string, caKey: string, name: string): { cert: string; key: string } => {
    const key = join(rot, `${name}.key`);
    writeP256Key(key);
    const cert = join(rot, `${name}.pem`);
    writeFileSync(cert, makeMemberCert({ name: 'a', keyFile: key, caCertFile: ca, caKeyFile: caKey, days: 20 }));
    return { cert, key };
  };
  const renewed = leaf(newCa, newKey, 'renewed');
  const stale = leaf(oldCa, oldKey, 'stale');
  const later = NOW + 2 * 86_400_000; // the old CA ended a day ago
  t.same(check({ ca: bundle, ...renewed }, later), [], 'renewed member: starts (it was refused: the old CA in the bundle had expired)');
  t.match(check({ ca: bundle, ...stale }, later), [{ path: 'cluster.tls.ca', message: /certificate 2 of 2, .*expired on .*, and .*stale\.pem is its: renew this member's certificate from the new CA/ }]);
  t.match(check({ ca: oldCa, ...stale }, later), [{ path: 'cluster.tls.ca', message: /expired on/ }, { path: 'cluster.tls.cert', message: /expired on|not signed/ }].slice(0, 1), 'one CA that ran out: refused as before');
});
