import t from 'tap';
import { spawn } from 'node:child_process';
import { LANCTL_JS } from '../../../lib/serve-daemon.js';
import { SOLO_CONFIG, scratchConfig } from '../../support/daemon.js';

// A storage error in a running daemon ends it with exit status 1 and the line
// `daemon.storage_broken`, so that the service manager starts it again from what is on the disk
// (systemd/lanha.service: Restart=on-failure; cluster/raft/README.md, "Failures"). The fault is
// injected through LANHA_FAILPOINTS (an environment variable only tests set; no config key can
// turn it on): the first WAL fdatasync (the election's batch) passes, the next one fails with
// EIO. With nothing else to write, the next one is the quiet-spell mark a second later: a write
// no proposal waits for, which must end the process all the same.
const config = SOLO_CONFIG;

t.test('lanctl serve: an fdatasync error in the WAL logs daemon.storage_broken and exits with status 1', async (t) => {
  const s = scratchConfig(config);
  t.teardown(s.cleanup);
  const child = spawn(process.execPath, [LANCTL_JS, 'serve', '--config', s.file], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, LANHA_FAILPOINTS: 'wal.beforeFsync=error-after:1' },
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
  const exit = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    // Bounded: a daemon still running after 30 s failed the test; it is stopped by its pid.
    const timer = setTimeout(() => { child.kill('SIGKILL'); }, 30_000);
    child.once('exit', (code, signal) => { clearTimeout(timer); resolve({ code, signal }); });
  });
  const events = out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { event?: string; level?: string; msg?: string; err?: { message?: string } });
  const names = events.map((e) => e.event);
  if (exit.code !== 1) t.comment(`daemon output:\n${out}\n${err}`);
  t.equal(exit.signal, null, 'exited by itself, not killed after 30 s');
  t.equal(exit.code, 1, 'exit status 1: systemd\'s Restart=on-failure starts it again');
  t.ok(names.includes('raft.failpoints'), 'the injected faults are announced in the log');
  t.ok(names.includes('raft.opened'), 'the Raft state opened (the first fdatasync passed): the fault hit a running member');
  const broken = events.find((e) => e.event === 'daemon.storage_broken');
  t.ok(broken, 'logged daemon.storage_broken');
  t.equal(broken?.level, 'fatal');
  t.match(broken?.msg ?? '', /stopping with exit status 1 for the service manager to restart lanha: the storage of the replicated state failed: .*injected I\/O error after 1 passes/);
  t.ok(names.indexOf('raft.storage_broken') >= 0 && names.indexOf('raft.storage_broken') < names.indexOf('daemon.storage_broken'), 'after the state log\'s own raft.storage_broken');
  t.match(err, /the storage of the replicated state failed, exiting to be restarted/, 'and says so on stderr');
});
