// Proves the VIP core's timing rules with a manual clock (acquire, renew cadence, GARP schedule,
// release on lease loss, strict-mode wait, retry after a failed acquire), and, as a seeded property
// over random lease/time sequences with a model of the kernel's address lifetime, that the address
// is never held while the lease is invalid and that a hung process loses it within the lifetime.
import t from 'tap';
import fc from 'fast-check';
import { ManualClock } from '../../test/support/manual-clock.js';
import { seedFromEnv } from '../../test/support/seeded.js';
import {
  initialVipState, kernelExpiryMs, nextGarpOffset, onAcquireFailed, onStop, onTick, vipTimings,
  type VipAction, type VipState, type VipTimings,
} from './core.js';

const fast = vipTimings('fast', 2);

/** Drives the core every `stepMs` for `forMs` with a fixed lease verdict; returns actions with their times. */
function drive(state: VipState, clock: ManualClock, leaseValid: boolean, forMs: number, stepMs = 10, timings: VipTimings = fast): [VipState, Array<VipAction & { at: number }>] {
  const out: Array<VipAction & { at: number }> = [];
  const end = clock.monotonicMs() + forMs;
  let s = state;
  while (clock.monotonicMs() < end) {
    const [next, actions] = onTick(s, { nowMs: clock.monotonicMs(), leaseValid }, timings);
    s = next;
    for (const a of actions) out.push({ ...a, at: clock.monotonicMs() });
    clock.advance(stepMs);
  }
  return [s, out];
}

t.test('first tick as leader acquires with the configured lifetime and sends the first GARP', async (t) => {
  const [s, actions] = onTick(initialVipState, { nowMs: 5000, leaseValid: true }, vipTimings('fast', 3));
  t.same(actions, [{ kind: 'acquire', lifetimeS: 3 }, { kind: 'garp', sequence: 1 }]);
  t.equal(s.held, true);
  t.equal(s.since, 5000);
  t.equal(kernelExpiryMs(s, vipTimings('fast', 3)), 8000, 'the kernel keeps it lifetime after the last ip addr replace');
});

t.test('not leader: nothing happens', async (t) => {
  const [s, actions] = onTick(initialVipState, { nowMs: 1, leaseValid: false }, fast);
  t.same(actions, []);
  t.equal(s.held, false);
});

t.test('renews every 500 ms while the lease holds, never more often', async (t) => {
  const clock = new ManualClock();
  const start = clock.monotonicMs();
  const [s, actions] = drive(initialVipState, clock, true, 5000, 7);
  const renewals = actions.filter((a) => a.kind === 'renew').map((a) => a.at - start);
  t.equal(renewals.length, 9, 'about one per 500 ms over 5 s (7 ms ticks land a little late)');
  let previous = 0;
  for (const at of renewals) {
    t.ok(at - previous >= 500 && at - previous < 507, `renewal ${at - previous} ms after the previous one`);
    previous = at;
  }
  t.equal(s.renewals, 9);
  t.equal(actions.filter((a) => a.kind === 'acquire').length, 1, 'acquired once');
});

t.test('GARPs at 0, 100, 500 ms, every 200 ms to 2.5 s, then every 30 s', async (t) => {
  const clock = new ManualClock();
  const start = clock.monotonicMs();
  const [, actions] = drive(initialVipState, clock, true, 65_000, 10);
  const garps = actions.filter((a) => a.kind === 'garp').map((a) => a.at - start);
  t.same(garps, [0, 100, 500, 700, 900, 1100, 1300, 1500, 1700, 1900, 2100, 2300, 2500, 32_500, 62_500]);
});

t.test('a late tick skips missed GARP slots instead of bursting them', async (t) => {
  t.equal(nextGarpOffset(0, 0), 100);
  t.equal(nextGarpOffset(100, 1000), 1100, 'at 1000 ms the slots 500..1000 are gone; next is 1100');
  t.equal(nextGarpOffset(2500, 2500), 32_500);
  const [s1] = onTick(initialVipState, { nowMs: 0, leaseValid: true }, fast);
  const [, actions] = onTick(s1, { nowMs: 1050, leaseValid: true }, fast);
  t.same(actions.filter((a) => a.kind === 'garp').length, 1, 'one ARP for the whole stall');
});

t.test('lease loss releases at once; regaining it acquires again with a fresh GARP burst', async (t) => {
  const clock = new ManualClock();
  let [s] = drive(initialVipState, clock, true, 3000);
  const [lost, released] = onTick(s, { nowMs: clock.monotonicMs(), leaseValid: false }, fast);
  t.same(released, [{ kind: 'release', reason: 'lease-lost' }]);
  t.equal(lost.held, false);
  t.equal(lost.releases, 1);
  const [again, quiet] = onTick(lost, { nowMs: clock.monotonicMs() + 10, leaseValid: false }, fast);
  t.same(quiet, [], 'released once, not on every tick');
  clock.advance(1000);
  [s] = [again];
  const [, back] = drive(s, clock, true, 600);
  t.same(back.filter((a) => a.kind === 'garp').length, 3, 'GARPs at 0, 100, 500 ms again');
  t.equal(back[0]?.kind, 'acquire');
});

t.test('strict mode claims only lifetime + 200 ms after becoming leader', async (t) => {
  const strict = vipTimings('strict', 2);
  t.equal(strict.claimDelayMs, 2200);
  const clock = new ManualClock();
  const start = clock.monotonicMs();
  const [, actions] = drive(initialVipState, clock, true, 3000, 10, strict);
  const acquire = actions.find((a) => a.kind === 'acquire');
  t.equal(acquire?.at !== undefined ? acquire.at - start : -1, 2200);
  const clock2 = new ManualClock();
  let [s] = drive(initialVipState, clock2, true, 1500, 10, strict);
  [s] = onTick(s, { nowMs: clock2.monotonicMs(), leaseValid: false }, strict);
  clock2.advance(10);
  const [, later] = drive(s, clock2, true, 2100, 10, strict);
  t.notOk(later.some((a) => a.kind === 'acquire'), 'a break in leadership restarts the wait');
});

t.test('stop releases a held address, and does nothing otherwise', async (t) => {
  const [held] = onTick(initialVipState, { nowMs: 0, leaseValid: true }, fast);
  t.same(onStop(held)[1], [{ kind: 'release', reason: 'stop' }]);
  t.same(onStop(initialVipState)[1], []);
});

t.test('a failed acquire is cleaned up and retried after a second', async (t) => {
  const [held] = onTick(initialVipState, { nowMs: 0, leaseValid: true }, fast);
  const [failed, cleanup] = onAcquireFailed(held, 0);
  t.same(cleanup, [{ kind: 'release', reason: 'acquire-failed' }]);
  t.same(onTick(failed, { nowMs: 500, leaseValid: true }, fast)[1], [], 'no retry before 1 s');
  t.equal(onTick(failed, { nowMs: 1000, leaseValid: true }, fast)[1][0]?.kind, 'acquire');
});

t.test('property: never held while the lease is invalid; a hung holder loses it within the lifetime', async (t) => {
  const seed = seedFromEnv(4242);
  const step = fc.record({
    dtMs: fc.oneof(fc.integer({ min: 0, max: 60 }), fc.integer({ min: 0, max: 5000 })),
    leaseValid: fc.boolean(),
    event: fc.constantFrom('tick', 'tick', 'tick', 'tick', 'stop', 'acquire-failed'),
  });
  const timings = fc.constantFrom(vipTimings('fast', 2), vipTimings('strict', 2), vipTimings('fast', 1), vipTimings('fast', 5));
  fc.assert(fc.property(timings, fc.array(step, { maxLength: 200 }), (tm, steps) => {
    let s = initialVipState;
    let now = 0;
    // The kernel's view: the address is present until `expiresAt`, or gone after an `ip addr del`.
    let expiresAt = -Infinity;
    const kernelHas = (at: number): boolean => at < expiresAt;
    for (const { dtMs, leaseValid, event } of steps) {
      const before = now;
      now += dtMs;
      if (kernelHas(before) && expiresAt > before + tm.lifetimeMs) throw new Error('lifetime longer than configured');
      const [next, actions] = event === 'stop' ? onStop(s) : event === 'acquire-failed' ? onAcquireFailed(s, now) : onTick(s, { nowMs: now, leaseValid }, tm);
      for (const a of actions) {
        if (a.kind === 'acquire' || a.kind === 'renew') expiresAt = now + a.lifetimeS * 1000;
        if (a.kind === 'release') expiresAt = -Infinity;
        if ((a.kind === 'acquire' || a.kind === 'renew') && !leaseValid) throw new Error(`${a.kind} without a valid lease`);
      }
      s = next;
      if (event === 'tick' && !leaseValid && (s.held || kernelHas(now))) throw new Error(`held at ${now} with an invalid lease`);
      if (s.held && !kernelHas(now) && event === 'tick') throw new Error(`core says held but the kernel dropped it at ${now}`);
      if (!s.held && kernelHas(now)) throw new Error('released in the core but not in the kernel');
      // A process that stops running here (hung, SIGSTOP) keeps the address at most one lifetime more.
      if (s.held && kernelExpiryMs(s, tm) !== expiresAt) throw new Error('core and kernel disagree on the expiry');
      if (kernelHas(now) && expiresAt > now + tm.lifetimeMs) throw new Error('a hung holder would keep it past the lifetime');
    }
  }), { seed, numRuns: 3000 });
  t.pass(`3000 random sequences (LANHA_SEED=${seed})`);
});

t.test('degraded: held with the degraded flag while degraded mode claims it, renewed like a leader\'s, without the strict claim delay', async (t) => {
  const strict = vipTimings('strict', 2);
  let [s, actions] = onTick(initialVipState, { nowMs: 0, leaseValid: false, degraded: 'hold' }, strict);
  t.ok(s.held && s.degraded, 'acquired at once, flagged degraded');
  t.same(actions.map((a) => a.kind), ['acquire', 'garp']);
  [s, actions] = onTick(s, { nowMs: 600, leaseValid: false, degraded: 'hold' }, strict);
  t.ok(actions.some((a) => a.kind === 'renew'), 'renewed after 500 ms');
  t.ok(s.held && s.degraded);
});

t.test('degraded: let go at once when degraded mode ends (quorum back) or another MAC answers (always yields)', async (t) => {
  const [held] = onTick(initialVipState, { nowMs: 0, leaseValid: false, degraded: 'hold' }, fast);
  const [left, a1] = onTick(held, { nowMs: 20, leaseValid: false, degraded: 'off' }, fast);
  t.same(a1, [{ kind: 'release', reason: 'degraded-left' }]);
  t.notOk(left.held || left.degraded);
  const [yielded, a2] = onTick(held, { nowMs: 20, leaseValid: false, degraded: 'yield' }, fast);
  t.same(a2, [{ kind: 'release', reason: 'degraded-yield' }]);
  t.notOk(yielded.held);
  t.same(onTick(initialVipState, { nowMs: 0, leaseValid: false, degraded: 'yield' }, fast)[1], [], 'nothing to yield when not held');
});

t.test('degraded: a leader\'s lease takes a degraded holding over without a release; a leader\'s holding that loses its lease is let go even if degraded mode claims', async (t) => {
  const [held] = onTick(initialVipState, { nowMs: 0, leaseValid: false, degraded: 'hold' }, fast);
  const [leader, actions] = onTick(held, { nowMs: 20, leaseValid: true, degraded: 'off' }, fast);
  t.ok(leader.held && !leader.degraded, 'held, no longer degraded');
  t.notOk(actions.some((a) => a.kind === 'release' || a.kind === 'acquire'));
  const [lost, a2] = onTick(leader, { nowMs: 40, leaseValid: false, degraded: 'hold' }, fast);
  t.same(a2, [{ kind: 'release', reason: 'lease-lost' }]);
  const [again] = onTick(lost, { nowMs: 60, leaseValid: false, degraded: 'hold' }, fast);
  t.ok(again.held && again.degraded, 'then held again as a degraded holding of its own');
});

t.test('the hand-back: a leader held back does not add the VIP; a holding already made is kept', async (t) => {
  t.same(onTick(initialVipState, { nowMs: 0, leaseValid: true, degraded: 'off', heldBack: true }, fast), [{ ...initialVipState, leaderSince: 0 }, []], 'leader, held back: nothing');
  const [s, actions] = onTick(initialVipState, { nowMs: 20, leaseValid: true, degraded: 'off', heldBack: false }, fast);
  t.ok(s.held && actions.some((a) => a.kind === 'acquire'), 'the wait over: acquired');
  const [kept, a2] = onTick(s, { nowMs: 520, leaseValid: true, degraded: 'off', heldBack: true }, fast);
  t.ok(kept.held && !a2.some((a) => a.kind === 'release'), 'held back later: kept, renewed');
  const [deg] = onTick(initialVipState, { nowMs: 0, leaseValid: false, degraded: 'hold', heldBack: true }, fast);
  t.ok(deg.held && deg.degraded, 'a degraded claim is not a leader\'s: not held back');
});

t.test('without dhcp.degraded (no degraded input) a non-leader never holds it', async (t) => {
  const [s, actions] = onTick(initialVipState, { nowMs: 0, leaseValid: false }, fast);
  t.notOk(s.held);
  t.same(actions, []);
});
