// Proves the planned-failover steps with a scripted StateLog (no sockets, no Raft): a follower
// refuses and names the leader; only another LAN-service node is a valid target; a target that is
// not caught up is refused after the wait; on success the order is hand over (TFTP ERRORs) -> VIP
// released -> leadership transferred, the VIP is resumed afterwards, and the new leader is reported.
import t from 'tap';
import { Fsm } from '../../cluster/fsm.js';
import type { StateLog, StateLogStatus } from '../../cluster/state-log.js';
import { parseConfig } from '../../config/index.js';
import { silentLogger } from '../../lib/log.js';
import { systemClock } from '../../lib/clock.js';
import type { RunningService } from '../contract.js';
import { failover, type FailoverResult } from './failover.js';

const CONFIG = `
node: { name: lan-a, role: server, address: 10.20.0.2, stateDir: /tmp/x, controlSocket: /tmp/x.sock }
cluster:
  id: c
  keyFile: /tmp/k
  members:
    - { name: lan-a, address: 10.20.0.2 }
    - { name: lan-b, address: 10.20.0.3 }
    - { name: witness, address: 10.20.0.9, role: witness }
vip: { address: 10.20.0.1/24, interface: eth9 }
`;

class ScriptedState implements StateLog {
  readonly fsm = new Fsm();
  role: 'leader' | 'follower' = 'leader';
  leader: string | null = 'lan-a';
  lastIndex = 10;
  match: Record<string, number> = { 'lan-b': 10, witness: 10 };
  accepts = true;
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
    return true;
  }
  async close(): Promise<void> { /* nothing */ }
}

function rig() {
  const calls: string[] = [];
  const state = new ScriptedState(calls);
  const vip = { holdOff: async () => { calls.push('vip release'); }, resume: () => { calls.push('vip resume'); } };
  const tftp: RunningService = { name: 'tftp', status: () => ({ listening: [] }), stop: async () => undefined, handOver: async () => { calls.push('tftp hand over'); } };
  const deps = { vip, state, config: parseConfig(CONFIG), clock: systemClock, log: silentLogger, services: () => [tftp], catchUpWaitMs: 200, newLeaderWaitMs: 300 };
  return { calls, state, deps };
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
  for (const to of ['witness', 'lan-z', 'lan-a']) {
    const r = await failover(deps, to);
    t.equal(r.status, 400, to);
    t.match(r.body, { error: /not another LAN-service node/ });
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

t.test('success: hand over, release the VIP, transfer, report the new leader, resume', async (t) => {
  const { deps, calls } = rig();
  const r = await failover(deps, undefined);
  t.equal(r.status, 200);
  const body = r.body as FailoverResult;
  t.match(body, { from: 'lan-a', to: 'lan-b', leader: 'lan-b' }, 'the default target is the other server');
  t.ok(body.gapMs >= 20 && body.gapMs < 300, `gap ${body.gapMs} ms measured from the release`);
  t.same(calls, ['tftp hand over', 'vip release', 'transfer lan-b', 'vip resume']);
});

t.test('a refused transfer resumes the VIP at once', async (t) => {
  const { state, deps, calls } = rig();
  state.accepts = false;
  const r = await failover(deps, 'lan-b');
  t.equal(r.status, 409);
  t.same(calls, ['tftp hand over', 'vip release', 'transfer lan-b', 'vip resume']);
});

t.test('no new leader in time: 504, and the VIP may be taken again', async (t) => {
  const { state, deps, calls } = rig();
  state.transferLeadership = (to: string) => { calls.push(`transfer ${to}`); return true; };
  const r = await failover(deps, 'lan-b');
  t.equal(r.status, 504);
  t.match(r.body, { error: /did not take over within 300 ms/ });
  t.equal(calls.at(-1), 'vip resume');
});
