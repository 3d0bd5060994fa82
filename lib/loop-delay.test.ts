import t from 'tap';
import { BUSY_SAMPLE_MS, IDLE_SAMPLE_MS, LoopDelayProbe } from './loop-delay.js';

// The probe samples every second while the loop idles, every 10 ms once it is busy, and back; a
// stall of the loop shows as lateness whichever the mode.

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const burn = (ms: number): void => { for (const end = performance.now() + ms; performance.now() < end;); };

t.test('idle: one sample a second; busy: fine samples within a second or two, stalls measured; idle again: coarse', async (t) => {
  const probe = new LoopDelayProbe();
  probe.start();
  t.teardown(() => probe.stop());
  await sleep(2.5 * IDLE_SAMPLE_MS);
  const idle = probe.reading();
  t.equal(idle.busy, false, 'an idle loop is not busy');
  t.ok(idle.samples >= 1 && idle.samples <= 3, `about one sample a second while idle (${idle.samples} in 2.5 s)`);
  // Busy: most of each 20 ms in use, for 2.5 s.
  for (const end = performance.now() + 2500; performance.now() < end;) { burn(15); await sleep(5); }
  const busy = probe.reading();
  t.equal(busy.busy, true, 'a loop in use most of the time is busy');
  t.ok(busy.samples - idle.samples > 20, `fine samples once busy (${busy.samples - idle.samples} more; every ${BUSY_SAMPLE_MS} ms when on time)`);
  burn(200);
  await sleep(30);
  t.ok(probe.reading().maxMs >= 150, `a 200 ms stall shows (max ${probe.reading().maxMs} ms)`);
  await sleep(2.5 * IDLE_SAMPLE_MS);
  t.equal(probe.reading().busy, false, 'idle again');
  probe.stop();
  t.notOk(probe.running, 'stopped');
});
