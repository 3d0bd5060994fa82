import t from 'tap';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { runLanctl, serveDaemon } from '../../support/daemon.js';
import { servedCluster } from './cluster-harness.js';

// `lanctl serve` members of three: one is stopped and its whole state directory removed (a dead SD
// card replaced by a new one with the same name and config: no raft directory, no member file) and
// started again. It starts fresh, hears from the leader that the cluster had a log, rebuilds
// (not voting) until caught up, then votes: with the old leader stopped, it and the third member
// elect a new one. Then the same loss with the operator's statement (`lanctl cluster rejoin`)
// before the start: it is rebuilding from the start (cluster/raft/README.md, "A member with no state").

interface Status { cluster: { role: string; leader: string | null; term: number; appliedIndex: number; stateHash?: string; rebuilding?: boolean; fresh?: boolean } }

const status = async (file: string): Promise<Status> => JSON.parse((await runLanctl(['status', '--json', '--config', file])).stdout) as Status;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const events = (logs: string): string[] => logs.split('\n').flatMap((l) => {
  const m = /"event":"(raft\.(?:fresh|rebuilding|rebuilt|joined))"/.exec(l);
  return m ? [m[1]!] : [];
});
const memberFileState = (stateDir: string): string => readFileSync(join(stateDir, 'raft.member'), 'utf8').split('\n')[0]!;

t.test('a daemon whose whole state directory was lost starts fresh, rebuilds from the leader without voting, then votes again', async (t) => {
  const { cluster, daemons } = await servedCluster(t);
  const leaderNow = async (among: string[]): Promise<string | undefined> => {
    for (let i = 0; i < 200; i++) {
      const statuses = await Promise.all(among.map((name) => status(cluster.members.find((m) => m.name === name)!.configFile)));
      const leaders = new Set(statuses.map((s) => s.cluster.leader));
      const leader = [...leaders][0];
      if (leaders.size === 1 && leader !== null && leader !== undefined && among.includes(leader)) return leader;
      await sleep(100);
    }
    return undefined;
  };
  const leaderName = (await leaderNow(cluster.members.map((m) => m.name)))!;
  t.ok(leaderName, `leader ${leaderName}`);
  for (let i = 0; i < 100 && cluster.members.some((m) => memberFileState(join(cluster.dir, m.name)) !== 'member'); i++) await sleep(100);
  for (const m of cluster.members) {
    t.equal(memberFileState(join(cluster.dir, m.name)), 'member', `${m.name} joined: its member file says member`);
    const seen = events(daemons.get(m.name)!.logs());
    t.equal(seen[0], 'raft.fresh', `${m.name}: a first start logs raft.fresh`);
    t.ok(seen.includes('raft.joined') || seen.includes('raft.rebuilt'), `${m.name}: then joined (${seen.join(', ')})`);
  }

  const victim = cluster.members.find((m) => m.name !== leaderName)!;
  const third = cluster.members.find((m) => m.name !== leaderName && m !== victim)!;
  const stateDir = join(cluster.dir, victim.name);
  await daemons.get(victim.name)!.stop();
  daemons.delete(victim.name);
  rmSync(stateDir, { recursive: true, force: true });
  // The leader is down too while the new disk starts: the third member campaigns, its vote request
  // shows a commit index, and the wiped member takes that as a sign the cluster existed before it.
  await daemons.get(leaderName)!.stop();
  daemons.delete(leaderName);
  const wiped = await serveDaemon(victim.configFile);
  daemons.set(victim.name, wiped);
  let held: Status | undefined;
  for (let i = 0; i < 300; i++) {
    held = await status(victim.configFile).catch(() => undefined);
    if (held?.cluster.rebuilding === true && held.cluster.fresh !== true) break;
    await sleep(50);
  }
  t.ok(held?.cluster.rebuilding === true && held.cluster.fresh !== true, 'status: rebuilding (no longer fresh)');
  t.same(events(wiped.logs()), ['raft.fresh', 'raft.rebuilding'], 'logged: fresh at start, rebuilding once the third member\'s vote request showed a commit index');
  const line = wiped.logs().split('\n').find((l) => l.includes('"event":"raft.rebuilding"')) ?? '';
  t.match(line, /"reason":"no-state"/, 'the rebuilding line says it started with no state');
  t.match(line, new RegExp(`the cluster committed entries before it came \\(candidate ${third.name} \\(term \\d+\\) knows commit index \\d+\\)`), 'and what showed the cluster existed');
  t.equal(memberFileState(stateDir), 'rebuilding', 'its member file says rebuilding');
  t.match((await runLanctl(['status', '--config', victim.configFile])).stdout, /\nREBUILDING: this member lost its Raft storage/, 'lanctl status prints the REBUILDING line');
  const doctor = JSON.parse((await runLanctl(['doctor', '--json', '--config', victim.configFile])).stdout) as { findings?: Array<{ id: string }> } | Array<{ id: string }>;
  const findings = Array.isArray(doctor) ? doctor : doctor.findings ?? [];
  t.ok(findings.some((f) => f.id === 'raft.rebuilding'), 'doctor reports raft.rebuilding');
  // It does not vote: the third member, campaigning, gets no leader with it. (Whatever the wait,
  // without its vote no leader of two can be elected; with it, one would be within a few
  // election timeouts.)
  await sleep(3000);
  const both = await Promise.all([victim, third].map((m) => status(m.configFile)));
  t.same(both.map((s) => s.cluster.leader), [null, null], 'no leader among the two: the wiped member does not vote while rebuilding');

  // The old leader comes back: it and the third elect a leader, who catches the wiped member up.
  daemons.set(leaderName, await serveDaemon(cluster.members.find((m) => m.name === leaderName)!.configFile));
  for (let i = 0; i < 300 && !wiped.logs().includes('"event":"raft.rebuilt"'); i++) await sleep(100);
  if (!wiped.logs().includes('"event":"raft.rebuilt"')) t.comment(wiped.logs().split('\n').filter((l) => l.includes('"raft.')).join('\n'));
  t.same(events(wiped.logs()), ['raft.fresh', 'raft.rebuilding', 'raft.rebuilt'], 'then rebuilt when caught up');
  t.match(wiped.logs(), /"event":"raft.rebuilt".*it votes again/, 'and it says it votes again');
  t.equal(memberFileState(stateDir), 'member', 'its member file says member again');

  // The same state as the leader.
  let mine: Status | undefined, theirs: Status | undefined;
  for (let i = 0; i < 50; i++) {
    mine = await status(victim.configFile);
    theirs = await status(cluster.members.find((m) => m.name === (mine!.cluster.leader ?? leaderName))!.configFile);
    if (mine.cluster.appliedIndex === theirs.cluster.appliedIndex && !mine.cluster.rebuilding) break;
    await sleep(100);
  }
  t.notOk(mine?.cluster.rebuilding, 'status: no longer rebuilding');
  t.equal(mine?.cluster.stateHash, theirs?.cluster.stateHash, 'the same state hash as the leader');

  // It votes: with the leader stopped, the rebuilt member and the third elect one of them (two
  // votes of three, one of them its own).
  const leaderNowName = mine?.cluster.leader ?? leaderName;
  await daemons.get(leaderNowName)!.stop();
  daemons.delete(leaderNowName);
  const survivors = cluster.members.map((m) => m.name).filter((n) => n !== leaderNowName);
  const next = await leaderNow(survivors);
  t.ok(next !== undefined && survivors.includes(next), `the two left elect a leader (${next}): the rebuilt member voted`);
  const restartName = leaderNowName;
  daemons.set(restartName, await serveDaemon(cluster.members.find((m) => m.name === restartName)!.configFile));

  // The operator's statement: stop it, lose the whole state directory again, `lanctl cluster
  // rejoin` before the start. Refused while the daemon runs.
  const again = third.name === next ? victim : third;
  const againDir = join(cluster.dir, again.name);
  const busy = await runLanctl(['cluster', 'rejoin', '--config', again.configFile]);
  t.equal(busy.code, 1, 'refused while lanha runs on that state directory');
  t.match(busy.stderr, /lanha runs on .*stop it first/);
  const before = await status(again.configFile);
  await daemons.get(again.name)!.stop();
  daemons.delete(again.name);
  const kept = await runLanctl(['cluster', 'rejoin', '--config', again.configFile]);
  t.equal(kept.code, 1, 'refused for a member that has its Raft state');
  t.match(kept.stderr, /holds this member's Raft state: it votes from that state/);
  rmSync(againDir, { recursive: true, force: true });
  const ok = await runLanctl(['cluster', 'rejoin', '--config', again.configFile]);
  t.equal(ok.code, 0, ok.stderr);
  t.match(ok.stdout, /raft\.member: rebuilding\. At its next start this member rejoins/);
  t.equal(memberFileState(againDir), 'rebuilding', 'the member file says rebuilding before the first start');
  const rejoined = await serveDaemon(again.configFile);
  daemons.set(again.name, rejoined);
  for (let i = 0; i < 300 && !rejoined.logs().includes('"event":"raft.rebuilt"'); i++) await sleep(50);
  t.same(events(rejoined.logs()), ['raft.rebuilding', 'raft.rebuilt'], 'rebuilding from the start (never fresh), rebuilt when caught up');
  // The leader it had acknowledged entries to, still leading, says it lost them (a leader elected
  // since then has no acknowledgement from it to compare with).
  const after = await status(again.configFile);
  const lossLine = [...daemons.values()].flatMap((d) => d.logs().split('\n')).find((l) => l.includes('"event":"raft.peer_lost_storage"') && l.includes(`"peer":"${again.name}"`));
  if (after.cluster.term === before.cluster.term && after.cluster.leader === before.cluster.leader) {
    t.match(lossLine, new RegExp(`${again.name} answered with a log ending at 0 after acknowledging index \\d+: it lost its Raft storage`), 'the leader logged that the member lost what it had acknowledged');
  } else {
    t.comment(`leadership moved while ${again.name} was down (term ${before.cluster.term} -> ${after.cluster.term}): no raft.peer_lost_storage expected`);
  }
  t.equal(memberFileState(againDir), 'member');
  t.ok(existsSync(join(againDir, 'raft')), 'its raft directory is back');
});
