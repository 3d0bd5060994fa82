import t from 'tap';
import { systemClock, timerDelayMs } from './clock.js';

// timerDelayMs: a timer armed with it does not fire before its due time on the real clock, which a
// delay of exactly dueAt - now did about one time in four (Node's loop clock lags performance.now()).

t.test('the delay rounds up and adds a millisecond; at least 1 ms for a time already past', async (t) => {
  t.equal(timerDelayMs(140, 100), 41);
  t.equal(timerDelayMs(140.2, 100), 42);
  t.equal(timerDelayMs(100, 100.5), 1);
  t.equal(timerDelayMs(50, 100), 1);
});

t.test('timers armed with it are not early on the real clock; with the bare difference some are', async (t) => {
  const run = (delay: (dueAt: number, now: number) => number, n: number): Promise<number> => new Promise((resolve) => {
    let early = 0, done = 0;
    const arm = (): void => {
      const dueAt = performance.now() + 20;
      setTimeout(() => {
        if (performance.now() < dueAt) early++;
        if (++done < n) arm(); else resolve(early);
      }, delay(dueAt, performance.now()));
    };
    arm();
  });
  const bare = await run((dueAt, now) => Math.max(0, dueAt - now), 60);
  const padded = await run(timerDelayMs, 60);
  // A loop turn that runs long before the timer is armed can still make one early: a margin of one.
  t.ok(padded <= 1, `armed with timerDelayMs: ${padded} of 60 early (the bare difference: ${bare})`);
  t.comment(`bare difference: ${bare} of 60 fired before their due time`);
});

t.test('the monotonic clock does not read the global `performance` (a getter: slow on the DNS hit path)', async (t) => {
  const own = Object.getOwnPropertyDescriptor(globalThis, 'performance')!;
  let reads = 0;
  Object.defineProperty(globalThis, 'performance', { configurable: true, get: () => { reads++; return own.get ? own.get.call(globalThis) : own.value; } });
  try {
    const a = systemClock.monotonicMs();
    const b = systemClock.monotonicMs();
    t.ok(b >= a, 'never steps backwards');
  } finally {
    Object.defineProperty(globalThis, 'performance', own);
  }
  t.equal(reads, 0);
});
