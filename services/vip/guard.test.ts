// Proves the bash guard's timing protocol with a real bash (no root: the `ip addr del` it runs
// targets an interface that does not exist and fails quietly): a hold that is not refreshed in
// time expires and is reported once; holds refreshed faster than they run out never expire; a drop
// disarms; a clean stop after a drop reports nothing.
import t from 'tap';
import { guardUnavailable, startGuard } from './guard.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

t.test('hold, refresh, expiry, drop', async (t) => {
  const missing = guardUnavailable();
  if (missing !== null) { t.comment(`SKIPPED: ${missing}`); t.pass('skipped'); return; }
  let expired = 0, exited = 0, renewFailed = 0;
  const guard = startGuard('10.255.255.1/32', 'lhnosuchif0', { expired: () => { expired++; }, exited: () => { exited++; }, renewFailed: () => { renewFailed++; } });
  const until = async (check: () => boolean, ms: number): Promise<void> => {
    for (let waited = 0; waited < ms && !check(); waited += 20) await sleep(20);
  };
  try {
    // Generous holds: on a loaded machine a timer can be late by hundreds of ms.
    for (let i = 0; i < 10; i++) { guard.hold(3000); await sleep(30); }
    t.equal(expired, 0, 'holds refreshed long before they run out never expire');
    guard.hold(100);
    await until(() => expired > 0, 10_000);
    t.equal(expired, 1, 'a hold that was not refreshed expired');
    await sleep(300);
    t.equal(expired, 1, 'and was reported once');
    guard.hold(300);
    guard.drop();
    await sleep(1000);
    t.equal(expired, 1, 'a drop disarms');
    guard.hold(60_000);
    // Renewals and GARPs run in the guard while armed; against a missing interface `ip` fails: reported.
    t.equal(guard.renew(2), true, 'an armed guard takes a renewal');
    await until(() => renewFailed > 0, 10_000);
    t.equal(renewFailed, 1, 'and reports that it failed');
    t.equal(guard.garp(), true, 'and a GARP');
    guard.drop();
    t.equal(guard.renew(2), false, 'a disarmed guard renews nothing');
    t.equal(guard.garp(), false, 'and sends no GARP');
    // Commands between holds do not stretch a hold: it still runs out on time.
    guard.hold(300);
    for (let i = 0; i < 8; i++) { guard.garp(); await sleep(100); }
    await until(() => expired > 1, 10_000);
    t.equal(expired, 2, 'a hold with GARPs sent after it still expired');
    guard.hold(60_000);
  } finally {
    await guard.stop();
  }
  t.equal(expired, 2, 'a clean stop disarms before it closes');
  t.equal(exited, 0, 'the guard never died on its own');
});
