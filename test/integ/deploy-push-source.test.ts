// `lanctl deploy push` reads each source file once: that read gives the sha256 the job records and
// the bytes every node is sent. A source edited after the job started (here: while the first, larger
// file is still on the wire) does not reach the node, which gets the recorded bytes and passes the
// remote sha256 check; the job's copy is gone when the job ends. Files named with a backslash, a
// newline or a leading dash land like any other. A real sshd in a network namespace.
import t from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireLab, withLab } from '../support/netns.js';
import { runLanctl, serveDaemon } from '../support/daemon.js';
import { LANCTL } from '../support/paths.js';
import { makeKey, startSshd } from '../support/node-sshd.js';

t.setTimeout(300_000);

t.test('a source edited while its push job runs: nodes get the bytes the job recorded', async (t) => {
  if (!requireLab(t, ['sshd', 'ssh-keygen', 'sha256sum', 'tc'])) return;
  const dir = mkdtempSync(join(tmpdir(), 'lanha-push-source-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  await withLab(async (lab) => {
    const lan = await lab.addHost('lan', '10.82.0.1/24');
    const c1 = await lab.addHost('c1', '10.82.0.11/24');
    const clientKey = join(dir, 'deploy_ed25519');
    const clientPub = makeKey(clientKey);
    const root = join(dir, 'root-c1');
    mkdirSync(join(root, 'opt'), { recursive: true });
    await startSshd(lab, c1, join(dir, 'sshd1'), { root, authorizedKeys: [clientPub] });
    const config = join(dir, 'lanha.yaml');
    writeFileSync(config, `node: { name: lan-a, address: 10.82.0.1, stateDir: ${dir}/state, controlSocket: ${dir}/lanha.sock }
deploy:
  user: root
  identityFile: ${clientKey}
  pushRoot: /srv/root
  targets:
    - { name: c1, host: 10.82.0.11 }
`);
    const daemon = await serveDaemon(config, { command: ['ip', 'netns', 'exec', lan.ns, process.execPath, LANCTL], timeoutMs: 60_000 });
    t.teardown(() => daemon.stop());
    const lanctl = (...args: string[]) => runLanctl([...args, '--config', config], { timeoutMs: 60_000 });
    t.equal((await lanctl('nodes', 'trust', 'c1', '--yes')).code, 0);

    const big = join(dir, 'big.bin');
    const conf = join(dir, 'zz-conf.txt');
    writeFileSync(big, randomBytes(3 << 20));
    writeFileSync(conf, 'as started\n');
    // The link slowed so the second file goes out seconds after the job started.
    const port = lab.bridgePort(1);
    t.equal((await lab.execSwitch('tc', ['qdisc', 'add', 'dev', port, 'root', 'tbf', 'rate', '4mbit', 'burst', '32kbit', 'latency', '400ms'])).code, 0);
    const detached = await lanctl('deploy', 'push', big, conf, '--to', 'c1', '--dest', 'opt', '--detach');
    t.equal(detached.code, 0, detached.stderr);
    const job = /^job (\S+)$/m.exec(detached.stdout)![1]!;
    writeFileSync(conf, 'edited after the job started, a longer line\n');

    type View = { state: string; sha256: string[]; nodes: Array<{ state: string; error?: string; installed?: string[] }> };
    let view = JSON.parse((await lanctl('deploy', 'jobs', job, '--json')).stdout) as View;
    for (let i = 0; i < 600 && view.state === 'running'; i++) {
      await new Promise((r) => setTimeout(r, 200));
      view = JSON.parse((await lanctl('deploy', 'jobs', job, '--json')).stdout) as View;
    }
    await lab.execSwitch('tc', ['qdisc', 'del', 'dev', port, 'root']);
    t.equal(view.state, 'done', JSON.stringify(view.nodes));
    t.equal(view.nodes[0]!.state, 'done', view.nodes[0]!.error ?? '');
    const sha = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');
    t.equal(view.sha256[1], sha('as started\n'), 'the job recorded the file as it was when the job started');
    t.equal(readFileSync(join(root, 'opt/zz-conf.txt'), 'utf8'), 'as started\n', 'and the node got those bytes, not the edit');
    t.equal(sha(readFileSync(join(root, 'opt/big.bin'))), view.sha256[0]);
    t.notOk(existsSync(join(dir, 'state', 'deploy', job)), 'the job\'s copy of its sources is gone with the job');

    // Odd names: a backslash, a newline, a leading dash.
    const odd = ['back\\slash', 'new\nline', '-rf'];
    for (const name of odd) writeFileSync(join(dir, name), `${name}\n`);
    const oddPush = await lanctl('deploy', 'push', ...odd.map((n) => join(dir, n)), '--to', 'c1', '--dest', 'opt');
    t.equal(oddPush.code, 0, oddPush.stdout + oddPush.stderr);
    for (const name of odd) t.equal(readFileSync(join(root, 'opt', name), 'utf8'), `${name}\n`, `${JSON.stringify(name)} is in place`);

    // A resume must send what the others got: with the source changed since, it is refused by name.
    const failed = await lanctl('deploy', 'push', big, conf, '--to', 'c1', '--dest', '/srv/root/nope', '--detach');
    t.equal(failed.code, 0, failed.stderr);
    const failedJob = /^job (\S+)$/m.exec(failed.stdout)![1]!;
    for (let i = 0; i < 300; i++) {
      view = JSON.parse((await lanctl('deploy', 'jobs', failedJob, '--json')).stdout) as View;
      if (view.state !== 'running') break;
      await new Promise((r) => setTimeout(r, 100));
    }
    t.equal(view.state, 'failed', 'a destination that does not exist fails the node');
    writeFileSync(conf, 'edited again\n');
    const resumed = await lanctl('deploy', 'resume', failedJob);
    t.equal(resumed.code, 1);
    t.match(resumed.stderr, /zz-conf\.txt changed since the job started/);
    t.notOk(existsSync(join(dir, 'state', 'deploy', failedJob)), 'a refused resume leaves no copy behind');
  });
});
