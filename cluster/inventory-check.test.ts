// Leader-side validation of inventory changes: every bad input gets one specific message, and a
// clash names the node (or config reservation, or lease) it clashes with.
import t from 'tap';
import { Fsm } from './fsm.js';
import type { Command } from './commands.js';
import { parseCidr } from '../lib/ipv4.js';
import { checkAccept, checkAdd, checkRemove, checkSet, checkTrust, nameProblem, parseHostKey, type InventoryContext } from './inventory-check.js';
import { inventoryContext } from './inventory-config.js';

const T0 = Date.UTC(2026, 11, 1, 12, 0);
const ctx: InventoryContext = {
  subnets: [parseCidr('10.0.0.0/24')!, parseCidr('10.1.0.0/16')!],
  reservations: [{ mac: '52:54:00:00:00:99', ip: 0x0a000063, hostname: 'printer', where: 'dhcp.subnets[0].reservations[0]' }],
  leaseHolder: (ip) => (ip === 0x0a000064 ? '52:54:00:00:00:77' : undefined),
};

function withNodes(): Fsm {
  const fsm = new Fsm();
  let index = 0;
  const apply = (command: Command): void => fsm.apply(++index, { at: T0, command });
  apply({ type: 'node.add', name: 'rack1', mac: '52:54:00:00:00:01', ip: 0x0a000015 });
  apply({ type: 'node.seen', mac: '52:54:00:00:00:42', arch: 22 });
  return fsm;
}

const error = (r: { ok: boolean; error?: string }): string => (r.ok ? 'ok' : r.error!);

t.test('add: a good node becomes one normalised command', async (t) => {
  const inv = withNodes().inventory;
  t.same(checkAdd(inv, { name: 'Rack2', mac: '52-54-00-00-00-02', ip: '10.0.0.22', profile: 'pi4', group: 'row1' }, ctx),
    { ok: true, command: { type: 'node.add', name: 'rack2', mac: '52:54:00:00:00:02', ip: 0x0a000016, profile: 'pi4', group: 'row1' } });
  t.same(checkAdd(inv, { name: 'rack2', mac: '52:54:00:00:00:02' }, ctx), { ok: true, command: { type: 'node.add', name: 'rack2', mac: '52:54:00:00:00:02' } }, 'no IP: a pool address');
  // The forms operators paste: upper case with dashes (Windows), bare hex, and a switch's MAC table.
  for (const typed of ['52-54-00-00-00-02', '52:54:00:00:00:02', '525400000002', '5254.0000.0002', ' 5254.0000.0002 ']) {
    t.same(checkAdd(inv, { name: 'rack2', mac: typed.toUpperCase() }, ctx), { ok: true, command: { type: 'node.add', name: 'rack2', mac: '52:54:00:00:00:02' } }, `MAC typed as ${JSON.stringify(typed.toUpperCase())}`);
  }
  t.match(error(checkAdd(inv, { name: 'rack2', mac: '5254.0000.0001' }, ctx)), /^MAC 52:54:00:00:00:01 already belongs to node rack1/, 'the same MAC in another form is the same MAC');
});

t.test('add: each bad input has its own message, clashes name the holder', async (t) => {
  const inv = withNodes().inventory;
  const add = (fields: Record<string, unknown>): string => error(checkAdd(inv, { name: 'rack2', mac: '52:54:00:00:00:02', ...fields }, ctx));
  t.match(add({ mac: '52:54:00:00:00:01' }), /^MAC 52:54:00:00:00:01 already belongs to node rack1 \(MAC 52:54:00:00:00:01\)$/);
  t.match(add({ mac: '52:54:00:00:00:0' }), /MAC "52:54:00:00:00:0" is not a MAC address/);
  t.match(add({ mac: 'ff:ff:ff:ff:ff:ff' }), /multicast or broadcast/);
  t.match(add({ mac: '01:00:5e:00:00:01' }), /multicast or broadcast/);
  t.match(add({ mac: '00:00:00:00:00:00' }), /zero/);
  t.match(add({ mac: undefined }), /give the node's MAC/);
  t.match(add({ ip: '10.0.0.21' }), /^IP 10\.0\.0\.21 already belongs to node rack1/);
  t.match(add({ ip: '10.0.0.256' }), /IP "10.0.0.256" is not an IPv4 address/);
  t.match(add({ ip: '192.168.1.5' }), /^IP 192\.168\.1\.5 is in none of the DHCP subnets \(10\.0\.0\.0\/24, 10\.1\.0\.0\/16\)$/);
  t.match(add({ ip: '10.0.0.0' }), /network address of 10\.0\.0\.0\/24/);
  t.match(add({ ip: '10.0.0.255' }), /broadcast address of 10\.0\.0\.0\/24/);
  t.match(add({ ip: '10.1.255.255' }), /broadcast address of 10\.1\.0\.0\/16/);
  t.equal(add({ ip: '10.1.0.255' }), 'ok', 'x.x.x.255 inside a /16 is an ordinary address');
  t.match(add({ name: 'rack1' }), /^name rack1 is already taken by node rack1 \(MAC 52:54:00:00:00:01\)$/);
  t.match(add({ name: 'RACK1' }), /name rack1 is already taken/, 'names compare in lower case');
  t.match(add({ name: 'rack_1' }), /name "rack_1" is not a DNS label/);
  t.match(add({ name: '-rack' }), /not a DNS label/);
  t.match(add({ name: 'rack.lan' }), /no dots/);
  t.match(add({ name: 'x'.repeat(64) }), /not a DNS label/);
  t.match(add({ name: '\u212aube' }), /name "\\u212aube" is not a DNS label/, 'the Kelvin sign is not folded into an ASCII "k"');
  t.match(add({ name: 'r\u0430ck2' }), /not a DNS label/, 'a Cyrillic look-alike');
  t.match(add({ name: 'rack\u001b[31m' }), /^name "rack\\u001b\[31m" is not a DNS label/, 'a terminal escape is shown escaped');
  t.match(add({ mac: '52:54\u202e:00' }), /^MAC "52:54\\u202e:00" is not a MAC address/, 'a bidi override is shown escaped');
  t.match(add({ profile: 'p'.repeat(500) }), /^profile "p{80}\.\.\." is not a profile name/, 'a huge value is cut in the message');
  t.match(add({ name: '' }), /give the node's name/);
  t.match(add({ profile: 'pi 4' }), /profile "pi 4" is not a profile name/);
  t.match(add({ group: '-g' }), /group "-g" is not a group name/);
  t.match(add({ mac: '52:54:00:00:00:99' }), /already has a reservation \(10\.0\.0\.99\) in dhcp\.subnets\[0\]\.reservations\[0\]/);
  t.match(add({ ip: '10.0.0.99' }), /IP 10\.0\.0\.99 is reserved for MAC 52:54:00:00:00:99 in dhcp\.subnets\[0\]\.reservations\[0\]/);
  t.match(add({ name: 'printer' }), /name printer is the host name of dhcp\.subnets\[0\]\.reservations\[0\]/);
  t.match(add({ ip: '10.0.0.100' }), /IP 10\.0\.0\.100 is leased to another client \(MAC 52:54:00:00:00:77\); release it first/);
  t.equal(add({ ip: '10.0.0.100', mac: '52:54:00:00:00:77' }), 'ok', 'the lease holder itself may become a node with its address');
});

t.test('set: partial changes, clears, clashes with others but not with itself', async (t) => {
  const fsm = withNodes();
  fsm.apply(10, { at: T0, command: { type: 'node.add', name: 'rack2', mac: '52:54:00:00:00:02', ip: 0x0a000016 } });
  const inv = fsm.inventory;
  t.same(checkSet(inv, { name: 'rack1', ip: '', profile: 'pi5' }, ctx), { ok: true, command: { type: 'node.set', name: 'rack1', ip: null, profile: 'pi5' } });
  t.same(checkSet(inv, { name: 'rack1', ip: '10.0.0.21', mac: '52:54:00:00:00:01' }, ctx).ok, true, 'its own MAC and IP are no clash');
  t.match(error(checkSet(inv, { name: 'rack1', ip: '10.0.0.22' }, ctx)), /IP 10\.0\.0\.22 already belongs to node rack2/);
  t.match(error(checkSet(inv, { name: 'rack1', mac: '52:54:00:00:00:02' }, ctx)), /MAC 52:54:00:00:00:02 already belongs to node rack2/);
  t.match(error(checkSet(inv, { name: 'rack9', ip: '10.0.0.30' }, ctx)), /no node named rack9/);
  t.match(error(checkSet(inv, { name: 'rack1' }, ctx)), /nothing to change/);
  t.match(error(checkSet(inv, { name: 'rack1', ip: '10.9.0.1' }, ctx)), /in none of the DHCP subnets/);
});

t.test('remove, accept, trust', async (t) => {
  const inv = withNodes().inventory;
  t.same(checkRemove(inv, 'RACK1'), { ok: true, command: { type: 'node.remove', name: 'rack1' } });
  t.match(error(checkRemove(inv, 'rack9')), /no node named rack9/);
  t.same(checkAccept(inv, { mac: '52:54:00:00:00:42', name: 'new1', ip: '10.0.0.42' }, ctx),
    { ok: true, command: { type: 'node.accept', name: 'new1', mac: '52:54:00:00:00:42', ip: 0x0a00002a } });
  t.match(error(checkAccept(inv, { mac: '52:54:00:00:00:43', name: 'new1' }, ctx)), /MAC 52:54:00:00:00:43 is not pending.*lanctl nodes add NAME --mac 52:54:00:00:00:43/);
  t.match(error(checkAccept(inv, { mac: '52:54:00:00:00:01', name: 'new1' }, ctx)), /already belongs to node rack1/);
  t.match(error(checkAccept(inv, { mac: '52:54:00:00:00:42', name: 'rack1' }, ctx)), /name rack1 is already taken/);

  // A real ed25519 public key blob: string "ssh-ed25519" + 32-byte key.
  const blob = Buffer.concat([Buffer.from([0, 0, 0, 11]), Buffer.from('ssh-ed25519'), Buffer.from([0, 0, 0, 32]), Buffer.alloc(32, 7)]).toString('base64');
  t.same(checkTrust(inv, 'rack1', `ssh-ed25519 ${blob} root@rack1`), { ok: true, command: { type: 'node.trust', name: 'rack1', hostKey: `ssh-ed25519 ${blob}` } }, 'the comment is dropped');
  t.match(error(checkTrust(inv, 'rack1', `ssh-rsa ${blob}`)), /does not hold a ssh-rsa key/);
  t.match(error(checkTrust(inv, 'rack1', 'ssh-dss AAAA')), /not one ssh uses/);
  t.match(error(checkTrust(inv, 'rack1', 'ssh-ed25519 !!!')), /not base64/);
  t.match(error(checkTrust(inv, 'rack9', `ssh-ed25519 ${blob}`)), /no node named rack9/);
  t.equal(parseHostKey('ssh-ed25519').ok, false);
  t.equal(nameProblem('n-01'), null);
});

// A static or operator record wins over a node's name in DNS (services/dns/zone.ts): the node would
// silently have no name, so the leader refuses the name and names the record.
t.test('a name a DNS record holds in the node\'s zones is refused, naming the record', async (t) => {
  const inv = withNodes().inventory;
  const config = {
    dhcp: { subnets: [{ subnet: parseCidr('10.0.0.0/24')!, domain: 'rack.lan.', reservations: [] }] },
    dns: { zones: [{ name: 'rack.lan', leases: false, records: ['ns1 3600 A 10.0.0.2', '@ NS ns1'] }, { name: 'other.lan', leases: false, records: ['www A 10.0.0.9'] }, { name: 'dyn.lan', leases: true, records: ['gw A 10.0.0.1'] }] },
  };
  const c = inventoryContext(config, () => ['db.rack.lan', 'mail.other.lan']);
  const add = (name: string): string => error(checkAdd(inv, { name, mac: '52:54:00:00:00:02' }, c));
  t.match(add('ns1'), /^name ns1 is already a DNS record ns1\.rack\.lan \(a static or operator record wins over a node's name\)/);
  t.match(add('NS1'), /DNS record ns1\.rack\.lan/, 'in lower case');
  t.match(add('db'), /DNS record db\.rack\.lan/, 'an operator record');
  t.match(add('gw'), /DNS record gw\.dyn\.lan/, 'a leases zone');
  t.equal(add('www'), 'ok', 'a zone the node\'s name does not go to');
  t.equal(add('mail'), 'ok');
  t.equal(add('rack2'), 'ok');
});

// With zones rack.lan and bmc.rack.lan, a node named bmc would be bmc.rack.lan A in zone rack.lan:
// the apex of the other zone, in rack.lan's transfers. Refused, naming the zone.
t.test('a name that would be the apex of another zone of ours is refused, naming the zone', async (t) => {
  const inv = withNodes().inventory;
  const config = {
    dhcp: { subnets: [{ subnet: parseCidr('10.0.0.0/24')!, domain: 'rack.lan', reservations: [] }] },
    dns: { zones: [{ name: 'rack.lan', leases: true, records: [] }, { name: 'BMC.rack.lan.', leases: false, records: ['r1 A 10.0.0.40'] }] },
  };
  const add = (name: string): string => error(checkAdd(inv, { name, mac: '52:54:00:00:00:02' }, inventoryContext(config)));
  t.equal(add('Bmc'), 'name bmc would be the apex of DNS zone bmc.rack.lan, a zone of its own; pick another name');
  t.equal(add('bmc2'), 'ok');
});

// The DHCP allocator never gives the site's own addresses to a client (services/dhcp/allocator.ts),
// so a node given one would boot without an address: the leader refuses it, saying what it is.
t.test('an IP that is the VIP, a member\'s or this node\'s address is refused, naming which', async (t) => {
  const inv = withNodes().inventory;
  const config = {
    node: { address: 0x0a000002 },
    vip: { address: { address: 0x0a000001 } },
    cluster: { members: [{ name: 'lan-a', address: '10.0.0.2' }, { name: 'lan-b', address: '10.0.0.3' }, { name: 'w', address: 'witness.lan' }] },
    dhcp: { subnets: [{ subnet: parseCidr('10.0.0.0/24')!, reservations: [] }] },
  };
  const c = inventoryContext(config);
  const add = (ip: string): string => error(checkAdd(inv, { name: 'n2', mac: '52:54:00:00:00:02', ip }, c));
  t.equal(add('10.0.0.1'), 'IP 10.0.0.1 is the VIP (vip.address), the site\'s own address: never a node\'s (pick another address)');
  t.match(add('10.0.0.2'), /^IP 10\.0\.0\.2 is the address of cluster member lan-a/);
  t.match(add('10.0.0.3'), /^IP 10\.0\.0\.3 is the address of cluster member lan-b/);
  t.equal(add('10.0.0.4'), 'ok');
  t.match(error(checkSet(inv, { name: 'rack1', ip: '10.0.0.1' }, c)), /the VIP/, 'nodes set too');
});
