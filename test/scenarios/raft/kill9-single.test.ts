import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { systemClock } from '../../../lib/clock.js';
import { seededRandom } from '../../../lib/random.js';
import { silentLogger } from '../../../lib/log.js';
import { RaftStateLog } from '../../../cluster/raft-state-log.js';
import { repoPath } from '../../support/paths.js';
import { seedFromEnv } from '../../support/seeded.js';

// kill -9 a single-node member while proposals stream in; every acknowledged proposal must be there
// after a restart, several times over the same directory (also across snapshots and torn tails).
const PROPOSER = repoPath('dist', 'test', 'scenarios', 'raft', 'proposer.js');

interface Run { acked: Map<number, number>; ready: number }

function runAndKill(dir: string, killAfterAcks: number, startIp: number, failpoints = ''): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [PROPOSER, dir, '16', String(startIp)], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LANHA_FAILPOINTS: failpoints } });
    const acked = new Map<number, number>();
    let ready = -1, buf = '', err = '', killed = false;
    const guard = setTimeout(() => { child.kill('SIGKILL'); }, 20_000);
    child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    child.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const [kind, a, b] = line.split(' ');
        if (kind === 'READY') ready = Number(a);
        if (kind === 'ACK') acked.set(Number(a), Number(b));
      }
      if (!killed && acked.size >= killAfterAcks) { killed = true; child.kill('SIGKILL'); }
    });
    child.on('exit', (code, signal) => {
      clearTimeout(guard);
      if (signal === 'SIGKILL' || failpoints !== '') resolve({ acked, ready });
      else reject(new Error(`proposer exited ${code}: ${err}`));
    });
  });
}

t.test('kill -9 under proposal load loses no acknowledged proposal', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'lanha-kill9-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const seed = seedFromEnv(7);
  const rnd = seededRandom(seed);
  const all = new Map<number, number>();
  let ip = 1;
  for (let round = 0; round < 4; round++) {
    const run = await runAndKill(dir, 50 + rnd.int(400), ip);
    for (const [k, v] of run.acked) all.set(k, v);
    ip += 20_000;
    t.ok(run.acked.size > 0, `round ${round}: ${run.acked.size} acked before kill -9 (seed ${seed})`);
  }
  // A crash between write and fsync: the batch never returns, its tail may be torn.
  const torn = await runAndKill(dir, 1_000_000, ip, 'wal.tornWrite=torn,wal.beforeFsync=crash');
  for (const [k, v] of torn.acked) all.set(k, v);
  const log = await RaftStateLog.open({ id: 'n1', dir, conf: { voters: ['n1'], learners: [], witnesses: [] }, clock: systemClock, random: seededRandom(1), log: silentLogger });
  t.teardown(() => log.close());
  const missing = [...all.keys()].filter((k) => log.fsm.lease(k)?.state !== 'bound');
  t.same(missing, [], `all ${all.size} acknowledged leases survived 5 crashes`);
  t.ok(log.host.node.snapshotIndex > 0, 'snapshots were taken and restored along the way');
});
