import t from 'tap';
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { logRecords, runLanctl, scratchConfig, serveDaemon, SOLO_CONFIG } from '../support/daemon.js';
import { freePorts } from '../support/ports.js';
import { haveTools } from '../support/tools.js';

// `lanctl raft snapshot`: the member takes a snapshot of its applied state now and compacts its log
// behind it, through the daemon's control socket. Before, nothing forced one: a member to be rolled
// back below an apply level (lanctl status: safe only once the snapshot is past that level's last
// entry) waited for cluster.snapshotEntries more entries. Exit codes as the README's CLI contract
// says: 0 done (or nothing to do), 1 refused by the daemon (storage fenced: said why), 3 no daemon.

t.setTimeout(240_000);

interface ClusterStatus { snapshotIndex: number; appliedIndex: number; logLevel: { snapshotIndex: number } }
const clusterOf = async (sock: string[]): Promise<ClusterStatus> =>
  (JSON.parse((await runLanctl(['status', '--json', ...sock])).stdout) as { cluster: ClusterStatus }).cluster;
const snapshotFiles = (dir: string): string[] => readdirSync(join(dir, 'state', 'raft')).filter((n) => n.startsWith('snapshot-'));
/** The descriptor number the process's next open would get: RLIMIT_NOFILE bounds the number, so a limit at it leaves none to open. */
const nextFd = (pid: number): number => {
  const used = new Set(readdirSync(`/proc/${pid}/fd`).map(Number));
  let n = 0;
  while (used.has(n)) n++;
  return n;
};

t.test('lanctl raft snapshot: taken now and the log compacted behind it; again: nothing to do; the member restarts from it', async (t) => {
  const [port, raftPort] = await freePorts(2);
  const sc = scratchConfig(`${SOLO_CONFIG}  address: 127.0.0.1
cluster: { id: snaptest, members: [{ name: solo, address: "127.0.0.1:${raftPort}" }], snapshotEntries: 100000 }
dns: { port: ${port}, listen: [127.0.0.1], zones: [{ name: t.lan }] }
`);
  t.teardown(sc.cleanup);
  const sock = ['--socket', join(sc.dir, 'lanha.sock')];
  let d = await serveDaemon(sc.file, { timeoutMs: 60_000 });
  t.teardown(() => { d.child.kill('SIGKILL'); });
  for (let i = 0; i < 5; i++) {
    const set = await runLanctl(['records', 'set', `h${i}.t.lan`, 'A', `10.1.2.${i + 1}`, ...sock]);
    t.equal(set.code, 0, `record ${i} written to the log ${set.stderr}`);
  }
  const before = await clusterOf(sock);
  t.equal(before.snapshotIndex, 0, 'no snapshot yet (snapshotEntries is 100,000)');
  t.ok(before.appliedIndex >= 5, `applied ${before.appliedIndex}`);

  const run = await runLanctl(['raft', 'snapshot', ...sock]);
  t.equal(run.code, 0, `exit 0 ${run.stderr}`);
  t.match(run.stdout, new RegExp(`^snapshot at index ${before.appliedIndex} written; the log is compacted behind it\\n$`));
  const after = await clusterOf(sock);
  t.equal(after.snapshotIndex, before.appliedIndex, 'status: the snapshot is at the applied index');
  t.equal(after.logLevel.snapshotIndex, before.appliedIndex, 'and the apply-level report reads it');
  t.equal(snapshotFiles(sc.dir).length, 1, 'a snapshot file on the disk');
  t.match(logRecords(d.logs(), 'raft.snapshot_asked'), [{ taken: true, index: before.appliedIndex }], 'logged as asked by an operator');

  const again = await runLanctl(['raft', 'snapshot', '--json', ...sock]);
  t.equal(again.code, 0);
  t.same(JSON.parse(again.stdout), { index: before.appliedIndex, applied: before.appliedIndex, taken: false }, 'asked again with nothing applied since: nothing to do (JSON)');

  t.equal((await d.stop()).code, 0);
  d = await serveDaemon(sc.file, { timeoutMs: 60_000 });
  t.match(logRecords(d.logs(), 'raft.opened'), [{ snapshot: before.appliedIndex }], 'the member restarts from the snapshot');
  const resolved = await runLanctl(['records', '--json', ...sock]);
  t.equal((resolved.stdout.match(/h\d\.t\.lan/g) ?? []).length >= 5, true, 'with every record');

  // The storage fenced (no descriptor to open the snapshot file): refused, said why, exit 1.
  if (haveTools(t, ['prlimit'], 'raft snapshot refusal test')) {
    await runLanctl(['records', 'set', 'h9.t.lan', 'A', '10.1.2.9', ...sock]);
    const pid = d.child.pid!;
    const [soft, hard] = execFileSync('prlimit', ['--pid', String(pid), '--nofile', '--noheadings', '--output=SOFT,HARD'], { encoding: 'utf8' }).trim().split(/\s+/);
    let refused;
    try {
      execFileSync('prlimit', ['--pid', String(pid), `--nofile=${nextFd(pid) + 1}:${hard}`]); // the control socket's connection, no file more
      refused = await runLanctl(['raft', 'snapshot', ...sock]);
    } finally {
      execFileSync('prlimit', ['--pid', String(pid), `--nofile=${soft}:${hard}`]);
    }
    t.equal(refused.code, 1, 'exit 1');
    t.match(refused.stderr, /no snapshot taken: .*(file descriptors|EMFILE)/, `the daemon says why (${refused.stderr.trim()})`);
    t.equal(d.child.exitCode, null, 'the daemon still runs');
  }
  t.equal((await d.stop()).code, 0);
});

t.test('lanctl raft snapshot with no daemon: exit 3, what to do', async (t) => {
  const sc = scratchConfig(SOLO_CONFIG);
  t.teardown(sc.cleanup);
  const run = await runLanctl(['raft', 'snapshot', '--socket', join(sc.dir, 'lanha.sock')]);
  t.equal(run.code, 3, 'exit 3: daemon down');
  t.match(run.stderr, /lanha\.sock/, `names the socket (${run.stderr.trim()})`);
});
