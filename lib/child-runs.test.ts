// Proves ChildRuns waits for the commands it ran and ends by PID those that overrun: a command
// stopped (SIGSTOP, as a hung `ip` is to its parent) is SIGKILLed at the limit and gone, its caller
// gets a failed result instead of waiting for ever, and nothing is started after close().
import t from 'tap';
import { readFileSync } from 'node:fs';
import { ChildRuns, killRunningChildren, runningChildren } from './child-runs.js';

const alive = (pid: number | undefined): boolean => {
  if (pid === undefined) return false;
  try { process.kill(pid, 0); } catch { return false; }
  // A zombie (not reaped yet) counts as gone.
  return true;
};
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
/** Until every command `runs` has running is stopped (state T), at most 10 s. */
async function untilStopped(runs: ChildRuns, count: number): Promise<void> {
  const state = (pid: number | undefined): string => { try { return readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '')[0] ?? ''; } catch { return ''; } };
  for (let i = 0; i < 200; i++) {
    if (runs.running().filter((c) => state(c.pid) === 'T').length >= count) return;
    await sleep(50);
  }
}
/** A command that stops itself: it can act on no signal but SIGKILL. */
const STOPS_ITSELF = ['/bin/sh', ['-c', 'kill -STOP $$; exit 0']] as const;

t.test('a command that ends gives its exit code and stderr', async (t) => {
  const runs = new ChildRuns(5000);
  t.same(await runs.run('/bin/sh', ['-c', 'exit 0']), { code: 0, stderr: '' });
  t.same(await runs.run('/bin/sh', ['-c', 'echo no such address >&2; exit 2']), { code: 2, stderr: 'no such address\n' });
  t.same(runs.running(), [], 'nothing left running');
  t.equal((await runs.run('/nonexistent/ip', [])).code, 127, 'a program that cannot start is a failure, not a throw');
  await runs.close(0);
});

t.test('within: a stopped command is killed by PID at the limit, named, and its caller goes on', async (t) => {
  const runs = new ChildRuns(60_000);
  const result = runs.run(...STOPS_ITSELF);
  await untilStopped(runs, 1);
  const [child] = runs.running();
  t.ok(child !== undefined && child.pid !== undefined, 'the command runs');
  const started = performance.now();
  const ended = await runs.within(150, result);
  const ms = performance.now() - started;
  t.match(ended, [{ pid: child!.pid, command: "/bin/sh -c kill -STOP $$; exit 0", outcome: 'killed' }], 'named, killed');
  // The upper bound only tells "ended at the limit" from "waited for the command" (60 s): a loaded
  // machine takes its time to reap the killed child.
  t.ok(ms >= 140 && ms < 30_000, `the wait ended at the limit (${Math.round(ms)} ms)`);
  t.not((await result).code, 0, 'the caller got a failed result');
  t.notOk(alive(child!.pid), 'the child is gone');
  t.same(runs.running(), []);
  t.same(await runs.within(10_000, runs.run('/bin/sh', ['-c', 'exit 0'])), [], 'a command that ends within the limit is not killed');
  await runs.close(0);
});

t.test('close: SIGTERM at once, SIGKILL after the grace to what ignores it, nothing started after', async (t) => {
  const runs = new ChildRuns(60_000);
  const sleeper = runs.run('/bin/sleep', ['30']);
  const stopped = runs.run(...STOPS_ITSELF);
  await untilStopped(runs, 1);
  await sleep(50); // sleep is running too
  const pids = runs.running().map((c) => c.pid);
  t.equal(pids.length, 2);
  const started = performance.now();
  const ended = await runs.close(200);
  const ms = performance.now() - started;
  t.equal(ended.length, 1, 'only the stopped one needed SIGKILL');
  t.match(ended[0], { command: /kill -STOP/, outcome: 'killed' });
  t.ok(ms < 20_000, `close took ${Math.round(ms)} ms (the sleeper alone would hold it 30 s)`);
  t.not((await sleeper).code, 0);
  t.not((await stopped).code, 0);
  for (const pid of pids) t.notOk(alive(pid), `pid ${pid} is gone`);
  const late = await runs.run('/bin/sh', ['-c', 'exit 0']);
  t.match(late, { code: 127, stderr: /not run, stopping/ }, 'refused after close');
});

t.test('killRunningChildren: every runner\'s commands, killed by PID and listed (the daemon\'s stop limit)', async (t) => {
  const a = new ChildRuns(60_000);
  const b = new ChildRuns(60_000);
  const ra = a.run(...STOPS_ITSELF);
  const rb = b.run('/bin/sleep', ['30']);
  await untilStopped(a, 1);
  const listed = runningChildren();
  t.equal(listed.length, 2, 'both runners\' commands listed');
  const killed = killRunningChildren();
  t.same(killed.map((c) => c.pid).sort(), listed.map((c) => c.pid).sort());
  await Promise.all([ra, rb]);
  for (const c of killed) t.notOk(alive(c.pid), `pid ${c.pid} is gone`);
  t.same(runningChildren(), []);
  await a.close(0);
  await b.close(0);
});

t.test('killRunning: the commands running now are killed by PID and waited for; the runner takes more after', async (t) => {
  // Its own limit is past the test's: only killRunning can end it (no stopwatch needed).
  const runs = new ChildRuns(1_200_000);
  const started = performance.now();
  const slow = runs.run('sleep', ['600']);
  await new Promise((r) => setTimeout(r, 100));
  const ended = await runs.killRunning();
  t.match(ended, [{ command: 'sleep 600', outcome: 'killed' }], 'the running one killed and named');
  const r = await slow;
  t.not(r.code, 0, `its caller sees it did not finish (ended after ${Math.round(performance.now() - started)} ms of its 600 s)`);
  t.same(await runs.killRunning(), [], 'nothing running: nothing to kill');
  t.equal((await runs.run('true', [])).code, 0, 'and a command run after it runs');
});
