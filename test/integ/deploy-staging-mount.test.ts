// `lanctl deploy rootfs` where the destination is a mount point (a node's root partition mounted at
// /srv/root), and on nodes with a BusyBox userland, on real sshd and rsync in namespaces.
// - a mount point used to be synced in place: a deploy cut off mid-transfer left the node's tree a
//   mix of two generations. Now the sync goes into /srv/root/.lanha/new-<gen> inside the mount and
//   the top-level entries are switched once it arrived whole and was checked: a cut deploy leaves
//   the previous generation whole, the resume completes it, nothing of .lanha stays behind;
// - a node whose `mv` has no -T (BusyBox builds without it: the sshd's sessions run with a PATH of
//   BusyBox applets only) failed every staged switch ("mv: invalid option -- 'T'", exit 49); now
//   both the switch beside a plain directory and the one inside a mount point work there.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { withDeployLab } from '../support/deploy-lab.js';
import { busyboxUserland } from '../support/busybox.js';

t.setTimeout(600_000);

type Timings = { timings?: { nodes: Record<string, { mode?: string }> } };

t.test('a mount point switches all at once; BusyBox nodes without mv -T stage too', async (t) => {
  const nodes = ['c1', 'c2', 'c3'];
  await withDeployLab(t, { subnet: 97, nodes, tools: ['ssh', 'rsync', 'tc', 'busybox'], name: 'lanha-deploy-mount-' }, async (d) => {
    const bin = busyboxUserland(join(d.dir, 'busybox'), { mvWithoutT: true });
    if (bin === null) throw new Error('no BusyBox userland could be made here (busybox, rsync)');
    // c1: a mount point, coreutils; c2: a mount point, BusyBox; c3: a plain directory, BusyBox.
    const root1 = join(d.dir, 'root-c1'), root2 = join(d.dir, 'root-c2'), srv3 = join(d.dir, 'srv-c3');
    for (const p of [root1, root2, srv3]) mkdirSync(p);
    const root3 = join(srv3, 'root');
    const s1 = await d.sshd('c1', { root: root1 });
    const s2 = await d.sshd('c2', { root: root2, path: bin });
    const s3 = await d.sshd('c3', { srv: srv3, path: bin });
    await d.serve(`  hostKeys:\n    c1: "${s1.hostKey}"\n    c2: "${s2.hostKey}"\n    c3: "${s3.hostKey}"\n  rootfs: { destination: /srv/root, exclude: ["/keep/"] }\n`);
    const tree = join(d.dir, 'tree');
    const commit = async (): Promise<string> => {
      const r = await d.lanctl('rootfs', 'commit', tree, '--json');
      t.equal(r.code, 0, r.stderr);
      return (JSON.parse(r.stdout) as { generation: string }).generation;
    };
    const modes = (stdout: string): Record<string, string | undefined> => Object.fromEntries(Object.entries((JSON.parse(stdout) as Timings).timings?.nodes ?? {}).map(([n, v]) => [n, v.mode]));

    mkdirSync(join(tree, 'etc'), { recursive: true });
    writeFileSync(join(tree, 'etc/release'), 'generation 1\n');
    writeFileSync(join(tree, 'gone'), 'only in generation 1\n');
    mkdirSync(join(tree, 'usr'));
    writeFileSync(join(tree, 'usr/big'), randomBytes(8 << 20));
    mkdirSync(join(tree, 'zz'));
    writeFileSync(join(tree, 'zz/late'), 'sent after usr/big, generation 1\n');
    await commit();
    const first = await d.lanctl('deploy', 'rootfs', '--to', 'c1,c2,c3', '--json');
    t.equal(first.code, 0, first.stdout + first.stderr);
    t.same(modes(first.stdout), { c1: 'inside', c2: 'inside', c3: 'staging' }, 'each node staged: inside its mount point, or beside its directory');
    for (const root of [root1, root2, root3]) {
      t.equal(readFileSync(join(root, 'etc/release'), 'utf8'), 'generation 1\n');
      t.notOk(existsSync(join(root, '.lanha')), 'nothing of the staging left in the mount point');
    }
    t.same(readdirSync(srv3).sort(), ['root'], 'nothing left beside c3\'s tree');
    for (const root of [root1, root2]) {
      mkdirSync(join(root, 'keep'));
      writeFileSync(join(root, 'keep/data'), 'the node\'s own\n');
    }

    // Generation 2, cut off mid-transfer on both mount points (the links slowed, then the job cancelled).
    writeFileSync(join(tree, 'etc/release'), 'generation 2\n');
    rmSync(join(tree, 'gone'));
    writeFileSync(join(tree, 'new'), 'only in generation 2\n');
    writeFileSync(join(tree, 'usr/big'), randomBytes(8 << 20));
    writeFileSync(join(tree, 'zz/late'), 'sent after usr/big, generation 2\n');
    const gen2 = await commit();
    await d.shape('c1', '8mbit', '400ms');
    await d.shape('c2', '8mbit', '400ms');
    const cut = d.jobId((await d.lanctl('deploy', 'rootfs', '--to', 'c1,c2', '--detach')).stdout);
    await d.sentMoreThan(cut, 0);
    await new Promise((r) => setTimeout(r, 1500));
    t.equal((await d.lanctl('deploy', 'cancel', cut)).code, 0);
    const stopped = await d.settle(cut);
    await d.unshape('c1');
    await d.unshape('c2');
    for (const [node, root] of [['c1', root1], ['c2', root2]] as const) {
      t.equal(stopped.nodes.find((n) => n.name === node)?.state, 'interrupted', `${node} interrupted`);
      t.equal(readFileSync(join(root, 'etc/release'), 'utf8'), 'generation 1\n', `${node} holds generation 1`);
      t.equal(readFileSync(join(root, 'gone'), 'utf8'), 'only in generation 1\n', `${node}: nothing deleted`);
      t.notOk(existsSync(join(root, 'new')), `${node}: nothing added`);
      t.equal(readFileSync(join(root, 'zz/late'), 'utf8'), 'sent after usr/big, generation 1\n', `${node}: nothing of generation 2 in its tree`);
      t.same(readdirSync(join(root, '.lanha')), [`new-${gen2.slice(0, 12)}`], `${node}: what arrived waits inside the mount point`);
    }
    const resumed = await d.lanctl('deploy', 'resume', cut);
    t.equal(resumed.code, 0, resumed.stdout + resumed.stderr);
    for (const [node, root] of [['c1', root1], ['c2', root2]] as const) {
      t.equal(readFileSync(join(root, 'zz/late'), 'utf8'), 'sent after usr/big, generation 2\n', `${node}: the resume completed generation 2`);
      t.notOk(existsSync(join(root, 'gone')), `${node}: generation 1's own file is gone`);
      t.equal(readFileSync(join(root, 'new'), 'utf8'), 'only in generation 2\n');
      t.equal(readFileSync(join(root, 'keep/data'), 'utf8'), 'the node\'s own\n', `${node}: the excluded path is kept across the switch`);
      t.notOk(existsSync(join(root, '.lanha')), `${node}: nothing of the staging left`);
    }
    // c3 (BusyBox, beside) takes generation 2 in one rename.
    const c3 = await d.lanctl('deploy', 'rootfs', '--to', 'c3', '--json');
    t.equal(c3.code, 0, c3.stdout + c3.stderr);
    t.equal(modes(c3.stdout)['c3'], 'staging');
    t.equal(readFileSync(join(root3, 'zz/late'), 'utf8'), 'sent after usr/big, generation 2\n');
    t.same(readdirSync(srv3).sort(), ['root']);
    t.ok(d.lab.resolvConfUnchanged());
  });
});
