// dhcp.interface resolution against an interface table (os.networkInterfaces() shape): absent
// interfaces and interfaces with no address in a configured subnet are refused with the key path;
// sources are matched against the interface's networks, 0.0.0.0 always passes.
import t from 'tap';
import type { NetworkInterfaceInfo } from 'node:os';
import { parseCidr, parseIpv4 } from '../../lib/ipv4.js';
import { broadcastSources, fromInterface, resolveInterface } from './interface.js';

const v4 = (address: string, cidr: string): NetworkInterfaceInfo =>
  ({ address, netmask: '255.255.255.0', family: 'IPv4', mac: '52:54:00:00:00:01', internal: false, cidr });
const TABLE: NodeJS.Dict<NetworkInterfaceInfo[]> = {
  lo: [{ address: '127.0.0.1', netmask: '255.0.0.0', family: 'IPv4', mac: '00:00:00:00:00:00', internal: true, cidr: '127.0.0.1/8' }],
  lan0: [v4('10.20.0.11', '10.20.0.11/24'), v4('10.20.0.1', '10.20.0.1/24'),
    { address: 'fe80::1', netmask: 'ffff:ffff:ffff:ffff::', family: 'IPv6', mac: '52:54:00:00:00:01', internal: false, cidr: 'fe80::1/64', scopeid: 2 }],
  mgmt0: [v4('192.168.9.5', '192.168.9.5/24')],
  bare0: [],
};
const SUBNETS = [parseCidr('10.20.0.0/24')!];

t.test('an interface with an address in a configured subnet resolves to its IPv4 addresses', async (t) => {
  const r = resolveInterface('lan0', TABLE, SUBNETS);
  t.ok(r.ok);
  if (!r.ok) return;
  t.same(r.value.map((a) => a.address), [parseIpv4('10.20.0.11'), parseIpv4('10.20.0.1')], 'both IPv4 addresses (the VIP too), no IPv6');
  t.same(r.value[0]!.cidr, parseCidr('10.20.0.0/24'));
  t.ok(fromInterface(parseIpv4('10.20.0.77')!, r.value), 'a source on the interface network passes');
  t.ok(fromInterface(0, r.value), '0.0.0.0 (a client without an address) passes: it cannot be told apart');
  t.notOk(fromInterface(parseIpv4('192.168.9.7')!, r.value), 'a source on another network does not');
});

t.test('an absent interface, or one without an address in any subnet, is refused naming dhcp.interface', async (t) => {
  const absent = resolveInterface('eth9', TABLE, SUBNETS);
  t.same(absent, { ok: false, error: 'dhcp.interface: "eth9" is not an interface on this node (it has bare0, lan0, lo, mgmt0)' });
  const other = resolveInterface('mgmt0', TABLE, SUBNETS);
  t.same(other, { ok: false, error: 'dhcp.interface: "mgmt0" has no address in any dhcp.subnets entry (it has 192.168.9.5/24)' });
  const bare = resolveInterface('bare0', TABLE, SUBNETS);
  t.same(bare, { ok: false, error: 'dhcp.interface: "bare0" has no address in any dhcp.subnets entry (it has no IPv4 address)' });
});

t.test('255.255.255.255 is sent from an address of the local subnet, the preferred ones first, never the VIP', async (t) => {
  const local = parseCidr('10.20.0.0/24')!;
  const ip = (a: string): number => parseIpv4(a)!;
  const host = [ip('192.168.9.5'), ip('10.20.0.1'), ip('10.20.0.11')];
  t.same(broadcastSources(local, host, [ip('10.20.0.11')], undefined), [ip('10.20.0.11'), ip('10.20.0.1')], 'the preferred one (dhcp.interface, node.address), then the rest of the subnet, once each');
  t.same(broadcastSources(local, [], [undefined, ip('10.20.0.99')], undefined), [ip('10.20.0.99')], 'a preferred address the interface table lacks (a link without carrier) stays a candidate');
  t.same(broadcastSources(local, host, [ip('192.168.9.5')], undefined), [ip('10.20.0.1'), ip('10.20.0.11')], 'none outside the subnet');
  t.same(broadcastSources(local, host, [ip('10.20.0.1')], ip('10.20.0.1')), [ip('10.20.0.11')], 'not the VIP: it leaves with leadership');
  t.same(broadcastSources(local, [ip('192.168.9.5')], [], undefined), [], 'no address in the subnet');
});
