import t, { type Test } from 'tap';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { alive, childrenOf as children, logRecords, scratchConfig, serveDaemon, stopWithHungChildren } from '../support/daemon.js';
import { LANCTL_JS } from '../../lib/serve-daemon.js';
import { vethNamespace } from '../support/netns.js';

// Degraded mode's ARP probes at the stop, end to end (the unit tests drive ChildRuns alone). A LAN
// member with dhcp.degraded on, whose partner's address and its own are in the VIP's subnet,
// ARP-probes the VIP and the partner's address at its start (services/dhcp/degraded-state.ts
// #probeAtStart). Here it runs in a namespace of the test's own, its partner and the witness never
// started, with a PATH shim whose `arping` stops itself (SIGSTOP): both probes hang. A SIGTERM then
// must still end the daemon in time by itself, status 0, each hung arping killed by PID and named
// (dhcp.degraded.probe_killed), none left behind.

const NS = `lhodeg${process.pid % 100000}`;
const IFACE = 'lhod0';
const SELF = '10.78.0.2';
const PARTNER = '10.78.0.3';
const VIP = '10.78.0.1';
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const sh = (args: string[]): string => execFileSync('ip', args, { encoding: 'utf8' });

t.test('a stop while degraded mode\'s start ARP probes hang in arping ends in time; each arping killed by PID and named; none left', async (t: Test) => {
  if (process.getuid?.() !== 0) { process.stderr.write('\n*** SKIPPED stop-degraded-probe: needs root (a network namespace)\n'); t.pass('SKIPPED: not root'); return; }
  vethNamespace(t, NS, IFACE, 'lhod1');
  sh(['-n', NS, 'addr', 'add', `${SELF}/24`, 'dev', IFACE]);
  const sc = scratchConfig(`node: { name: lan-a, address: ${SELF}, stateDir: "{{dir}}/state", controlSocket: "{{dir}}/s.sock", logLevel: info }
cluster:
  id: degprobe
  keyFile: "{{dir}}/cluster.key"
  members:
    - { name: lan-a, address: ${SELF}, port: 7701 }
    - { name: lan-b, address: ${PARTNER}, port: 7701 }
    - { name: witness, address: 10.78.0.4, port: 7701, role: witness }
vip: { address: ${VIP}/24, interface: ${IFACE} }
dhcp:
  port: 10067
  listen: ${SELF}
  degraded: { enabled: true, mclt: 1m }
  subnets: [{ subnet: 10.78.0.0/24, pools: [10.78.0.100-10.78.0.131] }]
`);
  t.teardown(sc.cleanup);
  writeFileSync(join(sc.dir, 'cluster.key'), randomBytes(32).toString('hex'), { mode: 0o600 });
  const shim = join(sc.dir, 'shim');
  mkdirSync(shim);
  writeFileSync(join(shim, 'arping'), '#!/bin/sh\nkill -STOP $$\nexit 0\n');
  chmodSync(join(shim, 'arping'), 0o755);
  const d = await serveDaemon(sc.file, { timeoutMs: 60_000, command: ['ip', 'netns', 'exec', NS, 'env', `PATH=${shim}:${process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin'}`, process.execPath, LANCTL_JS] });
  t.teardown(() => { d.child.kill('SIGKILL'); });
  const daemonPid = d.child.pid!;
  let arpings: Array<{ pid: number; comm: string }> = [];
  for (let i = 0; i < 100 && arpings.length < 2; i++) { await sleep(50); arpings = children(daemonPid).filter((c) => c.comm === 'arping'); }
  t.ok(arpings.length >= 2, `the VIP and partner probes hang in arping (${arpings.map((c) => c.pid).join(', ')})`);
  const seen = await stopWithHungChildren(t, d, ['arping'], arpings.map((c) => c.pid));
  const killed = logRecords<{ command: string; pid: number; outcome: string }>(d.logs(), 'dhcp.degraded.probe_killed');
  for (const a of arpings) t.ok(killed.some((k) => k.pid === a.pid && k.command.startsWith('arping') && k.outcome === 'killed'), `the stopped arping ${a.pid} is named and killed`);
  t.ok(killed.some((k) => k.command.endsWith(` ${VIP}`)) && killed.some((k) => k.command.endsWith(` ${PARTNER}`)), 'the VIP\'s probe and the partner address\'s');
  await sleep(100);
  t.same([...seen].filter(alive), [], `no arping is left (${seen.size} seen)`);
  // In time means within its own bounds, as the daemon saw them: no step of the stop was given up at
  // its limit (the hung command was killed by the service itself, not left to the stop's end).
  const line = logRecords<{ stopMs: number }>(d.logs(), 'daemon.stopped')[0];
  t.ok(line !== undefined, `the stop ended (${line?.stopMs} ms)`);
  t.same(logRecords(d.logs(), 'daemon.stop_step_late'), [], 'no step given up at its limit');
  t.same(logRecords(d.logs(), 'daemon.children_killed'), [], 'nothing left for the stop\'s end to kill');
});

t.test('no leftovers', async (t) => {
  t.notOk(existsSync(`/etc/netns/${NS}`), 'the namespace\'s resolv.conf is removed');
  t.notOk(sh(['netns', 'list']).includes(NS), 'the namespace is gone');
});
