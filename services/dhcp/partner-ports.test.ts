// The partner's ports (partner-ports.ts) on loopback: a port something listens on accepts, a port
// nothing listens on resets at once; every port must reset for `refused`.
import t from 'tap';
import { createServer, type Server } from 'node:net';
import { readFileSync } from 'node:fs';
import { DNS_STATUS_QUERY, NTP_CLIENT_REQUEST, knock, knockUdp, partnerPorts } from './partner-ports.js';
import { partnerServicePorts } from './server.js';
import { parseConfig } from '../../config/index.js';
import { ownershipOf } from './degraded-config.js';

const listening = (): Promise<{ server: Server; port: number }> => new Promise((resolve) => {
  const server = createServer((s) => s.destroy());
  server.listen(0, '127.0.0.1', () => resolve({ server, port: (server.address() as { port: number }).port }));
});

t.test('open, refused, and both together', async (t) => {
  const open = await listening();
  const closed = await listening();
  const closedPort = closed.port;
  await new Promise<void>((r) => closed.server.close(() => r()));
  const closed2 = await listening();
  const closedPort2 = closed2.port;
  await new Promise<void>((r) => closed2.server.close(() => r()));
  try {
    t.equal(await knock('127.0.0.1', open.port, 2000), 'open', 'a listening port accepts');
    t.equal(await knock('127.0.0.1', closedPort, 2000), 'refused', 'nothing listening: a reset');
    t.equal(await partnerPorts('127.0.0.1', [closedPort, closedPort2], 2000), 'refused', 'both reset: its lanha is down');
    t.equal(await partnerPorts('127.0.0.1', [closedPort, open.port], 2000), 'open', 'one accepts: it runs (a firewall resets the other)');
    t.equal(await partnerPorts('127.0.0.1', [closedPort], 2000), 'silent', 'one port alone is not enough to say it is down');
  } finally {
    open.server.close();
  }
});

t.test('UDP: a port nothing is bound to is refused (ICMP port unreachable), one that answers is open, one that keeps quiet is silent', async (t) => {
  const { createSocket } = await import('node:dgram');
  const bound = (answer: boolean): Promise<{ close: () => void; port: number }> => new Promise((resolve) => {
    const s = createSocket('udp4');
    if (answer) s.on('message', (m, r) => s.send(m, r.port, r.address));
    s.bind(0, '127.0.0.1', () => resolve({ close: () => s.close(), port: s.address().port }));
  });
  const answering = await bound(true);
  const quiet = await bound(false);
  const gone = await bound(false);
  gone.close();
  const open = await listening();
  const closed = await listening();
  await new Promise<void>((r) => closed.server.close(() => r()));
  try {
    t.equal(await knockUdp('127.0.0.1', answering.port, DNS_STATUS_QUERY, 2000), 'open', 'a request answered');
    t.equal(await knockUdp('127.0.0.1', quiet.port, NTP_CLIENT_REQUEST, 500), 'silent', 'a socket that does not answer (a paused lanha): not a reset');
    t.equal(await knockUdp('127.0.0.1', gone.port, NTP_CLIENT_REQUEST, 2000), 'refused', 'nothing bound: the kernel says so');
    t.equal(await partnerPorts('127.0.0.1', [{ proto: 'tcp', port: closed.port }, { proto: 'udp', port: gone.port, payload: DNS_STATUS_QUERY }], 2000), 'refused', 'the cluster port resets and nothing is bound on the DNS port: its lanha is down');
    t.equal(await partnerPorts('127.0.0.1', [{ proto: 'tcp', port: closed.port }, { proto: 'udp', port: answering.port, payload: DNS_STATUS_QUERY }], 2000), 'open', 'its DNS answers over UDP: it runs');
    t.equal(await partnerPorts('127.0.0.1', [{ proto: 'tcp', port: open.port }, { proto: 'udp', port: gone.port, payload: DNS_STATUS_QUERY }], 2000), 'open', 'its cluster port accepts: it runs');
  } finally {
    answering.close();
    quiet.close();
    open.server.close();
  }
});

t.test('the ports knocked: the cluster port and DNS over TCP; with dns.tcp off DNS over UDP, without DNS the NTP port; no second port, no knock', (t) => {
  const site = readFileSync(new URL('../../../examples/site.yaml', import.meta.url), 'utf8').replace(/^dhcp:\n/m, 'dhcp:\n  degraded: { enabled: true }\n');
  const knocks = (yaml: string): unknown => {
    const c = parseConfig(yaml);
    return partnerServicePorts(c, ownershipOf(c))?.map((k) => `${k.proto}/${k.port}`) ?? null;
  };
  const cluster = parseConfig(site).cluster!.members.find((m) => m.name === 'lan-b')!.port;
  t.same(knocks(site), [`tcp/${cluster}`, 'tcp/53'], 'DNS over TCP (the default): the cluster port and the DNS port, both TCP');
  t.same(knocks(site.replace(/^dns:\n/m, 'dns:\n  tcp: false\n')), [`tcp/${cluster}`, 'udp/53'], 'dns.tcp: false: the DNS port over UDP (before: no knock at all)');
  const noDns = site.replace(/^dns:\n(?: .*\n|\n)*/m, '');
  t.same(knocks(noDns), [`tcp/${cluster}`, 'udp/123'], 'no DNS: the NTP port');
  t.same(knocks(noDns.replace(/^ntp:\n(?: .*\n|\n)*/m, '')), null, 'no DNS, no NTP: the cluster port alone could be a firewall\'s reset, so no knock');
  t.end();
});
