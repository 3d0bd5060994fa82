// Proves the gap arithmetic of a takeover from made-up monotonic times: a planned transfer counts
// from TimeoutNow, a crash from the last heartbeat heard (detection, pre-vote, vote), and the VIP's
// own steps (lease wait, ip addr, sockets bound, first GARP) follow; the parts add up to the total.
import t from 'tap';
import { formatParts, takeoverReport } from './takeover.js';

const marks = { decidedAt: 1030, addressAt: 1036, boundAt: 1038, garpAt: 1041 };

t.test('a planned transfer counts from TimeoutNow', async (t) => {
  const r = takeoverReport({ heardLeaderAt: 900, timeoutNowAt: 1000, preCandidateAt: null, candidateAt: 1000, leaderAt: 1012 }, marks);
  t.equal(r.trigger, 'transfer');
  t.same(r.parts, [['vote', 12], ['lease wait', 18], ['ip addr', 6], ['sockets bound', 2], ['first GARP', 3]]);
  t.equal(r.totalMs, 41);
  t.equal(r.parts.reduce((s, [, v]) => s + v, 0), r.totalMs, 'parts add up');
  t.equal(formatParts(r.parts, r.totalMs), 'vote 12 + lease wait 18 + ip addr 6 + sockets bound 2 + first GARP 3 = 41 ms');
});

t.test('the old leader heartbeats while the transfer runs: still a transfer, counted from TimeoutNow', async (t) => {
  const r = takeoverReport({ heardLeaderAt: 1005, timeoutNowAt: 1000, preCandidateAt: 400, candidateAt: 1001, leaderAt: 1012 }, marks);
  t.equal(r.trigger, 'transfer');
  t.same(r.parts[0], ['vote', 12]);
  t.equal(r.totalMs, 41);
});

t.test('a crash counts from the last heartbeat heard: detection, pre-vote, vote', async (t) => {
  const r = takeoverReport({ heardLeaderAt: 200, timeoutNowAt: 50, preCandidateAt: 900, candidateAt: 910, leaderAt: 1012 }, marks);
  t.equal(r.trigger, 'election', 'a TimeoutNow before the pre-vote is not the trigger');
  t.same(r.parts.slice(0, 3), [['detection', 700], ['pre-vote', 10], ['vote', 102]]);
  t.equal(r.totalMs, 841);
  t.equal(r.parts.reduce((s, [, v]) => s + v, 0), r.totalMs);
});

t.test('a TimeoutNow from long ago does not make it a transfer', async (t) => {
  const r = takeoverReport({ heardLeaderAt: 9000, timeoutNowAt: 1, preCandidateAt: 9600, candidateAt: 9605, leaderAt: 9612 }, { decidedAt: 9620, addressAt: 9625, boundAt: 9626, garpAt: 9627 });
  t.equal(r.trigger, 'election');
  t.equal(r.totalMs, 627);
});

t.test('no timeline at all (first leader of a fresh cluster): only the VIP steps', async (t) => {
  const r = takeoverReport({ heardLeaderAt: null, timeoutNowAt: null, preCandidateAt: null, candidateAt: null, leaderAt: null }, marks);
  t.same(r.parts.map(([n]) => n), ['lease wait', 'ip addr', 'sockets bound', 'first GARP']);
  t.equal(r.totalMs, 11);
});

t.test('a re-acquire in the same leadership counts from the loss, not from the election', async (t) => {
  // Leader since 1000; the lease lapsed at 25600 (VIP released), valid again at 25630: before, this read "lease wait 24630".
  const timeline = { heardLeaderAt: 700, timeoutNowAt: null, preCandidateAt: 900, candidateAt: 950, leaderAt: 1000 };
  const again = { decidedAt: 25630, addressAt: 25636, boundAt: 25638, garpAt: 25641 };
  const r = takeoverReport(timeline, again, 25600);
  t.equal(r.trigger, 're-acquire');
  t.same(r.parts, [['lease lapse', 30], ['ip addr', 6], ['sockets bound', 2], ['first GARP', 3]]);
  t.equal(r.totalMs, 41);
  t.equal(r.parts.reduce((s, [, v]) => s + v, 0), r.totalMs, 'parts add up');
  t.notOk(r.parts.some(([, v]) => v > 1000), 'no part spans the whole term');
});

t.test('a VIP lost before this leadership began does not make the next takeover a re-acquire', async (t) => {
  const r = takeoverReport({ heardLeaderAt: 200, timeoutNowAt: null, preCandidateAt: 900, candidateAt: 910, leaderAt: 1012 }, marks, 150);
  t.equal(r.trigger, 'election');
  t.same(r.parts.slice(0, 3), [['detection', 700], ['pre-vote', 10], ['vote', 102]]);
  t.equal(r.totalMs, 841);
});
