// Degraded split-pool DHCP with real clients (HA.md 2.5, DEGRADED-SOLO): lan-a, lan-b and a witness
// in lab namespaces with a VIP and dhcp.degraded on (MCLT 1m). lan-b and the witness are killed with
// kill -9; once the entry conditions hold (5 s without a quorum, lan-b silent, nobody answering ARP
// for the VIP) lan-a answers busybox udhcpc from its own half of the pool (10.66.0.100-149) with a
// lease of at most 60 s. lan-b and the witness start again: lan-a's journal is merged into the log,
// lan-b's `lanctl leases` shows the client's binding, and no address is bound to two MACs.
import t from 'tap';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { requireLab, stopChild, withLab } from '../support/netns.js';
import { vipCluster, type VipNode } from './vip-lab.js';
import { lastEnv, recordingScript, waitFor } from './dhcp-lab.js';
import { runLanctl } from '../support/daemon.js';
import { parseIpv4 } from '../../lib/ipv4.js';

t.setTimeout(300_000);

interface LeaseRow { ip: string; mac: string; state: string }

t.test('lan-b and the witness killed: lan-a serves udhcpc from its half, leases <= MCLT; merged on their return', async (t) => {
  if (!requireLab(t, ['udhcpc', 'arping'])) return;
  await withLab(async (lab) => {
    const c = await vipCluster(lab, 'fast', { electionTimeout: '1500ms', dhcp: { leaseTime: '1h', renewTime: '30m', rebindTime: '50m', extra: 'degraded: { enabled: true, mclt: 1m }' } });
    try {
      const [a, b] = c.servers as [VipNode, VipNode];
      await Promise.all([a, b, c.witness].map((n) => c.start(n)));
      await c.waitSteady(500, 60_000);
      b.daemon!.child.kill('SIGKILL');
      c.witness.daemon!.child.kill('SIGKILL');
      const killedAt = performance.now();
      const status = async (): Promise<string> => (await runLanctl(['status', '--socket', a.socket])).stdout;
      const degradedAt = await waitFor(async () => (/DEGRADED since/.test(await status()) ? performance.now() : null), 60_000);
      if (degradedAt === null) t.comment(await status());
      t.ok(degradedAt !== null, 'lan-a says DEGRADED');
      t.ok(degradedAt! - killedAt >= 5000, `not before 5 s without a quorum (${Math.round(degradedAt! - killedAt)} ms)`);
      t.match(await status(), /ACKed leases durable on this node only/, 'with the weakened promise');

      const work = c.dir;
      const host = await lab.addHost('udh', null);
      const script = recordingScript(work, 'udhcpc', 'case "$1" in bound|renew) ip addr replace "$ip/$subnet" dev "$interface";; esac');
      const child = host.spawn('udhcpc', ['-i', host.ifname, '-f', '-t', '10', '-T', '1', '-s', script]);
      let ip: string | undefined;
      let mac: string | undefined;
      try {
        const envText = (): string => (existsSync(join(work, 'udhcpc.env')) ? readFileSync(join(work, 'udhcpc.env'), 'utf8') : '');
        const env = await waitFor(() => lastEnv(envText(), /^bound/), 30_000);
        t.ok(env, 'udhcpc got a lease from lan-a alone');
        ip = env?.get('ip');
        const n = parseIpv4(ip ?? '') ?? 0;
        t.ok(n >= parseIpv4('10.66.0.100')! && n <= parseIpv4('10.66.0.149')!, `${ip} is in lan-a's half (10.66.0.100-149)`);
        t.ok(Number(env?.get('lease')) <= 60, `lease ${env?.get('lease')} s <= MCLT (60 s)`);
        const rows = JSON.parse((await runLanctl(['leases', '--json', '--socket', a.socket])).stdout) as LeaseRow[];
        mac = rows.find((r) => r.ip === ip)?.mac;
        t.ok(mac !== undefined, `lan-a's lanctl leases shows ${ip}`);
      } finally {
        await stopChild(child);
      }

      const healedAt = performance.now();
      await Promise.all([c.witness, b].map((n) => c.start(n)));
      const merged = await waitFor(async () => {
        const r = await runLanctl(['leases', '--json', '--socket', b.socket]);
        if (r.code !== 0) return null;
        return (JSON.parse(r.stdout) as LeaseRow[]).find((l) => l.ip === ip && l.mac === mac) ?? null;
      }, 60_000);
      t.ok(merged, `lan-b's lanctl leases shows ${ip} for ${mac} ${Math.round(performance.now() - healedAt)} ms after lan-b and the witness were started`);
      const all = JSON.parse((await runLanctl(['leases', '--json', '--all', '--socket', b.socket])).stdout) as LeaseRow[];
      const bound = all.filter((l) => l.state === 'bound');
      t.equal(new Set(bound.map((l) => l.ip)).size, bound.length, 'no address bound to two MACs');
      t.notMatch((await runLanctl(['doctor', '--socket', b.socket])).stdout, /dhcp\.degraded-conflicts/, 'doctor finds no merge conflict');
    } finally {
      await c.stopSampler();
      c.cleanup();
    }
    t.ok(lab.resolvConfUnchanged(), 'the host /etc/resolv.conf was not touched');
  });
});
