import t from 'tap';
import { existsSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { runLanctl, serveDaemon } from '../../support/daemon.js';
import { servedCluster } from './cluster-harness.js';

// `lanctl serve` members of three: one is stopped, its raft directory moved aside (what the WAL's
// refusal after damage asks for) and started again. It says it is rebuilding and does not vote
// (log, status, doctor), the leader catches it up, and it logs when it votes again, with the
// leader's state hash (cluster/raft/README.md, "A rebuilt member does not vote until caught up").

interface Status { cluster: { role: string; leader: string | null; term: number; appliedIndex: number; stateHash?: string; rebuilding?: boolean } }

const status = async (file: string): Promise<Status> => JSON.parse((await runLanctl(['status', '--json', '--config', file])).stdout) as Status;

t.test('a daemon whose raft directory was moved aside rejoins as a rebuilt member: not voting until caught up, then it says it votes again', async (t) => {
  const { cluster, daemons } = await servedCluster(t);
  let statuses: Status[] = [];
  for (let i = 0; i < 150; i++) {
    statuses = await Promise.all(cluster.members.map((m) => status(m.configFile)));
    const leaders = new Set(statuses.map((s) => s.cluster.leader));
    if (leaders.size === 1 && !leaders.has(null)) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const leaderName = statuses[0]!.cluster.leader!;
  t.ok(leaderName, `leader ${leaderName}`);
  const victim = cluster.members.find((m) => m.name !== leaderName)!;
  const stateDir = join(cluster.dir, victim.name);
  t.equal(readFileSync(join(stateDir, 'raft.member'), 'utf8').split('\n')[0], 'member', 'each member keeps a member file beside its raft directory');

  await daemons.get(victim.name)!.stop();
  daemons.delete(victim.name);
  renameSync(join(stateDir, 'raft'), join(stateDir, 'raft.damaged'));
  const rebuilt = await serveDaemon(victim.configFile);
  daemons.set(victim.name, rebuilt);
  t.match(rebuilt.logs(), /"event":"raft.rebuilding".*neither votes nor campaigns until a leader has caught it up/, 'logged at start: rebuilding, not voting');

  let mine: Status | undefined;
  for (let i = 0; i < 300 && !rebuilt.logs().includes('"event":"raft.rebuilt"'); i++) await new Promise((r) => setTimeout(r, 100));
  // Then the same state as the leader of the time (leadership may have moved while the member was
  // down, on a loaded machine).
  let theirs: Status | undefined;
  for (let i = 0; i < 30; i++) {
    mine = await status(victim.configFile);
    const name = mine.cluster.leader ?? leaderName;
    theirs = await status(cluster.members.find((m) => m.name === name)!.configFile);
    if (mine.cluster.appliedIndex === theirs.cluster.appliedIndex) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  if (!rebuilt.logs().includes('"event":"raft.rebuilt"')) t.comment(rebuilt.logs().split('\n').filter((l) => l.includes('"raft.')).join('\n'));
  t.match(rebuilt.logs(), /"event":"raft.rebuilt".*rebuilt: m\d, leader of term \d+, caught this member up to index \d+; it votes again/, 'logged when it votes again');
  t.notOk(mine?.cluster.rebuilding, 'status: no longer rebuilding');
  t.equal(mine?.cluster.stateHash, theirs?.cluster.stateHash, 'the same state hash as the leader');
  t.equal(readFileSync(join(stateDir, 'raft.member'), 'utf8').split('\n')[0], 'member', 'the member file says member again');
  t.ok(existsSync(join(stateDir, 'raft.damaged')), 'the damaged directory is left for inspection');
  const text = await runLanctl(['status', '--config', victim.configFile]);
  t.notMatch(text.stdout, /REBUILDING/);
});
