// Inventory mode (dhcp.subnets[].clients: known) against real clients in a lab (root, network
// namespaces): a MAC with a config reservation gets its address and boot file; an unknown machine's
// firmware-like udhcpc gets nothing, is counted in `lanctl status` and shows in `lanctl nodes
// pending`; accepted with `lanctl nodes accept` while the daemon runs it gets a lease on its next
// try, and removed again it gets none. With an unknownPool, unknown udhcpc and dhclient clients get
// its addresses for 10 minutes and no next-server or boot file. Client scripts only record into files.
import t from 'tap';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { requireLab, stopChild, type LabHost } from '../support/netns.js';
import { runLanctl } from '../support/daemon.js';
import { recordingScript, lastEnv, waitFor, withDhcpLab, type LanhaDhcp } from './dhcp-lab.js';

const SRV = '10.79.0.1';
/** The MAC the reserved client's interface is given (a reservation in the config the daemon starts with). */
const RESERVED_MAC = '52:54:00:79:00:20';
const subnetYaml = (extra: string): string => `  cacheThreshold: 0
  subnets:
    - subnet: 10.79.0.0/24
      pools: [10.79.0.100-10.79.0.150]
      router: [${SRV}]
      leaseTime: 5m
      clients: known
${extra}  boot:
    - { name: uboot, match: { vendorClass: U-Boot }, nextServer: ${SRV}, bootfile: boot.scr.uimg }
`;

async function macOf(host: LabHost): Promise<string> {
  return (await host.exec('cat', [`/sys/class/net/${host.ifname}/address`])).stdout.trim();
}

/**
 * Runs busybox udhcpc once as U-Boot would ask (vendor class U-Boot.armv8): the environment its
 * script got for "bound", or null when it gave up (3 tries, 1 s apart) without a lease.
 */
async function udhcpcOnce(host: LabHost, work: string, name: string): Promise<Map<string, string> | null> {
  const script = recordingScript(work, name);
  const child = host.spawn('udhcpc', ['-i', host.ifname, '-f', '-n', '-t', '3', '-T', '1', '-V', 'U-Boot.armv8', '-s', script]);
  try {
    const file = join(work, `${name}.env`);
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const bound = waitFor(() => lastEnv(existsSync(file) ? readFileSync(file, 'utf8') : '', /^bound/), 15_000);
    await Promise.race([bound, exited.then(() => new Promise((r) => setTimeout(r, 300)))]);
    return lastEnv(existsSync(file) ? readFileSync(file, 'utf8') : '', /^bound/);
  } finally {
    await stopChild(child);
  }
}

async function statusJson(server: LanhaDhcp): Promise<{ clients: Array<{ subnet: string; clients: string; ignored: number }>; counters: Record<string, number> }> {
  const r = await runLanctl(['status', '--json', '--socket', server.socket], { timeoutMs: 30_000 });
  if (r.code !== 0) throw new Error(`lanctl status: ${r.stderr}`);
  return (JSON.parse(r.stdout) as { services: { dhcp: { clients: Array<{ subnet: string; clients: string; ignored: number }>; counters: Record<string, number> } } }).services.dhcp;
}

t.setTimeout(600_000);

t.test('clients: known: a reserved MAC is served, an unknown one gets nothing and goes pending, accepted it is served at once, removed it is not', async (t) => {
  if (!requireLab(t, ['udhcpc'])) return;
  await withDhcpLab(`${SRV}/24`, subnetYaml(`      reservations:\n        - { mac: "${RESERVED_MAC}", ip: 10.79.0.20 }\n`), async (lab, server, work) => {
    const node = await lab.addHost('node', null);
    const set = await node.exec('ip', ['link', 'set', 'dev', node.ifname, 'address', RESERVED_MAC]);
    t.equal(set.code, 0, set.stderr);
    const stray = await lab.addHost('stray', null);
    const strayMac = await macOf(stray);
    const sock = ['--socket', server.socket];

    const served = await udhcpcOnce(node, work, 'node');
    t.equal(served?.get('ip'), '10.79.0.20', 'the reserved MAC gets its address');
    t.equal(served?.get('boot_file'), 'boot.scr.uimg', 'and its boot file');

    t.equal(await udhcpcOnce(stray, work, 'stray'), null, 'an unknown MAC gets no lease');
    t.same((await server.leases(true)).filter((l) => l.mac === strayMac), [], 'nothing written for it');
    const status = await statusJson(server);
    t.equal(status.clients[0]?.clients, 'known');
    t.ok((status.clients[0]?.ignored ?? 0) >= 3, `its DISCOVERs counted as ignored (${status.clients[0]?.ignored})`);
    t.equal(status.counters['ignored.unknown-client'], status.clients[0]?.ignored);
    t.equal(status.counters['sent.offer'], 1, 'one OFFER in all: the reserved MAC\'s');
    const text = await runLanctl(['status', ...sock], { timeoutMs: 30_000 });
    t.match(text.stdout, /dhcp 10\.79\.0\.0\/24: known clients only .*unknown clients get no reply \(\d+ requests ignored\)/);
    const pending = await waitFor(async () => {
      const r = await runLanctl(['nodes', 'pending', '--json', ...sock], { timeoutMs: 30_000 });
      const list = JSON.parse(r.stdout) as Array<{ mac: string; vendorClass: string | null }>;
      return list.find((p) => p.mac === strayMac) ?? null;
    }, 10_000);
    t.equal(pending?.vendorClass, 'U-Boot.armv8', 'on the pending list, as U-Boot asked');

    const accept = await runLanctl(['nodes', 'accept', strayMac, 'stray1', ...sock], { timeoutMs: 90_000 });
    t.equal(accept.code, 0, accept.stderr);
    const accepted = await udhcpcOnce(stray, work, 'stray-accepted');
    t.match(accepted?.get('ip') ?? '', /^10\.79\.0\.1[0-4]\d$/, 'accepted while the daemon runs: a pool address on its next try');
    t.equal(accepted?.get('boot_file'), 'boot.scr.uimg');
    t.equal(accepted?.get('hostname'), 'stray1', 'under its node name');

    const remove = await runLanctl(['nodes', 'remove', 'stray1', ...sock], { timeoutMs: 90_000 });
    t.equal(remove.code, 0, remove.stderr);
    t.equal(await udhcpcOnce(stray, work, 'stray-removed'), null, 'removed: no new lease');
    t.ok(lab.resolvConfUnchanged(), 'host /etc/resolv.conf untouched');
    t.notMatch(server.daemon.logs(), /dhcp\.handler\.failed/);
  });
});

t.test('clients: known with an unknownPool: unknown udhcpc and dhclient get its addresses for 10 minutes, without next-server or boot file', async (t) => {
  if (!requireLab(t, ['udhcpc', 'dhclient'])) return;
  await withDhcpLab(`${SRV}/24`, subnetYaml('      unknownPool: 10.79.0.240-10.79.0.249\n'), async (lab, server, work) => {
    const guest = await lab.addHost('guest', null);
    const env = await udhcpcOnce(guest, work, 'guest');
    t.match(env?.get('ip') ?? '', /^10\.79\.0\.24\d$/, 'an unknownPool address');
    t.equal(env?.get('lease'), '600', 'unknownLeaseTime: 10m');
    t.equal(env?.get('router'), SRV, 'the subnet\'s options');
    t.equal(env?.get('siaddr'), undefined, 'no next-server');
    t.equal(env?.get('boot_file'), undefined, 'no boot file');
    t.equal(env?.get('bootfile'), undefined, 'no option 67');

    const laptop = await lab.addHost('laptop', null);
    const script = recordingScript(work, 'dhclient');
    const conf = join(work, 'dhclient.conf');
    writeFileSync(conf, 'request subnet-mask, routers, domain-name-servers, tftp-server-name, bootfile-name;\n');
    const r = await laptop.exec('dhclient', ['-1', '-v', '-sf', script, '-lf', join(work, 'dhclient.leases'), '-pf', join(work, 'dhclient.pid'), '-cf', conf, laptop.ifname], { timeoutMs: 30_000 });
    t.equal(r.code, 0, `dhclient -1: ${r.stderr.slice(-300)}`);
    const bound = lastEnv(readFileSync(join(work, 'dhclient.env'), 'utf8'), /BOUND/);
    t.match(bound?.get('new_ip_address') ?? '', /^10\.79\.0\.24\d$/, 'dhclient: an unknownPool address');
    t.equal(bound?.get('new_dhcp_lease_time'), '600');
    t.equal(bound?.get('new_filename'), undefined, 'no file');
    t.equal(bound?.get('new_bootfile_name'), undefined, 'no option 67');
    await laptop.exec('dhclient', ['-x', '-pf', join(work, 'dhclient.pid'), laptop.ifname], { timeoutMs: 10_000 });

    const leases = await server.leases();
    t.equal(leases.filter((l) => /^10\.79\.0\.24\d$/.test(l.ip)).length, 2, 'both leases in the unknownPool');
    const status = await statusJson(server);
    t.equal(status.counters['ignored.unknown-client'] ?? 0, 0, 'nobody ignored: the unknownPool answered');
    const text = await runLanctl(['status', '--socket', server.socket], { timeoutMs: 30_000 });
    t.match(text.stdout, /10\.79\.0\.240-10\.79\.0\.249 \(unknownPool\)\s+2\/10\s+20%/, 'its use in the pool table');
    t.match(text.stdout, /unknown clients get 10\.79\.0\.240-10\.79\.0\.249 without boot options/);
    t.ok(lab.resolvConfUnchanged(), 'host /etc/resolv.conf untouched');
  });
});
