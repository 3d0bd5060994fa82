import t from 'tap';
import fc from 'fast-check';
import { BusyPoll, CYCLE_EPOCHS, CYCLE_EPOCHS_MAX, EPOCH_BLOCKS, EpochEnd, PREEMPTED_US, SAMPLE_MAX_US, TurnOutcome } from './busy-poll.js';

// The busy-poll choice (busy-poll.ts): probes, the mode each epoch takes, the window's bounds.

/** One whole epoch of lock-step round trips of `rttUs` each, one transfer running; returns whether it polled. */
function epoch(bp: BusyPoll, rttUs: number, now = 0): boolean {
  const polled = bp.open(now, 1) !== 0;
  let mixed = false;
  for (let i = 0; i < EPOCH_BLOCKS; i++) {
    if ((bp.open(now, 1) !== 0) !== polled) mixed = true;
    bp.sample(rttUs);
  }
  if (mixed) t.fail('an epoch keeps one mode');
  return polled;
}

t.test('0 turns polling off: no window, nothing measured', async (t) => {
  const bp = new BusyPoll(0);
  for (let i = 0; i < 4; i++) t.notOk(epoch(bp, 50), `epoch ${i} sleeps`);
  t.equal(bp.open(1000, 1), 0);
  t.equal(bp.sleepMeanUs, 0);
  t.equal(bp.pollEpochs + bp.sleepEpochs, 0);
});

t.test('a cycle probes sleeping, then polling, then keeps polling when it was faster', async (t) => {
  const bp = new BusyPoll(200);
  t.equal(bp.open(5_000, 1), 0, 'the first epoch sleeps');
  t.notOk(epoch(bp, 100), 'sleeping probe');
  t.equal(bp.sleepMeanUs, 100);
  t.equal(bp.open(5_000, 1), 5_200, 'the polling probe opens a window of maxUs after the send');
  t.ok(epoch(bp, 60), 'polling probe');
  t.equal(bp.pollMeanUs, 60);
  t.ok(bp.pollWins);
  for (let e = 2; e < CYCLE_EPOCHS; e++) t.ok(epoch(bp, 60), `epoch ${e} polls: it was 40 % faster`);
  const ends: EpochEnd[] = [];
  for (let i = 0; i < 2 * EPOCH_BLOCKS; i++) ends.push(bp.sample(i < EPOCH_BLOCKS ? 100 : 60));
  t.same(ends.filter((e) => e !== EpochEnd.none), [EpochEnd.sleepingProbe, EpochEnd.pollingProbe], 'a sample says which epoch it ended');
  for (let e = 2; e < CYCLE_EPOCHS; e++) epoch(bp, 60);
  t.notOk(epoch(bp, 60), 'the next cycle probes sleeping again');
  t.equal(bp.pollEpochs, 2 * (CYCLE_EPOCHS - 1));
  t.equal(bp.sleepEpochs, 3);
});

t.test('polling that gains less than 5 % is not chosen, and its probes grow rarer up to the cap', async (t) => {
  const bp = new BusyPoll(200);
  epoch(bp, 100);
  t.ok(epoch(bp, 97), 'probe');
  t.notOk(bp.pollWins, '3 % is not enough for the CPU it costs');
  t.equal(bp.cycleEpochs, 2 * CYCLE_EPOCHS, 'the next cycle is twice as long');
  let probes = 1;
  let blocks = 2 * EPOCH_BLOCKS;
  let polled = EPOCH_BLOCKS;
  for (let e = 0; e < 2000; e++) {
    const poll = epoch(bp, 100);
    blocks += EPOCH_BLOCKS;
    if (poll) { polled += EPOCH_BLOCKS; probes++; }
  }
  t.equal(bp.cycleEpochs, CYCLE_EPOCHS_MAX, 'doubled up to the cap');
  t.ok(probes > 10, 'still probing');
  t.ok(polled / blocks < 0.02, `polled ${polled} of ${blocks} blocks`);
  // The machine quietens: the next polling probe wins and the cycle is short again.
  while (!bp.pollWins) epoch(bp, bp.open(0, 1) !== 0 ? 50 : 100);
  t.equal(bp.cycleEpochs, CYCLE_EPOCHS);
});

t.test('polling loses to sleeping when the spin slows the round trip down (a loaded machine)', async (t) => {
  const bp = new BusyPoll(200);
  epoch(bp, 40);
  epoch(bp, 90);
  t.notOk(bp.pollWins);
  for (let e = 2; e < 2 * CYCLE_EPOCHS; e++) t.notOk(epoch(bp, 40), `epoch ${e} sleeps`);
});

t.test('never with more than one transfer on the thread, and a mixed epoch does not count', async (t) => {
  const bp = new BusyPoll(200);
  epoch(bp, 100);
  t.equal(bp.open(0, 2), 0, 'two transfers: no window');
  t.equal(bp.open(0, 0), 0);
  for (let i = 0; i < EPOCH_BLOCKS - 1; i++) bp.sample(10);
  t.equal(bp.open(0, 2), 0, 'a second transfer came: the polling probe starts over');
  t.equal(bp.pollMeanUs, 0, 'not finished with the mixed samples');
  t.ok(epoch(bp, 80), 'a whole polling probe, one transfer again');
  t.equal(bp.pollMeanUs, 80);
});

t.test('a round trip counts at most SAMPLE_MAX_US (a retransmission is not the mode\'s doing)', async (t) => {
  const bp = new BusyPoll(200);
  for (let i = 0; i < EPOCH_BLOCKS - 1; i++) bp.sample(100);
  bp.sample(1_000_000);
  t.equal(bp.sleepMeanUs, (100 * (EPOCH_BLOCKS - 1) + SAMPLE_MAX_US) / EPOCH_BLOCKS);
  bp.sample(-5);
  t.equal(bp.pollMeanUs, 0, 'a negative sample counts as 0, no epoch ends on it');
});

t.test('a window polls until its end, and ends at once when the thread was descheduled', async (t) => {
  const bp = new BusyPoll(200);
  t.equal(bp.turn(1_010, 1_000, 1_200), TurnOutcome.poll);
  t.equal(bp.turn(1_199, 1_190, 1_200), TurnOutcome.poll);
  t.equal(bp.turn(1_200, 1_199, 1_200), TurnOutcome.ended);
  t.equal(bp.misses, 1);
  t.equal(bp.turn(1_000 + PREEMPTED_US + 1, 1_000, 10_000), TurnOutcome.preempted, 'a turn longer than PREEMPTED_US');
  t.equal(bp.preemptions, 1);
});

t.test('property: a window is never longer than maxUs, and only with one transfer', async (t) => {
  fc.assert(fc.property(
    fc.integer({ min: 0, max: 2000 }),
    fc.array(fc.tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 5000 })), { maxLength: 3000 }),
    (maxUs, steps) => {
      const bp = new BusyPoll(maxUs);
      let now = 0;
      for (const [transfers, rtt] of steps) {
        now += rtt;
        const end = bp.open(now, transfers);
        if (end !== 0 && (transfers !== 1 || maxUs === 0 || end - now > maxUs || end <= now)) return false;
        bp.sample(rtt);
        if (bp.cycleEpochs < CYCLE_EPOCHS || bp.cycleEpochs > CYCLE_EPOCHS_MAX) return false;
      }
      return true;
    },
  ));
  t.pass('held for every sequence');
});
