// `lanctl deploy rootfs` where rsync gets through but not everything arrives, and where a node's host
// key changes under a kept ssh connection, on real sshd and rsync in namespaces:
// - a file on the node that cannot be replaced (exit 23): rsync used to put every other file of the
//   new generation in place and run its deletions (--delay-updates renames what arrived at the end of
//   the pass), leaving the node a mix of two generations; now the node is put back to the generation
//   last verified on it and the result names the file, as rsync printed it, and what to do;
// - a source file that vanishes from the store mid-sync (exit 24): c2's /srv/root is a mount point,
//   which used to be synced in place and put back; now it is staged inside it and left untouched;
// - a node whose sshd comes back with another host key while the daemon still holds an ssh master
//   to it: the next job used to run over the old connection and report the node done; now it is
//   refused at once with both fingerprints and `lanctl nodes trust --replace`.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { withDeployLab } from '../support/deploy-lab.js';
import { fingerprint, parseHostKey } from '../../cluster/deploy/rsync.js';

t.setTimeout(600_000);

t.test('partial transfers put the node back; a changed host key under a kept connection is refused', async (t) => {
  const nodes = ['c1', 'c2', 'c3'];
  await withDeployLab(t, { subnet: 93, nodes, tools: ['ssh', 'rsync', 'tc', 'nsenter'], name: 'lanha-deploy-partial-' }, async (d) => {
    const roots: Record<string, string> = {};
    for (const n of nodes) { roots[n] = join(d.dir, `root-${n}`); mkdirSync(roots[n]!, { recursive: true }); }
    const s1 = await d.sshd('c1', { root: roots.c1! });
    const s2 = await d.sshd('c2', { root: roots.c2! });
    const s3 = await d.sshd('c3', { root: roots.c3! });
    await d.serve(`  hostKeys:\n    c1: "${s1.hostKey}"\n    c2: "${s2.hostKey}"\n    c3: "${s3.hostKey}"\n  rootfs: { destination: /srv/root }\n`);
    const commit = async (): Promise<string> => {
      const r = await d.lanctl('rootfs', 'commit', tree, '--json');
      t.equal(r.code, 0, r.stderr);
      return (JSON.parse(r.stdout) as { generation: string }).generation;
    };
    const bootOf = async (node: string): Promise<string | null> => {
      const list = JSON.parse((await d.lanctl('rootfs', 'list', '--json')).stdout) as { nodes: Array<{ name: string; boot: string | null; running: string | null }> };
      return list.nodes.find((n) => n.name === node)?.boot ?? null;
    };

    const tree = join(d.dir, 'tree');
    mkdirSync(join(tree, 'a'), { recursive: true });
    writeFileSync(join(tree, 'a/f1'), 'one, generation 1\n');
    writeFileSync(join(tree, 'a/f2'), 'two, generation 1\n');
    writeFileSync(join(tree, 'gone'), 'only in generation 1\n');
    const gen1 = await commit();
    const first = await d.lanctl('deploy', 'rootfs', '--to', 'c1,c2,c3');
    t.equal(first.code, 0, first.stdout + first.stderr);

    writeFileSync(join(tree, 'a/f1'), 'one, generation 2\n');
    writeFileSync(join(tree, 'a/f2'), 'two, generation 2\n');
    rmSync(join(tree, 'gone'));
    writeFileSync(join(tree, 'new'), 'only in generation 2\n');
    mkdirSync(join(tree, 'usr'));
    writeFileSync(join(tree, 'usr/big'), randomBytes(16 << 20));
    // rsync sends a directory's files before its subdirectories: zz/late comes after usr/big.
    mkdirSync(join(tree, 'zz'));
    writeFileSync(join(tree, 'zz/late'), 'sent after usr/big\n');
    const gen2 = await commit();

    // c3 keeps its ssh master from the first job (60 s). Its sshd comes back with another host key;
    // the session behind the master lives on.
    const oldKey = s3.hostKey;
    process.kill(s3.pid, 'SIGTERM');
    await new Promise<void>((resolve) => { if (s3.child.exitCode !== null || s3.child.signalCode !== null) resolve(); else s3.child.once('exit', () => resolve()); });
    const s3b = await d.sshd('c3', { root: roots.c3! }, 'sshd-c3-reinstalled');
    const started = performance.now();
    const changed = await d.lanctl('deploy', 'rootfs', '--to', 'c3');
    const ms = performance.now() - started;
    t.equal(changed.code, 1, changed.stdout + changed.stderr);
    const c3 = (await d.view(d.jobId(changed.stdout))).nodes[0]!;
    t.equal(c3.error, `host key mismatch on c3: it offered ${fingerprint(parseHostKey(s3b.hostKey)!.blob)}, the pinned key is ${fingerprint(parseHostKey(oldKey)!.blob)}; nothing was sent. If the node was reinstalled, check it and run \`lanctl nodes trust c3 --replace\``);
    t.equal(readFileSync(join(roots.c3!, 'a/f1'), 'utf8'), 'one, generation 1\n', 'nothing was sent');
    t.ok(ms < 20_000, `refused at once (${Math.round(ms)} ms)`);
    t.equal((await d.lanctl('nodes', 'trust', 'c3', '--replace', '--yes')).code, 0);
    const again = await d.lanctl('deploy', 'rootfs', '--to', 'c3', '--json');
    t.equal(again.code, 0, again.stdout + again.stderr);
    t.equal(readFileSync(join(roots.c3!, 'a/f1'), 'utf8'), 'one, generation 2\n', 're-pinned, the node takes the job');
    t.comment(`refused in ${Math.round(ms)} ms`);

    // c1: a/f2 cannot be replaced (a mount point: rename gives EBUSY, as an immutable file gives EPERM);
    // it keeps generation 1's bytes, as such a file does.
    const held = join(d.dir, 'held-f2');
    copyFileSync(join(roots.c1!, 'a/f2'), held);
    execFileSync('touch', ['-r', join(roots.c1!, 'a/f2'), held]);
    execFileSync('nsenter', ['-t', String(s1.pid), '-m', 'mount', '--bind', held, '/srv/root/a/f2']);
    const partial = await d.lanctl('deploy', 'rootfs', '--to', 'c1');
    t.equal(partial.code, 1, partial.stdout + partial.stderr);
    const c1 = (await d.view(d.jobId(partial.stdout))).nodes[0]!;
    t.equal(c1.state, 'failed');
    t.match(c1.error ?? '', new RegExp(`^rsync could not transfer 1 path to c1 \\(rsync exit 23, partial transfer\\): /srv/root/a/f2 \\(rename failed: Device or resource busy \\(16\\)\\)\\. c1 was put back to generation ${gen1.slice(0, 12)}, the last one verified on it`), 'the file is named from rsync\'s own line');
    t.match(c1.error ?? '', `\`lanctl deploy resume ${d.jobId(partial.stdout)}\``);
    t.equal(readFileSync(join(roots.c1!, 'a/f1'), 'utf8'), 'one, generation 1\n', 'c1 holds generation 1 again, not the files that arrived');
    t.equal(readFileSync(join(roots.c1!, 'gone'), 'utf8'), 'only in generation 1\n', 'the deletion is undone');
    t.notOk(existsSync(join(roots.c1!, 'new')), 'the new file is gone');
    t.notOk(existsSync(join(roots.c1!, 'usr')), 'and so is the new directory');
    t.equal(await bootOf('c1'), gen1, 'c1 boots generation 1');
    execFileSync('nsenter', ['-t', String(s1.pid), '-m', 'umount', '/srv/root/a/f2']);
    const resumed = await d.lanctl('deploy', 'resume', d.jobId(partial.stdout));
    t.equal(resumed.code, 0, resumed.stdout + resumed.stderr);
    t.equal(readFileSync(join(roots.c1!, 'a/f2'), 'utf8'), 'two, generation 2\n', 'once the file is free, the resume completes it');
    t.equal(await bootOf('c1'), gen2);

    // c2: a source file vanishes from the store while usr/big is on its way (exit 24). The sender reads
    // ahead of the slowed link by what the socket buffers hold (a few MB): 16 MiB leave seconds to spare.
    await d.shape('c2', '16mbit', '400ms');
    const cut = d.jobId((await d.lanctl('deploy', 'rootfs', '--to', 'c2', '--detach')).stdout);
    await d.sentMoreThan(cut, 0);
    const stored = join(d.dir, 'state', 'rootfs', gen2, 'zz/late');
    t.ok(existsSync(stored));
    rmSync(stored);
    const c2 = (await d.settle(cut)).nodes[0]!;
    await d.unshape('c2');
    t.equal(c2.state, 'failed');
    t.match(c2.error ?? '', new RegExp(`^rsync could not transfer 1 path to c2 \\(rsync exit 24, source files vanished: the store's copy changed during the sync\\): \\S*/${gen2}/zz/late \\(vanished while being sent\\)\\. c2's /srv/root was not touched: it keeps its previous generation whole`));
    // c2's /srv/root is a mount point with nothing mounted below: the sync went inside it, staged (it used to go in place and be put back).
    t.equal(readFileSync(join(roots.c2!, 'a/f1'), 'utf8'), 'one, generation 1\n', 'c2 holds generation 1');
    t.notOk(existsSync(join(roots.c2!, 'usr')), 'nothing of what arrived is in its tree');
    t.equal(await bootOf('c2'), gen1);
    t.ok(d.lab.resolvConfUnchanged());
  });
});

