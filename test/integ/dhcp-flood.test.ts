// A DISCOVER flood from made-up MACs (perfdhcp -i: DISCOVER/OFFER only, a new MAC each time) holds
// every free address of the pool as an offer, with the default offerTtl (30 s). A real client that
// comes after it (busybox udhcpc, its own namespace) must still get a lease: the dry pool takes back
// the oldest unanswered offer for it (allocator.ts #reclaim) instead of leaving it without an offer
// until the flood's offers lapse.
import t from 'tap';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireLab, withLab } from '../support/netns.js';
import { runLanctl } from '../support/daemon.js';
import { lastEnv, recordingScript, startLanhaDhcp, type LanhaDhcp } from './dhcp-lab.js';

const DHCP = `  subnets:
    - subnet: 10.79.0.0/24
      pools: [10.79.0.100-10.79.0.119]
      leaseTime: 1h
`;

t.test('after a random-MAC DISCOVER flood has every free address on offer, udhcpc still gets a lease', async (t) => {
  if (!requireLab(t, ['perfdhcp', 'udhcpc'])) return;
  const work = mkdtempSync(join(tmpdir(), 'lanha-dhcp-flood-'));
  let server: LanhaDhcp | undefined;
  try {
    await withLab(async (lab) => {
      const srv = await lab.addHost('srv', '10.79.0.1/24');
      const flooder = await lab.addHost('flood', '10.79.0.2/24');
      server = await startLanhaDhcp(srv, '10.79.0.1', DHCP);
      const s = server;
      const dhcpStatus = async (): Promise<{ offers: number; counters: Record<string, number> }> => {
        const r = await runLanctl(['status', '--json', '--socket', s.socket]);
        return (JSON.parse(r.stdout) as { services: { dhcp: { offers: number; counters: Record<string, number> } } }).services.dhcp;
      };
      // 200 DISCOVERs a second for 2 s, each from a new MAC (relayed: giaddr 10.79.0.2), never a REQUEST.
      const flood = await flooder.exec('perfdhcp', ['-4', '-i', '-l', flooder.ifname, '-r', '200', '-R', '100000', '-p', '2', '10.79.0.1'], { timeoutMs: 20_000 });
      const after = await dhcpStatus();
      // perfdhcp exits 3 when exchanges went unanswered, as most of these do: what it sent is what counts.
      t.ok((after.counters['received.discover'] ?? 0) >= 300, `the flood reached the server (${after.counters['received.discover']} DISCOVERs; perfdhcp exit ${flood.code} ${flood.stderr.slice(-100)})`);
      t.equal(after.offers, 20, 'the flood holds all 20 pool addresses as offers');
      t.equal(await s.leases().then((l) => l.length), 0, 'and no lease');
      t.ok((after.counters['offer.reclaimed'] ?? 0) > 0, `offers were taken back for newer DISCOVERs during the flood (${after.counters['offer.reclaimed']})`);

      // The real client: 3 DISCOVERs a second apart, then it gives up (-n). The flood's offers run 28 s more.
      const host = await lab.addHost('real', null);
      const mac = (await host.exec('cat', [`/sys/class/net/${host.ifname}/address`])).stdout.trim();
      const script = recordingScript(work, 'udhcpc');
      const r = await host.exec('udhcpc', ['-i', host.ifname, '-f', '-n', '-q', '-t', '3', '-T', '1', '-s', script], { timeoutMs: 20_000 });
      t.equal(r.code, 0, `udhcpc got a lease: ${(r.stdout + r.stderr).slice(-300)}`);
      const envPath = join(work, 'udhcpc.env');
      const bound = existsSync(envPath) ? lastEnv(readFileSync(envPath, 'utf8'), /^bound/) : null;
      t.match(bound?.get('ip') ?? '', /^10\.79\.0\.1[01]\d$/, `a pool address (${bound?.get('ip')})`);
      const lease = (await s.leases()).find((l) => l.mac === mac);
      t.equal(lease?.ip ?? 'no lease', bound?.get('ip') ?? 'not bound', 'the server holds the lease for the client');
      t.ok(lab.resolvConfUnchanged(), 'host /etc/resolv.conf untouched');
      t.notMatch(await s.daemon.logs(), /dhcp\.handler\.failed/, 'no handler failures in the daemon log');
    });
  } finally {
    await server?.stop();
    rmSync(work, { recursive: true, force: true });
  }
});
