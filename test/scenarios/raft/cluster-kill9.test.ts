import t from 'tap';
import { localCluster, type MemberProcess } from './cluster-harness.js';

// Three real members on loopback high ports (authenticated TCP, WAL on disk). kill -9 the leader
// under proposal load: no acknowledged proposal may be lost and a new leader must take over fast;
// then restart every member: the state (hash) must be what it was.

t.test('3 processes: kill -9 the leader under load, then restart all', async (t) => {
  const cluster = await localCluster(3, { snapshotEntries: 300 });
  t.teardown(() => cluster.cleanup());
  await Promise.all(cluster.members.map((m) => m.start()));
  const first = await cluster.waitLeader(30_000);
  t.pass(`${first.name} leads`);

  const acked = new Set<number>();
  let next = 1;
  let target: MemberProcess = first;
  let stop = false;
  const failed: string[] = [];
  // 16 proposers, each retrying against whoever leads now; bounded by count and time.
  const deadline = performance.now() + 20_000;
  const proposer = async (): Promise<void> => {
    while (!stop && next <= 5000 && performance.now() < deadline) {
      const n = next++;
      try {
        await target.propose(n);
        acked.add(n);
      } catch (error) {
        failed.push((error as Error).message);
        await new Promise((r) => setTimeout(r, 20));
        target = cluster.leader() ?? target;
      }
    }
  };
  const load = Array.from({ length: 16 }, proposer);
  while (acked.size < 400 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  const killedAt = performance.now();
  await first.kill();
  // How fast is bench:raft's to measure (target 1500 ms); here only that one takes over, with a cap
  // generous for a loaded machine running two test files at once.
  const second = await cluster.waitLeader(30_000, first);
  const failoverMs = second.leaderSince! - killedAt;
  target = second;
  t.pass(`new leader ${second.name} ${Math.round(failoverMs)} ms after kill -9`);
  const ackedBefore = acked.size;
  while (acked.size < ackedBefore + 300 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  stop = true;
  await Promise.all(load);
  t.ok(acked.size >= ackedBefore + 300, `${acked.size} proposals acknowledged in all, ${failed.length} refused or lost with the old leader`);

  await first.start();
  const survivors = cluster.members;
  // Wait for every member to converge on the same applied state.
  let hashes: string[] = [];
  for (let i = 0; i < 400; i++) {
    const sts = await Promise.all(survivors.map((m) => m.status()));
    hashes = sts.map((s) => s.stateHash);
    if (new Set(hashes).size === 1 && new Set(sts.map((s) => s.appliedIndex)).size === 1) break;
    await new Promise((r) => setTimeout(r, 25));
  }
  t.equal(new Set(hashes).size, 1, 'all three members reach the same state hash (the killed one caught up)');
  for (const m of survivors) {
    const leases = new Set(await m.leases());
    const lost = [...acked].filter((n) => !leases.has(n));
    t.same(lost, [], `${m.name}: no acknowledged proposal lost (${acked.size} checked)`);
  }

  const before = hashes[0]!;
  await Promise.all(cluster.members.map((m) => m.kill()));
  await Promise.all(cluster.members.map((m) => m.start()));
  await cluster.waitLeader(30_000);
  let after: string[] = [];
  for (let i = 0; i < 400; i++) {
    const sts = await Promise.all(cluster.members.map((m) => m.status()));
    // The new leader's empty entry changes nothing in the state machine but the applied index.
    after = sts.map((s) => s.stateHash);
    if (sts.every((s) => s.appliedIndex === sts[0]!.appliedIndex && s.appliedIndex > 0)) break;
    await new Promise((r) => setTimeout(r, 25));
  }
  const leases = new Set(await cluster.members[0]!.leases());
  t.ok([...acked].every((n) => leases.has(n)), 'after restarting all three, every acknowledged proposal is there');
  t.same(after, [before, before, before], 'after restarting all three, every member has exactly the state hash of before');
});
