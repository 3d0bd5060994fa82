import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { systemClock } from '../lib/clock.js';
import { seededRandom } from '../lib/random.js';
import { silentLogger } from '../lib/log.js';
import { LanhaError } from '../lib/errors.js';
import { RaftStateLog } from './raft-state-log.js';
import { EtcdStateLog } from './etcd/state-log.js';
import { EtcdClient } from './etcd/client.js';
import type { StateLog } from './state-log.js';
import type { Command } from './commands.js';
import type { AppliedEntry } from './fsm.js';
import { MemoryHub } from '../test/support/memory-link.js';
import { etcdAvailable, startEtcdCluster, type EtcdCluster } from '../test/support/etcd.js';
import { grantCommand, until } from '../test/support/state-log.js';
import { haveTools } from '../test/support/tools.js';

// The StateLog contract, run against both backends (cluster.backend raft and etcd): three Raft
// members in-process over an in-memory link, or two lanha members on a real 3-member etcd on
// loopback. Each case proves one promise services rely on: one leader, the same entries in the
// same order everywhere, no propose without quorum (a clear error, reads still served), a restarted
// member catching up, a member far behind reloading a snapshot past compaction, and a failover that
// keeps every acknowledged entry.

interface Backend {
  name: string;
  /** The members that can lead (raft: a, b, c; etcd: a, b). */
  members: string[];
  open(member: string, o?: { snapshotEntries?: number }): Promise<StateLog>;
  /** Make a majority of the state's voters unreachable, and bring them back. */
  loseQuorum(): Promise<void>;
  regainQuorum(): Promise<void>;
  /** Throw away history a far-behind member would need (etcd: compact; raft: its log is already compacted by snapshots). */
  compact(): Promise<void>;
  stop(): Promise<void>;
}

async function raftBackend(): Promise<Backend> {
  const dir = mkdtempSync(join(tmpdir(), 'lanha-contract-raft-'));
  const hub = new MemoryHub();
  const members = ['a', 'b', 'c'];
  const open = new Map<string, StateLog>();
  let seed = 1;
  return {
    name: 'raft',
    members,
    open: async (id, o = {}) => {
      const log = await RaftStateLog.open({
        id, dir: join(dir, id), conf: { voters: members, learners: [], witnesses: [] }, clock: systemClock, random: seededRandom(seed++), log: silentLogger,
        link: hub.link(id), proposeTimeoutMs: 2000, ...(o.snapshotEntries !== undefined ? { snapshotEntries: o.snapshotEntries } : {}),
      });
      open.set(id, log);
      return log;
    },
    // The contract runs with the members it opened; quorum loss is two of the three closed.
    loseQuorum: async () => undefined,
    regainQuorum: async () => undefined,
    compact: async () => undefined,
    stop: async () => {
      for (const log of open.values()) await log.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function etcdBackend(): Promise<Backend> {
  const cluster: EtcdCluster = await startEtcdCluster(3);
  const open: StateLog[] = [];
  const prefix = `/lanha/contract-${process.pid}/`;
  return {
    name: 'etcd',
    members: ['a', 'b'],
    open: async (id, o = {}) => {
      const log = await EtcdStateLog.open({
        id, client: new EtcdClient({ endpoints: cluster.endpoints, dialTimeoutMs: 300, requestTimeoutMs: 1500 }), prefix, clock: systemClock, log: silentLogger,
        leaseTtlMs: 1000, proposeTimeoutMs: 2000, resignHoldOffMs: 1500, ...(o.snapshotEntries !== undefined ? { snapshotEntries: o.snapshotEntries } : {}),
      });
      open.push(log);
      return log;
    },
    loseQuorum: async () => { await cluster.kill(1); await cluster.kill(2); },
    regainQuorum: async () => { await Promise.all([cluster.restart(1), cluster.restart(2)]); },
    compact: async () => {
      const client = new EtcdClient({ endpoints: cluster.endpoints });
      const { revision } = await client.range('/');
      await client.compact(revision);
      client.close();
    },
    stop: async () => {
      for (const log of open) await log.close();
      await cluster.stop();
    },
  };
}

const grant = grantCommand;

async function leaderOf(logs: Map<string, StateLog>): Promise<[string, StateLog]> {
  let found: [string, StateLog] | undefined;
  await until('one leader', () => {
    const leaders = [...logs].filter(([, l]) => l.isLeader());
    if (leaders.length === 1) found = leaders[0];
    return leaders.length === 1;
  });
  return found!;
}

/** Proposes on whoever leads, retrying a not-leader refusal (as a DHCP client retries) for up to 10 s. */
async function propose(logs: Map<string, StateLog>, command: Command): Promise<AppliedEntry> {
  const deadline = performance.now() + 10_000;
  for (;;) {
    const [, leader] = await leaderOf(logs);
    try {
      return await leader.propose(command);
    } catch (error) {
      if (!(error instanceof LanhaError) || error.code !== 'not-leader' || performance.now() > deadline) throw error;
    }
  }
}

async function sameState(logs: Iterable<StateLog>, leases: number): Promise<void> {
  const all = [...logs];
  await until(`${leases} leases and one state hash on every member`, () => all.every((l) => [...l.fsm.leases()].length === leases) && new Set(all.map((l) => l.fsm.hash())).size === 1);
}

for (const make of [raftBackend, etcdBackend]) {
  const name = make === raftBackend ? 'raft' : 'etcd';
  t.test(`StateLog contract: ${name}`, async (t) => {
    if (name === 'etcd' && !etcdAvailable() && !haveTools(t, ['etcd'], 'StateLog contract on etcd (Debian etcd-server)')) return;
    const backend = await make();
    // The backends unref their timers (a daemon exits when its services stop): keep this test's loop alive.
    const alive = setInterval(() => undefined, 1000);
    t.teardown(async () => { clearInterval(alive); await backend.stop(); });
    const logs = new Map<string, StateLog>();
    for (const id of backend.members) logs.set(id, await backend.open(id, { snapshotEntries: 40 }));

    await t.test('one leader; the same entries in the same order on every member', async (t) => {
      const entries = await Promise.all(Array.from({ length: 30 }, (_, i) => propose(logs, grant(i))));
      const indexes = entries.map((e) => e.index);
      if (name === 'raft') t.equal(new Set(indexes).size, 30, 'every acknowledged entry has its own index');
      // etcd: the index is the revision of the txn that carried the entry; commands proposed
      // together share one txn, so one revision.
      else t.ok(indexes.every((i) => i > 0) && new Set(indexes).size <= 30, `every acknowledged entry has its txn's revision (${new Set(indexes).size} for 30 entries)`);
      const [, leader] = await leaderOf(logs);
      t.ok(entries.every((e) => leader.fsm.appliedIndex >= e.index), 'acknowledged = applied on the leader');
      t.ok(entries.every((e) => e.command.type === 'lease.grant' && leader.fsm.lease(e.command.ip)?.index === e.index), 'each lease records the index it was acknowledged at');
      await sameState(logs.values(), 30);
      t.pass('every member applied the 30 entries to the same state');
      // DHCP lease caching answers from the applied state only where the backend says it is current:
      // on the leader once it applied an entry of its own term, never on a follower; etcd never says.
      if (name === 'raft') {
        const [leaderId] = await leaderOf(logs);
        t.ok([...logs].every(([id, l]) => (l.stateCurrent?.() === true) === (id === leaderId)), 'only the leader says its state is current');
      } else {
        t.ok([...logs.values()].every((l) => l.stateCurrent === undefined), 'the etcd backend does not say: no cached ACKs');
      }
    });

    await t.test('a follower refuses to propose and names the leader', async (t) => {
      const [leaderId] = await leaderOf(logs);
      const [, follower] = [...logs].find(([id]) => id !== leaderId)!;
      await until('the follower knows the leader', () => follower.status().leader === leaderId);
      await t.rejects(follower.propose(grant(999)), { code: 'not-leader', message: new RegExp(`the leader is ${leaderId}`) });
    });

    await t.test('a restarted member catches up; a member behind a snapshot and compaction reloads it', async (t) => {
      const [leaderId, leader] = await leaderOf(logs);
      const otherId = [...logs.keys()].find((id) => id !== leaderId)!;
      await logs.get(otherId)!.close();
      logs.delete(otherId);
      for (let round = 0; round < 3; round++) await Promise.all(Array.from({ length: 40 }, (_, i) => propose(logs, grant(100 + round * 40 + i))));
      await until('a snapshot', () => Number(leader.status().snapshotIndex) > 0);
      t.ok(Number(leader.status().snapshotIndex) > 0, `the leader took a snapshot (at ${String(leader.status().snapshotIndex)})`);
      await backend.compact();
      logs.set(otherId, await backend.open(otherId, { snapshotEntries: 40 }));
      await sameState(logs.values(), 150);
      t.pass(`${otherId} reopened and holds the same 150 leases as ${leaderId}`);
    });

    await t.test('the leader goes away: another member leads with every acknowledged entry', async (t) => {
      const [leaderId] = await leaderOf(logs);
      const acked = [...logs.get(leaderId)!.fsm.leases()].map((l) => l.ip);
      await logs.get(leaderId)!.close();
      logs.delete(leaderId);
      const [nextId, next] = await leaderOf(logs);
      t.not(nextId, leaderId, `${nextId} leads now`);
      t.same(acked.filter((ip) => next.fsm.lease(ip) === undefined), [], 'no acknowledged lease is missing on the new leader');
      await propose(logs, grant(500));
      t.ok(next.fsm.lease(0x0a000000 + 500), 'and it accepts new entries');
      logs.set(leaderId, await backend.open(leaderId, { snapshotEntries: 40 }));
      await sameState(logs.values(), 151);
    });

    await t.test('without quorum: propose fails with a clear error, reads keep serving', async (t) => {
      const [leaderId, leader] = await leaderOf(logs);
      const leasesBefore = [...leader.fsm.leases()].length;
      const closed: string[] = [];
      if (name === 'raft') {
        for (const id of [...logs.keys()].filter((id) => id !== leaderId)) { await logs.get(id)!.close(); logs.delete(id); closed.push(id); }
      } else {
        await backend.loseQuorum();
      }
      const error = await leader.propose(grant(600)).then(() => null, (e: unknown) => e);
      t.ok(error instanceof LanhaError && (error.code === 'unavailable' || error.code === 'not-leader'), `propose failed: ${String((error as Error | null)?.message)}`);
      await until('leadership dropped without quorum', () => !leader.isLeader());
      t.equal([...leader.fsm.leases()].length, leasesBefore, 'the state is still readable, unchanged');
      t.equal(leader.fsm.lease(0x0a000000 + 600), undefined, 'the refused entry is not applied');
      if (name === 'raft') {
        for (const id of closed) logs.set(id, await backend.open(id, { snapshotEntries: 40 }));
      } else {
        await backend.regainQuorum();
      }
      await propose(logs, grant(601));
      const all = [...logs.values()];
      await until('entry 601 and one state hash on every member', () => all.every((l) => l.fsm.lease(0x0a000000 + 601) !== undefined) && new Set(all.map((l) => l.fsm.hash())).size === 1);
      // A proposal that timed out may still commit once quorum is back (etcd and Raft alike): it was
      // never acknowledged, so nothing was promised about it either way.
      const count = [...leader.fsm.leases()].length;
      t.ok(count === leasesBefore + 1 || count === leasesBefore + 2, `quorum back: a leader again, its entries apply everywhere (${count - leasesBefore} new)`);
    });

    for (const log of logs.values()) await log.close();
  });
}
