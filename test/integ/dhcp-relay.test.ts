// A client behind a relay: ISC dhcrelay in a middle namespace (its own link to the client, option 82
// added) forwards to `lanctl serve`; the client gets an address of the relay's subnet, not the
// server's own, with that subnet's router, and the lease is listed under that subnet.
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { requireLab, withLab, stopChild } from '../support/netns.js';
import { startLanhaDhcp, recordingScript, lastEnv, waitFor, type LanhaDhcp } from './dhcp-lab.js';

const run = promisify(execFile);

const DHCP = `  subnets:
    - subnet: 10.78.0.0/24
      pools: [10.78.0.100-10.78.0.120]
      router: [10.78.0.1]
    - subnet: 10.79.0.0/24
      pools: [10.79.0.50-10.79.0.60]
      router: [10.79.0.1]
      leaseTime: 2m
`;

t.test('a relayed client gets a lease from the relay\'s subnet', async (t) => {
  if (!requireLab(t, ['dhcrelay', 'udhcpc'])) return;
  const work = mkdtempSync(join(tmpdir(), 'lanha-dhcp-relay-'));
  let server: LanhaDhcp | undefined;
  try {
    await withLab(async (lab) => {
      const srv = await lab.addHost('srv', '10.78.0.1/24');
      const relay = await lab.addHost('relay', '10.78.0.2/24');
      const client = await lab.addHost('cli', null);
      // The client's only link goes to the relay: drop its bridge port, add a direct veth pair.
      await run('ip', ['-n', client.ns, 'link', 'del', client.ifname]);
      const down = `lh${lab.id}rd`, up = `lh${lab.id}rc`;
      await run('ip', ['link', 'add', down, 'netns', relay.ns, 'type', 'veth', 'peer', 'name', up, 'netns', client.ns]);
      await run('ip', ['-n', relay.ns, 'addr', 'add', '10.79.0.1/24', 'dev', down]);
      await run('ip', ['-n', relay.ns, 'link', 'set', down, 'up']);
      await run('ip', ['-n', client.ns, 'link', 'set', up, 'up']);
      await run('ip', ['-n', srv.ns, 'route', 'add', '10.79.0.0/24', 'via', '10.78.0.2']);

      server = await startLanhaDhcp(srv, '10.78.0.1', DHCP);
      const relayProc = relay.spawn('dhcrelay', ['-4', '-d', '-a', '-pf', join(work, 'dhcrelay.pid'), '-id', down, '-iu', relay.ifname, '10.78.0.1']);
      let relayLog = '';
      relayProc.stderr?.on('data', (d: Buffer) => { relayLog += d.toString(); });
      relayProc.stdout?.on('data', (d: Buffer) => { relayLog += d.toString(); });
      try {
        // dhcrelay prints its "Sending on" lines once its sockets are up.
        await waitFor(() => (/Sending on\s+Socket/.test(relayLog) ? true : null), 10_000);
        const script = recordingScript(work, 'udhcpc');
        const udhcpc = client.spawn('udhcpc', ['-i', up, '-f', '-t', '10', '-T', '2', '-s', script]);
        try {
          const envText = (): string => (existsSync(join(work, 'udhcpc.env')) ? readFileSync(join(work, 'udhcpc.env'), 'utf8') : '');
          const env = await waitFor(() => lastEnv(envText(), /^bound/), 30_000);
          t.ok(env, `udhcpc got a lease through the relay (relay log: ${relayLog.slice(-300)})`);
          t.match(env?.get('ip') ?? '', /^10\.79\.0\.(5\d|60)$/, `address ${env?.get('ip')} from the relay's subnet`);
          t.equal(env?.get('router'), '10.79.0.1');
          t.equal(env?.get('subnet'), '255.255.255.0');
          t.equal(env?.get('lease'), '120');
          const leases = await server.leases();
          t.equal(leases.length, 1);
          t.equal(leases[0]?.subnet, '10.79.0.0/24');
        } finally {
          await stopChild(udhcpc);
        }
      } finally {
        await stopChild(relayProc);
      }
      t.ok(lab.resolvConfUnchanged(), 'host /etc/resolv.conf untouched');
    });
  } finally {
    await server?.stop();
    rmSync(work, { recursive: true, force: true });
  }
});
