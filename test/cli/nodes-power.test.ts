// `lanctl nodes power` end to end against a real `lanctl serve` on loopback (no root): the power:
// block's command runs per node with the inventory's values, per-group commands, a failing and a
// hanging command reported as such (exit 1), the node's timeline records the cycle, usage errors
// exit 2, and a daemon without a power: block says what to add.
import t from 'tap';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { runLanctl, scratchConfig, serveDaemon } from '../support/daemon.js';
import { LANCTL } from '../support/paths.js';
import { freePort } from '../support/ports.js';
import { wait } from '../support/poll.js';

t.setTimeout(600_000);

/** Asks until `check` holds, at most `ms`; whether it did. */
async function eventually(check: () => Promise<boolean>, ms: number): Promise<boolean> {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    if (await check()) return true;
    await wait(200);
  }
  return false;
}

const config = (dhcpPort: number, power: string): string => `node: { name: t, address: 127.0.0.1, stateDir: "{{dir}}/state", controlSocket: "{{dir}}/s.sock" }
dhcp:
  port: ${dhcpPort}
  listen: 127.0.0.1
  subnets:
    - subnet: 10.0.0.0/24
      pools: [10.0.0.100-10.0.0.199]
nodes:
  - { name: n1, mac: "52:54:00:00:01:01", ip: 10.0.0.11, group: row1 }
  - { name: n2, mac: "52:54:00:00:01:02", ip: 10.0.0.12, group: row1 }
  - { name: bad1, mac: "52:54:00:00:01:03", group: broken }
  - { name: slow1, mac: "52:54:00:00:01:04", group: hung }
${power}`;

t.test('lanctl nodes power', async (t) => {
  const scratch = scratchConfig(config(await freePort(), `power:
  command: ["{{dir}}/pdu", "{{action}}", "{{name}}", "{{ip}}"]
  status: ["{{dir}}/pdu", "status", "{{name}}", "-"]
  timeout: 1s
  parallel: 2
  groups:
    broken: { command: ["{{dir}}/pdu-broken", "{{mac}}"] }
    hung: { command: ["/bin/sleep", "600"] }
`));
  t.teardown(scratch.cleanup);
  const pduLog = join(scratch.dir, 'pdu.log');
  writeFileSync(join(scratch.dir, 'pdu'), `#!/bin/sh\necho "$@ env=$LANHA_NAME/$LANHA_GROUP" >> ${pduLog}\n[ "$1" = status ] && echo "port of $2: on"\nexit 0\n`);
  writeFileSync(join(scratch.dir, 'pdu-broken'), '#!/bin/sh\necho "no route to PDU for $1" >&2\nexit 4\n');
  chmodSync(join(scratch.dir, 'pdu'), 0o755);
  chmodSync(join(scratch.dir, 'pdu-broken'), 0o755);
  const sock = ['--socket', join(scratch.dir, 's.sock')];
  const lanctl = (...args: string[]) => runLanctl([...args, ...sock], { timeoutMs: 90_000 });

  const daemon = await serveDaemon(scratch.file, { timeoutMs: 60_000 });
  t.teardown(() => daemon.stop());
  t.ok(await eventually(async () => (await lanctl('nodes')).stdout.includes('slow1'), 30_000), 'the config nodes were seeded');

  const cycle = await lanctl('nodes', 'power', 'cycle', 'n1', 'n2');
  t.equal(cycle.code, 0, cycle.stderr);
  t.match(cycle.stdout, /n1\s+cycle\s+ok\s+0\s+-/);
  t.match(cycle.stdout, /n2\s+cycle\s+ok\s+0/);
  t.same(readFileSync(pduLog, 'utf8').trim().split('\n').sort(), ['cycle n1 10.0.0.11 env=n1/row1', 'cycle n2 10.0.0.12 env=n2/row1'], 'the site command ran once per node with its values, as separate arguments');

  const status = await lanctl('nodes', 'power', 'status', '--group', 'row1', '--json');
  t.equal(status.code, 0, status.stderr);
  const reply = JSON.parse(status.stdout) as { action: string; results: Array<{ node: string; result: string; output: string }> };
  t.same(reply.results.map((r) => [r.node, r.result, r.output]), [['n1', 'ok', 'port of n1: on'], ['n2', 'ok', 'port of n2: on']], 'status runs power.status, output returned');

  const failed = await lanctl('nodes', 'power', 'off', 'bad1', 'slow1', 'n1');
  t.equal(failed.code, 1, 'a failed or hung command: exit 1');
  t.match(failed.stdout, /bad1\s+off\s+failed\s+4\s+no route to PDU for 52:54:00:00:01:03/);
  t.match(failed.stdout, /slow1\s+off\s+timeout\s+\S+\s+ended after 1000 ms \(power\.timeout\)/);
  t.match(failed.stdout, /n1\s+off\s+ok/);
  t.match(failed.stderr, '2 of 3 failed');

  // The timeline of n1 records both switches (the leader proposes them after the reply).
  t.ok(await eventually(async () => (await lanctl('nodes', 'show', 'n1', '--timeline')).stdout.includes('off ok'), 30_000), 'the power events reached the timeline');
  const timeline = (await lanctl('nodes', 'show', 'n1', '--timeline')).stdout;
  t.match(timeline, /power\s+cycle ok/);
  t.match(timeline, /power\s+off ok/);

  const usage = await lanctl('nodes', 'power', 'reboot', 'n1');
  t.equal(usage.code, 2);
  t.match(usage.stderr, /give the action first \(on, off, cycle, status\)/);
  const twoWays = await lanctl('nodes', 'power', 'on', 'n1', '--all');
  t.equal(twoWays.code, 2);
  const unknown = await lanctl('nodes', 'power', 'on', 'n9');
  t.equal(unknown.code, 1);
  t.match(unknown.stderr, 'no node named n9');
});

t.test('a daemon without a power: block says what to add', async (t) => {
  const scratch = scratchConfig(config(await freePort(), ''));
  t.teardown(scratch.cleanup);
  const daemon = await serveDaemon(scratch.file, { timeoutMs: 60_000 });
  t.teardown(() => daemon.stop());
  const r = await runLanctl(['nodes', 'power', 'on', '--all', '--socket', join(scratch.dir, 's.sock')], { timeoutMs: 90_000 });
  t.equal(r.code, 1);
  t.match(r.stderr, /config has no power: block/);
});

t.test('a lanctl that ends before the reply (Ctrl-C on power off --all): commands not started yet are not run', async (t) => {
  const scratch = scratchConfig(config(await freePort(), `power:
  command: ["{{dir}}/pdu", "{{action}}", "{{name}}"]
  parallel: 1
`));
  t.teardown(scratch.cleanup);
  const pduLog = join(scratch.dir, 'pdu.log');
  writeFileSync(join(scratch.dir, 'pdu'), `#!/bin/sh\necho "$@" >> ${pduLog}\nsleep 1\n`);
  chmodSync(join(scratch.dir, 'pdu'), 0o755);
  const sock = join(scratch.dir, 's.sock');
  const daemon = await serveDaemon(scratch.file, { timeoutMs: 60_000 });
  t.teardown(() => daemon.stop());
  t.ok(await eventually(async () => (await runLanctl(['nodes', '--socket', sock])).stdout.includes('slow1'), 30_000), 'the config nodes were seeded');
  const lanctl = spawn(process.execPath, [LANCTL, 'nodes', 'power', 'off', '--all', '--socket', sock], { stdio: 'ignore' });
  await eventually(async () => { try { return readFileSync(pduLog, 'utf8') !== ''; } catch { return false; } }, 10_000);
  lanctl.kill('SIGINT');
  await wait(5500);
  const ran = readFileSync(pduLog, 'utf8').trim().split('\n');
  t.equal(ran.length, 1, `one of four nodes switched off, the one running when lanctl ended (ran: ${ran.join(', ')}; the old code ran all four)`);
  t.ok(await eventually(async () => daemon.logs().includes('"event":"power.abandoned"'), 10_000), 'the daemon logs the abandoned request');
  t.match(daemon.logs(), /the request was abandoned; 3 of 4 commands were not run/);
});
