import t from 'tap';
import { cpSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { systemClock } from '../lib/clock.js';
import { seededRandom } from '../lib/random.js';
import { createLogger, silentLogger } from '../lib/log.js';
import { RaftStateLog, readMemberFile } from './raft-state-log.js';
import { scanSegment } from './raft/wal.js';
import { MemoryHub } from '../test/support/memory-link.js';
import type { Command } from './commands.js';

// What the WAL's refusal tells an operator to do with a damaged member of a cluster
// (cluster/raft/README.md, "Damaged storage"): move its raft directory aside and start it; it
// rejoins empty and the leader sends it the snapshot and the entries it lacks.

const grant = (i: number): Command => ({ type: 'lease.grant', ip: 0x0a000000 + i, mac: `02:00:00:00:00:${(i & 0xff).toString(16).padStart(2, '0')}`, subnet: '10.0.0.0/8', leaseMs: 3_600_000 });

async function until(what: string, condition: () => boolean, ms = 10_000): Promise<void> {
  const end = performance.now() + ms;
  while (!condition()) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

interface Line { event?: string; msg?: string; member?: string; acked?: number; lastIndex?: number }

/** Three members a, b, c on disk under a scratch directory, linked by a MemoryHub; closed and removed at teardown. */
function threeMembers(t: { teardown(fn: () => Promise<void>): void }, prefix: string, firstSeed: number, where: (root: string, id: string) => { dir: string; memberFile: string }, extra: { snapshotEntries?: number } = {}): { root: string; lines: Line[]; open: (id: string) => Promise<RaftStateLog>; logs: Map<string, RaftStateLog> } {
  const alive = setInterval(() => undefined, 1000); // the hosts' timers are unref'd
  const root = mkdtempSync(join(tmpdir(), prefix));
  const hub = new MemoryHub();
  const members = ['a', 'b', 'c'];
  let seed = firstSeed;
  const lines: Line[] = [];
  const log = createLogger({ level: 'info', destination: { write: (line: string) => { lines.push(JSON.parse(line) as Line); } } });
  const open = (id: string): Promise<RaftStateLog> => RaftStateLog.open({
    id, ...where(root, id), conf: { voters: members, learners: [], witnesses: [] }, clock: systemClock, random: seededRandom(seed++),
    log: log.child({ member: id }), link: hub.link(id), proposeTimeoutMs: 5000, ...extra,
  });
  const logs = new Map<string, RaftStateLog>();
  t.teardown(async () => {
    for (const l of logs.values()) await l.close();
    clearInterval(alive);
    rmSync(root, { recursive: true, force: true });
  });
  return { root, lines, open, logs };
}

t.test('a member refused for damage to fsync\'d WAL bytes is rebuilt from its peers: its directory moved aside, it starts empty and catches up', async (t) => {
  const { root, lines, open, logs } = threeMembers(t, 'lanha-rebuild-', 1, (root, id) => ({ dir: join(root, id), memberFile: join(root, `${id}.member`) }), { snapshotEntries: 20 });
  const members = ['a', 'b', 'c'];
  for (const id of members) logs.set(id, await open(id));
  const leader = (): RaftStateLog | undefined => [...logs.values()].find((l) => l.isLeader());
  await until('a leader', () => leader() !== undefined);
  const lead = leader()!;
  for (let i = 1; i <= 50; i++) await lead.propose(grant(i));
  const victim = members.find((id) => logs.get(id) !== lead)!;
  await until('the victim to have joined', () => readMemberFile(join(root, `${victim}.member`)) === 'member');
  t.ok(lines.some((l) => l.event === 'raft.fresh'), 'a first start logs raft.fresh (no state, no member file)');
  t.equal(readMemberFile(join(root, `${victim}.member`)), 'member', 'a member file beside the raft directory says it took part');
  await until('the victim to apply everything', () => logs.get(victim)!.fsm.appliedIndex === lead.fsm.appliedIndex);
  await logs.get(victim)!.close();
  logs.delete(victim);

  // One flipped bit in the first entry of the victim's last segment, which fdatasyncs had made durable.
  const walDir = join(root, victim, 'wal');
  const seg = join(walDir, readdirSync(walDir).sort().pop()!);
  const bytes = readFileSync(seg);
  const first = scanSegment(bytes).records.find((r) => r.type === 1 && r.payload.length > 0)!;
  t.ok(first !== undefined, 'the last segment holds an entry');
  bytes[first.offset + 30] = bytes[first.offset + 30]! ^ 0x04;
  writeFileSync(seg, bytes);
  await t.rejects(open(victim), /record checksum mismatch, before offset \d+ that an fdatasync had made durable .* move .* aside/, 'start-up refuses, and says how to rebuild');

  for (let i = 51; i <= 55; i++) await lead.propose(grant(i)); // the others go on meanwhile
  renameSync(join(root, victim), join(root, `${victim}.damaged`));
  const rebuilt = await open(victim);
  logs.set(victim, rebuilt);
  t.equal(rebuilt.fsm.appliedIndex, 0, 'it starts empty');
  t.ok(lines.some((l) => l.event === 'raft.rebuilding' && /neither votes nor campaigns until a leader has caught it up/.test(l.msg ?? '')), 'logged: rebuilding, not voting');
  await lead.propose(grant(56));
  await until('the rebuilt member to catch up', () => rebuilt.fsm.appliedIndex === lead.fsm.appliedIndex);
  t.equal(rebuilt.fsm.hash(), lead.fsm.hash(), 'same state as the leader');
  await until('the rebuild to end', () => readMemberFile(join(root, `${victim}.member`)) === 'member');
  t.notOk(rebuilt.status()['rebuilding'], 'status: no longer rebuilding');
  t.ok(lines.some((l) => l.event === 'raft.rebuilt' && /it votes again \(in term \d+ only for \w+, in later terms as any member\)/.test(l.msg ?? '')), 'logged: when it votes again');
  t.equal(rebuilt.fsm.lease(0x0a000001)?.mac, '02:00:00:00:00:01', 'the first lease is there');
  t.equal(rebuilt.fsm.lease(0x0a000038)?.mac, '02:00:00:00:00:38', 'and the newest');
});

t.test('a leader fenced for a stalled fdatasync: another member leads meanwhile; once the call returns it rejoins as a follower and catches up', async (t) => {
  const alive = setInterval(() => undefined, 1000);
  const root = mkdtempSync(join(tmpdir(), 'lanha-rejoin-'));
  const hub = new MemoryHub();
  const members = ['a', 'b', 'c'];
  const hang = new Map<string, Promise<void>>();
  let seed = 11;
  const logs = new Map<string, RaftStateLog>();
  t.teardown(async () => {
    for (const log of logs.values()) await log.close();
    clearInterval(alive);
    rmSync(root, { recursive: true, force: true });
  });
  for (const id of members) {
    logs.set(id, await RaftStateLog.open({
      id, dir: join(root, id), conf: { voters: members, learners: [], witnesses: [] }, clock: systemClock, random: seededRandom(seed++), log: silentLogger,
      link: hub.link(id), proposeTimeoutMs: 5000, storageStallMs: 300,
      failpoint: async (name) => { if (name === 'wal.beforeFsync') await hang.get(id); },
    }));
  }
  const leader = (): RaftStateLog | undefined => [...logs.values()].find((l) => l.isLeader());
  await until('a leader', () => leader() !== undefined);
  const first = leader()!;
  const firstId = [...logs].find(([, l]) => l === first)![0];
  for (let i = 1; i <= 10; i++) await first.propose(grant(i));
  let release!: () => void;
  hang.set(firstId, new Promise<void>((resolve) => { release = resolve; }));
  await t.rejects(first.propose(grant(11)), /storage stalled/, 'the stalled leader fences itself');
  const fenced = first.host;
  await until('another leader', () => leader() !== undefined && leader() !== first);
  const second = leader()!;
  for (let i = 12; i <= 15; i++) await second.propose(grant(i));
  t.equal(first.host, fenced, 'still fenced while the call hangs');
  hang.delete(firstId);
  release();
  await until('the fenced member to rejoin', () => first.host !== fenced && first.host.fenced === undefined);
  t.equal(first.host.node.role, 'follower', 'it rejoins as a follower');
  await second.propose(grant(16));
  await until('it to catch up', () => first.fsm.appliedIndex === second.fsm.appliedIndex);
  t.equal(first.fsm.hash(), second.fsm.hash(), 'same state as the new leader');
  t.ok(second.isLeader(), 'the new leader still leads');
  t.equal(first.fsm.lease(0x0a000010)?.mac, '02:00:00:00:00:10', 'the entries committed while it was fenced are there');
});

// A member's state restored from an old copy (cluster/raft/README.md, "Restored from an old
// backup"): its directory and member file are copied, it runs on and acknowledges more, it stops,
// and the copy is put back. The leader's heartbeat says what it had acknowledged; the member finds
// its log behind that (Raft "amnesia"), logs raft.amnesia, says REBUILDING in status, records the
// rebuild in its member file, neither votes nor campaigns, and votes again once caught up. Before,
// nothing noticed: it voted at once with its old log and term.


t.test('a member restored from an old copy of its state directory is found out, does not vote, and is caught up past what it had acknowledged', async (t) => {
  const { root, lines, open, logs } = threeMembers(t, 'lanha-restore-', 11, (root, id) => ({ dir: join(root, id, 'raft'), memberFile: join(root, id, 'raft.member') }));
  const members = ['a', 'b', 'c'];
  for (const id of members) logs.set(id, await open(id));
  const leader = (): RaftStateLog | undefined => [...logs.values()].find((l) => l.isLeader());
  await until('a leader', () => leader() !== undefined);
  const lead = leader()!;
  for (let i = 1; i <= 10; i++) await lead.propose(grant(i));
  const victim = members.find((id) => logs.get(id) !== lead)!;
  await until('the victim to join and apply', () => readMemberFile(join(root, victim, 'raft.member')) === 'member' && logs.get(victim)!.fsm.appliedIndex === lead.fsm.appliedIndex);
  // The copy: its state directory, stopped (as a backup tool would take it).
  await logs.get(victim)!.close();
  logs.delete(victim);
  cpSync(join(root, victim), join(root, `${victim}.copy`), { recursive: true });
  const copied = { lastIndex: 0 };
  // It runs on and acknowledges 30 more entries.
  logs.set(victim, await open(victim));
  for (let i = 11; i <= 40; i++) await lead.propose(grant(i));
  await until('the victim to apply them', () => logs.get(victim)!.fsm.appliedIndex === lead.fsm.appliedIndex);
  const acked = (logs.get(victim)!.status() as unknown as { lastIndex: number }).lastIndex;
  await logs.get(victim)!.close();
  logs.delete(victim);
  // The copy put back.
  rmSync(join(root, victim), { recursive: true });
  cpSync(join(root, `${victim}.copy`), join(root, victim), { recursive: true });
  const restored = await open(victim);
  logs.set(victim, restored);
  copied.lastIndex = (restored.status() as unknown as { lastIndex: number }).lastIndex;
  t.ok(copied.lastIndex < acked, `the copy ends at ${copied.lastIndex}, before the ${acked} it acknowledged`);
  await until('raft.amnesia', () => lines.some((l) => l.event === 'raft.amnesia' && l.member === victim));
  const line = lines.find((l) => l.event === 'raft.amnesia')!;
  t.match(line, { acked, lastIndex: copied.lastIndex }, 'logged: what it had acknowledged and where its log ended');
  t.match(line.msg, /went back in time: .* neither votes nor campaigns until .* Never restore a member's Raft directory from a backup/, 'and what to do');
  await until('the leader to log it too', () => lines.some((l) => l.event === 'raft.peer_lost_storage' && l.member === lead.status().leader));
  t.pass('the leader logged raft.peer_lost_storage');
  await until('caught up past what it acknowledged', () => restored.fsm.appliedIndex >= acked && restored.fsm.appliedIndex === lead.fsm.appliedIndex);
  await lead.propose(grant(41));
  await until('the rebuild to end', () => readMemberFile(join(root, victim, 'raft.member')) === 'member' && restored.status()['rebuilding'] === undefined && restored.fsm.appliedIndex === lead.fsm.appliedIndex);
  t.ok(lines.some((l) => l.event === 'raft.rebuilt' && l.member === victim), 'raft.rebuilt: it votes again');
  for (let i = 1; i <= 41; i++) t.ok(restored.fsm.lease(0x0a000000 + i), `lease ${i} is on the restored member`);
  t.equal(restored.fsm.hash(), lead.fsm.hash(), 'same state as the leader');
});

t.test('while rebuilding after a restore, status and the member file say so', async (t) => {
  // The status line and doctor words for it (cluster/raft/status-text.ts, services/ops/doctor.ts).
  const { formatRaftStatus } = await import('./raft/status-text.js');
  const text = formatRaftStatus({ lastIndex: 4, rebuilding: true, amnesia: { leader: 'a', term: 3, acked: 8, lastIndex: 4 } });
  t.match(text, /REBUILDING: this member's Raft state went back in time \(restored from an old backup\?\): a says it acknowledged up to 8, its log ended at 4/);
});
