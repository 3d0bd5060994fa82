import t from 'tap';
import { AckStages, ACK_STAGES } from './ack-stages.js';

// The per-stage rings: median, p99 and mean of what was recorded; a stage never recorded reads null;
// a negative duration (clock noise) counts as 0; the ring keeps the last 4096 while the mean covers all.

t.test('summary gives median, p99 and mean per stage', async (t) => {
  const s = new AckStages();
  for (let i = 1; i <= 100; i++) s.record('persist', i);
  s.record('decode', -0.5);
  const sum = s.summary();
  t.same(Object.keys(sum), [...ACK_STAGES]);
  t.same(sum.persist, { p50Ms: 50, p99Ms: 99, meanMs: 50.5 });
  t.same(sum.decode, { p50Ms: 0, p99Ms: 0, meanMs: 0 }, 'negative counts as 0');
  t.same(sum.queue, { p50Ms: null, p99Ms: null, meanMs: null }, 'never recorded');
});

t.test('the ring keeps the last 4096; the mean covers everything', async (t) => {
  const s = new AckStages();
  for (let i = 0; i < 4096; i++) s.record('total', 1000);
  for (let i = 0; i < 4096; i++) s.record('total', 1);
  t.same(s.summary().total, { p50Ms: 1, p99Ms: 1, meanMs: 500.5 });
});
