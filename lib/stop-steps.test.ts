// Proves StopSteps times each step of a stop on the clock it is given (its start and its length), lists the unfinished ones
// with their time so far, goes on without a bounded step at its limit (still listing it until it
// ends), and that the log text names the unfinished steps first, then the slowest finished.
import t from 'tap';
import { StopSteps, describeStop, describeStepTimes, stopStep } from './stop-steps.js';

t.test('finished steps with their times, unfinished ones with the time so far, in start order', async (t) => {
  let now = 1000;
  const steps = new StopSteps(() => now);
  await steps.run('http', () => { now += 3; });
  let release!: () => void;
  const hanging = steps.run('dns.workers', () => new Promise<void>((r) => { release = r; }));
  now += 250;
  await steps.run('tftp', async () => { now += 40; });
  t.same(steps.report(), {
    done: [{ step: 'http', atMs: 0, ms: 3 }, { step: 'tftp', atMs: 253, ms: 40 }],
    running: [{ step: 'dns.workers', atMs: 3, ms: 290 }],
    late: [],
    totalMs: 293,
  });
  release();
  await hanging;
  now += 7;
  t.same(steps.report().running, [], 'nothing unfinished once it ended');
  t.same(steps.report().done.map((s) => s.step), ['http', 'dns.workers', 'tftp'], 'in the order they started');
  t.same(steps.report().done.map((s) => [s.atMs, s.atMs + s.ms]), [[0, 3], [3, 293], [253, 293]], 'each with its start: dns.workers ran while tftp did');
  t.equal(steps.report().totalMs, 293, 'the total ends with the last step that ended');
});

t.test('a step that throws is timed and its error thrown on', async (t) => {
  let now = 0;
  const steps = new StopSteps(() => now);
  await t.rejects(steps.run('raft', () => { now += 5; throw new Error('EIO'); }), /EIO/);
  t.same(steps.report().done, [{ step: 'raft', atMs: 0, ms: 5 }]);
});

t.test('bounded: the stop goes on at the limit; the step stays unfinished until it ends', async (t) => {
  const steps = new StopSteps(() => performance.now());
  let release!: () => void;
  const outcome = await steps.bounded('ntp', 50, () => new Promise<void>((r) => { release = r; }), () => t.fail('did not fail'));
  t.equal(outcome, 'late', 'given up at its limit');
  t.same(steps.report().running.map((s) => s.step), ['ntp'], 'still listed as not finished');
  t.same(steps.report().late, ['ntp']);
  release();
  await new Promise((r) => setImmediate(r));
  t.same(steps.report().running, [], 'finished since');
  t.equal(await steps.bounded('tftp', 1000, () => undefined, () => undefined), 'done', 'a quick step is done');
  const failures: unknown[] = [];
  t.equal(await steps.bounded('dhcp', 1000, () => { throw new Error('EBADF'); }, (e) => failures.push(e)), 'failed');
  t.match(failures, [/EBADF/], 'the error is handed over');
});

t.test('the log text: what had not finished first, then the slowest finished', async (t) => {
  t.equal(describeStop({ done: [{ step: 'http', atMs: 0, ms: 2 }, { step: 'dns.workers', atMs: 0, ms: 1234 }], running: [{ step: 'tftp', atMs: 0, ms: 3100 }, { step: 'tftp.workers', atMs: 0, ms: 3010 }], late: ['tftp'], totalMs: 4300 }),
    'not finished: tftp (3.1 s so far), tftp.workers (3.0 s so far); slowest finished: dns.workers 1.2 s, http 2 ms');
  t.equal(describeStop({ done: [{ step: 'http', atMs: 0, ms: 2 }], running: [], late: ['ntp'], totalMs: 10 }),
    'every step finished; left behind at their limit and finished since: ntp; slowest finished: http 2 ms');
  t.equal(describeStepTimes([1, 2, 3, 4].map((ms) => ({ step: `s${ms}`, atMs: 0, ms })), 2), 's4 4 ms, s3 3 ms (+2 more)');
});

t.test('stopStep without a tracker only runs the step', async (t) => {
  t.equal(await stopStep(undefined, 'x', () => 7), 7);
  const steps = new StopSteps(() => 0);
  t.equal(await stopStep(steps, 'x', async () => 8), 8);
  t.same(steps.report().done, [{ step: 'x', atMs: 0, ms: 0 }]);
});
