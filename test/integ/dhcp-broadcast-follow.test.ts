import t from 'tap';
import { join } from 'node:path';
import { requireLab, withLab, type LabHost } from '../support/netns.js';
import { logRecords, runLanctl } from '../support/daemon.js';
import { REPO_ROOT } from '../support/paths.js';
import { startLanhaDhcp, waitFor, type LanhaDhcp } from './dhcp-lab.js';

// Replies to clients without an address go to 255.255.255.255 from a socket bound to this node's
// address on the DHCP link (services/dhcp/server.ts BroadcastSource), so they leave by that link
// whatever the default route says. That socket follows the host's addresses: an address added after
// the start is taken up, one removed is let go (replies fall back to the subnet broadcast, counted,
// and doctor says so), one changed is rebound, and a link down and up again serves as before.
// The server's default route is on an uplink, as on a Pi with wlan0 upstream: a 255.255.255.255
// sent from the wildcard socket leaves there and the client never hears it. The client is a raw
// AF_PACKET DISCOVER (test/support/dhcp-raw-discover.py), which hears every reply and its destination.

const DHCP = `  subnets:
    - subnet: 10.88.0.0/24
      pools: [10.88.0.100-10.88.0.120]
  boot:
    - { name: x86-uefi, match: { arch: [7] }, nextServer: 10.88.0.2, bootfile: ipxe.efi }
`;

interface Heard { dst: string; src: string; yiaddr: string }
interface Status { services: { dhcp: { broadcastTo: string; broadcastFrom?: string | null; counters: Record<string, number> } } }

const PROBE = join(REPO_ROOT, 'test/support/dhcp-raw-discover.py');

t.test('the 255.255.255.255 socket follows the server\'s address: added after start, removed, changed, link down and up', async (t) => {
  if (!requireLab(t, ['python3'])) return;
  let server: LanhaDhcp | undefined;
  try {
    await withLab(async (lab) => {
      const srv = await lab.addHost('srv', null);
      const cli = await lab.addHost('cli', null);
      const ip = async (host: LabHost, args: string[]): Promise<void> => {
        const r = await host.exec('ip', args);
        t.equal(r.code, 0, `ip ${args.join(' ')} ${r.stderr}`);
      };
      const uplink = `lh${lab.id}up`;
      for (const args of [['link', 'add', uplink, 'type', 'veth', 'peer', 'name', `lh${lab.id}uq`], ['addr', 'add', '192.168.78.2/24', 'dev', uplink],
        ['link', 'set', `lh${lab.id}uq`, 'up'], ['link', 'set', uplink, 'up'], ['route', 'add', 'default', 'via', '192.168.78.1', 'dev', uplink]]) await ip(srv, args);
      let n = 0;
      const discover = async (): Promise<Heard[]> => {
        const mac = `52:54:00:88:00:${(++n).toString(16).padStart(2, '0')}`;
        const r = await cli.exec('python3', [PROBE, cli.ifname, mac, '2'], { timeoutMs: 10_000 });
        t.equal(r.code, 0, `probe ran ${r.stderr}`);
        return JSON.parse(r.stdout) as Heard[];
      };
      const status = async (): Promise<Status['services']['dhcp']> => {
        const r = await runLanctl(['status', '--json', '--socket', server!.socket]);
        return (JSON.parse(r.stdout) as Status).services.dhcp;
      };
      /** The first reply heard once `want` holds, polled through the 5 s check interval and then some. */
      const until = (want: (h: Heard[]) => boolean): Promise<Heard[] | null> => waitFor(async () => { const h = await discover(); return want(h) ? h : null; }, 20_000);

      // 1. Started without its address on the DHCP link: nothing reaches the client.
      server = await startLanhaDhcp(srv, '10.88.0.2', DHCP);
      t.same(await discover(), [], 'no address on the DHCP link: no reply reaches the client');
      t.match(await status(), { broadcastTo: '10.88.0.255', broadcastFrom: null });

      // 2. The address comes after the start (a link configured late): taken up without a restart.
      await ip(srv, ['addr', 'add', '10.88.0.2/24', 'dev', srv.ifname]);
      const added = await until((h) => h.some((r) => r.dst === '255.255.255.255'));
      t.ok(added, 'the address added after start: OFFERs to 255.255.255.255 reach the client (the old code bound only at start)');
      t.match(added?.[0], { dst: '255.255.255.255', src: '10.88.0.2' });
      t.match(await status(), { broadcastTo: '255.255.255.255', broadcastFrom: '10.88.0.2' });

      // 3. Removed: let go, replies to the subnet broadcast, counted; doctor says so.
      await ip(srv, ['addr', 'del', '10.88.0.2/24', 'dev', srv.ifname]);
      const lost = await waitFor(async () => { const s = await status(); return s.broadcastFrom === null ? s : null; }, 20_000);
      t.ok(lost, 'the removed address is let go');
      t.equal(lost?.broadcastTo, '10.88.0.255');
      t.ok((lost?.counters['broadcast.source_lost'] ?? 0) >= 1, 'counted as broadcast.source_lost');
      const doctor = await runLanctl(['doctor', '--json', '--socket', server.socket]);
      t.match(doctor.stdout, /dhcp\.broadcast/, 'lanctl doctor names it');

      // 4. Another address of the subnet (the server's own link renumbered): bound to that one.
      await ip(srv, ['addr', 'add', '10.88.0.3/24', 'dev', srv.ifname]);
      const changed = await until((h) => h.some((r) => r.dst === '255.255.255.255' && r.src === '10.88.0.3'));
      t.ok(changed, 'the new address is taken up: OFFERs to 255.255.255.255 from 10.88.0.3');
      t.match(await status(), { broadcastFrom: '10.88.0.3' });

      // 5. Its link down and up: served as before once it is up.
      await ip(srv, ['link', 'set', srv.ifname, 'down']);
      await new Promise((resolve) => setTimeout(resolve, 6000));
      await ip(srv, ['link', 'set', srv.ifname, 'up']);
      const again = await until((h) => h.some((r) => r.dst === '255.255.255.255'));
      t.ok(again, 'after the link came back up, OFFERs to 255.255.255.255 again');
      t.match(await status(), { broadcastFrom: '10.88.0.3' });

      const lines = logRecords<{ event: string; to?: string; from?: string; lost?: string }>(server.daemon.logs()).filter((l) => l.event === 'dhcp.broadcast_to');
      t.ok(lines.length <= 12, `one line per change (${lines.length})`);
      t.ok(lines.some((l) => l.lost === '10.88.0.2'), 'the loss is logged with the address lost');
    });
  } finally {
    await server?.stop();
  }
});
