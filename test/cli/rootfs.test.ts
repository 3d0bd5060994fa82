// `lanctl rootfs commit/list/verify` and `lanctl rollback` against a real daemon (one member, no
// root needed): a tree becomes a generation whose id is its manifest's sha256; committing the same
// tree again gives the same id; a generation whose stored files changed after commit is refused
// at verify and at deploy with the changed paths named; rollback assigns the previous generation.
import t from 'tap';
import { mkdirSync, writeFileSync, linkSync, appendFileSync, existsSync, readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { runLanctl, scratchConfig, serveDaemon } from '../support/daemon.js';

// Many lanctl runs and real ssh transfers: far over tap's default per-file limit on a loaded 2-core box.
t.setTimeout(600_000);

const hasRsync = existsSync('/usr/bin/rsync') || existsSync('/bin/rsync');

t.test('commit, list, verify, refuse a changed generation, rollback', async (t) => {
  if (!hasRsync) { process.stderr.write('\n*** SKIPPED rootfs CLI test: rsync is not installed (apt-get install rsync)\n'); t.pass('SKIPPED: no rsync'); return; }
  const scratch = scratchConfig(`node: { name: lan-a, address: 127.0.0.1, stateDir: "{{dir}}/state", controlSocket: "{{dir}}/lanha.sock" }
deploy:
  targets:
    - { name: c1, host: 127.0.0.1, groups: [rack] }
    - { name: c2, host: 127.0.0.1, groups: [rack] }
  rootfs: { destination: /srv/root }
`);
  t.teardown(scratch.cleanup);
  const tree = join(scratch.dir, 'tree');
  mkdirSync(join(tree, 'etc'), { recursive: true });
  writeFileSync(join(tree, 'etc/motd'), 'hello\n');
  writeFileSync(join(tree, 'etc/a'), 'a\n');
  linkSync(join(tree, 'etc/a'), join(tree, 'etc/b'));
  const daemon = await serveDaemon(scratch.file, { timeoutMs: 60_000 });
  t.teardown(() => daemon.stop());
  const lanctl = (...args: string[]) => runLanctl([...args, '--config', scratch.file], { timeoutMs: 60_000 });

  const first = await lanctl('rootfs', 'commit', tree, '--json');
  t.equal(first.code, 0, first.stderr);
  const gen1 = JSON.parse(first.stdout) as { generation: string; created: boolean; counts: { files: number; hardlinks: number } };
  t.match(gen1.generation, /^[0-9a-f]{64}$/);
  t.same([gen1.counts.files, gen1.counts.hardlinks], [3, 1]);
  const manifest = readFileSync(join(scratch.dir, 'state/rootfs', `${gen1.generation}.manifest`));
  t.equal(createHash('sha256').update(manifest).digest('hex'), gen1.generation, 'id = sha256 of the stored manifest');

  const again = await lanctl('rootfs', 'commit', tree, '--json');
  t.equal(JSON.parse(again.stdout).generation, gen1.generation, 'same tree, same id');
  t.equal(JSON.parse(again.stdout).created, false);

  appendFileSync(join(tree, 'etc/motd'), 'v2\n');
  const second = await lanctl('rootfs', 'commit', tree);
  t.equal(second.code, 0, second.stderr);
  t.match(second.stdout, /generation [0-9a-f]{64}\n  3 files \(1 hardlinks\)/);
  const gen2 = /generation ([0-9a-f]{64})/.exec(second.stdout)![1]!;

  const list = await lanctl('rootfs', 'list');
  t.equal(list.code, 0, list.stderr);
  t.match(list.stdout, gen1.generation.slice(0, 12));
  t.match(list.stdout, gen2.slice(0, 12));
  t.match(list.stdout, /NOT PINNED/);

  t.equal((await lanctl('rootfs', 'verify')).code, 0);
  appendFileSync(join(scratch.dir, 'state/rootfs', gen2, 'etc/motd'), 'tampered\n');
  const verify = await lanctl('rootfs', 'verify', gen2.slice(0, 8));
  t.equal(verify.code, 1);
  t.match(verify.stderr, /changed after commit \(1 paths\).*\n  etc\/motd: size, content/);
  const deploy = await lanctl('deploy', 'rootfs', gen2.slice(0, 8), '--to', 'c1');
  t.equal(deploy.code, 1);
  t.match(deploy.stderr, /no pinned host key for c1: nothing was sent/, 'an unpinned node is refused before anything else');

  const rollback = await lanctl('rollback', 'rack');
  t.equal(rollback.code, 0, rollback.stderr);
  t.match(rollback.stdout, `c1: ${gen2.slice(0, 12)} -> ${gen1.generation.slice(0, 12)}`);
  const after = JSON.parse((await lanctl('rootfs', 'list', '--json')).stdout) as { nodes: Array<{ name: string; assigned: string; boot: string }> };
  t.same(after.nodes.map((n) => n.boot), [gen1.generation, gen1.generation]);
  const none = await lanctl('rollback', 'c1');
  t.equal(none.code, 1, 'nothing before the oldest');
  t.match(none.stderr, /no earlier generation/);
  t.equal((await lanctl('rollback', 'nosuch')).code, 1);
});
