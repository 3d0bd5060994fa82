import t from 'tap';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { execFileSync, spawn } from 'node:child_process';
import { LANCTL } from '../support/paths.js';
import { holdEarlySignals } from '../../bin/early-signals.js';
import { join } from 'node:path';
import { CONFIG_BYTES_MAX } from '../../lib/config.js';
import { loadConfigOffLoop } from '../../config/load-off-loop.js';
import { hangupReviewer, reviewConfigFile } from '../../bin/daemon.js';
import { makeClusterCerts } from '../../cluster/raft/tls-certs.js';
import type { Logger } from '../../lib/log.js';
import { logRecords, runLanctl, scratchConfig, serveDaemon, SOLO_CONFIG } from '../support/daemon.js';

// SIGHUP (`systemctl reload lanha`, or an operator's kill -HUP as with dnsmasq) must not end the
// daemon: Node's default for SIGHUP is to exit, and systemd counts that as a clean stop, so
// Restart=on-failure would leave lanha down. The daemon reads its config file again and logs
// whether it is invalid (with the key path), unchanged, or changed (naming what, to restart for).

async function logged(d: { logs: () => string }, event: string, from: number): Promise<Record<string, unknown>> {
  for (let i = 0; i < 200; i++) {
    const found = logRecords(d.logs().slice(from), event)[0];
    if (found !== undefined) return found;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no ${event} in the log:\n${d.logs().slice(from)}`);
}

t.test('SIGHUP: the daemon stays up and says what the config file holds now', async (t) => {
  const sc = scratchConfig(SOLO_CONFIG);
  const d = await serveDaemon(sc.file, { timeoutMs: 60_000 });
  t.teardown(async () => { await d.stop(); sc.cleanup(); });
  const original = readFileSync(sc.file, 'utf8');

  let from = d.logs().length;
  d.child.kill('SIGHUP');
  const same = await logged(d, 'daemon.reload_unchanged', from);
  t.equal(same['file'], sc.file);

  writeFileSync(sc.file, original.replace('logLevel: info', 'logLevel: loud'));
  from = d.logs().length;
  d.child.kill('SIGHUP');
  const bad = await logged(d, 'daemon.reload_invalid', from);
  t.match(String(bad['msg']), /is not valid; the running config stays: [\s\S]*node\.logLevel: "loud"/, 'the key path of the bad value');

  writeFileSync(sc.file, original.replace('logLevel: info', 'logLevel: debug') + 'ntp: { port: 41123, localStratum: 10 }\n');
  from = d.logs().length;
  d.child.kill('SIGHUP');
  const changed = await logged(d, 'daemon.reload_needs_restart', from);
  t.same(changed['changed'], ['node.logLevel', 'ntp']);
  t.match(String(changed['msg']), /restart it to apply/);

  t.equal(d.child.exitCode, null, 'still running after three SIGHUPs');
  t.equal((await runLanctl(['status', '--config', sc.file])).code, 0, 'and answering');
  const stopped = await d.stop();
  t.equal(stopped.code, 0, 'SIGTERM still stops it cleanly');
});

// The file is read and checked in a process of its own: a FIFO put where the file was blocked the
// daemon's event loop for good (readFileSync waits for a writer), and a file of 10,000
// reservations held it for 2.3 s, long enough for a leader to lose its lease and the VIP.
t.test('SIGHUP: a FIFO or an oversized file in place of the config is refused; the daemon answers throughout', async (t) => {
  const sc = scratchConfig(SOLO_CONFIG);
  const d = await serveDaemon(sc.file, { timeoutMs: 60_000 });
  t.teardown(async () => { await d.stop(); sc.cleanup(); });
  const original = readFileSync(sc.file, 'utf8');

  rmSync(sc.file);
  execFileSync('mkfifo', [sc.file]);
  let from = d.logs().length;
  d.child.kill('SIGHUP');
  const fifo = await logged(d, 'daemon.reload_invalid', from);
  t.match(String(fifo['err']), /is not a regular file \(a FIFO\)/);
  t.equal((await runLanctl(['status', '--config', join(sc.dir, 'other.yaml'), '--socket', join(sc.dir, 'lanha.sock')])).code, 0, 'status answers');

  rmSync(sc.file);
  writeFileSync(sc.file, original + `# ${'x'.repeat(80)}\n`.repeat(Math.ceil((CONFIG_BYTES_MAX + 1) / 83)));
  from = d.logs().length;
  d.child.kill('SIGHUP');
  const big = await logged(d, 'daemon.reload_invalid', from);
  t.match(String(big['err']), /the file holds 8\.0 MiB; a config may hold at most 8\.0 MiB/);

  writeFileSync(sc.file, original);
  from = d.logs().length;
  d.child.kill('SIGHUP');
  await logged(d, 'daemon.reload_unchanged', from);
  t.equal(d.child.exitCode, null, 'still running');
});

t.test('SIGHUPs during a review make one more review, not one each', async (t) => {
  let runs = 0;
  let release: () => void = () => undefined;
  const onHangup = hangupReviewer(() => { runs++; return new Promise<void>((r) => { release = r; }); });
  onHangup(); onHangup(); onHangup();
  t.equal(runs, 1, 'one review at a time');
  release();
  await new Promise((r) => setImmediate(r));
  t.equal(runs, 2, 'the signals during it make one more');
  release();
  await new Promise((r) => setImmediate(r));
  t.equal(runs, 2, 'and no more');
});

t.test('loadConfigOffLoop checks in another process: a config, or the error\'s lines', async (t) => {
  const sc = scratchConfig(SOLO_CONFIG);
  t.teardown(() => sc.cleanup());
  const good = await loadConfigOffLoop(sc.file, { ref: true });
  t.ok(good.ok);
  if (good.ok) {
    t.equal(good.config.node.name, 'solo');
    t.not(good.pid, process.pid, 'not the calling process');
  }
  writeFileSync(sc.file, SOLO_CONFIG.replaceAll('{{dir}}', sc.dir).replace('logLevel: info', 'logLevel: loud'));
  const bad = await loadConfigOffLoop(sc.file, { ref: true });
  t.match(bad.ok ? '' : bad.message, /node\.logLevel: "loud"/);
  const tight = await loadConfigOffLoop(sc.file, { deadlineMs: 0, ref: true });
  t.match(tight.ok ? '' : tight.message, /took over 0 s; gave up/, 'the deadline ends the check');
});

// Until the daemon's handlers were in place Node's defaults applied: a SIGHUP while starting (a
// large config, a long log to replay) ended lanha, which systemd counts as a clean stop. Now the
// signal is caught from the first moment of `lanctl serve` and acted on once it runs.
t.test('SIGHUP and SIGTERM while starting: held, then acted on once the daemon runs', async (t) => {
  for (const signal of ['SIGHUP', 'SIGTERM'] as const) {
    const sc = scratchConfig(SOLO_CONFIG);
    t.teardown(() => sc.cleanup());
    // Through sh's exec: the test runner adds its preloads (which catch signals of their own) to
    // the node processes a test spawns directly.
    const child = spawn('sh', ['-c', 'exec "$0" "$@"', process.execPath, LANCTL, 'serve', '--config', sc.file], { stdio: ['ignore', 'pipe', 'pipe'] });
    t.teardown(() => { child.kill('SIGKILL'); });
    let out = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { out += d.toString(); });
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    // raft.opened comes while the daemon starts, before its own handlers are in place.
    while (!/"event":"raft\.opened"/.test(out) && child.exitCode === null) await new Promise((r) => setTimeout(r, 1));
    child.kill(signal);
    if (signal === 'SIGHUP') {
      for (let i = 0; i < 600 && !/"event":"daemon\.reload_unchanged"/.test(out); i++) await new Promise((r) => setTimeout(r, 50));
      t.match(out, /"event":"daemon\.ready"/, 'SIGHUP: the daemon started');
      t.match(out, /"event":"daemon\.reload_unchanged"/, 'and read its config again');
      t.equal(child.exitCode, null, 'and runs');
      child.kill('SIGTERM');
      t.equal(await exited, 0);
    } else {
      t.equal(await exited, 0, 'SIGTERM: a clean stop');
      t.match(out, /received SIGTERM( while starting)?, stopping/, 'whether it came before the daemon\'s own handlers or after');
    }
  }
});

t.test('holdEarlySignals remembers the first stop signal and any SIGHUP until released', async (t) => {
  const before = process.listenerCount('SIGHUP');
  const early = holdEarlySignals();
  t.equal(early.stop, null);
  t.equal(early.hangup, false);
  process.emit('SIGHUP', 'SIGHUP');
  process.emit('SIGINT', 'SIGINT');
  process.emit('SIGTERM', 'SIGTERM');
  t.equal(early.hangup, true);
  t.equal(early.stop, 'SIGINT', 'the first one');
  early.release();
  t.equal(process.listenerCount('SIGHUP'), before, 'released');
});

t.test('SIGHUP: TLS files that a restart would refuse are said at the review (a CA key copied into ca.pem)', async (t) => {
  const sc = scratchConfig('');
  t.teardown(() => sc.cleanup());
  const certs = makeClusterCerts(sc.dir, 'c1', [{ name: 'lan-a' }, { name: 'lan-b' }], { ca: 30, member: 30 });
  writeFileSync(sc.file, `node: { name: lan-a, address: 127.0.0.1, stateDir: ${sc.dir}/state, controlSocket: ${sc.dir}/s.sock }
cluster:
  id: c1
  tls: { ca: ${certs.caCert}, cert: ${certs.members['lan-a']!.cert}, key: ${certs.members['lan-a']!.key} }
  members:
    - { name: lan-a, address: 127.0.0.1, port: 7400 }
    - { name: lan-b, address: 127.0.0.2, port: 7400 }
`);
  const loaded = await loadConfigOffLoop(sc.file, { ref: true });
  if (!loaded.ok) throw new Error(loaded.message);
  const lines: Array<{ level: string; facts: Record<string, unknown>; msg: string }> = [];
  const record = (level: string) => (facts: Record<string, unknown>, msg: string): void => { lines.push({ level, facts, msg }); };
  const log = { info: record('info'), warn: record('warn'), error: record('error') } as unknown as Logger;
  t.equal(await reviewConfigFile(sc.file, loaded.config, log, { ref: true }), 'unchanged');
  t.same(lines.filter((l) => l.level === 'warn'), [], 'good files: nothing to say');
  writeFileSync(certs.caCert, readFileSync(certs.caCert, 'utf8') + readFileSync(certs.caKey, 'utf8'));
  lines.length = 0;
  t.equal(await reviewConfigFile(sc.file, loaded.config, log, { ref: true }), 'unchanged', 'the config itself is the same');
  const warned = lines.find((l) => l.facts['event'] === 'daemon.reload_tls_unusable');
  t.ok(warned, 'a warning names the TLS problem (the old review said nothing: the files are read at start only)');
  t.match(warned?.msg, /cluster\.tls\.ca: .*\(PEM block 2, PRIVATE KEY\) holds a private key/);
});
