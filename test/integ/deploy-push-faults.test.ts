// `lanctl deploy push` against real sshd servers in network namespaces that misbehave: a node whose
// disk fills up mid-file, a node whose sshd dies mid-transfer behind a slow link (tc tbf), a node
// behind a slow link (a node that goes silent altogether: deploy-silent-node.test.ts).
// Each ends in a per-node error that says what happened, leaves no temporary file that a resume
// would not remove, and a resume completes the job; nothing hangs.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { withDeployLab } from '../support/deploy-lab.js';

t.setTimeout(480_000);

t.test('push faults: full disk, sshd killed mid-transfer, slow link', async (t) => {
  await withDeployLab(t, { subnet: 83, nodes: ['c1', 'c2', 'c3'], tools: ['sha256sum', 'tc'], name: 'lanha-push-faults-' }, async (d) => {
    const root2 = join(d.dir, 'root-c2');
    const root3 = join(d.dir, 'root-c3');
    mkdirSync(root2, { recursive: true });
    mkdirSync(root3, { recursive: true });
    const full = await d.sshd('c1', { tmpfsSize: '256k' });
    let dying = await d.sshd('c2', { root: root2 });
    await d.sshd('c3', { root: root3 });
    await d.serve(`  pushRoot: /srv/root
  hostKeys:
    c1: "${full.hostKey}"
    c2: "${dying.hostKey}"
`);
    t.equal((await d.lanctl('nodes', 'trust', 'c3', '--yes')).code, 0);
    const big = join(d.dir, 'big.bin');
    writeFileSync(big, randomBytes(1 << 20));

    // A full disk: the node fails saying so, and no partial file stays behind.
    const onFull = await d.lanctl('deploy', 'push', big, '--to', 'c1');
    t.equal(onFull.code, 1, onFull.stdout);
    const fullView = await d.view(d.jobId(onFull.stdout));
    process.stderr.write(`FULL: ${JSON.stringify(fullView.nodes)}\n`);
    t.match(fullView.nodes[0]!.error, /^c1: the disk under \/srv\/root is full \(\d+ bytes free, big\.bin is 1048576 bytes\): big\.bin was not installed/, 'the error says the disk is full');

    // sshd killed (with its sessions) mid-transfer: the node fails, the job ends; a resume completes it.
    await d.shape('c2', '2mbit', '400ms');
    const cutJob = d.jobId((await d.lanctl('deploy', 'push', big, '--to', 'c2', '--detach')).stdout);
    for (let i = 0; i < 100 && !readdirSync(root2).some((f) => f.includes('.lanha-')); i++) await new Promise((r) => setTimeout(r, 100));
    await new Promise((r) => setTimeout(r, 1000));
    await dying.kill();
    const t0 = performance.now();
    const cut = await d.settle(cutJob);
    process.stderr.write(`CUT: ${JSON.stringify(cut.nodes)} after ${Math.round(performance.now() - t0)} ms\n`);
    t.equal(cut.state, 'failed');
    t.equal(cut.nodes[0]!.state, 'failed');
    // The node's kernel answers for the dead sshd (FIN or RST), so the loss is known at once; the
    // result says how it ended. Before, the SFTP close issued after the failed write was never
    // answered (ssh2 files a request made on a closed channel and drops it), so the node failed only
    // when that step's 60 s bound ran out, with ssh2's "No response from server" as the reason.
    t.match(cut.nodes[0]!.error, /^c2: the connection was lost while writing \/srv\/root\/\.big\.bin\.lanha-[0-9a-f]{8} at \d+ \((the node closed the connection|[^)]*ECONNRESET[^)]*)\); files already in place stay/,
      'the error says the connection went away and how, naming the step');
    t.notMatch(cut.nodes[0]!.error, /No response from server|got no answer/, 'not found out by a step bound running out');
    await d.unshape('c2');
    dying = await d.sshd('c2', { root: root2, hostKeyFile: join(d.dir, 'sshd-c2', 'ssh_host_ed25519_key') }, 'sshd-c2b');
    const resumed = await d.lanctl('deploy', 'resume', cutJob);
    t.equal(resumed.code, 0, resumed.stdout + resumed.stderr);
    t.ok(readFileSync(join(root2, 'big.bin')).equals(readFileSync(big)), 'the resumed push put the whole file in place');
    t.same(readdirSync(root2).filter((f) => f.includes('.lanha-')), [], 'the cut-off temporary file is gone');

    // A slow link: the push is slower, not stuck, and lands whole.
    // (tbf, not netem: kernels without sch_netem are common on build machines.)
    await d.shape('c3', '1mbit', '2s');
    const slow = await d.lanctl('deploy', 'push', big, '--to', 'c3');
    process.stderr.write(`SLOW: ${slow.stdout}\n`);
    t.equal(slow.code, 0, slow.stdout + slow.stderr);
    t.ok(existsSync(join(root3, 'big.bin')) && readFileSync(join(root3, 'big.bin')).equals(readFileSync(big)));
    await d.unshape('c3');
  });
});
