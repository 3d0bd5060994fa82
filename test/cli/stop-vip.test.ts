import t, { type Test } from 'tap';
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { alive, childrenOf as children, logRecords, scratchConfig, serveDaemon, stopWithHungChildren } from '../support/daemon.js';
import { LANCTL_JS } from '../../lib/serve-daemon.js';
import { vethNamespace } from '../support/netns.js';

// The VIP's commands at the stop: its `ip addr del` and the GARPs' `arping` were started and not
// waited for. A stop with one of them hung ran out of the VIP's step limit and went on without it:
// the daemon exited with the child still running (a stopped one for good) and the address on the
// link. Here the daemon runs in a namespace of the test's own with a PATH shim for `ip` and
// `arping` that stops itself (SIGSTOP) when the test says so; the stop must still end in time by
// itself, with status 0, each hung command killed by PID and named, and no child left. After a
// normal stop the VIP is gone from the link.

const NS = `lhsvip${process.pid % 100000}`;
const IFACE = 'lhsv0';
const VIP = '10.77.0.1';
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const sh = (args: string[]): string => execFileSync('ip', args, { encoding: 'utf8' });

const vipOnLink = (): boolean => sh(['-n', NS, '-4', 'addr', 'show', 'dev', IFACE]).includes(` ${VIP}/`);

function setup(t: Test): { shim: string; flags: string; dir: string; file: string } {
  // A veth pair inside the namespace (goes with it): the VIP's link.
  vethNamespace(t, NS, IFACE, 'lhsv1');
  const sc = scratchConfig(`node: { name: solo, address: 127.0.0.1, stateDir: "{{dir}}/state", controlSocket: "{{dir}}/s.sock", logLevel: info }
vip: { address: ${VIP}/24, interface: ${IFACE} }
`);
  t.teardown(sc.cleanup);
  const shim = join(sc.dir, 'shim');
  const flags = join(sc.dir, 'flags');
  mkdirSync(shim);
  mkdirSync(flags);
  const realIp = execFileSync('/bin/sh', ['-c', 'command -v ip'], { encoding: 'utf8' }).trim();
  // `ip addr del` stops itself once flags/ip exists; `arping` (a GARP) once flags/arping exists, else it "sends" and ends.
  writeFileSync(join(shim, 'ip'), `#!/bin/sh\nif [ -e ${flags}/ip ] && [ "$1 $2" = "addr del" ]; then kill -STOP $$; fi\nexec ${realIp} "$@"\n`);
  writeFileSync(join(shim, 'arping'), `#!/bin/sh\nif [ -e ${flags}/arping ]; then kill -STOP $$; fi\nexit 0\n`);
  chmodSync(join(shim, 'ip'), 0o755);
  chmodSync(join(shim, 'arping'), 0o755);
  return { shim, flags, dir: sc.dir, file: sc.file };
}

async function start(t: Test, file: string, shim: string): Promise<Awaited<ReturnType<typeof serveDaemon>>> {
  const d = await serveDaemon(file, { timeoutMs: 60_000, command: ['ip', 'netns', 'exec', NS, 'env', `PATH=${shim}:${process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin'}`, process.execPath, LANCTL_JS] });
  t.teardown(() => { d.child.kill('SIGKILL'); });
  for (let i = 0; i < 200 && logRecords(d.logs(), 'vip.acquired').length === 0; i++) await sleep(50);
  t.ok(logRecords(d.logs(), 'vip.acquired').length > 0, 'the daemon took the VIP');
  return d;
}

const skip = (t: Test): boolean => {
  if (process.getuid?.() !== 0) { process.stderr.write('\n*** SKIPPED stop-vip: needs root (a network namespace)\n'); t.pass('SKIPPED: not root'); return true; }
  return false;
};

t.test('a normal stop deletes the VIP from the link', async (t) => {
  if (skip(t)) return;
  const { shim, file } = setup(t);
  const d = await start(t, file, shim);
  t.ok(vipOnLink(), 'the VIP is on the link while the daemon runs');
  const result = await d.stop();
  t.equal(result.code, 0, 'exit status 0');
  t.notOk(vipOnLink(), 'the VIP is gone from the link once the daemon has exited');
  t.match(logRecords(d.logs(), 'vip.released'), [{ reason: 'stop', outcome: 'released' }], 'released at the stop');
});

t.test('a stop with a stopped `ip addr del` and stopped GARP `arping`s ends in time; each killed by PID and named; none left', async (t) => {
  if (skip(t)) return;
  const { shim, flags, file } = setup(t);
  writeFileSync(join(flags, 'arping'), '');
  const d = await start(t, file, shim);
  const daemonPid = d.child.pid!;
  // The GARPs (0, 100, 500 ms after the acquire) hang in arping.
  let arpings: Array<{ pid: number; comm: string }> = [];
  for (let i = 0; i < 100 && arpings.length < 2; i++) { await sleep(50); arpings = children(daemonPid).filter((c) => c.comm === 'arping'); }
  t.ok(arpings.length >= 2, `GARP arpings hang (${arpings.map((c) => c.pid).join(', ')})`);
  writeFileSync(join(flags, 'ip'), '');
  const seen = await stopWithHungChildren(t, d, ['ip', 'arping'], arpings.map((c) => c.pid));
  const killed = logRecords<{ command: string; pid: number; outcome: string }>(d.logs(), 'vip.stop_command_killed');
  t.ok(killed.some((k) => k.command.startsWith(`ip addr del ${VIP}/24`) && k.outcome === 'killed'), `the stopped ip addr del is named and killed (${JSON.stringify(killed)})`);
  // The release kills the GARPs first (vip.garp_killed, so they cannot announce the VIP once it is
  // gone); one still there at the stop's end is the stop's (vip.stop_command_killed).
  const garps = logRecords<{ command: string; pid: number; outcome: string; reason: string }>(d.logs(), 'vip.garp_killed');
  for (const a of arpings) {
    t.ok([...killed, ...garps].some((k) => k.pid === a.pid && k.command.startsWith('arping') && k.outcome === 'killed'),
      `the stopped arping ${a.pid} is named and killed (${JSON.stringify(garps)})`);
  }
  await sleep(100);
  const left = [...seen].filter(alive);
  t.same(left, [], `no ip or arping child is left (${seen.size} seen)`);
  // In time means within its own bounds, as the daemon saw them: no step of the stop was given up at
  // its limit (the hung command was killed by the service itself, not left to the stop's end).
  const line = logRecords<{ stopMs: number }>(d.logs(), 'daemon.stopped')[0];
  t.ok(line !== undefined, `the stop ended (${line?.stopMs} ms)`);
  t.same(logRecords(d.logs(), 'daemon.stop_step_late'), [], 'no step given up at its limit');
  t.same(logRecords(d.logs(), 'daemon.children_killed'), [], 'nothing left for the stop\'s end to kill');
  // The killed delete leaves the address to its kernel lifetime (lifetimeSeconds, 2 s by default).
  for (let i = 0; i < 40 && vipOnLink(); i++) await sleep(100);
  t.notOk(vipOnLink(), 'the kernel dropped the address within its lifetime');
});

t.test('no leftovers', async (t) => {
  t.notOk(existsSync(`/etc/netns/${NS}`), 'the namespace\'s resolv.conf is removed');
});
