// The inventory's control API without a socket: validation errors name the clash (400), a follower
// names the leader (409), a dry run proposes nothing, and an entry that lost a race is reported.
import t from 'tap';
import { Fsm } from './fsm.js';
import { MemoryStateLog, type StateLog } from './state-log.js';
import { ManualClock } from '../test/support/manual-clock.js';
import { parseCidr } from '../lib/ipv4.js';
import { inventoryRoutes } from './inventory-api.js';

function routes(state: StateLog) {
  return inventoryRoutes({ state, clock: new ManualClock(), reservations: [], context: () => ({ subnets: [parseCidr('10.0.0.0/24')!] }) });
}
const call = async (r: ReturnType<typeof routes>, key: string, body: unknown) => r[key]!({ query: new URLSearchParams(), body });

t.test('add, clash, dry run, follower, lost race', async (t) => {
  const state = new MemoryStateLog(new Fsm(), new ManualClock());
  const r = routes(state);
  const ok = await call(r, 'POST /v1/nodes/add', { name: 'rack1', mac: '52:54:00:00:00:01', ip: '10.0.0.21' });
  t.match(ok, { status: 200, body: { node: { name: 'rack1', ip: '10.0.0.21' } } });
  const clash = await call(r, 'POST /v1/nodes/add', { name: 'rack2', mac: '52:54:00:00:00:01' });
  t.match(clash, { status: 400, body: { error: /MAC 52:54:00:00:00:01 already belongs to node rack1/ } });
  const index = state.fsm.appliedIndex;
  t.match(await call(r, 'POST /v1/nodes/add', { name: 'rack2', mac: '52:54:00:00:00:02', dryRun: true }), { status: 200, body: { dryRun: true } });
  t.equal(state.fsm.appliedIndex, index, 'a dry run proposes nothing');

  const follower: StateLog = { ...state, fsm: state.fsm, isLeader: () => false, status: () => ({ ...state.status(), role: 'follower', leader: 'lan-a' }), propose: state.propose.bind(state), close: state.close.bind(state) };
  t.match(await call(routes(follower), 'POST /v1/nodes/remove', { name: 'rack1' }), { status: 409, body: { error: 'this node is not the leader; the leader is lan-a: run the command there' } });

  // Someone else's entry lands first: ours applies as a no-op, and says so.
  const racing: StateLog = {
    fsm: state.fsm, isLeader: () => true, status: () => state.status(), close: async () => undefined,
    propose: async (command) => {
      await state.propose({ type: 'node.add', name: 'other', mac: '52:54:00:00:00:03' });
      return state.propose(command);
    },
  };
  t.match(await call(routes(racing), 'POST /v1/nodes/add', { name: 'rack3', mac: '52:54:00:00:00:03' }), { status: 409, body: { error: /not applied/ } });

  t.match(await call(r, 'POST /v1/nodes/set', { name: 'rack1', ip: null }), { status: 200, body: { node: { ip: null } } });
  t.match(await r['GET /v1/nodes/show']!({ query: new URLSearchParams({ name: 'RACK1' }), body: null }), { status: 200, body: { node: { name: 'rack1' }, timeline: [] } });
  t.match(await r['GET /v1/nodes/show']!({ query: new URLSearchParams({ name: '52:54:00:00:00:01' }), body: null }), { status: 200, body: { node: { name: 'rack1' } } }, 'show by MAC');
  t.match(await call(r, 'POST /v1/nodes/remove', { name: 'rack1' }), { status: 200, body: { removed: { name: 'rack1' } } });
});

t.test('pending: the arch by its IANA name as well as its number (U-Boot armv8 sends 22)', async (t) => {
  const state = new MemoryStateLog(new Fsm(), new ManualClock());
  await state.propose({ type: 'node.seen', mac: '52:54:00:00:00:09', arch: 22, vendorClass: 'U-Boot.armv8' });
  await state.propose({ type: 'node.seen', mac: '52:54:00:00:00:0a', vendorClass: 'PXEClient' });
  const r = await routes(state)['GET /v1/nodes/pending']!({ query: new URLSearchParams(), body: null });
  const pending = (r.body as { pending: Array<{ mac: string; arch: number | null; archName: string | null }> }).pending;
  t.match(pending.find((p) => p.mac === '52:54:00:00:00:09'), { arch: 22, archName: 'arm 64 uboot' });
  t.match(pending.find((p) => p.mac === '52:54:00:00:00:0a'), { arch: null, archName: null }, 'no option 93: no name');
});

t.test('remove: refused while a running deploy job has not finished with the node, naming the job and deploy cancel', async (t) => {
  const state = new MemoryStateLog(new Fsm(), new ManualClock());
  const r = routes(state);
  for (const [name, mac] of [['n1', '52:54:00:00:00:11'], ['n2', '52:54:00:00:00:12']] as const) await state.propose({ type: 'node.add', name, mac });
  await state.propose({ type: 'rootfs.commit', generation: 'a'.repeat(64), member: 'lan-a', source: '/src', files: 1, dirs: 1, symlinks: 0, hardlinks: 0, bytes: 1 });
  await state.propose({ type: 'deploy.job.start', job: 'j1', kind: 'rootfs', member: 'lan-a', nodes: ['n1', 'n2'], generation: 'a'.repeat(64), dryRun: false });
  await state.propose({ type: 'deploy.job.node', job: 'j1', node: 'n2', state: 'running', bytes: 5 });
  const refused = await call(r, 'POST /v1/nodes/remove', { name: 'n2' });
  t.match(refused, { status: 409, body: { error: /^n2 is in deploy job j1, still running .*`lanctl deploy cancel j1` stops it.*Nothing was removed/ } });
  t.ok(state.fsm.inventory.byName('n2'), 'n2 is still in the inventory');
  t.match(await call(r, 'POST /v1/nodes/remove', { name: 'n1' }), { status: 409, body: { error: /^n1 is in deploy job j1/ } }, 'a node still pending in the job too');
  t.match(await call(r, 'POST /v1/nodes/remove', { name: 'n2', dryRun: true }), { status: 409 }, 'a dry run says the same');
  await state.propose({ type: 'deploy.job.node', job: 'j1', node: 'n1', state: 'done', bytes: 10 });
  t.match(await call(r, 'POST /v1/nodes/remove', { name: 'n1' }), { status: 200, body: { removed: { name: 'n1' } } }, 'a node the job is done with can go while the job runs on');
  await state.propose({ type: 'deploy.job.node', job: 'j1', node: 'n2', state: 'interrupted' });
  await state.propose({ type: 'deploy.job.end', job: 'j1', state: 'interrupted' });
  t.match(await call(r, 'POST /v1/nodes/remove', { name: 'n2' }), { status: 200, body: { removed: { name: 'n2' } } }, 'once the job ended (deploy cancel), the node can be removed');
});
