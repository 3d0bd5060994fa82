import t from 'tap';
import { readFileSync } from 'node:fs';
import { ConfigError, parseConfig } from './index.js';
import { repoPath } from '../test/support/paths.js';
import { parseIpv4 } from '../lib/ipv4.js';

const base = `
node:
  name: solo
  stateDir: /tmp/x
  controlSocket: /tmp/x.sock
`;

function problems(yaml: string): string[] {
  try {
    parseConfig(yaml, 'test.yaml');
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  return [];
}

t.test('the examples validate', async (t) => {
  for (const file of ['examples/single-node.yaml', 'examples/site.yaml', 'examples/site-etcd.yaml']) {
    const config = parseConfig(readFileSync(repoPath(file), 'utf8'), file);
    t.ok(config.node.name.length > 0, `${file} has a node name`);
  }
  const site = parseConfig(readFileSync(repoPath('examples/site.yaml'), 'utf8'));
  t.equal(site.cluster?.members.length, 3, 'site has three members');
  t.equal(site.cluster?.members.filter((m) => m.role === 'witness').length, 1, 'one of them a witness');
  t.equal(site.dhcp?.subnets[0]?.leaseTime, 12 * 3600_000, 'lease time parsed to ms');
  t.equal(site.cluster?.failoverBudget, 480, '"480ms" parsed');
});

t.test('dns.forward.cacheSize: entries alone, or entries and bytes', async (t) => {
  const fwd = (extra: string) => parseConfig(base + `dns:\n  forward: { upstreams: [127.0.0.1], allow: [10.0.0.0/8]${extra} }\n`).dns!.forward!;
  t.same(fwd('').cacheSize, { entries: 10_000, bytes: 4 * 1024 * 1024 }, 'default');
  t.equal(fwd('').maxInFlight, 1024, 'default cap as unbound\'s num-queries-per-thread (the whole daemon)');
  t.same(fwd(', cacheSize: 500').cacheSize, { entries: 500, bytes: 4 * 1024 * 1024 });
  t.same(fwd(', cacheSize: { entries: 2000, bytes: 512KiB }').cacheSize, { entries: 2000, bytes: 512 * 1024 });
  t.same(fwd(', cacheSize: { bytes: 1000000 }').cacheSize, { entries: 10_000, bytes: 1_000_000 });
});

t.test('defaults fill in and the result is frozen', async (t) => {
  const config = parseConfig(base + 'dns: {}\n');
  t.equal(config.dns?.port, 53);
  t.equal(config.node.role, 'server');
  t.ok(Object.isFrozen(config.node), 'frozen');
});

t.test('tftp.busyPollUs: 200 us by default, 0 turns polling off', async (t) => {
  const tftp = (extra: string) => parseConfig(base + `tftp:\n  root: /srv\n${extra}`).tftp!;
  t.equal(tftp('').busyPollUs, 200);
  t.equal(tftp('  busyPollUs: 0\n').busyPollUs, 0);
  t.equal(tftp('  busyPollUs: 2000\n').busyPollUs, 2000, 'the widest window allowed');
});

// Each bad config: the YAML, the key path the message must name, and a fragment of the message.
const bad: Array<[string, string, string, string]> = [
  ['bad pool range', base + 'dhcp:\n  subnets:\n    - subnet: 10.0.0.0/24\n      pools: ["10.0.0.300-10.0.0.9"]\n', 'dhcp.subnets[0].pools[0]: "10.0.0.300-10.0.0.9"', 'is not an IPv4 range'],
  ['unknown top-level key', base + 'dchp: {}\n', 'dchp', 'unknown key'],
  ['unknown nested key', base + 'tftp:\n  root: /srv\n  blocksize: 512\n', 'tftp.blocksize', 'unknown key'],
  ['port out of range', base + 'dns:\n  port: 70000\n', 'dns.port: 70000', 'is not a port'],
  ['port not a number', base + 'ntp:\n  port: "123x"\n', 'ntp.port: "123x"', 'port'],
  ['bad duration', base + 'dhcp:\n  subnets:\n    - subnet: 10.0.0.0/24\n      pools: [10.0.0.10-10.0.0.20]\n      leaseTime: 12 hours\n', 'dhcp.subnets[0].leaseTime: "12 hours"', 'is not a duration'],
  ['bad CIDR', base + 'dhcp:\n  subnets:\n    - subnet: 10.0.0.0/33\n      pools: [10.0.0.10-10.0.0.20]\n', 'dhcp.subnets[0].subnet: "10.0.0.0/33"', 'is not a CIDR'],
  ['pool outside subnet', base + 'dhcp:\n  subnets:\n    - subnet: 10.0.0.0/24\n      pools: [10.0.1.10-10.0.1.20]\n', 'dhcp.subnets[0].pools[0]', 'is outside its subnet'],
  ['bad MAC in a reservation', base + 'dhcp:\n  subnets:\n    - subnet: 10.0.0.0/24\n      pools: [10.0.0.10-10.0.0.20]\n      reservations: [{ mac: "zz:00:00:00:00:01", ip: 10.0.0.5 }]\n', 'dhcp.subnets[0].reservations[0].mac: "zz:00:00:00:00:01"', 'is not a MAC'],
  ['bad IPv4 address', base + 'dhcp:\n  serverId: 10.0.0.256\n  subnets:\n    - subnet: 10.0.0.0/24\n      pools: [10.0.0.10-10.0.0.20]\n', 'dhcp.serverId: "10.0.0.256"', 'is not an IPv4 address'],
  ['missing node block', 'dns: {}\n', 'node', 'is required but missing'],
  ['bad role', base.replace('name: solo', 'name: solo\n  role: boss'), 'node.role: "boss"', 'is not one of'],
  ['node not among members', base + 'cluster:\n  id: r1\n  members: [{ name: other, address: 127.0.0.1 }]\n', 'node.name', 'is not among cluster.members'],
  ['duplicate member', base + 'cluster:\n  id: r1\n  members: [{ name: solo, address: a }, { name: solo, address: b }]\n', 'cluster.members[1].name', 'duplicate'],
  ['witness with services', base.replace('name: solo', 'name: solo\n  role: witness') + 'dns: {}\n', 'dns', 'witness'],
  ['empty subnets', base + 'dhcp:\n  subnets: []\n', 'dhcp.subnets', 'empty list'],
  ['negative tftp busy-poll window', base + 'tftp:\n  root: /srv\n  busyPollUs: -1\n', 'tftp.busyPollUs: -1', 'is below the minimum 0'],
  ['tftp busy-poll window over its cap', base + 'tftp:\n  root: /srv\n  busyPollUs: 2001\n', 'tftp.busyPollUs: 2001', 'is above the maximum 2000'],
  ['fractional tftp busy-poll window', base + 'tftp:\n  root: /srv\n  busyPollUs: 12.5\n', 'tftp.busyPollUs: 12.5', 'is not a whole number of microseconds'],
  ['tftp busy-poll window not a number', base + 'tftp:\n  root: /srv\n  busyPollUs: fast\n', 'tftp.busyPollUs: "fast"', 'is not a number'],
  ['bad regex in tftp remap', base + 'tftp:\n  root: /srv\n  remap: [{ match: "(", replace: x }]\n', 'tftp.remap[0].match: "("', 'regular expression'],
  ['forwarding without allow list', base + 'dns:\n  forward: { upstreams: [127.0.0.1], allow: [] }\n', 'dns.forward.allow', 'empty list'],
  ['bad forwarding cache size', base + 'dns:\n  forward: { upstreams: [127.0.0.1], allow: [10.0.0.0/8], cacheSize: { entries: 10, bytes: "4 lots" } }\n', 'dns.forward.cacheSize.bytes: "4 lots"', 'is not a size'],
  ['zero forwarding cap', base + 'dns:\n  forward: { upstreams: [127.0.0.1], allow: [10.0.0.0/8], maxInFlight: 0 }\n', 'dns.forward.maxInFlight: 0', ''],
  ['transfer without allow list', base + 'dns:\n  transfer: { allow: [] }\n', 'dns.transfer.allow', 'empty list'],
  ['bad NOTIFY target', base + 'dns:\n  transfer: { allow: [10.0.0.0/8], notify: ["ns2.lan"] }\n', 'dns.transfer.notify[0]: "ns2.lan"', 'is not a secondary like'],
  ['too many DNS workers', base + 'dns:\n  workers: 9\n', 'dns.workers: 9', ''],
  ['bad zone name', base + 'dns:\n  zones: [{ name: "bad_name!.lan" }]\n', 'dns.zones[0].name: "bad_name!.lan"', 'is not a valid DNS name'],
  ['bootfile too long', base + 'dhcp:\n  subnets:\n    - subnet: 10.0.0.0/24\n      pools: [10.0.0.10-10.0.0.20]\n  boot: [{ bootfile: "' + 'x'.repeat(200) + '" }]\n', 'dhcp.boot[0].bootfile', '127-byte'],
  ['a reservation of the VIP', base + 'vip:\n  address: 10.0.0.1/24\n  interface: eth0\ndhcp:\n  subnets:\n    - subnet: 10.0.0.0/24\n      pools: [10.0.0.10-10.0.0.20]\n      reservations: [{ mac: "02:00:00:00:00:01", ip: 10.0.0.1 }]\n', 'dhcp.subnets[0].reservations[0].ip: "10.0.0.1"', 'is the VIP (vip.address), the site\'s own address'],
  ['a reservation of this node\'s address', base.replace('name: solo', 'name: solo\n  address: 10.0.0.2') + 'dhcp:\n  subnets:\n    - subnet: 10.0.0.0/24\n      pools: [10.0.0.10-10.0.0.20]\n      reservations: [{ mac: "02:00:00:00:00:01", ip: 10.0.0.2 }]\n', 'dhcp.subnets[0].reservations[0].ip', 'node.address'],
  ['a config node on the DHCP server id', base + 'dhcp:\n  serverId: 10.0.0.3\n  subnets:\n    - subnet: 10.0.0.0/24\n      pools: [10.0.0.10-10.0.0.20]\nnodes: [{ name: n1, mac: "02:00:00:00:00:01", ip: 10.0.0.3 }]\n', 'nodes[0].ip: "10.0.0.3"', 'dhcp.serverId'],
  ['vip without prefix', base + 'vip:\n  address: 10.0.0.1\n  interface: eth0\n', 'vip.address: "10.0.0.1"', 'prefix'],
  ['YAML syntax error', base + 'dns:\n  port: [1,\n', 'YAML syntax', ''],
  ['duplicate key', base + 'dns:\n  port: 53\n  port: 54\n', 'dns.port: duplicate key', 'line 7'],
  ['not a mapping', '- a\n- b\n', '(top level)', 'mapping'],
];

// Issue 12: each of these was accepted; `lanctl config check` must refuse it naming the key path.
const sub = (extra: string, pools = '[10.0.0.10-10.0.0.20]'): string => base + `dhcp:\n  subnets:\n    - subnet: 10.0.0.0/24\n      pools: ${pools}\n${extra}`;
const refusals: Array<[string, string, string, string]> = [
  ['port 0 (dns.port)', base + 'dns:\n  port: 0\n', 'dns.port: 0', 'is not a port'],
  ['port 0 (dhcp.clientPort)', sub('').replace('dhcp:\n', 'dhcp:\n  clientPort: 0\n'), 'dhcp.clientPort: 0', 'is not a port'],
  ['port 0 (dhcp.port)', sub('').replace('dhcp:\n', 'dhcp:\n  port: 0\n'), 'dhcp.port: 0', 'is not a port'],
  ['port 0 (tftp.port)', base + 'tftp: { root: /srv, port: 0 }\n', 'tftp.port: 0', 'is not a port'],
  ['port 0 (ntp.port)', base + 'ntp: { port: 0 }\n', 'ntp.port: 0', 'is not a port'],
  ['port 0 (cluster member)', base + 'cluster: { id: r, members: [{ name: solo, address: 127.0.0.1, port: 0 }] }\n', 'cluster.members[0].port: 0', 'is not a port'],
  ['port 0 (deploy target)', base + 'deploy: { targets: [{ name: n1, host: n1, port: 0 }] }\n', 'deploy.targets[0].port: 0', 'is not a port'],
  // ssh and rsync take these as arguments, and a target's name is a file name on the LAN node.
  ['a deploy host that is an ssh option', base + 'deploy: { targets: [{ name: n1, host: "-oProxyCommand=sh" }] }\n', 'deploy.targets[0].host: "-oProxyCommand=sh"', 'not starting with "-"'],
  ['a deploy target name that is a path', base + 'deploy: { targets: [{ name: "../../x", host: n1 }] }\n', 'deploy.targets[0].name: "../../x"', 'no "/"'],
  ['a deploy user that is an ssh option', base + 'deploy: { user: "-oProxyCommand=sh" }\n', 'deploy.user: "-oProxyCommand=sh"', 'not a login name'],
  ['port 0 (an upstream resolver)', base + 'dns: { forward: { upstreams: ["192.0.2.53:0"], allow: [10.0.0.0/8] } }\n', 'dns.forward.upstreams[0]: "192.0.2.53:0"', 'upstream'],
  ['dhcp.clientPort the same as dhcp.port', sub('').replace('dhcp:\n', 'dhcp:\n  port: 6767\n  clientPort: 6767\n'), 'dhcp.clientPort: 6767', 'dhcp.port'],
  ['overlapping pools in one subnet', sub('', '[10.0.0.10-10.0.0.20, 10.0.0.20-10.0.0.30]'), 'dhcp.subnets[0].pools[1]: "10.0.0.20-10.0.0.30"', 'overlaps pools[0]'],
  ['overlapping subnets', sub('    - subnet: 10.0.0.128/25\n      pools: [10.0.0.130-10.0.0.140]\n'), 'dhcp.subnets[1].subnet: "10.0.0.128/25"', 'overlaps dhcp.subnets[0].subnet'],
  ['the same IP in two reservations', sub('      reservations: [{ mac: "02:00:00:00:00:01", ip: 10.0.0.5 }, { mac: "02:00:00:00:00:02", ip: 10.0.0.5 }]\n'),
    'dhcp.subnets[0].reservations[1].ip: "10.0.0.5"', 'reserved twice: also at dhcp.subnets[0].reservations[0].ip'],
  ['the same MAC in two reservations across subnets', sub('      reservations: [{ mac: "02:00:00:00:00:01", ip: 10.0.0.5 }]\n    - subnet: 10.1.0.0/24\n      pools: [10.1.0.10-10.1.0.20]\n      reservations: [{ mac: "02:00:00:00:00:01", ip: 10.1.0.5 }]\n'),
    'dhcp.subnets[1].reservations[0].mac: "02:00:00:00:00:01"', 'also at dhcp.subnets[0].reservations[0].mac'],
  ['the same client id in two reservations', sub('      reservations: [{ clientId: "01:02:00:00:00:00:00:01", ip: 10.0.0.5 }, { clientId: "0102000000000001", ip: 10.0.0.6 }]\n'),
    'dhcp.subnets[0].reservations[1].clientId', 'reserved twice'],
  ['the same host name in two reservations', sub('      reservations: [{ mac: "02:00:00:00:00:01", ip: 10.0.0.5, hostname: node01 }, { mac: "02:00:00:00:00:02", ip: 10.0.0.6, hostname: node01 }]\n'),
    'dhcp.subnets[0].reservations[1].hostname: "node01"', 'another reservation'],
  ['a reservation outside its subnet', sub('      reservations: [{ mac: "02:00:00:00:00:01", ip: 10.9.0.5 }]\n'), 'dhcp.subnets[0].reservations[0].ip: "10.9.0.5"', 'is outside its subnet 10.0.0.0/24'],
  ['a reservation on the network address', sub('      reservations: [{ mac: "02:00:00:00:00:01", ip: 10.0.0.0 }]\n'), 'dhcp.subnets[0].reservations[0].ip: "10.0.0.0"', 'network address'],
  ['a reservation on the broadcast address', sub('      reservations: [{ mac: "02:00:00:00:00:01", ip: 10.0.0.255 }]\n'), 'dhcp.subnets[0].reservations[0].ip: "10.0.0.255"', 'broadcast address'],
  ['leaseTime: 0', sub('      leaseTime: 0\n'), 'dhcp.subnets[0].leaseTime: 0', 'is not a lease time'],
  ['leaseTime: 1s (T1 would be 0 s)', sub('      leaseTime: 1s\n'), 'dhcp.subnets[0].leaseTime: "1s"', 'renewal time (T1) would go out as 0 s'],
  ['leaseTime: 2s (T1 and T2 both 1 s)', sub('      leaseTime: 2s\n'), 'dhcp.subnets[0].leaseTime: "2s"', 'at least 3s'],
  ['renewTime >= rebindTime', sub('      leaseTime: 1h\n      renewTime: 40m\n      rebindTime: 30m\n'), 'dhcp.subnets[0].renewTime: "40m"', 'is not shorter than rebindTime'],
  ['renewTime >= leaseTime', sub('      leaseTime: 1h\n      renewTime: 1h\n'), 'dhcp.subnets[0].renewTime: "1h"', 'is not shorter than leaseTime'],
  ['rebindTime >= leaseTime', sub('      leaseTime: 1h\n      rebindTime: 2h\n'), 'dhcp.subnets[0].rebindTime: "2h"', 'is not shorter than leaseTime'],
  ['rebindTime below the default renewTime', sub('      leaseTime: 1h\n      rebindTime: 10m\n'), 'dhcp.subnets[0].rebindTime: "10m"', 'default renewTime'],
  ['a relay listed for two subnets', sub('      relays: [10.5.0.1]\n    - subnet: 10.1.0.0/24\n      pools: [10.1.0.10-10.1.0.20]\n      relays: [10.5.0.1]\n'), 'dhcp.subnets[1].relays[0]: "10.5.0.1"', 'already a relay'],
  ['a listen entry that is no address', base + 'tftp: { root: /srv, listen: [lan-a] }\n', 'tftp.listen[0]: "lan-a"', 'is not an IP address'],
  ['two boot rules with one name', sub('').replace('dhcp:\n', 'dhcp:\n  boot: [{ name: pi, bootfile: a }, { name: pi, bootfile: b }]\n'), 'dhcp.boot[1].name: "pi"', 'another boot rule'],
  ['two zones with the same name', base + 'dns:\n  zones: [{ name: lan }, { name: LAN. }]\n', 'dns.zones[1].name: "LAN."', 'another zone: dns.zones[0].name'],
  ['a domain forwarded twice', base + 'dns:\n  forward: { upstreams: [192.0.2.53], allow: [10.0.0.0/8], domains: [{ name: corp, upstreams: [192.0.2.1] }, { name: corp, upstreams: [192.0.2.2] }] }\n', 'dns.forward.domains[1].name: "corp"', 'forwarded twice'],
  ['an address listed twice in dns.listen', base + 'dns: { listen: [127.0.0.1, 127.0.0.1] }\n', 'dns.listen[1]: "127.0.0.1"', 'listed twice'],
  ['an upstream listed twice in ntp.upstreams', base + 'ntp: { upstreams: ["192.0.2.1", "192.0.2.1:123"] }\n', 'ntp.upstreams[1]: "192.0.2.1:123"', 'listed twice'],
  ['two members on one address and port', base + 'cluster: { id: r, members: [{ name: solo, address: 10.0.0.2 }, { name: b, address: 10.0.0.2 }] }\n', 'cluster.members[1].address: "10.0.0.2"', 'the address of another member: cluster.members[0].address'],
  ['two deploy targets with one name', base + 'deploy: { targets: [{ name: n1, host: a }, { name: n1, host: b }] }\n', 'deploy.targets[1].name: "n1"', 'another target'],
  ['two services on one UDP address and port', base + 'dns: { port: 5353, listen: [127.0.0.1] }\nntp: { port: 5353, listen: [127.0.0.1] }\n', 'ntp.port: 5353', 'is also dns.port: both would bind udp 127.0.0.1:5353'],
  ['a service on the address and port DHCP binds as a wildcard', sub('').replace('dhcp:\n', 'dhcp:\n  port: 6767\n') + 'tftp: { root: /srv, port: 6767, listen: [127.0.0.1] }\n', 'tftp.port: 6767', 'is also dhcp.port: both would bind udp 0.0.0.0:6767'],
  ['a service on the VIP at another service\'s port', base + 'vip: { address: 10.0.0.1/24, interface: eth0 }\ndns: { port: 1053, listen: [127.0.0.1] }\ntftp: { root: /srv, port: 1053, listen: [127.0.0.2] }\n', 'tftp.port: 1053', 'udp 10.0.0.1:1053'],
  ['DNS over TCP on the Raft port', base.replace('name: solo', 'name: solo\n  address: 127.0.0.1') + 'cluster: { id: r, members: [{ name: solo, address: 127.0.0.1, port: 7400 }] }\ndns: { port: 7400 }\n', 'cluster.members[0].port: 7400', 'is also dns.port: both would bind tcp 127.0.0.1:7400'],
  ['a default port taken by another service', base + 'ntp: { listen: [127.0.0.1] }\ntftp: { root: /srv, listen: [127.0.0.1], port: 123 }\n', 'ntp.port: (default) is also tftp.port', 'udp 127.0.0.1:123'],
  ['the boot HTTP listener on the DNS port', base + 'dns: { port: 8080, listen: [127.0.0.1] }\nboot: { http: { listen: [127.0.0.1] } }\n', 'boot.http.port: (default) is also dns.port', 'tcp 127.0.0.1:8080'],
  ['dhcp.cacheThreshold of 1 (a cached lease could be over)', sub('').replace('dhcp:\n', 'dhcp:\n  cacheThreshold: 1\n'), 'dhcp.cacheThreshold: 1', 'is not below 1'],
  ['a negative dhcp.cacheThreshold', sub('').replace('dhcp:\n', 'dhcp:\n  cacheThreshold: -0.25\n'), 'dhcp.cacheThreshold: -0.25', 'is not a fraction of the lease time'],
  ['dhcp.cacheThreshold as a percentage text', sub('').replace('dhcp:\n', 'dhcp:\n  cacheThreshold: "25%"\n'), 'dhcp.cacheThreshold: "25%"', 'is not a fraction of the lease time'],
  ['dhcp.cacheMaxAge not a duration', sub('').replace('dhcp:\n', 'dhcp:\n  cacheMaxAge: ten minutes\n'), 'dhcp.cacheMaxAge: "ten minutes"', 'is not a duration'],
  ['a per-MAC window of zero (an instant refill would be no limit)', sub('').replace('dhcp:\n', 'dhcp:\n  rateLimit: { perMac: 20, perMacWindow: 0 }\n'), 'dhcp.rateLimit.perMacWindow: 0', 'is not a time a MAC earns its burst back in'],
  ['dhcp.bootp.dynamic as text', sub('').replace('dhcp:\n', 'dhcp:\n  bootp: { dynamic: "yes" }\n'), 'dhcp.bootp.dynamic: "yes"', 'is not true or false'],
  ['an unknown key under dhcp.bootp', sub('').replace('dhcp:\n', 'dhcp:\n  bootp: { dynamc: true }\n'), 'dhcp.bootp', 'dynamc'],
  ['dhcp rapidCommit not a boolean', sub('      rapidCommit: maybe\n'), 'dhcp.subnets[0].rapidCommit: "maybe"', 'is not true or false'],
  ['dhcp clients neither all nor known', sub('      clients: registered\n'), 'dhcp.subnets[0].clients: "registered"', 'is not one of "all", "known"'],
  ['an unknownPool overlapping a pool', sub('      clients: known\n      unknownPool: 10.0.0.18-10.0.0.30\n'), 'dhcp.subnets[0].unknownPool: "10.0.0.18-10.0.0.30"', 'overlaps pools[0] (10.0.0.10-10.0.0.20)'],
  ['an unknownPool outside its subnet', sub('      clients: known\n      unknownPool: 10.0.1.10-10.0.1.20\n'), 'dhcp.subnets[0].unknownPool: "10.0.1.10-10.0.1.20"', 'is outside its subnet 10.0.0.0/24'],
  ['an unknownPool on the broadcast address', sub('      clients: known\n      unknownPool: 10.0.0.250-10.0.0.255\n'), 'dhcp.subnets[0].unknownPool', 'network or broadcast address'],
  ['an unknownPool without clients: known', sub('      unknownPool: 10.0.0.200-10.0.0.210\n'), 'dhcp.subnets[0].unknownPool: "10.0.0.200-10.0.0.210"', 'clients is not "known"'],
  ['an unknownPool holding a reservation', sub('      clients: known\n      unknownPool: 10.0.0.200-10.0.0.210\n      reservations: [{ mac: "02:00:00:00:00:01", ip: 10.0.0.205 }]\n'), 'dhcp.subnets[0].unknownPool', 'holds reservations[0].ip (10.0.0.205)'],
  ['unknownLeaseTime without unknownPool', sub('      clients: known\n      unknownLeaseTime: 5m\n'), 'dhcp.subnets[0].unknownLeaseTime: "5m"', 'is set without unknownPool'],
  ['unknownLeaseTime of 2s (T1 and T2 both 1 s)', sub('      clients: known\n      unknownPool: 10.0.0.200-10.0.0.210\n      unknownLeaseTime: 2s\n'), 'dhcp.subnets[0].unknownLeaseTime: "2s"', 'at least 3s'],
  ['a rogue probe interval below a second', sub('').replace('dhcp:\n', 'dhcp:\n  rogueProbe: { interval: 200ms }\n'), 'dhcp.rogueProbe.interval: "200ms"', 'is not a probe interval of at least 1s'],
  ['a rogue probe interval that is no duration', sub('').replace('dhcp:\n', 'dhcp:\n  rogueProbe: { interval: often }\n'), 'dhcp.rogueProbe.interval: "often"', 'is not a probe interval (a duration like "60s", or 0 / false for off)'],
  ['a rogue probe ignore entry that is no address', sub('').replace('dhcp:\n', 'dhcp:\n  rogueProbe: { ignore: [10.0.0.300] }\n'), 'dhcp.rogueProbe.ignore[0]: "10.0.0.300"', 'is not an IPv4 address'],
  ['a rogue probe ignore entry listed twice', sub('').replace('dhcp:\n', 'dhcp:\n  rogueProbe: { ignore: [10.0.0.7, 10.0.0.7] }\n'), 'dhcp.rogueProbe.ignore[1]', 'is listed twice'],
  ['an unknown rogue probe key', sub('').replace('dhcp:\n', 'dhcp:\n  rogueProbe: { window: 2s }\n'), 'dhcp.rogueProbe', 'window'],
  ['a TFTP remap pattern that needs backtracking', base + 'tftp:\n  root: /srv\n  remap: [{ match: "^(a)\\\\1$", replace: x }]\n', 'tftp.remap[0].match: "^(a)\\\\1$"', 'cannot run in linear time'],
  ['a duplicate YAML key names its key path', base + 'dns:\n  zones:\n    - name: lan\n      ttl: 1h\n      ttl: 2h\n', 'dns.zones[0].ttl: duplicate key', 'line 10'],
];

for (const [what, yaml, path, fragment] of refusals) {
  t.test(`refuses: ${what}`, async (t) => {
    const found = problems(yaml);
    const line = found.find((p) => p.startsWith(path));
    t.ok(line, `a problem starts with ${path}; got:\n${found.join('\n')}`);
    if (line) t.match(line, fragment, 'and says what is wrong');
  });
}

t.test('dhcp lease caching: on by default at 0.25 (as Kea 3.0), 0 is off; cacheThreshold a fraction, cacheMaxAge a duration', async (t) => {
  const dhcp = (extra: string) => parseConfig(sub('').replace('dhcp:\n', `dhcp:\n${extra}`)).dhcp!;
  t.equal(dhcp('').cacheThreshold, 0.25, 'a quarter of the lease time by default (Kea 3.0\'s cache-threshold default)');
  t.equal(dhcp('').cacheMaxAge, undefined);
  t.equal(dhcp('  cacheThreshold: 0.25\n').cacheThreshold, 0.25);
  t.equal(dhcp('  cacheThreshold: 0\n').cacheThreshold, 0, '0 is accepted: off, as in Kea');
  t.equal(dhcp('  cacheMaxAge: 10m\n').cacheMaxAge, 600_000);
});

t.test('dhcp inventory mode: clients all by default; known with an unknownPool apart from the pools loads', async (t) => {
  t.equal(parseConfig(sub('')).dhcp!.subnets[0]!.clients, 'all');
  const s = parseConfig(sub('      clients: known\n      unknownPool: 10.0.0.200-10.0.0.210\n')).dhcp!.subnets[0]!;
  t.equal(s.clients, 'known');
  t.same(s.unknownPool, { first: parseIpv4('10.0.0.200'), last: parseIpv4('10.0.0.210') });
  t.equal(s.unknownLeaseTime, undefined, 'unset: the allocator\'s 10m');
  t.equal(parseConfig(sub('      clients: known\n      unknownPool: 10.0.0.200-10.0.0.210\n      unknownLeaseTime: 2m\n')).dhcp!.subnets[0]!.unknownLeaseTime, 120_000);
});

t.test('dhcp.rogueProbe: every 60s by default, 0 or false is off, ignore a list of server ids', async (t) => {
  const dhcp = (extra: string) => parseConfig(sub('').replace('dhcp:\n', `dhcp:\n${extra}`)).dhcp!;
  t.same(dhcp('').rogueProbe, { interval: 60_000, ignore: [] });
  t.equal(dhcp('  rogueProbe: { interval: 0 }\n').rogueProbe.interval, 0);
  t.equal(dhcp('  rogueProbe: { interval: false }\n').rogueProbe.interval, 0);
  t.equal(dhcp('  rogueProbe: { interval: 1s }\n').rogueProbe.interval, 1000);
  t.same(dhcp('  rogueProbe: { ignore: [10.0.0.7] }\n').rogueProbe, { interval: 60_000, ignore: [0x0a000007] });
});

t.test('refuses a YAML alias bomb with a clear message, quickly', async (t) => {
  let yaml = base + 'x0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n';
  for (let i = 1; i < 9; i++) yaml += `x${i}: &a${i} [${Array(10).fill(`*a${i - 1}`).join(', ')}]\n`;
  const found = problems(yaml);
  t.equal(found.length, 1, found.join('\n'));
  t.match(found[0] ?? '', /^\(top level\): YAML aliases .* expand to too many values/);
});

t.test('what the checks must not refuse: separate pools, separate subnets, one service per address', async (t) => {
  t.same(problems(sub('      reservations: [{ mac: "02:00:00:00:00:01", ip: 10.0.0.5, hostname: a }]\n      leaseTime: 1h\n      renewTime: 20m\n      rebindTime: 40m\n', '[10.0.0.10-10.0.0.20, 10.0.0.21-10.0.0.30]')
    + '    - subnet: 10.1.0.0/24\n      pools: [10.1.0.10-10.1.0.20]\n      reservations: [{ mac: "02:00:00:00:00:02", ip: 10.1.0.5, hostname: b }]\n'
    + 'dns: { port: 5353, listen: [127.0.0.1], zones: [{ name: lan }, { name: rack.lan }] }\nntp: { port: 5353, listen: [127.0.0.2] }\ntftp: { root: /srv, port: 6969 }\n'), []);
});

for (const [what, yaml, path, fragment] of bad) {
  t.test(`rejects: ${what}`, async (t) => {
    const found = problems(yaml);
    t.ok(found.length > 0, 'refused');
    const line = found.find((p) => p.startsWith(path) || p.includes(path));
    t.ok(line, `a problem names ${path}; got:\n${found.join('\n')}`);
    if (line && fragment !== '') t.match(line, fragment, 'and says what is wrong');
  });
}

// The `nodes:` block (cluster/inventory-config.ts): each problem names the key path, duplicates name the other entry.
const nodesBase = `
node: { name: solo, stateDir: /tmp/x, controlSocket: /tmp/x.sock }
dhcp:
  subnets:
    - subnet: 10.0.0.0/24
      pools: [10.0.0.100-10.0.0.199]
      reservations: [{ mac: "52:54:00:00:00:99", ip: 10.0.0.99, hostname: printer }]
`;

t.test('nodes: a good block parses, names lower-cased', async (t) => {
  const c = parseConfig(nodesBase + `nodes:
  - { name: Rack1, mac: "52:54:00:00:00:01", ip: 10.0.0.21, profile: pi4, group: row1 }
  - { name: rack2, mac: "52-54-00-00-00-02" }
`);
  t.same(c.nodes?.map((n) => [n.name, n.mac, n.ip]), [['rack1', '52:54:00:00:00:01', 0x0a000015], ['rack2', '52:54:00:00:00:02', undefined]]);
});

t.test('nodes: each problem names the key path, the value and the other entry', async (t) => {
  const p = problems(nodesBase + `nodes:
  - { name: rack1, mac: "52:54:00:00:00:01", ip: 10.0.0.21 }
  - { name: rack1, mac: "52:54:00:00:00:01", ip: 10.0.0.21 }
  - { name: rack_3, mac: "52:54:00:00:00:0z" }
  - { name: rack4, mac: "52:54:00:00:00:04", ip: 10.9.0.1 }
  - { name: rack5, mac: "52:54:00:00:00:05", ip: 10.0.0.255 }
  - { name: rack6, mac: "52:54:00:00:00:99" }
  - { name: rack7, mac: "52:54:00:00:00:07", ip: 10.0.0.99, color: red }
`);
  const has = (re: RegExp): void => { t.ok(p.some((x) => re.test(x)), String(re)); };
  has(/^nodes\[1\]\.name: "rack1" is already nodes\[0\]\.name \(rack1\)$/);
  has(/^nodes\[1\]\.mac: "52:54:00:00:00:01" is already nodes\[0\]\.mac \(rack1\)$/);
  has(/^nodes\[1\]\.ip: "10\.0\.0\.21" is already nodes\[0\]\.ip \(rack1\)$/);
  has(/^nodes\[2\]\.name: "rack_3" is not a DNS label/);
  has(/^nodes\[2\]\.mac: "52:54:00:00:00:0z" is not a MAC address/);
  has(/^nodes\[3\]\.ip: "10\.9\.0\.1" is in none of the dhcp\.subnets \(10\.0\.0\.0\/24\)$/);
  has(/^nodes\[4\]\.ip: "10\.0\.0\.255" is the network or broadcast address of 10\.0\.0\.0\/24$/);
  has(/^nodes\[5\]\.mac: "52:54:00:00:00:99" is already dhcp\.subnets\[0\]\.reservations\[0\]\.mac/);
  has(/^nodes\[6\]\.color: unknown key/);
});

t.test('VIP timers: an election timeout too short for the guard, a heartbeat the lease cannot outlast twice', async (t) => {
  const site = (timers: string): string => `
node: { name: lan-a, address: 10.20.0.2, stateDir: /tmp/x, controlSocket: /tmp/x.sock }
cluster:
  id: c
  members: [{ name: lan-a, address: 10.20.0.2 }, { name: lan-b, address: 10.20.0.3 }, { name: w, address: 10.20.0.9, role: witness }]
${timers}
vip: { address: 10.20.0.1/24, interface: eth0 }
`;
  t.same(problems(site('')), [], 'the defaults (derived from the least budget that rides out pauseTolerance) are fine');
  t.same(problems(site('  pauseTolerance: 300ms')), [], 'with a longer pauseTolerance too (the default timers follow it)');
  t.same(problems(site('  heartbeat: 100ms\n  electionTimeout: 500ms')), [], 'the hand-set pair of sessions 1-5 is fine');
  t.match(problems(site('  electionTimeout: 300ms')).join('\n'), /cluster\.electionTimeout.*too short with a VIP.*guard would have 0 ms.*use at least 500ms/);
  t.match(problems(site('  heartbeat: 300ms')).join('\n'), /cluster\.heartbeat.*too long.*must outlast two heartbeats.*use at most 225ms/);
  t.same(problems(site('  electionTimeout: 2s\n  heartbeat: 300ms')), [], 'slower timers with room are fine');
  t.same(problems(site('  failoverBudget: 480ms')), [], 'a failover budget that rides out 100 ms pauses');
  t.match(problems(site('  failoverBudget: 450ms')).join('\n'), /^cluster\.failoverBudget: "450ms" is too short to ride out 100 ms pauses.*more than 90 ms loses the VIP; use at least 480ms/m, 'the guard\'s coarse clock counted');
  t.match(problems(site('  failoverBudget: 400ms')).join('\n'), /^cluster\.failoverBudget: "400ms" is too short to ride out 100 ms pauses.*use at least 480ms/m);
  t.same(problems(site('  failoverBudget: 400ms\n  pauseTolerance: 50ms')), [], 'unless the site accepts shorter pauses');
  t.match(problems(site('  failoverBudget: 480ms\n  electionTimeout: 500ms')).join('\n'), /^cluster\.electionTimeout: .*set together with cluster\.failoverBudget/m);
});

// `cluster.backend: etcd` and its `etcd:` block (cluster/etcd/config.ts): defaults, and each problem names its key path.
t.test('cluster.backend etcd: defaults, prefix from the cluster id, problems name the key path', async (t) => {
  const site = (etcd: string, extra = ''): string => `
node: { name: lan-a, address: 10.20.0.2, stateDir: /tmp/x, controlSocket: /tmp/x.sock }
cluster:
  id: rack1
  backend: etcd
  members: [{ name: lan-a, address: 10.20.0.2 }, { name: lan-b, address: 10.20.0.3 }${extra}]
${etcd}
`;
  const ok = parseConfig(site('  etcd: { endpoints: ["http://10.0.0.5:2379", "http://10.0.0.6:2379"] }'));
  t.equal(ok.cluster?.backend, 'etcd');
  t.same(ok.cluster?.etcd?.endpoints, ['http://10.0.0.5:2379', 'http://10.0.0.6:2379']);
  t.equal(ok.cluster?.etcd?.leaseTtl, 2000, 'leaseTtl defaults to 2 s');
  t.equal(ok.cluster?.etcd?.dialTimeout, 2000, 'dialTimeout defaults to 2 s');
  t.equal(parseConfig(base).cluster, undefined, 'no cluster block: unchanged');
  t.equal(parseConfig(base + 'cluster: { id: r, members: [{ name: solo, address: 127.0.0.1 }] }\n').cluster?.backend, 'raft', 'backend defaults to raft');
  const has = (yaml: string, re: RegExp): void => { t.match(problems(yaml).join('\n'), re, re.source); };
  has(site(''), /^cluster\.etcd: \(default\) is missing: cluster\.backend is etcd/m);
  has(base + 'cluster: { id: r, members: [{ name: solo, address: 127.0.0.1 }], etcd: { endpoints: ["http://a:2379"] } }\n', /^cluster\.etcd: \{"endpoints":\["http:\/\/a:2379"\]\} is set but cluster\.backend is raft/m);
  has(site('  etcd: { endpoints: [] }'), /^cluster\.etcd\.endpoints: \[\] is below the minimum 1/m);
  has(site('  etcd: { endpoints: ["10.0.0.5:2379"] }'), /^cluster\.etcd\.endpoints\[0\]: "10\.0\.0\.5:2379" is not an etcd client URL/m);
  has(site('  etcd: { endpoints: ["http://a:2379/v3"] }'), /^cluster\.etcd\.endpoints\[0\]: "http:\/\/a:2379\/v3" is not an etcd client URL/m);
  has(site('  etcd: { endpoints: ["http://a:2379"], leaseTtl: 1500ms }'), /^cluster\.etcd\.leaseTtl.*whole number of seconds/m);
  has(site('  etcd: { endpoints: ["http://a:2379"], prefix: lanha }'), /^cluster\.etcd\.prefix: "lanha" is not a key prefix/m);
  has(site('  etcd: { endpoints: ["https://a:2379"], tls: { cert: /c.pem } }'), /^cluster\.etcd\.tls\.key: \(default\) is missing: a client certificate needs both/m);
  has(site('  etcd: { endpoints: ["http://a:2379"], tls: { ca: /ca.pem } }'), /^cluster\.etcd\.endpoints\[0\].*plain http while tls: is set/m);
  has(site('  etcd: { endpoints: ["http://a:2379"], username: lanha }'), /^cluster\.etcd\.passwordFile: \(default\) is missing: etcd authentication needs both/m);
  has(site('  etcd: { endpoints: ["http://a:2379"], password: x }'), /^cluster\.etcd\.password: unknown key/m);
  has(site('  etcd: { endpoints: ["http://a:2379"] }', ', { name: w, address: 10.20.0.9, role: witness }'), /^cluster\.members\[2\]\.role.*with backend etcd the etcd members vote/m);
  t.same(problems(site('  etcd: { endpoints: ["http://a:2379"] }\n  electionTimeout: 100ms') + 'vip: { address: 10.20.0.1/24, interface: eth0 }\n'), [], 'Raft timers are not checked against the VIP on etcd');
});

// The `control:` block (lib/control-config.ts): the remote control listener needs cluster.tls, never binds the VIP, clashes with nothing.
t.test('control: remote listener, its defaults and problems by key path', async (t) => {
  const site = (control: string, tls = '  tls: { ca: /t/ca.pem, cert: /t/a.pem, key: /t/a.key }\n', extra = ''): string => `
node: { name: lan-a, address: 10.20.0.2, stateDir: /tmp/x, controlSocket: /tmp/x.sock }
cluster:
  id: rack1
  members: [{ name: lan-a, address: 10.20.0.2 }]
${tls}${control}
${extra}`;
  const ok = parseConfig(site('control: { listen: "10.20.0.2" }'));
  t.same(ok.control?.listen, { host: '10.20.0.2', port: 7443 }, 'the port defaults to 7443');
  t.equal(ok.control?.maxConnections, 16);
  t.equal(ok.control?.operators, undefined, 'no list: any operator the cluster CA signed');
  t.same(parseConfig(site('control: { listen: "10.20.0.2:9443", operators: [alice, ops.bob] }')).control?.operators, ['alice', 'ops.bob']);
  const has = (yaml: string, re: RegExp): void => { t.match(problems(yaml).join('\n'), re, re.source); };
  has(site('control: { listen: "10.20.0.2" }', ''), /^control: .*is set but cluster\.tls is not/m);
  has(site('control: { listen: "lan-a:7443" }'), /^control\.listen: "lan-a:7443" is not an IPv4 address with an optional port/m);
  has(site('control: { listen: "10.20.0.2:70000" }'), /^control\.listen: .*is not an IPv4 address/m);
  has(site('control: { listen: "10.20.0.2", operators: [] }'), /^control\.operators: \[\] is an empty list/m);
  has(site('control: { listen: "10.20.0.2", operators: ["a b"] }'), /^control\.operators\[0\]: "a b" is not an operator name/m);
  has(site('control: { listen: "10.20.0.2", secret: x }'), /^control\.secret: unknown key/m);
  has(site('control: { listen: "10.20.0.9" }', undefined, 'vip: { address: 10.20.0.9/24, interface: eth0 }'), /^control\.listen: .*is the VIP \(10\.20\.0\.9\)/m);
  has(site('control: { listen: "127.0.0.1:7480" }', undefined, 'http: { listen: "127.0.0.1:7480" }'), /^control\.listen: .*is also http\.listen: both would bind tcp 127\.0\.0\.1:7480/m);
});

t.test('a value that does not parse is one problem, not also the cross-checks run on what it failed to become', async (t) => {
  const dhcp = (subnet: string, pool: string, ip: string): string => `${base}dhcp:
  subnets:
    - subnet: ${subnet}
      pools: ["${pool}"]
      reservations: [{ mac: "52:54:00:00:00:01", ip: ${ip} }]
`;
  t.same(problems(dhcp('10.0.0.0/24', '10.0.0.250-10.0.0.10', '10.0.0.5')),
    ['dhcp.subnets[0].pools[0]: "10.0.0.250-10.0.0.10" is not an IPv4 range like "10.0.0.100-10.0.0.199" (first <= last)'],
    'a reversed pool: not also "is outside its subnet"');
  t.same(problems(dhcp('10.0.0.0/33', '10.0.0.10-10.0.0.20', '10.0.0.5')),
    ['dhcp.subnets[0].subnet: "10.0.0.0/33" is not a CIDR prefix like "10.0.0.0/24"'],
    'a bad prefix: not also every pool and reservation "outside its subnet 0.0.0.0/undefined"');
  t.same(problems(dhcp('10.0.0.0/24', '10.0.0.10-10.0.0.20', '10.0.0.5').replace('      reservations', '      clients: known\n      unknownPool: 10.0.0.99-10.0.0.30\n      reservations')),
    ['dhcp.subnets[0].unknownPool: "10.0.0.99-10.0.0.30" is not an IPv4 range like "10.0.0.100-10.0.0.199" (first <= last)'],
    'a reversed unknownPool: not also "outside its subnet"');
});

t.test('a YAML syntax error ends with the text of the line it names, not a dangling colon', async (t) => {
  const found = problems(`${base}dhcp:\n  subnets:\n    - subnet: [10.0.0.0/24\n      pools: [10.0.0.10-10.0.0.20]\n`);
  t.ok(found.length > 0, 'refused');
  for (const line of found) {
    t.match(line, /^YAML syntax: .* at line \d+, column \d+: ".+"$/, `the line's text follows its position: ${line}`);
    t.notMatch(line, /:$/, 'no colon left hanging where the parser put its context block');
  }
});

t.test('a reservation host name that would be the apex of another zone of ours is refused with its key path', async (t) => {
  const yaml = `${base}
dhcp:
  subnets:
    - subnet: 10.0.0.0/24
      pools: [10.0.0.100-10.0.0.120]
      reservations:
        - { mac: "52:54:00:00:00:01", ip: 10.0.0.11, hostname: MGMT }
        - { mac: "52:54:00:00:00:02", ip: 10.0.0.12, hostname: ns1 }
dns:
  zones:
    - { name: lan, leases: true, records: ["@ NS ns1"] }
    - { name: mgmt.lan }
`;
  t.same(problems(yaml).filter((p) => /reservations/.test(p)), [
    'dhcp.subnets[0].reservations[0].hostname: "MGMT": would be the apex of DNS zone mgmt.lan, a zone of its own: never published (give the reservation another host name)',
  ], 'the apex is refused; a reservation filling the zone\'s NS target is not');
  t.same(problems(yaml.replace('hostname: MGMT', 'hostname: mgmt1')), [], 'another name passes');
});
