// The rogue DHCP server detector against a real second server: lanha (probe every second) and
// dnsmasq on one lab segment. While lanha probes alone, busybox udhcpc gets its lease from lanha and
// nothing is reported (lanha's own offers and its clients' REQUESTs never count, its server never
// serves the probe). Once dnsmasq runs, lanha reports it within a few rounds with its server id,
// MAC, offered address and boot file (lanctl status --json and text, doctor, one warn line); a
// client that took dnsmasq's offer (lanha's one-address pool is taken) is seen by its REQUEST; with
// dnsmasq stopped the entry ages out. Each lab namespace has its own /etc/netns/<ns>/resolv.conf;
// the host's /etc/resolv.conf is checked unchanged.
import t from 'tap';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { requireLab, stopChild, type LabHost } from '../support/netns.js';
import { runLanctl } from '../support/daemon.js';
import { recordingScript, lastEnv, waitFor, withDhcpLab, type LanhaDhcp } from './dhcp-lab.js';

const DHCP = `  rogueProbe: { interval: 1s }
  subnets:
    - subnet: 10.78.0.0/24
      pools: [10.78.0.100-10.78.0.100]
      router: [10.78.0.1]
      leaseTime: 1h
`;

interface RogueRow { serverId: string; source: string | null; mac: string | null; offered: string | null; bootfile: string | null; client: string | null; via: string[]; offers: number }
interface RogueStatus { probe: { state: string; rounds: number; probeMac: string; problem: string | null }; servers: RogueRow[] }

async function dhcpStatus(server: LanhaDhcp): Promise<{ rogue: RogueStatus; counters: Record<string, number> }> {
  const r = await runLanctl(['status', '--json', '--socket', server.socket]);
  if (r.code !== 0) throw new Error(`lanctl status failed (${r.code}): ${r.stderr}`);
  return (JSON.parse(r.stdout) as { services: { dhcp: { rogue: RogueStatus; counters: Record<string, number> } } }).services.dhcp;
}

async function macOf(host: LabHost): Promise<string> {
  return (await host.exec('cat', [`/sys/class/net/${host.ifname}/address`])).stdout.trim();
}

t.test('lanha reports a second DHCP server on its segment, by probe and by a client\'s REQUEST, and forgets it once gone', async (t) => {
  if (!requireLab(t, ['dnsmasq', 'udhcpc'])) return;
  await withDhcpLab('10.78.0.1/24', DHCP, async (lab, server, work) => {
    await t.test('probing alone: udhcpc gets its lease from lanha and nothing is reported', async (t) => {
      const rounds = await waitFor(async () => ((await dhcpStatus(server)).rogue.probe.rounds >= 2 ? true : null), 15_000);
      t.ok(rounds, 'the probe ran twice');
      const host = await lab.addHost('client-a', null);
      const script = recordingScript(work, 'client-a');
      const r = await host.exec('udhcpc', ['-i', host.ifname, '-f', '-n', '-q', '-t', '5', '-T', '1', '-s', script], { timeoutMs: 20_000 });
      t.equal(r.code, 0, `udhcpc got a lease: ${r.stderr.slice(-300)}`);
      const env = lastEnv(readFileSync(join(work, 'client-a.env'), 'utf8'), /^bound/);
      t.equal(env?.get('ip'), '10.78.0.100', 'the pool\'s one address');
      t.equal(env?.get('serverid'), '10.78.0.1', 'from lanha');
      const status = await dhcpStatus(server);
      t.same(status.rogue.servers, [], 'lanha\'s own offers and its client\'s REQUEST are not another server');
      t.equal(status.rogue.probe.state, 'probing');
      t.ok((status.counters['rogue.own-probe-heard'] ?? 0) >= 2, 'lanha\'s server heard its probes and served none');
      t.notOk((await server.leases(true)).some((l) => l.mac === status.rogue.probe.probeMac), 'no lease for the probe MAC');
    });

    const rogueHost = await lab.addHost('rogue', '10.78.0.9/24');
    const rogueMac = await macOf(rogueHost);
    const dnsmasq = rogueHost.spawn('dnsmasq', ['--keep-in-foreground', '--log-facility=-', '--conf-file=/dev/null', '--port=0', '--no-resolv', '--no-hosts',
      '--bind-interfaces', `--interface=${rogueHost.ifname}`, '--dhcp-range=10.78.0.200,10.78.0.210,255.255.255.0,10m', '--dhcp-boot=rogue.efi',
      `--dhcp-leasefile=${join(work, 'dnsmasq.leases')}`, `--pid-file=${join(work, 'dnsmasq.pid')}`], { stdio: ['ignore', 'pipe', 'pipe'] });
    let dnsmasqOut = '';
    dnsmasq.stdout!.on('data', (d: Buffer) => { dnsmasqOut += d.toString(); });
    dnsmasq.stderr!.on('data', (d: Buffer) => { dnsmasqOut += d.toString(); });
    try {
      await t.test('dnsmasq on the segment: reported with its server id, MAC, offer and boot file', async (t) => {
        const started = Date.now();
        const seen = await waitFor(async () => (await dhcpStatus(server)).rogue.servers.find((s) => s.serverId === '10.78.0.9' && s.mac !== null) ?? null, 20_000);
        t.ok(seen, `reported within ${Math.round((Date.now() - started) / 1000)} s; dnsmasq said:\n${dnsmasqOut.slice(-600)}`);
        t.equal(seen?.source, '10.78.0.9');
        t.equal(seen?.mac, rogueMac, 'the MAC of the rogue\'s interface');
        t.match(seen?.offered ?? '', /^10\.78\.0\.2(0\d|10)$/, 'an address of dnsmasq\'s range');
        t.equal(seen?.bootfile, 'rogue.efi', 'the boot file it hands out');
        t.ok(seen?.via.includes('probe'));
        const text = await runLanctl(['status', '--socket', server.socket]);
        t.match(text.stdout, /OTHER DHCP SERVERS on this network \(1\)/);
        t.match(text.stdout, new RegExp(`10\\.78\\.0\\.9\\s+10\\.78\\.0\\.9\\s+${rogueMac}`));
        const doctor = JSON.parse((await runLanctl(['doctor', '--json', '--socket', server.socket])).stdout) as { findings: Array<{ id: string; evidence: string; fix: string }> };
        const finding = doctor.findings.find((f) => f.id === 'dhcp.rogue-server');
        t.match(finding?.evidence, 'server id 10.78.0.9');
        t.match(finding?.fix, rogueMac);
        // Two more probe rounds answered (not a fixed wait: a loaded machine runs fewer rounds in one).
        const offersThen = seen?.offers ?? 0;
        const more = await waitFor(async () => (await dhcpStatus(server)).rogue.servers.find((s) => s.serverId === '10.78.0.9' && s.offers >= offersThen + 2) ?? null, 20_000);
        t.ok(more, `more sightings of the same server (${offersThen} -> ${more?.offers} offers)`);
        const warned = server.daemon.logs().split('\n').filter((l) => l.includes('"event":"dhcp.rogue_server"'));
        t.equal(warned.length, 1, 'one warn line for several rounds of sightings');
        t.match(warned[0], /"level":"warn"/);
      });

      await t.test('a client that took dnsmasq\'s offer is seen by its REQUEST', async (t) => {
        const host = await lab.addHost('client-b', null);
        const mac = await macOf(host);
        const script = recordingScript(work, 'client-b');
        // lanha's only address is client-a's: lanha stays silent and dnsmasq's offer is the one taken.
        const r = await host.exec('udhcpc', ['-i', host.ifname, '-f', '-n', '-q', '-t', '8', '-T', '2', '-s', script], { timeoutMs: 30_000 });
        t.equal(r.code, 0, `udhcpc got a lease: ${r.stderr.slice(-300)}`);
        const env = existsSync(join(work, 'client-b.env')) ? lastEnv(readFileSync(join(work, 'client-b.env'), 'utf8'), /^bound/) : null;
        t.equal(env?.get('serverid'), '10.78.0.9', 'from dnsmasq');
        const seen = await waitFor(async () => (await dhcpStatus(server)).rogue.servers.find((s) => s.via.includes('request')) ?? null, 5000);
        t.equal(seen?.serverId, '10.78.0.9');
        t.equal(seen?.client, mac, 'the client that took its offer');
        t.ok(((await dhcpStatus(server)).counters['rogue.requests'] ?? 0) >= 1);
      });
    } finally {
      await stopChild(dnsmasq);
    }

    await t.test('dnsmasq gone: the entry ages out after a few quiet rounds', async (t) => {
      const gone = await waitFor(async () => ((await dhcpStatus(server)).rogue.servers.length === 0 ? true : null), 20_000);
      t.ok(gone, 'no other server listed');
      t.match(server.daemon.logs(), /"event":"dhcp.rogue_server.gone"/);
    });

    t.ok(lab.resolvConfUnchanged(), 'the host\'s /etc/resolv.conf is unchanged');
  });
});
