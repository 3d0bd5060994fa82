import t from 'tap';
import { SOLO_CONFIG, runLanctl, scratchConfig, serveDaemon } from '../../support/daemon.js';

// The daemon's default StateLog is the durable one: `lanctl serve` without a cluster block runs a
// one-member Raft under node.stateDir, survives kill -9, and `lanctl status` shows where it stands.
const config = SOLO_CONFIG;

interface Status { cluster: { mode: string; role: string; term: number; commitIndex: number; appliedIndex: number; leader: string | null; storage: { dir: string } } }

t.test('single-node daemon: durable raft state, kill -9 and restart', async (t) => {
  const s = scratchConfig(config);
  t.teardown(s.cleanup);
  const first = await serveDaemon(s.file);
  let st1: Status;
  try {
    const r = await runLanctl(['status', '--json', '--config', s.file]);
    t.equal(r.code, 0, r.stderr);
    st1 = JSON.parse(r.stdout) as Status;
    t.match(st1.cluster, { mode: 'single-node', role: 'leader', leader: 'solo', term: 1 });
    t.match(st1.cluster.storage.dir, `${s.dir}/state/raft`);
    const text = await runLanctl(['status', '--config', s.file]);
    t.match(text.stdout, /raft: applied \d+, last \d+, snapshot 0, leader lease valid/);
    t.match(text.stdout, /solo\s+voter/);
  } finally {
    const stopped = await first.stop('SIGKILL');
    t.equal(stopped.signal, 'SIGKILL');
  }
  const second = await serveDaemon(s.file);
  try {
    const r = await runLanctl(['status', '--json', '--config', s.file]);
    const st2 = JSON.parse(r.stdout) as Status;
    t.equal(st2.cluster.term, st1.cluster.term + 1, 'the restart campaigned in a new term (term and vote were on disk)');
    t.ok(st2.cluster.commitIndex > st1.cluster.commitIndex, 'the log continued where it was');
    t.match(second.logs(), '"event":"raft.opened"');
  } finally {
    const stopped = await second.stop();
    t.equal(stopped.code, 0, 'a SIGTERM stop is clean');
  }
});
