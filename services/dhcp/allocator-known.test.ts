// Proves inventory mode in the pure allocator (`clients: known`): known clients (a config
// reservation by MAC or client id, or an inventory node, read per request) are served; unknown ones
// get no OFFER, a NAK only for an address of the subnet's pools (Kea's answer for a pool the client
// may not use), or an address of the unknownPool with its own lease time, apart from the known pools.
import t from 'tap';
import { Fsm } from '../../cluster/fsm.js';
import type { Command } from '../../cluster/commands.js';
import { parseCidr, parseIpv4, parseIpv4Range } from '../../lib/ipv4.js';
import { Allocator, UNKNOWN_LEASE_MS, poolSubnet, poolUse, type Decision, type PoolSubnet } from './allocator.js';
import type { ClientRequest } from './request.js';

const ip = (s: string): number => parseIpv4(s)!;
const SERVER = ip('10.0.0.1');
const KNOWN = '02:00:00:00:00:01';
const KNOWN_BY_ID = '02:00:00:00:00:02';
const ELSEWHERE = '02:00:00:00:00:03';
const NODE = '02:00:00:00:00:04';
const STRANGER = '02:00:00:00:00:99';

function setup(options: { clients?: 'all' | 'known'; unknownPool?: string; unknownLeaseTime?: number } = {}): { allocator: Allocator; subnet: PoolSubnet; fsm: Fsm; commit: (c: Command, at?: number) => void } {
  const subnet = poolSubnet({
    subnet: parseCidr('10.0.0.0/24')!,
    pools: [parseIpv4Range('10.0.0.10-10.0.0.12')!],
    reservations: [{ mac: KNOWN, ip: ip('10.0.0.5') }, { clientId: '01aabbcc', ip: ip('10.0.0.6') }],
    leaseTime: 3_600_000,
    clients: options.clients ?? 'known',
    unknownPool: options.unknownPool === undefined ? undefined : parseIpv4Range(options.unknownPool)!,
    unknownLeaseTime: options.unknownLeaseTime,
  });
  const other = poolSubnet({ subnet: parseCidr('10.1.0.0/24')!, pools: [parseIpv4Range('10.1.0.10-10.1.0.20')!], reservations: [{ mac: ELSEWHERE, ip: ip('10.1.0.5') }], relays: [ip('172.16.0.2')], leaseTime: 3_600_000 });
  const allocator = new Allocator([subnet, other], { offerTtlMs: 5000, declineQuarantineMs: 30_000, reuseGraceMs: 0, authoritative: true, offersMax: 100 });
  const fsm = new Fsm();
  let index = 0;
  const commit = (c: Command, at = 0): void => fsm.apply(++index, { at, command: c });
  commit({ type: 'node.add', name: 'n1', mac: NODE });
  return { allocator, subnet, fsm, commit };
}

function req(mac: string, type: ClientRequest['type'], extra: Partial<ClientRequest> = {}): ClientRequest {
  return { type, xid: 1, mac, clientKey: extra.clientId === undefined ? `mac:${mac}` : `id:${extra.clientId}`, ciaddr: 0, giaddr: 0, broadcast: false, userClasses: [], parameterRequest: [], ...extra };
}

const ipOf = (d: Decision): string => (d.kind === 'offer' || d.kind === 'ack' ? `${d.ip >>> 24}.${(d.ip >>> 16) & 255}.${(d.ip >>> 8) & 255}.${d.ip & 255}` : d.kind);

/** DISCOVER, then the REQUEST for the offer, committed: the client's lease. */
function bind(allocator: Allocator, subnet: PoolSubnet, fsm: Fsm, commit: (c: Command, at?: number) => void, mac: string, now: number): Decision {
  const offer = allocator.onDiscover(req(mac, 'discover'), subnet, fsm, now);
  if (offer.kind !== 'offer') return offer;
  const ack = allocator.onRequest(req(mac, 'request', { serverId: SERVER, requestedIp: offer.ip }), subnet, [SERVER], fsm, now);
  if (ack.kind === 'ack') { commit(ack.propose, now); allocator.settle(`mac:${mac}`); }
  return ack;
}

t.test('clients: known serves reservations (by MAC or client id, in any subnet) and inventory nodes; an unknown client gets no offer', async (t) => {
  const { allocator, subnet, fsm } = setup();
  t.equal(ipOf(allocator.onDiscover(req(KNOWN, 'discover'), subnet, fsm, 0)), '10.0.0.5', 'its reservation');
  t.equal(ipOf(allocator.onDiscover(req(KNOWN_BY_ID, 'discover', { clientId: '01aabbcc' }), subnet, fsm, 0)), '10.0.0.6', 'reserved by client id');
  t.equal(allocator.onDiscover(req(ELSEWHERE, 'discover'), subnet, fsm, 0).kind, 'offer', 'a reservation in another subnet makes the MAC known here too (a pool address)');
  t.equal(allocator.onDiscover(req(NODE, 'discover'), subnet, fsm, 0).kind, 'offer', 'an inventory node without an address gets a pool address');
  const ignored = allocator.onDiscover(req(STRANGER, 'discover'), subnet, fsm, 0);
  t.same(ignored.kind === 'silent' ? { ignored: ignored.ignored, subnet: ignored.subnet?.id } : ignored, { ignored: 'unknown-client', subnet: '10.0.0.0/24' });
  t.equal(allocator.offerFor(`mac:${STRANGER}`), undefined, 'nothing held for it');
  t.equal(allocator.onDiscover(req(STRANGER, 'discover', { giaddr: ip('172.16.0.2') }), allocator.subnets[1]!, fsm, 0).kind, 'offer', 'a subnet with clients: all still serves it');
});

t.test('clients: all (the default) serves unknown clients as before', async (t) => {
  const { allocator, subnet, fsm } = setup({ clients: 'all' });
  t.equal(subnet.knownOnly, undefined);
  t.equal(allocator.onDiscover(req(STRANGER, 'discover'), subnet, fsm, 0).kind, 'offer');
});

t.test('the inventory is read per request: a node added is served at once, a node removed gets a NAK for its lease and no new one', async (t) => {
  const { allocator, subnet, fsm, commit } = setup();
  t.equal(allocator.onDiscover(req(STRANGER, 'discover'), subnet, fsm, 0).kind, 'silent');
  commit({ type: 'node.add', name: 'late', mac: STRANGER }, 1000);
  const ack = bind(allocator, subnet, fsm, commit, STRANGER, 2000);
  t.equal(ack.kind, 'ack', 'added through the log: served on its next try');
  const leased = fsm.leaseByMac(STRANGER)!.ip;
  commit({ type: 'node.remove', name: 'late' }, 3000);
  const renew = allocator.onRequest(req(STRANGER, 'request', { ciaddr: leased }), subnet, [SERVER], fsm, 4000);
  t.same(renew.kind === 'nak' ? renew.reason : renew, 'client is not known on this subnet (clients: known)', 'its renewal: NAK');
  const reboot = allocator.onRequest(req(STRANGER, 'request', { requestedIp: leased }), subnet, [SERVER], fsm, 4000);
  t.equal(reboot.kind, 'nak', 'INIT-REBOOT for its pool address: NAK');
  t.equal(allocator.onDiscover(req(STRANGER, 'discover'), subnet, fsm, 4000).kind, 'silent', 'no new offer');
});

t.test('an unknown client\'s REQUEST: NAK for an address of the pools (Kea), silence for any other, never an answer to another server\'s client', async (t) => {
  const { allocator, subnet, fsm } = setup();
  const outside = allocator.onRequest(req(STRANGER, 'request', { requestedIp: ip('192.168.1.50') }), subnet, [SERVER], fsm, 0);
  t.same(outside.kind === 'silent' ? outside.ignored : outside, 'unknown-client', 'INIT-REBOOT from another network: silence (no NAK)');
  const reserved = allocator.onRequest(req(STRANGER, 'request', { requestedIp: ip('10.0.0.5') }), subnet, [SERVER], fsm, 0);
  t.equal(reserved.kind, 'silent', 'an address outside the pools: silence');
  const selecting = allocator.onRequest(req(STRANGER, 'request', { serverId: ip('10.0.0.250'), requestedIp: ip('10.0.0.10') }), subnet, [SERVER], fsm, 0);
  t.same(selecting.kind === 'silent' ? [selecting.reason, selecting.ignored] : selecting, ['client selected another server', undefined]);
  const pool = allocator.onRequest(req(STRANGER, 'request', { serverId: SERVER, requestedIp: ip('10.0.0.11') }), subnet, [SERVER], fsm, 0);
  t.equal(pool.kind, 'nak', 'SELECTING us for a pool address it was never offered: NAK');
  t.equal(allocator.onInform(req(STRANGER, 'inform', { ciaddr: ip('10.0.0.77') }), subnet, fsm).kind, 'silent', 'INFORM: nothing (its reply would carry the boot file)');
  t.equal(allocator.onInform(req(KNOWN, 'inform', { ciaddr: ip('10.0.0.5') }), subnet, fsm).kind, 'inform');
});

t.test('a lease from before clients: known is NAKed at its renewal', async (t) => {
  const before = setup({ clients: 'all' });
  t.equal(bind(before.allocator, before.subnet, before.fsm, before.commit, STRANGER, 0).kind, 'ack');
  const after = setup();
  const leased = before.fsm.leaseByMac(STRANGER)!.ip;
  const renew = after.allocator.onRequest(req(STRANGER, 'request', { ciaddr: leased }), after.subnet, [SERVER], before.fsm, 1000);
  t.equal(renew.kind, 'nak');
});

t.test('unknownPool: unknown clients get its addresses for unknownLeaseTime (10m unless set), known clients never', async (t) => {
  const { allocator, subnet, fsm, commit } = setup({ unknownPool: '10.0.0.200-10.0.0.201' });
  const ack = bind(allocator, subnet, fsm, commit, STRANGER, 0);
  t.equal(ipOf(ack), '10.0.0.200');
  if (ack.kind !== 'ack' || ack.propose.type !== 'lease.grant') throw new Error('no grant');
  t.equal(ack.propose.leaseMs, UNKNOWN_LEASE_MS);
  t.equal(UNKNOWN_LEASE_MS, 600_000);
  t.equal(ack.propose.subnet, '10.0.0.0/24', 'the lease names the subnet');
  t.equal(ack.subnet.unknownClients, true, 'the shell sends no boot file from it');
  t.equal(ack.subnet.leaseMs, UNKNOWN_LEASE_MS);
  const renewed = allocator.onRequest(req(STRANGER, 'request', { ciaddr: ip('10.0.0.200') }), subnet, [SERVER], fsm, 1000);
  t.equal(ipOf(renewed), '10.0.0.200', 'renews in the unknownPool');
  t.equal(allocator.onRequest(req(STRANGER, 'request', { serverId: SERVER, requestedIp: ip('10.0.0.10') }), subnet, [SERVER], fsm, 1000).kind, 'nak', 'an address of the known pools: NAK');
  t.equal(allocator.onRequest(req(NODE, 'request', { serverId: SERVER, requestedIp: ip('10.0.0.201') }), subnet, [SERVER], fsm, 1000).kind, 'nak', 'a known client asking for an unknownPool address: NAK');
  const filled = [0x10, 0x11, 0x12].map((n) => bind(allocator, subnet, fsm, commit, `02:00:00:00:01:${n.toString(16)}`, 2000).kind);
  t.same(filled, ['ack', 'silent', 'silent'], 'unknown clients fill the unknownPool, then get nothing');
  t.equal(ipOf(allocator.onDiscover(req(NODE, 'discover'), subnet, fsm, 2000)), '10.0.0.10', 'the known pools are untouched');
  const inform = allocator.onInform(req(STRANGER, 'inform', { ciaddr: ip('10.0.0.200') }), subnet, fsm);
  t.equal(inform.kind === 'inform' ? inform.subnet.unknownClients : inform.kind, true, 'INFORM: answered as from the unknownPool (no boot file)');
  const set = setup({ unknownPool: '10.0.0.200-10.0.0.201', unknownLeaseTime: 120_000 });
  const short = set.allocator.onDiscover(req(STRANGER, 'discover'), set.subnet, set.fsm, 0);
  t.equal(short.kind === 'offer' ? short.subnet.leaseMs : 0, 120_000, 'unknownLeaseTime');
});

t.test('unknownPool: an unknown client whose old lease is in the known pools is NAKed, then gets an unknownPool address', async (t) => {
  const before = setup({ clients: 'all' });
  t.equal(bind(before.allocator, before.subnet, before.fsm, before.commit, STRANGER, 0).kind, 'ack');
  const after = setup({ unknownPool: '10.0.0.200-10.0.0.201' });
  const fsm = before.fsm;
  const leased = fsm.leaseByMac(STRANGER)!.ip;
  t.equal(after.allocator.onRequest(req(STRANGER, 'request', { ciaddr: leased }), after.subnet, [SERVER], fsm, 1000).kind, 'nak');
  t.equal(ipOf(after.allocator.onDiscover(req(STRANGER, 'discover'), after.subnet, fsm, 1000)), '10.0.0.200', 'its previous address is not offered again');
});

t.test('unknownPool: a dry pool takes back offers of its own pool only', async (t) => {
  const { allocator, subnet, fsm } = setup({ unknownPool: '10.0.0.200-10.0.0.200' });
  for (const mac of [KNOWN, NODE, ELSEWHERE]) t.equal(allocator.onDiscover(req(mac, 'discover'), subnet, fsm, 0).kind, 'offer');
  t.equal(ipOf(allocator.onDiscover(req(STRANGER, 'discover'), subnet, fsm, 0)), '10.0.0.200');
  const second = allocator.onDiscover(req('02:00:00:00:00:98', 'discover'), subnet, fsm, 1000);
  t.equal(ipOf(second), '10.0.0.200', 'the other unknown client\'s offer is taken back');
  t.equal(allocator.offerFor(`mac:${STRANGER}`), undefined);
  t.ok(allocator.offerFor(`mac:${NODE}`) !== undefined && allocator.offerFor(`mac:${ELSEWHERE}`) !== undefined, 'known clients\' offers in the known pools are left alone');
  const third = allocator.onDiscover(req('02:00:00:00:00:05', 'discover'), subnet, fsm, 1000);
  t.equal(third.kind, 'silent', 'a third unknown client, the unknownPool dry and its offer young: nothing');
});

t.test('pool use: the unknownPool has its own line, outside the subnet\'s totals', async (t) => {
  const { allocator, subnet, fsm, commit } = setup({ unknownPool: '10.0.0.200-10.0.0.203' });
  t.equal(bind(allocator, subnet, fsm, commit, STRANGER, 0).kind, 'ack');
  t.equal(bind(allocator, subnet, fsm, commit, NODE, 0).kind, 'ack');
  const [use] = poolUse([subnet], fsm.leases(), 1000);
  t.same(use, { subnet: '10.0.0.0/24', used: 1, total: 3, pools: [{ range: '10.0.0.10-10.0.0.12', used: 1, total: 3 }], unknownPool: { range: '10.0.0.200-10.0.0.203', used: 1, total: 4 } });
  t.equal(poolUse([setup().subnet], [], 0)[0]!.unknownPool, undefined, 'none without an unknownPool');
});
