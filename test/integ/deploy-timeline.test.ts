// A `lanctl deploy rootfs` to an inventory node shows in its boot timeline (`lanctl nodes show NAME
// --timeline`), as a netbooting node's own pull through the ssh gate does: `rsync` with generation,
// bytes, exit and job, then `verified`; a sync that failed shows its exit. Before, the timeline of a
// deployed node said "no boot events yet" and only the job told where it stood. Real sshd in a namespace.
import t from 'tap';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { withDeployLab } from '../support/deploy-lab.js';

t.setTimeout(600_000);

t.test('a deploy to an inventory node is in its timeline', async (t) => {
  await withDeployLab(t, { subnet: 98, nodes: ['x1'], tools: ['ssh', 'rsync'], name: 'lanha-deploy-timeline-' }, async (d) => {
    const root = join(d.dir, 'root-x1');
    mkdirSync(root);
    const sshd = await d.sshd('x1', { root });
    await d.serve(`  rootfs: { destination: /srv/root }\ndhcp:\n  listen: 10.98.0.1\n  subnets:\n    - subnet: 10.98.0.0/24\n      pools: [10.98.0.100-10.98.0.150]\n`);
    t.equal((await d.lanctl('nodes', 'add', 'n1', '--mac', '52:54:00:00:00:01', '--ip', d.address('x1'))).code, 0);
    t.equal((await d.lanctl('nodes', 'trust', 'n1', '--yes')).code, 0);
    const tree = join(d.dir, 'tree');
    mkdirSync(tree);
    writeFileSync(join(tree, 'v'), '1\n');
    const commit = await d.lanctl('rootfs', 'commit', tree, '--json');
    const gen = (JSON.parse(commit.stdout) as { generation: string }).generation.slice(0, 12);
    const ok = await d.lanctl('deploy', 'rootfs', '--to', 'n1');
    t.equal(ok.code, 0, ok.stdout + ok.stderr);
    const job = d.jobId(ok.stdout);
    const timeline = async (): Promise<string> => (await d.lanctl('nodes', 'show', 'n1', '--timeline')).stdout;
    const shown = await timeline();
    t.match(shown, new RegExp(`rsync\\s+gen=${gen} bytes=\\d+ exit=0 job=${job}`), `the sync is a timeline step: ${shown}`);
    t.match(shown, new RegExp(`verified\\s+gen=${gen}`));

    await sshd.stop(); // the node's sshd is gone
    const failed = await d.lanctl('deploy', 'rootfs', '--to', 'n1');
    t.equal(failed.code, 1);
    // 255 from ssh, or 12 when rsync saw the stream end first.
    const after = await timeline();
    t.match(after, new RegExp(`rsync\\s+gen=${gen} bytes=0 exit=(255|12) job=${d.jobId(failed.stdout)}`), `a failed sync shows its exit: ${after}`);
    t.ok(d.lab.resolvConfUnchanged());
  });
});
