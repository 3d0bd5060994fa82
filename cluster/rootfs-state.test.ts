// The rootfs/deploy sub-state: generations kept (3, plus any a node still boots), bootGeneration
// gating (a failed or interrupted sync of N keeps the node on N-1; a never-synced node gets N),
// rollback by assignment, jobs and resume, and snapshot/restore giving the same hash through Fsm.
import t from 'tap';
import { Fsm } from './fsm.js';
import type { Command } from './commands.js';
import { GENERATIONS_KEPT, NODES_TRACKED_MAX } from './rootfs-state.js';
import { summaryRows } from './deploy/progress-view.js';

const gen = (n: number): string => n.toString(16).padStart(64, '0');
const commit = (n: number): Command => ({ type: 'rootfs.commit', generation: gen(n), member: 'lan-a', source: '/src', files: n, dirs: 1, symlinks: 0, hardlinks: 0, bytes: 100 * n });

function feeder(fsm: Fsm): (command: Command) => void {
  let index = 0;
  return (command) => fsm.apply(++index, { at: 1_000_000 + index * 1000, command });
}

/** Job j1 syncs generation 1 to c1, which then runs it. */
function syncedC1(apply: (command: Command) => void): void {
  apply({ type: 'deploy.job.start', job: 'j1', kind: 'rootfs', member: 'lan-a', nodes: ['c1'], generation: gen(1) });
  apply({ type: 'deploy.job.node', job: 'j1', node: 'c1', state: 'done', bytes: 10, total: 10 });
  apply({ type: 'deploy.job.end', job: 'j1', state: 'done' });
}

t.test('commit records a generation verified on its member; the newest 3 are kept', async (t) => {
  const fsm = new Fsm();
  const apply = feeder(fsm);
  for (let n = 1; n <= 5; n++) apply(commit(n));
  t.same(fsm.rootfs.generations().map((g) => g.id), [gen(3), gen(4), gen(5)]);
  t.equal(GENERATIONS_KEPT, 3);
  t.same(fsm.rootfs.verifiedOn(gen(5)), ['lan-a']);
  apply({ type: 'rootfs.verified', generation: gen(5), member: 'lan-b', ok: true });
  t.same(fsm.rootfs.verifiedOn(gen(5)), ['lan-a', 'lan-b']);
  apply({ type: 'rootfs.verified', generation: gen(5), member: 'lan-b', ok: false, changed: ['etc/x'] });
  t.same(fsm.rootfs.verifiedOn(gen(5)), ['lan-a']);
  apply(commit(5));
  t.equal(fsm.rootfs.generations().length, 3, 'committing the same tree again adds nothing');
});

t.test('a node removed from the inventory no longer keeps its generations, nor passes them to a node added under its name', async (t) => {
  const fsm = new Fsm();
  const apply = feeder(fsm);
  apply({ type: 'node.add', name: 'c1', mac: '52:54:00:00:00:01' });
  apply(commit(1));
  syncedC1(apply);
  for (let n = 2; n <= 4; n++) apply(commit(n));
  t.same(fsm.rootfs.generations().map((g) => g.id), [gen(1), gen(2), gen(3), gen(4)], 'gen 1 kept while c1 runs it');
  apply({ type: 'node.remove', name: 'c1' });
  t.equal(fsm.rootfs.node('c1'), undefined, 'its record is gone');
  apply(commit(5));
  t.same(fsm.rootfs.generations().map((g) => g.id), [gen(3), gen(4), gen(5)], 'the next commit drops what only c1 held');
  apply({ type: 'node.add', name: 'c1', mac: '52:54:00:00:00:02' });
  t.equal(fsm.rootfs.node('c1'), undefined, 'a new board named c1 has no generation it never ran');
  t.equal(fsm.rootfs.bootGeneration('c1'), gen(5), 'and boots the newest');
  apply({ type: 'node.remove', name: 'nobody' });
  t.equal(fsm.rootfs.generations().length, 3, 'removing an unknown name changes nothing');
});

t.test("a node removed while a job syncs to it: the job's late report does not bring its record back", async (t) => {
  const fsm = new Fsm();
  const apply = feeder(fsm);
  apply({ type: 'node.add', name: 'c1', mac: '52:54:00:00:00:01' });
  apply({ type: 'node.add', name: 'c2', mac: '52:54:00:00:00:02' });
  apply(commit(1));
  apply({ type: 'deploy.job.start', job: 'j1', kind: 'rootfs', member: 'lan-a', nodes: ['c1', 'c2'], generation: gen(1) });
  apply({ type: 'deploy.job.node', job: 'j1', node: 'c1', state: 'running', bytes: 5, total: 10 });
  apply({ type: 'node.remove', name: 'c1' });
  t.equal(fsm.rootfs.node('c1'), undefined, 'removed: no record');
  // The snapshot taken now must carry the mark: a member restoring it applies the same late report.
  const restored = new Fsm();
  restored.restore(fsm.snapshot());
  for (const f of [fsm, restored]) {
    let index = 100;
    const late = (command: Command): void => f.apply(++index, { at: 2_000_000 + index, command });
    late({ type: 'deploy.job.node', job: 'j1', node: 'c1', state: 'done', bytes: 10, total: 10 });
    late({ type: 'deploy.job.node', job: 'j1', node: 'c2', state: 'done', bytes: 10, total: 10 });
    late({ type: 'deploy.job.end', job: 'j1', state: 'done' });
    t.equal(f.rootfs.node('c1'), undefined, 'the late report of c1 makes no record');
    t.equal(f.rootfs.node('c2')?.running, gen(1), 'c2, still in the inventory, runs generation 1');
    t.equal(f.rootfs.job('j1')?.nodes.find((n) => n.name === 'c1')?.state, 'done', 'the job still shows what happened to c1');
  }
  t.equal(restored.hash(), fsm.hash(), 'the same state on a member restored from the snapshot');
  t.match(summaryRows(fsm.rootfs.job('j1')!).find((r) => r[0] === 'c1')?.[4], /synced and verified \(removed from the inventory meanwhile: not recorded\)/, 'the summary says so');
  let index = 200;
  const after = (command: Command): void => fsm.apply(++index, { at: 3_000_000 + index, command });
  after({ type: 'node.remove', name: 'c2' });
  for (let n = 2; n <= 4; n++) after(commit(n));
  t.same(fsm.rootfs.generations().map((g) => g.id), [gen(2), gen(3), gen(4)], 'nothing pins generation 1 once both are gone');
});

t.test('a generation a node still runs or boots is never dropped', async (t) => {
  const fsm = new Fsm();
  const apply = feeder(fsm);
  apply(commit(1));
  syncedC1(apply);
  for (let n = 2; n <= 5; n++) apply(commit(n));
  t.same(fsm.rootfs.generations().map((g) => g.id), [gen(1), gen(3), gen(4), gen(5)], 'gen 1 stays: c1 is assigned and runs it');
  t.equal(fsm.rootfs.bootGeneration('c1'), gen(1));
  t.equal(fsm.rootfs.bootGeneration('never-seen'), gen(5), 'a node without records boots the newest');
});

t.test('bootGeneration: N only after its sync of N was verified, else N-1; rollback assigns the previous one', async (t) => {
  const fsm = new Fsm();
  const apply = feeder(fsm);
  apply(commit(1));
  apply({ type: 'deploy.job.start', job: 'j1', kind: 'rootfs', member: 'lan-a', nodes: ['c1', 'c2'], generation: gen(1) });
  apply({ type: 'deploy.job.node', job: 'j1', node: 'c1', state: 'done' });
  apply({ type: 'deploy.job.node', job: 'j1', node: 'c2', state: 'done' });
  apply({ type: 'deploy.job.end', job: 'j1', state: 'done' });
  apply(commit(2));
  t.equal(fsm.rootfs.bootGeneration('c1'), gen(1), 'assigned gen 1 still: a new commit is not a deploy');
  apply({ type: 'deploy.job.start', job: 'j2', kind: 'rootfs', member: 'lan-a', nodes: ['c1', 'c2'], generation: gen(2) });
  t.equal(fsm.rootfs.node('c1')?.assigned, gen(2));
  t.equal(fsm.rootfs.bootGeneration('c2'), gen(1), 'a node still queued in the job keeps N-1');
  apply({ type: 'deploy.job.node', job: 'j2', node: 'c1', state: 'running', bytes: 5, total: 10 });
  t.equal(fsm.rootfs.bootGeneration('c1'), gen(1), 'a sync in progress keeps N-1');
  apply({ type: 'deploy.job.node', job: 'j2', node: 'c1', state: 'failed', exit: 12, error: 'connection lost' });
  apply({ type: 'deploy.job.node', job: 'j2', node: 'c2', state: 'done' });
  apply({ type: 'deploy.job.end', job: 'j2', state: 'failed' });
  t.equal(fsm.rootfs.bootGeneration('c1'), gen(1), 'failed sync keeps N-1');
  t.equal(fsm.rootfs.bootGeneration('c2'), gen(2));
  t.equal(fsm.rootfs.job('j2')?.state, 'failed');
  apply({ type: 'deploy.job.resume', job: 'j2', member: 'lan-b' });
  t.same(fsm.rootfs.job('j2')?.nodes.map((n) => n.state), ['pending', 'done'], 'resume redoes only unfinished nodes');
  apply({ type: 'deploy.job.node', job: 'j2', node: 'c1', state: 'done' });
  apply({ type: 'deploy.job.end', job: 'j2', state: 'done' });
  t.equal(fsm.rootfs.bootGeneration('c1'), gen(2));
  t.equal(fsm.rootfs.node('c1')?.running, gen(2));
  apply({ type: 'rootfs.assign', nodes: ['c2'], generation: gen(1) });
  t.equal(fsm.rootfs.bootGeneration('c2'), gen(1), 'rollback: the previous generation, verified earlier');
});

t.test('rollback goes to the newest earlier generation verified on the node, never one that did not reach it', async (t) => {
  const fsm = new Fsm();
  const apply = feeder(fsm);
  apply(commit(1));
  apply({ type: 'deploy.job.start', job: 'j1', kind: 'rootfs', member: 'lan-a', nodes: ['c1'], generation: gen(1) });
  apply({ type: 'deploy.job.node', job: 'j1', node: 'c1', state: 'done' });
  apply({ type: 'deploy.job.end', job: 'j1', state: 'done' });
  apply(commit(2)); // never deployed to c1
  apply(commit(3));
  apply({ type: 'deploy.job.start', job: 'j3', kind: 'rootfs', member: 'lan-a', nodes: ['c1'], generation: gen(3) });
  apply({ type: 'deploy.job.node', job: 'j3', node: 'c1', state: 'done' });
  apply({ type: 'deploy.job.end', job: 'j3', state: 'done' });
  // Before: the generation before 3 in the store, 2, which c1 never held; its boot files named it at once.
  t.same(fsm.rootfs.rollbackTarget('c1'), { from: gen(3), to: gen(1) });
  apply({ type: 'rootfs.assign', nodes: ['c1'], generation: gen(1) });
  t.equal(fsm.rootfs.bootGeneration('c1'), gen(1));
  t.same(fsm.rootfs.rollbackTarget('c1'), { from: gen(1), why: 'no earlier generation is kept' });
  apply({ type: 'rootfs.assign', nodes: ['c1'], generation: gen(3) });
  apply({ type: 'deploy.job.start', job: 'j4', kind: 'rootfs', member: 'lan-a', nodes: ['c2'], generation: gen(3) });
  apply({ type: 'deploy.job.node', job: 'j4', node: 'c2', state: 'done' });
  apply({ type: 'deploy.job.end', job: 'j4', state: 'done' });
  t.same(fsm.rootfs.rollbackTarget('c2'), { from: gen(3), why: `no earlier generation kept was verified on it (${gen(2).slice(0, 12)}, ${gen(1).slice(0, 12)} never reached it): \`lanctl deploy rootfs GEN --to c2\` sends one` });
  t.same(fsm.rootfs.rollbackTarget('c9'), { from: gen(3), to: gen(2) }, 'a node never synced (diskless, not booted yet): the one before');
});

t.test('a job ended by a failover marks its running and pending nodes interrupted', async (t) => {
  const fsm = new Fsm();
  const apply = feeder(fsm);
  apply(commit(1));
  apply(commit(2));
  apply({ type: 'deploy.job.start', job: 'j', kind: 'rootfs', member: 'lan-a', nodes: ['c1', 'c2', 'c3'], generation: gen(2) });
  apply({ type: 'deploy.job.node', job: 'j', node: 'c1', state: 'done' });
  apply({ type: 'deploy.job.node', job: 'j', node: 'c2', state: 'running' });
  apply({ type: 'deploy.job.end', job: 'j', state: 'interrupted' });
  t.same(fsm.rootfs.job('j')?.nodes.map((n) => n.state), ['done', 'interrupted', 'interrupted']);
  t.equal(fsm.rootfs.bootGeneration('c2'), gen(1));
  t.equal(fsm.rootfs.bootGeneration('c3'), gen(1));
  t.equal(fsm.rootfs.bootGeneration('c1'), gen(2));
  apply({ type: 'deploy.synced', node: 'c3', generation: gen(2), ok: true, exit: 0, bytes: 100 });
  t.equal(fsm.rootfs.bootGeneration('c3'), gen(2), 'a verified boot-time pull counts');
});

t.test('dry-run jobs change no node generations; snapshot/restore keeps state and hash', async (t) => {
  const fsm = new Fsm();
  const apply = feeder(fsm);
  const emptyHash = fsm.hash();
  t.equal(fsm.snapshot().rootfs, undefined, 'no rootfs field while empty (old snapshots hash the same)');
  apply(commit(1));
  apply({ type: 'deploy.job.start', job: 'd', kind: 'rootfs', member: 'lan-a', nodes: ['c1'], generation: gen(1), dryRun: true });
  apply({ type: 'deploy.job.node', job: 'd', node: 'c1', state: 'done' });
  t.equal(fsm.rootfs.node('c1'), undefined);
  apply({ type: 'deploy.trust', node: 'c1', hostKey: 'ssh-ed25519 AAAA' });
  const copy = new Fsm();
  copy.restore(fsm.snapshot());
  t.equal(copy.hash(), fsm.hash());
  t.not(fsm.hash(), emptyHash);
  t.equal(copy.rootfs.hostKey('c1'), 'ssh-ed25519 AAAA');
  t.same(copy.rootfs.job('d')?.nodes[0]?.state, 'done');
  const old = new Fsm();
  const { rootfs: _r, ...withoutRootfs } = fsm.snapshot();
  old.restore(withoutRootfs);
  t.equal(old.rootfs.generations().length, 0, 'a snapshot without the field restores to empty');
});

t.test('push jobs: sources and digests recorded; each node\'s installed files survive a resume and a snapshot', async (t) => {
  const fsm = new Fsm();
  const apply = feeder(fsm);
  apply({ type: 'deploy.job.start', job: 'p1', kind: 'push', member: 'lan-a', nodes: ['c1', 'c2'], files: ['a', 'b'], sources: ['/src/a', '/src/b'], sha256: ['aa', 'bb'], dest: '/opt' });
  t.match(fsm.rootfs.job('p1'), { sources: ['/src/a', '/src/b'], sha256: ['aa', 'bb'] });
  apply({ type: 'deploy.job.node', job: 'p1', node: 'c1', state: 'running', installed: ['a', 'not-a-job-file'] });
  apply({ type: 'deploy.job.node', job: 'p1', node: 'c2', state: 'done', installed: ['a', 'b'] });
  apply({ type: 'deploy.job.node', job: 'p1', node: 'c1', state: 'interrupted', error: 'cut off', installed: ['a'] });
  apply({ type: 'deploy.job.end', job: 'p1', state: 'interrupted' });
  t.same(fsm.rootfs.job('p1')!.nodes.map((n) => [n.name, n.state, n.installed]), [['c1', 'interrupted', ['a']], ['c2', 'done', ['a', 'b']]]);
  apply({ type: 'deploy.job.resume', job: 'p1', member: 'lan-b' });
  t.same(fsm.rootfs.job('p1')!.nodes.map((n) => [n.name, n.state, n.installed]), [['c1', 'pending', ['a']], ['c2', 'done', ['a', 'b']]], 'a resume keeps what is in place');
  const copy = new Fsm();
  copy.restore(fsm.snapshot());
  t.same(copy.rootfs.job('p1'), fsm.rootfs.job('p1'), 'and a snapshot carries it');
});

// Generation ids become store paths (a peer copy with --delete, pruning) and boot file paths: an
// entry the leader never made (a hand-made log, an etcd key) cannot name a path or another tree.
t.test('hostile entries: a generation id or node name that is a path is a no-op on every replica', async (t) => {
  const fsm = new Fsm();
  const apply = feeder(fsm);
  apply(commit(1));
  const before = JSON.stringify(fsm.rootfs.snapshot());
  for (const generation of ['../../..', '/etc', 'A'.repeat(64), `${gen(2)}/x`, gen(2).slice(1), '']) {
    apply({ type: 'rootfs.commit', generation, member: 'lan-a', source: '/src', files: 1, dirs: 1, symlinks: 0, hardlinks: 0, bytes: 1 });
    apply({ type: 'rootfs.assign', nodes: ['c1'], generation });
    apply({ type: 'deploy.synced', node: 'c1', generation, ok: true });
    apply({ type: 'deploy.job.start', job: 'j', kind: 'rootfs', member: 'lan-a', nodes: ['c1'], generation });
  }
  for (const name of ['../x', '.peer', '-oProxyCommand=x', 'a b', 'a/b', '']) {
    apply({ type: 'rootfs.commit', generation: gen(3), member: name, source: '/src', files: 1, dirs: 1, symlinks: 0, hardlinks: 0, bytes: 1 });
    apply({ type: 'rootfs.assign', nodes: ['c1', name], generation: gen(1) });
    apply({ type: 'deploy.trust', node: name, hostKey: 'ssh-ed25519 AAAA' });
    apply({ type: 'deploy.job.start', job: 'k', kind: 'push', member: 'lan-a', nodes: [name] });
  }
  apply({ type: 'deploy.trust', node: 'c1', hostKey: 'ssh-ed25519 AAAA\n@cert-authority * ssh-ed25519 BBBB' });
  apply({ type: 'rootfs.assign', nodes: Array.from({ length: 10_001 }, (_, i) => `n${i}`), generation: gen(1) });
  t.equal(JSON.stringify(fsm.rootfs.snapshot()), before, 'nothing changed');
  t.same(fsm.rootfs.generations().map((g) => g.id), [gen(1)]);
  apply({ type: 'rootfs.assign', nodes: ['c1'], generation: gen(1) });
  t.equal(fsm.rootfs.node('c1')?.assigned, gen(1), 'a well-formed entry still applies');
});

t.test('bounded: node records and pinned keys past NODES_TRACKED_MAX are not kept', async (t) => {
  const fsm = new Fsm();
  const apply = feeder(fsm);
  apply(commit(1));
  for (let k = 0; k < 3; k++) apply({ type: 'rootfs.assign', nodes: Array.from({ length: 5000 }, (_, i) => `n${k}-${i}`), generation: gen(1) });
  t.equal(fsm.rootfs.nodes().length, NODES_TRACKED_MAX);
  t.equal(fsm.rootfs.node('n2-4999'), undefined);
  t.equal(fsm.rootfs.node('n0-0')?.assigned, gen(1), 'a node kept before the bound still changes');
  for (let i = 0; i < NODES_TRACKED_MAX + 5; i++) apply({ type: 'deploy.trust', node: `k${i}`, hostKey: 'ssh-ed25519 AAAA' });
  t.equal(fsm.rootfs.hostKey(`k${NODES_TRACKED_MAX}`), undefined);
  apply({ type: 'deploy.trust', node: 'k0', hostKey: 'ssh-ed25519 BBBB' });
  t.equal(fsm.rootfs.hostKey('k0'), 'ssh-ed25519 BBBB', 'a pinned node can still be re-pinned');
});

// Late, duplicated and out-of-order `deploy.job.*` entries: a progress entry proposed before a
// node's result can commit after it, an old leader's runner can still send entries after a new
// leader ended or resumed the job, and a log can replay an entry. None may leave a node "running"
// under a finished job or change a result already recorded.
t.test('late and duplicated job entries never revive a node; results and ends are final for their run', async (t) => {
  const fsm = new Fsm();
  const apply = feeder(fsm);
  apply(commit(1));
  apply(commit(2));
  const start: Command = { type: 'deploy.job.start', job: 'j', kind: 'rootfs', member: 'lan-a', nodes: ['c1', 'c2'], generation: gen(2) };
  apply(start);
  apply({ type: 'deploy.job.node', job: 'j', run: 0, node: 'c1', state: 'running', bytes: 0 });
  apply({ type: 'deploy.job.node', job: 'j', run: 0, node: 'c1', state: 'running', bytes: 500 });
  apply({ type: 'deploy.job.node', job: 'j', run: 0, node: 'c1', state: 'running', bytes: 200 });
  t.equal(fsm.rootfs.job('j')!.nodes[0]!.bytes, 500, 'older progress does not move the count back');
  apply({ type: 'deploy.job.node', job: 'j', run: 0, node: 'c1', state: 'done', exit: 0, bytes: 1000, total: 1000 });
  apply({ type: 'deploy.job.node', job: 'j', run: 0, node: 'c1', state: 'running', bytes: 700 });
  t.equal(fsm.rootfs.job('j')!.nodes[0]!.state, 'done', 'progress committed after the result is ignored');
  t.equal(fsm.rootfs.bootGeneration('c1'), gen(2), 'and the verified sync stays verified');
  apply({ type: 'deploy.job.node', job: 'j', run: 0, node: 'c2', state: 'failed', exit: 12, error: 'rsync exit 12' });
  apply({ type: 'deploy.job.node', job: 'j', run: 0, node: 'c2', state: 'interrupted', error: 'the job was stopped' });
  t.match(fsm.rootfs.job('j')!.nodes[1], { state: 'failed', exit: 12, error: 'rsync exit 12' }, 'the first result stands');
  apply({ type: 'deploy.job.end', job: 'j', run: 0, state: 'failed' });
  apply(start);
  t.same(fsm.rootfs.job('j')!.nodes.map((n) => n.state), ['done', 'failed'], 'a replayed start does not wipe the job');
  apply({ type: 'deploy.job.node', job: 'j', run: 0, node: 'c2', state: 'running', bytes: 10 });
  apply({ type: 'deploy.job.end', job: 'j', run: 0, state: 'interrupted' });
  t.equal(fsm.rootfs.job('j')!.state, 'failed', 'a second end changes nothing');
  t.same(fsm.rootfs.job('j')!.nodes.map((n) => n.state), ['done', 'failed'], 'no node runs under a finished job');
  t.equal(fsm.rootfs.node('c2')?.syncs.find((s) => s.generation === gen(2))?.state, 'failed');

  apply({ type: 'deploy.job.resume', job: 'j', member: 'lan-b', run: 1 });
  t.same(fsm.rootfs.job('j')!.nodes.map((n) => n.state), ['done', 'pending']);
  apply({ type: 'deploy.job.node', job: 'j', run: 0, node: 'c2', state: 'failed', error: 'old runner' });
  apply({ type: 'deploy.job.end', job: 'j', run: 0, state: 'interrupted' });
  t.equal(fsm.rootfs.job('j')!.state, 'running', 'the replaced run\'s end does not end the resumed run');
  t.equal(fsm.rootfs.job('j')!.nodes[1]!.state, 'pending', 'nor does its node result count');
  apply({ type: 'deploy.job.node', job: 'j', run: 1, node: 'c2', state: 'running', bytes: 0 });
  apply({ type: 'deploy.job.resume', job: 'j', member: 'lan-b', run: 1 });
  t.equal(fsm.rootfs.job('j')!.nodes[1]!.state, 'running', 'a replayed resume does not reset the run');
  apply({ type: 'deploy.job.node', job: 'j', run: 1, node: 'c2', state: 'done', exit: 0 });
  apply({ type: 'deploy.job.end', job: 'j', run: 1, state: 'done' });
  apply({ type: 'deploy.job.node', job: 'j', run: 1, node: 'c2', state: 'running', bytes: 5 });
  t.equal(fsm.rootfs.job('j')!.state, 'done');
  t.same(fsm.rootfs.job('j')!.nodes.map((n) => n.state), ['done', 'done']);
  t.equal(fsm.rootfs.bootGeneration('c2'), gen(2));
  apply({ type: 'deploy.job.node', job: 'j', run: 1, node: 'c2', state: 'bogus' as never });
  apply({ type: 'deploy.job.end', job: 'j', run: -1 as never, state: 'failed' });
  t.equal(fsm.rootfs.job('j')!.state, 'done', 'malformed entries are no-ops');
});

t.test('push job: a file installed after the end still counts, and a late entry cannot reopen the node', async (t) => {
  const fsm = new Fsm();
  const apply = feeder(fsm);
  apply({ type: 'deploy.job.start', job: 'p', kind: 'push', member: 'lan-a', nodes: ['c1'], files: ['a', 'b'], sources: ['/a', '/b'], sha256: ['aa', 'bb'], dest: '/opt' });
  apply({ type: 'deploy.job.node', job: 'p', run: 0, node: 'c1', state: 'running', bytes: 0, installed: [] });
  apply({ type: 'deploy.job.node', job: 'p', run: 0, node: 'c1', state: 'interrupted', error: 'the job was stopped', installed: ['a'] });
  apply({ type: 'deploy.job.end', job: 'p', run: 0, state: 'interrupted' });
  // The rename of b landed after the cancel: the runner records it after the end.
  apply({ type: 'deploy.job.node', job: 'p', run: 0, node: 'c1', state: 'running', installed: ['a', 'b'] });
  t.match(fsm.rootfs.job('p')!.nodes[0], { state: 'interrupted', error: 'the job was stopped', installed: ['a', 'b'] });
});

// Property: whatever order and duplication the entries of a job arrive in, once the job has ended no
// node shows running, and a node's result (within one run) never changes after it is recorded.
t.test('replayed out of order and duplicated: no node running under an ended job, results final', async (t) => {
  const entries: Command[] = [
    { type: 'deploy.job.node', job: 'j', run: 0, node: 'c1', state: 'running', bytes: 0 },
    { type: 'deploy.job.node', job: 'j', run: 0, node: 'c2', state: 'running', bytes: 0 },
    { type: 'deploy.job.node', job: 'j', run: 0, node: 'c1', state: 'running', bytes: 50 },
    { type: 'deploy.job.node', job: 'j', run: 0, node: 'c2', state: 'running', bytes: 70 },
    { type: 'deploy.job.node', job: 'j', run: 0, node: 'c1', state: 'done', exit: 0, bytes: 100 },
    { type: 'deploy.job.node', job: 'j', run: 0, node: 'c2', state: 'failed', exit: 12 },
    { type: 'deploy.job.node', job: 'j', run: 0, node: 'c3', state: 'running', bytes: 0 },
    { type: 'deploy.job.end', job: 'j', run: 0, state: 'failed' },
  ];
  let seed = 7;
  const random = (n: number): number => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed % n; };
  for (let round = 0; round < 300; round++) {
    const fsm = new Fsm();
    const apply = feeder(fsm);
    apply(commit(1));
    apply({ type: 'deploy.job.start', job: 'j', kind: 'rootfs', member: 'lan-a', nodes: ['c1', 'c2', 'c3'], generation: gen(1) });
    const order = [...entries];
    for (let i = order.length - 1; i > 0; i--) { const k = random(i + 1); [order[i], order[k]] = [order[k]!, order[i]!]; }
    for (let d = random(4); d > 0; d--) order.splice(random(order.length + 1), 0, entries[random(entries.length)]!);
    const results = new Map<string, string>();
    for (const entry of order) {
      apply(entry);
      const job = fsm.rootfs.job('j')!;
      for (const n of job.nodes) {
        if (results.has(n.name) && results.get(n.name) !== n.state) t.fail(`round ${round}: ${n.name} went from ${results.get(n.name)} to ${n.state}`);
        if (n.state === 'done' || n.state === 'failed' || n.state === 'interrupted') results.set(n.name, n.state);
      }
      if (job.state !== 'running' && job.nodes.some((n) => n.state === 'running')) t.fail(`round ${round}: a node runs under an ended job`);
    }
    if (fsm.rootfs.job('j')!.state === 'running') t.fail(`round ${round}: the end entry was lost`);
  }
  t.pass('300 orders checked');
});
