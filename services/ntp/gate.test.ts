import t from 'tap';
import { admit, admitHeader, RateLimiter, DEFAULT_RATE_LIMIT } from './gate.js';
import { seededRandom } from '../../lib/random.js';
import { seedFromEnv } from '../../test/support/seeded.js';

// The gate: only mode 3 with versions 1-4 passes (6 and 7, the amplifiers, never); the per-client
// limiter (chrony's defaults of interval 3, burst 8, leak 2 here) allows a burst of 8 then one per
// 8 s, answers about 1 in 4 limited requests with a KoD, keeps clients apart and its table bounded;
// the default lets a chrony client polling every second through and limits one polling 4 times a second.

/** chrony's `ratelimit` defaults, for the limiter's mechanics in round numbers. */
const CHRONY_RATE_LIMIT = { interval: 3, burst: 8, leak: 2 };

t.test('the default: a client polling every second (chronyd minpoll 0) is never limited; one polling 4 times a second is', async (t) => {
  const random = seededRandom(seedFromEnv(92));
  const limiter = new RateLimiter(DEFAULT_RATE_LIMIT);
  const request = { mode: 3, version: 4 };
  // chronyd's iburst start (4 requests 2 s apart, the first few closer) then 10 minutes at 1 s, with some jitter.
  const verdicts = { answer: 0, kod: 0, drop: 0 };
  let now = 5_000;
  for (let i = 0; i < 4; i++, now += 250) verdicts[admit(request, '10.0.0.20', now, limiter, random).kind]++;
  for (let i = 0; i < 600; i++, now += 1000 + (i % 2 === 0 ? -150 : 150)) verdicts[admit(request, '10.0.0.20', now, limiter, random).kind]++;
  t.same(verdicts, { answer: 604, kod: 0, drop: 0 }, 'every poll answered, no KoD');
  const fast = { answer: 0, kod: 0, drop: 0 };
  for (let i = 0; i < 240; i++, now += 250) fast[admit(request, '10.0.0.21', now, limiter, random).kind]++;
  t.ok(fast.answer < 140 && fast.kod > 0, `minpoll -2 (4/s) for a minute: limited (${JSON.stringify(fast)})`);
});

t.test('modes and versions: a table', async (t) => {
  for (let mode = 0; mode <= 7; mode++) {
    for (let version = 0; version <= 7; version++) {
      const want = mode === 3 && version >= 1 && version <= 4 ? 'answer' : 'drop';
      t.equal(admitHeader({ mode, version }).kind, want, `mode ${mode} version ${version} -> ${want}`);
    }
  }
  t.same(admitHeader({ mode: 6, version: 2 }), { kind: 'drop', reason: 'mode' }, 'mode 6 (ntpq readvar) dropped');
  t.same(admitHeader({ mode: 7, version: 2 }), { kind: 'drop', reason: 'mode' }, 'mode 7 (monlist) dropped');
  t.same(admitHeader({ mode: 3, version: 5 }), { kind: 'drop', reason: 'version' });
});

t.test('burst, then one per interval; KoD for about 1 in 2^leak limited requests', async (t) => {
  const random = seededRandom(seedFromEnv(91));
  const limiter = new RateLimiter(CHRONY_RATE_LIMIT);
  const request = { mode: 3, version: 4 };
  let now = 1000;
  const verdicts = Array.from({ length: 8 }, () => admit(request, '10.0.0.9', now, limiter, random).kind);
  t.same(verdicts, Array(8).fill('answer'), 'a burst of 8 is answered');
  const counts = { answer: 0, kod: 0, drop: 0 };
  for (let i = 0; i < 4000; i++) counts[admit(request, '10.0.0.9', now, limiter, random).kind]++;
  t.equal(counts.answer, 0, 'then nothing is answered in full');
  t.ok(counts.kod > 800 && counts.kod < 1200, `about a quarter get a KoD (${counts.kod}/4000)`);
  t.equal(admit(request, '10.0.0.10', now, limiter, random).kind, 'answer', 'another client is not affected');
  now += 8000;
  t.equal(admit(request, '10.0.0.9', now, limiter, random).kind, 'answer', 'one token after 8 s');
  t.not(admit(request, '10.0.0.9', now, limiter, random).kind, 'answer', 'and only one');
  now += 8000 * 100;
  const again = Array.from({ length: 9 }, () => admit(request, '10.0.0.9', now, limiter, random).kind);
  t.same(again.slice(0, 8), Array(8).fill('answer'), 'a long pause refills the burst, no more');
  t.not(again[8], 'answer');
  t.equal(admit(request, '10.0.0.9', now - 50_000, limiter, random).kind !== 'answer', true, 'a clock going backwards earns nothing');
  t.equal(admit(request, '10.0.0.11', now, null, random).kind, 'answer', 'no limiter: always answered');
});

t.test('the client table is bounded', async (t) => {
  const random = seededRandom(1);
  const limiter = new RateLimiter(CHRONY_RATE_LIMIT, 100);
  for (let i = 0; i < 1000; i++) limiter.admit(`10.0.${i >> 8}.${i & 255}`, 0, random);
  t.equal(limiter.clientCount, 100);
});
