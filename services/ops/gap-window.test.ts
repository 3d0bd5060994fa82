import t from 'tap';
import { GapWindow } from './gap-window.js';

// The probe window's bookkeeping: the first answer per protocol counts from the start, later
// answers change nothing, `vip` is the earliest answer of any protocol, and a protocol that never
// answered says so (null) instead of a number.

t.test('first answers count; vip is the earliest; a silent protocol is null', async (t) => {
  const w = new GapWindow('transfer', 1000, 11_000, ['dns', 'ntp', 'tftp']);
  for (let i = 0; i < 5; i++) { w.sent('dns'); w.sent('ntp'); }
  w.sent('tftp');
  t.notOk(w.done(1500));
  t.ok(w.answered('ntp', 1420));
  t.notOk(w.answered('ntp', 1300), 'a later (or reordered) answer of the same protocol does not count');
  t.ok(w.answered('dns', 1480));
  t.notOk(w.answered('dhcp' as never, 1100), 'only the protocols of the window');
  t.notOk(w.done(1500), 'tftp has not answered yet');
  t.ok(w.done(11_000), 'the deadline closes it');
  const r = w.result({ at: 'a', from: 'lan-a', target: '10.0.0.1', since: 'VIP released here' });
  t.same(r.gaps, [
    { protocol: 'vip', seconds: 0.42, probes: 11 },
    { protocol: 'dns', seconds: 0.48, probes: 5 },
    { protocol: 'ntp', seconds: 0.42, probes: 5 },
    { protocol: 'tftp', seconds: null, probes: 1 },
  ]);
  t.equal(r.trigger, 'transfer');
});

t.test('every protocol answered: done before the deadline; an answer before the start counts as 0', async (t) => {
  const w = new GapWindow('election', 500, 10_500, ['dns']);
  t.ok(w.answered('dns', 400));
  t.ok(w.done(600));
  t.same(w.result({ at: 'a', from: 'b', target: 'c', since: 'd' }).gaps.map((g) => g.seconds), [0, 0]);
});
