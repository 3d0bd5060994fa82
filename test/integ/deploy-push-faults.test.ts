// `lanctl deploy push` against real sshd servers in network namespaces that misbehave: a node whose
// disk fills up mid-file, a node whose sshd dies mid-transfer, a node behind a slow, lossy link
// (tc netem). Each ends in a per-node error that says what happened, leaves no temporary file that
// a resume would not remove, and a resume completes the job; nothing hangs.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireLab, withLab } from '../support/netns.js';
import { runLanctl, serveDaemon } from '../support/daemon.js';
import { LANCTL } from '../support/paths.js';
import { makeKey, startSshd } from '../support/node-sshd.js';

t.setTimeout(480_000);

type View = { state: string; nodes: Array<{ name: string; state: string; error?: string; installed?: string[] }> };

t.test('push faults: full disk, sshd killed mid-transfer, slow lossy link', async (t) => {
  if (!requireLab(t, ['sshd', 'ssh-keygen', 'sha256sum', 'tc'])) return;
  const dir = mkdtempSync(join(tmpdir(), 'lanha-push-faults-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  await withLab(async (lab) => {
    const lan = await lab.addHost('lan', '10.83.0.1/24');
    const c1 = await lab.addHost('c1', '10.83.0.11/24');
    const c2 = await lab.addHost('c2', '10.83.0.12/24');
    const c3 = await lab.addHost('c3', '10.83.0.13/24');
    const clientKey = join(dir, 'deploy_ed25519');
    const clientPub = makeKey(clientKey);
    const root2 = join(dir, 'root-c2');
    const root3 = join(dir, 'root-c3');
    mkdirSync(root2, { recursive: true });
    mkdirSync(root3, { recursive: true });
    const full = await startSshd(lab, c1, join(dir, 'sshd1'), { tmpfsSize: '256k', authorizedKeys: [clientPub] });
    let dying = await startSshd(lab, c2, join(dir, 'sshd2'), { root: root2, authorizedKeys: [clientPub] });
    await startSshd(lab, c3, join(dir, 'sshd3'), { root: root3, authorizedKeys: [clientPub] });
    const config = join(dir, 'lanha.yaml');
    writeFileSync(config, `node: { name: lan-a, address: 10.83.0.1, stateDir: ${dir}/state, controlSocket: ${dir}/lanha.sock }
deploy:
  user: root
  identityFile: ${clientKey}
  pushRoot: /srv/root
  targets:
    - { name: c1, host: 10.83.0.11 }
    - { name: c2, host: 10.83.0.12 }
    - { name: c3, host: 10.83.0.13 }
  hostKeys:
    c1: "${full.hostKey}"
    c2: "${dying.hostKey}"
`);
    const daemon = await serveDaemon(config, { command: ['ip', 'netns', 'exec', lan.ns, process.execPath, LANCTL], timeoutMs: 60_000 });
    t.teardown(() => daemon.stop());
    const lanctl = (...args: string[]) => runLanctl([...args, '--config', config], { timeoutMs: 120_000 });
    t.equal((await lanctl('nodes', 'trust', 'c3', '--yes')).code, 0);
    const view = async (job: string): Promise<View> => JSON.parse((await lanctl('deploy', 'jobs', job, '--json')).stdout) as View;
    const settle = async (job: string): Promise<View> => {
      let v = await view(job);
      for (let i = 0; i < 600 && v.state === 'running'; i++) { await new Promise((r) => setTimeout(r, 200)); v = await view(job); }
      return v;
    };
    const big = join(dir, 'big.bin');
    writeFileSync(big, randomBytes(1 << 20));

    // A full disk: the node fails saying so, and no partial file stays behind.
    const onFull = await lanctl('deploy', 'push', big, '--to', 'c1');
    t.equal(onFull.code, 1, onFull.stdout);
    const fullJob = /^job (\S+)$/m.exec(onFull.stdout)![1]!;
    const fullView = await view(fullJob);
    process.stderr.write(`FULL: ${JSON.stringify(fullView.nodes)}\n`);
    t.match(fullView.nodes[0]!.error, /^c1: the disk under \/srv\/root is full \(\d+ bytes free, big\.bin is 1048576 bytes\): big\.bin was not installed/, 'the error says the disk is full');

    // sshd killed (with its sessions) mid-transfer: the node fails, the job ends; a resume completes it.
    const port2 = lab.bridgePort(2);
    t.equal((await lab.execSwitch('tc', ['qdisc', 'add', 'dev', port2, 'root', 'tbf', 'rate', '2mbit', 'burst', '32kbit', 'latency', '400ms'])).code, 0);
    const detached = await lanctl('deploy', 'push', big, '--to', 'c2', '--detach');
    const cutJob = /^job (\S+)$/m.exec(detached.stdout)![1]!;
    for (let i = 0; i < 100 && !readdirSync(root2).some((f) => f.includes('.lanha-')); i++) await new Promise((r) => setTimeout(r, 100));
    await new Promise((r) => setTimeout(r, 1000));
    await dying.kill();
    const t0 = performance.now();
    const cut = await settle(cutJob);
    process.stderr.write(`CUT: ${JSON.stringify(cut.nodes)} after ${Math.round(performance.now() - t0)} ms\n`);
    t.equal(cut.state, 'failed');
    t.equal(cut.nodes[0]!.state, 'failed');
    t.match(cut.nodes[0]!.error, /^c2: (the connection was lost while writing \/srv\/root\/\.big\.bin\.lanha-[0-9a-f]{8} at \d+|writing \S+ at \d+ got no answer in 60 s)/, 'the error says the connection went away, naming the step');
    await lab.execSwitch('tc', ['qdisc', 'del', 'dev', port2, 'root']);
    dying = await startSshd(lab, c2, join(dir, 'sshd2b'), { root: root2, authorizedKeys: [clientPub], hostKeyFile: join(dir, 'sshd2', 'ssh_host_ed25519_key') });
    const resumed = await lanctl('deploy', 'resume', cutJob);
    t.equal(resumed.code, 0, resumed.stdout + resumed.stderr);
    t.ok(readFileSync(join(root2, 'big.bin')).equals(readFileSync(big)), 'the resumed push put the whole file in place');
    t.same(readdirSync(root2).filter((f) => f.includes('.lanha-')), [], 'the cut-off temporary file is gone');

    // A slow, lossy link: the push is slower, not stuck, and lands whole.
    const port3 = lab.bridgePort(3);
    // (tbf, not netem: kernels without sch_netem are common on build machines.)
    t.equal((await lab.execSwitch('tc', ['qdisc', 'add', 'dev', port3, 'root', 'tbf', 'rate', '1mbit', 'burst', '32kbit', 'latency', '2s'])).code, 0);
    const slow = await lanctl('deploy', 'push', big, '--to', 'c3');
    process.stderr.write(`SLOW: ${slow.stdout}\n`);
    t.equal(slow.code, 0, slow.stdout + slow.stderr);
    t.ok(existsSync(join(root3, 'big.bin')) && readFileSync(join(root3, 'big.bin')).equals(readFileSync(big)));
    await lab.execSwitch('tc', ['qdisc', 'del', 'dev', port3, 'root']);
  });
});
