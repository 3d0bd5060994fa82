import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { systemClock } from '../../lib/clock.js';
import { seededRandom } from '../../lib/random.js';
import { RaftNode } from './node.js';
import { RaftHost } from './host.js';
import { Wal } from './wal.js';
import { emptyMessage, type Entry, type Message } from './types.js';

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

t.test('a leader whose process stalled past the election timeout reads the answers that waited before check-quorum judges (fake clock)', async (t) => {
  // Three voters; this host is n1 on a real WAL, the other two are played by the test. The clock
  // is moved by hand; the host's timer runs for real (its delays follow the hand-moved clock), so
  // each step waits for it to catch up. A jump of 2.5 election timeouts with no wait is a stall of
  // this process: the first thing it does on waking is step a follower's answer that waited.
  const dir = mkdtempSync(join(tmpdir(), 'lanha-host-'));
  const { wal, state } = await Wal.open(dir);
  let now = 1000;
  const clock = { monotonicMs: () => now, wallMs: () => now };
  const node = new RaftNode({ id: 'n1', electionTicks: 10, heartbeatTicks: 2, random: seededRandom(1) },
    { hardState: state.hardState, conf: { voters: ['n1', 'n2', 'n3'], learners: [], witnesses: [] }, entries: state.entries });
  const sent: Message[] = [];
  const host = new RaftHost(node, wal, { send: (ms) => { sent.push(...ms); }, restore: () => undefined, apply: () => undefined, onStorageError: (error) => { throw error; } }, clock, 10);
  t.teardown(async () => { await host.stop(); await wal.close(); rmSync(dir, { recursive: true, force: true }); });
  const answer = (m: Message): Message => ({ ...emptyMessage('heartbeat-resp', m.to, 'n1', m.term), context: m.context });
  /** Moves the clock on by `ms` (whole heartbeat intervals) and waits for the timer to count it, then answers the heartbeats it sent. */
  const heartbeatRound = async (ms = 20): Promise<void> => {
    const target = node.ticks + ms / 10;
    now += ms;
    for (let i = 0; i < 400 && node.ticks < target; i++) await new Promise((r) => setTimeout(r, 5));
    for (const m of sent.splice(0).filter((x) => x.type === 'heartbeat')) host.step(answer(m));
  };
  host.start();
  node.campaign();
  host.kick();
  host.step({ ...emptyMessage('prevote-resp', 'n2', 'n1', node.term + 1) });
  host.step({ ...emptyMessage('vote-resp', 'n2', 'n1', node.term) });
  t.equal(node.role, 'leader', 'n1 leads with n2\'s vote');
  await host.idle(); // the term is on disk: heartbeats go out
  for (let round = 0; round < 3; round++) await heartbeatRound();
  t.ok(host.leaseRemainingMs() > 0, 'leading with a lease');
  // One more round: sent and answered by both, but the process stalls before reading the answers.
  const target = node.ticks + 2;
  now += 20;
  for (let i = 0; i < 400 && node.ticks < target; i++) await new Promise((r) => setTimeout(r, 5));
  const waiting = sent.splice(0).filter((x) => x.type === 'heartbeat').map(answer);
  t.equal(waiting.length, 2, 'both answered the last heartbeat before the stall');
  now += 250;
  host.step(waiting[0]!);
  t.equal(node.role, 'leader', 'the first answer read after the stall finds it still leading (check-quorum waits)');
  t.equal(host.leaseRemainingMs(), 0, 'its lease lapsed with the stall: no VIP, no DHCP answers');
  host.step(waiting[1]!);
  t.equal(host.leaseRemainingMs(), 0, 'answers to a heartbeat sent before the stall do not give it back');
  const fresh = sent.splice(0).filter((x) => x.type === 'heartbeat');
  t.ok(fresh.length === 2 && fresh.every((m) => m.context >= node.ticks - 1), 'the catch-up sent a fresh heartbeat');
  host.step(answer(fresh[0]!));
  t.ok(host.leaseRemainingMs() > 0, 'a fresh quorum answer gives the lease back');
  for (let round = 0; round < 8; round++) await heartbeatRound();
  t.equal(node.role, 'leader', 'past the hold and an election timeout: still leading, in the same term');
  t.same(node.stallHolds, { held: 1, averted: 1 }, 'one check-quorum held by the stall, and averted by what was read');
  await host.idle();
});

t.test('a member fenced by a failed write with a Ready still pending does not spin the event loop', async (t) => {
  // ENOSPC on the write: the host fences itself and its loop stops, but the core still has a Ready
  // (the unwritten batch). Rescheduling the loop for it on every check phase spun a CPU at 100 % and
  // kept a daemon that could not start from ever exiting.
  const errors: Error[] = [];
  const host = await oneMember(t, {});
  const wal = host.wal as unknown as { begin: Wal['begin'] };
  const begin = wal.begin.bind(host.wal);
  wal.begin = () => Promise.reject(Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' }));
  t.teardown(() => { wal.begin = begin; });
  // oneMember's onStorageError hook throws what it is given, as the daemon's exits.
  const onError = (error: Error): void => { errors.push(error); };
  process.on('uncaughtException', onError);
  t.teardown(() => { process.off('uncaughtException', onError); });
  host.node.propose(new Uint8Array([4, 1]));
  host.kick();
  for (let i = 0; i < 100 && host.fenced === undefined; i++) await new Promise((r) => setImmediate(r));
  t.match(host.fenced?.message, /ENOSPC/, 'fenced by the failed write');
  t.ok(host.node.hasReady(), 'the unwritten batch is still pending in the core');
  let checks = 0;
  const hasReady = host.node.hasReady.bind(host.node);
  host.node.hasReady = () => { checks++; return hasReady(); };
  for (let i = 0; i < 50; i++) await new Promise((r) => setImmediate(r));
  t.ok(checks <= 2, `the host looked for work ${checks} times in 50 turns (it is fenced: none)`);
});
