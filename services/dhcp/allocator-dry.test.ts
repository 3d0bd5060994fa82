// A dry pool is not scanned again per DISCOVER (Allocator #dry): these tests hold that memo to the
// answers of a full scan. An allocator reading a LeaseView without `version` scans every time; fed the
// same random events, both must decide alike. And the work per DISCOVER on a dry /16 is counted.
import t from 'tap';
import fc from 'fast-check';
import { Fsm } from '../../cluster/fsm.js';
import type { Command } from '../../cluster/commands.js';
import { parseCidr, parseIpv4, parseIpv4Range } from '../../lib/ipv4.js';
import { Allocator, poolSubnet, type Decision, type LeaseView, type PoolSubnet } from './allocator.js';
import type { ClientRequest } from './request.js';
import { seedFromEnv } from '../../test/support/seeded.js';

const ip = (s: string): number => parseIpv4(s)!;
const SERVER = ip('10.0.0.1');
const settings = { offerTtlMs: 5000, declineQuarantineMs: 20_000, reuseGraceMs: 0, authoritative: true, offersMax: 1000, offerReclaimAfterMs: 250 };

function subnets(): PoolSubnet[] {
  return [
    poolSubnet({ subnet: parseCidr('10.0.0.0/24')!, pools: [parseIpv4Range('10.0.0.10-10.0.0.15')!], reservations: [{ mac: '02:00:00:00:00:01', ip: ip('10.0.0.12') }], leaseTime: 30_000 }),
    poolSubnet({ subnet: parseCidr('10.0.1.0/24')!, pools: [parseIpv4Range('10.0.1.10-10.0.1.13')!], reservations: [], relays: [ip('10.0.1.1')], leaseTime: 30_000 }),
  ];
}

/** The FSM without its version: every read as the allocator makes it, no memo possible. */
function unversioned(fsm: Fsm): LeaseView {
  return { lease: (a) => fsm.lease(a), leaseByMac: (m) => fsm.leaseByMac(m), leaseByClientId: (c) => fsm.leaseByClientId(c), inventory: fsm.inventory };
}

function req(mac: string, type: ClientRequest['type'], clientId: string | undefined, extra: Partial<ClientRequest> = {}): ClientRequest {
  return { type, xid: 1, mac, clientKey: clientId === undefined ? `mac:${mac}` : `id:${clientId}`, ...(clientId === undefined ? {} : { clientId }), ciaddr: 0, giaddr: 0, broadcast: false, userClasses: [], parameterRequest: [], ...extra };
}

const summary = (d: Decision): string => `${d.kind} ${'ip' in d ? d.ip : ''} ${d.kind === 'offer' ? d.reclaimed?.clientKey ?? '' : ''} ${d.kind === 'silent' ? d.reason : ''}`;

t.test('the dry-pool memo answers as a full scan would', (t) => {
  const seed = seedFromEnv(14);
  const event = fc.record({
    client: fc.integer({ min: 0, max: 40 }),
    withId: fc.boolean(),
    subnet: fc.integer({ min: 0, max: 1 }),
    kind: fc.constantFrom('discover', 'discover', 'discover', 'select', 'select', 'release', 'decline', 'wait', 'wait', 'sweep', 'node'),
    waitMs: fc.oneof(fc.integer({ min: 0, max: 400 }), fc.integer({ min: 0, max: 40_000 })),
  });
  fc.assert(fc.property(fc.array(event, { minLength: 50, maxLength: 300 }), fc.constantFrom(0, 3000), (events, reuseGraceMs) => {
    const nets = subnets();
    const memo = new Allocator(nets, { ...settings, reuseGraceMs });
    const scan = new Allocator(nets, { ...settings, reuseGraceMs });
    const fsm = new Fsm();
    const plain = unversioned(fsm);
    let index = 0, now = 1_000_000;
    const commit = (c: Command): void => fsm.apply(++index, { at: now, command: c });
    const offered = new Map<string, number>();
    const held = new Map<string, number>();
    const both = (f: (a: Allocator, v: LeaseView) => Decision): Decision => {
      const a = f(memo, fsm), b = f(scan, plain);
      if (summary(a) !== summary(b)) throw new Error(`memo: ${summary(a)}; full scan: ${summary(b)}`);
      return a;
    };
    for (const e of events) {
      const mac = `02:00:00:00:01:${e.client.toString(16).padStart(2, '0')}`;
      const id = e.withId && e.client % 3 === 0 ? `01${mac.replace(/:/g, '')}` : undefined;
      const net = nets[e.subnet]!;
      const giaddr = e.subnet === 1 ? ip('10.0.1.1') : 0;
      const key = id ?? mac;
      switch (e.kind) {
        case 'discover': {
          const d = both((a, v) => a.onDiscover(req(mac, 'discover', id, { giaddr }), net, v, now));
          if (d.kind === 'offer') offered.set(key, d.ip);
          break;
        }
        case 'select': {
          const o = offered.get(key);
          if (o === undefined) break;
          const d = both((a, v) => a.onRequest(req(mac, 'request', id, { serverId: SERVER, requestedIp: o, giaddr }), net, [SERVER], v, now));
          if (d.kind === 'ack') { commit(d.propose); held.set(key, d.ip); }
          memo.settle(id === undefined ? `mac:${mac}` : `id:${id}`);
          scan.settle(id === undefined ? `mac:${mac}` : `id:${id}`);
          break;
        }
        case 'release': {
          const h = held.get(key);
          if (h === undefined) break;
          const d = both((a, v) => a.onRelease(req(mac, 'release', id, { ciaddr: h }), v));
          if (d.kind === 'release') { commit(d.propose); held.delete(key); }
          break;
        }
        case 'decline': {
          const target = held.get(key) ?? offered.get(key);
          if (target === undefined) break;
          const d = both((a, v) => a.onDecline(req(mac, 'decline', id, { requestedIp: target }), v, now));
          if (d.kind === 'decline') { commit(d.propose); held.delete(key); }
          break;
        }
        case 'wait': now += e.waitMs; break;
        case 'sweep': for (const c of memo.expiredLeases([...fsm.leases()], now, 100)) commit(c); break;
        case 'node': if (!fsm.inventory.byMac(mac)) commit({ type: 'node.add', name: `n${e.client}`, mac, ip: ip(`10.0.0.${10 + (e.client % 6)}`) }); break;
      }
    }
  }), { seed, numRuns: 300 });
  t.pass(`seed ${seed}`);
  t.end();
});

t.test('a DISCOVER flood on a dry /16 scans the pool once, not once per packet', (t) => {
  const net = poolSubnet({ subnet: parseCidr('10.8.0.0/16')!, pools: [parseIpv4Range('10.8.0.2-10.8.255.254')!], reservations: [], leaseTime: 3_600_000 });
  const fsm = new Fsm();
  const first = net.ranges[0]!.first, size = net.ranges[0]!.last - first + 1;
  const macOf = (n: number): string => `02:${[n >>> 24, n >>> 16, n >>> 8, n, 1].map((x) => (x & 255).toString(16).padStart(2, '0')).join(':')}`;
  const now = 5_000_000;
  for (let i = 0; i < size; i++) fsm.apply(i + 1, { at: now, command: { type: 'lease.grant', ip: first + i, mac: macOf(i), subnet: net.id, leaseMs: 3_600_000 } });
  let reads = 0;
  const counted: LeaseView = { lease: (a) => { reads++; return fsm.lease(a); }, leaseByMac: (m) => fsm.leaseByMac(m), leaseByClientId: (c) => fsm.leaseByClientId(c), inventory: fsm.inventory, get version() { return fsm.version; } };
  const allocator = new Allocator([net], { ...settings, offersMax: 65_536 });
  const discover = (n: number): Decision => allocator.onDiscover(req(macOf(0x40000000 + n), 'discover', undefined), net, counted, now + 1000 + n);
  t.equal(discover(0).kind, 'silent', 'the pool is dry');
  t.ok(reads >= size, `the first DISCOVER read every address (${reads})`);
  reads = 0;
  for (let n = 1; n <= 1000; n++) t.equal(discover(n).kind, 'silent');
  t.ok(reads < 1000, `1,000 more DISCOVERs read ${reads} leases, not ${size * 1000}`);
  // A release frees an address: the next DISCOVER finds it at once, and a bound client renews as before.
  fsm.apply(size + 1, { at: now + 2000, command: { type: 'lease.release', ip: first + 77, mac: macOf(77) } });
  const d = allocator.onDiscover(req(macOf(0x50000000), 'discover', undefined), net, counted, now + 2000);
  t.match(d, { kind: 'offer', ip: first + 77 }, 'the released address is offered');
  const own = allocator.onDiscover(req(macOf(5), 'discover', undefined), net, counted, now + 6000);
  t.match(own, { kind: 'offer', ip: first + 5 }, 'a client with a binding in the dry pool gets its own address');
  t.end();
});

t.test('reservations are looked up by MAC and client id, first in config order as before', (t) => {
  const mac = '02:00:00:00:09:01', clientId = '01aabbcc';
  const byId = { clientId, ip: ip('10.0.0.51') }, byMac = { mac, ip: ip('10.0.0.52') };
  for (const [order, want] of [[[byId, byMac], '10.0.0.51'], [[byMac, byId], '10.0.0.52']] as const) {
    const net = poolSubnet({ subnet: parseCidr('10.0.0.0/24')!, pools: [parseIpv4Range('10.0.0.10-10.0.0.20')!], reservations: [...order], leaseTime: 30_000 });
    const allocator = new Allocator([net], settings);
    const d = allocator.onDiscover(req(mac, 'discover', clientId), net, new Fsm(), 1000);
    t.match(d, { kind: 'offer', ip: ip(want) }, `reservation order ${order.map((r) => ('mac' in r ? 'mac' : 'client id')).join(', ')}`);
    t.match(allocator.onDiscover(req('02:00:00:00:09:02', 'discover', clientId), net, new Fsm(), 1000), { kind: 'offer', ip: ip('10.0.0.51') }, 'the client id alone finds its reservation');
    t.match(allocator.onDiscover(req(mac, 'discover', undefined), net, new Fsm(), 1000), { kind: 'offer', ip: ip('10.0.0.52') }, 'the MAC alone finds its reservation');
  }
  t.end();
});
