import t from 'tap';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireLab, withLab, stopChild } from '../support/netns.js';
import { runLanctl } from '../support/daemon.js';
import { startEtcdCluster } from '../support/etcd.js';
import { lastEnv, recordingScript, waitFor } from './dhcp-lab.js';
import { digVip, overlaps, vipCluster, VIP, WWW, type VipNode } from './vip-lab.js';

// cluster.backend etcd in lab namespaces: a 3-member etcd in its own namespace, two lanha servers
// (DHCP, DNS, TFTP, NTP, VIP; leaseTtl 1s) on it, the kernel's VIP sampled every 50 ms, and busybox
// udhcpc as the client. One server holds the VIP and answers DHCP; kill -9 of it moves the VIP to
// the other with no sample showing two holders, the ACKed lease is there and udhcpc's renewal gets
// the same address from the new holder; `lanctl failover` resigns the etcd election and moves the
// VIP back; a holder cut off from etcd (nft, LAN still up) drops the VIP and the other takes it, never
// both; etcd gone entirely: no VIP, no DHCP for a new client, DNS still answers on each server's own
// address and doctor names etcd; `lanctl status` shows the backend, the endpoints' health and the
// election holder.


t.test('etcd backend: DHCP with udhcpc, kill -9 of the holder, lanctl failover', async (t) => {
  if (!requireLab(t, ['etcd', 'udhcpc', 'dig', 'arping', 'curl', 'nft'])) return;
  const work = mkdtempSync(join(tmpdir(), 'lanha-etcd-lab-'));
  t.teardown(() => rmSync(work, { recursive: true, force: true }));
  await withLab(async (lab) => {
    const etcdHost = await lab.addHost('etcd', '10.66.0.20/24');
    const etcd = await startEtcdCluster(3, { host: etcdHost });
    const c = await vipCluster(lab, 'fast', { dhcp: { leaseTime: '60s', renewTime: '30s', rebindTime: '50s' }, etcd: { endpoints: etcd.endpoints, leaseTtl: '1s' } });
    try {
      const [a, b] = c.servers as [VipNode, VipNode];
      const startedAt = performance.now();
      await Promise.all([c.start(a), c.start(b)]);
      const first = await c.waitSteady(500, 20_000);
      const holder = first === a.name ? a : b;
      const other = holder === a ? b : a;
      t.equal(await digVip(c.client), WWW, 'DNS answers on the VIP');

      const status = await runLanctl(['status', '--socket', holder.socket]);
      t.equal(status.code, 0);
      t.match(status.stdout, new RegExp(`backend: etcd, prefix /lanha/vip-lab/.*election holder ${holder.name}`), 'status names the backend and the election holder');
      t.match(status.stdout, /http:\/\/10\.66\.0\.20:2379\d +(yes)? +healthy/, 'and the endpoints\' health');

      const dh = await lab.addHost('dh', null);
      const script = recordingScript(work, 'udhcpc', 'case "$1" in bound|renew) ip addr replace "$ip/$subnet" dev "$interface";; esac');
      const client = dh.spawn('udhcpc', ['-i', dh.ifname, '-f', '-t', '10', '-T', '1', '-s', script, '-x', 'hostname:etcd-client']);
      try {
        const envText = (): string => (existsSync(join(work, 'udhcpc.env')) ? readFileSync(join(work, 'udhcpc.env'), 'utf8') : '');
        const bound = await waitFor(() => lastEnv(envText(), /^bound/), 40_000);
        const ip = bound?.get('ip');
        t.match(ip, /^10\.66\.0\.1\d\d$/, `udhcpc bound ${ip} from the pool`);
        t.equal(bound?.get('serverid'), VIP, 'server id is the VIP');
        const leaseOn = async (node: VipNode): Promise<string | null> => {
          const r = await runLanctl(['leases', '--json', '--socket', node.socket]);
          const leases = r.code === 0 ? (JSON.parse(r.stdout) as Array<{ ip: string; state: string }>) : [];
          return leases.find((l) => l.ip === ip && l.state === 'bound') ? ip! : null;
        };
        t.ok(await waitFor(() => leaseOn(other), 5000), `the lease reached ${other.name} through etcd`);

        // kill -9 of the holder: its etcd lease runs out (1 s), the other server wins and takes the VIP.
        const killedAt = performance.now();
        holder.daemon!.child.kill('SIGKILL');
        const taken = await c.waitSample((s) => s.holders.length === 1 && s.holders[0] === other.name, 10_000, killedAt);
        t.comment(`${other.name} held the VIP ${Math.round(taken.at - killedAt)} ms after kill -9 of ${holder.name}`);
        t.same(overlaps(c.samples, startedAt), [], 'no sample with two holders');
        t.ok(await leaseOn(other), 'the ACKed lease is on the new holder');
        const renewsBefore = envText().split('=== renew').length;
        client.kill('SIGUSR1'); // busybox udhcpc: renew now
        const renewed = await waitFor(() => (envText().split('=== renew').length > renewsBefore ? lastEnv(envText(), /^renew/) : null), 20_000);
        t.equal(renewed?.get('ip'), ip, `the renewal from ${other.name} kept ${ip}`);
        t.equal(await digVip(c.client), WWW, 'DNS answers on the VIP from the new holder');

        // The killed server comes back as a follower; lanctl failover resigns and the VIP moves to it.
        await c.start(holder);
        await new Promise((r) => setTimeout(r, 1500));
        t.same(c.samples.at(-1)?.holders, [other.name], `${other.name} keeps the VIP after ${holder.name} restarts (no fail-back)`);
        const startedFailover = performance.now();
        const done = await runLanctl(['failover', '--json', '--socket', other.socket], { timeoutMs: 30_000 });
        t.equal(done.code, 0, `failover: ${done.stdout}${done.stderr}`);
        const moved = await c.waitSample((s) => s.holders.length === 1 && s.holders[0] === holder.name, 10_000, startedFailover);
        t.comment(`lanctl failover: ${holder.name} held the VIP ${Math.round(moved.at - startedFailover)} ms after the command started`);
        t.same(overlaps(c.samples, startedAt), [], 'still no sample with two holders');
        t.ok(await leaseOn(holder), `the lease is on ${holder.name} too`);

        // Cut the holder off from etcd (it still sees the LAN): it drops the VIP by itself, the other
        // server wins once the cut holder's etcd lease ran out, and never do both hold it.
        const cutAt = performance.now();
        const rules = join(work, 'cut.nft');
        writeFileSync(rules, [
          'add table inet lhetcdcut',
          'add chain inet lhetcdcut out { type filter hook output priority 0; policy accept; }',
          'add chain inet lhetcdcut in { type filter hook input priority 0; policy accept; }',
          `add rule inet lhetcdcut out ip daddr ${etcdHost.address} drop`,
          `add rule inet lhetcdcut in ip saddr ${etcdHost.address} drop`,
        ].join('\n') + '\n');
        const cut = await holder.host.exec('nft', ['-f', rules]);
        t.equal(cut.code, 0, `nft: ${cut.stderr}`);
        try {
          const away = await c.waitSample((s) => s.holders.length === 1 && s.holders[0] === other.name, 15_000, cutAt);
          t.comment(`${holder.name} cut off from etcd: ${other.name} held the VIP ${Math.round(away.at - cutAt)} ms later`);
          t.same(overlaps(c.samples, startedAt), [], 'no sample with two holders across the cut');
          const cutStatus = await runLanctl(['status', '--json', '--socket', holder.socket]);
          const role = (JSON.parse(cutStatus.stdout) as { cluster: { role: string } }).cluster.role;
          t.not(role, 'leader', `the cut-off server is not leader (${role}), so it answers no DHCP`);
        } finally {
          await holder.host.exec('nft', ['delete', 'table', 'inet', 'lhetcdcut']);
        }
        await new Promise((r) => setTimeout(r, 1500));
        t.same(c.samples.at(-1)?.holders, [other.name], `after the heal ${other.name} keeps the VIP`);

        // etcd gone entirely: nobody leads, so nobody holds the VIP or answers DHCP; DNS keeps
        // answering on each server's own address from the last state; status and doctor say why.
        const downAt = performance.now();
        for (let i = 0; i < 3; i++) await etcd.kill(i);
        await c.waitSample((s) => s.holders.length === 0, 10_000, downAt);
        t.pass('no server holds the VIP while etcd is down');
        for (const n of c.servers) {
          const r = await c.client.exec('dig', ['+time=1', '+tries=2', '+short', `@${n.host.address}`, 'www.lab.test', 'A'], { timeoutMs: 10_000 });
          t.equal(r.stdout.trim(), WWW, `DNS on ${n.name}'s own address still answers`);
        }
        const late = await lab.addHost('late', null);
        const lateScript = recordingScript(work, 'late', '');
        const lateClient = late.spawn('udhcpc', ['-i', late.ifname, '-f', '-n', '-q', '-t', '4', '-T', '1', '-s', lateScript]);
        await new Promise<void>((resolve) => lateClient.once('exit', () => resolve()));
        t.notOk(existsSync(join(work, 'late.env')) && /^=== bound/m.test(readFileSync(join(work, 'late.env'), 'utf8')), 'a new DHCP client gets no lease while etcd is down');
        await waitFor(async () => {
          const d = await runLanctl(['doctor', '--socket', other.socket]);
          return /etcd\.unreachable/.test(d.stdout + d.stderr) ? true : null;
        }, 20_000);
        const doctor = await runLanctl(['doctor', '--socket', other.socket]);
        t.match(doctor.stdout + doctor.stderr, /etcd\.unreachable.*no etcd endpoint answers/, 'doctor names etcd as the cause');
        await Promise.all([0, 1, 2].map((i) => etcd.restart(i)));
        await c.waitSample((s) => s.holders.length === 1, 20_000, performance.now());
        t.pass('etcd back: one server holds the VIP again');
      } finally {
        await stopChild(client);
      }
    } finally {
      if (process.env['ETCD_DEBUG'] || !t.passing()) for (const n of c.servers) writeFileSync(`/tmp/etcd-lab-${n.name}.log`, n.daemon?.logs() ?? '');
      for (const n of c.servers) await n.daemon?.stop();
      await c.stopSampler();
      c.cleanup();
      await etcd.stop();
    }
    t.ok(lab.resolvConfUnchanged(), 'the host /etc/resolv.conf was not touched');
  });
});
