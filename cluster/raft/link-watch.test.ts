import t from 'tap';
import { LinkWatch } from './link-watch.js';
import { LINK_DEAD_MIN_MS, linkLiveness, type LinkLiveness, timerLimits, raftTimers, timersFromBudget } from '../timers.js';

t.test('a link is dead only once nothing was heard for longer than the deadline', async (t) => {
  const w = new LinkWatch({ pingMs: 100, deadMs: 1000, dialMs: 1000 }, 5000);
  w.sent(5000);
  t.equal(w.due(5999), 'ping', 'idle: a ping is due, the link is not dead');
  t.equal(w.due(6000), 'ping', 'exactly at the deadline: not yet');
  t.equal(w.due(6001), 'dead', 'past it: dead');
  w.heard(5990);
  t.equal(w.due(6001), 'ping', 'bytes heard late in the window move the deadline');
  t.equal(w.due(6991), 'dead');
});

t.test("this end's own pings and sends never count as hearing the peer", async (t) => {
  const w = new LinkWatch({ pingMs: 100, deadMs: 1000, dialMs: 1000 }, 0);
  for (let now = 100; now <= 1000; now += 100) {
    t.equal(w.due(now), 'ping', `at ${now}: idle, ping`);
    w.sent(now);
    t.equal(w.due(now), 'ok', `at ${now}: just sent, nothing due`);
  }
  t.equal(w.due(1001), 'dead', 'a ping every 100 ms from this end kept nothing alive');
  t.equal(w.silentMs(1001), 1001);
});

/** How often a receiver checking every 10 ms finds the link dead while its peer pings every pingMs but stalls once for `lateMs` (what it would have sent meanwhile arrives at the end). */
function deadChecks(timing: LinkLiveness, lateMs: number): number {
  const w = new LinkWatch(timing, 0);
  const arrivals = [];
  for (let at = timing.pingMs; at < 20 * timing.deadMs; at += timing.pingMs) {
    const stall = 4 * timing.pingMs - 1; // just before a ping was due: the worst case
    arrivals.push(at > stall && at < stall + lateMs ? stall + lateMs : at);
  }
  arrivals.sort((x, y) => x - y);
  let dead = 0;
  for (let now = 0, i = 0; now < 20 * timing.deadMs; now += 10) {
    while (i < arrivals.length && arrivals[i]! <= now) w.heard(arrivals[i++]!);
    if (w.due(now) === 'dead') dead++;
  }
  return dead;
}

t.test('a link whose peer pings on time, or late by any pause shorter than deadMs - pingMs, stays up', async (t) => {
  const timing = linkLiveness(raftTimers(undefined));
  t.equal(deadChecks(timing, 0), 0, 'pings on time');
  t.equal(deadChecks(timing, 100), 0, 'the peer stalls 100 ms (GC on a Pi: 50-100 ms)');
  t.equal(deadChecks(timing, timing.deadMs - timing.pingMs - 10), 0, `the peer stalls ${timing.deadMs - timing.pingMs - 10} ms`);
  t.ok(deadChecks(timing, timing.deadMs - timing.pingMs + 20) > 0, 'a stall that leaves the link silent past the deadline ends it');
});

t.test('the deadline derives from the election timeout, with a floor', async (t) => {
  // The ping follows the deadline (a quarter of it), not E: at E / 4 an idle link end pinged 16 times a second.
  t.same(linkLiveness(raftTimers(undefined)), { pingMs: 250, deadMs: 1000, dialMs: 1000 }, 'default timers (E 250 ms: the 1 s floor)');
  t.same(linkLiveness(raftTimers({ electionTimeout: 500 })), { pingMs: 250, deadMs: 1000, dialMs: 1000 }, 'E 500 ms');
  t.same(linkLiveness(raftTimers({ electionTimeout: 1500 })), { pingMs: 750, deadMs: 3000, dialMs: 1000 }, 'E 1.5 s: 2 E');
  const short = linkLiveness(timersFromBudget(450));
  t.equal(short.deadMs, LINK_DEAD_MIN_MS, 'a short budget keeps the 1 s floor');
  t.equal(short.pingMs, LINK_DEAD_MIN_MS / 4, 'and pings four times per deadline');
  for (const e of [200, 500, 1000, 1500, 5000]) {
    const t1 = raftTimers({ electionTimeout: e });
    const l = linkLiveness(t1);
    t.ok(l.deadMs >= 2 * t1.electionMs, `E ${e}: not closed before Raft itself gave up on the peer`);
    t.ok(l.deadMs - l.pingMs > timerLimits(t1).pauseToleranceMs, `E ${e}: rides out longer pauses than the leader lease does`);
  }
});

t.test('nextDueAt: the earliest moment a ping or the deadline can fall due; sends and bytes heard only move it later', async (t) => {
  const w = new LinkWatch({ pingMs: 250, deadMs: 1000, dialMs: 1000 }, 0);
  t.equal(w.nextDueAt(), 250, 'a ping first');
  t.equal(w.due(249), 'ok', 'nothing due before it');
  t.equal(w.due(250), 'ping', 'due at it');
  w.sent(250);
  t.equal(w.nextDueAt(), 500, 'a send moves the ping');
  for (let now = 500; now <= 1000; now += 250) w.sent(now);
  t.equal(w.nextDueAt(), 1001, 'pinging without hearing anything: the deadline comes first');
  t.equal(w.due(1000, 0), 'ok', 'not dead at the deadline');
  t.equal(w.due(1001), 'dead', 'dead just past it');
  w.heard(900);
  t.equal(w.nextDueAt(), 1250, 'bytes heard move the deadline');
});

t.test('a ping due within the early allowance is sent now (one wake-up serves several links)', async (t) => {
  const w = new LinkWatch({ pingMs: 250, deadMs: 1000, dialMs: 1000 }, 0);
  t.equal(w.due(200), 'ok', 'not due by itself at 200 ms');
  t.equal(w.due(200, 62), 'ping', 'due with 62 ms early allowance');
  t.equal(w.due(180, 62), 'ok', 'but not earlier than that');
});
