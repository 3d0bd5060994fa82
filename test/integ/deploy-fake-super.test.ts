// deploy.fakeSuper end to end: a daemon whose generation store keeps owners, set-id bits, devices
// and non-user xattrs in rsync's fake-super xattrs (what a daemon that is not root needs) commits a
// tree and deploys it over ssh to a node namespace; the node gets the real owner, the set-uid bit, a
// real device and the trusted.* xattr, and none of rsync's bookkeeping xattrs; so does a pull through
// the ssh gate (what a netbooting node runs). The daemon runs as root here with `fakeSuper: true`
// forced: rsync --fake-super never sets the real values, root or not.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { withDeployLab } from '../support/deploy-lab.js';
import { LANCTL } from '../support/paths.js';
import { makeKey, startSshd } from '../support/node-sshd.js';

t.setTimeout(300_000);

t.test('a fake-super store deploys real owners, set-id bits, devices and xattrs', async (t) => {
  await withDeployLab(t, { subnet: 76, nodes: ['c1'], tools: ['ssh', 'rsync', 'getfattr', 'setfattr', 'mknod'], name: 'lanha-fake-super-lab-' }, async (d) => {
    const { dir, lab, lan, config, lanctl } = d;
    const c1 = d.hosts['c1']!;
    const root = join(dir, 'root-c1');
    mkdirSync(root, { recursive: true });
    const sshd = await d.sshd('c1', { root });
    t.teardown(() => sshd.stop());
    const tree = join(dir, 'tree');
    mkdirSync(join(tree, 'usr/bin'), { recursive: true });
    mkdirSync(join(tree, 'dev'));
    writeFileSync(join(tree, 'usr/bin/su'), 'a set-uid tool\n');
    chownSync(join(tree, 'usr/bin/su'), 1234, 2345);
    chmodSync(join(tree, 'usr/bin/su'), 0o4755);
    execFileSync('mknod', ['-m', '666', join(tree, 'dev/null'), 'c', '1', '3']);
    execFileSync('setfattr', ['-n', 'trusted.lanha', '-v', 'kept', join(tree, 'usr/bin/su')]);

    const daemon = await d.serve(`  fakeSuper: true
  hostKeys:
    c1: "${sshd.hostKey}"
  rootfs: { destination: /srv/root }
`);
    try {
      const commit = await lanctl('rootfs', 'commit', tree, '--json');
      t.equal(commit.code, 0, commit.stderr);
      const id = (JSON.parse(commit.stdout) as { generation: string }).generation;
      const stored = join(dir, 'state', 'rootfs', id);
      t.not(statSync(join(stored, 'usr/bin/su')).uid, 1234, 'the store file does not carry the owner itself');
      t.ok(statSync(join(stored, 'dev/null')).isFile(), 'the store keeps the device as a plain file');
      t.equal((await lanctl('rootfs', 'verify')).code, 0, 'the store verifies against the manifest');

      const deploy = await lanctl('deploy', 'rootfs', '--to', 'c1');
      t.equal(deploy.code, 0, deploy.stderr + deploy.stdout);
      const su = statSync(join(root, 'usr/bin/su'));
      t.same([su.uid, su.gid, su.mode & 0o7777], [1234, 2345, 0o4755], 'the node gets the real owner and the set-uid bit');
      t.equal(readFileSync(join(root, 'usr/bin/su'), 'utf8'), 'a set-uid tool\n');
      const devnull = statSync(join(root, 'dev/null'));
      t.ok(devnull.isCharacterDevice(), 'and a real device');
      t.equal(devnull.rdev, statSync(join(tree, 'dev/null')).rdev, 'with its numbers');
      const attrs = execFileSync('getfattr', ['--absolute-names', '-d', '-m', '-', join(root, 'usr/bin/su')], { encoding: 'utf8' });
      t.match(attrs, /trusted\.lanha="kept"/, 'and the trusted.* xattr');
      t.notMatch(attrs, /user\.rsync\./, 'no fake-super bookkeeping reaches the node');

      // A netbooting node pulls through the ssh gate (the sync user's forced command): its rsync
      // server reads the store with --fake-super too, so the pulled tree is the real one.
      const nodeKey = join(dir, 'node_ed25519');
      const gateLine = `restrict,command="${process.execPath} ${LANCTL} internal ssh-gate --config ${config}" ${makeKey(nodeKey)}`;
      const gateSshd = await startSshd(lab, lan, join(dir, 'sshd-lan'), { authorizedKeys: [gateLine] });
      try {
        const knownHosts = join(dir, 'lan_known_hosts');
        writeFileSync(knownHosts, `10.76.0.1 ${gateSshd.hostKey.split(' ').slice(0, 2).join(' ')}\n`);
        const pulled = join(dir, 'pulled');
        const ssh = `ssh -i ${nodeKey} -o UserKnownHostsFile=${knownHosts} -o StrictHostKeyChecking=yes -o BatchMode=yes`;
        const pull = await c1.exec('rsync', ['-aHAX', '--numeric-ids', '-e', ssh, `root@10.76.0.1:gen/${id}/`, `${pulled}/`], { timeoutMs: 60_000 });
        t.equal(pull.code, 0, `the pull through the gate works: ${pull.stderr}`);
        const pulledSu = statSync(join(pulled, 'usr/bin/su'));
        t.same([pulledSu.uid, pulledSu.gid, pulledSu.mode & 0o7777], [1234, 2345, 0o4755], 'pulled through the gate: the real owner and set-uid bit');
        t.ok(statSync(join(pulled, 'dev/null')).isCharacterDevice(), 'and a real device');
        t.notMatch(execFileSync('getfattr', ['--absolute-names', '-d', '-m', '-', join(pulled, 'usr/bin/su')], { encoding: 'utf8' }), /user\.rsync\./, 'and no bookkeeping xattrs');
      } finally {
        await gateSshd.stop();
      }

      const rerun = await lanctl('deploy', 'rootfs', '--to', 'c1');
      t.equal(rerun.code, 0, rerun.stderr);
      const job = await d.view(d.jobId(rerun.stdout));
      t.ok((job.nodes[0]!.sent ?? Infinity) < 20_000, `a rerun finds nothing to change (${job.nodes[0]!.sent} bytes sent): the faked attributes compare equal`);
    } finally {
      await daemon.stop();
    }
    t.ok(lab.resolvConfUnchanged());
  });
});
