// A real client (busybox udhcpc) against `lanctl serve` in a lab namespace whose pool covers the
// server's own address and the router's (a careless but valid config): udhcpc is never given either,
// not even when it asks for the server's address (option 50); it gets the one pool address left.
import t from 'tap';
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { requireLab, stopChild } from '../support/netns.js';
import { recordingScript, lastEnv, waitFor, withDhcpLab } from './dhcp-lab.js';

const DHCP = `  subnets:
    - subnet: 10.79.0.0/24
      pools: [10.79.0.1-10.79.0.3]
      router: [10.79.0.2]
      leaseTime: 1h
`;

t.test('udhcpc asking for the server\'s address gets the pool\'s one other address, never the server\'s or the router\'s', async (t) => {
  if (!requireLab(t, ['udhcpc'])) return;
  await withDhcpLab('10.79.0.1/24', DHCP, async (lab, server, work) => {
    const host = await lab.addHost('udhcpc', null);
    const script = recordingScript(work, 'udhcpc');
    const child = host.spawn('udhcpc', ['-i', host.ifname, '-f', '-t', '5', '-T', '1', '-r', '10.79.0.1', '-s', script]);
    try {
      const envText = (): string => (existsSync(join(work, 'udhcpc.env')) ? readFileSync(join(work, 'udhcpc.env'), 'utf8') : '');
      const env = await waitFor(() => lastEnv(envText(), /^bound/), 15_000);
      t.equal(env?.get('ip'), '10.79.0.3', 'bound to the pool address no one else uses');
      t.equal(env?.get('serverid'), '10.79.0.1');
      t.equal(env?.get('router'), '10.79.0.2');
      const leases = await server.leases();
      t.same(leases.map((l) => l.ip), ['10.79.0.3'], 'the only lease');
    } finally {
      await stopChild(child);
    }
    t.match(server.daemon.logs(), /dhcp\.pool\.site_addresses.*10\.79\.0\.1.*10\.79\.0\.2/, 'the start-up warning names both addresses');
  });
});
