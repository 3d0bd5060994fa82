// `lanctl nodes power` on a member that is not the leader records the boot timeline event as it does
// on the leader: three daemons in this process on loopback (two LAN members with a power: block and
// a witness), the command run through the follower's control socket, and `lanctl nodes show NAME
// --timeline` on either LAN member shows the power event once, within the time of a member report.
// Before, the follower ran the command and recorded nothing.
import t from 'tap';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../../config/index.js';
import { silentLogger } from '../../lib/log.js';
import { startDaemon, type Daemon } from '../../bin/daemon.js';
import { runLanctl } from '../support/daemon.js';
import { freePorts } from '../support/ports.js';

t.setTimeout(180_000);

t.test('a power cycle run on the follower goes into the timeline, once', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'lanha-power-follower-'));
  const keyFile = join(dir, 'cluster.key');
  writeFileSync(keyFile, randomBytes(32).toString('hex'), { mode: 0o600 });
  writeFileSync(join(dir, 'pdu'), `#!/bin/sh\necho "$@" >> ${join(dir, 'pdu.log')}\n`);
  chmodSync(join(dir, 'pdu'), 0o755);
  const names = ['lan-a', 'lan-b', 'witness'];
  const ports = await freePorts(3);
  const daemons: Daemon[] = [];
  t.teardown(async () => {
    for (const d of daemons.reverse()) await d.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  for (const [i, name] of names.entries()) {
    mkdirSync(join(dir, name));
    daemons.push(await startDaemon(parseConfig(`node: { name: ${name}, role: ${name === 'witness' ? 'witness' : 'server'}, stateDir: "${dir}/${name}", controlSocket: "${dir}/${name}.sock" }
cluster:
  id: power-follower-test
  keyFile: "${keyFile}"
  members:
${names.map((n, j) => `    - { name: ${n}, address: 127.0.0.1, port: ${ports[j]}${n === 'witness' ? ', role: witness' : ''} }`).join('\n')}
${name === 'witness' ? '' : `nodes:
  - { name: n1, mac: "52:54:00:00:01:01" }
power:
  command: ["${dir}/pdu", "{{action}}", "{{name}}", "${name}"]
`}`), { log: silentLogger }));
    void i;
  }
  const lan = daemons.slice(0, 2);
  let leader: Daemon | undefined;
  for (let i = 0; i < 300 && leader === undefined; i++) {
    leader = lan.find((d) => d.state.isLeader() && d.state.fsm.inventory.byName('n1') !== undefined);
    if (leader === undefined) await new Promise((r) => setTimeout(r, 100));
  }
  t.ok(leader, 'a LAN member leads and seeded n1');
  const follower = lan.find((d) => d !== leader)!;
  const followerSock = follower.config.node.controlSocket;
  for (let i = 0; i < 100 && follower.state.fsm.inventory.byName('n1') === undefined; i++) await new Promise((r) => setTimeout(r, 100));

  const cycle = await runLanctl(['nodes', 'power', 'cycle', 'n1', '--socket', followerSock], { timeoutMs: 60_000 });
  t.equal(cycle.code, 0, cycle.stdout + cycle.stderr);
  t.equal(readFileSync(join(dir, 'pdu.log'), 'utf8'), `cycle n1 ${follower.config.node.name}\n`, 'the follower ran the command');

  const timeline = async (d: Daemon): Promise<string> => (await runLanctl(['nodes', 'show', 'n1', '--timeline', '--socket', d.config.node.controlSocket], { timeoutMs: 60_000 })).stdout;
  let seen = '';
  const started = performance.now();
  for (let i = 0; i < 100 && !/power\s+cycle ok/.test(seen); i++) {
    seen = await timeline(follower);
    if (!/power\s+cycle ok/.test(seen)) await new Promise((r) => setTimeout(r, 100));
  }
  t.match(seen, /power\s+cycle ok/, `the follower's own timeline shows it (${Math.round(performance.now() - started)} ms after the reply)`);
  t.match(await timeline(leader!), /power\s+cycle ok/, 'and so does the leader\'s');
  // Reports keep coming every second: the event must not be recorded again with each one.
  await new Promise((r) => setTimeout(r, 3000));
  const after = await timeline(leader!);
  t.equal(after.split('\n').filter((l) => /^\d{4}-\S+Z\s.*\bpower\s+cycle ok/.test(l)).length, 1, `one timeline row: ${after}`);

  const onLeader = await runLanctl(['nodes', 'power', 'off', 'n1', '--socket', leader!.config.node.controlSocket], { timeoutMs: 60_000 });
  t.equal(onLeader.code, 0, onLeader.stderr);
  for (let i = 0; i < 100 && !/power\s+off ok/.test(seen); i++) {
    seen = await timeline(follower);
    if (!/power\s+off ok/.test(seen)) await new Promise((r) => setTimeout(r, 100));
  }
  t.match(seen, /power\s+off ok/, 'on the leader as before');
});
