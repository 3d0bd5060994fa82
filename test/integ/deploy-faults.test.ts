// `lanctl deploy rootfs` against nodes that fail in ways an operator must be told apart, on real
// sshd and rsync in namespaces: a second job to a node already in a running job is refused with that
// job named (two rsyncs into one tree used to break each other's holding directories, both failing
// with rename errors and the tree a mix), while a job to another node runs at once; a 20,000-file
// generation reports the bytes it sent (rsync's --stats came after 1 MiB of progress lines and was
// lost: "sent 0 B") and keeps its sparse file sparse in the store and on the node; and a read-only
// destination, a node without rsync, a node that refuses the deploy key and an ssh session killed
// mid-transfer each end in words that name the cause and the node.
import t from 'tap';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { withDeployLab } from '../support/deploy-lab.js';
import { makeKey, startSshd } from '../support/node-sshd.js';

t.setTimeout(600_000);

t.test('deploy faults: busy node, many files, read-only, no rsync, key refused, session killed', async (t) => {
  const nodes = ['c1', 'c2', 'c3', 'c4', 'c5'];
  await withDeployLab(t, { subnet: 91, nodes, tools: ['ssh', 'rsync', 'tc', 'nsenter', 'mknod'], name: 'lanha-deploy-faults-' }, async (d) => {
    const roots: Record<string, string> = {};
    for (const n of nodes) { roots[n] = join(d.dir, `root-${n}`); mkdirSync(roots[n]!, { recursive: true }); }
    const s1 = await d.sshd('c1', { root: roots.c1! });
    const s2 = await d.sshd('c2', { root: roots.c2! });
    const s3 = await d.sshd('c3', { root: roots.c3! });
    const s4 = await d.sshd('c4', { root: roots.c4! });
    // c5 lets in another key only: the deploy key is refused.
    const s5 = await startSshd(d.lab, d.hosts.c5!, join(d.dir, 'sshd-c5'), { root: roots.c5!, authorizedKeys: [makeKey(join(d.dir, 'other_ed25519'))] });
    const keys: Record<string, string> = { c1: s1.hostKey, c2: s2.hostKey, c3: s3.hostKey, c4: s4.hostKey, c5: s5.hostKey };
    await d.serve(`  hostKeys:\n${nodes.map((n) => `    ${n}: "${keys[n]}"`).join('\n')}\n  rootfs: { destination: /srv/root }\n`);
    const errorOf = async (node: string): Promise<string> => {
      const r = await d.lanctl('deploy', 'rootfs', '--to', node);
      t.equal(r.code, 1, `${node}: the deploy fails`);
      const view = await d.view(d.jobId(r.stdout));
      t.equal(view.nodes[0]!.state, 'failed');
      return view.nodes[0]!.error ?? '';
    };

    const tree = join(d.dir, 'tree');
    mkdirSync(join(tree, 'usr/bin'), { recursive: true });
    for (let i = 0; i < 4; i++) writeFileSync(join(tree, 'usr/bin', `big${i}`), randomBytes(1 << 20));
    writeFileSync(join(tree, 'aaa'), 'generation 1\n');
    t.equal((await d.lanctl('rootfs', 'commit', tree)).code, 0);

    // A node in a running job takes no second one; another node does.
    await d.shape('c1', '4mbit', '400ms');
    const first = d.jobId((await d.lanctl('deploy', 'rootfs', '--to', 'c1', '--detach')).stdout);
    const second = await d.lanctl('deploy', 'rootfs', '--to', 'c1,c4');
    t.equal(second.code, 1, second.stdout + second.stderr);
    t.match(second.stderr, `c1 is in deploy job ${first}, still running (\`lanctl deploy jobs ${first}\` follows it, \`lanctl deploy cancel ${first}\` stops it). A node takes one job at a time`);
    t.equal(second.stdout, '', 'nothing was started');
    const other = await d.lanctl('deploy', 'rootfs', '--to', 'c4');
    t.equal(other.code, 0, `a job to another node runs meanwhile: ${other.stdout}${other.stderr}`);
    const firstView = await d.settle(first);
    t.same([firstView.state, firstView.nodes[0]!.state], ['done', 'done'], 'the first job finished undisturbed');
    t.equal(readFileSync(join(roots.c1!, 'aaa'), 'utf8'), 'generation 1\n');
    t.equal(execFileSync('find', [roots.c1!, '-name', '.~tmp~'], { encoding: 'utf8' }), '', 'no holding directory left');
    await d.unshape('c1');
    const again = await d.lanctl('deploy', 'rootfs', '--to', 'c1');
    t.equal(again.code, 0, 'once it ended, the node takes the next job');

    // 20,000 small files: the result reports what was sent.
    const many = join(d.dir, 'many');
    for (let i = 0; i < 200; i++) {
      mkdirSync(join(many, `d${i}`), { recursive: true });
      for (let j = 0; j < 100; j++) writeFileSync(join(many, `d${i}`, `f${j}`), `${i}.${j}\n`);
    }
    // and a sparse file: 64 MiB with nothing in it took 64 MiB in the store and on the node.
    execFileSync('truncate', ['-s', '64M', join(many, 'd0', 'disk.img')]);
    t.equal((await d.lanctl('rootfs', 'commit', many)).code, 0);
    const stored = execFileSync('find', [join(d.dir, 'state', 'rootfs'), '-name', 'disk.img'], { encoding: 'utf8' }).trim();
    t.ok(statSync(stored).blocks * 512 < 1 << 20, `the store keeps the sparse file sparse (${statSync(stored).blocks * 512} bytes on disk)`);
    const big = await d.lanctl('deploy', 'rootfs', '--to', 'c1');
    t.equal(big.code, 0, big.stderr);
    const bigNode = (await d.view(d.jobId(big.stdout))).nodes[0]!;
    t.ok((bigNode.sent ?? 0) > 100_000, `20,000 files: the result says what was sent (${bigNode.sent} bytes)`);
    t.ok(existsSync(join(roots.c1!, 'd199/f99')));
    t.equal(statSync(join(roots.c1!, 'd0/disk.img')).size, 64 << 20);
    t.ok(statSync(join(roots.c1!, 'd0/disk.img')).blocks * 512 < 1 << 20, `and so does the node (${statSync(join(roots.c1!, 'd0/disk.img')).blocks * 512} bytes on disk)`);

    // The read-only destination, the node without rsync, the refused key.
    execFileSync('nsenter', ['-t', String(s2.pid), '-m', 'mount', '-o', 'remount,bind,ro', '/srv/root']);
    t.match(await errorOf('c2'), /^the file system of the destination on c2 is read-only \(Read-only file system; rsync exit 23\): nothing could be written there; remount it read-write/);
    // An overlay with a whiteout over /usr/bin/rsync in c3's sshd mount namespace: every other tool stays.
    mkdirSync(join(d.dir, 'ov-up')); mkdirSync(join(d.dir, 'ov-work'));
    execFileSync('mknod', [join(d.dir, 'ov-up', 'rsync'), 'c', '0', '0']);
    execFileSync('nsenter', ['-t', String(s3.pid), '-m', 'mount', '-t', 'overlay', 'overlay', '-o', `lowerdir=/usr/bin,upperdir=${join(d.dir, 'ov-up')},workdir=${join(d.dir, 'ov-work')}`, '/usr/bin']);
    t.match(await errorOf('c3'), /^rsync is not installed on c3 \(the login worked, then its shell found no rsync; rsync exit (127|12)\): install it there \(apt-get install rsync\), then `lanctl deploy resume`\. c3's \/srv\/root was not touched: it keeps its previous generation whole/);
    // 255 from ssh, or 12 when rsync checks before it reaped ssh (as with the missing rsync above).
    t.match(await errorOf('c5'), /^c5 refused the deploy key \(Permission denied \(publickey\); rsync exit (255|12)\): add the public half of deploy\.identityFile to root's authorized_keys on c5; nothing was sent$/);

    // c4's session processes killed (its sshd listener stays) 300 KB into a slowed transfer.
    writeFileSync(join(tree, 'huge'), randomBytes(4 << 20));
    t.equal((await d.lanctl('rootfs', 'commit', tree)).code, 0);
    await d.shape('c4', '4mbit', '400ms');
    const cut = d.jobId((await d.lanctl('deploy', 'rootfs', '--to', 'c4', '--detach')).stdout);
    await d.sentMoreThan(cut, 300_000);
    const sessions = spawnSync('pgrep', ['-P', String(s4.pid)], { encoding: 'utf8' }).stdout.trim().split('\n').filter((p) => p !== '');
    t.ok(sessions.length > 0, 'c4 has a session to kill');
    for (const pid of sessions) { try { process.kill(Number(pid), 'SIGKILL'); } catch { /* gone */ } }
    const cutView = await d.settle(cut);
    t.equal(cutView.nodes[0]!.state, 'failed');
    t.match(cutView.nodes[0]!.error ?? '', /^the ssh connection to c4 was lost mid-transfer \((Broken pipe|Connection reset by peer); rsync exit (255|12|10)\)/);
    t.equal(readFileSync(join(roots.c4!, 'aaa'), 'utf8'), 'generation 1\n', 'c4 keeps its previous tree');
    await d.unshape('c4');
    const resumed = await d.lanctl('deploy', 'resume', cut);
    t.equal(resumed.code, 0, resumed.stdout + resumed.stderr);
    t.equal(readFileSync(join(roots.c4!, 'huge')).length, 4 << 20, 'the resume completes it');
    t.ok(d.lab.resolvConfUnchanged());
  });
});
