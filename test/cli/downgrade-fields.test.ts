import t from 'tap';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { scratchConfig, serveDaemon, SOLO_CONFIG, type CliRun } from '../support/daemon.js';
import { LANCTL } from '../support/paths.js';
import { logLevelText, type LogLevelStatus } from '../../cluster/apply-level.js';
import { oldLanctl } from '../support/old-build.js';
import { RaftStateLog, raftDir } from '../../cluster/raft-state-log.js';
import type { Command } from '../../cluster/commands.js';
import { systemClock } from '../../lib/clock.js';
import { seededRandom } from '../../lib/random.js';
import { silentLogger } from '../../lib/log.js';

// A member downgraded to a build of apply level 2 (fa19178^, the last before the level-3 fields)
// on a log holding level-3 entries, with that real build: a deploy job's start naming c1 (its
// `inventory`) and then `lanctl nodes remove c1` (`unlessInJob`), which this build applies as a
// no-op (the job has not finished with c1). That build read a command as it came and ignored the
// fields it did not know: on the form those entries had (envelope 1) it removed c1, its state
// silently differing from every other member's. This build writes them in envelope 2: that build
// stops applying there (APPLY STOPPED, up, fenced), c1 still in its inventory. 488a078 (0.1.0,
// before levels) refuses the entry too: its start fails naming it, where on the older form it too
// removed c1. The way down that exists: a snapshot taken past the last such entry, from which
// both builds start, handed none of them (c1 kept, writes taken); this build's status and doctor
// say which level its log needs since which index and whether its snapshot is past them.
// LANHA_DOWNGRADE_TO=/path/to/dist/bin/lanctl.js names another build instead.

const BUILDS = ['fa19178^', '488a078'];
t.setTimeout(1_500_000);

function runWith(lanctl: string, args: readonly string[], timeoutMs = 30_000): Promise<CliRun> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [lanctl, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code, signal) => { clearTimeout(timer); resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr }); });
  });
}

const C1 = { type: 'node.add', name: 'c1', mac: '02:00:00:00:00:c1' } as const;
const JOB = { type: 'deploy.job.start', job: 'j1', kind: 'push', member: 'solo', nodes: ['c1'], files: ['motd'], sources: ['/srv/motd'], sha256: ['ab'.repeat(32)], dest: '/etc', inventory: ['c1'] } as const;
const REMOVE = { type: 'node.remove', name: 'c1', unlessInJob: true } as const;

/**
 * A solo member's log with c1, a job naming it and the guarded removal: proposed through this
 * build (`legacy` false), or the same entries in envelope 1 as a level-3 build wrote them.
 */
async function writeLog(dir: string, legacy: boolean, snapshotPast = false, said: string[] = []): Promise<boolean> {
  const log = await RaftStateLog.open({ id: 'solo', dir: raftDir(join(dir, 'state')), conf: { voters: ['solo'], learners: [], witnesses: [] }, clock: systemClock, random: seededRandom(1), log: silentLogger, ...(snapshotPast ? { snapshotEntries: 3 } : {}) });
  try {
    for (let i = 0; i < 100 && !log.isLeader(); i++) await new Promise((r) => setTimeout(r, 20));
    await log.propose(C1);
    for (const command of [JOB, REMOVE] as Command[]) {
      if (!legacy) { await log.propose(command); continue; }
      const r = log.host.node.propose(new TextEncoder().encode(JSON.stringify({ v: 1, at: Date.now(), by: 'solo', c: command })));
      if (!r.ok) throw new Error('not leader');
      log.host.kick();
      for (let i = 0; i < 250 && log.fsm.appliedIndex < r.index; i++) await new Promise((res) => setTimeout(res, 20));
    }
    // A snapshot past the last of them: bounded, 20 more entries at most.
    for (let i = 0; snapshotPast && i < 20 && !/snapshot \(index \d+\) is past them/.test(logLevelText(log.status()['logLevel'] as LogLevelStatus) ?? ''); i++) {
      await log.propose({ type: 'dns.set', name: `churn${i}.t.lan`, rrtype: 'A', ttl: 60, data: '10.1.2.3' });
      await log.snapshotSettled();
    }
    if (snapshotPast) said.push(logLevelText(log.status()['logLevel'] as LogLevelStatus) ?? '');
    return log.fsm.inventory.byName('c1') !== undefined;
  } finally {
    await log.close();
  }
}

for (const commit of BUILDS) t.test(`a member downgraded to ${commit} on a log with level-3 entries`, async (t) => {
  const given = process.env['LANHA_DOWNGRADE_TO'];
  if (given !== undefined && commit !== BUILDS[0]) return;
  const old = oldLanctl(commit, given, 'LANHA_DOWNGRADE_TO');
  t.teardown(old.cleanup);
  if (old.path === null || !existsSync(old.path)) {
    process.stderr.write(`\n*** SKIPPED downgrade test of ${commit}: ${old.why || `${old.path} does not exist`}\n`);
    t.pass(`SKIPPED: ${old.why}`);
    return;
  }
  const lanctl = old.path;
  const levels = commit === '488a078' ? 'before levels' : 'level 2';

  // The form those entries had before envelope 2: that build applies them without their fields.
  const before = scratchConfig(SOLO_CONFIG);
  t.teardown(() => before.cleanup());
  t.ok(await writeLog(before.dir, true), 'this build keeps c1: the removal is a no-op while the job runs');
  {
    const daemon = await serveDaemon(before.file, { command: [process.execPath, lanctl] });
    const show = await runWith(lanctl, ['nodes', 'show', 'c1', '--config', before.file]);
    t.match(show.stdout + show.stderr, 'no node named c1', `envelope 1 (how the builds before wrote it): ${commit} (${levels}) removed c1 without a word, its state now differs (the bug)`);
    t.notMatch((await runWith(lanctl, ['status', '--config', before.file])).stdout, 'APPLY STOPPED', 'and went on applying');
    await daemon.stop();
  }

  // This build's log: the same commands as this build writes them.
  const sc = scratchConfig(SOLO_CONFIG);
  t.teardown(() => sc.cleanup());
  t.ok(await writeLog(sc.dir, false), 'this build keeps c1');
  {
    const here = await serveDaemon(sc.file);
    const said = await runWith(LANCTL, ['status', '--config', sc.file]);
    t.match(said.stdout, /log level: the log this member applied needs apply level 4 since index (\d+) \(level 4 in entries \1\.\.\d+: builds below level 4 stop at them .*safe only once its snapshot is past index \d+ \(now at 0/, 'this build says what its log needs and when a rollback is safe');
    const doctor = await runWith(LANCTL, ['doctor', '--config', sc.file]);
    t.match(doctor.stdout, 'raft.log-level', 'doctor too');
    await here.stop();
  }
  // The way down: a snapshot taken past the last such entry. The older build starts from it (the
  // state, re-encoded, holds c1 and the running job) and is handed none of those entries.
  {
    const past = scratchConfig(SOLO_CONFIG);
    t.teardown(() => past.cleanup());
    const said: string[] = [];
    t.ok(await writeLog(past.dir, false, true, said), 'this build keeps c1');
    t.match(said[0], /^the log this member applied needs apply level 4 since index \d+ .*its snapshot \(index \d+\) is past them/, 'this build says the way down is open');
    const here = await serveDaemon(past.file);
    t.notMatch((await runWith(LANCTL, ['status', '--config', past.file])).stdout, 'log level:', 'restarted from that snapshot, it holds no entry above level 1: no line');
    await here.stop();
    const down = await serveDaemon(past.file, { command: [process.execPath, lanctl] });
    try {
      t.notMatch((await runWith(lanctl, ['status', '--config', past.file])).stdout, 'APPLY STOPPED', `${commit} applies on from the snapshot`);
      t.equal((await runWith(lanctl, ['nodes', 'show', 'c1', '--config', past.file])).code, 0, 'with c1 kept, as on this build');
      const set = await runWith(lanctl, ['nodes', 'add', 'c2', '--mac', '02:00:00:00:00:c2', '--config', past.file]);
      t.equal(set.code, 0, `and takes writes: ${set.stderr.trim()}`);
      t.equal((await runWith(lanctl, ['nodes', 'show', 'c2', '--config', past.file])).code, 0);
    } finally {
      t.equal((await down.stop()).code, 0);
    }
  }

  if (commit === '488a078') {
    // 0.1.0 refuses the entry at its start (and so at every restart systemd makes): never applied.
    const r = await runWith(lanctl, ['serve', '--config', sc.file], 60_000);
    t.equal(r.code, 1, `${commit} does not start on it`);
    t.match(r.stdout + r.stderr, /entry \d+ cannot be applied: unknown command version 2/, 'naming the entry it cannot apply');
    return;
  }
  const daemon = await serveDaemon(sc.file, { command: [process.execPath, lanctl] });
  try {
    const status = await runWith(lanctl, ['status', '--config', sc.file]);
    t.match(status.stdout, /APPLY STOPPED: entry \d+ cannot be applied: unknown command version 2/, `${commit} stops applying at the entry: ${status.stdout.split('\n').find((l) => l.includes('APPLY')) ?? status.stdout.slice(0, 300)}`);
    const show = await runWith(lanctl, ['nodes', 'show', 'c1', '--config', sc.file]);
    t.equal(show.code, 0, `c1 is not removed there: ${show.stderr.trim()}`);
  } finally {
    t.equal((await daemon.stop()).code, 0, 'it stayed up and stops cleanly');
  }
});
