// `lanctl deploy push` reads each source file once: that read gives the sha256 the job records and
// the bytes every node is sent. A source edited after the job started (here: while the first, larger
// file is still on the wire) does not reach the node, which gets the recorded bytes and passes the
// remote sha256 check; the job's copy is gone when the job ends. Files named with a backslash, a
// newline or a leading dash land like any other. A real sshd in a network namespace.
import t from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { withDeployLab } from '../support/deploy-lab.js';

t.setTimeout(300_000);

t.test('a source edited while its push job runs: nodes get the bytes the job recorded', async (t) => {
  await withDeployLab(t, { subnet: 82, nodes: ['c1'], tools: ['sha256sum', 'tc'], name: 'lanha-push-source-' }, async (d) => {
    const root = join(d.dir, 'root-c1');
    mkdirSync(join(root, 'opt'), { recursive: true });
    await d.sshd('c1', { root });
    await d.serve('  pushRoot: /srv/root\n');
    t.equal((await d.lanctl('nodes', 'trust', 'c1', '--yes')).code, 0);

    const big = join(d.dir, 'big.bin');
    const conf = join(d.dir, 'zz-conf.txt');
    writeFileSync(big, randomBytes(3 << 20));
    writeFileSync(conf, 'as started\n');
    // The link slowed so the second file goes out seconds after the job started.
    await d.shape('c1', '4mbit', '400ms');
    const detached = await d.lanctl('deploy', 'push', big, conf, '--to', 'c1', '--dest', 'opt', '--detach');
    t.equal(detached.code, 0, detached.stderr);
    const job = d.jobId(detached.stdout);
    writeFileSync(conf, 'edited after the job started, a longer line\n');

    let view = await d.settle(job);
    await d.unshape('c1');
    t.equal(view.state, 'done', JSON.stringify(view.nodes));
    t.equal(view.nodes[0]!.state, 'done', view.nodes[0]!.error ?? '');
    const sha = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');
    t.equal(view.sha256![1], sha('as started\n'), 'the job recorded the file as it was when the job started');
    t.equal(readFileSync(join(root, 'opt/zz-conf.txt'), 'utf8'), 'as started\n', 'and the node got those bytes, not the edit');
    t.equal(sha(readFileSync(join(root, 'opt/big.bin'))), view.sha256![0]);
    t.notOk(existsSync(join(d.dir, 'state', 'deploy', job)), 'the job\'s copy of its sources is gone with the job');

    // Odd names: a backslash, a newline, a leading dash.
    const odd = ['back\\slash', 'new\nline', '-rf'];
    for (const name of odd) writeFileSync(join(d.dir, name), `${name}\n`);
    const oddPush = await d.lanctl('deploy', 'push', ...odd.map((n) => join(d.dir, n)), '--to', 'c1', '--dest', 'opt');
    t.equal(oddPush.code, 0, oddPush.stdout + oddPush.stderr);
    for (const name of odd) t.equal(readFileSync(join(root, 'opt', name), 'utf8'), `${name}\n`, `${JSON.stringify(name)} is in place`);

    // A resume must send what the others got: with the source changed since, it is refused by name.
    const failed = await d.lanctl('deploy', 'push', big, conf, '--to', 'c1', '--dest', '/srv/root/nope', '--detach');
    t.equal(failed.code, 0, failed.stderr);
    const failedJob = d.jobId(failed.stdout);
    view = await d.settle(failedJob);
    t.equal(view.state, 'failed', 'a destination that does not exist fails the node');
    writeFileSync(conf, 'edited again\n');
    const resumed = await d.lanctl('deploy', 'resume', failedJob);
    t.equal(resumed.code, 1);
    t.match(resumed.stderr, /zz-conf\.txt changed since the job started/);
    t.notOk(existsSync(join(d.dir, 'state', 'deploy', failedJob)), 'a refused resume leaves no copy behind');
  });
});
