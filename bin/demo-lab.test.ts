import t from 'tap';
import { getEventListeners } from 'node:events';
import { raceAbort } from './demo-lab.js';

// The lab demo waits on each step with Ctrl-C able to end it: a wait that is over leaves no abort
// listener behind (eleven of them printed Node's MaxListenersExceededWarning in the middle of the
// demo's step 10), and an abort still ends a wait that is not over.

t.test('a settled wait removes its abort listener; an abort ends a pending one', async (t) => {
  const controller = new AbortController();
  for (let i = 0; i < 20; i++) await raceAbort(Promise.resolve(i), controller.signal);
  await raceAbort(Promise.reject(new Error('step failed')), controller.signal).catch(() => undefined);
  t.equal(getEventListeners(controller.signal, 'abort').length, 0, 'no listener left after 21 waits');
  const pending = raceAbort(new Promise(() => undefined), controller.signal);
  controller.abort();
  await t.rejects(pending, /interrupted \(Ctrl-C\)/);
  await t.rejects(raceAbort(Promise.resolve(1), controller.signal), /interrupted/, 'after Ctrl-C nothing more is waited for');
});
