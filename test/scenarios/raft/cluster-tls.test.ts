// Three member processes (the daemon's own openRaftState) linked by mutual TLS from `cluster.tls`
// with certificates `makeClusterCerts` made: they elect a leader, commit what it is given on every
// member alike; a member whose key file is readable by others refuses to start and says why.
import t from 'tap';
import { chmodSync } from 'node:fs';
import { join } from 'node:path';
import { localCluster } from './cluster-harness.js';

t.test('a 3-member cluster over TLS elects a leader and commits on every member', async (t) => {
  const cluster = await localCluster(3, { tls: true });
  t.teardown(() => cluster.cleanup());
  await Promise.all(cluster.members.map((m) => m.start()));
  await cluster.waitLeader(20_000);
  // A loaded machine may move the leadership meanwhile: each proposal goes to whoever leads now,
  // retried on "not leader" until a deadline (the count is bounded, the time only guards a hang).
  const deadline = performance.now() + 60_000;
  const propose = async (n: number): Promise<number> => {
    for (;;) {
      const leader = await cluster.waitLeader(20_000);
      try {
        return await leader.propose(n);
      } catch (error) {
        if (performance.now() > deadline || !/leader/.test((error as Error).message)) throw error;
      }
    }
  };
  const acks: number[] = [];
  for (let n = 1; n <= 20; n++) acks.push(await propose(n));
  t.equal(acks.length, 20, 'every proposal acknowledged');
  t.ok(acks.every((index, i) => i === 0 || index > acks[i - 1]!), 'at increasing log indexes');
  let statuses = await Promise.all(cluster.members.map((m) => m.status()));
  for (let i = 0; i < 200 && !statuses.every((s) => s.appliedIndex >= acks[19]!); i++) {
    await new Promise((r) => setTimeout(r, 25));
    statuses = await Promise.all(cluster.members.map((m) => m.status()));
  }
  t.ok(statuses.every((s) => s.commitIndex >= acks[19]! && s.appliedIndex >= acks[19]!), `committed and applied everywhere: ${JSON.stringify(statuses.map((s) => s.appliedIndex))}`);
  t.equal(new Set(statuses.map((s) => s.stateHash)).size, 1, 'one state on every member');
  t.equal(statuses.filter((s) => s.role === 'leader').length, 1, 'one leader');
  const leases = await Promise.all(cluster.members.map((m) => m.leases()));
  for (const l of leases) t.same([...l].sort((a, b) => a - b).slice(-20), Array.from({ length: 20 }, (_, i) => i + 1), 'each member holds the 20 entries');
});

t.test('a member whose TLS key is readable by others does not start, and says which file', async (t) => {
  const cluster = await localCluster(3, { tls: true });
  t.teardown(() => cluster.cleanup());
  const m1 = cluster.members[0]!;
  chmodSync(join(cluster.dir, 'm1.key'), 0o644);
  const failed = await m1.start().then(() => 'started', (error: Error) => error.message);
  t.not(failed, 'started');
  t.match(m1.output, /cluster\.tls\.key: .*m1\.key is mode 0644/);
});
