// A store file deleted or changed after the deploy's check of the leader's copy and before rsync
// lists the tree, on real sshd and rsync in a namespace. rsync exits 0 (it sent every file of its
// list, as the store held it, and --delete removed the missing one on the node), and the node used
// to be recorded verified without that file. Now the leader checks its copy against the manifest
// before recording the node: the node fails naming the paths and `lanctl rootfs verify`, and is put
// back to the generation last verified on it. The change lands at the exact moment through an
// `rsync` on the daemon's PATH that runs a one-shot script before the real one.
import t from 'tap';
import { chmodSync, existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { withDeployLab } from '../support/deploy-lab.js';

t.setTimeout(600_000);

t.test('a store file gone or changed between the check and rsync fails the node, named', async (t) => {
  await withDeployLab(t, { subnet: 87, nodes: ['d1'], tools: ['ssh', 'rsync'], name: 'lanha-deploy-drift-' }, async (d) => {
    // d1's /srv/root is a symlink to a directory: synced in place, so the put-back is what keeps it
    // whole (a plain directory or a mount point is staged, and left untouched: deploy-staging tests).
    const srv = join(d.dir, 'srv-d1');
    const root = join(srv, 'real');
    mkdirSync(root, { recursive: true });
    symlinkSync('real', join(srv, 'root'));
    const sshd = await d.sshd('d1', { srv });
    const shim = join(d.dir, 'bin');
    mkdirSync(shim);
    const once = join(d.dir, 'before-next-rsync.sh');
    writeFileSync(join(shim, 'rsync'), `#!/bin/sh\nif [ -f '${once}' ]; then sh '${once}'; rm -f '${once}'; fi\nexec /usr/bin/rsync "$@"\n`);
    chmodSync(join(shim, 'rsync'), 0o755);
    const path = process.env.PATH;
    process.env.PATH = `${shim}:${path ?? '/usr/bin:/bin'}`;
    try {
      await d.serve(`  hostKeys:\n    d1: "${sshd.hostKey}"\n  rootfs: { destination: /srv/root }\n`);
    } finally {
      process.env.PATH = path;
    }
    const tree = join(d.dir, 'tree');
    mkdirSync(join(tree, 'etc'), { recursive: true });
    writeFileSync(join(tree, 'etc/keep'), 'in both generations\n');
    writeFileSync(join(tree, 'v'), 'generation 1\n');
    const commit = async (): Promise<string> => {
      const r = await d.lanctl('rootfs', 'commit', tree, '--json');
      t.equal(r.code, 0, r.stderr);
      return (JSON.parse(r.stdout) as { generation: string }).generation;
    };
    const gen1 = await commit();
    const first = await d.lanctl('deploy', 'rootfs', '--to', 'd1');
    t.equal(first.code, 0, first.stdout + first.stderr);
    writeFileSync(join(tree, 'v'), 'generation 2\n');
    writeFileSync(join(tree, 'w'), 'new in generation 2\n');
    const gen2 = await commit();

    const store = join(d.dir, 'state', 'rootfs', gen2);
    writeFileSync(once, `rm '${store}/etc/keep'\nprintf 'generation X\\n' > '${store}/w'\n`);
    const run = await d.lanctl('deploy', 'rootfs', '--to', 'd1');
    t.notOk(existsSync(once), 'the script ran before the deploy rsync');
    t.notOk(existsSync(join(store, 'etc/keep')), 'the store lost etc/keep');
    t.equal(run.code, 1, run.stdout + run.stderr);
    const job = d.jobId(run.stdout);
    const d1 = (await d.view(job)).nodes[0]!;
    t.equal(d1.state, 'failed');
    t.match(d1.error ?? '', new RegExp(`^generation ${gen2.slice(0, 12)} in lan-a's store no longer matches its manifest \\(changed during the sync to d1, after the deploy's check\\): etc/keep \\(missing\\), w \\(size, content\\); rsync sent the store as it found it, so d1 did not get the generation that was committed\\. d1 was put back to generation ${gen1.slice(0, 12)}, the last one verified on it`), d1.error ?? '');
    t.match(d1.error ?? '', `; \`lanctl rootfs verify ${gen2.slice(0, 12)}\` names every changed path; commit the tree again (\`lanctl rootfs commit DIR\`) and deploy the generation it gives`);
    t.equal(readFileSync(join(root, 'etc/keep'), 'utf8'), 'in both generations\n', 'd1 holds etc/keep again');
    t.equal(readFileSync(join(root, 'v'), 'utf8'), 'generation 1\n', 'd1 holds generation 1');
    t.notOk(existsSync(join(root, 'w')), 'the changed file that arrived is gone');
    const list = JSON.parse((await d.lanctl('rootfs', 'list', '--json')).stdout) as { nodes: Array<{ name: string; boot: string | null; running: string | null }> };
    t.match(list.nodes.find((n) => n.name === 'd1'), { running: gen1, boot: gen1 }, 'd1 is not recorded running generation 2');
    const verify = await d.lanctl('rootfs', 'verify', gen2.slice(0, 12));
    t.equal(verify.code, 1, 'rootfs verify says the store copy changed');
    t.match(verify.stdout + verify.stderr, /etc\/keep/);
    t.ok(d.lab.resolvConfUnchanged());
  });
});
