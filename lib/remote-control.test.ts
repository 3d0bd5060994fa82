import t from 'tap';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { checkOperator, parseRemoteListen } from './remote-control.js';
import { resolveSocket } from '../bin/cli.js';

t.test('parseRemoteListen: address with an optional port', async (t) => {
  t.same(parseRemoteListen('10.0.0.2'), { host: '10.0.0.2', port: 7443 });
  t.same(parseRemoteListen(' 10.0.0.2:9443 '), { host: '10.0.0.2', port: 9443 });
  for (const bad of ['10.0.0.2:0', '10.0.0.2:65536', '10.0.0.256', 'lan-a', '10.0.0.2:', '[::1]:7443', '']) t.equal(parseRemoteListen(bad), null, bad);
});

t.test('checkOperator: an operator certificate the config allows, nothing else', async (t) => {
  const subject = (s: string): { subject: string } => ({ subject: s });
  t.same(checkOperator(subject('CN=alice\nOU=lanha operator'), undefined), { ok: true, operator: 'alice' });
  t.same(checkOperator(subject('OU=lanha operator\nCN=alice'), ['alice', 'bob']), { ok: true, operator: 'alice' });
  const refused = (s: string | undefined, operators?: string[]): string => {
    const r = checkOperator(s === undefined ? undefined : subject(s), operators);
    return r.ok ? 'served' : r.why;
  };
  t.match(refused(undefined), /no client certificate/);
  t.match(refused('CN=lan-a'), /not an operator's/, 'a member certificate (no OU)');
  t.match(refused('CN=alice\nOU=operators'), /not an operator's/, 'another OU');
  t.match(refused('CN=alice\nCN=bob\nOU=lanha operator'), /not an operator's/, 'two names');
  t.match(refused('OU=lanha operator'), /not an operator's/, 'no name');
  t.match(refused('CN=a b\nOU=lanha operator'), /is not a name lanha issues/);
  t.match(refused('CN=alice\nOU=lanha operator', ['bob']), /operator "alice" is not in control\.operators/);
});

const noOpenssl = spawnSync('openssl', ['version']).status !== 0 && '*** openssl is missing: install it (apt-get install openssl) to run this test';
t.test('checkOperator on certificates made the way lanctl init makes them', { skip: noOpenssl }, async (t) => {
  const { makeCaCert, makeMemberCert, makeOperatorCert, writeP256Key } = await import('../cluster/raft/tls-certs.js');
  const dir = mkdtempSync(join(tmpdir(), 'lanha-operator-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const caKey = join(dir, 'ca.key');
  const caCert = join(dir, 'ca.pem');
  writeP256Key(caKey);
  writeFileSync(caCert, makeCaCert(caKey, 'test CA', 30));
  const key = join(dir, 'k');
  writeP256Key(key);
  const operator = new X509Certificate(makeOperatorCert({ name: 'alice', keyFile: key, caCertFile: caCert, caKeyFile: caKey, days: 30 }));
  const member = new X509Certificate(makeMemberCert({ name: 'lan-a', address: '10.0.0.2', keyFile: key, caCertFile: caCert, caKeyFile: caKey, days: 30 }));
  t.same(checkOperator(operator, undefined), { ok: true, operator: 'alice' });
  t.ok(operator.checkIssued(new X509Certificate(readFileSync(caCert))), 'signed by the CA');
  t.match(operator.keyUsage ?? [], ['1.3.6.1.5.5.7.3.2'], 'for client authentication');
  t.notOk((operator.keyUsage ?? []).includes('1.3.6.1.5.5.7.3.1'), 'not for a server');
  t.equal(checkOperator(member, undefined).ok, false, 'a member certificate from the same CA is not an operator\'s');
});

t.test('resolveSocket: --remote and LANHA_REMOTE name a remote daemon, with the operator files', async (t) => {
  const env = { HOME: '/home/op' };
  t.equal(resolveSocket({ socket: '/run/x.sock' }, env), '/run/x.sock');
  t.equal(resolveSocket({ remote: '10.0.0.2' }, env), `https://10.0.0.2:7443#${encodeURIComponent('/home/op/.config/lanha')}`);
  t.equal(resolveSocket({ remote: 'lan-a:9443', 'tls-dir': '/o p' }, env), `https://lan-a:9443#${encodeURIComponent('/o p')}`);
  t.equal(resolveSocket({}, { ...env, LANHA_REMOTE: '10.0.0.3', LANHA_TLS_DIR: '/etc/op' }), `https://10.0.0.3:7443#${encodeURIComponent('/etc/op')}`);
  t.throws(() => resolveSocket({ remote: '10.0.0.2', socket: '/x' }, env), /--remote and --socket/);
  t.throws(() => resolveSocket({ remote: 'a/b' }, env), /is not ADDR\[:PORT\]/);
  t.throws(() => resolveSocket({ remote: '10.0.0.2:99999' }, env), /is not ADDR\[:PORT\]/);
  t.throws(() => resolveSocket({ socket: '/x', 'tls-dir': '/o' }, env), /--tls-dir is for --remote/);
});
