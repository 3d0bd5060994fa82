import t from 'tap';
import dgram from 'node:dgram';
import { parseConfig } from '../../config/index.js';
import { silentLogger } from '../../lib/log.js';
import { systemClock } from '../../lib/clock.js';
import type { StateLog } from '../../cluster/state-log.js';
import { freePort } from '../../test/support/ports.js';
import { OpsTracker } from './tracker.js';
import { probeTargets, startFailoverProbes } from './failover-probes.js';

// Which probe windows become the last failover's measured gaps: a transfer window only once
// `lanctl failover` succeeded; an election window only if a VIP takeover after an election
// followed (a failed pre-vote is no failover); none on the target of a planned transfer; nothing
// to probe on a witness or without a VIP. A tiny DNS responder on loopback plays the VIP.

async function dnsResponder(port: number): Promise<dgram.Socket> {
  const s = dgram.createSocket('udp4');
  s.on('message', (m, rinfo) => { const r = Buffer.from(m); r[2] = r[2]! | 0x80; s.send(r, rinfo.port, rinfo.address); });
  await new Promise<void>((ok) => s.bind(port, '127.0.0.1', ok));
  return s;
}

const until = async (what: string, cond: () => boolean, ms = 5000): Promise<void> => {
  for (const end = Date.now() + ms; !cond(); await new Promise((r) => setTimeout(r, 20))) if (Date.now() > end) throw new Error(`timed out: ${what}`);
};

t.test('what is probed where', async (t) => {
  const base = 'node: { name: lan-a, address: 127.0.0.1 }\n';
  t.equal(probeTargets(parseConfig(base + 'dns: { zones: [{ name: rack.lan }] }\n')), null, 'no VIP: nothing to probe');
  t.equal(probeTargets(parseConfig(base + 'vip: { address: 127.0.0.1/8, interface: lo }\n')), null, 'a VIP and no service on it');
  t.match(probeTargets(parseConfig(base + 'vip: { address: 10.0.0.1/24, interface: lo }\ndns: { port: 5300, zones: [{ name: rack.lan }] }\nntp: { localStratum: 10 }\n')), { vip: 0x0a000001, from: 0x7f000001, dns: { port: 5300, zone: 'rack.lan' }, ntp: { port: 123 }, tftp: undefined });
});

t.test('transfer windows count once the command succeeded; election windows once a takeover followed', async (t) => {
  const port = await freePort();
  const responder = await dnsResponder(port);
  t.teardown(() => responder.close());
  const config = parseConfig(`node: { name: lan-a, address: 127.0.0.1 }\nvip: { address: 127.0.0.1/8, interface: lo }\ndns: { port: ${port}, zones: [{ name: rack.lan }] }\n`);
  const tracker = new OpsTracker();
  const listeners: Array<(role: string, atMs: number) => void> = [];
  const timeline = { heardLeaderAt: null as number | null, timeoutNowAt: null as number | null };
  const state = { onRoleChange: (l: (role: string, atMs: number) => void) => { listeners.push(l); return () => undefined; }, timeline: () => ({ ...timeline }) } as unknown as StateLog;
  const probes = startFailoverProbes({ config, state, clock: systemClock, log: silentLogger, tracker, node: 'lan-a', windowMs: 2000 })!;
  t.teardown(() => probes.stop());

  probes.onFailoverRelease(systemClock.monotonicMs() - 40);
  await new Promise((r) => setTimeout(r, 300));
  t.equal(tracker.probed.transfer, undefined, 'not before the command answered');
  probes.onFailoverReply(true);
  t.match(tracker.probed.transfer, { trigger: 'transfer', from: 'lan-a', since: 'VIP released here' });
  const dns = tracker.probed.transfer?.gaps.find((g) => g.protocol === 'dns')?.seconds ?? -1;
  t.ok(dns >= 0.04 && dns < 1, `dns counted from the release's start: ${dns} s`);

  const first = tracker.probed.transfer;
  probes.onFailoverRelease(systemClock.monotonicMs());
  await new Promise((r) => setTimeout(r, 300));
  probes.onFailoverReply(false);
  t.equal(tracker.probed.transfer, first, 'a failed failover leaves the last one');

  // The leader went quiet 300 ms ago; this node turns pre-candidate, but no takeover follows.
  timeline.heardLeaderAt = systemClock.monotonicMs() - 300;
  for (const l of listeners) l('pre-candidate', systemClock.monotonicMs());
  await new Promise((r) => setTimeout(r, 3600));
  t.equal(tracker.probed.election, undefined, 'a pre-vote without a takeover is no failover');

  timeline.heardLeaderAt = systemClock.monotonicMs() - 300;
  for (const l of listeners) l('candidate', systemClock.monotonicMs());
  tracker.entry({ index: 9, at: Date.now(), command: { type: 'vip.takeover', node: 'lan-a', term: 4, trigger: 'election', parts: [['vote', 20]], totalMs: 320 } });
  await until('the election window kept', () => tracker.probed.election !== undefined);
  const e = tracker.probed.election?.gaps.find((g) => g.protocol === 'dns')?.seconds ?? -1;
  t.ok(e >= 0.3 && e < 1.5, `counted from when this node last heard the leader: ${e} s`);

  // The target of a planned transfer (TimeoutNow just received) does not probe: the old holder does.
  const before = tracker.probed.election;
  timeline.timeoutNowAt = systemClock.monotonicMs();
  for (const l of listeners) l('candidate', systemClock.monotonicMs());
  tracker.entry({ index: 10, at: Date.now(), command: { type: 'vip.takeover', node: 'lan-a', term: 5, trigger: 'election', parts: [['vote', 20]], totalMs: 320 } });
  await new Promise((r) => setTimeout(r, 500));
  t.equal(tracker.probed.election, before, 'no window on the transfer target');
});
