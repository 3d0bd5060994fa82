// A daemon killed mid-job leaves the job's work directory (its copy of the pushed files under
// node.stateDir/deploy/<job>/files/) behind, and one killed mid-commit leaves the partial copy in the
// generation store. The next start of the daemon removes both and logs each with its size; the job
// itself shows interrupted and can be resumed. Loopback only: the "node" is a TCP server that never
// speaks, so the push job sits in its ssh handshake holding its copy when the daemon is killed.
import t from 'tap';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { SOLO_CONFIG, logRecords, runLanctl, scratchConfig, serveDaemon } from '../support/daemon.js';
import { sshKeyPair } from '../support/ssh-keys.js';

t.setTimeout(180_000);

t.test('a daemon start sweeps the work directory of a job its predecessor was killed in, and a cut-off commit', async (t) => {
  const mute = createServer(() => undefined);
  await new Promise<void>((resolve) => mute.listen(0, '127.0.0.1', resolve));
  t.teardown(() => mute.close());
  const s = scratchConfig(SOLO_CONFIG);
  t.teardown(s.cleanup);
  const key = join(s.dir, 'deploy_key');
  writeFileSync(key, sshKeyPair().private, { mode: 0o600 });
  writeFileSync(s.file, `${SOLO_CONFIG.replaceAll('{{dir}}', s.dir)}
deploy:
  identityFile: ${key}
  targets:
    - { name: c1, host: 127.0.0.1, port: ${(mute.address() as AddressInfo).port} }
  hostKeys:
    c1: "${sshKeyPair().public}"
`);
  const lanctl = (...args: string[]) => runLanctl([...args, '--config', s.file], { timeoutMs: 60_000 });
  const source = join(s.dir, 'agent.bin');
  writeFileSync(source, Buffer.alloc(100_000, 7));
  const deployDir = join(s.dir, 'state', 'deploy');

  const first = await serveDaemon(s.file);
  let job: string;
  try {
    const push = await lanctl('deploy', 'push', source, '--to', 'c1', '--detach');
    t.equal(push.code, 0, push.stderr);
    job = /^job (\S+)$/m.exec(push.stdout)![1]!;
    t.ok(existsSync(join(deployDir, job, 'files', '0')), 'the running job holds its copy of the file');
  } finally {
    await first.stop('SIGKILL');
  }
  t.ok(existsSync(join(deployDir, job, 'files', '0')), 'killed mid-job: the copy is still there');
  // What a commit cut off by the kill leaves in the store (rsync was copying the tree in).
  const partial = join(s.dir, 'state', 'rootfs', '.partial-0a1b2c3d');
  mkdirSync(join(partial, 'usr'), { recursive: true });
  writeFileSync(join(partial, 'usr', 'tool'), Buffer.alloc(3000));

  const second = await serveDaemon(s.file);
  try {
    t.notOk(existsSync(join(deployDir, job)), 'the restarted daemon removed the job\'s work directory');
    t.notOk(existsSync(partial), 'and the partial copy of the cut-off commit');
    t.same(readdirSync(deployDir).filter((n) => n !== 'ssh'), [], 'nothing else is left under deploy/');
    const events = logRecords(second.logs());
    const swept = events.find((e) => e['event'] === 'deploy.workdir.swept');
    t.match(swept, { job, path: join(deployDir, job), reason: /cut off mid-run/ }, 'the sweep is logged with the job and why');
    t.ok(Number(swept?.['bytes']) >= 100_000 && Number(swept?.['bytes']) < 110_000, `with the bytes it freed (the copy and the job's known_hosts: ${String(swept?.['bytes'])})`);
    t.match(events.find((e) => e['event'] === 'rootfs.leftover_swept'), { path: partial, bytes: 3000 });
    // The log still shows the job running (its runner died); the orphan check marks it interrupted, and a resume would copy the sources again.
    let state = '';
    for (let i = 0; i < 100 && state !== 'interrupted'; i++) {
      state = (JSON.parse((await lanctl('deploy', 'jobs', job, '--json')).stdout) as { state: string }).state;
      if (state !== 'interrupted') await new Promise((r) => setTimeout(r, 100));
    }
    t.equal(state, 'interrupted', 'the job the kill cut off is interrupted, not lost');
  } finally {
    await second.stop();
  }
});
