// `lanctl deploy rootfs|push|resume` follow their job through the daemon; a daemon lost on the way
// (stopped, or the leader killed) ends the command with the job named and how to find and finish
// it, exit 3, not just "cannot talk to the daemon". `lanctl deploy jobs JOB --follow` follows a job
// started elsewhere (--detach, another operator): Ctrl-C stops following and leaves the job running.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { followJob } from '../../bin/commands-deploy.js';
import { ExitCode, LanhaError } from '../../lib/errors.js';
import { ControlServer } from '../../lib/control-server.js';
import { silentLogger } from '../../lib/log.js';
import { runLanctl } from '../support/daemon.js';
import { LANCTL } from '../support/paths.js';

t.test('a daemon that is gone while a job is followed: the job and the commands that find and finish it', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'lanha-follow-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const out: string[] = [];
  const io = { out: (s: string) => { out.push(s); }, err: (s: string) => { out.push(s); } };
  const error = await followJob(join(dir, 'gone.sock'), '20261203-044500-ab12', io).then(() => undefined, (e: unknown) => e);
  t.ok(error instanceof LanhaError);
  const e = error as LanhaError;
  t.equal(e.exitCode, ExitCode.daemonDown);
  t.match(e.message, /^lost the daemon while following job 20261203-044500-ab12 \(lanha is not running \(no daemon at .*gone\.sock/);
  t.match(e.message, /`lanctl deploy jobs 20261203-044500-ab12` on any member shows it; .*`lanctl deploy resume 20261203-044500-ab12` there completes it$/);
  t.same(out, ['job 20261203-044500-ab12\n'], 'the job id was printed first');
  out.length = 0;
  await followJob(join(dir, 'gone.sock'), 'j2', io, { json: true }).catch(() => undefined);
  t.same(out, [], '--json prints nothing but the ended job');
});

t.test('deploy jobs JOB --follow: follows a detached job; Ctrl-C detaches, never cancels', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'lanha-follow-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  // A daemon's deploy routes as they answer: one job running (its long poll held), one done. Every
  // cancel is counted.
  const socket = join(dir, 'control.sock');
  const server = new ControlServer(socket, silentLogger);
  let cancels = 0;
  const polls = { held: 0, answered: 0 };
  let letGo!: () => void;
  const held = new Promise<void>((r) => { letGo = r; });
  const node = (state: string) => ({ name: 'c1', state, at: 1, bytes: 5, total: 10 });
  const job = (id: string, state: string) => ({ id, kind: 'rootfs', state, member: 'lan-a', startedAt: 1, dryRun: false, generation: 'ab'.repeat(32), nodes: [node(state)] });
  server.routes({
    'GET /v1/deploy/jobs': async ({ query }) => {
      const id = query.get('job');
      if (id === 'j-done') return { status: 200, body: { job: job(id, 'done'), live: [], active: false, version: 1 } };
      // A long poll is held until the test lets it go: a client that waits for it never exits.
      if (query.get('after') !== null) { polls.held++; await held; polls.answered++; }
      return { status: 200, body: { job: job('j-run', 'running'), live: [{ node: 'c1', phase: 'sync', progress: { bytes: 5, percent: 50, rate: '1.00MB/s', eta: '0:00:05' }, at: 1 }], active: true, version: 1 } };
    },
    'POST /v1/deploy/cancel': async () => { cancels++; return { status: 200, body: { job: job('j-run', 'interrupted') } }; },
  });
  await server.listen();
  t.teardown(() => { letGo(); return server.close(); });

  const done = await runLanctl(['deploy', 'jobs', 'j-done', '--follow', '--socket', socket], { timeoutMs: 30_000 });
  t.equal(done.code, 0, done.stderr);
  t.match(done.stdout, /c1\s+done[\s\S]*job j-done: done/, 'an ended job: its summary, exit 0');
  const usage = await runLanctl(['deploy', 'jobs', '--follow', '--socket', socket], { timeoutMs: 30_000 });
  t.equal(usage.code, 2);
  t.match(usage.stderr, /name the JOB to follow/);

  const child = spawn(process.execPath, [LANCTL, 'deploy', 'jobs', 'j-run', '--follow', '--socket', socket], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
  for (let i = 0; i < 1200 && !(/c1\s+running/.test(out) && polls.held > 0); i++) await new Promise((r) => setTimeout(r, 50));
  t.match(out, /^job j-run\nc1\s+running/, 'it follows the job live');
  t.equal(polls.held, 1, 'its long poll is waiting');
  const exited = new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  child.kill('SIGINT');
  // The hang guard only: the long poll is never answered while the child runs.
  const code = await Promise.race([exited, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 30_000).unref())]);
  if (code === 'hung') child.kill('SIGKILL');
  t.equal(code, 130, err);
  t.equal(polls.answered, 0, 'at once, not after the long poll (still held when it exited)');
  t.match(err, 'stopped following job j-run; it runs on (`lanctl deploy jobs j-run --follow` follows it again, `lanctl deploy cancel j-run` stops it)');
  t.equal(cancels, 0, 'the job was not cancelled');
});
