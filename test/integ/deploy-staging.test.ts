// `lanctl deploy rootfs` to a destination that is a plain directory, on real sshd and rsync in
// namespaces: the sync goes into a staging directory beside it (hard links to the live tree for what
// did not change) and becomes the node's tree in one rename once it arrived whole and was checked.
// - a first deploy stopped mid-transfer used to leave /srv/root made, with the new generation's
//   directories in it (and whatever the holding directories had): a node with half a root. Now
//   /srv/root does not exist until the sync is whole; the resume completes it from the staging directory;
// - a deploy over generation 1 whose transfer fails partway (a store file vanishes: rsync exit 24)
//   used to put what arrived in place and then sync generation 1 back; now /srv/root is not touched;
// - paths excluded from the sync (deploy.rootfs.exclude) stay in the node's tree across the switch,
//   and nothing of the staging is left beside it.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { withDeployLab } from '../support/deploy-lab.js';

t.setTimeout(600_000);

t.test('a sync lands in one rename: a first deploy cut off leaves no tree, a failed one leaves the old tree untouched', async (t) => {
  const nodes = ['c1'];
  await withDeployLab(t, { subnet: 94, nodes, tools: ['ssh', 'rsync', 'tc'], name: 'lanha-deploy-staging-' }, async (d) => {
    const srv = join(d.dir, 'srv-c1');
    mkdirSync(srv);
    const root = join(srv, 'root');
    const s1 = await d.sshd('c1', { srv });
    await d.serve(`  hostKeys:\n    c1: "${s1.hostKey}"\n  rootfs: { destination: /srv/root, exclude: ["/keep/"] }\n`);
    const tree = join(d.dir, 'tree');
    const commit = async (): Promise<string> => {
      const r = await d.lanctl('rootfs', 'commit', tree, '--json');
      t.equal(r.code, 0, r.stderr);
      return (JSON.parse(r.stdout) as { generation: string }).generation;
    };
    const beside = (): string[] => readdirSync(srv).filter((n) => n !== 'root').sort();

    mkdirSync(join(tree, 'a'), { recursive: true });
    writeFileSync(join(tree, 'a/f1'), 'one, generation 1\n');
    writeFileSync(join(tree, 'gone'), 'only in generation 1\n');
    mkdirSync(join(tree, 'usr'));
    writeFileSync(join(tree, 'usr/big'), randomBytes(16 << 20));
    mkdirSync(join(tree, 'zz'));
    writeFileSync(join(tree, 'zz/late'), 'sent after usr/big, generation 1\n');
    const gen1 = await commit();

    // A first deploy stopped while usr/big is on its way over a slowed link.
    await d.shape('c1', '16mbit', '400ms');
    const cut = d.jobId((await d.lanctl('deploy', 'rootfs', '--to', 'c1', '--detach')).stdout);
    await d.sentMoreThan(cut, 0);
    t.equal((await d.lanctl('deploy', 'cancel', cut)).code, 0);
    const stopped = (await d.settle(cut)).nodes[0]!;
    await d.unshape('c1');
    t.equal(stopped.state, 'interrupted', stopped.error ?? '');
    t.notOk(existsSync(root), 'no tree at /srv/root: nothing of the cut-off generation is where the node boots from');
    t.same(beside(), [`.root.lanha-new-${gen1.slice(0, 12)}`], 'what arrived waits in the staging directory');
    const resumed = await d.lanctl('deploy', 'resume', cut);
    t.equal(resumed.code, 0, resumed.stdout + resumed.stderr);
    t.equal(readFileSync(join(root, 'zz/late'), 'utf8'), 'sent after usr/big, generation 1\n', 'the resume completes it');
    t.same(beside(), [], 'and the staging directory became the tree');

    // Node-local files under an excluded path stay across every switch.
    mkdirSync(join(root, 'keep'));
    writeFileSync(join(root, 'keep/data'), 'the node\'s own\n');

    // Generation 2; a store file vanishes while c1 syncs it (rsync exit 24).
    writeFileSync(join(tree, 'a/f1'), 'one, generation 2\n');
    rmSync(join(tree, 'gone'));
    writeFileSync(join(tree, 'new'), 'only in generation 2\n');
    writeFileSync(join(tree, 'usr/big'), randomBytes(16 << 20));
    writeFileSync(join(tree, 'zz/late'), 'sent after usr/big, generation 2\n');
    const gen2 = await commit();
    await d.shape('c1', '16mbit', '400ms');
    const failing = d.jobId((await d.lanctl('deploy', 'rootfs', '--to', 'c1', '--detach')).stdout);
    await d.sentMoreThan(failing, 0);
    rmSync(join(d.dir, 'state', 'rootfs', gen2, 'zz/late'));
    const failed = (await d.settle(failing)).nodes[0]!;
    await d.unshape('c1');
    t.equal(failed.state, 'failed');
    t.match(failed.error ?? '', /rsync exit 24/);
    t.match(failed.error ?? '', `c1's /srv/root was not touched: it keeps its previous generation whole`);
    t.notMatch(failed.error ?? '', /put back/, 'nothing to put back');
    t.equal(readFileSync(join(root, 'a/f1'), 'utf8'), 'one, generation 1\n', 'c1 holds generation 1');
    t.equal(readFileSync(join(root, 'gone'), 'utf8'), 'only in generation 1\n', 'nothing was deleted');
    t.notOk(existsSync(join(root, 'new')), 'nothing was added');
    t.equal(readFileSync(join(root, 'keep/data'), 'utf8'), 'the node\'s own\n');

    // Generation 3 lands whole; the staging of generation 2 is removed, the excluded path kept.
    writeFileSync(join(tree, 'zz/late'), 'sent after usr/big, generation 3\n');
    const gen3 = await commit();
    const ok = await d.lanctl('deploy', 'rootfs', gen3, '--to', 'c1', '--json');
    t.equal(ok.code, 0, ok.stdout + ok.stderr);
    t.equal(readFileSync(join(root, 'a/f1'), 'utf8'), 'one, generation 2\n');
    t.equal(readFileSync(join(root, 'zz/late'), 'utf8'), 'sent after usr/big, generation 3\n');
    t.notOk(existsSync(join(root, 'gone')));
    t.equal(readFileSync(join(root, 'keep/data'), 'utf8'), 'the node\'s own\n', 'the excluded path is carried into the new tree');
    t.same(beside(), [], 'no staging or old tree left beside /srv/root');
    const timings = (JSON.parse(ok.stdout) as { timings?: { nodes: Record<string, { mode?: string }> } }).timings;
    t.equal(timings?.nodes.c1?.mode, 'staging');
    // The same generation again: the node holds it whole, so the sync only repairs, in place.
    writeFileSync(join(root, 'a/f1'), 'changed on the node\n');
    const again = await d.lanctl('deploy', 'rootfs', gen3, '--to', 'c1', '--json');
    t.equal(again.code, 0, again.stdout + again.stderr);
    t.equal((JSON.parse(again.stdout) as { timings?: { nodes: Record<string, { mode?: string }> } }).timings?.nodes.c1?.mode, 'in-place', 'a node that runs the generation is repaired in place');
    t.equal(readFileSync(join(root, 'a/f1'), 'utf8'), 'one, generation 2\n', 'what drifted is put right');
    t.same(beside(), []);
    t.ok(d.lab.resolvConfUnchanged());
  });
});
