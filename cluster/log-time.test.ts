import t from 'tap';
import { silentLogger } from '../lib/log.js';
import { ManualClock } from '../test/support/manual-clock.js';
import { LogClock } from './log-time.js';

// Log time on a leader whose wall clock is stepped (`date -s`, NTP stepping a Pi): stamps and
// now() follow the monotonic clock from the term's anchor, slewing toward the wall clock at 1 s a
// minute, and never go back.

const HOUR = 3_600_000;

t.test('a step of +1 h or -1 h moves stamps and now() by the slew only', async (t) => {
  const clock = new ManualClock(Date.UTC(2026, 0, 1), 1000);
  const lc = new LogClock(clock, silentLogger, 'test.clock_jump');
  const start = lc.stamp(3, 0);
  t.equal(start, clock.wallMs(), 'anchored on the wall clock at the first stamp of the term');
  clock.advance(1000);
  clock.jumpWall(HOUR);
  t.equal(lc.now(3, start), start + 1000, 'now() right after the step: monotonic time since the anchor');
  clock.advance(6000);
  const ahead = lc.stamp(3, start);
  t.ok(ahead - start >= 7000 && ahead - start <= 7000 + 7000 / 60 + 1, `7 s later the stamp moved 7 s plus at most the slew (${ahead - start} ms)`);
  t.ok(Math.abs(lc.now(3, ahead) - ahead) <= 1, 'now() agrees with the stamp');
  clock.jumpWall(-2 * HOUR);
  clock.advance(6000);
  const behind = lc.stamp(3, ahead);
  t.ok(behind >= ahead, 'a step back never takes log time back');
  t.ok(behind - ahead <= 6000 && behind - ahead >= 6000 - 6000 / 60 - 1, `and it slows by the slew only (${behind - ahead} ms in 6 s)`);
  t.ok(lc.now(3, behind) >= behind, 'now() never goes below the last stamp');
});

t.test('now() before the first stamp of a term: the newer of the wall clock and the log', async (t) => {
  const clock = new ManualClock(Date.UTC(2026, 0, 1), 1000);
  const lc = new LogClock(clock, silentLogger, 'test.clock_jump');
  t.equal(lc.now(1, 0), clock.wallMs(), 'a follower: the wall clock');
  t.equal(lc.now(1, clock.wallMs() + 5000), clock.wallMs() + 5000, 'never before the log\'s last time');
  const s = lc.stamp(1, 0);
  clock.jumpWall(HOUR);
  t.equal(lc.now(1, s), s, 'the term it stamps in: the anchor, not the stepped wall clock');
  t.equal(lc.now(2, s), clock.wallMs(), 'another term (it lost leadership): the wall clock again');
});

t.test('a leader elected while its own clock is wrong anchors on the quorum\'s clock', async (t) => {
  const clock = new ManualClock(Date.UTC(2026, 0, 1), 1000);
  const lastAt = clock.wallMs() - 500; // the previous leader's last stamp, on the right time
  clock.jumpWall(HOUR); // this member's clock is an hour ahead before it wins
  const alone = new LogClock(clock, silentLogger, 'test.clock_jump');
  t.equal(alone.stamp(5, lastAt), clock.wallMs(), 'without peers heard: its own clock (a lease would end an hour early)');
  let offsets: number[] = [-HOUR, -HOUR + 40];
  const lc = new LogClock(clock, silentLogger, 'test.clock_jump');
  lc.usePeerOffsets(() => offsets);
  const s = lc.stamp(5, lastAt);
  t.ok(Math.abs(s - (clock.wallMs() - HOUR)) <= 40, `both peers an hour behind it: the quorum's time (${s - (clock.wallMs() - HOUR)} ms off the peers')`);
  clock.advance(60_000);
  const later = lc.stamp(5, s);
  t.ok(Math.abs(later - s - 60_000) <= 50, 'and it is not slewed toward its own clock afterwards');
  offsets = [-HOUR];
  const one = new LogClock(clock, silentLogger, 'test.clock_jump');
  one.usePeerOffsets(() => offsets);
  t.equal(one.stamp(6, later), Math.max(later, clock.wallMs() - HOUR), 'one peer heard, the two an hour apart: the earlier clock (leases end late, never early)');
  offsets = [HOUR, 0];
  const right = new LogClock(clock, silentLogger, 'test.clock_jump');
  right.usePeerOffsets(() => offsets);
  t.equal(right.stamp(7, 0), clock.wallMs(), 'one peer wrong, the other agreeing with us: our clock');
  offsets = [HOUR];
  t.equal(right.wallMs(), clock.wallMs(), 'only the wrong peer heard: the earlier clock, ours');
});
