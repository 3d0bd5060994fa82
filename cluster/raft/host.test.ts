import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { systemClock } from '../../lib/clock.js';
import { seededRandom } from '../../lib/random.js';
import { RaftNode } from './node.js';
import { RaftHost } from './host.js';
import { Wal } from './wal.js';
import type { Entry } from './types.js';

// The host shell on a real WAL, one member: when a pipelined batch's fdatasync returns, what it
// committed is applied in that same turn, before the event loop's next check phase (setImmediate),
// i.e. before the requests that arrived meanwhile are taken (issue 14: the ACK's `commit` stage).

/** A one-member host on a fresh WAL, leading, its first entry committed. */
async function oneMember(t: { teardown(fn: () => void | Promise<void>): void }, hooks: { onPersisted?: () => void; apply?: (entries: Entry[]) => void }, pipelined = true, storageStallMs?: number): Promise<RaftHost> {
  const dir = mkdtempSync(join(tmpdir(), 'lanha-host-'));
  const { wal, state } = await Wal.open(dir);
  const node = new RaftNode({ id: 'n1', electionTicks: 50, heartbeatTicks: 10, random: seededRandom(1), witnessFactor: 3 },
    { hardState: state.hardState, conf: { voters: ['n1'], learners: [], witnesses: [] }, entries: state.entries });
  const host = new RaftHost(node, wal, {
    send: () => undefined,
    restore: () => undefined,
    apply: (entries) => hooks.apply?.(entries),
    onPersisted: () => hooks.onPersisted?.(),
    onStorageError: (error) => { throw error; },
  }, systemClock, 10, pipelined, storageStallMs);
  t.teardown(async () => { await host.stop(); await wal.close(); rmSync(dir, { recursive: true, force: true }); });
  host.start();
  node.campaign();
  host.kick();
  for (let i = 0; i < 500 && !(node.role === 'leader' && node.commitIndex >= 1); i++) await new Promise((r) => setTimeout(r, 5));
  return host;
}

t.test('pipelined: a batch that becomes durable is applied in the same turn, before the next setImmediate', async (t) => {
  const seen: Array<{ index: number; immediateRan: boolean }> = [];
  let immediateRan = true;
  const host = await oneMember(t, {
    // Scheduled the moment the batch is durable: any apply after it waited for a check phase.
    onPersisted: () => { immediateRan = false; setImmediate(() => { immediateRan = true; }); },
    apply: (entries) => { for (const e of entries) if (e.data.length > 0) seen.push({ index: e.index, immediateRan }); },
  });
  t.equal(host.node.role, 'leader', 'the one member leads');
  for (let round = 0; round < 5; round++) {
    const p = host.node.propose(new Uint8Array([1, round]));
    t.ok(p.ok, 'proposal accepted');
    host.kick();
    for (let i = 0; i < 400 && seen.length <= round; i++) await new Promise((r) => setTimeout(r, 5));
  }
  t.equal(seen.length, 5, 'every proposal applied');
  t.same(seen.filter((s) => s.immediateRan), [], 'each was applied before a setImmediate scheduled at its fsync ran');
  await host.idle();
});

t.test('one Ready at a time (not pipelined) still applies every proposal', async (t) => {
  const applied: number[] = [];
  const host = await oneMember(t, { apply: (entries) => { for (const e of entries) if (e.data.length > 0) applied.push(e.index); } }, false);
  for (let k = 0; k < 20; k++) host.node.propose(new Uint8Array([2, k]));
  host.kick();
  for (let i = 0; i < 400 && applied.length < 20; i++) await new Promise((r) => setTimeout(r, 5));
  t.equal(applied.length, 20);
  t.same(applied, [...applied].sort((a, b) => a - b), 'in log order');
});

t.test('an event loop that stalled past the storage limit does not fence the member when its fdatasync did return meanwhile', async (t) => {
  // A starved machine stops the whole process: when it runs again, the tick timer runs before the
  // fdatasync completion that waited behind it. Only a call still out on the next run is a hung disk.
  const host = await oneMember(t, {}, true, 200);
  const before = host.wal.syncCount;
  host.node.propose(new Uint8Array([3, 1]));
  host.kick();
  await new Promise((r) => setImmediate(r)); // the loop wrote the batch; its fdatasync runs on the thread pool
  const until = performance.now() + 400;
  while (performance.now() < until) { /* the event loop stalls; the fdatasync completes meanwhile */ }
  for (let i = 0; i < 200 && host.wal.syncCount === before; i++) await new Promise((r) => setTimeout(r, 5));
  await new Promise((r) => setTimeout(r, 50));
  t.ok(host.wal.syncCount > before, 'the fdatasync returned');
  t.equal(host.fenced, undefined, 'not fenced');
});

t.test('the tick timer sleeps while nothing is due, and the core\'s tick count still follows the clock', async (t) => {
  const host = await oneMember(t, {});
  t.equal(host.node.ticksUntilDue(), Infinity, 'a lone leader is never due');
  await host.idle();
  while (host.wal.syncCount === 0 || host.node.hasReady()) await new Promise((r) => setTimeout(r, 5));
  await new Promise((r) => setTimeout(r, 50)); // the last fdatasync's report (a WAL call out keeps the timer at every tick)
  const before = host.node.ticks;
  const from = performance.now();
  await new Promise((r) => setTimeout(r, 200));
  // It still wakes every SLEEP_TICKS_MAX (5 s) to bring the count up: only a much slower machine sees that.
  if (performance.now() - from < 4000) t.equal(host.node.ticks, before, 'no timer ran the core meanwhile (it used to tick every 10 ms)');
  t.ok(host.leaseRemainingMs() > 0, 'the lease, read now');
  t.ok(host.node.ticks - before >= 18, `caught up on the read: ${host.node.ticks - before} ticks in ~200 ms`);
});
