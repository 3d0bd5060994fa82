import t from 'tap';
import { runLanctl, serveDaemon, type ServedDaemon } from '../../support/daemon.js';
import { localCluster } from './cluster-harness.js';

// `lanctl serve` with a cluster block: three daemons find each other over the authenticated
// transport, elect one leader, and `lanctl status` shows the cluster from every node.

interface Status { cluster: { mode: string; role: string; leader: string | null; term: number; transport?: { peers: Record<string, { connected: boolean }> } } }

t.test('three daemons elect one leader that every node names', async (t) => {
  const cluster = await localCluster(3, { witness: true });
  const daemons: ServedDaemon[] = [];
  t.teardown(async () => {
    for (const d of daemons) await d.stop();
    await cluster.cleanup();
  });
  for (const m of cluster.members) daemons.push(await serveDaemon(m.configFile));
  let statuses: Status[] = [];
  for (let i = 0; i < 100; i++) {
    statuses = await Promise.all(cluster.members.map(async (m) => JSON.parse((await runLanctl(['status', '--json', '--config', m.configFile])).stdout) as Status));
    const leaders = new Set(statuses.map((s) => s.cluster.leader));
    if (leaders.size === 1 && !leaders.has(null) && statuses.every((s) => s.cluster.transport && Object.values(s.cluster.transport.peers).every((p) => p.connected))) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const leader = statuses[0]!.cluster.leader;
  t.ok(leader === 'm1' || leader === 'm2', `leader ${leader} is a server, not the witness m3`);
  t.same(statuses.map((s) => s.cluster.leader), [leader, leader, leader], 'every node names the same leader');
  t.same(statuses.map((s) => s.cluster.mode), ['cluster', 'cluster', 'cluster']);
  t.equal(statuses[2]!.cluster.role, 'witness');
  t.equal(statuses.filter((s) => s.cluster.role === 'leader').length, 1, 'exactly one reports itself leader');
  const text = await runLanctl(['status', '--config', cluster.members[0]!.configFile]);
  t.match(text.stdout, /m3\s+witness/);
});
