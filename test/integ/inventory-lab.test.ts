// The inventory end to end in a lab (root, network namespaces): `lanctl nodes add` on a running
// daemon, then real busybox udhcpc clients. A node with an IP gets that IP and its name (option 12)
// whatever host name it claims; a node without one gets a pool address and still its name; dig
// resolves both names and the PTR from lanha; the boot timeline shows the OS DHCP step.
import t from 'tap';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireLab, withLab, stopChild, type LabHost } from '../support/netns.js';
import { runLanctl } from '../support/daemon.js';
import { startLanhaDhcp, recordingScript, lastEnv, waitFor, type LanhaDhcp } from './dhcp-lab.js';

const SRV = '10.78.0.1';
const DHCP = `  subnets:
    - subnet: 10.78.0.0/24
      pools: [10.78.0.100-10.78.0.150]
      router: [${SRV}]
      dns: [${SRV}]
      domain: lab.lan
      leaseTime: 5m
`;
const DNS = `dns:
  listen: [${SRV}]
  workers: 0
  zones: [{ name: lab.lan, leases: true }]
`;

async function macOf(host: LabHost): Promise<string> {
  return (await host.exec('cat', [`/sys/class/net/${host.ifname}/address`])).stdout.trim();
}

t.setTimeout(600_000);

t.test('inventory nodes get their address and name from a real DHCP client, and resolve by name and PTR', async (t) => {
  if (!requireLab(t, ['udhcpc', 'dig'])) return;
  const work = mkdtempSync(join(tmpdir(), 'lanha-inventory-lab-'));
  let server: LanhaDhcp | undefined;
  try {
    await withLab(async (lab) => {
      const srv = await lab.addHost('srv', `${SRV}/24`);
      const fixed = await lab.addHost('fixed', null);
      const pooled = await lab.addHost('pooled', null);
      const fixedMac = await macOf(fixed);
      const pooledMac = await macOf(pooled);
      server = await startLanhaDhcp(srv, SRV, DHCP, undefined, DNS);
      const sock = ['--socket', server.socket];
      const add = await runLanctl(['nodes', 'add', 'rack7', '--mac', fixedMac, '--ip', '10.78.0.7', '--profile', 'pi4', ...sock], { timeoutMs: 90_000 });
      t.equal(add.code, 0, add.stderr);
      const addPool = await runLanctl(['nodes', 'add', 'pool1', '--mac', pooledMac, ...sock], { timeoutMs: 90_000 });
      t.equal(addPool.code, 0, addPool.stderr);
      const clash = await runLanctl(['nodes', 'add', 'rack8', '--mac', '52:54:00:99:99:99', '--ip', '10.78.0.7', ...sock], { timeoutMs: 90_000 });
      t.equal(clash.code, 1);
      t.match(clash.stderr, /IP 10\.78\.0\.7 already belongs to node rack7/);

      const lease = async (host: LabHost, name: string, claim: string): Promise<Map<string, string> | null> => {
        // The address is configured in the client's namespace, so dig can ask lanha from there.
        const script = recordingScript(work, name, 'case "$1" in bound|renew) ip addr replace "$ip/$subnet" dev "$interface";; esac');
        const child = host.spawn('udhcpc', ['-i', host.ifname, '-f', '-t', '10', '-T', '2', '-s', script, '-x', `hostname:${claim}`, '-O', 'hostname']);
        try {
          const file = join(work, `${name}.env`);
          return await waitFor(() => lastEnv(existsSync(file) ? readFileSync(file, 'utf8') : '', /^bound/), 40_000);
        } finally {
          await stopChild(child);
        }
      };
      const one = await lease(fixed, 'fixed', 'pool1'); // claims the other node's name
      t.equal(one?.get('ip'), '10.78.0.7', 'the inventory address');
      t.equal(one?.get('hostname'), 'rack7', 'its name as option 12');
      const two = await lease(pooled, 'pooled', 'whatever');
      if (two === null) t.comment(server.daemon.logs().split('\n').filter((l) => l.includes('dhcp')).slice(-20).join('\n'));
      t.match(two?.get('ip') ?? '', /^10\.78\.0\.1[0-4]\d$/, 'a node without IP: a pool address');
      t.equal(two?.get('hostname'), 'pool1', 'and its name');

      const dig = async (args: string[]): Promise<string> => (await fixed.exec('dig', ['+time=2', '+tries=2', '+short', `@${SRV}`, ...args], { timeoutMs: 15_000 })).stdout.trim();
      t.equal(await waitFor(async () => ((await dig(['rack7.lab.lan', 'A'])) === '10.78.0.7' ? true : null), 5000), true, 'dig rack7.lab.lan A');
      t.equal(await dig(['-x', '10.78.0.7']), 'rack7.lab.lan.', 'dig -x: the PTR');
      t.equal(await waitFor(async () => ((await dig(['pool1.lab.lan', 'A'])) === two?.get('ip') ? true : null), 5000), true, 'the pool node resolves to its lease');
      t.equal(await dig(['-x', two?.get('ip') ?? '']), 'pool1.lab.lan.', 'and its PTR');

      const show = await runLanctl(['nodes', 'show', 'rack7', '--timeline', ...sock], { timeoutMs: 90_000 });
      t.equal(show.code, 0, show.stderr);
      t.match(show.stdout, /OS DHCP\s+ip 10\.78\.0\.7/, 'the timeline has the OS DHCP step');
      const list = await runLanctl(['nodes', ...sock], { timeoutMs: 90_000 });
      t.match(list.stdout, /rack7\s+\S+\s+10\.78\.0\.7 \(r\)\s+pi4 \(unknown!\)/, 'listed with its profile flagged (no profiles: block)');
    });
  } finally {
    await server?.stop();
    rmSync(work, { recursive: true, force: true });
  }
});
