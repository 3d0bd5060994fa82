import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { systemClock } from '../lib/clock.js';
import { seededRandom } from '../lib/random.js';
import { silentLogger } from '../lib/log.js';
import { RaftStateLog } from './raft-state-log.js';
import type { Command } from './commands.js';
import type { Failpoint } from './raft/wal.js';

function scratch(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'lanha-rsl-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const open = (dir: string, extra: { failpoint?: Failpoint; snapshotEntries?: number } = {}): Promise<RaftStateLog> => RaftStateLog.open({
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
  t.ok(log.host.node.snapshotIndex > 0, `snapshot taken at ${log.host.node.snapshotIndex}`);
  const hash = log.fsm.hash();
  await log.close();
  const again = await open(dir, { snapshotEntries: 50 });
  t.equal([...again.fsm.leases()].length, 160);
  t.equal(again.fsm.hash(), hash, 'snapshot + log tail rebuild the same state');
  await again.close();
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
