// Two clients nobody here wrote, against `lanctl serve` in a lab namespace: bootpc (Debian's BOOTP
// client, RFC 951 with an RFC 1048 vendor area and no option 53) gets its reserved address, mask,
// router, DNS, host name, domain, next server and boot file from a BOOTREPLY, and with
// bootp.dynamic an unreserved one gets a pool address that `lanctl leases` lists as never expiring;
// dhcpcd with `option rapid_commit` is bound by a two-packet exchange (DISCOVER with option 80, ACK),
// as the server's counters and a capture on the link show. Client scripts only record into files.
import t from 'tap';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { requireLab, type LabHost } from '../support/netns.js';
import { runLanctl } from '../support/daemon.js';
import { lastEnv, recordingScript, withDhcpLab, type LanhaDhcp } from './dhcp-lab.js';

const MAC_RESERVED = '52:54:00:b0:07:01';
const MAC_DYNAMIC = '52:54:00:b0:07:02';

const DHCP = `  cacheThreshold: 0
  bootp: { dynamic: true }
  subnets:
    - subnet: 10.83.0.0/24
      pools: [10.83.0.100-10.83.0.120]
      router: [10.83.0.1]
      dns: [10.83.0.53]
      domain: boot.lan
      leaseTime: 10m
      rapidCommit: true
      reservations:
        - { mac: "${MAC_RESERVED}", ip: 10.83.0.7, hostname: board7 }
  boot:
    - { name: boards, match: { mac: ["${MAC_RESERVED}", "${MAC_DYNAMIC}"] }, nextServer: 10.83.0.9, bootfile: boards/zImage }
`;

async function counters(server: LanhaDhcp): Promise<Record<string, number>> {
  const r = await runLanctl(['status', '--json', '--socket', server.socket]);
  return (JSON.parse(r.stdout) as { services: { dhcp: { counters: Record<string, number> } } }).services.dhcp.counters;
}

/** bootpc's answer: the shell assignments it prints (IPADDR='10.83.0.7' ...). */
async function bootpc(host: LabHost, mac: string): Promise<{ code: number; vars: Map<string, string>; out: string }> {
  await host.exec('ip', ['link', 'set', 'dev', host.ifname, 'address', mac]);
  // bootpc sends to 255.255.255.255 and needs a route for it; the namespace has no address yet.
  await host.exec('ip', ['route', 'replace', 'default', 'dev', host.ifname]);
  const r = await host.exec('bootpc', ['--dev', host.ifname, '--timeoutwait', '10'], { timeoutMs: 20_000 });
  const vars = new Map<string, string>();
  for (const m of r.stdout.matchAll(/^([A-Z_0-9]+)=(?:'([^']*)'|(\S*))$/gm)) vars.set(m[1]!, m[2] ?? m[3] ?? '');
  return { code: r.code, vars, out: r.stdout + r.stderr };
}

t.test('bootpc (BOOTP, no option 53) gets its reservation and boot parameters; an unreserved one a pool address that never expires', async (t) => {
  if (!requireLab(t, ['bootpc'])) return;
  await withDhcpLab('10.83.0.1/24', DHCP, async (lab, server) => {
    const reserved = await bootpc(await lab.addHost('bootp1', null), MAC_RESERVED);
    t.equal(reserved.code, 0, `bootpc exit 0: ${reserved.out.slice(-400)}`);
    t.equal(reserved.vars.get('IPADDR'), '10.83.0.7', 'the reserved address');
    t.equal(reserved.vars.get('NETMASK'), '255.255.255.0');
    t.equal(reserved.vars.get('GATEWAYS'), '10.83.0.1', 'router (RFC 1497 option 3)');
    t.equal(reserved.vars.get('DNSSRVS'), '10.83.0.53', 'DNS server (option 6)');
    t.equal(reserved.vars.get('HOSTNAME'), 'board7', 'host name (option 12)');
    t.equal(reserved.vars.get('DOMAIN'), 'boot.lan', 'domain (option 15)');
    t.equal(reserved.vars.get('SERVER'), '10.83.0.9', 'siaddr: the boot rule\'s next server');
    t.equal(reserved.vars.get('BOOTFILE'), 'boards/zImage', 'file: the boot rule\'s bootfile');

    const dynamic = await bootpc(await lab.addHost('bootp2', null), MAC_DYNAMIC);
    t.equal(dynamic.code, 0, `bootpc exit 0: ${dynamic.out.slice(-400)}`);
    t.match(dynamic.vars.get('IPADDR') ?? '', /^10\.83\.0\.(1[01]\d|120)$/, 'a pool address (bootp.dynamic)');

    const leases = await server.leases();
    const lease = leases.find((l) => l.mac === MAC_DYNAMIC) as (typeof leases)[number] & { infinite?: boolean } | undefined;
    t.equal(lease?.ip, dynamic.vars.get('IPADDR'), 'the grant is in the replicated state');
    t.equal(lease?.infinite, true, 'a lease that never expires by itself');
    const text = await runLanctl(['leases', '--socket', server.socket]);
    t.match(text.stdout, new RegExp(`${dynamic.vars.get('IPADDR')!.replace(/\./g, '\\.')}\\s+${MAC_DYNAMIC}.*never \\(BOOTP\\)`), 'lanctl leases shows it as never expiring');
    const c = await counters(server);
    t.equal(c['received.bootp'], 2, 'two BOOTREQUESTs (no option 53)');
    t.equal(c['sent.bootp'], 2, 'two BOOTREPLYs');
    t.equal(c['dropped.malformed.no-message-type'] ?? 0, 0, 'none dropped as malformed');
    t.ok(lab.resolvConfUnchanged(), 'host /etc/resolv.conf untouched');
  });
});

t.test('dhcpcd with option rapid_commit is bound in two packets: DISCOVER with option 80, ACK with option 80', async (t) => {
  if (!requireLab(t, ['dhcpcd', 'tcpdump'])) return;
  await withDhcpLab('10.83.0.1/24', DHCP, async (lab, server, work) => {
    const host = await lab.addHost('rapid', null);
    let bound: string | undefined;
    const script = recordingScript(work, 'dhcpcd');
    const conf = join(work, 'dhcpcd.conf');
    writeFileSync(conf, 'option rapid_commit, domain_name_servers, routers\n');
    const capture = join(work, 'dhcp.pcap');
    let tcpdumpSaid = '';
    const tcpdump = host.spawn('tcpdump', ['-Z', 'root', '--immediate-mode', '-i', host.ifname, '-n', '-U', '-w', capture, 'udp port 67 or udp port 68'], { stdio: ['ignore', 'ignore', 'pipe'] });
    try {
      // The client starts once tcpdump's capture is open (it says "listening on" then).
      const listening = await new Promise<boolean>((resolve) => {
        let said = '';
        const timer = setTimeout(() => resolve(false), 15_000);
        tcpdump.stderr?.on('data', (chunk: Buffer) => { said += chunk.toString(); tcpdumpSaid = said; if (said.includes('listening on')) { clearTimeout(timer); resolve(true); } });
      });
      t.ok(listening, 'tcpdump is capturing on the client\'s link');
      const r = await host.exec('dhcpcd', ['-1', '-4', '-B', '-A', '-L', '-t', '15', '-c', script, '-f', conf, host.ifname], { timeoutMs: 25_000 });
      t.equal(r.code, 0, `dhcpcd exit 0: ${(r.stdout + r.stderr).slice(-400)}`);
      const env = lastEnv(readFileSync(join(work, 'dhcpcd.env'), 'utf8'), /BOUND/);
      t.ok(env, 'dhcpcd reported BOUND');
      bound = env?.get('new_ip_address');
      t.match(bound ?? '', /^10\.83\.0\.(1[01]\d|120)$/, 'a pool address');
      t.equal(env?.get('new_routers'), '10.83.0.1');
      t.equal(env?.get('new_dhcp_lease_time'), '600');
      await host.exec('dhcpcd', ['-x', host.ifname], { timeoutMs: 5000 });
      await new Promise((r) => setTimeout(r, 500));
    } finally {
      tcpdump.kill('SIGINT');
      await new Promise((r) => tcpdump.once('exit', r));
    }
    const c = await counters(server);
    t.equal(c['received.discover'], 1, 'one DISCOVER');
    t.equal(c['rapid-commit.acked'], 1, 'answered by an ACK with option 80');
    t.equal(c['sent.offer'] ?? 0, 0, 'no OFFER');
    t.equal(c['received.request'] ?? 0, 0, 'no REQUEST');
    const read = await host.exec('tcpdump', ['-n', '-v', '-r', capture]);
    const packets = read.stdout.split('\n').filter((l) => /BOOTP\/DHCP, (Request|Reply)/.test(l));
    const types = [...read.stdout.matchAll(/DHCP-Message \(53\), length 1: (\w+)/g)].map((m) => m[1]);
    t.same(types.slice(0, 2), ['Discover', 'ACK'], `the exchange on the wire: ${types.join(', ')}`);
    t.equal(types.filter((x) => x === 'Offer' || x === 'Request').length, 0, 'no OFFER or REQUEST on the wire');
    t.ok(packets.length >= 2, `${packets.length} DHCP packets captured (tcpdump: ${tcpdumpSaid.trim()}; ${read.stderr.trim()})`);
    // tcpdump 4.99 prints code 80 under its older name, SLP-NA; an empty option 80 is Rapid Commit.
    t.equal(read.stdout.match(/\(80\), length 0/g)?.length, 2, 'option 80 in the DISCOVER and in the ACK');
    t.equal((await server.leases()).find((l) => l.ip === bound)?.state, 'bound', 'the lease is in the replicated state');
    t.ok(lab.resolvConfUnchanged(), 'host /etc/resolv.conf untouched');
  });
});
