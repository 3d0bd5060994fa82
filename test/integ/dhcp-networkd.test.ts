// systemd-networkd, the DHCP client of Ubuntu and Debian servers built with systemd's networking,
// against `lanctl serve` in a lab namespace. networkd identifies itself by an RFC 4361 client
// identifier (type 255: IAID + DUID), not by its MAC: a reservation made by MAC must still give it
// its address, and the lease must carry every option it applies (mask, router, DNS, NTP, domain,
// lease time). It renews at T1 and keeps the address. networkd runs inside the namespace with its
// own /run/systemd and /etc/systemd/network (tmpfs mounts private to its `ip netns exec`) and a
// read-only /sys there (no udev), so it sees only the lab's .network file and writes nothing
// outside; its lease file is read through
// /proc/<pid>/root. No resolver is touched: networkd hands DNS to systemd-resolved over D-Bus,
// which does not run here.
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireLab, withLab, stopChild, type LabHost } from '../support/netns.js';
import { startLanhaDhcp, waitFor, type LanhaDhcp } from './dhcp-lab.js';

const NETWORKD = '/lib/systemd/systemd-networkd';
const RESERVED = '10.78.0.20';

const dhcpYaml = (mac: string): string => `  cacheThreshold: 0
  subnets:
    - subnet: 10.78.0.0/24
      pools: [10.78.0.100-10.78.0.150]
      router: [10.78.0.1]
      dns: [10.78.0.53]
      ntp: [10.78.0.123]
      domain: lab.lan
      leaseTime: 30s
      renewTime: 3s
      rebindTime: 5s
      reservations:
        - { mac: "${mac}", ip: ${RESERVED} }
`;

/** The lab's only .network file: DHCPv4 on the lab link, nothing else (no IPv6, no link-local, no hostname set here). */
const networkFile = (ifname: string): string => `[Match]
Name=${ifname}

[Network]
DHCP=ipv4
LinkLocalAddressing=no
IPv6AcceptRA=no

[DHCPv4]
SendHostname=yes
Hostname=e2e-networkd
UseHostname=no
UseDNS=yes
UseNTP=yes
UseDomains=yes
`;

/** networkd's lease file (KEY=VALUE lines) as it stands, or null before it has one. */
function leaseFile(pid: number, ifindex: number): Map<string, string> | null {
  const path = `/proc/${pid}/root/run/systemd/netif/leases/${ifindex}`;
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return null;
  }
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0 && !line.startsWith('#')) out.set(line.slice(0, eq), line.slice(eq + 1));
  }
  return out.has('ADDRESS') ? out : null;
}

async function macOf(host: LabHost): Promise<string> {
  return (await host.exec('cat', [`/sys/class/net/${host.ifname}/address`])).stdout.trim();
}

t.test('systemd-networkd: the reservation by MAC despite a DUID client id, every option applied, renewal at T1', async (t) => {
  if (!requireLab(t, [NETWORKD])) return;
  const work = mkdtempSync(join(tmpdir(), 'lanha-dhcp-networkd-'));
  let server: LanhaDhcp | undefined;
  try {
    await withLab(async (lab) => {
      const srv = await lab.addHost('srv', '10.78.0.1/24');
      const host = await lab.addHost('networkd', null);
      const mac = await macOf(host);
      const ifindex = Number((await host.exec('cat', [`/sys/class/net/${host.ifname}/ifindex`])).stdout.trim());
      server = await startLanhaDhcp(srv, '10.78.0.1', dhcpYaml(mac));
      const s = server;
      const script = [
        'set -e',
        // A read-only /sys is how networkd knows no udev runs (a container): it then takes links as
        // initialized instead of waiting for udev forever. Only this mount, in this private namespace.
        'mount -o remount,bind,ro /sys',
        'mount -t tmpfs lanha-lab /run/systemd',
        'mkdir -p /run/systemd/network /run/systemd/netif',
        'chown systemd-network:systemd-network /run/systemd/netif',
        'if [ -d /etc/systemd/network ]; then mount -t tmpfs lanha-lab /etc/systemd/network; fi',
        `printf '%s' "$NETWORK_FILE" > /run/systemd/network/10-lanha-lab.network`,
        `exec ${NETWORKD}`,
      ].join('\n');
      const child = host.spawn('sh', ['-c', script], { env: { ...process.env, NETWORK_FILE: networkFile(host.ifname), SYSTEMD_LOG_LEVEL: 'debug' } });
      // networkd's debug log, kept for a failure's message: its last 64 KiB only.
      let log = '';
      const keep = (d: Buffer): void => { log = (log + d.toString()).slice(-65_536); };
      child.stdout?.on('data', keep);
      child.stderr?.on('data', keep);
      try {
        const pid = child.pid!;
        const lease = await waitFor(() => leaseFile(pid, ifindex), 20_000);
        t.ok(lease, `networkd wrote a lease${lease === null ? `; its log:\n${log.slice(-2000)}` : ''}`);
        t.equal(lease?.get('ADDRESS'), RESERVED, 'the address reserved for its MAC');
        t.equal(lease?.get('NETMASK'), '255.255.255.0');
        t.equal(lease?.get('ROUTER'), '10.78.0.1');
        t.equal(lease?.get('SERVER_ADDRESS'), '10.78.0.1', 'server identifier');
        t.equal(lease?.get('DNS'), '10.78.0.53');
        t.equal(lease?.get('NTP'), '10.78.0.123');
        t.equal(lease?.get('DOMAINNAME'), 'lab.lan');
        t.equal(lease?.get('LIFETIME'), '30');
        t.equal(lease?.get('T1'), '3');
        t.match(lease?.get('CLIENTID') ?? '', /^ff/, 'networkd sent an RFC 4361 client identifier (type 255), not its MAC');
        const addr = await waitFor(async () => {
          const out = (await host.exec('ip', ['-4', '-o', 'addr', 'show', 'dev', host.ifname])).stdout;
          return out.includes(`inet ${RESERVED}/24`) ? out : null;
        }, 10_000);
        t.ok(addr, 'networkd configured the address on its link');

        const first = (await s.leases()).find((l) => l.mac === mac);
        t.equal(first?.ip, RESERVED, 'the server holds the lease under the MAC');
        t.equal(first?.hostname, 'e2e-networkd', 'and the host name networkd sent');
        t.match(first?.clientId ?? '', /^ff/, 'with networkd\'s client identifier');
        // T1 is 3 s: by 8 s networkd has renewed (unicast to the server identifier) at least once.
        const startedLeft = first?.expiresInS ?? 0;
        await new Promise((r) => setTimeout(r, 8000));
        const renewed = (await s.leases()).find((l) => l.mac === mac);
        t.equal(renewed?.ip, RESERVED, 'kept its address');
        t.ok((renewed?.expiresInS ?? 0) > startedLeft - 8 + 2, `the renewals extended the lease (${startedLeft} s left at first, ${renewed?.expiresInS} s 8 s later)`);
        t.notMatch(log, /DHCPv4 client: (NAK|Received NAK)/i, 'no NAK');
      } finally {
        await stopChild(child);
      }
      t.ok(lab.resolvConfUnchanged(), 'host /etc/resolv.conf untouched');
      t.notMatch(await s.daemon.logs(), /dhcp\.handler\.failed/, 'no handler failures in the daemon log');
    });
  } finally {
    await server?.stop();
    rmSync(work, { recursive: true, force: true });
  }
});
