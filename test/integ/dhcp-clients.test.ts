// Real DHCP clients (ISC dhclient, busybox udhcpc, dhcpcd) against `lanctl serve` in a lab namespace:
// each gets an address from the pool with the right mask, router, DNS, NTP, domain and lease time;
// dhclient renews at the short T1 and keeps its address, then releases it; udhcpc releases on exit
// and declines an address a squatter answers ARP for. Client scripts only record into files. The
// whole test runs on both state backends (the embedded Raft log and cluster.backend etcd).
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireLab, withLab, stopChild, type LabHost } from '../support/netns.js';
import { startLanhaDhcp, recordingScript, lastEnv, waitFor, type LanhaDhcp } from './dhcp-lab.js';
import { startEtcdCluster, type EtcdCluster } from '../support/etcd.js';

// Lease caching off: dhclient renews at T1 (3 s into the lease), which the default cacheThreshold
// (0.25) would answer from the committed lease; here every renewal is written and extends the lease
// (a real client against the cache: dhcp-lease-cache.test.ts).
const DHCP = `  cacheThreshold: 0
  subnets:
    - subnet: 10.77.0.0/24
      pools: [10.77.0.100-10.77.0.150]
      router: [10.77.0.1]
      dns: [10.77.0.53]
      ntp: [10.77.0.123]
      domain: lab.lan
      search: [lab.lan]
      leaseTime: 30s
      renewTime: 3s
      rebindTime: 5s
`;

const inPool = (ip: string | undefined): boolean => /^10\.77\.0\.(1[0-4]\d|150)$/.test(ip ?? '');

async function macOf(host: LabHost): Promise<string> {
  return (await host.exec('cat', [`/sys/class/net/${host.ifname}/address`])).stdout.trim();
}

// Once per state backend: the embedded Raft log, and cluster.backend etcd on a 3-member etcd in the
// server's namespace (the same clients, the same checks).
for (const backend of ['raft', 'etcd'] as const) t.test(`dhclient, udhcpc and dhcpcd get leases; renew, release and decline work (${backend})`, async (t) => {
  if (!requireLab(t, ['dhclient', 'udhcpc', 'dhcpcd', ...(backend === 'etcd' ? ['etcd', 'curl'] : [])])) return;
  const work = mkdtempSync(join(tmpdir(), 'lanha-dhcp-clients-'));
  let server: LanhaDhcp | undefined;
  let etcd: EtcdCluster | undefined;
  try {
    await withLab(async (lab) => {
      const srv = await lab.addHost('srv', '10.77.0.1/24');
      if (backend === 'etcd') etcd = await startEtcdCluster(3, { host: srv });
      const cluster = etcd === undefined ? '' : `cluster:\n  id: dhcp-clients\n  backend: etcd\n  members: [{ name: srv, address: 10.77.0.1 }]\n  etcd: { endpoints: [${etcd.endpoints.map((e) => `"${e}"`).join(', ')}] }\n`;
      server = await startLanhaDhcp(srv, '10.77.0.1', DHCP, undefined, cluster);
      const s = server;

      await t.test('udhcpc: lease with every option, then RELEASE (SIGUSR2)', async (t) => {
        const host = await lab.addHost('udhcpc', null);
        const mac = await macOf(host);
        // The address is configured in the client's namespace so the unicast RELEASE can leave from it.
        const script = recordingScript(work, 'udhcpc', 'case "$1" in bound|renew) ip addr replace "$ip/$subnet" dev "$interface";; esac');
        const child = host.spawn('udhcpc', ['-i', host.ifname, '-f', '-t', '5', '-T', '1', '-s', script, '-x', 'hostname:e2e-udhcpc', '-O', 'ntpsrv', '-O', 'search']);
        try {
          const envText = (): string => (existsSync(join(work, 'udhcpc.env')) ? readFileSync(join(work, 'udhcpc.env'), 'utf8') : '');
          const env = await waitFor(() => lastEnv(envText(), /^bound/), 15_000);
          t.ok(env, 'udhcpc ran its script for "bound"');
          t.ok(inPool(env?.get('ip')), `address ${env?.get('ip')} from the pool`);
          t.equal(env?.get('subnet'), '255.255.255.0');
          t.equal(env?.get('router'), '10.77.0.1');
          t.equal(env?.get('dns'), '10.77.0.53');
          t.equal(env?.get('ntpsrv'), '10.77.0.123');
          t.equal(env?.get('domain'), 'lab.lan');
          t.equal(env?.get('search'), 'lab.lan');
          t.equal(env?.get('lease'), '30');
          t.equal(env?.get('serverid'), '10.77.0.1');
          const bound = (await s.leases()).find((l) => l.mac === mac);
          t.equal(bound?.hostname, 'e2e-udhcpc', 'the client\'s host name was recorded with the lease');
          child.kill('SIGUSR2'); // busybox udhcpc: release the lease now
          const after = await waitFor(async () => (await s.leases(true)).find((l) => l.mac === mac && l.state === 'released') ?? null, 5000);
          t.ok(after, 'the RELEASE freed the lease');
        } finally {
          await stopChild(child);
        }
      });

      await t.test('udhcpc -a: an address a squatter answers ARP for is DECLINEd and quarantined', async (t) => {
        await lab.addHost('squat', '10.77.0.140/24');
        const host = await lab.addHost('decline', null);
        const mac = await macOf(host);
        const script = recordingScript(work, 'udhcpc-decline');
        const r = await host.exec('udhcpc', ['-i', host.ifname, '-f', '-n', '-q', '-a', '-t', '6', '-T', '1', '-A', '1', '-s', script, '-r', '10.77.0.140'], { timeoutMs: 30_000 });
        t.equal(r.code, 0, `udhcpc got a lease in the end: ${r.stderr.slice(-300)}`);
        const env = lastEnv(readFileSync(join(work, 'udhcpc-decline.env'), 'utf8'), /^bound/);
        t.not(env?.get('ip'), '10.77.0.140', 'not the squatted address');
        t.ok(inPool(env?.get('ip')));
        const leases = await s.leases(true);
        const declined = leases.find((l) => l.ip === '10.77.0.140');
        t.equal(declined?.state, 'declined', 'the squatted address is quarantined');
        t.equal(declined?.mac, mac);
      });

      await t.test('dhclient: lease, renewal at T1 keeps the address, release', async (t) => {
        const host = await lab.addHost('dhclient', null);
        const mac = await macOf(host);
        // Configure the address in the client's namespace so the unicast renewal can be sent and answered.
        const script = recordingScript(work, 'dhclient', 'case "$reason" in BOUND|RENEW|REBIND|REBOOT) ip addr replace "$new_ip_address/$new_subnet_mask" dev "$interface";; esac');
        const conf = join(work, 'dhclient.conf');
        const { writeFileSync } = await import('node:fs');
        writeFileSync(conf, 'send host-name "e2e-dhclient";\nrequest subnet-mask, broadcast-address, routers, domain-name, domain-name-servers, domain-search, host-name, ntp-servers;\n');
        const files = ['-sf', script, '-lf', join(work, 'dhclient.leases'), '-pf', join(work, 'dhclient.pid'), '-cf', conf];
        try {
          const r = await host.exec('dhclient', ['-1', '-v', ...files, host.ifname], { timeoutMs: 20_000 });
          t.equal(r.code, 0, `dhclient -1 exit 0: ${r.stderr.slice(-300)}`);
          const text = (): string => readFileSync(join(work, 'dhclient.env'), 'utf8');
          const bound = lastEnv(text(), /BOUND/);
          const ip = bound?.get('new_ip_address');
          t.ok(inPool(ip), `address ${ip} from the pool`);
          t.equal(bound?.get('new_subnet_mask'), '255.255.255.0');
          t.equal(bound?.get('new_routers'), '10.77.0.1');
          t.equal(bound?.get('new_domain_name_servers'), '10.77.0.53');
          t.equal(bound?.get('new_ntp_servers'), '10.77.0.123');
          t.equal(bound?.get('new_domain_name'), 'lab.lan');
          t.equal(bound?.get('new_dhcp_lease_time'), '30');
          t.equal(bound?.get('new_dhcp_renewal_time'), '3');
          const renewed = await waitFor(() => lastEnv(text(), /RENEW/), 12_000);
          t.ok(renewed, 'dhclient renewed after T1 (unicast to the server)');
          t.equal(renewed?.get('new_ip_address'), ip, 'and kept its address');
          const lease = (await s.leases()).find((l) => l.mac === mac);
          t.equal(lease?.ip, ip);
          t.equal(lease?.hostname, 'e2e-dhclient');
          t.ok((lease?.expiresInS ?? 0) > 20, 'the renewal extended the lease');
          const rel = await host.exec('dhclient', ['-r', ...files, host.ifname], { timeoutMs: 15_000 });
          t.equal(rel.code, 0, `dhclient -r: ${rel.stderr.slice(-200)}`);
          const released = await waitFor(async () => (await s.leases(true)).find((l) => l.mac === mac && l.state === 'released') ?? null, 5000);
          t.ok(released, 'the RELEASE freed the lease');
        } finally {
          const pidFile = join(work, 'dhclient.pid');
          if (existsSync(pidFile)) {
            const pid = Number(readFileSync(pidFile, 'utf8').trim());
            if (pid > 1) try { process.kill(pid, 'SIGTERM'); } catch { /* already gone */ }
          }
        }
      });

      await t.test('dhcpcd: lease with every option', async (t) => {
        const host = await lab.addHost('dhcpcd', null);
        const script = recordingScript(work, 'dhcpcd');
        const conf = join(work, 'dhcpcd.conf');
        const { writeFileSync } = await import('node:fs');
        writeFileSync(conf, 'option ntp_servers, domain_search, domain_name, domain_name_servers, routers\n');
        const r = await host.exec('dhcpcd', ['-1', '-4', '-B', '-A', '-L', '-t', '15', '-h', 'e2e-dhcpcd', '-c', script, '-f', conf, host.ifname], { timeoutMs: 25_000 });
        t.equal(r.code, 0, `dhcpcd exit 0: ${(r.stdout + r.stderr).slice(-400)}`);
        const env = lastEnv(readFileSync(join(work, 'dhcpcd.env'), 'utf8'), /BOUND/);
        t.ok(env, 'dhcpcd reported BOUND');
        t.ok(inPool(env?.get('new_ip_address')), `address ${env?.get('new_ip_address')} from the pool`);
        t.equal(env?.get('new_subnet_mask'), '255.255.255.0');
        t.equal(env?.get('new_routers'), '10.77.0.1');
        t.equal(env?.get('new_domain_name_servers'), '10.77.0.53');
        t.equal(env?.get('new_ntp_servers'), '10.77.0.123');
        t.equal(env?.get('new_domain_name'), 'lab.lan');
        t.equal(env?.get('new_dhcp_lease_time'), '30');
        await host.exec('dhcpcd', ['-x', host.ifname], { timeoutMs: 5000 }); // stop any leftover instance for this interface
      });

      t.ok(lab.resolvConfUnchanged(), 'host /etc/resolv.conf untouched');
      const status = await s.daemon.logs();
      t.notMatch(status, /dhcp\.handler\.failed/, 'no handler failures in the daemon log');
    });
  } finally {
    await server?.stop();
    await etcd?.stop();
    rmSync(work, { recursive: true, force: true });
  }
});
