import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { logRecords, scratchConfig, serveDaemon, SOLO_CONFIG } from '../support/daemon.js';
import { LANCTL } from '../support/paths.js';

// A stopped daemon ends even when something still holds its event loop. A CI run under load left a
// `lanctl serve` alive for 10 minutes after SIGTERM (everything stopped, the process not gone): a
// peer's socket, a stop left hanging or a stray timer kept the loop open, and a process that
// resolved its exit code but never exited waits for the service manager's SIGKILL. Here a timer
// preloaded into the daemon's process (`--require`) stands for whatever holds the loop.

t.test('SIGTERM ends the process though a handle still holds its event loop, naming what held it', async (t) => {
  const sc = scratchConfig(SOLO_CONFIG);
  t.teardown(sc.cleanup);
  const hold = join(sc.dir, 'hold.cjs');
  writeFileSync(hold, 'setInterval(() => {}, 60_000);\n');
  const d = await serveDaemon(sc.file, { command: [process.execPath, '--require', hold, LANCTL] });
  const killer = setTimeout(() => d.child.kill('SIGKILL'), 30_000);
  t.teardown(() => { clearTimeout(killer); d.child.kill('SIGKILL'); });
  const stopped = await d.stop();
  t.equal(stopped.signal, null, 'it exited by itself, not by the test\'s SIGKILL 30 s later');
  t.equal(stopped.code, 0, 'with status 0: the stop itself went well');
  const held = logRecords<{ resources: string[] }>(d.logs(), 'daemon.exit_held');
  t.equal(held.length, 1, 'one daemon.exit_held line');
  t.ok(held[0]?.resources.includes('Timeout'), `it names what held the loop (${held[0]?.resources.join(', ')})`);
});

t.test('a daemon with nothing left holding its loop ends at once, without that line', async (t) => {
  const sc = scratchConfig(SOLO_CONFIG);
  t.teardown(sc.cleanup);
  const d = await serveDaemon(sc.file);
  t.teardown(() => { d.child.kill('SIGKILL'); });
  const stopped = await d.stop();
  t.equal(stopped.code, 0, 'status 0');
  t.equal(logRecords(d.logs(), 'daemon.exit_held').length, 0, 'no daemon.exit_held line: it did not need the exit grace');
  // The stopped line says how long each step of the stop took (a slow stop names its step).
  const stoppedLine = logRecords<{ stopMs: number; steps: Array<{ step: string; ms: number }>; msg: string }>(d.logs(), 'daemon.stopped')[0];
  const names = stoppedLine?.steps.map((s) => s.step) ?? [];
  t.ok(['http', 'control', 'journal', 'raft', 'raft.wal'].every((n) => names.includes(n)), `the stopped line lists the steps with their times (${names.join(', ')})`);
  t.ok(stoppedLine !== undefined && stoppedLine.steps.every((s) => s.ms >= 0) && stoppedLine.stopMs >= 0, 'each with a time');
  t.match(stoppedLine?.msg, /^lanha stopped in [\d.]+ ms \(every step finished; slowest finished: /, 'and says so in its text');
});
