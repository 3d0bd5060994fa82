// Proves the planned-failover steps with a scripted StateLog (no sockets, no Raft): a follower
// refuses and names the leader; only another LAN-service node is a valid target; a target that is
// not caught up is refused after the wait; in-flight transfers are waited for (drain) while the VIP
// stays, and only what is left after vip.drainTimeout is handed over (ERROR); then VIP released ->
// leadership transferred, the VIP is resumed afterwards, and the gap is the release plus the new
// holder's reported parts. GET /v1/failover says what a running failover waits for. A stalled
// transfer (client gone) is not waited for: the failover goes on as soon as the live ones finish.
import t from 'tap';
import { Fsm } from '../../cluster/fsm.js';
import type { StateLog, StateLogStatus } from '../../cluster/state-log.js';
import { parseConfig } from '../../config/index.js';
import { silentLogger } from '../../lib/log.js';
import { systemClock } from '../../lib/clock.js';
import type { InFlightWork, RunningService } from '../contract.js';
import { failoverTestConfig } from '../../test/support/failover-config.js';
import { failover, failoverRoutes, type FailoverResult } from './failover.js';

const CONFIG = failoverTestConfig('300ms');

class ScriptedState implements StateLog {
  readonly fsm = new Fsm();
  role: 'leader' | 'follower' = 'leader';
  leader: string | null = 'lan-a';
  lastIndex = 10;
  match: Record<string, number> = { 'lan-b': 10, witness: 10 };
  accepts = true;
  reports = true;
  constructor(private readonly calls: string[]) {}
  isLeader(): boolean { return this.role === 'leader'; }
  async propose(): Promise<never> { throw new Error('not used'); }
  status(): StateLogStatus {
    return {
      mode: 'cluster', role: this.role, leader: this.leader, term: 3, commitIndex: this.lastIndex, appliedIndex: this.lastIndex, lastIndex: this.lastIndex,
      progress: Object.fromEntries(Object.entries(this.match).map(([k, v]) => [k, { match: v }])),
    };
  }
  transferLeadership(to: string): boolean {
    this.calls.push(`transfer ${to}`);
    if (!this.accepts) return false;
    this.role = 'follower';
    setTimeout(() => { this.leader = to; }, 30);
    // The new holder's half of the gap arrives through the log a little later.
    if (this.reports) setTimeout(() => this.fsm.apply(++this.lastIndex, { at: 1, command: { type: 'vip.takeover', node: to, term: 4, trigger: 'transfer', parts: [['vote', 12], ['lease wait', 3], ['ip addr', 5], ['sockets bound', 1], ['first GARP', 2]], totalMs: 23 } }), 50);
    return true;
  }
  async close(): Promise<void> { /* nothing */ }
}

function rig() {
  const calls: string[] = [];
  const state = new ScriptedState(calls);
  const vip = { holdOff: async () => { calls.push('vip release'); }, resume: () => { calls.push('vip resume'); } };
  const transfers: string[] = [];
  /** Transfers whose client stopped answering. */
  const stalled: string[] = [];
  const tftp: RunningService = {
    name: 'tftp', status: () => ({ listening: [] }), stop: async () => undefined,
    inFlight: (): InFlightWork[] => [...transfers.map((line) => ({ line, stalled: false })), ...stalled.map((line) => ({ line, stalled: true }))],
    handOver: async () => { calls.push(`tftp hand over ${transfers.length + stalled.length}`); transfers.length = 0; stalled.length = 0; },
  };
  // Waits that the scripted state ends within ~50 ms are capped generously (a loaded machine runs
  // timers late); the tests of an expired wait set it short themselves.
  const deps = { vip, state, config: parseConfig(CONFIG), clock: systemClock, log: silentLogger, services: () => [tftp], catchUpWaitMs: 200, newLeaderWaitMs: 10_000, takeoverWaitMs: 10_000 };
  return { calls, state, deps, transfers, stalled };
}

t.test('on a follower it refuses and names the leader', async (t) => {
  const { state, deps, calls } = rig();
  state.role = 'follower';
  state.leader = 'lan-b';
  const r = await failover(deps, undefined);
  t.equal(r.status, 409);
  t.match(r.body, { error: /lan-a is not the leader: run it on lan-b/, leader: 'lan-b' });
  t.same(calls, [], 'nothing released or transferred');
});

t.test('the witness or an unknown node is not a target', async (t) => {
  const { deps } = rig();
  for (const [to, why] of [
    ['witness', /^witness is the witness, which serves nothing and cannot hold the VIP \(choose one of: lan-b\)$/],
    ['lan-z', /^lan-z is not another LAN-service node of this cluster \(choose one of: lan-b\)$/],
    ['lan-a', /^lan-a is this node, which already leads and holds the VIP \(choose one of: lan-b\)$/],
  ] as const) {
    const r = await failover(deps, to);
    t.equal(r.status, 400, to);
    t.match(r.body, { error: why }, `--to ${to}: says why this one (it said "not another LAN-service node" of the witness and of itself)`);
  }
});

t.test('a target that is not caught up is refused after the wait, and nothing was released', async (t) => {
  const { state, deps, calls } = rig();
  state.match['lan-b'] = 7;
  const started = performance.now();
  const r = await failover(deps, 'lan-b');
  t.equal(r.status, 409);
  t.match(r.body, { error: /lan-b is not caught up \(match 7 of 10\)/ });
  t.ok(performance.now() - started >= 200, 'it waited for catch-up first');
  t.same(calls, []);
});

t.test('success: nothing in flight, release the VIP, transfer, report the gap with its parts, resume', async (t) => {
  const { deps, calls } = rig();
  const r = await failover(deps, undefined);
  t.equal(r.status, 200);
  const body = r.body as FailoverResult;
  t.match(body, { from: 'lan-a', to: 'lan-b', leader: 'lan-b', drainLeft: [] }, 'the default target is the other server');
  t.equal(body.parts[0]![0], 'release', 'the gap starts with the release here');
  t.same(body.parts.slice(1).map(([n]) => n), ['vote', 'lease wait', 'ip addr', 'sockets bound', 'first GARP'], "then the new holder's parts");
  t.equal(body.gapMs, body.parts[0]![1] + 23, 'gap = release here + the new holder total');
  t.ok(body.leaderKnownMs >= 20, `new leader known ${body.leaderKnownMs} ms after the release`);
  t.same(calls, ['vip release', 'transfer lan-b', 'vip resume'], 'no hand over: nothing was in flight');
});

t.test('drain: the VIP stays until in-flight transfers finish, and GET /v1/failover says what it waits for', async (t) => {
  const { deps, calls, transfers } = rig();
  deps.config = parseConfig(failoverTestConfig('5m')); // the transfer's end, not the drainTimeout, ends the drain
  transfers.push('10.20.0.77:2000 Image for 0.1 s');
  const routes = failoverRoutes(deps);
  const running = routes['POST /v1/failover']!({ query: new URLSearchParams(), body: {} });
  await new Promise((r) => setTimeout(r, 100));
  const progress = (await routes['GET /v1/failover']!({ query: new URLSearchParams(), body: undefined })).body as { running: boolean; phase: string; waitingFor: string[]; limitMs: number };
  t.match(progress, { running: true, phase: 'drain', waitingFor: ['tftp 10.20.0.77:2000 Image for 0.1 s'], limitMs: 300_000 });
  t.same(calls, [], 'the VIP is still here while the transfer runs');
  transfers.length = 0; // the transfer finished
  const r = await running;
  t.equal(r.status, 200);
  const body = r.body as FailoverResult;
  t.same(body.drainLeft, []);
  t.ok(body.drainMs >= 80, `drained for ${body.drainMs} ms`);
  t.same(calls, ['vip release', 'transfer lan-b', 'vip resume'], 'no ERROR sent: the transfer finished');
  const idle = (await routes['GET /v1/failover']!({ query: new URLSearchParams(), body: undefined })).body as { running: boolean; phase: string };
  t.match(idle, { running: false, phase: 'idle' });
});

t.test('drain timeout: what is left gets the hand over (ERROR) before the VIP goes', async (t) => {
  const { deps, calls, transfers } = rig();
  transfers.push('10.20.0.77:2000 Image for 0.1 s');
  const r = await failover(deps, 'lan-b');
  t.equal(r.status, 200);
  const body = r.body as FailoverResult;
  t.same(body.drainLeft, ['tftp 10.20.0.77:2000 Image for 0.1 s']);
  t.ok(body.drainMs >= 290, `waited the whole drainTimeout (${body.drainMs} ms)`);
  t.same(calls, ['tftp hand over 1', 'vip release', 'transfer lan-b', 'vip resume']);
});

t.test('no takeover report: the gap is unknown, the new leader is still reported', async (t) => {
  const { deps, state } = rig();
  deps.takeoverWaitMs = 300;
  state.reports = false;
  const r = await failover(deps, 'lan-b');
  t.equal(r.status, 200);
  t.match(r.body, { leader: 'lan-b', gapMs: null });
});

t.test('a refused transfer resumes the VIP at once', async (t) => {
  const { state, deps, calls } = rig();
  state.accepts = false;
  const r = await failover(deps, 'lan-b');
  t.equal(r.status, 409);
  t.same(calls, ['vip release', 'transfer lan-b', 'vip resume']);
});

t.test('no new leader in time: 504, and the VIP may be taken again', async (t) => {
  const { state, deps, calls } = rig();
  deps.newLeaderWaitMs = 300;
  state.transferLeadership = (to: string) => { calls.push(`transfer ${to}`); return true; };
  const r = await failover(deps, 'lan-b');
  t.equal(r.status, 504);
  t.match(r.body, { error: /did not take over within 300 ms/ });
  t.equal(calls.at(-1), 'vip resume');
});

t.test('drain skips stalled transfers: it waits for the live one only, then both get the hand over', async (t) => {
  const { deps, calls, transfers, stalled } = rig();
  // A drainTimeout far longer than the test: only the live transfer can hold the failover.
  deps.config = parseConfig(failoverTestConfig('5m'));
  transfers.push('10.20.0.77:2000 Image for 0.1 s');
  stalled.push('10.20.0.78:2001 Image for 9.0 s (no ACK for 2.0 s)');
  const routes = failoverRoutes(deps);
  const running = routes['POST /v1/failover']!({ query: new URLSearchParams(), body: {} });
  await new Promise((r) => setTimeout(r, 100));
  const progress = (await routes['GET /v1/failover']!({ query: new URLSearchParams(), body: undefined })).body as { phase: string; waitingFor: string[] };
  t.match(progress, { phase: 'drain', waitingFor: ['tftp 10.20.0.77:2000 Image for 0.1 s', '(not waited for: tftp 10.20.0.78:2001 Image for 9.0 s (no ACK for 2.0 s))'] });
  t.same(calls, [], 'the live transfer holds the VIP here');
  transfers.length = 0; // the live transfer finished; the stalled one is still there
  const r = await running;
  t.equal(r.status, 200);
  const body = r.body as FailoverResult;
  t.same(body.drainLeft, [], 'every live transfer finished');
  t.same(body.drainStalled, ['tftp 10.20.0.78:2001 Image for 9.0 s (no ACK for 2.0 s)'], 'the stalled one is named');
  t.same(calls, ['tftp hand over 1', 'vip release', 'transfer lan-b', 'vip resume'], 'the stalled transfer gets the ERROR before the VIP goes');
});

t.test('only stalled transfers: no wait at all', async (t) => {
  const { deps, calls, stalled } = rig();
  deps.config = parseConfig(failoverTestConfig('5m'));
  stalled.push('10.20.0.78:2001 Image for 9.0 s (no ACK for 2.0 s)');
  const r = await failover(deps, 'lan-b');
  t.equal(r.status, 200);
  t.match(r.body, { drainLeft: [], drainStalled: ['tftp 10.20.0.78:2001 Image for 9.0 s (no ACK for 2.0 s)'] });
  t.ok((r.body as FailoverResult).drainMs < 60_000, `it did not wait for the 5 min drainTimeout (${(r.body as FailoverResult).drainMs} ms)`);
  t.same(calls, ['tftp hand over 1', 'vip release', 'transfer lan-b', 'vip resume']);
});

// An election during the catch-up wait or the drain moves leadership before the hand-over (seen under
// load: a heartbeat late by an election timeout). The failover does not give up blindly: it waits
// for the new leader and says what happened.
function loseLeadership(state: ScriptedState, to: string | null, afterMs: number): void {
  setTimeout(() => { state.role = 'follower'; state.leader = null; }, afterMs);
  if (to !== null) setTimeout(() => { state.leader = to; }, afterMs + 40);
}

t.test('an election moves leadership to the target during the drain: 200, elected, nothing released or handed over here', async (t) => {
  const { deps, calls, state, transfers } = rig();
  // A drainTimeout far longer than the test: only the lost leadership can end the drain (a loaded
  // machine may run the 60 ms timer late; a 300 ms drainTimeout then ended the drain first).
  deps.config = parseConfig(failoverTestConfig('5m'));
  transfers.push('10.20.0.77:2000 Image for 0.1 s');
  loseLeadership(state, 'lan-b', 60);
  const r = await failover(deps, 'lan-b');
  t.equal(r.status, 200);
  const body = r.body as FailoverResult;
  t.match(body, { from: 'lan-a', to: 'lan-b', leader: 'lan-b', elected: true, gapMs: null, drainLeft: ['tftp 10.20.0.77:2000 Image for 0.1 s'] });
  t.ok(body.drainMs >= 40 && body.drainMs < 60_000, `the drain ended with the leadership (${body.drainMs} ms), not at the 5 min drainTimeout`);
  t.same(calls, [], 'no ERROR, release or transfer: the election already moved the VIP');
});

t.test('the witness wins first and hands on to the target: the failover waits through it', async (t) => {
  const { deps, calls, state, transfers } = rig();
  deps.config = parseConfig(failoverTestConfig('5m')); // the election, not the drainTimeout, ends the drain
  transfers.push('10.20.0.77:2000 Image for 0.1 s');
  loseLeadership(state, 'witness', 60);
  setTimeout(() => { state.leader = 'lan-b'; }, 200);
  const r = await failover(deps, 'lan-b');
  t.equal(r.status, 200);
  t.match(r.body, { leader: 'lan-b', elected: true });
  t.same(calls, []);
});

t.test('leadership comes back here after an election in the drain: the failover runs again and hands over', async (t) => {
  const { deps, calls, state, transfers } = rig();
  deps.config = parseConfig(failoverTestConfig('5m')); // the election, not the drainTimeout, ends the drain
  transfers.push('10.20.0.77:2000 Image for 0.1 s');
  loseLeadership(state, null, 60);
  setTimeout(() => { state.role = 'leader'; state.leader = 'lan-a'; transfers.length = 0; }, 120);
  const r = await failover(deps, 'lan-b');
  t.equal(r.status, 200);
  const body = r.body as FailoverResult;
  t.equal(body.elected, undefined, 'handed over by the failover itself');
  t.match(body, { leader: 'lan-b', drainLeft: [] });
  t.same(calls, ['vip release', 'transfer lan-b', 'vip resume']);
});

t.test('no LAN-service node leads after the wait: 409 that says nothing was handed over and what to do', async (t) => {
  const { deps, calls, state } = rig();
  deps.newLeaderWaitMs = 300;
  deps.catchUpWaitMs = 10_000; // the election, not this wait's end, must end the catch-up wait
  state.match['lan-b'] = 7; // the catch-up wait is where the election happens
  loseLeadership(state, 'witness', 30);
  const r = await failover(deps, 'lan-b');
  t.equal(r.status, 409);
  t.match(r.body, { error: /lan-a lost leadership during the catch-up wait \(an election, not the failover\); nothing was handed over: no LAN-service node leads after 300 ms/, leader: 'witness' });
  t.same(calls, []);
});

t.test('a stalled daemon that wakes past the catch-up wait with leadership gone says so, not "not caught up"', async (t) => {
  const { deps, calls, state } = rig();
  deps.newLeaderWaitMs = 300;
  state.match['lan-b'] = 7;
  // The stall: leadership goes and the catch-up wait runs out in the same sleep of the poll.
  let stalledMs = 0;
  deps.clock = { monotonicMs: () => systemClock.monotonicMs() + stalledMs, wallMs: () => systemClock.wallMs() + stalledMs };
  setTimeout(() => { state.role = 'follower'; state.leader = 'witness'; stalledMs = 5_000; }, 30);
  const r = await failover(deps, 'lan-b');
  t.equal(r.status, 409);
  t.match(r.body, { error: /lan-a lost leadership during the catch-up wait/, leader: 'witness' });
  t.notMatch(JSON.stringify(r.body), /not caught up/, 'not blamed on the target');
  t.same(calls, []);
});
