import t from 'tap';
import { seededRandom } from '../../lib/random.js';
import { RaftNode } from './node.js';
import { EntryType, emptyMessage, type Entry, type Message, type NodeId, type Ready } from './types.js';

const make = (id: NodeId, voters: NodeId[], seed = 1, witnesses: NodeId[] = []): RaftNode => new RaftNode(
  { id, electionTicks: 10, heartbeatTicks: 2, random: seededRandom(seed), witnessFactor: 3 },
  { hardState: { term: 0, vote: null, commit: 0 }, conf: { voters, learners: [], witnesses }, entries: [] },
);

/** Three members a, b, c (random seeds from `seed`), run until one leads. */
function electedThree(seed: number): { ids: NodeId[]; nodes: Map<NodeId, RaftNode>; leader: RaftNode } {
  const ids = ['a', 'b', 'c'];
  const nodes = new Map(ids.map((id, i) => [id, make(id, ids, i + seed)]));
  runCluster(nodes, 40);
  return { ids, nodes, leader: [...nodes.values()].find((n) => n.role === 'leader')! };
}

t.test('one member: elects itself, commits only what the host has persisted', async (t) => {
  const n = make('a', ['a']);
  n.campaign();
  t.equal(n.role, 'leader');
  t.equal(n.term, 1);
  let rd = n.ready();
  t.ok(rd.mustSync, 'term, vote and the empty entry must be fsync\'d');
  t.same(rd.hardState, { term: 1, vote: 'a', commit: 0 });
  t.equal(rd.entries.length, 1);
  t.equal(rd.committedEntries.length, 0, 'nothing committed before the host persisted');
  const p = n.propose(new Uint8Array([1]));
  t.match(p, { ok: true, index: 2, term: 1 });
  t.equal(n.commitIndex, 0);
  n.advance(rd);
  t.equal(n.commitIndex, 1, 'persisted empty entry commits');
  rd = n.ready();
  t.same(rd.entries.map((e) => e.index), [2]);
  t.same(rd.committedEntries.map((e) => e.index), [1]);
  n.advance(rd);
  rd = n.ready();
  t.same(rd.committedEntries.map((e) => e.index), [2]);
  n.advance(rd);
  t.notOk(n.hasReady());
  t.ok(n.leaseValid(), 'a lone leader holds its lease');
});

/** Delivers every message at once (no faults): enough to see the core work end to end. */
function runCluster(nodes: Map<NodeId, RaftNode>, rounds: number, down = new Set<NodeId>()): void {
  for (let r = 0; r < rounds; r++) {
    for (const n of nodes.values()) if (!down.has(n.id)) n.tick();
    settle(nodes, (from, to) => !down.has(from) && !down.has(to), down);
  }
}

/** Runs the Ready cycle of every member not `down` and delivers what passes `link(from, to, m)`, until nothing moves. */
function settle(nodes: Map<NodeId, RaftNode>, link: (from: NodeId, to: NodeId, m: Message) => boolean, down = new Set<NodeId>()): void {
  for (let moved = true; moved;) {
    moved = false;
    const out: Message[] = [];
    for (const n of nodes.values()) {
      if (down.has(n.id) || !n.hasReady()) continue;
      const rd: Ready = n.ready();
      out.push(...rd.messages);
      n.advance(rd);
      moved = true;
    }
    for (const m of out) if (link(m.from, m.to, m)) nodes.get(m.to)?.step(m);
  }
}

t.test('three members: one leader, replication, and a new leader after the old one stops', async (t) => {
  const ids = ['a', 'b', 'c'];
  const nodes = new Map(ids.map((id, i) => [id, make(id, ids, i + 1)]));
  runCluster(nodes, 40);
  const leaders = [...nodes.values()].filter((n) => n.role === 'leader');
  t.equal(leaders.length, 1, 'exactly one leader');
  const leader = leaders[0]!;
  for (let i = 0; i < 5; i++) leader.propose(new Uint8Array([i]));
  runCluster(nodes, 5);
  for (const n of nodes.values()) t.equal(n.commitIndex, leader.lastIndex, `${n.id} committed everything`);
  t.ok(leader.leaseValid(), 'leader lease held while a majority answers heartbeats');
  runCluster(nodes, 40, new Set([leader.id]));
  const next = [...nodes.values()].filter((n) => n.id !== leader.id && n.role === 'leader');
  t.equal(next.length, 1, 'a new leader among the other two');
  t.ok(next[0]!.term > leader.term);
  t.equal(leader.role, 'leader', 'the cut-off old leader still thinks it leads...');
  for (let i = 0; i < 20; i++) leader.tick();
  t.notOk(leader.leaseValid(), '...but its lease has run out');
  t.not(leader.role, 'leader', 'and check-quorum made it step down');
});

t.test('a witness that wins hands leadership to a caught-up server at once', async (t) => {
  const ids = ['w', 'a', 'b'];
  const nodes = new Map(ids.map((id, i) => [id, make(id, ids, i + 7, ['w'])]));
  nodes.get('w')!.campaign();
  runCluster(nodes, 30);
  const leader = [...nodes.values()].find((n) => n.role === 'leader');
  t.ok(leader, 'someone leads');
  t.not(leader?.id, 'w', 'and it is not the witness');
});

t.test('leadership transfer: the target is caught up, gets TimeoutNow and wins without pre-vote', async (t) => {
  const { ids, nodes, leader } = electedThree(20);
  const target = ids.find((id) => id !== leader.id)!;
  leader.propose(new Uint8Array([9]));
  t.ok(leader.transferLeadership(target), 'transfer accepted');
  t.match(leader.propose(new Uint8Array([1])), { ok: false, reason: 'transferring' }, 'no new proposals during a transfer');
  runCluster(nodes, 3);
  t.equal(nodes.get(target)!.role, 'leader', `${target} leads after the transfer`);
  t.not(leader.role, 'leader');
  t.equal(nodes.get(target)!.term, leader.term, 'the old leader follows the new term');
});

t.test('membership: a learner catches up without voting, then is promoted and counts', async (t) => {
  const { encodeConfChange } = await import('./conf.js');
  const { EntryType } = await import('./types.js');
  const ids = ['a', 'b', 'c'];
  const nodes = new Map(ids.map((id, i) => [id, make(id, ids, i + 30)]));
  nodes.set('d', new RaftNode({ id: 'd', electionTicks: 10, heartbeatTicks: 2, random: seededRandom(99) },
    // A joining member starts from the membership its config file lists (the current voters).
    { hardState: { term: 0, vote: null, commit: 0 }, conf: { voters: ['a', 'b', 'c'], learners: [], witnesses: [] }, entries: [] }));
  runCluster(nodes, 40);
  const leader = [...nodes.values()].find((n) => n.role === 'leader')!;
  for (let i = 0; i < 10; i++) leader.propose(new Uint8Array([i]));
  t.match(leader.propose(encodeConfChange({ type: 'add-learner', id: 'd' }), EntryType.config), { ok: true });
  t.match(leader.propose(encodeConfChange({ type: 'promote', id: 'd' }), EntryType.config), { ok: false, reason: 'conf-pending' }, 'one change at a time');
  runCluster(nodes, 10);
  t.same(leader.conf.learners, ['d']);
  t.equal(nodes.get('d')!.commitIndex, leader.commitIndex, 'the learner has the whole log');
  t.notOk(nodes.get('d')!.isVoter(), 'a learner never campaigns');
  t.match(leader.propose(encodeConfChange({ type: 'promote', id: 'd' }), EntryType.config), { ok: true });
  runCluster(nodes, 10);
  t.same(leader.conf.voters, ['a', 'b', 'c', 'd']);
  t.same(nodes.get('d')!.conf.voters, ['a', 'b', 'c', 'd'], 'the new voter learned the membership from the log');
  t.match(leader.propose(encodeConfChange({ type: 'remove', id: 'c' }), EntryType.config), { ok: true });
  runCluster(nodes, 10, new Set(['c']));
  t.same(leader.conf.voters, ['a', 'b', 'd'], 'removal committed without the removed member');
});

t.test('election timeouts are drawn from [e, e + spread): the default spread is e, a failover budget narrows it', async (t) => {
  const firstCampaign = (seed: number, spread: number | undefined, id: NodeId = 'a'): number => {
    const n = new RaftNode(
      { id, electionTicks: 23, heartbeatTicks: 4, random: seededRandom(seed), witnessFactor: 3, ...(spread === undefined ? {} : { electionSpreadTicks: spread }) },
      { hardState: { term: 0, vote: null, commit: 0 }, conf: { voters: ['a', 'b', 'w'], learners: [], witnesses: ['w'] }, entries: [] },
    );
    for (let ticks = 1; ticks < 1000; ticks++) { n.tick(); if (n.role !== 'follower') return ticks; }
    return -1;
  };
  const range = (spread: number | undefined, id: NodeId = 'a'): [number, number] => {
    const seen = Array.from({ length: 300 }, (_, seed) => firstCampaign(seed + 1, spread, id));
    return [Math.min(...seen), Math.max(...seen)];
  };
  t.same(range(undefined), [23, 45], 'default: [23, 46)');
  t.same(range(11), [23, 33], 'spread 11: [23, 34)');
  t.same(range(11, 'w'), [69, 101], 'a witness scales both by its factor: [69, 102)');
  const lone = new RaftNode({ id: 'a', electionTicks: 23, heartbeatTicks: 4, leaseTicks: 17, random: seededRandom(1) },
    { hardState: { term: 0, vote: null, commit: 0 }, conf: { voters: ['a'], learners: [], witnesses: [] }, entries: [] });
  lone.campaign();
  t.equal(lone.leaseRemainingTicks(), 17, 'an explicit lease length (from a failover budget) replaces 0.9 x e');
});

t.test('heartbeats and their answers leave ahead of the Ready being persisted; only of the term on disk', async (t) => {
  const { ids, nodes, leader } = electedThree(1);
  const follower = [...nodes.values()].find((n) => n.role === 'follower')!;
  const term = leader.term;
  // The leader's next heartbeats (after a stall: several intervals' worth, only the newest counts).
  for (let i = 0; i < 6; i++) leader.tick();
  const beats = leader.takeHeartbeats(term);
  t.same(beats.map((m) => `${m.type} ${m.to}`).sort(), ids.filter((id) => id !== leader.id).map((id) => `heartbeat ${id}`), 'one heartbeat per member, the newest');
  t.equal(beats[0]!.context, leader.ticks, 'its send tick is now');
  t.same(leader.takeHeartbeats(term), [], 'taken out of the queue');
  // The follower has a write in progress (an append not yet persisted): the answer goes now anyway.
  leader.propose(new Uint8Array([9]));
  const appends = leader.ready().messages.filter((m) => m.to === follower.id && m.type === 'append');
  for (const m of appends) follower.step(m);
  const hb = beats.find((m) => m.to === follower.id)!;
  follower.step(hb);
  const answers = follower.takeHeartbeats(term);
  t.same(answers.map((m) => [m.type, m.context]), [['heartbeat-resp', hb.context]], 'answered at once, echoing the send tick');
  const rd = follower.ready();
  t.ok(rd.mustSync && rd.entries.length === 1, 'the append still waits for its fsync');
  t.notOk(rd.messages.some((m) => m.type === 'heartbeat-resp'), 'and the answer is not sent twice');
  leader.step(answers[0]!);
  t.ok(leader.leaseValid(), 'the answer counts for the lease from the heartbeat\'s send tick');
  // A heartbeat of a newer term than the one on disk: its answer waits for the term to be persisted.
  follower.advance(rd);
  follower.step({ ...hb, term: term + 1, context: 99 });
  t.same(follower.takeHeartbeats(term), [], 'not before the new term is on disk');
  t.ok(follower.ready().messages.some((m) => m.type === 'heartbeat-resp' && m.term === term + 1), 'it goes with the Ready that persists the term');
});

t.test('leaseAckAges: ticks since the send of each voter\'s newest acknowledged heartbeat', async (t) => {
  const { ids, nodes, leader } = electedThree(1);
  const others = ids.filter((id) => id !== leader.id);
  const ages = leader.leaseAckAges();
  t.same(Object.keys(ages).sort(), others, 'one entry per other voter');
  for (const id of others) t.ok(ages[id] !== null && ages[id]! <= 2, `${id} acknowledged a recent heartbeat (${ages[id]} ticks)`);
  for (let i = 0; i < 5; i++) leader.tick();
  t.ok(Object.values(leader.leaseAckAges()).every((a) => a !== null && a >= 5), 'they age with the ticks while no answer arrives');
  t.same(nodes.get(others[0]!)!.leaseAckAges(), {}, 'a follower has none');
});

t.test('a deposed leader votes for no one else until the lease it held has run out (unless a transfer asks)', async (t) => {
  const { ids, nodes, leader } = electedThree(1);
  const [b, c] = ids.filter((id) => id !== leader.id) as [string, string];
  t.ok(leader.leaseValid(), 'leading with a lease');
  const term = leader.term + 1;
  const vote = (from: string, context = 0): Message => ({ ...emptyMessage('vote', from, leader.id, term), index: leader.lastIndex, logTerm: leader.lastTerm, context });
  // A candidate's higher term reaches it first on an answer (as a stale leader is told to step down).
  leader.step(emptyMessage('append-resp', b, leader.id, term));
  t.equal(leader.role, 'follower', 'stepped down on the higher term');
  leader.ready();
  leader.step(vote(b));
  t.same(leader.ready().messages.filter((m) => m.type === 'vote-resp').map((m) => m.reject), [true], 'its vote refused while its lease may still run');
  leader.step(vote(c, 1));
  t.same(leader.ready().messages.filter((m) => m.type === 'vote-resp').map((m) => m.reject), [false], 'a transfer (TimeoutNow campaign) gets it: the leader gave its lease up first');
});

t.test('a transfer not done within an election timeout is abandoned and the leader stops leading (no lease back in that term)', async (t) => {
  const { ids, nodes, leader } = electedThree(1);
  const target = ids.find((id) => id !== leader.id)!;
  const term = leader.term;
  t.ok(leader.transferLeadership(target), 'transfer started');
  // The target never answers (paused, or its TimeoutNow is late): an election timeout passes.
  for (let i = 0; i < 10; i++) leader.tick();
  t.equal(leader.role, 'follower', 'stepped down instead of leading on');
  t.equal(leader.term, term, 'in the same term');
  t.notOk(leader.leaseValid(), 'no lease');
});

t.test('ticksUntilDue: the ticks before it only count, the one it names acts (leader: heartbeats; follower: campaign)', async (t) => {
  for (const seed of [1, 7, 23]) {
    const { nodes, leader } = electedThree(seed);
    runCluster(nodes, 3);
    const follower = [...nodes.values()].find((n) => n.role === 'follower')!;
    // Leader: messages only on the named tick (heartbeats here; the quorum check may come first and keep it leading).
    for (let round = 0; round < 4; round++) {
      const k = leader.ticksUntilDue();
      t.ok(k >= 1 && k <= 2, `leader: due within a heartbeat interval (${k})`);
      for (let i = 1; i < k; i++) {
        leader.tick();
        t.same([leader.hasReady(), leader.takeHeartbeats(leader.term).length, leader.role], [false, 0, 'leader'], `seed ${seed}: tick ${i} of ${k} does nothing`);
      }
      leader.tick();
      t.ok(leader.takeHeartbeats(leader.term).length > 0 || leader.hasReady(), `seed ${seed}: tick ${k} sends`);
      while (leader.hasReady()) leader.advance(leader.ready());
    }
    // Follower cut off from the leader: nothing until its election timeout, then it campaigns.
    const k = follower.ticksUntilDue();
    t.ok(k >= 1 && k < 20, `follower: due by its election timeout (${k})`);
    for (let i = 1; i < k; i++) {
      follower.tick();
      t.same([follower.role, follower.hasReady()], ['follower', false], `seed ${seed}: follower tick ${i} of ${k} does nothing`);
    }
    follower.tick();
    t.not(follower.role, 'follower', `seed ${seed}: tick ${k} starts a campaign`);
  }
  const lone = make('a', ['a']);
  t.ok(Number.isFinite(lone.ticksUntilDue()), 'a lone follower is due to elect itself');
  lone.campaign();
  t.equal(lone.ticksUntilDue(), Infinity, 'a lone leader has nothing to send: never due');
  const learner = new RaftNode({ id: 'x', electionTicks: 10, heartbeatTicks: 2, random: seededRandom(1) },
    { hardState: { term: 0, vote: null, commit: 0 }, conf: { voters: ['a'], learners: ['x'], witnesses: [] }, entries: [] });
  t.equal(learner.ticksUntilDue(), Infinity, 'a learner never campaigns: never due');
});

/**
 * The double vote of a member rebuilt with an empty directory: a elects itself in term 1 with r's
 * vote while b is cut off from both; r loses its storage and starts again empty (rebuilding or
 * not); once a is cut off too, b campaigns in term 1 and asks r. Returns the leaders of term 1.
 */
function rebuiltVoteScenario(rebuilding: boolean): { leadersOfTerm1: NodeId[]; r: RaftNode; nodes: Map<NodeId, RaftNode> } {
  const ids = ['a', 'b', 'r'];
  const nodes = new Map(ids.map((id, i) => [id, make(id, ids, i + 40)]));
  const a = nodes.get('a')!;
  const b = nodes.get('b')!;
  const cut = new Set(['b']);
  const link = (from: NodeId, to: NodeId): boolean => !cut.has(from) && !cut.has(to);
  // Past the start-up grace (a member just started votes for nobody for an election timeout); a
  // pre-vote started meanwhile is lost.
  for (let i = 0; i < 10; i++) for (const n of nodes.values()) n.tick();
  settle(nodes, () => false);
  a.campaign();
  settle(nodes, link);
  const r0 = nodes.get('r')!;
  if (a.role !== 'leader' || a.term !== 1 || r0.hardState().vote !== 'a') throw new Error('setup: a leads term 1 with r\'s vote');
  // r's directory is moved aside after damage; it starts with nothing, long after its start-up grace.
  const r = new RaftNode({ id: 'r', electionTicks: 10, heartbeatTicks: 2, random: seededRandom(77) },
    { hardState: { term: 0, vote: null, commit: 0 }, conf: { voters: ids, learners: [], witnesses: [] }, entries: [], rebuilding });
  nodes.set('r', r);
  // b, cut off from a, times out and campaigns (pre-vote, then vote) in term 1; r is its only peer.
  return { leadersOfTerm1: campaignWithR(nodes, 1), r, nodes };
}

/**
 * b, cut off from a, times out and campaigns (pre-vote, then vote) with r as its only peer; r ticks
 * past its start-up grace (a restart votes for nobody for an election timeout). Who led `term`
 * (a, which led it before, included).
 */
function campaignWithR(nodes: Map<NodeId, RaftNode>, term: number): NodeId[] {
  const b = nodes.get('b')!;
  const r = nodes.get('r')!;
  const leaders = new Set<NodeId>(['a']);
  for (let i = 0; i < 60 && b.role !== 'leader'; i++) {
    b.tick();
    if (i < 25) r.tick();
    settle(nodes, (from, to) => (from === 'b' && to === 'r') || (from === 'r' && to === 'b'));
    for (const n of [b, r]) if (n.role === 'leader' && n.term === term) leaders.add(n.id);
  }
  return [...leaders].sort();
}

t.test('a member rebuilt with an empty directory does not vote again in a term it voted in: no second leader of that term', async (t) => {
  const unsafe = rebuiltVoteScenario(false);
  t.same(unsafe.leadersOfTerm1, ['a', 'b'], 'without the rebuild rule (as before): r votes twice in term 1 and a and b both lead it');
  const safe = rebuiltVoteScenario(true);
  t.same(safe.leadersOfTerm1, ['a'], 'rebuilding: r grants neither pre-vote nor vote, a stays the only leader of term 1');
  t.ok(safe.r.rebuilding, 'r is still rebuilding: no leader has caught it up');
  t.equal(safe.r.hardState().vote, null, 'and it recorded no vote');

  // a (still leading term 1, with nothing new to write) reaches r again: r learns the term with a
  // as its vote and, its answer to a heartbeat saying its log ends below what a counts as its, is
  // caught up.
  const { r, nodes } = safe;
  const a = nodes.get('a')!;
  for (let i = 0; i < 6 && r.rebuilding; i++) { a.tick(); settle(nodes, (from, to) => from !== 'b' && to !== 'b'); }
  t.notOk(r.rebuilding, 'caught up by the leader: the rebuild is over');
  t.match(r.rebuilt, { leader: 'a', term: 1 }, 'by a, in term 1');
  t.ok(r.rebuilt!.index >= 1 && r.rebuilt!.index <= r.commitIndex, 'holding the commit index a had then');
  t.same(r.hardState(), { term: 1, vote: 'a', commit: a.commitIndex }, 'term 1 recorded with the leader as its vote');
  t.equal(r.lastIndex, a.lastIndex, 'r holds the leader\'s log');
  // A restart now: the term and that vote are on disk, so in term 1 it still votes for nobody else.
  const again = new RaftNode({ id: 'r', electionTicks: 10, heartbeatTicks: 2, random: seededRandom(78) },
    { hardState: r.hardState(), conf: { voters: ['a', 'b', 'r'], learners: [], witnesses: [] }, entries: r.entries(1, r.lastIndex + 1)! });
  for (let i = 0; i < 10; i++) again.tick();
  again.ready();
  again.step({ ...emptyMessage('vote', 'b', 'r', 1), index: 0, logTerm: 0 });
  t.match(again.ready().messages, [{ type: 'vote-resp', to: 'b', reject: true }], 'after a restart: no vote for b in term 1');
  again.step({ ...emptyMessage('vote', 'b', 'r', 2), index: again.lastIndex, logTerm: again.lastTerm });
  t.match(again.ready().messages, [{ type: 'vote-resp', to: 'b', reject: false, term: 2 }], 'and in term 2 it votes as any member (b\'s log is as long as its own)');
});

/**
 * A member whose state directory is restored from an old backup (Raft "amnesia"): a leads term 1;
 * entries 1-4 reach every member, then b is cut off and a commits more with r alone. r's state is
 * put back to a copy taken at entry 4 (term, vote and log as they were) and it restarts; a's next
 * heartbeat reaches it, and then a crashes before it can send r anything else. b and r are left:
 * does b, lacking what a and r committed, get r's vote? Returns who led term 2 and r.
 */
/** Members `ids` (random seeds from `seed`) past their start-up grace, and the first of them elected leader of term 1. */
function firstLeads(ids: NodeId[], seed: number): { nodes: Map<NodeId, RaftNode>; a: RaftNode } {
  const nodes = new Map(ids.map((id, i) => [id, make(id, ids, i + seed)]));
  const a = nodes.get(ids[0]!)!;
  for (let i = 0; i < 10; i++) for (const n of nodes.values()) n.tick();
  settle(nodes, () => false);
  a.campaign();
  settle(nodes, () => true);
  return { nodes, a };
}

function restoredBackupScenario(): { leadersOfTerm2: NodeId[]; r: RaftNode; committed: number; b: RaftNode } {
  const ids = ['a', 'b', 'r'];
  const { nodes, a } = firstLeads(ids, 60);
  const all = (): boolean => true;
  for (let i = 0; i < 3; i++) a.propose(new Uint8Array([i]));
  settle(nodes, all);
  const r0 = nodes.get('r')!;
  if (a.role !== 'leader' || a.term !== 1 || r0.lastIndex !== 4 || nodes.get('b')!.lastIndex !== 4) throw new Error('setup: a leads term 1, entries 1-4 everywhere');
  const backup = { hardState: r0.hardState(), entries: r0.entries(1, 5)! };
  const withoutB = (from: NodeId, to: NodeId): boolean => from !== 'b' && to !== 'b';
  for (let i = 0; i < 4; i++) a.propose(new Uint8Array([10 + i]));
  settle(nodes, withoutB);
  a.tick(); a.tick();
  settle(nodes, withoutB);
  const committed = a.commitIndex;
  if (committed !== 8 || (r0.lastIndex as number) !== 8) throw new Error(`setup: a committed 8 with r (commit ${committed}, r at ${r0.lastIndex})`);
  // r restarts on the copy, past its start-up grace.
  const r = new RaftNode({ id: 'r', electionTicks: 10, heartbeatTicks: 2, random: seededRandom(99) },
    { hardState: backup.hardState, conf: { voters: ids, learners: [], witnesses: [] }, entries: backup.entries });
  nodes.set('r', r);
  for (let i = 0; i < 10; i++) r.tick();
  settle(nodes, () => false);
  // One heartbeat of a reaches r, r's answer reaches a; whatever a sends next is lost: a crashes.
  a.tick(); a.tick();
  const beat = a.ready();
  a.advance(beat);
  for (const m of beat.messages) if (m.to === 'r' && m.type === 'heartbeat') r.step(m);
  const b = nodes.get('b')!;
  const leaders = new Set<NodeId>();
  for (let i = 0; i < 80; i++) {
    b.tick(); r.tick();
    settle(nodes, (from, to) => from !== 'a' && to !== 'a');
    for (const n of [b, r]) if (n.role === 'leader' && n.term >= 2) leaders.add(n.id);
  }
  return { leadersOfTerm2: [...leaders].sort(), r, committed, b };
}

t.test('a member restored from an old backup neither votes nor leads until caught up past what it acknowledged: no committed entry lost', async (t) => {
  const { leadersOfTerm2, r, committed, b } = restoredBackupScenario();
  t.same(leadersOfTerm2, [], `no leader without a: b lacks entries ${b.lastIndex + 1}-${committed} that a and r committed, and r does not vote for it (before: b led, losing them)`);
  t.ok(r.rebuilding, 'r knows it went back in time: it is rebuilding');
  t.match(r.amnesia, { leader: 'a', term: 1, acked: 8, lastIndex: 4 }, 'with what showed it: a said r had acknowledged 8, its log ends at 4');
  t.match(r.takeAmnesia(), { leader: 'a', acked: 8 }, 'told to the host once');
  t.equal(r.takeAmnesia(), undefined);
});

t.test('a member restored from an old backup rejoins once the leader has sent it past what it acknowledged', async (t) => {
  const ids = ['a', 'b', 'r'];
  const { nodes, a } = firstLeads(ids, 60);
  const r0 = nodes.get('r')!;
  const backup = { hardState: r0.hardState(), entries: r0.entries(1, r0.lastIndex + 1)! };
  for (let i = 0; i < 5; i++) a.propose(new Uint8Array([i]));
  settle(nodes, () => true);
  const acked = r0.lastIndex;
  const r = new RaftNode({ id: 'r', electionTicks: 10, heartbeatTicks: 2, random: seededRandom(98) },
    { hardState: backup.hardState, conf: { voters: ids, learners: [], witnesses: [] }, entries: backup.entries });
  nodes.set('r', r);
  let sawRebuilding = false;
  for (let i = 0; i < 20; i++) { a.tick(); settle(nodes, () => true); sawRebuilding ||= r.rebuilding || r.amnesia !== undefined; }
  t.ok(sawRebuilding, 'the heartbeat showed r it went back in time');
  t.ok(r.lastIndex >= acked, `r holds what it had acknowledged (${acked}) again`);
  t.notOk(r.rebuilding, 'and votes again');
  t.equal(a.role, 'leader', 'a leads on, undisturbed');
});

t.test('a rebuilding member never campaigns and ignores TimeoutNow; fresh members with empty logs still elect a leader', async (t) => {
  const r = new RaftNode({ id: 'r', electionTicks: 10, heartbeatTicks: 2, random: seededRandom(5) },
    { hardState: { term: 0, vote: null, commit: 0 }, conf: { voters: ['a', 'b', 'r'], learners: [], witnesses: [] }, entries: [], rebuilding: true });
  for (let i = 0; i < 200; i++) r.tick();
  t.equal(r.role, 'follower');
  t.equal(r.ticksUntilDue(), Infinity, 'no election timeout to wake for');
  r.step(emptyMessage('timeout-now', 'a', 'r', 3));
  t.equal(r.role, 'follower', 'a transfer to it is not taken');
  t.same(r.ready().messages, [], 'nothing sent');
  r.step({ ...emptyMessage('prevote', 'b', 'r', 5), index: 9, logTerm: 4 });
  r.step({ ...emptyMessage('vote', 'b', 'r', 5), index: 9, logTerm: 4 });
  const rd = r.ready();
  t.same(rd.messages, [], 'a pre-vote and a vote go unanswered');
  t.same(rd.hardState, { term: 5, vote: null, commit: 0 }, 'the election\'s term is taken on (to disk) with no vote');
  t.ok(r.rebuilding, 'still rebuilding');
  const { leader } = electedThree(50);
  t.equal(leader.role, 'leader', 'a first start (no member rebuilding) elects a leader');
});

const freshStorage = (voters: NodeId[]) => ({ hardState: { term: 0, vote: null, commit: 0 }, conf: { voters, learners: [], witnesses: [] }, entries: [], fresh: true });
const makeFresh = (id: NodeId, voters: NodeId[], seed: number, preVote = true): RaftNode =>
  new RaftNode({ id, electionTicks: 10, heartbeatTicks: 2, random: seededRandom(seed), preVote }, freshStorage(voters));

/**
 * The double vote of a member whose whole state directory was lost (member file too): every member
 * starts fresh and a leads term 1, commits entries everyone holds; b is cut off; a steps down and
 * wins term 2 with r's vote; r loses everything and starts again with no state (`fresh`, or as a
 * plain first start did before the rule); once a is cut off too, b campaigns in term 2 and asks r.
 * Returns the leaders of term 2.
 */
function wipedWholeScenario(fresh: boolean): { leadersOfTerm2: NodeId[]; r: RaftNode; nodes: Map<NodeId, RaftNode> } {
  const ids = ['a', 'b', 'r'];
  const nodes = new Map(ids.map((id, i) => [id, makeFresh(id, ids, i + 60)]));
  const a = nodes.get('a')!;
  const b = nodes.get('b')!;
  let cut = new Set<NodeId>();
  const link = (from: NodeId, to: NodeId): boolean => !cut.has(from) && !cut.has(to);
  for (let i = 0; i < 10; i++) for (const n of nodes.values()) n.tick();
  settle(nodes, () => false);
  a.campaign();
  settle(nodes, link);
  a.propose(new Uint8Array([1]));
  settle(nodes, link);
  a.tick(); a.tick(); // a heartbeat carries the commit index to everyone
  settle(nodes, link);
  if (a.role !== 'leader' || a.term !== 1 || b.commitIndex < 2 || [...nodes.values()].some((n) => n.rebuilding)) throw new Error('setup: a leads term 1, every member joined and b knows commit 2');
  // b is cut off; a, cut off from r for an election timeout, steps down (check-quorum); then a and
  // r meet again and a wins term 2 with r's vote.
  cut = new Set(['b']);
  const r0 = nodes.get('r')!;
  for (let i = 0; i < 25; i++) { a.tick(); r0.tick(); settle(nodes, () => false); }
  if (a.role === 'leader') throw new Error('setup: a steps down without r');
  a.campaign();
  settle(nodes, link);
  if (a.role !== 'leader' || (a.term as number) !== 2 || r0.hardState().vote !== 'a') throw new Error('setup: a leads term 2 with r\'s vote');
  // r's SD card dies: a new one, same name and config, no state at all.
  const r = new RaftNode({ id: 'r', electionTicks: 10, heartbeatTicks: 2, random: seededRandom(79) },
    { hardState: { term: 0, vote: null, commit: 0 }, conf: { voters: ids, learners: [], witnesses: [] }, entries: [], fresh });
  nodes.set('r', r);
  return { leadersOfTerm2: campaignWithR(nodes, 2), r, nodes };
}

t.test('a member whose whole state directory was lost does not vote again in a term it voted in: no second leader of that term', async (t) => {
  const unsafe = wipedWholeScenario(false);
  t.same(unsafe.leadersOfTerm2, ['a', 'b'], 'without the fresh rule (a plain first start): r votes twice in term 2 and a and b both lead it');
  const safe = wipedWholeScenario(true);
  t.same(safe.leadersOfTerm2, ['a'], 'fresh: b knows a commit index, so r takes it for a rebuild and grants nothing; a stays the only leader of term 2');
  t.ok(safe.r.rebuilding && !safe.r.fresh, 'r is rebuilding now');
  t.match(safe.r.freshEvidence, { from: 'b', why: 'candidate-commit' }, 'shown by b\'s vote request');
  t.equal(safe.r.hardState().vote, null, 'and it recorded no vote');
  // a reaches r again: r is caught up, then votes as any member.
  const { r, nodes } = safe;
  const a = nodes.get('a')!;
  for (let i = 0; i < 8 && r.rebuilding; i++) { a.tick(); settle(nodes, (from, to) => from !== 'b' && to !== 'b'); }
  t.notOk(r.rebuilding, 'caught up by the leader: the rebuild is over');
  t.match(r.rebuilt, { leader: 'a', term: 2 }, 'by a, in term 2');
  t.equal(r.lastIndex, a.lastIndex, 'r holds the leader\'s log');
  t.equal(r.hardState().vote, 'a', 'term 2 recorded with the leader as its vote');
  const losses = a.takePeerLosses();
  t.match(losses, [{ peer: 'r', term: 2, lastIndex: 0 }], 'the leader found r answering with a log that ends below what it had acknowledged (for the host to log)');
  t.ok(losses[0]!.acked >= 3, `r had acknowledged index ${losses[0]!.acked}`);
  t.same(a.takePeerLosses(), [], 'taken once');
});

t.test('a fresh member learns the cluster committed before it came from any commit index above 0: a leader\'s append or heartbeat, a snapshot; an append of commit 0 joins it', async (t) => {
  const ids = ['a', 'b', 'r'];
  const fresh = (): RaftNode => makeFresh('r', ids, 3);
  const entry = (term: number, index: number): Entry => ({ term, index, type: EntryType.normal, data: new Uint8Array() });
  let r = fresh();
  r.step({ ...emptyMessage('append', 'a', 'r', 4), index: 7, logTerm: 3, commit: 7 });
  t.match(r.freshEvidence, { from: 'a', term: 4, why: 'leader-commit', index: 7 }, 'an append from a leader that knows commit index 7');
  t.ok(r.rebuilding && !r.fresh, 'rebuilding from there');
  r = fresh();
  r.step({ ...emptyMessage('heartbeat', 'a', 'r', 4), commit: 5 });
  t.match(r.freshEvidence, { why: 'leader-commit', index: 5 }, 'a heartbeat whose commit index (at most what r acknowledged) is above 0');
  r = fresh();
  r.step({ ...emptyMessage('snapshot', 'a', 'r', 4), index: 9, logTerm: 3, snapshot: { meta: { index: 9, term: 3, conf: { voters: ids, learners: [], witnesses: [] } }, data: new Uint8Array([1]) }, offset: 0, done: true });
  t.match(r.freshEvidence, { why: 'snapshot', index: 9 }, 'a snapshot');
  r = fresh();
  r.step({ ...emptyMessage('append', 'a', 'r', 4), index: 0, logTerm: 0, commit: 2, entries: [entry(2, 1), entry(4, 2)] });
  t.match(r.freshEvidence, { why: 'leader-commit', index: 2 }, 'an append from index 1 with commit 2');
  t.match(r.rebuilt, { leader: 'a', term: 4, index: 2 }, 'and the rebuild is over at once: r holds the leader\'s commit index, an entry of its term (the host still waits until it is applied)');
  r = fresh();
  r.step({ ...emptyMessage('heartbeat', 'a', 'r', 1), commit: 0 });
  r.step({ ...emptyMessage('append', 'a', 'r', 1), index: 0, logTerm: 0, commit: 0, entries: [entry(1, 1)] });
  t.notOk(r.rebuilding, 'a new cluster\'s leader, committing nothing yet: r joins');
  t.match(r.rebuilt, { leader: 'a', term: 1 });
  t.equal(r.freshEvidence, undefined);
  t.same(r.hardState(), { term: 1, vote: 'a', commit: 0 }, 'with the leader as its vote in that term');
  r = fresh();
  r.step({ ...emptyMessage('append', 'b', 'r', 2), index: 1, logTerm: 1, commit: 0, entries: [entry(2, 2)] });
  t.ok(r.fresh, 'an append after an entry r lacks, from a leader that knows no commit (the first leader died before committing its entry): no evidence');
  r.step({ ...emptyMessage('append', 'b', 'r', 2), index: 0, logTerm: 0, commit: 0, entries: [entry(1, 1), entry(2, 2)] });
  t.notOk(r.rebuilding, 'its log from index 1, still of commit 0: r joins');
  r = fresh();
  r.step({ ...emptyMessage('prevote', 'b', 'r', 3), index: 4, logTerm: 2, commit: 0 });
  t.ok(r.fresh, 'a candidate with a log but no commit index known is no evidence');
});

t.test('members that all start fresh elect and join: after split votes that push terms up with empty logs, and after the first leader dies before anyone got its entry', async (t) => {
  const ids = ['a', 'b', 'c'];
  const nodes = new Map(ids.map((id, i) => [id, makeFresh(id, ids, i + 90, false)]));
  const [a, b, c] = ids.map((id) => nodes.get(id)!) as [RaftNode, RaftNode, RaftNode];
  // Split votes: a and b stand at once while c hears nobody, three times over.
  for (let round = 0; round < 3; round++) {
    a.campaign(); b.campaign();
    settle(nodes, (from, to) => from !== 'c' && to !== 'c');
  }
  t.ok(a.term >= 3 && b.term >= 3 && a.lastIndex === 0 && b.lastIndex === 0, `terms pushed up to ${a.term} with empty logs, no leader`);
  t.ok(a.fresh && b.fresh && c.fresh, 'everyone still fresh');
  runCluster(nodes, 60);
  const leaders = [...nodes.values()].filter((n) => n.role === 'leader');
  t.equal(leaders.length, 1, 'one leader');
  for (const n of nodes.values()) t.ok(!n.fresh && !n.rebuilding, `${n.id} joined`);

  // The first leader of a new cluster dies before its first entry reached anyone; it comes back
  // with that entry (its term and log on disk, its member file saying member); the others are
  // still fresh and empty. Its vote request shows a log but no commit index: they elect.
  const ids2 = ['x', 'y', 'z'];
  const second = new Map(ids2.map((id, i) => [id, makeFresh(id, ids2, i + 120)]));
  const x = second.get('x')!;
  for (let i = 0; i < 10; i++) for (const n of second.values()) n.tick();
  settle(second, () => false);
  x.campaign();
  // x's pre-vote and vote go out and come back; its first append is lost with x.
  for (let moved = true; moved && x.role !== 'leader';) {
    moved = false;
    const out: Message[] = [];
    for (const n of second.values()) if (n.hasReady()) { const rd = n.ready(); out.push(...rd.messages); n.advance(rd); moved = true; }
    for (const m of out) second.get(m.to)!.step(m);
  }
  t.equal(x.role, 'leader', 'x leads with an empty log');
  const rd = x.ready();
  x.advance(rd); // its entry is on its disk; the append is never sent
  const xAgain = new RaftNode({ id: 'x', electionTicks: 10, heartbeatTicks: 2, random: seededRandom(7) },
    { hardState: x.hardState(), conf: { voters: ids2, learners: [], witnesses: [] }, entries: x.entries(1, x.lastIndex + 1)! });
  second.set('x', xAgain);
  runCluster(second, 80);
  const led = [...second.values()].filter((n) => n.role === 'leader');
  t.equal(led.length, 1, 'a leader is elected');
  for (const n of second.values()) t.notOk(n.rebuilding, `${n.id} is not left rebuilding`);
});

/**
 * A leader of three whose own process stalls for `stallTicks` right after a heartbeat round: both
 * followers answered it, but the answers wait unread until the stall is over. `feed` gives the
 * core the stall's ticks as the host does on waking; then the answers are stepped.
 */
function leaderStall(feed: (leader: RaftNode, stallTicks: number) => void, stallTicks = 25): { leader: RaftNode; nodes: Map<NodeId, RaftNode>; sentTick: number; afterCatchUp: { role: string; lease: boolean }; afterRead: { role: string; lease: boolean } } {
  const { nodes, leader } = electedThree(1);
  runCluster(nodes, 5);
  // The next heartbeat round: sent, answered, and the answers not read yet.
  let beats: Message[] = [];
  while (beats.length === 0) { leader.tick(); beats = leader.takeHeartbeats(leader.term); }
  const sentTick = leader.ticks;
  const queued: Message[] = [];
  for (const m of beats) {
    const n = nodes.get(m.to)!;
    n.step(m);
    queued.push(...n.takeHeartbeats(n.term));
  }
  if (queued.length !== 2) throw new Error('setup: both followers answered');
  feed(leader, stallTicks);
  const afterCatchUp = { role: leader.role, lease: leader.leaseValid() };
  for (const m of queued) leader.step(m);
  return { leader, nodes, sentTick, afterCatchUp, afterRead: { role: leader.role, lease: leader.leaseValid() } };
}

t.test('a leader whose own process stalled past the election timeout: check-quorum waits for the answers that arrived meanwhile', async (t) => {
  // The host before: the stall's ticks acted as they were counted, check-quorum first.
  const before = leaderStall((l, n) => { for (let i = 0; i < n; i++) l.tick(); });
  t.equal(before.afterCatchUp.role, 'follower', 'fed as ticks on time, they step it down before the answers are read');

  const after = leaderStall((l, n) => l.catchUp(n, n));
  t.same(after.afterCatchUp, { role: 'leader', lease: false }, 'fed as a stall: still leading, and its lease lapsed with the stall');
  t.same(after.afterRead, { role: 'leader', lease: false }, 'the answers read: still leading, the lease still lapsed (they answer a heartbeat sent before the stall)');
  const { leader, nodes } = after;
  t.notOk(leader.ticks < after.sentTick + 9, 'the lease ended 9 ticks after the last acknowledged send');
  // The catch-up sent a fresh heartbeat; once a majority answers it the lease is back, and when
  // the hold ends the quorum check passes on what was read.
  settle(nodes, () => true);
  t.ok(leader.leaseValid(), 'a fresh quorum answer gives the lease back');
  runCluster(nodes, 10);
  t.equal(leader.role, 'leader', 'past the hold and a whole election timeout: still leading');
  t.same(leader.stallHolds, { held: 1, averted: 1 }, 'one check-quorum held, and averted');
  t.same([...nodes.values()].map((n) => n.term), [leader.term, leader.term, leader.term], 'no election anywhere');

  const late1 = leaderStall((l, n) => l.catchUp(n, 1));
  t.equal(late1.afterCatchUp.role, 'follower', 'a timer late by less than a heartbeat interval is no stall: ticks act as before');
});

t.test('a stalled leader whose voters really fell silent still steps down, once the hold ends', async (t) => {
  const { nodes, leader } = electedThree(1);
  runCluster(nodes, 5);
  leader.catchUp(25, 25);
  t.same([leader.role, leader.leaseValid()], ['leader', false], 'held, without a lease');
  // Nothing arrives: the followers are gone. The hold is 2 heartbeat intervals (4 ticks) past the
  // stall; the check then counts what was heard since the last one before the stall (the answers
  // read just before it passed it), so it steps down then, or at the check after.
  let ticks = 0;
  let leased = 0;
  while (leader.role === 'leader' && ticks < 50) { leader.tick(); ticks++; if (leader.leaseValid()) leased++; }
  t.equal(leader.role, 'follower', 'check-quorum stepped it down');
  t.ok(ticks >= 4 && ticks <= 14, `within the hold and one election timeout (${ticks} ticks)`);
  t.equal(leased, 0, 'never a lease meanwhile');
});

t.test('a follower whose own process stalled: no campaign on the stall\'s ticks, the leader\'s heartbeat that waited counts first', async (t) => {
  const stalled = (feed: (f: RaftNode) => void): { f: RaftNode; leader: RaftNode; sent: Message[] } => {
    const { nodes, leader } = electedThree(1);
    runCluster(nodes, 5);
    const f = [...nodes.values()].find((n) => n.role === 'follower')!;
    f.ready();
    feed(f);
    const sent = [...f.takeHeartbeats(f.term), ...f.ready().messages];
    f.step({ ...emptyMessage('heartbeat', leader.id, f.id, leader.term), commit: leader.commitIndex, context: leader.ticks });
    return { f, leader, sent };
  };
  const before = stalled((f) => { for (let i = 0; i < 25; i++) f.tick(); });
  t.ok(before.sent.some((m) => m.type === 'prevote'), 'fed as ticks on time: it asked for pre-votes before reading the heartbeat');
  const after = stalled((f) => f.catchUp(25, 25));
  t.same(after.sent.filter((m) => m.type !== 'heartbeat-resp'), [], 'fed as a stall: nothing sent but the heartbeat answer');
  t.same([after.f.role, after.f.leader, after.f.term], ['follower', after.leader.id, after.leader.term], 'following the same leader in the same term');
  for (let i = 0; i < 6; i++) after.f.tick();
  t.equal(after.f.role, 'follower', 'past the hold: still following');
  t.same(after.f.stallHolds, { held: 1, averted: 1 });
});

t.test('a stalled follower helps no one replace its leader during the hold; a leader silent past it loses the follower', async (t) => {
  const { nodes, leader } = electedThree(1);
  runCluster(nodes, 5);
  const [f, other] = [...nodes.values()].filter((n) => n !== leader) as [RaftNode, RaftNode];
  f.ready();
  f.catchUp(25, 25);
  const prevote = { ...emptyMessage('prevote', other.id, f.id, f.term + 1), index: f.lastIndex, logTerm: f.lastTerm };
  f.step(prevote);
  t.same(f.ready().messages, [], 'a pre-vote during the hold goes unanswered (its election timeout may be only its own stall)');
  // The hold ends with no heartbeat read: the leader is silent indeed. It campaigns on the tick the
  // hold ends (ticksUntilDue names it), and grants a pre-vote from then on.
  const k = f.ticksUntilDue();
  t.equal(k, 4, 'due when the hold ends');
  for (let i = 1; i < k; i++) { f.tick(); t.same([f.role, f.hasReady()], ['follower', false], `hold tick ${i}: nothing`); }
  f.tick();
  t.equal(f.role, 'pre-candidate', 'then it campaigns');
  t.same(f.stallHolds, { held: 1, averted: 0 });
  const g = [...electedThree(1).nodes.values()].find((n) => n.role === 'follower')!;
  g.ready();
  g.catchUp(25, 25);
  for (let i = 0; i < 4 && g.role === 'follower'; i++) g.tick();
  g.ready();
  g.step({ ...prevote, to: g.id, term: g.term + 1 });
  t.match(g.ready().messages.filter((m) => m.type === 'prevote-resp'), [{ reject: false }], 'after the hold, with no leader heard, a pre-vote is granted');
});

/**
 * The leader a restored member acknowledged is gone before it can tell it (README.md "Restored from
 * an old backup"): a leads term 1, entries 1-4 reach every member; then w's appends are lost (it
 * lags) while a's heartbeats still reach it, and a commits 5-8 with r. r's copy, taken at entry 4,
 * is put back (`restore`; else r restarts on its own disk), and a crashes. r and w are left: who
 * leads term 2, and with which log? Returns the leaders and the members.
 */
function goneLeaderScenario(restore: boolean): { leaders: NodeId[]; r: RaftNode; w: RaftNode; a: RaftNode; nodes: Map<NodeId, RaftNode> } {
  const ids = ['a', 'r', 'w'];
  const { nodes, a } = firstLeads(ids, 70);
  for (let i = 0; i < 3; i++) a.propose(new Uint8Array([i]));
  settle(nodes, () => true);
  const r0 = nodes.get('r')!, w = nodes.get('w')!;
  if (a.role !== 'leader' || r0.lastIndex !== 4 || w.lastIndex !== 4) throw new Error('setup: a leads term 1, entries 1-4 everywhere');
  const backup = { hardState: r0.hardState(), entries: r0.entries(1, 5)! };
  for (let i = 0; i < 4; i++) a.propose(new Uint8Array([10 + i]));
  // w lags: every append to it is lost; heartbeats (and their answers) pass.
  const lagging = (_from: NodeId, _to: NodeId, m: Message): boolean => !(m.to === 'w' && m.type === 'append');
  settle(nodes, lagging);
  a.tick(); a.tick();
  settle(nodes, lagging);
  if (a.commitIndex !== 8 || (r0.lastIndex as number) !== 8 || (w.lastIndex as number) !== 4) throw new Error(`setup: a committed 8 with r alone (commit ${a.commitIndex}, r at ${r0.lastIndex}, w at ${w.lastIndex})`);
  // r restarts (on the copy, or on its own disk), past its start-up grace; a crashes.
  const r = new RaftNode({ id: 'r', electionTicks: 10, heartbeatTicks: 2, random: seededRandom(97) },
    restore
      ? { hardState: backup.hardState, conf: { voters: ids, learners: [], witnesses: [] }, entries: backup.entries }
      : { hardState: r0.hardState(), conf: { voters: ids, learners: [], witnesses: [] }, entries: r0.entries(1, 9)! });
  nodes.set('r', r);
  const leaders = new Set<NodeId>();
  for (let i = 0; i < 120; i++) {
    r.tick(); w.tick();
    settle(nodes, (from, to) => from !== 'a' && to !== 'a', new Set(['a']));
    for (const n of [r, w]) if (n.role === 'leader' && n.term >= 2) leaders.add(n.id);
  }
  return { leaders: [...leaders].sort(), r, w, a, nodes };
}

t.test('a member restored from an old backup, the leader it acknowledged gone: the lagging member that heard the commit index elects no one without the entries', async (t) => {
  const { leaders, r, w, a, nodes } = goneLeaderScenario(true);
  t.equal(w.heardCommit, 8, 'w heard a commit 8 (the heartbeat carries the leader\'s own commit), its log ends at 4');
  t.same(w.hardState(), { term: w.term, vote: w.hardState().vote, commit: 4, heard: 8 }, 'and keeps it in its hard state');
  t.same(leaders, [], 'no leader of term 2 without a: r (back at 4) gets no vote from w, w does not stand (before: r or w led, losing 5-8)');
  t.equal(r.heardCommit, 8, 'w\'s refusal told r the commit index it lacks');
  t.equal(r.ticksUntilDue(), Infinity, 'r no longer campaigns');
  t.equal(w.ticksUntilDue(), Infinity, 'nor does w');
  t.equal(w.leader, null, 'w names no leader after a\'s silence (before: a, for good, while w could not campaign)');
  t.equal(r.leader, null, 'nor does r');
  // a comes back (its own disk): it leads again and both catch up.
  const back = new RaftNode({ id: 'a', electionTicks: 10, heartbeatTicks: 2, random: seededRandom(96) },
    { hardState: a.hardState(), conf: { voters: ['a', 'r', 'w'], learners: [], witnesses: [] }, entries: a.entries(1, 9)! });
  nodes.set('a', back);
  runCluster(nodes, 80);
  t.equal(back.role, 'leader', 'a, back, leads');
  t.ok(r.lastIndex > 8 && w.lastIndex > 8 && r.entryTerm(8) === 1 && w.entryTerm(8) === 1, 'every member holds 5-8 again');
});

t.test('a member that may not campaign forgets a leader silent for an election timeout, without campaigning', async (t) => {
  // w lags behind the commit it heard (appends to it lost, heartbeats pass), then a and r fall silent.
  const ids = ['a', 'r', 'w'];
  const { nodes, a } = firstLeads(ids, 71);
  const lagging = (_from: NodeId, _to: NodeId, m: Message): boolean => !(m.to === 'w' && m.type === 'append');
  for (let i = 0; i < 3; i++) a.propose(new Uint8Array([i]));
  settle(nodes, lagging);
  a.tick(); a.tick();
  settle(nodes, lagging);
  const w = nodes.get('w')!;
  t.ok(w.heardCommit > w.lastIndex, `w heard commit ${w.heardCommit}, its log ends at ${w.lastIndex}: it may not campaign`);
  t.equal(w.leader, 'a', 'w names a while it hears it');
  const term = w.term;
  const due = w.ticksUntilDue();
  t.ok(due >= 1 && due <= 10, `the forgetting is due within an election timeout (${due} ticks), not never`);
  for (let i = 0; i < due - 1; i++) w.tick();
  t.equal(w.leader, 'a', 'still a one tick before the election timeout');
  w.tick();
  t.equal(w.leader, null, 'no leader once a was silent for an election timeout (before: a for good)');
  t.same([w.role, w.term], ['follower', term], 'a follower of the same term: no campaign, no new term');
  t.equal(w.ticksUntilDue(), Infinity, 'nothing more is due');
  // a speaks again: w names it at once.
  a.tick(); a.tick();
  settle(nodes, lagging);
  t.equal(w.leader, 'a', 'a\'s next heartbeat: w names it again');
});

t.test('a lagging member that heard a commit index beyond its log still votes for a member that holds it', async (t) => {
  const { leaders, r, w } = goneLeaderScenario(false);
  t.same(leaders, ['r'], 'r (its own disk, 1-8) leads term 2 with w\'s vote (w heard commit 8, its log ended at 4)');
  t.equal(w.lastIndex, r.lastIndex, 'and catches w up');
  t.equal(w.entryTerm(8), 1);
});

t.test('vote requests below the commit index heard of are refused; older leaders (heartbeat hint 0) and answers', async (t) => {
  const w = new RaftNode({ id: 'w', electionTicks: 10, heartbeatTicks: 2, random: seededRandom(3) },
    { hardState: { term: 2, vote: 'a', commit: 3, heard: 7 }, conf: { voters: ['a', 'r', 'w'], learners: [], witnesses: [] }, entries: [1, 2, 3].map((i) => ({ term: 1, index: i, type: EntryType.normal, data: new Uint8Array() })) });
  t.equal(w.heardCommit, 7, 'read back from the hard state');
  for (let i = 0; i < 200; i++) w.tick();
  t.equal(w.role, 'follower', 'its log (3) ends below 7: it does not stand');
  w.ready();
  w.step({ ...emptyMessage('prevote', 'r', 'w', 3), index: 6, logTerm: 2 });
  w.step({ ...emptyMessage('prevote', 'a', 'w', 3), index: 7, logTerm: 2 });
  t.match(w.ready().messages, [{ type: 'prevote-resp', to: 'r', reject: true, commit: 7 }, { type: 'prevote-resp', to: 'a', reject: false, commit: 7 }],
    'r (log to 6, a later term than w\'s) is refused and told 7; a (log to 7) is granted');
  const x = make('x', ['x', 'y']);
  x.step({ ...emptyMessage('heartbeat', 'y', 'x', 1), commit: 0, hint: 0 });
  t.equal(x.heardCommit, 0, 'an older leader\'s heartbeat (hint 0) says nothing');
  x.step({ ...emptyMessage('heartbeat', 'y', 'x', 1), commit: 0, hint: 5 });
  t.equal(x.heardCommit, 5, 'a leader\'s own commit in the heartbeat\'s hint');
  t.match(x.hardState(), { commit: 0, heard: 5 });
});

t.test('a candidate whose log ends below a voter\'s commit index is told it, by an answer or by a refusal where the voter would stay silent', async (t) => {
  // a leads term 1 and commits 1-4 with b; c is a candidate whose log ends at 2 (it lagged, or its
  // disk was put back to an old copy). Its pre-vote must not win on a majority that lacks a's
  // word: a's refusal carries a's commit index, so c stops campaigning once it arrives.
  const ids = ['a', 'b', 'c'];
  const { nodes, a } = firstLeads(ids, 80);
  for (let i = 0; i < 3; i++) a.propose(new Uint8Array([i]));
  settle(nodes, () => true);
  if (a.role !== 'leader' || a.commitIndex !== 4) throw new Error(`setup: a leads and committed 4 (commit ${a.commitIndex})`);
  a.ready();
  const ask = (type: 'prevote' | 'vote', term: number): Message => ({ ...emptyMessage(type, 'c', 'a', term), index: 2, logTerm: 1, commit: 2 });
  // Leading, within its lease: before, no answer at all (as to any pre-vote while it hears a leader).
  a.step(ask('prevote', a.term + 1));
  t.match(a.ready().messages.filter((m) => m.to === 'c'), [{ type: 'prevote-resp', reject: true, commit: 4 }],
    'the leader refuses c\'s pre-vote and tells it commit 4 (before: silence, and c could win with b\'s pre-vote)');
  // A follower that just restarted (it votes for no one for an election timeout): the same.
  const b = nodes.get('b')!;
  const restarted = new RaftNode({ id: 'b', electionTicks: 10, heartbeatTicks: 2, random: seededRandom(81) },
    { hardState: b.hardState(), conf: { voters: ids, learners: [], witnesses: [] }, entries: b.entries(1, b.lastIndex + 1)! });
  restarted.step(ask('vote', a.term + 1));
  t.match(restarted.ready().messages, [{ type: 'vote-resp', to: 'c', reject: true, commit: 4 }],
    'a member that just restarted refuses a vote request below its commit index and tells it (before: silence)');
  restarted.step({ ...ask('vote', a.term + 1), index: 4 });
  t.same(restarted.ready().messages.filter((m) => m.type === 'vote-resp'), [], 'a candidate that holds the commit index still gets silence there (the start-up rule)');
  // A leader that stepped down answers with its own commit index, which no message ever told it
  // (before: the highest commit index it had heard from others, 0 here).
  a.step({ ...emptyMessage('append-resp', 'b', 'a', a.term + 5) });
  for (let i = 0; i < 10; i++) a.tick();
  a.ready();
  a.step(ask('prevote', a.term + 1));
  t.match(a.ready().messages.filter((m) => m.to === 'c'), [{ type: 'prevote-resp', reject: true, commit: 4 }], 'a former leader\'s refusal carries its own commit');
  // The candidate: a majority of pre-votes makes it a candidate, the refusal arriving then ends its campaign.
  const c = new RaftNode({ id: 'c', electionTicks: 10, heartbeatTicks: 2, random: seededRandom(82) },
    { hardState: { term: 1, vote: 'a', commit: 2 }, conf: { voters: ids, learners: [], witnesses: [] }, entries: a.entries(1, 3)! });
  for (let i = 0; i < 40 && c.role === 'follower'; i++) c.tick();
  c.step({ ...emptyMessage('prevote-resp', 'b', 'c', c.term + 1), commit: 2 });
  t.equal(c.role, 'candidate', 'c won its pre-vote with b alone');
  c.step({ ...emptyMessage('prevote-resp', 'a', 'c', 1), reject: true, commit: 4 });
  t.equal(c.role, 'follower', 'a\'s late refusal (an older term) still ends c\'s campaign: its log ends below commit 4');
  t.equal(c.ticksUntilDue(), Infinity, 'and it does not stand again');
});

t.test('a heartbeat commits only into the log the member acknowledged: entries of another term at those indexes (a copy put back) are not committed', async (t) => {
  // The leader l of term 2 counts f's acknowledgement of 1-6; f's disk was put back to a copy
  // holding 1-6 of term 1 (4-6 never committed; l's 4-6 are of term 2), commit 3.
  const ids = ['l', 'f', 'g'];
  const entry = (index: number, term: number): Entry => ({ term, index, type: EntryType.normal, data: new Uint8Array([index, term]) });
  const f = new RaftNode({ id: 'f', electionTicks: 10, heartbeatTicks: 2, random: seededRandom(83) },
    { hardState: { term: 1, vote: 'l', commit: 3 }, conf: { voters: ids, learners: [], witnesses: [] }, entries: [1, 2, 3, 4, 5, 6].map((i) => entry(i, 1)) });
  f.step({ ...emptyMessage('heartbeat', 'l', 'f', 2), commit: 6, logTerm: 2, index: 6, hint: 6, context: 7 });
  t.equal(f.commitIndex, 3, 'nothing committed past 3 (before: 4-6 of term 1 were committed, and applied, in place of the leader\'s)');
  t.match(f.ready().messages, [{ type: 'heartbeat-resp', to: 'l', reject: true, hint: 3, context: 7 }], 'the answer says the log is known good to 3 only, so the leader probes from there');
  t.match(f.amnesia, { leader: 'l', term: 2, acked: 6, lastIndex: 6, divergedAt: 6 }, 'it went back in time: rebuilding until caught up');
  t.ok(f.rebuilding);
  f.step({ ...emptyMessage('append', 'l', 'f', 2), index: 3, logTerm: 1, entries: [4, 5, 6].map((i) => entry(i, 2)), commit: 6 });
  t.equal(f.commitIndex, 6, 'the leader\'s entries, once appended, commit');
  t.same([4, 5, 6].map((i) => f.entryTerm(i)), [2, 2, 2]);
  // An older leader (logTerm 0 in heartbeats) commits as before.
  const g = new RaftNode({ id: 'g', electionTicks: 10, heartbeatTicks: 2, random: seededRandom(84) },
    { hardState: { term: 1, vote: 'l', commit: 3 }, conf: { voters: ids, learners: [], witnesses: [] }, entries: [1, 2, 3, 4, 5, 6].map((i) => entry(i, 1)) });
  g.step({ ...emptyMessage('heartbeat', 'l', 'g', 1), commit: 5, index: 0, hint: 5 });
  t.equal(g.commitIndex, 5, 'a heartbeat without the term commits up to its commit');
});

t.test('a candidate whose log runs past the commit index but lacks the committed entry (another term there) is refused by a voter told of that entry', async (t) => {
  // r was put back to a copy (term 1, log 1-3); b led term 2 and committed 4-7 of term 2 with c.
  // c's refusal tells r commit 7 and that entry 7 is of term 2. a, a leader of term 1 cut off since,
  // holds 1-29 of term 1 (never committed past 3): its log runs past 7, but not in term 2.
  const conf = { voters: ['a', 'c', 'r'], learners: [], witnesses: [] };
  const entry = (index: number, term: number): Entry => ({ term, index, type: EntryType.normal, data: new Uint8Array([index, term]) });
  const r = new RaftNode({ id: 'r', electionTicks: 10, heartbeatTicks: 2, random: seededRandom(85) },
    { hardState: { term: 1, vote: 'a', commit: 3 }, conf, entries: [1, 2, 3].map((i) => entry(i, 1)) });
  for (let i = 0; i < 40 && r.role === 'follower'; i++) r.tick();
  r.ready();
  r.step({ ...emptyMessage('prevote-resp', 'c', 'r', 2), reject: true, commit: 7, index: 7, logTerm: 2 });
  t.equal(r.heardCommit, 7);
  t.match(r.hardState(), { commit: 3, heard: 7, heardEntry: { index: 7, term: 2 } }, 'the entry is kept in the hard state');
  r.ready();
  r.step({ ...emptyMessage('prevote', 'a', 'r', 2), index: 29, logTerm: 1, commit: 3 });
  t.match(r.ready().messages, [{ type: 'prevote-resp', to: 'a', reject: true, commit: 7, index: 7, logTerm: 2 }],
    'a (log to 29, all of term 1) is refused, and told entry 7 is of term 2 (before: granted, its log ran past 7)');
  r.step({ ...emptyMessage('prevote', 'c', 'r', 3), index: 7, logTerm: 2, commit: 7 });
  t.match(r.ready().messages, [{ type: 'prevote-resp', to: 'c', reject: false }], 'c, which holds 7 of term 2, is granted');
  // a, told of entry 7 of term 2 that its own log holds in term 1, does not stand.
  const a = new RaftNode({ id: 'a', electionTicks: 10, heartbeatTicks: 2, random: seededRandom(86) },
    { hardState: { term: 1, vote: 'a', commit: 3 }, conf, entries: Array.from({ length: 29 }, (_, i) => entry(i + 1, 1)) });
  for (let i = 0; i < 40 && a.role === 'follower'; i++) a.tick();
  t.equal(a.role, 'pre-candidate');
  a.step({ ...emptyMessage('prevote-resp', 'c', 'a', 1), reject: true, commit: 7, index: 7, logTerm: 2 });
  t.equal(a.role, 'follower', 'its campaign ends');
  t.equal(a.ticksUntilDue(), Infinity, 'and it does not stand again: it lacks a committed entry');
});
