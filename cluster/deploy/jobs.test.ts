// The job runner's change feed that `lanctl deploy` long-polls instead of polling every 300 ms: a
// waiter wakes as soon as the job changes (an entry applied, live progress), or when its wait ends.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { JobRunner, leftoverReason } from './jobs.js';
import { generationDir } from './store.js';
import { until } from '../../test/support/state-log.js';
import { Fsm } from '../fsm.js';
import { MemoryStateLog } from '../state-log.js';
import { createLogger } from '../../lib/log.js';
import { systemClock } from '../../lib/clock.js';
import { deployConfig } from './config.js';
import { sshKeyPair } from '../../test/support/ssh-keys.js';


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
  const hostKey = sshKeyPair().public;
  // Port 1 on loopback: nothing listens, so c2's rsync fails at once (ssh: connection refused).
  const target = (node: string) => ({ node, host: '127.0.0.1', port: 1, user: 'root', groups: [], hostKey });
  const id = await r.startRootfs(generation, [target('c1'), target('c2')], false);
  await until('the job ends', () => state.fsm.rootfs.job(id)?.state !== 'running', 60_000);
  const job = state.fsm.rootfs.job(id)!;
  t.equal(job.state, 'failed');
  t.match(job.nodes[0], { name: 'c1', state: 'failed', error: /^the overlay of c1 could not be built from .*overlay\/c1: .*FIFO.*; nothing was sent$/ });
  t.match(job.nodes[1], { name: 'c2', state: 'failed', error: /^rsync exit (255|12): / }, 'the other node ran and has its own result');
});

t.test('which work directories are leftovers', async (t) => {
  const id = '20261202-131500-ab12';
  t.equal(leftoverReason('ssh', false, undefined), undefined, 'the ssh masters\' sockets are not a job\'s');
  t.equal(leftoverReason('notes', false, undefined), undefined, 'nor is anything not named like a job');
  t.equal(leftoverReason(id, true, 'running'), undefined, 'a job set up or running here keeps its directory');
  t.equal(leftoverReason(id, true, undefined), undefined, 'also before its start entry exists (a push stages its sources first)');
  t.match(leftoverReason(id, false, 'running'), /cut off mid-run/);
  t.match(leftoverReason(id, false, 'interrupted'), /ended \(interrupted\); a resume makes a fresh copy/);
  t.match(leftoverReason(id, false, 'done'), /^the job ended \(done\)$/);
  t.match(leftoverReason(id, false, undefined), /no longer in the replicated state/);
});

// A daemon that died mid-job left its work directories (a push job's copy of its sources under
// node.stateDir/deploy/<job>/files/); nothing removed them. Now a run's end sweeps every directory
// no run here uses, logging each with its size, and never the directory of a job still running.
t.test('a job\'s end sweeps the work directories of other jobs no run uses; a running job keeps its own', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'lanha-jobs-sweep-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const stateDir = join(dir, 'state');
  const deployDir = join(stateDir, 'deploy');
  const state = new MemoryStateLog(new Fsm(), systemClock);
  const [ended, cut, gone] = ['20261201-100000-0001', '20261201-100000-0002', '20261201-100000-0003'];
  const push = { kind: 'push' as const, member: 'lan-a', nodes: ['c1'], files: ['a'], sources: ['/a'], sha256: ['0'.repeat(64)], dest: '/' };
  await state.propose({ type: 'deploy.job.start', job: ended, ...push });
  await state.propose({ type: 'deploy.job.end', job: ended, state: 'failed', run: 0 });
  await state.propose({ type: 'deploy.job.start', job: cut, ...push }); // still "running": its daemon died
  for (const [job, size] of [[ended, 1000], [cut, 2000], [gone, 3000]] as const) {
    mkdirSync(join(deployDir, job, 'files'), { recursive: true });
    writeFileSync(join(deployDir, job, 'files', '0'), Buffer.alloc(size));
  }
  writeFileSync(join(deployDir, gone, 'known_hosts'), 'x'.repeat(10));
  mkdirSync(join(deployDir, 'ssh'));
  writeFileSync(join(deployDir, 'notes'), 'not a job');
  const lines: Array<Record<string, unknown>> = [];
  const log = createLogger({ level: 'info', destination: { write: (s: string) => { lines.push(JSON.parse(s) as Record<string, unknown>); } } });
  const r = new JobRunner({ config: deployConfig.parse({ parallel: 1 }), targets: () => [], clusterId: 'c', member: 'lan-a', stateDir, state, log, clock: systemClock });
  t.teardown(() => r.stop());
  // A node that accepts the TCP connection and never says a word: the live job waits on it, holding its copy.
  const mute = createServer(() => undefined);
  await new Promise<void>((resolve) => mute.listen(0, '127.0.0.1', resolve));
  t.teardown(() => mute.close());
  const hostKey = sshKeyPair().public;
  const key = Buffer.from(sshKeyPair().private);
  const target = (port: number, node = 'c1') => ({ node, host: '127.0.0.1', port, user: 'root', groups: [], hostKey });
  const source = join(dir, 'agent');
  writeFileSync(source, Buffer.alloc(500, 1));
  const live = await r.startPush([source], [target((mute.address() as AddressInfo).port)], '/dst', undefined, key);
  t.ok(existsSync(join(deployDir, live, 'files', '0')), 'the live job has its copy');

  // Another node (c1 is in the live job), on port 1: nothing listens, the job ends at once; its end sweeps.
  await t.rejects(r.startPush([source], [target(1)], '/dst', undefined, key), {
    message: `c1 is in deploy job ${live}, still running (\`lanctl deploy jobs ${live}\` follows it, \`lanctl deploy cancel ${live}\` stops it). A node takes one job at a time: two at once write the same tree and undo each other's renames. Nothing was started; run this again once that job has ended`,
  }, 'a second job to a node in a running job is refused before anything is staged or logged');
  t.same(readdirSync(deployDir).sort(), [live, ended, cut, gone, 'notes', 'ssh'].sort(), 'the refused job staged nothing');
  const quick = await r.startPush([source], [target(1, 'c2')], '/dst', undefined, key);
  await until('the quick job ends', () => state.fsm.rootfs.job(quick)?.state !== 'running', 60_000);
  t.same(readdirSync(deployDir).sort(), [live, 'notes', 'ssh'].sort(), 'the leftovers are gone; the running job\'s directory, the sockets\' and a stray file stay');
  const swept = lines.filter((l) => l['event'] === 'deploy.workdir.swept').map((l) => [l['job'], l['bytes'], l['reason']] as const).sort();
  t.equal(swept.length, 3, 'each leftover logged once');
  t.match(swept[0], [ended, 1000, /ended \(failed\)/]);
  t.match(swept[1], [cut, 2000, /cut off mid-run/]);
  t.match(swept[2], [gone, 3010, /no longer in the replicated state/]);
  t.match(lines.find((l) => l['job'] === gone && l['event'] === 'deploy.workdir.swept')?.['msg'], new RegExp(`^removed ${deployDir}/${gone} \\(3010 bytes\\), the work directory of deploy job ${gone}: `));

  t.ok(await r.cancel(live), 'the live job is stopped');
  t.notOk(existsSync(join(deployDir, live)), 'and its directory went with its end');
  const after = await r.startPush([source], [target(1)], '/dst', undefined, key);
  await until('the job after it ends', () => state.fsm.rootfs.job(after)?.state !== 'running', 60_000);
  t.pass('once that job ended, c1 takes a new one');
  t.same(r.sweepWorkDirs(), [], 'nothing left to sweep');
});
