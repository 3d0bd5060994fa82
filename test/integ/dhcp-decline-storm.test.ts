// A real client (busybox udhcpc -a, which ARP-probes each address before using it) on a LAN where
// another host answers for every pool address (a squatter on all of them, as a proxy-ARP router
// would be): udhcpc DECLINEs address after address. The server quarantines at most 4 for that MAC,
// so the pool is not drained for everyone: a second client still gets an address.
import t from 'tap';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { requireLab } from '../support/netns.js';
import { recordingScript, lastEnv, withDhcpLab } from './dhcp-lab.js';

const DHCP = `  subnets:
    - subnet: 10.81.0.0/24
      pools: [10.81.0.10-10.81.0.19]
      leaseTime: 1h
`;

t.test('udhcpc -a declining every address it probes quarantines at most 4; the pool still serves another client', async (t) => {
  if (!requireLab(t, ['udhcpc'])) return;
  await withDhcpLab('10.81.0.1/24', DHCP, async (lab, server, work) => {
    const squat = await lab.addHost('squat', '10.81.0.250/24');
    for (let i = 10; i <= 17; i++) await squat.exec('ip', ['addr', 'add', `10.81.0.${i}/24`, 'dev', squat.ifname]);
    const prober = await lab.addHost('probe', null);
    const script = recordingScript(work, 'probe');
    // Bounded: -n gives up after -t tries; every address it is offered in 10.81.0.10-17 answers ARP.
    await prober.exec('udhcpc', ['-i', prober.ifname, '-f', '-n', '-q', '-a', '-t', '12', '-T', '1', '-A', '1', '-s', script], { timeoutMs: 60_000 });
    const declined = (await server.leases(true)).filter((l) => l.state === 'declined');
    t.ok(declined.length >= 1, `the prober declined (${declined.map((l) => l.ip).join(', ')})`);
    t.ok(declined.length <= 4, `at most 4 addresses quarantined for one MAC (${declined.length})`);
    const other = await lab.addHost('other', null);
    const otherScript = recordingScript(work, 'other');
    await other.exec('udhcpc', ['-i', other.ifname, '-f', '-n', '-q', '-t', '5', '-T', '1', '-s', otherScript], { timeoutMs: 30_000 });
    const envFile = join(work, 'other.env');
    const env = existsSync(envFile) ? lastEnv(readFileSync(envFile, 'utf8'), /^bound/) : null;
    t.match(env?.get('ip') ?? '', /^10\.81\.0\.1\d$/, `another client still gets a pool address (${env?.get('ip')})`);
  });
});
