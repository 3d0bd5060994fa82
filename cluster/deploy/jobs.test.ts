// The job runner's change feed that `lanctl deploy` long-polls instead of polling every 300 ms: a
// waiter wakes as soon as the job changes (an entry applied, live progress), or when its wait ends.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import { JobRunner } from './jobs.js';
import { generationDir } from './store.js';
import { until } from '../../test/support/state-log.js';
import { Fsm } from '../fsm.js';
import { MemoryStateLog } from '../state-log.js';
import { createLogger } from '../../lib/log.js';
import { systemClock } from '../../lib/clock.js';
import { deployConfig } from './config.js';

const { utils } = ssh2;

function runner(): JobRunner {
  const state = new MemoryStateLog(new Fsm(), systemClock);
  const log = createLogger({ level: 'silent' });
  return new JobRunner({ config: deployConfig.parse({}), targets: () => [], clusterId: 'c', member: 'lan-a', stateDir: '/nonexistent', state, log, clock: systemClock });
}

t.test('waitChange wakes on a change, not after its wait', async (t) => {
  const r = runner();
  t.equal(r.version('j1'), 0);
  const t0 = performance.now();
  const waiting = r.waitChange('j1', 0, 60_000);
  setTimeout(() => r.changed('j1'), 20);
  t.equal(await waiting, 1, 'the new version');
  t.ok(performance.now() - t0 < 30_000, 'woken by the change, long before the 60 s wait ended');
});

t.test('waitChange answers at once when the version already moved, and after its wait when nothing changes', async (t) => {
  const r = runner();
  r.changed('j2');
  r.changed('j2');
  t.equal(await r.waitChange('j2', 0, 60_000), 2, 'a follower that missed changes is answered at once');
  t.equal(await r.waitChange('j2', 2, 10), 2, 'no change: the wait ends with the same version');
  r.changed('j2');
  t.equal(r.version('j2'), 3, 'a change after a timed-out wait still counts (the waiter is gone)');
});

// One node's overlay that cannot be built (a FIFO in deploy.overlayDir/<node>: cpSync throws) is that
// node's failure, in words; the other node still runs and the job gets its end entry. Before, the
// error escaped the worker: the job never recorded an end, c1 stayed "running" until the orphan check.
t.test('a node whose overlay cannot be built fails alone; the job still ends', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'lanha-jobs-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const overlayDir = join(dir, 'overlay');
  mkdirSync(join(overlayDir, 'c1', 'etc'), { recursive: true });
  execFileSync('mkfifo', [join(overlayDir, 'c1', 'etc', 'fifo')]);
  const stateDir = join(dir, 'state');
  const generation = 'a'.repeat(64);
  mkdirSync(join(generationDir(stateDir, generation), 'etc'), { recursive: true });
  const state = new MemoryStateLog(new Fsm(), systemClock);
  await state.propose({ type: 'rootfs.commit', generation, member: 'lan-a', source: '/src', files: 0, dirs: 2, symlinks: 0, hardlinks: 0, bytes: 0 });
  const config = deployConfig.parse({ overlayDir, rootfs: { destination: '/srv/root' }, parallel: 1 });
  const log = createLogger({ level: 'silent' });
  const r = new JobRunner({ config, targets: () => [], clusterId: 'c', member: 'lan-a', stateDir, state, log, clock: systemClock });
  t.teardown(() => r.stop());
  const hostKey = utils.generateKeyPairSync('ed25519').public;
  // Port 1 on loopback: nothing listens, so c2's rsync fails at once (ssh: connection refused).
  const target = (node: string) => ({ node, host: '127.0.0.1', port: 1, user: 'root', groups: [], hostKey });
  const id = await r.startRootfs(generation, [target('c1'), target('c2')], false);
  await until('the job ends', () => state.fsm.rootfs.job(id)?.state !== 'running', 60_000);
  const job = state.fsm.rootfs.job(id)!;
  t.equal(job.state, 'failed');
  t.match(job.nodes[0], { name: 'c1', state: 'failed', error: /^the overlay of c1 could not be built from .*overlay\/c1: .*FIFO.*; nothing was sent$/ });
  t.match(job.nodes[1], { name: 'c2', state: 'failed', error: /^rsync exit (255|12): / }, 'the other node ran and has its own result');
});
