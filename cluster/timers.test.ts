// The timers derived from cluster.failoverBudget (cluster/timers.ts): proven for every budget from
// the least one up to 10 s that they keep the three promises the VIP rests on: the worst-case
// failure detection plus the takeover allowance fits the budget; another member can win only after
// the old holder's guard deleted the VIP and had GUARD_WORK_MS to do it, with a 2 % clock-rate
// difference; the default 100 ms pause changes nothing. And the exact figures of a few budgets.
import t from 'tap';
import { defaultBudgetMs, DRIFT, GUARD_CLOCK_EARLY_MS, GUARD_MARGIN_MS, GUARD_WORK_MS, leastBudgetMs, RAFT_TICK_MS, raftTimers, TAKEOVER_ALLOWANCE_MS, timerLimits, timerProblems, timersFromBudget } from './timers.js';

t.test('the figures of a few budgets', async (t) => {
  t.same(timersFromBudget(450), { electionMs: 230, electionSpreadMs: 110, heartbeatMs: 30, leaseMs: 170 }, '450 ms');
  t.same(timersFromBudget(1000), { electionMs: 600, electionSpreadMs: 300, heartbeatMs: 100, leaseMs: 530 }, '1 s');
  t.equal(leastBudgetMs(100), 480, 'the least budget that rides out 100 ms pauses');
  t.equal(timerLimits(timersFromBudget(450)).pauseToleranceMs, 90, '450 ms: 20 ms less than the lease alone gives, for the guard\'s coarse clock');
  t.equal(GUARD_CLOCK_EARLY_MS, 20, 'the guard may delete the VIP up to two /proc/uptime steps before a hold ends');
  t.equal(leastBudgetMs(50), 390, 'and 50 ms pauses');
  t.same(raftTimers(undefined), { electionMs: 250, electionSpreadMs: 120, heartbeatMs: 40, leaseMs: 190 }, 'no timer given: the least budget that rides out the default 100 ms pauses (480 ms)');
  t.equal(defaultBudgetMs(), 480);
  t.same(raftTimers({ pauseTolerance: 100 }), raftTimers(undefined), 'the config block\'s default pauseTolerance');
  t.same(raftTimers({ pauseTolerance: 50 }), timersFromBudget(390), 'a site that accepts only 50 ms pauses gets the faster timers of 390 ms');
  t.same(raftTimers({ pauseTolerance: 200 }), timersFromBudget(leastBudgetMs(200)), 'one that must ride out 200 ms pauses the slower ones it needs');
  t.ok(timerLimits(raftTimers({ pauseTolerance: 200 })).pauseToleranceMs >= 200);
  t.same(raftTimers({ heartbeat: 100, electionTimeout: 500 }), { heartbeatMs: 100, electionMs: 500, electionSpreadMs: 500, leaseMs: 450 }, 'timers given by hand: as before (the defaults of sessions 1-5)');
  t.same(raftTimers({ heartbeat: 50 }), { heartbeatMs: 50, electionMs: 500, electionSpreadMs: 500, leaseMs: 450 }, 'one timer given: the other as before (500 ms)');
  t.same(raftTimers({ electionTimeout: 1500 }), { heartbeatMs: 100, electionMs: 1500, electionSpreadMs: 1500, leaseMs: 1350 }, 'an explicit election timeout');
});

t.test('every budget keeps its promises', async (t) => {
  let checked = 0;
  for (let budget = leastBudgetMs(100); budget <= 10_000; budget += 10) {
    const x = timersFromBudget(budget);
    const limits = timerLimits(x);
    const bad: string[] = [];
    for (const v of Object.values(x)) if (v % RAFT_TICK_MS !== 0) bad.push(`${v} is not whole ticks`);
    if (limits.detectionMaxMs + TAKEOVER_ALLOWANCE_MS > budget) bad.push(`detection ${limits.detectionMaxMs} + ${TAKEOVER_ALLOWANCE_MS} over the budget`);
    // The old holder's guard deletes GUARD_MARGIN_MS before its lease ends; its clock may run 2 % slow.
    const guardDoneBy = x.leaseMs * (1 + DRIFT) - GUARD_MARGIN_MS + GUARD_WORK_MS;
    if (guardDoneBy > x.electionMs - RAFT_TICK_MS) bad.push(`guard done at ${guardDoneBy} ms, another member may win at ${x.electionMs - RAFT_TICK_MS} ms`);
    if (limits.pauseToleranceMs < 100) bad.push(`pause tolerance ${limits.pauseToleranceMs} ms`);
    // A paused leader keeps the VIP until its guard deletes it: at least lease - heartbeat - tick, less the margin and the guard's early end.
    if (limits.pauseToleranceMs > x.leaseMs - x.heartbeatMs - RAFT_TICK_MS - GUARD_MARGIN_MS - GUARD_CLOCK_EARLY_MS) bad.push('pause figure ignores the guard\'s early end');
    if (x.heartbeatMs * 2 > x.leaseMs) bad.push('the lease does not outlast two heartbeats');
    if (timerProblems({ failoverBudget: budget }, 100, true).length > 0) bad.push('config check refuses it');
    if (bad.length > 0) { t.fail(`budget ${budget} ms: ${bad.join('; ')}`); return; }
    checked++;
  }
  t.ok(checked > 900, `${checked} budgets from ${leastBudgetMs(100)} ms to 10 s`);
});

t.test('config problems name the key and what to do', async (t) => {
  const short = timerProblems({ failoverBudget: 400 }, 100, true);
  t.same(short.map((p) => p.path.join('.')), ['cluster.failoverBudget']);
  t.match(short[0]!.message, /too short to ride out 100 ms pauses.*election timeout of 200 ms, a heartbeat every 30 ms and a 140 ms leader lease.*more than 60 ms loses the VIP; use at least 480ms/);
  t.same(timerProblems({ failoverBudget: 400 }, 50, true), [], 'fine with a 50 ms pause tolerance');
  const both = timerProblems({ failoverBudget: 480, electionTimeout: 500, heartbeat: 100 }, 100, true);
  t.same(both.map((p) => p.path.join('.')), ['cluster.heartbeat', 'cluster.electionTimeout']);
  t.match(both[0]!.message, /set together with cluster\.failoverBudget/);
  t.match(timerProblems({ electionTimeout: 500, heartbeat: 200 }, 300, false)[0], { path: ['cluster', 'heartbeat'], message: /leaves a leader only 200 ms of pause.*pauseTolerance is 300 ms/ });
  for (const pause of [0, 50, 100, 150, 300, 1000]) t.same(timerProblems({ pauseTolerance: pause }, pause, true), [], `no timer given: the default timers ride out pauseTolerance ${pause} ms`);
  t.match(timerProblems({}, 400_000, true)[0], { path: ['cluster', 'pauseTolerance'], message: /is longer than the timers of any failover budget up to 600000 ms ride out/ });
});
