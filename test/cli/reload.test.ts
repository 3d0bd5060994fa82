import t from 'tap';
import { readFileSync, writeFileSync } from 'node:fs';
import { runLanctl, scratchConfig, serveDaemon, SOLO_CONFIG } from '../support/daemon.js';

// SIGHUP (`systemctl reload lanha`, or an operator's kill -HUP as with dnsmasq) must not end the
// daemon: Node's default for SIGHUP is to exit, and systemd counts that as a clean stop, so
// Restart=on-failure would leave lanha down. The daemon reads its config file again and logs
// whether it is invalid (with the key path), unchanged, or changed (naming what, to restart for).

async function logged(d: { logs: () => string }, event: string, from: number): Promise<Record<string, unknown>> {
  for (let i = 0; i < 200; i++) {
    for (const line of d.logs().slice(from).split('\n')) {
      if (line.includes(`"event":"${event}"`)) return JSON.parse(line) as Record<string, unknown>;
    }
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
