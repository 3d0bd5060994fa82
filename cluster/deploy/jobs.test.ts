// The job runner's change feed that `lanctl deploy` long-polls instead of polling every 300 ms: a
// waiter wakes as soon as the job changes (an entry applied, live progress), or when its wait ends.
import t from 'tap';
import { JobRunner } from './jobs.js';
import { Fsm } from '../fsm.js';
import { MemoryStateLog } from '../state-log.js';
import { createLogger } from '../../lib/log.js';
import { systemClock } from '../../lib/clock.js';
import { deployConfig } from './config.js';

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
