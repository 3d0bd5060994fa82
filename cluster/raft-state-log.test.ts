import t from 'tap';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { systemClock } from '../lib/clock.js';
import { seededRandom } from '../lib/random.js';
import { createLogger, silentLogger } from '../lib/log.js';
import { RaftStateLog, encodeFsmSnapshot, encodeFsmSnapshotInSlices, decodeFsmSnapshot, syncsInFlightFromEnv, pipelinedFromEnv } from './raft-state-log.js';
import { Fsm } from './fsm.js';
import type { Command } from './commands.js';
import type { Failpoint } from './raft/wal.js';
import { MemoryHub } from '../test/support/memory-link.js';

function scratch(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'lanha-rsl-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const open = (dir: string, extra: { failpoint?: Failpoint; snapshotEntries?: number; pipelined?: boolean; storageStallMs?: number; proposeTimeoutMs?: number } = {}): Promise<RaftStateLog> => RaftStateLog.open({
  id: 'n1', dir, conf: { voters: ['n1'], learners: [], witnesses: [] }, clock: systemClock, random: seededRandom(1), log: silentLogger, ...extra,
});

const grant = (i: number): Command => ({ type: 'lease.grant', ip: 0x0a000000 + i, mac: `02:00:00:00:${((i >> 8) & 0xff).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}`, subnet: '10.0.0.0/8', leaseMs: 3_600_000 });

t.test('single node: leads at once, proposals apply, state survives a reopen (same hash)', async (t) => {
  const dir = scratch(t);
  const log = await open(dir);
  t.ok(log.isLeader(), 'a one-member cluster leads after open()');
  t.equal(log.status().mode, 'single-node');
  const entry = await log.propose(grant(1));
  t.equal(entry.command.type, 'lease.grant');
  t.equal(log.fsm.lease(0x0a000001)?.mac, '02:00:00:00:00:01');
  t.equal(entry.by, 'n1', 'the entry records its proposer');
  const storage = log.status()['storage'] as { fsyncs: number; fsyncP99Ms: number | null; fsyncSamples: number };
  t.ok(storage.fsyncSamples >= 1 && storage.fsyncSamples <= storage.fsyncs, `each fsync timed (${storage.fsyncSamples} of ${storage.fsyncs})`);
  t.ok(typeof storage.fsyncP99Ms === 'number' && storage.fsyncP99Ms >= 0, `fsync p99 ${storage.fsyncP99Ms} ms`);
  t.equal(log.walFsyncLatency().count, storage.fsyncSamples);
  t.equal(log.fsm.lease(0x0a000001)?.ackedBy, 'n1', 'the lease names the node that ACKed it');
  t.equal(log.fsm.lease(0x0a000001)?.index, entry.index);
  const hash = log.fsm.hash();
  const index = log.fsm.appliedIndex;
  await log.close();
  const again = await open(dir);
  t.ok(again.fsm.appliedIndex > index, 'replayed, plus the new term\'s empty entry');
  t.equal(again.fsm.lease(0x0a000001)?.mac, '02:00:00:00:00:01', 'the lease survived');
  t.equal(again.fsm.lease(0x0a000001)?.ackedBy, 'n1', 'and who ACKed it, from the replayed entry');
  t.equal(again.status().term, 2, 'a restart is a new term');
  t.equal(again.committedTerm(again.fsm.appliedIndex), 2, 'the newest applied entry is of the new term');
  t.ok(again.stateCurrent(), 'so the applied state is current: DHCP may answer from it (lease caching)');
  t.equal(again.fsm.hash(), hash, 'same state hash after the restart');
  await again.close();
});

t.test('group commit: 300 concurrent proposals share a handful of fsyncs', async (t) => {
  const dir = scratch(t);
  const log = await open(dir);
  const before = log.host.stats.fsyncs;
  const results = await Promise.all(Array.from({ length: 300 }, (_, i) => log.propose(grant(i))));
  const fsyncs = log.host.stats.fsyncs - before;
  t.equal(new Set(results.map((r) => r.index)).size, 300, 'every proposal got its own index');
  t.ok(fsyncs <= 5, `300 proposals took ${fsyncs} fsyncs`);
  t.equal([...log.fsm.leases()].length, 300);
  await log.close();
});

t.test('a committed proposal is answered before the next batch\'s fsync: one fsync of latency, not two', async (t) => {
  const dir = scratch(t);
  let armed = false;
  let fsyncs = 0;
  let later: Promise<unknown> | undefined;
  let release!: () => void;
  const gate = new Promise<void>((resolve) => { release = resolve; });
  let heldSecond!: () => void;
  const second = new Promise<void>((resolve) => { heldSecond = resolve; });
  const log: RaftStateLog = await open(dir, {
    failpoint: async (name) => {
      if (!armed || name !== 'wal.beforeFsync') return;
      fsyncs++;
      if (fsyncs === 1) later = log.propose(grant(2)); // arrives while the first batch is being synced
      else if (fsyncs === 2) { heldSecond(); await gate; } // the second batch's fsync is held
    },
  });
  await log.propose(grant(1));
  armed = true;
  let answered = false;
  const first = log.propose(grant(3)).then(() => { answered = true; });
  await second;
  await new Promise((resolve) => setTimeout(resolve, 50));
  t.ok(answered, 'the first proposal is applied and answered while the second batch\'s fsync is still running');
  t.equal(log.fsm.lease(0x0a000002), undefined, 'the second is not applied before its fsync');
  release();
  await first;
  await later;
  t.equal(log.fsm.lease(0x0a000002)?.mac, '02:00:00:00:00:02', 'and is applied after it');
  await log.close();
});

t.test('snapshots compact the log and restore on reopen', async (t) => {
  const dir = scratch(t);
  const log = await open(dir, { snapshotEntries: 50 });
  for (let round = 0; round < 4; round++) await Promise.all(Array.from({ length: 40 }, (_, i) => log.propose(grant(round * 40 + i))));
  // The file is written beside the loop; the log is compacted behind it at the next batch.
  await log.snapshotSettled();
  await log.propose(grant(160));
  t.ok(log.host.node.snapshotIndex > 0, `snapshot taken at ${log.host.node.snapshotIndex}`);
  const hash = log.fsm.hash();
  await log.close();
  const again = await open(dir, { snapshotEntries: 50 });
  t.equal([...again.fsm.leases()].length, 161);
  t.equal(again.fsm.hash(), hash, 'snapshot + log tail rebuild the same state');
  await again.close();
});

t.test('a snapshot finished after the last write is taken in at once, not at the next write', async (t) => {
  // Nothing is written after the proposal that starts the snapshot (heartbeats leave outside the
  // Ready): the saved file must still be compacted behind and show in status.
  const dir = scratch(t);
  const log = await open(dir, { snapshotEntries: 5 });
  for (let i = 0; log.fsm.appliedIndex < 5; i++) await log.propose(grant(i)); // the last batch starts the snapshot
  const deadline = performance.now() + 5000;
  while (Number(log.status().snapshotIndex) === 0 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  t.ok(Number(log.status().snapshotIndex) >= 5, `snapshot at ${String(log.status().snapshotIndex)} with no write after it`);
  await log.close();
});

t.test('proposals commit while a snapshot file is being written; the log is compacted only once it is durable', async (t) => {
  const dir = scratch(t);
  let hold: Promise<void> | null = null;
  let release = (): void => undefined;
  const log = await open(dir, {
    snapshotEntries: 20,
    failpoint: (name) => (name === 'snapshot.beforeRename' && hold !== null ? hold : undefined),
  });
  hold = new Promise<void>((resolve) => { release = resolve; });
  await Promise.all(Array.from({ length: 25 }, (_, i) => log.propose(grant(i))));
  await log.propose(grant(25)); // one more batch: the snapshot is started after the one before
  const during = await Promise.all(Array.from({ length: 10 }, (_, i) => log.propose(grant(100 + i))));
  t.equal(during.length, 10, 'ten proposals committed and applied while the snapshot file waits before its rename');
  t.equal(log.host.node.snapshotIndex, 0, 'the log is not compacted behind a snapshot that is not durable yet');
  release();
  await log.snapshotSettled();
  await log.propose(grant(200));
  t.ok(log.host.node.snapshotIndex >= 20, `compacted behind the snapshot once it was saved (index ${log.host.node.snapshotIndex})`);
  const hash = log.fsm.hash();
  await log.close();
  const again = await open(dir);
  t.equal(again.fsm.hash(), hash, 'snapshot + log tail rebuild the same state');
  await again.close();
});

t.test('a snapshot file that cannot be written fences the node at the next batch', async (t) => {
  const dir = scratch(t);
  const log = await open(dir, {
    snapshotEntries: 10,
    failpoint: (name) => { if (name === 'snapshot.beforeRename') throw new Error('disk full (failpoint)'); },
  });
  await Promise.all(Array.from({ length: 12 }, (_, i) => log.propose(grant(i))));
  await log.propose(grant(12)).catch(() => undefined); // starts the snapshot, or is the batch that fences
  await log.snapshotSettled();
  await t.rejects(log.propose(grant(13)).then(() => log.propose(grant(14))), /disk full|stopped accepting writes|not committed/, 'writes stop after the failed snapshot');
  t.equal(log.isLeader(), false, 'and it no longer leads for services');
  await log.close();
});

t.test('an fsync error fences the node: pending and later proposals fail, it stops leading', async (t) => {
  const dir = scratch(t);
  let fail = false;
  const log = await open(dir, { failpoint: (name) => { if (fail && name === 'wal.beforeWrite') throw new Error('EIO: disk gone'); } });
  await log.propose(grant(1));
  fail = true;
  await t.rejects(log.propose(grant(2)), /not made durable: EIO: disk gone/);
  t.notOk(log.isLeader(), 'no longer leader for services');
  await t.rejects(log.propose(grant(3)), /stopped accepting writes/);
  t.match(log.status().storage, { error: 'EIO: disk gone' });
  await log.close();
  fail = false;
  const again = await open(dir);
  t.equal(again.fsm.lease(0x0a000002), undefined, 'the unacknowledged proposal is not there');
  t.ok(again.fsm.lease(0x0a000001), 'the acknowledged one is');
  await again.close();
});

t.test('a proposal resolves with where its time went: queued, written and fsync\'d, then applied', async (t) => {
  const dir = scratch(t);
  const log = await open(dir);
  try {
    const started = performance.now();
    const entries = await Promise.all([1, 2, 3].map((i) => log.propose(grant(i))));
    const took = performance.now() - started;
    for (const e of entries) {
      const timing = e.timing!;
      t.ok(timing !== undefined, `entry ${e.index} carries its timing`);
      t.ok(timing.queuedMs >= 0 && timing.persistMs >= 0 && timing.commitMs >= 0, 'no part is negative');
      t.ok(timing.queuedMs + timing.persistMs + timing.commitMs <= took + 1, 'the parts fit inside the time propose() took');
    }
  } finally {
    await log.close();
  }
});

t.test('a snapshot encoded in slices is the same bytes as one encoded at once', async (t) => {
  const fsm = new Fsm();
  for (let i = 0; i < 4500; i++) fsm.apply(i + 1, { at: 1_000 + i, command: grant(i) });
  fsm.apply(4501, { at: 9_000, command: { type: 'dns.set', name: 'x.lab', rrtype: 'A', ttl: 60, data: '10.0.0.1' } });
  const state = fsm.snapshot();
  const sliced = await encodeFsmSnapshotInSlices(state);
  t.same(Buffer.from(sliced).equals(Buffer.from(encodeFsmSnapshot(state))), true, '4,500 leases in 3 slices, plus a record');
  t.equal(decodeFsmSnapshot(sliced).leases.length, 4500);
  const empty = new Fsm().snapshot();
  t.same(Buffer.from(await encodeFsmSnapshotInSlices(empty)).equals(Buffer.from(encodeFsmSnapshot(empty))), true, 'no leases at all');
});

t.test('LANHA_WAL_SYNCS_IN_FLIGHT: 1-16, unset is 1, anything else refused naming the value', async (t) => {
  t.equal(syncsInFlightFromEnv(undefined), 1);
  t.equal(syncsInFlightFromEnv(''), 1);
  t.equal(syncsInFlightFromEnv('4'), 4);
  for (const bad of ['0', '17', '2.5', 'two', '-1']) t.throws(() => syncsInFlightFromEnv(bad), new RegExp(`LANHA_WAL_SYNCS_IN_FLIGHT: "${bad.replace('.', '\\.')}" is not a whole number from 1 to 16`));
});

t.test('LANHA_RAFT_PIPELINE: on unless 0, anything else refused naming the value', async (t) => {
  t.equal(pipelinedFromEnv(undefined), true, 'unset: on (the default)');
  t.equal(pipelinedFromEnv(''), true);
  t.equal(pipelinedFromEnv('1'), true);
  t.equal(pipelinedFromEnv('0'), false, 'the opt-out');
  for (const bad of ['2', 'yes', 'off', '-1']) t.throws(() => pipelinedFromEnv(bad), new RegExp(`LANHA_RAFT_PIPELINE: "${bad}" is neither 0 \\(off\\) nor 1 \\(on, the default\\)`));
});

t.test('the durable log runs the pipelined host by default; LANHA_RAFT_PIPELINE=0 opts out, and the opted-out host commits and shares fsyncs too', async (t) => {
  const saved = process.env['LANHA_RAFT_PIPELINE'];
  t.teardown(() => { if (saved === undefined) delete process.env['LANHA_RAFT_PIPELINE']; else process.env['LANHA_RAFT_PIPELINE'] = saved; });
  delete process.env['LANHA_RAFT_PIPELINE'];
  const on = await open(scratch(t));
  t.equal(on.host.pipelined, true, 'on by default');
  t.equal((on.status() as unknown as { storage: { pipelined: boolean } }).storage.pipelined, true, 'status says so');
  await on.close();
  process.env['LANHA_RAFT_PIPELINE'] = '0';
  const dir = scratch(t);
  const off = await open(dir);
  t.equal(off.host.pipelined, false, 'LANHA_RAFT_PIPELINE=0: one Ready at a time');
  const before = off.host.stats.fsyncs;
  const results = await Promise.all(Array.from({ length: 300 }, (_, i) => off.propose(grant(i))));
  t.equal(new Set(results.map((r) => r.index)).size, 300);
  t.ok(off.host.stats.fsyncs - before <= 10, `300 proposals took ${off.host.stats.fsyncs - before} fsyncs`);
  await off.close();
});

t.test('the pipelined host (the default): 300 concurrent proposals commit, share fsyncs, and all survive a reopen', async (t) => {
  const dir = scratch(t);
  const log = await open(dir, { pipelined: true });
  const before = log.host.stats.fsyncs;
  const results = await Promise.all(Array.from({ length: 300 }, (_, i) => log.propose(grant(i))));
  t.equal(new Set(results.map((r) => r.index)).size, 300, 'every proposal got its own index');
  t.ok(log.host.stats.fsyncs - before <= 10, `300 proposals took ${log.host.stats.fsyncs - before} fsyncs`);
  const hash = log.fsm.hash();
  await log.close();
  const again = await open(dir, { pipelined: true });
  t.equal([...again.fsm.leases()].length, 300);
  t.equal(again.fsm.hash(), hash, 'same state after the reopen');
  await again.close();
});

t.test('a hung fdatasync fences the member once it has not returned for storageStallMs; when it returns and a test write succeeds, the member rejoins from its disk', async (t) => {
  // The host's timers are unref'd (a daemon's sockets keep it alive): this keeps the test's process up.
  const alive = setInterval(() => undefined, 1000);
  t.teardown(() => clearInterval(alive));
  for (const pipelined of [true, false]) {
    const dir = scratch(t);
    let hang = false;
    let release!: () => void;
    const hung = new Promise<void>((resolve) => { release = resolve; });
    // The disk never answers; nothing fails on its own. Heartbeats alone kept the lease (and the VIP).
    const log = await open(dir, { pipelined, storageStallMs: 300, proposeTimeoutMs: 20_000, failpoint: async (name) => { if (hang && name === 'wal.beforeFsync') await hung; } });
    const fatal: Error[] = [];
    log.onFatal((error) => fatal.push(error));
    await log.propose(grant(1));
    hang = true;
    const started = performance.now();
    await t.rejects(log.propose(grant(2)), /storage stalled: a WAL write or fdatasync .* has not returned for \d+ ms/, `${pipelined ? 'pipelined' : 'one Ready at a time'}: the proposal fails with the reason`);
    t.ok(performance.now() - started < 15_000, 'well before the proposal\'s own timeout');
    t.notOk(log.isLeader(), 'no longer leader for services (the VIP goes)');
    t.match(log.status().storage, { error: /storage stalled/ });
    await t.rejects(log.propose(grant(3)), /stopped accepting writes/);
    const fenced = log.host;
    await new Promise((resolve) => setTimeout(resolve, 100));
    t.equal(log.host, fenced, 'still fenced while the call hangs');
    hang = false;
    release(); // the fdatasync returns: the disk works again
    for (let i = 0; i < 500 && !(log.host !== fenced && log.isLeader()); i++) await new Promise((resolve) => setTimeout(resolve, 10));
    t.not(log.host, fenced, 'rejoined with a new core read back from the disk');
    t.equal(log.host.fenced, undefined, 'not fenced');
    t.ok(log.isLeader(), 'and, alone, leads again');
    t.same(fatal, [], 'no fatal error');
    t.equal((await log.propose(grant(4))).command.type, 'lease.grant', 'proposals commit again');
    t.ok(log.fsm.lease(0x0a000001), 'the lease acknowledged before the stall is there');
    t.equal(log.fsm.lease(0x0a000003), undefined, 'the proposal refused while fenced was never written');
    const hash = log.fsm.hash();
    await log.close();
    const again = await open(dir);
    t.ok(again.fsm.lease(0x0a000001) && again.fsm.lease(0x0a000004), 'both acknowledged leases are there after a restart');
    t.equal(again.fsm.hash(), hash, 'the same state as before the restart');
    await again.close();
  }
});

t.test('fenced for a stall, then the stalled fdatasync fails, or the test write does: the storage is broken for good, the fatal listeners are told (the daemon exits), no rejoin', async (t) => {
  const alive = setInterval(() => undefined, 1000);
  t.teardown(() => clearInterval(alive));
  for (const how of ['the fdatasync fails', 'the test write fails'] as const) {
    const dir = scratch(t);
    let hang = false;
    let release!: () => void;
    const hung = new Promise<void>((resolve) => { release = resolve; });
    const log = await open(dir, {
      storageStallMs: 300, proposeTimeoutMs: 20_000,
      failpoint: async (name) => {
        if (hang && name === 'wal.beforeFsync') {
          await hung;
          if (how === 'the fdatasync fails') throw Object.assign(new Error('EIO: the fdatasync failed late'), { code: 'EIO' });
        }
        if (name === 'wal.probe') throw Object.assign(new Error('EIO: the test write failed'), { code: 'EIO' });
      },
    });
    const fatal: Error[] = [];
    log.onFatal((error) => fatal.push(error));
    await log.propose(grant(1));
    hang = true;
    await t.rejects(log.propose(grant(2)), /storage stalled/);
    const fenced = log.host;
    t.same(fatal, [], `${how}: a stall alone is not fatal`);
    release();
    for (let i = 0; i < 300 && fatal.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    t.equal(fatal.length, 1, `${how}: the fatal listener is told once`);
    t.match(fatal[0]?.message ?? '', how === 'the fdatasync fails' ? /the fdatasync failed late/ : /the test write failed/);
    await new Promise((resolve) => setTimeout(resolve, 100));
    t.equal(log.host, fenced, 'no rejoin');
    t.notOk(log.isLeader());
    await log.close();
  }
});

t.test('an fsync error (no stall) is fatal at once: the listeners are told, so the daemon exits for the service manager to restart it', async (t) => {
  const dir = scratch(t);
  let fail = false;
  const log = await open(dir, { failpoint: (name) => { if (fail && name === 'wal.beforeFsync') throw Object.assign(new Error('EIO: disk gone'), { code: 'EIO' }); } });
  const fatal: Error[] = [];
  log.onFatal((error) => fatal.push(error));
  await log.propose(grant(1));
  fail = true;
  await t.rejects(log.propose(grant(2)), /not made durable: EIO: disk gone/);
  t.equal(fatal.length, 1, 'told once');
  t.match(fatal[0]?.message ?? '', /EIO: disk gone/);
  await log.close();
});

t.test('an fdatasync that fails (EIO, ENOSPC) while earlier batches are still syncing: the earlier are acknowledged, that one and every later fail, none applied', async (t) => {
  for (const code of ['EIO', 'ENOSPC']) {
    const dir = scratch(t);
    let armed = false;
    let n = 0;
    let release!: () => void;
    const gate = new Promise<void>((resolve) => { release = resolve; });
    const log: RaftStateLog = await open(dir, {
      failpoint: async (name) => {
        if (!armed || name !== 'wal.beforeFsync') return;
        n++;
        if (n === 1) await gate; // the first batch's fsync is slow: the next batches are written meanwhile
        else throw Object.assign(new Error(`${code}: injected`), { code });
      },
    });
    await log.propose(grant(1));
    armed = true;
    const first = log.propose(grant(2));
    await new Promise((resolve) => setTimeout(resolve, 20));
    const later = [log.propose(grant(3)), log.propose(grant(4))];
    for (const p of later) p.catch(() => undefined);
    await new Promise((resolve) => setTimeout(resolve, 20));
    release();
    await first;
    for (const p of later) await t.rejects(p, new RegExp(`not made durable: ${code}`), `${code}: a batch after the failed fdatasync is not acknowledged`);
    t.equal(log.fsm.lease(0x0a000003), undefined, 'nor applied');
    t.equal(log.fsm.lease(0x0a000004), undefined);
    t.notOk(log.isLeader(), 'it stops leading');
    await log.close();
    const again = await open(dir);
    t.ok(again.fsm.lease(0x0a000001) && again.fsm.lease(0x0a000002), `${code}: every acknowledged lease is there after a restart`);
    await again.close();
  }
});

t.test('an idle member whose WAL breaks on a write no proposal waits for (the quiet-spell mark) is fenced and fatal at once, not at its next proposal', async (t) => {
  const alive = setInterval(() => undefined, 1000);
  t.teardown(() => clearInterval(alive));
  const dir = scratch(t);
  let fail = false;
  const log = await open(dir, { failpoint: (name) => { if (fail && name === 'wal.beforeFsync') throw Object.assign(new Error('EIO: idle fdatasync'), { code: 'EIO' }); } });
  const fatal: Error[] = [];
  log.onFatal((error) => fatal.push(error));
  await log.propose(grant(1));
  fail = true; // the next fdatasync is the mark's, about 1 s after the last batch
  for (let i = 0; i < 300 && fatal.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 10));
  t.equal(fatal.length, 1, 'the fatal listener is told without any proposal');
  t.match(fatal[0]?.message ?? '', /idle fdatasync/);
  t.notOk(log.isLeader(), 'it stopped leading');
  t.match(log.status().storage, { error: /idle fdatasync/ });
  await log.close();
});

t.test('onLeaseExtended: the leader is told each time an acknowledgement moves its lease end later, about once per heartbeat round', async (t) => {
  const alive = setInterval(() => undefined, 1000); // the hosts' timers are unref'd
  const root = scratch(t);
  const hub = new MemoryHub();
  const members = ['a', 'b', 'c'];
  const logs: RaftStateLog[] = [];
  t.teardown(async () => { for (const l of logs) await l.close(); clearInterval(alive); });
  for (const [i, id] of members.entries()) {
    logs.push(await RaftStateLog.open({ id, dir: join(root, id), conf: { voters: members, learners: [], witnesses: [] }, clock: systemClock, random: seededRandom(i + 1), log: silentLogger,
      link: hub.link(id), heartbeatMs: 50, electionMs: 300 }));
  }
  const leader = async (): Promise<RaftStateLog> => {
    for (const end = performance.now() + 10_000; performance.now() < end; await new Promise((r) => setTimeout(r, 10))) {
      const l = logs.find((x) => x.isLeader());
      if (l) return l;
    }
    throw new Error('no leader');
  };
  const lead = await leader();
  const ends: number[] = [];
  let shortest = Infinity;
  const off = lead.onLeaseExtended(() => {
    const left = lead.leaseRemainingMs();
    shortest = Math.min(shortest, left);
    ends.push(systemClock.monotonicMs() + left);
  });
  const since = performance.now();
  await new Promise((r) => setTimeout(r, 600));
  off();
  const rounds = (performance.now() - since) / 50;
  t.ok(ends.length >= 3, `told ${ends.length} times in ${Math.round(performance.now() - since)} ms`);
  t.ok(ends.length <= rounds + 2, `not once per acknowledgement (two followers answer each round): ${ends.length} for about ${Math.round(rounds)} rounds`);
  t.ok(shortest > 0, 'each time with a lease left');
  t.ok(ends.every((e, i) => i === 0 || e > ends[i - 1]! - 10), 'each end later than the last (within a tick of rounding)');
});

t.test('a full file system fences the member without ending it: no proposal is acknowledged, it waits for space, then reads its state back and writes again', async (t) => {
  const dir = scratch(t);
  let full = false;
  const noSpace = (): Error => Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', syscall: 'write' });
  const records: Array<{ event?: string; msg?: string; freeBytes?: number }> = [];
  const log = await RaftStateLog.open({
    id: 'n1', dir, conf: { voters: ['n1'], learners: [], witnesses: [] }, clock: systemClock, random: seededRandom(1),
    log: createLogger({ level: 'info', destination: { write: (line: string) => { records.push(JSON.parse(line) as { event?: string }); } } }),
    failpoint: (name) => { if (full && name === 'wal.beforeWrite') throw noSpace(); },
    spaceCheckMs: 20,
    freeSpace: () => ({ freeBytes: full ? 4096 : 64 * 1048576, totalBytes: 8 * 1048576 }),
  });
  const fatal: Error[] = [];
  log.onFatal((error) => fatal.push(error));
  try {
    await log.propose(grant(1));
    full = true;
    await t.rejects(log.propose(grant(2)), /not made durable: ENOSPC/, 'the write the disk refused is not acknowledged');
    t.notOk(log.isLeader(), 'it stops leading (DHCP goes silent)');
    t.equal(log.status().leaseValid, false, 'and status says it holds no lease (the fenced core, no longer ticked, still thinks it does)');
    await t.rejects(log.propose(grant(3)), /stopped accepting writes/);
    await new Promise((resolve) => setTimeout(resolve, 150));
    t.same(fatal, [], 'not fatal: the process stays up for DNS, TFTP and NTP (it used to exit into the same full disk)');
    const storage = log.status().storage as { full: { freeBytes: number; totalBytes: number; neededBytes: number } | null; fullCount: number };
    t.match(storage.full, { freeBytes: 4096, totalBytes: 8 * 1048576, neededBytes: 1048576 }, 'status says how full');
    t.equal(storage.fullCount, 1);
    const line = records.find((r) => r.event === 'raft.storage_full');
    t.match(line, { freeBytes: 4096 }, 'logged raft.storage_full with the free space');
    t.match(line?.msg ?? '', new RegExp(`the file system of ${dir} is full \\(0\\.0 MiB free of 8\\.0 MiB`));
    t.notOk(log.isLeader(), 'still fenced while the space is not back');
    full = false;
    const until = Date.now() + 5000;
    while (!log.isLeader() && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 10));
    t.ok(log.isLeader(), 'leads again once space is free, without a restart');
    t.ok(records.some((r) => r.event === 'raft.storage_space_returned'), 'logged raft.storage_space_returned');
    await log.propose(grant(4));
    t.ok(log.fsm.lease(0x0a000001) && log.fsm.lease(0x0a000004), 'the lease from before and the one after are applied');
    t.equal(log.fsm.lease(0x0a000002), undefined, 'the refused one is not');
    t.equal((log.status().storage as { full: unknown }).full, null);
  } finally {
    await log.close();
  }
  const again = await open(dir);
  t.ok(again.fsm.lease(0x0a000001) && again.fsm.lease(0x0a000004), 'both acknowledged leases are on the disk');
  t.equal(again.fsm.lease(0x0a000002), undefined);
  await again.close();
});

t.test('ENOSPC from an fdatasync (or from a call not known) stays fatal: write-back failed and the kernel may have dropped pages', async (t) => {
  for (const syscall of ['fdatasync', undefined]) {
    const dir = scratch(t);
    let fail = false;
    const log = await open(dir, { failpoint: (name) => { if (fail && name === 'wal.beforeFsync') throw Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC', syscall }); } });
    const fatal: Error[] = [];
    log.onFatal((error) => fatal.push(error));
    await log.propose(grant(1));
    fail = true;
    await t.rejects(log.propose(grant(2)), /not made durable: ENOSPC/);
    t.equal(fatal.length, 1, `syscall ${syscall ?? 'unknown'}: fatal`);
    await log.close();
  }
});

t.test('a cluster member does not start on another member\'s Raft directory (a state directory copied from it); one from before the owner file is adopted', async (t) => {
  const root = scratch(t);
  const dir = join(root, 'raft');
  const conf = { voters: ['a', 'b', 'c'], learners: [], witnesses: [] };
  const openAs = (id: string): Promise<RaftStateLog> => RaftStateLog.open({ id, dir, conf, clock: systemClock, random: seededRandom(1), log: silentLogger, memberFile: join(root, 'raft.member'), electionMs: 60_000 });
  const a = await openAs('a');
  await a.close();
  t.equal(readFileSync(join(dir, 'owner'), 'utf8'), 'a\n', 'the directory names its member');
  await t.rejects(openAs('b'), /holds the Raft state of member a, not of b \(node\.name\).*mv .*raft .*raft\.a/, 'b refuses a\'s directory, saying what to do');
  rmSync(join(dir, 'owner'));
  const adopted = await openAs('b');
  await adopted.close();
  t.equal(readFileSync(join(dir, 'owner'), 'utf8'), 'b\n', 'a directory without the file is taken as this member\'s');
});

t.test('a snapshot the full disk refused (ENOSPC on its write) fences the member, which waits for space and then snapshots and writes again', async (t) => {
  const dir = scratch(t);
  let full = true;
  const fatal: Error[] = [];
  const log = await RaftStateLog.open({
    id: 'n1', dir, conf: { voters: ['n1'], learners: [], witnesses: [] }, clock: systemClock, random: seededRandom(1), log: silentLogger,
    snapshotEntries: 10, spaceCheckMs: 20,
    failpoint: (name) => { if (full && name === 'snapshot.beforeRename') throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', syscall: 'write' }); },
    freeSpace: () => ({ freeBytes: full ? 0 : 64 * 1048576, totalBytes: 8 * 1048576 }),
  });
  log.onFatal((error) => fatal.push(error));
  try {
    await Promise.all(Array.from({ length: 12 }, (_, i) => log.propose(grant(i))));
    await log.propose(grant(12)).catch(() => undefined); // starts the snapshot, or is the batch that fences
    await log.snapshotSettled();
    await t.rejects(log.propose(grant(13)).then(() => log.propose(grant(14))), /ENOSPC|stopped accepting writes/, 'writes stop after the refused snapshot');
    t.notOk(log.isLeader());
    t.same(fatal, [], 'not fatal');
    t.ok((log.status().storage as { full: unknown }).full, 'status says the disk is full');
    full = false;
    const until = Date.now() + 5000;
    while (!log.isLeader() && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 10));
    t.ok(log.isLeader(), 'leads again once space is free');
    await Promise.all(Array.from({ length: 12 }, (_, i) => log.propose(grant(20 + i))));
    await log.snapshotSettled();
    t.ok(log.fsm.lease(0x0a000001) && log.fsm.lease(0x0a00001f), 'leases from before and after are applied');
  } finally {
    await log.close();
  }
  const again = await open(dir);
  t.ok(again.fsm.lease(0x0a000001) && again.fsm.lease(0x0a00001f), 'and on the disk');
  t.ok((again.status().snapshotIndex as number) > 0, `a snapshot was written once space returned (at ${String(again.status().snapshotIndex)})`);
  await again.close();
});

t.test('a full disk whose earlier fdatasync then failed (write-back lost) is not waited out: fatal, for a restart', async (t) => {
  const dir = scratch(t);
  let armed = false;
  let release!: () => void;
  const gate = new Promise<void>((resolve) => { release = resolve; });
  let syncs = 0;
  const fatal: Error[] = [];
  const log = await RaftStateLog.open({
    id: 'n1', dir, conf: { voters: ['n1'], learners: [], witnesses: [] }, clock: systemClock, random: seededRandom(1), log: silentLogger,
    spaceCheckMs: 20, freeSpace: () => ({ freeBytes: 64 * 1048576, totalBytes: 128 * 1048576 }),
    failpoint: async (name) => {
      if (!armed) return;
      if (name === 'wal.beforeFsync' && ++syncs === 1) { await gate; throw Object.assign(new Error('EIO: write-back failed'), { code: 'EIO', syscall: 'fdatasync' }); }
      if (name === 'wal.beforeWrite' && syncs >= 1) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', syscall: 'write' });
    },
  });
  log.onFatal((error) => fatal.push(error));
  try {
    await log.propose(grant(1));
    armed = true;
    const first = log.propose(grant(2)); // written; its fdatasync waits at the gate
    first.catch(() => undefined);
    await new Promise((resolve) => setTimeout(resolve, 20));
    await t.rejects(log.propose(grant(3)), /ENOSPC/, 'the next write finds the disk full');
    release();
    await t.rejects(first, /not made durable/, 'the batch whose fdatasync failed is not acknowledged');
    const until = Date.now() + 3000;
    while (fatal.length === 0 && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 10));
    t.equal(fatal.length, 1, 'fatal once space was back: the state is not read back in this process');
    t.match(fatal[0]?.message ?? '', /fdatasync .* failed while the file system was full/);
    t.notOk(log.isLeader());
  } finally {
    await log.close();
  }
});

t.test('a read-only file system (EROFS on a write) fences the member without ending it; it writes again once a test write passes', async (t) => {
  const dir = scratch(t);
  let readOnly = false;
  const refuse = (syscall: string): Error => Object.assign(new Error(`EROFS: read-only file system, ${syscall}`), { code: 'EROFS', syscall });
  const fatal: Error[] = [];
  const log = await RaftStateLog.open({
    id: 'n1', dir, conf: { voters: ['n1'], learners: [], witnesses: [] }, clock: systemClock, random: seededRandom(1), log: silentLogger, spaceCheckMs: 20,
    failpoint: (name) => {
      if (readOnly && name === 'wal.beforeWrite') throw refuse('write');
      if (readOnly && name === 'wal.probe') throw refuse('open');
    },
  });
  log.onFatal((error) => fatal.push(error));
  try {
    await log.propose(grant(1));
    readOnly = true;
    await t.rejects(log.propose(grant(2)), /not made durable: EROFS/);
    await new Promise((resolve) => setTimeout(resolve, 150));
    t.same(fatal, [], 'not fatal (it used to exit, and every restart was refused on the read-only directory)');
    t.notOk(log.isLeader(), 'fenced while the test write is refused');
    t.match((log.status().storage as { full: unknown }).full, { reason: 'read-only' }, 'status says read-only');
    readOnly = false;
    const until = Date.now() + 5000;
    while (!log.isLeader() && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 10));
    t.ok(log.isLeader(), 'leads again once writable');
    await log.propose(grant(3));
    t.ok(log.fsm.lease(0x0a000001) && log.fsm.lease(0x0a000003));
    t.equal(log.fsm.lease(0x0a000002), undefined);
  } finally {
    await log.close();
  }
});

t.test('out of file descriptors (EMFILE opening a snapshot or the test file) fences the member without ending it, said once; it writes again once files open', async (t) => {
  const dir = scratch(t);
  let short = true;
  const emfile = (): Error => Object.assign(new Error('EMFILE: too many open files, open'), { code: 'EMFILE', syscall: 'open' });
  const fatal: Error[] = [];
  const records: Array<Record<string, unknown>> = [];
  const log = await RaftStateLog.open({
    id: 'n1', dir, conf: { voters: ['n1'], learners: [], witnesses: [] }, clock: systemClock, random: seededRandom(1),
    log: createLogger({ level: 'debug', destination: { write: (line: string) => { records.push(JSON.parse(line) as Record<string, unknown>); } } }),
    snapshotEntries: 10, spaceCheckMs: 20,
    failpoint: (name) => { if (short && (name === 'snapshot.beforeRename' || name === 'wal.probe')) throw emfile(); },
  });
  log.onFatal((error) => fatal.push(error));
  try {
    await Promise.all(Array.from({ length: 12 }, (_, i) => log.propose(grant(i))));
    await log.propose(grant(12)).catch(() => undefined); // starts the snapshot, or is the batch that fences
    await log.snapshotSettled();
    await t.rejects(log.propose(grant(13)).then(() => log.propose(grant(14))), /EMFILE|stopped accepting writes/, 'writes stop: nothing is acknowledged that was not written');
    await new Promise((resolve) => setTimeout(resolve, 150)); // several checks, each refused again
    t.same(fatal, [], 'not fatal (it was: raft.storage_broken, and the daemon exited)');
    t.notOk(log.isLeader(), 'fenced');
    t.match((log.status().storage as { full: unknown }).full, { reason: 'descriptors' }, 'status says why');
    t.equal(records.filter((r) => r['event'] === 'raft.storage_fd_exhausted').length, 1, 'said once, whatever the checks that fail again');
    short = false;
    const until = Date.now() + 5000;
    while (!log.isLeader() && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 10));
    t.ok(log.isLeader(), 'leads again once files open');
    t.equal(records.filter((r) => r['event'] === 'raft.storage_fd_recovered').length, 1, 'the end said once');
    await Promise.all(Array.from({ length: 12 }, (_, i) => log.propose(grant(20 + i))));
    await log.snapshotSettled();
  } finally {
    await log.close();
  }
  const again = await open(dir);
  t.ok(again.fsm.lease(0x0a000001) && again.fsm.lease(0x0a00001f), 'leases from before and after are on the disk');
  await again.close();
});
