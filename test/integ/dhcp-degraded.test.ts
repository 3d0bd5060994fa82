// Degraded split-pool DHCP with real clients (HA.md 2.5, DEGRADED-SOLO): lan-a, lan-b and a witness
// in lab namespaces with a VIP and dhcp.degraded on (MCLT 1m). The witness is killed with kill -9
// and lan-b's lanha paused (SIGSTOP): lan-b's host still answers ARP for its address and its kernel
// accepts on its ports, so lan-a stays out of degraded mode and says why (a cluster-link problem,
// not a dead partner); lan-b's lanha is then killed (kill -9, its machine still up: its cluster and
// DNS ports reset a connect), and once the entry conditions hold (5 s without a quorum, lan-b
// silent, its lanha down, nobody answering ARP for the VIP) lan-a answers busybox udhcpc from its own half of the pool (10.66.0.100-149) with a
// lease of at most 60 s. lan-b and the witness start again: lan-a's journal is merged into the log,
// lan-b's `lanctl leases` shows the client's binding, and no address is bound to two MACs.
// The VIP: lan-a holds it degraded while alone (`dig @VIP` answered from a client), and once lan-b
// and the witness are back there is never a sample (every 50 ms, `ip monitor address` in each
// member's namespace) with two holders, and the VIP ends on the Raft leader. In the LAN split each
// segment's member holds it (disjoint broadcast domains), and on the heal the degraded one yields.
import t from 'tap';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { requireLab, stopChild, withLab, type Lab, type LabHost } from '../support/netns.js';
import { digVip, overlaps, vipCluster, WWW, type VipCluster, type VipNode } from './vip-lab.js';
import { lastEnv, recordingScript, waitFor } from './dhcp-lab.js';
import { runLanctl } from '../support/daemon.js';
import { callDaemonOk } from '../../lib/control-client.js';
import { parseIpv4 } from '../../lib/ipv4.js';

t.setTimeout(300_000);

interface LeaseRow { ip: string; mac: string; state: string }

/** busybox udhcpc in `host` until it is bound (or 30 s): its ip and lease time; stopped after. */
async function udhcpcBound(host: LabHost, work: string, name: string): Promise<{ ip: string | undefined; lease: number }> {
  const script = recordingScript(work, name, 'case "$1" in bound|renew) ip addr replace "$ip/$subnet" dev "$interface";; esac');
  const child = host.spawn('udhcpc', ['-i', host.ifname, '-f', '-t', '10', '-T', '1', '-s', script]);
  try {
    const envText = (): string => (existsSync(join(work, `${name}.env`)) ? readFileSync(join(work, `${name}.env`), 'utf8') : '');
    const env = await waitFor(() => lastEnv(envText(), /^bound/), 30_000);
    return { ip: env?.get('ip'), lease: Number(env?.get('lease')) };
  } finally {
    await stopChild(child);
  }
}

const leasesOf = async (node: VipNode, all = false): Promise<LeaseRow[]> => {
  const r = await runLanctl(['leases', '--json', ...(all ? ['--all'] : []), '--socket', node.socket]);
  return r.code === 0 ? JSON.parse(r.stdout) as LeaseRow[] : [];
};
const role = async (node: VipNode): Promise<string> => ((await callDaemonOk(node.socket, 'GET', '/v1/status')) as { cluster: { role: string } }).cluster.role;
const vipBody = async (node: VipNode): Promise<{ held: boolean; degraded?: boolean }> => (await callDaemonOk(node.socket, 'GET', '/v1/vip')) as { held: boolean; degraded?: boolean };
const inRange = (ip: string | undefined, first: string, last: string): boolean => {
  const n = parseIpv4(ip ?? '') ?? 0;
  return n >= parseIpv4(first)! && n <= parseIpv4(last)!;
};

/** The lab cluster with dhcp.degraded on (MCLT 1m), started and steady; removed after `body`. */
async function degradedLab(t: Parameters<typeof requireLab>[0] & { ok: (v: unknown, m: string) => unknown }, body: (lab: Lab, c: VipCluster, a: VipNode, b: VipNode) => Promise<void>): Promise<void> {
  if (!requireLab(t, ['udhcpc', 'arping'])) return;
  await withLab(async (lab) => {
    const c = await vipCluster(lab, 'fast', { electionTimeout: '1500ms', dhcp: { leaseTime: '1h', renewTime: '30m', rebindTime: '50m', extra: 'degraded: { enabled: true, mclt: 1m }' } });
    try {
      const [a, b] = c.servers as [VipNode, VipNode];
      await Promise.all([a, b, c.witness].map((n) => c.start(n)));
      await c.waitSteady(500, 60_000);
      await body(lab, c, a, b);
    } finally {
      await c.stopSampler();
      c.cleanup();
    }
    t.ok(lab.resolvConfUnchanged(), 'the host /etc/resolv.conf was not touched');
  });
}

t.test('lan-b and the witness killed: lan-a serves udhcpc from its half, leases <= MCLT; merged on their return', async (t) => {
  await degradedLab(t, async (lab, c, a, b) => {
    b.daemon!.child.kill('SIGSTOP');
    c.witness.daemon!.child.kill('SIGKILL');
    const killedAt = performance.now();
    const status = async (): Promise<string> => (await runLanctl(['status', '--socket', a.socket])).stdout;
    // lan-b's lanha is paused, its host up: its address answers ARP and its ports accept, so no degraded mode.
    const arpSaid = await waitFor(async () => (/answers ARP: a cluster-link problem, not a dead partner/.test(await status()) ? performance.now() : null), 30_000);
    if (arpSaid === null) t.comment(await status());
    t.ok(arpSaid !== null, `lan-a stays out of degraded mode while lan-b's host answers ARP, and lanctl status says why (${arpSaid === null ? '-' : Math.round(arpSaid - killedAt)} ms after the kill)`);
    t.match((await runLanctl(['doctor', '--socket', a.socket])).stdout, /dhcp\.degraded-partner-arp/, 'doctor names it');
    t.notMatch(await status(), /DEGRADED since/, 'not DEGRADED');
    await new Promise((r) => setTimeout(r, 2000));
    t.notMatch(await status(), /DEGRADED since/, 'still not DEGRADED 2 s later (its ports accept: it may run)');
    // lan-b's lanha killed, its machine still up (its address still answers ARP): its ports reset.
    b.daemon!.child.kill('SIGKILL');
    const deadAt = performance.now();
    const degradedAt = await waitFor(async () => (/DEGRADED since/.test(await status()) ? performance.now() : null), 60_000);
    if (degradedAt === null) t.comment(await status());
    t.ok(degradedAt !== null, `lan-a says DEGRADED with lan-b's machine up and its lanha down (${degradedAt === null ? '-' : Math.round(degradedAt - deadAt)} ms after the kill)`);
    t.ok(degradedAt! - killedAt >= 5000, `not before 5 s without a quorum (${Math.round(degradedAt! - killedAt)} ms)`);
    t.match(await status(), /ACKed leases durable on this node only/, 'with the weakened promise');

    // The VIP, held degraded on lan-a: in its namespace, and answering a client's DNS query.
    const vipAt = await c.waitSample((s) => s.holders.length === 1 && s.holders[0] === a.name, 20_000, degradedAt!).then((s) => s.at, () => null);
    t.ok(vipAt !== null, `lan-a holds the VIP (ip addr in its namespace) ${vipAt === null ? '-' : Math.max(0, Math.round(vipAt - degradedAt!))} ms after its status said DEGRADED`);
    t.ok(await a.host.exec('ip', ['-o', 'addr', 'show', 'dev', a.host.ifname]).then((r) => r.stdout.includes(' 10.66.0.1/')), 'ip addr in lan-a\'s namespace shows the VIP');
    t.match(await vipBody(a), { held: true, degraded: true }, 'lanctl vip status: held here, degraded');
    t.match((await runLanctl(['vip', 'status', '--socket', a.socket])).stdout, /yes \(degraded\)/, 'lanctl vip status says so');
    t.match((await runLanctl(['doctor', '--socket', a.socket])).stdout, /vip\.degraded/, 'doctor says the VIP is held degraded');
    t.equal(await digVip(c.client), WWW, `dig @VIP answered by lan-a alone: ${WWW}`);

    const got = await udhcpcBound(await lab.addHost('udh', null), c.dir, 'udhcpc');
    const ip = got.ip;
    t.ok(ip !== undefined, 'udhcpc got a lease from lan-a alone');
    t.ok(inRange(ip, '10.66.0.100', '10.66.0.149'), `${ip} is in lan-a's half (10.66.0.100-149)`);
    t.ok(got.lease <= 60, `lease ${got.lease} s <= MCLT (60 s)`);
    const mac = (await leasesOf(a)).find((r) => r.ip === ip)?.mac;
    t.ok(mac !== undefined, `lan-a's lanctl leases shows ${ip}`);

    const healedAt = performance.now();
    await Promise.all([c.witness, b].map((n) => c.start(n)));
    const upAt = performance.now();
    const leaderHolds = await waitFor(async () => {
      for (const n of [a, b]) if (await role(n) === 'leader' && (await vipBody(n)).held && (await vipBody(n)).degraded !== true) return n.name;
      return null;
    }, 30_000);
    t.ok(leaderHolds !== null, `the VIP ends on the Raft leader (${leaderHolds ?? '-'}), not degraded`);
    const steady = await c.waitSteady(1000, 30_000).catch(() => null);
    t.equal(steady, leaderHolds, 'and stays there alone');
    const settledAt = performance.now();
    const afterHeal = c.samples.filter((s) => s.at >= healedAt && s.at <= settledAt);
    t.same(overlaps(afterHeal), [], `no sample with two holders from the restart on (${afterHeal.length} samples, holders per sample: ${[...new Set(afterHeal.map((s) => s.holders.length))].sort().join('/')})`);
    t.notOk((await vipBody(a)).degraded, 'lan-a no longer holds it degraded');
    const merged = await waitFor(async () => {
      const r = await runLanctl(['leases', '--json', '--socket', b.socket]);
      if (r.code !== 0) return null;
      return (JSON.parse(r.stdout) as LeaseRow[]).find((l) => l.ip === ip && l.mac === mac) ?? null;
    }, 60_000);
    t.ok(merged, `lan-b's lanctl leases shows ${ip} for ${mac} ${Math.round(performance.now() - upAt)} ms after lan-b and the witness were up (${Math.round(upAt - healedAt)} ms to start them)`);
    const all = JSON.parse((await runLanctl(['leases', '--json', '--all', '--socket', b.socket])).stdout) as LeaseRow[];
    const bound = all.filter((l) => l.state === 'bound');
    t.equal(new Set(bound.map((l) => l.ip)).size, bound.length, 'no address bound to two MACs');
    t.notMatch((await runLanctl(['doctor', '--socket', b.socket])).stdout, /dhcp\.degraded-conflicts/, 'doctor finds no merge conflict');
  });
});

t.test('LAN split: lan-a and the witness on one segment, lan-b alone with a client on the other; both serve; healed, merged, no address on two MACs', async (t) => {
  await degradedLab(t, async (lab, c, a, b) => {
    const cliA = await lab.addHost('ca', null);
    const cliB = await lab.addHost('cb', null);
    // The second segment: a bridge of its own in the switch namespace; lan-b's and cliB's ports move to it.
    const br2 = `${lab.bridge}2`;
    const sw = (...args: string[]): Promise<void> => run('ip', ['-n', lab.switchNs, ...args]);
    await sw('link', 'add', br2, 'type', 'bridge');
    await sw('link', 'set', br2, 'up');
    const port = (h: LabHost): string => h.ifname.replace(/a$/, 'b');
    for (const h of [b.host, cliB]) await sw('link', 'set', port(h), 'master', br2);
    const splitAt = performance.now();
    const status = async (n: VipNode): Promise<string> => (await runLanctl(['status', '--socket', n.socket])).stdout;
    const degradedAt = await waitFor(async () => (/DEGRADED since/.test(await status(b)) ? performance.now() : null), 60_000);
    if (degradedAt === null) t.comment(await status(b));
    t.ok(degradedAt !== null, `lan-b, alone on its segment, says DEGRADED (${degradedAt === null ? '-' : Math.round(degradedAt - splitAt)} ms after the split)`);
    t.notMatch(await status(a), /DEGRADED since/, 'lan-a, with the witness, is not degraded');
    const both = await c.waitSample((s) => s.holders.length === 2, 20_000, degradedAt!).then((s) => s.at, () => null);
    t.ok(both !== null, `each segment has the VIP: lan-a as leader, lan-b degraded (${both === null ? '-' : Math.max(0, Math.round(both - degradedAt!))} ms after DEGRADED)`);
    t.match(await vipBody(b), { held: true, degraded: true }, 'lan-b holds it degraded');
    t.match(await vipBody(a), { held: true, degraded: false }, 'lan-a holds it as leader');
    const onB = await udhcpcBound(cliB, c.dir, 'udhcpc-b');
    t.ok(inRange(onB.ip, '10.66.0.150', '10.66.0.199'), `the client on lan-b's segment got ${onB.ip} of lan-b's half (10.66.0.150-199)`);
    t.ok(onB.lease <= 60, `lease ${onB.lease} s <= MCLT`);
    t.equal(await digVip(cliB), WWW, `dig @VIP from lan-b's segment (${onB.ip}) is answered by lan-b, holding the VIP degraded`);
    const onA = await udhcpcBound(cliA, c.dir, 'udhcpc-a');
    t.ok(inRange(onA.ip, '10.66.0.100', '10.66.0.149'), `the client on lan-a's segment got ${onA.ip} of lan-a's half from the leader`);
    t.equal(onA.lease, 3600, 'the leader with a quorum grants the subnet\'s lease time');

    for (const h of [b.host, cliB]) await sw('link', 'set', port(h), 'master', lab.bridge);
    const healedAt = performance.now();
    const yielded = await c.waitSample((s) => s.holders.length === 1 && s.holders[0] === a.name, 20_000, healedAt).then((s) => s.at, () => null);
    t.ok(yielded !== null, `on the heal lan-b yields: lan-a alone holds the VIP ${yielded === null ? '-' : Math.round(yielded - healedAt)} ms after it`);
    const merged = await waitFor(async () => ((await leasesOf(a)).some((l) => l.ip === onB.ip) ? performance.now() : null), 60_000);
    t.ok(merged !== null, `lan-b's binding ${onB.ip} is in the log (lan-a's lanctl leases) ${merged === null ? '-' : Math.round(merged - healedAt)} ms after the heal`);
    t.ok(await waitFor(async () => (/DEGRADED since/.test(await status(b)) ? null : true), 30_000), 'lan-b left degraded mode');
    for (const n of [a, b]) {
      const bound = (await waitFor(async () => { const l = await leasesOf(n, true); return l.some((x) => x.ip === onB.ip) && l.some((x) => x.ip === onA.ip) ? l : null; }, 30_000) ?? []).filter((l) => l.state === 'bound');
      t.ok(bound.some((l) => l.ip === onA.ip) && bound.some((l) => l.ip === onB.ip), `${n.name} holds both segments' bindings`);
      t.equal(new Set(bound.map((l) => l.ip)).size, bound.length, `${n.name}: no address bound to two MACs`);
    }
    t.notMatch((await runLanctl(['doctor', '--socket', a.socket])).stdout, /dhcp\.degraded-conflicts/, 'doctor finds no merge conflict');
    const later = c.samples.filter((s) => s.at >= (yielded ?? Infinity));
    t.ok(later.length > 0 && later.every((s) => s.holders.length === 1 && s.holders[0] === a.name), `after lan-b yielded, lan-a alone held the VIP in every sample (${later.length})`);
  });
});

t.test('lan-a\'s cluster link cut both ways while it holds the VIP degraded: never two holders, and never a holder-less VIP for good', async (t) => {
  if (!requireLab(t, ['nft'])) return;
  await degradedLab(t, async (_lab, c, a, b) => {
    const status = async (n: VipNode): Promise<string> => (await runLanctl(['status', '--socket', n.socket])).stdout;
    const heldBack = async (n: VipNode): Promise<string> => JSON.stringify(((await callDaemonOk(n.socket, 'GET', '/v1/vip')) as { heldBack?: unknown }).heldBack ?? null);
    // lan-b's lanha and the witness killed (lan-b's machine up, its ports resetting): lan-a goes degraded and holds the VIP.
    b.daemon!.child.kill('SIGKILL');
    c.witness.daemon!.child.kill('SIGKILL');
    const degradedAt = await waitFor(async () => (/DEGRADED since/.test(await status(a)) ? performance.now() : null), 60_000);
    if (degradedAt === null) t.comment(await status(a));
    t.ok(degradedAt !== null, 'lan-a alone says DEGRADED');
    const heldAt = await c.waitSample((s) => s.holders.length === 1 && s.holders[0] === a.name, 20_000, degradedAt ?? 0).then((s) => s.at, () => null);
    t.ok(heldAt !== null, 'lan-a holds the VIP degraded');
    // lan-a's cluster port cut both ways in its namespace (ARP and its other ports on the LAN work):
    // no Raft message and no report between lan-a and the others.
    const nft = `table inet lhvcut {
  chain in { type filter hook input priority 0; tcp dport 7400 drop; tcp sport 7400 drop; }
  chain out { type filter hook output priority 0; tcp dport 7400 drop; tcp sport 7400 drop; }
}`;
    const cut = await a.host.exec('nft', ['-f', '-'], { input: nft });
    t.equal(cut.code, 0, `the cut is in place ${cut.stderr.trim()}`);
    // lan-b back alone (the witness still down): lan-a sees its lanha on the LAN, its reports silent, and
    // yields; lan-b has no quorum and cannot take the VIP, so lan-a takes it back and keeps it.
    const backAt = performance.now();
    await c.start(b);
    const yielded = await c.waitSample((s) => s.holders.length === 0, 20_000, backAt).then((s) => s.at, () => null);
    t.ok(yielded !== null, `lan-a yields to lan-b back on the LAN (${yielded === null ? '-' : Math.round(yielded - backAt)} ms after lan-b was started)`);
    const again = await c.waitSample((s) => s.holders.length === 1 && s.holders[0] === a.name, 30_000, yielded ?? backAt).then((s) => s.at, () => null);
    t.ok(again !== null, `nobody took it (lan-b has no quorum): lan-a holds it again ${again === null ? '-' : Math.round(again - (yielded ?? backAt))} ms after it let go`);
    t.match(await vipBody(a), { held: true, degraded: true }, 'degraded');
    // The witness back: lan-b leads with it over the cut, and finds lan-a's VIP answering ARP: it waits.
    const witnessAt = performance.now();
    await c.start(c.witness);
    const leads = await waitFor(async () => (await role(b) === 'leader' ? performance.now() : null), 30_000);
    t.comment(`lan-b leads ${leads === null ? '- (not within 30 s)' : `${Math.round(leads - witnessAt)} ms`} after the witness was started`);
    if (leads !== null) {
      await new Promise((r) => setTimeout(r, 5000));
      t.match(await heldBack(b), /another MAC answers ARP for the VIP/, 'lan-b, leading, holds back: lan-a answers ARP for the VIP');
      t.match(await vipBody(a), { held: true, degraded: true }, 'lan-a keeps it: one holder while the cut lasts');
    }
    const during = c.samples.filter((s) => s.at >= backAt);
    t.same(overlaps(during), [], `no sample with two holders while the cut lasted (${during.length} samples, ${during.filter((s) => s.holders.length === 0).length} with none)`);
    const healAt = performance.now();
    await a.host.exec('nft', ['delete', 'table', 'inet', 'lhvcut']);
    const leaderHolds = await waitFor(async () => {
      for (const n of [a, b]) if (await role(n) === 'leader' && (await vipBody(n)).held && (await vipBody(n)).degraded !== true) return n.name;
      return null;
    }, 40_000);
    t.ok(leaderHolds !== null, `the cut healed: the VIP ends on the Raft leader (${leaderHolds ?? '-'}), not degraded, ${Math.round(performance.now() - healAt)} ms after the heal`);
    const all = c.samples.filter((s) => s.at >= backAt);
    t.same(overlaps(all), [], 'never two holders, the heal included');
  });
});

function run(command: string, args: readonly string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(command, [...args], { timeout: 10_000 }, (error, _stdout, stderr) => (error ? reject(new Error(`${command} ${args.join(' ')}: ${stderr}`)) : resolve()));
  });
}
