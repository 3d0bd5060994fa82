import t from 'tap';
import fc from 'fast-check';
import {
  KernelStampTable, KERNEL_STAMPS_MAX, KERNEL_STAMP_TTL_MS, KERNEL_STAMP_WAIT_MS, KERNEL_STAMP_WAITERS_MAX,
  TransmitLearner, TRANSMIT_LEARN_BATCH, TRANSMIT_LEARNED_MAX_NS,
} from './kernel-stamps.js';
import { seedFromEnv } from '../../test/support/seeded.js';

// The pairing of captured kernel stamps with the requests the handler reads, with time passed in:
// a stamp that comes first is taken by its request; a request that comes first waits and is
// completed by its stamp, or given up by its timer; the table and the waiters stay bounded whatever
// comes; the transmit correction learned from our replies' residuals converges and stays bounded.

t.test('a stamp that comes first is taken by its request, once', async (t) => {
  const table = new KernelStampTable<string>();
  t.equal(table.onCaptured('a', 1_000n, 0), null, 'nobody waits: stored');
  t.same(table.onRequest('a', 'req-a', 1), { kind: 'kernel', kernelNs: 1_000n });
  t.same(table.onRequest('a', 'req-a again', 2), { kind: 'wait', untilMs: 2 + KERNEL_STAMP_WAIT_MS }, 'taken: a repeat waits for its own');
  t.equal(table.storedCount, 0);
});

t.test('a request that comes first is completed by its stamp, or given up by its timer', async (t) => {
  const table = new KernelStampTable<string>();
  t.same(table.onRequest('b', 'req-b', 10), { kind: 'wait', untilMs: 10 + KERNEL_STAMP_WAIT_MS });
  t.same(table.onCaptured('b', 7n, 10.3), { token: 'req-b', kernelNs: 7n }, 'the stamp finishes the waiting request');
  t.equal(table.giveUp('b'), null, 'its timer then finds nothing to give up');
  t.equal(table.waitingCount, 0);

  table.onRequest('c', 'req-c', 20);
  t.equal(table.giveUp('c'), 'req-c', 'no stamp: the timer gives it up (the estimate serves)');
  t.equal(table.onCaptured('c', 9n, 25), null, 'a stamp after that is only stored');
});

t.test('a stamp older than its time to live is not used', async (t) => {
  const table = new KernelStampTable<string>();
  table.onCaptured('old', 1n, 0);
  t.equal(table.onRequest('old', 'r', KERNEL_STAMP_TTL_MS + 1).kind, 'wait');
});

t.test('a repeated capture keeps the first stamp; a repeated request is not held twice', async (t) => {
  const table = new KernelStampTable<string>();
  table.onCaptured('k', 1n, 0);
  table.onCaptured('k', 2n, 0);
  t.same(table.onRequest('k', 'r', 0), { kind: 'kernel', kernelNs: 1n });
  table.onRequest('w', 'first', 0);
  t.same(table.onRequest('w', 'second', 0), { kind: 'estimate_busy' });
});

t.test('waiters are bounded; the rest take the estimate at once; a stopped capture frees them all', async (t) => {
  const table = new KernelStampTable<number>();
  for (let i = 0; i < KERNEL_STAMP_WAITERS_MAX; i++) t.equal(table.onRequest(`k${i}`, i, 0).kind, 'wait');
  t.same(table.onRequest('one-more', -1, 0), { kind: 'estimate_busy' });
  t.equal(table.drainWaiters().length, KERNEL_STAMP_WAITERS_MAX);
  t.equal(table.waitingCount, 0);
});

t.test('the stored stamps stay bounded under any sequence', async (t) => {
  let steps = 0;
  fc.assert(fc.property(fc.array(fc.tuple(fc.boolean(), fc.nat({ max: 6000 }), fc.nat({ max: 50 })), { maxLength: 400 }), (ops) => {
    const table = new KernelStampTable<number>();
    let now = 0;
    for (const [capture, key, dt] of ops) {
      now += dt;
      if (capture) table.onCaptured(`k${key}`, BigInt(now), now);
      else {
        const r = table.onRequest(`k${key}`, key, now);
        if (r.kind === 'kernel' && r.kernelNs > BigInt(now)) throw new Error('a stamp from the future');
        if (r.kind === 'wait') table.giveUp(`k${key}`);
      }
      if (table.storedCount > KERNEL_STAMPS_MAX || table.waitingCount > KERNEL_STAMP_WAITERS_MAX) throw new Error('unbounded');
      steps++;
    }
  }), { seed: seedFromEnv(1415), numRuns: 200 });
  const table = new KernelStampTable<number>();
  for (let i = 0; i < KERNEL_STAMPS_MAX * 2; i++) table.onCaptured(`k${i}`, BigInt(i), 0);
  t.equal(table.storedCount, KERNEL_STAMPS_MAX, 'a burst keeps only the newest');
  t.equal(table.onRequest('k0', 0, 0).kind, 'wait', 'the oldest went first');
  t.same(table.onRequest(`k${KERNEL_STAMPS_MAX * 2 - 1}`, 0, 0), { kind: 'kernel', kernelNs: BigInt(KERNEL_STAMPS_MAX * 2 - 1) });
  t.ok(steps > 0);
});

t.test('the transmit correction converges on the residual of our replies, bounded', async (t) => {
  const learner = new TransmitLearner();
  // Transmit stamps 40 us early (the kernel saw the reply 40 us after the stamp), with noise.
  const trueNs = 40_000;
  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < TRANSMIT_LEARN_BATCH; i++) learner.onReply(trueNs - learner.correctionNs + (i % 3 - 1) * 5_000);
  }
  t.ok(Math.abs(learner.correctionNs - trueNs) <= 5_000, `learned ${learner.correctionNs} ns`);
  t.equal(learner.onReply(5e6), null, 'a residual of 5 ms is not ours: ignored');
  t.equal(learner.onReply(Number.NaN), null);
  const wild = new TransmitLearner();
  for (let i = 0; i < TRANSMIT_LEARN_BATCH * 10; i++) wild.onReply(900_000);
  t.equal(wild.correctionNs, TRANSMIT_LEARNED_MAX_NS, 'bounded');
  const late = new TransmitLearner();
  for (let i = 0; i < TRANSMIT_LEARN_BATCH + 1; i++) late.onReply(-8_000 - late.correctionNs);
  t.equal(late.correctionNs, -8_000, 'a clock read later than the kernel\'s is corrected the other way');
  const first = new TransmitLearner();
  t.equal(first.onReply(60_000), 60_000, 'the first residual is taken at once');
  t.equal(first.onReply(10_000), null, 'then a batch is waited for');
});
