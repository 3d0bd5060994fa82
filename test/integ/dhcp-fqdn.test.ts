// Real clients that name themselves with option 81 (Client FQDN, RFC 4702) instead of option 12, as
// systemd-networkd and NetworkManager do for a host whose name is a FQDN: busybox udhcpc -F (wire
// form, E flag clear), ISC dhclient with fqdn.encoded (wire form, E set) and dhcpcd --fqdn both
// (its -h name). Each lease must carry the name's first label, DNS must answer it, and the reply
// must say the server updates DNS (option 81 back with S set).
import t from 'tap';
import { readFileSync, existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { requireLab, stopChild } from '../support/netns.js';
import { recordingScript, lastEnv, waitFor, withDhcpLab, type LeaseJson } from './dhcp-lab.js';

const DHCP = `  subnets:
    - subnet: 10.78.0.0/24
      pools: [10.78.0.100-10.78.0.120]
      domain: fq.lan
      leaseTime: 1h
`;
const DNS = `dns:
  listen: [10.78.0.1]
  zones:
    - { name: fq.lan, leases: true }
`;

t.test('udhcpc -F, dhclient fqdn.fqdn and dhcpcd --fqdn get their host name published from option 81', async (t) => {
  if (!requireLab(t, ['udhcpc', 'dhclient', 'dhcpcd', 'dig'])) return;
  await withDhcpLab('10.78.0.1/24', DHCP, async (lab, server, work) => {
    const named = async (name: string): Promise<LeaseJson | null> => waitFor(async () => (await server.leases()).find((l) => l.hostname === name) ?? null, 15_000);

    const u = await lab.addHost('udhcpc', null);
    const script = recordingScript(work, 'udhcpc');
    const child = u.spawn('udhcpc', ['-i', u.ifname, '-f', '-t', '5', '-T', '1', '-s', script, '-F', 'Fq-Busy.example.org']);
    try {
      const envText = (): string => (existsSync(join(work, 'udhcpc.env')) ? readFileSync(join(work, 'udhcpc.env'), 'utf8') : '');
      const env = await waitFor(() => lastEnv(envText(), /^bound/), 15_000);
      t.ok(env?.get('ip'), 'udhcpc bound');
      t.ok(await named('fq-busy'), 'udhcpc\'s lease carries the first label of its option 81 name, lower-cased');
    } finally {
      await stopChild(child);
    }

    const d = await lab.addHost('dhclient', null);
    const dscript = recordingScript(work, 'dhclient');
    const conf = join(work, 'dhclient.conf');
    writeFileSync(conf, 'send fqdn.fqdn "fq-isc.example.org.";\nsend fqdn.encoded on;\nsend fqdn.server-update on;\nrequest subnet-mask, routers, domain-name, fqdn.fqdn;\n');
    const files = ['-sf', dscript, '-lf', join(work, 'dhclient.leases'), '-pf', join(work, 'dhclient.pid'), '-cf', conf];
    try {
      const r = await d.exec('dhclient', ['-1', '-v', ...files, d.ifname], { timeoutMs: 20_000 });
      t.equal(r.code, 0, `dhclient -1 exit 0: ${r.stderr.slice(-300)}`);
      t.ok(await named('fq-isc'), 'dhclient\'s lease carries its FQDN\'s first label');
      const env = lastEnv(readFileSync(join(work, 'dhclient.env'), 'utf8'), /BOUND/);
      t.equal(env?.get('new_fqdn_server_update'), 'true', 'the ACK\'s option 81 says the server updates DNS (S)');
      t.equal(env?.get('new_fqdn_encoded'), 'true', 'in the encoding the client used (E)');
      t.equal(env?.get('new_fqdn_fqdn'), 'fq-isc.fq.lan', 'with the name it is published under');
    } finally {
      await d.exec('dhclient', ['-x', ...files, d.ifname], { timeoutMs: 10_000 });
    }

    const c = await lab.addHost('dhcpcd', null);
    const cscript = recordingScript(work, 'dhcpcd');
    const cconf = join(work, 'dhcpcd.conf');
    writeFileSync(cconf, 'option domain_name\n');
    const r = await c.exec('dhcpcd', ['-1', '-4', '-B', '-A', '-L', '-t', '15', '-h', 'fq-cd.example.org', '-F', 'both', '-c', cscript, '-f', cconf, c.ifname], { timeoutMs: 25_000 });
    t.equal(r.code, 0, `dhcpcd exit 0: ${(r.stdout + r.stderr).slice(-400)}`);
    const lease = await named('fq-cd');
    t.ok(lease, 'dhcpcd\'s lease carries its FQDN\'s first label');
    await c.exec('dhcpcd', ['-x', c.ifname], { timeoutMs: 5000 });

    const dig = await c.exec('dig', ['+short', '+time=2', '+tries=2', '@10.78.0.1', 'fq-cd.fq.lan', 'A'], { timeoutMs: 10_000 });
    t.equal(dig.stdout.trim(), lease?.ip, 'and DNS answers the name in the subnet\'s domain');
    t.ok(lab.resolvConfUnchanged(), 'host /etc/resolv.conf untouched');
  }, DNS);
});
