// `lanctl deploy rootfs|push|resume` follow their job through the daemon; a daemon lost on the way
// (stopped, or the leader killed) ends the command with the job named and how to find and finish
// it, exit 3, not just "cannot talk to the daemon".
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { followJob } from '../../bin/commands-deploy.js';
import { ExitCode, LanhaError } from '../../lib/errors.js';

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
