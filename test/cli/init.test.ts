// `lanctl init`: the cluster key: 32 random bytes in hex, mode 0600, never silently replaced, and
// written where the site config's cluster.keyFile says, with the members to copy it to.
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readKeyFile } from '../../cluster/raft/transport.js';
import { runLanctl } from '../support/daemon.js';

const dir = mkdtempSync(join(tmpdir(), 'lanha-init-test-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

t.test('makes a key, refuses to replace it without --force', async (t) => {
  const key = join(dir, 'sub', 'cluster.key');
  const first = await runLanctl(['init', '--key', key]);
  t.equal(first.code, 0, first.stderr);
  t.match(first.stdout, `wrote ${key} (32 random bytes, hex, mode 0600)`);
  const text = readFileSync(key, 'utf8');
  t.match(text, /^[0-9a-f]{64}\n$/, '64 hex digits');
  t.equal(statSync(key).mode & 0o777, 0o600, 'mode 0600');
  t.equal(readKeyFile(key).length, 32, 'the transport reads it');

  const again = await runLanctl(['init', '--key', key]);
  t.equal(again.code, 1, 'an existing key is not replaced');
  t.match(again.stderr, /exists: it is the cluster's shared key/);
  t.equal(readFileSync(key, 'utf8'), text, 'and is left as it was');

  const forced = await runLanctl(['init', '--key', key, '--force']);
  t.equal(forced.code, 0, forced.stderr);
  t.not(readFileSync(key, 'utf8'), text, '--force makes a new one');
  t.equal(statSync(key).mode & 0o777, 0o600);
});

t.test('with a site config: the key goes to cluster.keyFile and the other members are listed', async (t) => {
  const key = join(dir, 'site.key');
  const config = join(dir, 'site.yaml');
  writeFileSync(config, `node: { name: lan-a, address: 10.20.0.2, stateDir: ${dir}/state, controlSocket: ${dir}/s.sock }
cluster:
  id: rack1
  keyFile: ${key}
  members:
    - { name: lan-a, address: 10.20.0.2, port: 7400 }
    - { name: lan-b, address: 10.20.0.3, port: 7400 }
    - { name: witness, address: 10.20.0.9, port: 7400, role: witness }
`);
  const r = await runLanctl(['init', '--config', config]);
  t.equal(r.code, 0, r.stderr);
  t.equal(readKeyFile(key).length, 32);
  t.match(r.stdout, `scp -p ${key} root@10.20.0.3:${key}    # lan-b`);
  t.match(r.stdout, `root@10.20.0.9:${key}    # witness`);
  t.notMatch(r.stdout, /# lan-a/, 'not to itself');
  const bad = await runLanctl(['init', '--config', join(dir, 'missing.yaml')]);
  t.equal(bad.code, 2, 'an unreadable config is a config error');
});
