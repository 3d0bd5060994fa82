// `lanctl --remote`: the control API over the `control:` listener with mutual TLS, on loopback.
// A one-member cluster with cluster.tls made by `lanctl init --tls`; operator certificates made by
// `lanctl init --tls --operator`. Checked with lanctl itself and with curl (a TLS client nobody here
// wrote): an operator is served (reads and writes, the writes logged with its name); no
// certificate, another CA's certificate, a member's certificate and an operator the config does not
// list are refused, each with words that say why; the daemon counts the refusals and keeps serving.

import t from 'tap';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import net from 'node:net';
import { runLanctl, scratchConfig, serveDaemon } from '../support/daemon.js';
import { until } from '../support/poll.js';
import { freePorts } from '../support/ports.js';
import { haveTools, runTool } from '../support/tools.js';

t.test('lanctl --remote over mutual TLS: operators served, everyone else refused with a reason', async (t) => {
  if (!haveTools(t, ['openssl', 'curl'], 'remote control test')) return;
  const [raftPort, controlPort, otherRaftPort] = await freePorts(3);
  const yaml = (operators: string): string => `
node: { name: lan-a, stateDir: "{{dir}}/state", controlSocket: "{{dir}}/lanha.sock", logLevel: info }
cluster:
  id: remote-test
  members: [{ name: lan-a, address: 127.0.0.1, port: ${raftPort} }]
  tls: { ca: "{{dir}}/tls/ca.pem", cert: "{{dir}}/tls/lan-a.pem", key: "{{dir}}/tls/lan-a.key" }
control: { listen: "127.0.0.1:${controlPort}"${operators} }
`;
  const sc = scratchConfig(yaml(''));
  t.teardown(sc.cleanup);
  const init = await runLanctl(['init', '--tls', '--config', sc.file, '--dir', join(sc.dir, 'tls')]);
  t.equal(init.code, 0, `init --tls made the CA and the member's certificate ${init.stderr}`);
  const alice = join(sc.dir, 'alice');
  const made = await runLanctl(['init', '--tls', '--operator', 'alice', '--out', alice, '--dir', join(sc.dir, 'tls')]);
  t.equal(made.code, 0, `init --tls --operator alice ${made.stderr}`);
  t.equal(statSync(join(alice, 'operator.key')).mode & 0o777, 0o600, 'the operator key is mode 0600');
  t.ok(['ca.pem', 'operator.pem'].every((f) => existsSync(join(alice, f))), 'the CA and the operator certificate beside it');
  t.match((await runLanctl(['init', '--tls', '--operator', 'alice', '--out', alice, '--dir', join(sc.dir, 'tls')])).stderr, /exist.*--force/, 'an existing operator bundle is not overwritten');
  t.match((await runLanctl(['init', '--tls', '--operator', 'bad name', '--out', join(sc.dir, 'x'), '--dir', join(sc.dir, 'tls')])).stderr, /not an operator name/);
  t.match((await runLanctl(['init', '--tls', '--operator', 'eve', '--out', join(sc.dir, 'x'), '--dir', join(sc.dir, 'nowhere')])).stderr, /ca\.(pem|key) is not here/, 'no CA here: says where operator certificates are made');

  // Another cluster's CA and operator: a certificate this cluster never signed.
  const foreign = scratchConfig(yaml('').replace(`port: ${raftPort}`, `port: ${otherRaftPort}`));
  t.teardown(foreign.cleanup);
  t.equal((await runLanctl(['init', '--tls', '--config', foreign.file, '--dir', join(foreign.dir, 'tls')])).code, 0);
  const mallory = join(foreign.dir, 'mallory');
  t.equal((await runLanctl(['init', '--tls', '--operator', 'mallory', '--out', mallory, '--dir', join(foreign.dir, 'tls')])).code, 0);

  const d = await serveDaemon(sc.file, { timeoutMs: 60_000 });
  t.teardown(() => d.stop());
  t.match(d.logs(), /"event":"control\.remote_listening"/, 'the daemon says where the remote listener is');
  const remote = ['--remote', `127.0.0.1:${controlPort}`];

  const status = await runLanctl(['status', '--json', ...remote, '--tls-dir', alice]);
  t.equal(status.code, 0, `lanctl status --remote as alice ${status.stderr}`);
  const body = JSON.parse(status.stdout) as { node: string; control: { remote: string | null } };
  t.equal(body.node, 'lan-a', 'the remote daemon answered');
  t.equal(body.control.remote, `127.0.0.1:${controlPort}`, 'status names the remote listener');
  const human = await runLanctl(['status', ...remote], { env: { ...process.env, LANHA_TLS_DIR: alice } });
  t.equal(human.code, 0, 'LANHA_TLS_DIR stands for --tls-dir');
  t.match(human.stdout, new RegExp(`remote control \\(mutual TLS\\): 127\\.0\\.0\\.1:${controlPort};`), 'the human status names the remote listener');
  t.equal((await runLanctl(['status'], { env: { ...process.env, LANHA_TLS_DIR: alice, LANHA_REMOTE: `127.0.0.1:${controlPort}` } })).code, 0, 'LANHA_REMOTE stands for --remote');

  const add = await runLanctl(['nodes', 'add', 'n1', '--mac', '52:54:00:12:34:56', ...remote, '--tls-dir', alice]);
  t.equal(add.code, 0, `a write over the remote listener ${add.stderr}`);
  const local = await runLanctl(['nodes', '--json', '--socket', join(sc.dir, 'lanha.sock')]);
  t.match(local.stdout, /"n1"/, 'the write is in the replicated inventory, seen through the local socket');
  t.match(d.logs(), /"event":"control\.remote_request","operator":"alice"[^\n]*"method":"POST"[^\n]*\/v1\/nodes\/add/, 'the write is logged with the operator who made it');

  // curl: the same API with the operator's files; without them the handshake fails.
  const url = `https://127.0.0.1:${controlPort}/v1/status`;
  const curlAlice = await runTool('curl', ['-sS', '--max-time', '10', '--cacert', join(alice, 'ca.pem'), '--cert', join(alice, 'operator.pem'), '--key', join(alice, 'operator.key'), url]);
  t.equal(curlAlice.code, 0, 'curl with the operator certificate');
  t.match(curlAlice.out, /"node":"lan-a"/);
  const curlNone = await runTool('curl', ['-sS', '--max-time', '10', '--cacert', join(alice, 'ca.pem'), url]);
  t.not(curlNone.code, 0, `curl without a client certificate is refused in the handshake (curl exit ${curlNone.code})`);
  t.notMatch(curlNone.out, /"node"/);
  const curlPlain = await runTool('curl', ['-sS', '--max-time', '10', `http://127.0.0.1:${controlPort}/v1/status`]);
  t.notMatch(curlPlain.out, /"node"/, 'plain HTTP gets nothing');
  // A member's certificate is signed by the same CA, but it is not an operator's.
  const member = await runTool('curl', ['-sS', '--max-time', '10', '-w', '\n%{http_code}', '--cacert', join(sc.dir, 'tls', 'ca.pem'),
    '--cert', join(sc.dir, 'tls', 'lan-a.pem'), '--key', join(sc.dir, 'tls', 'lan-a.key'), url]);
  t.match(member.out, /not an operator's[\s\S]*\n403$/, 'a member certificate: 403 with the reason');

  const stranger = await runLanctl(['status', ...remote, '--tls-dir', mallory]);
  t.equal(stranger.code, 3, 'another CA\'s operator: lanctl fails (exit 3)');
  t.match(stranger.stderr, /did not sign|refused this operator certificate/, `and says why: ${stranger.stderr.trim()}`);
  // Mallory trusts this cluster's CA, but its certificate comes from another: the daemon refuses it in the handshake.
  const mixed = join(sc.dir, 'mixed');
  mkdirSync(mixed);
  writeFileSync(join(mixed, 'ca.pem'), readFileSync(join(alice, 'ca.pem')));
  for (const f of ['operator.pem', 'operator.key']) writeFileSync(join(mixed, f), readFileSync(join(mallory, f)), { mode: 0o600 });
  const refusedInHandshake = await runLanctl(['status', ...remote, '--tls-dir', mixed]);
  t.equal(refusedInHandshake.code, 3, 'a certificate another CA signed: lanctl fails (exit 3)');
  t.match(refusedInHandshake.stderr, /refused this operator certificate in the TLS handshake/, `and says why: ${refusedInHandshake.stderr.trim()}`);
  const missing = await runLanctl(['status', ...remote, '--tls-dir', join(sc.dir, 'nothing')]);
  t.not(missing.code, 0);
  t.match(missing.stderr, /operator\.pem|ca\.pem[\s\S]*lanctl init --tls --config FILE --operator NAME/, 'no operator files: says how to make them');
  t.match((await runLanctl(['status', '--remote', 'not a host!', '--tls-dir', alice])).stderr, /is not ADDR\[:PORT\]/);
  t.match((await runLanctl(['status', ...remote, '--socket', '/x'])).stderr, /--remote and --socket/);

  // A host that opens connections and never completes a handshake holds at most
  // maxConnectionsPerSource (4) of the 16 slots: an operator elsewhere is still served.
  const squatters: net.Socket[] = [];
  for (let i = 0; i < 20; i++) {
    const c = net.connect({ host: '127.0.0.1', port: controlPort!, localAddress: '127.0.0.66' });
    c.on('error', () => undefined);
    squatters.push(c);
  }
  // Held, not merely asked for: every connect answered, and the daemon past the host's share (it
  // logs so), before the operator's turn; a fixed wait could leave the squatters still queued.
  await Promise.all(squatters.map((c) => new Promise((r) => { c.once('connect', r); c.once('close', r); })));
  const limited = /"event":"control\.remote_source_limit","client":"127\.0\.0\.66"/;
  t.ok(await until(() => limited.test(d.logs()), 30_000), 'the host past its share is named in the log');
  t.equal((await runLanctl(['status', ...remote, '--tls-dir', alice])).code, 0, 'served while one host holds idle connections');
  for (const c of squatters) c.destroy();
  const after = JSON.parse((await runLanctl(['status', '--json', '--socket', join(sc.dir, 'lanha.sock')])).stdout) as { control: { remoteRefused: number } };
  t.ok(after.control.remoteRefused >= 4, `the daemon counted the refused clients (${after.control.remoteRefused})`);
  t.match(d.logs(), /"event":"control\.remote_refused"/, 'a refusal is logged');
  t.equal((await runLanctl(['status', ...remote, '--tls-dir', alice])).code, 0, 'still served after the refusals');
  await d.stop();

  // control.operators limits who: alice is not bob.
  const bob = join(sc.dir, 'bob');
  t.equal((await runLanctl(['init', '--tls', '--operator', 'bob', '--out', bob, '--dir', join(sc.dir, 'tls')])).code, 0);
  const listed = scratchConfig(yaml(', operators: [bob]'));
  t.teardown(listed.cleanup);
  mkdirSync(join(listed.dir, 'tls'));
  for (const f of ['ca.pem', 'lan-a.pem', 'lan-a.key']) writeFileSync(join(listed.dir, 'tls', f), readFileSync(join(sc.dir, 'tls', f)), { mode: 0o600 });
  const d2 = await serveDaemon(listed.file, { timeoutMs: 60_000 });
  t.teardown(() => d2.stop());
  t.equal((await runLanctl(['status', ...remote, '--tls-dir', bob])).code, 0, 'bob, listed, is served');
  const notListed = await runLanctl(['status', ...remote, '--tls-dir', alice]);
  t.not(notListed.code, 0, 'alice, not listed, is refused');
  t.match(notListed.stderr, /operator "alice" is not in control\.operators/, `with the reason: ${notListed.stderr.trim()}`);
});
