// `lanctl nodes remove` of a node a deploy job is syncing, on real sshd and rsync in a namespace
// with the link slowed: the job used to go on syncing the removed node to its end and report it
// "done ... (removed from the inventory meanwhile: not recorded)". Now the removal is refused,
// naming the job and `lanctl deploy cancel`; once the job is cancelled the node can go.
import t from 'tap';
import { mkdirSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { withDeployLab } from '../support/deploy-lab.js';

t.setTimeout(600_000);

t.test('nodes remove of a node mid-sync is refused, naming the job; after deploy cancel it goes', async (t) => {
  await withDeployLab(t, { subnet: 86, nodes: ['x2'], tools: ['ssh', 'rsync', 'tc'], name: 'lanha-deploy-remove-' }, async (d) => {
    const root = join(d.dir, 'root-x2');
    mkdirSync(root);
    await d.sshd('x2', { root });
    await d.serve(`  rootfs: { destination: /srv/root }\ndhcp:\n  listen: 10.86.0.1\n  subnets:\n    - subnet: 10.86.0.0/24\n      pools: [10.86.0.100-10.86.0.150]\n`);
    t.equal((await d.lanctl('nodes', 'add', 'n2', '--mac', '52:54:00:00:00:02', '--ip', d.address('x2'))).code, 0);
    t.equal((await d.lanctl('nodes', 'trust', 'n2', '--yes')).code, 0);
    const tree = join(d.dir, 'tree');
    mkdirSync(tree);
    writeFileSync(join(tree, 'big'), randomBytes(16 << 20));
    t.equal((await d.lanctl('rootfs', 'commit', tree)).code, 0);
    await d.shape('x2', '4mbit', '400ms'); // 16 MiB take over 30 s: the commands below run well inside it
    const job = d.jobId((await d.lanctl('deploy', 'rootfs', '--to', 'n2', '--detach')).stdout);
    await d.sentMoreThan(job, 0);
    const refused = await d.lanctl('nodes', 'remove', 'n2');
    t.equal(refused.code, 1, refused.stdout + refused.stderr);
    t.match(refused.stderr, `n2 is in deploy job ${job}, still running (\`lanctl deploy jobs ${job}\` follows it, \`lanctl deploy cancel ${job}\` stops it`);
    t.equal((await d.view(job)).state, 'running', 'the job runs on');
    t.equal((await d.lanctl('nodes', 'show', 'n2')).code, 0, 'n2 is still in the inventory');
    t.equal((await d.lanctl('deploy', 'cancel', job)).code, 0);
    await d.unshape('x2');
    t.match(await d.settle(job), { state: 'interrupted', nodes: [{ name: 'n2', state: 'interrupted' }] });
    const removed = await d.lanctl('nodes', 'remove', 'n2');
    t.equal(removed.code, 0, removed.stdout + removed.stderr);
    t.ok(d.lab.resolvConfUnchanged());
  });
});
