// Proves the allocator's safety properties under random event sequences (fast-check, seeded): no
// address is held by two clients at once, offers and grants stay inside the pool or the client's own
// reservation (config or inventory node), reservations never go to others, a node only ever gets
// its own address and name, a renewal never shortens a lease; plus RFC 2131
// §4.3 cases named one by one.
import t from 'tap';
import fc from 'fast-check';
import { Fsm } from '../../cluster/fsm.js';
import type { Command } from '../../cluster/commands.js';
import { parseCidr, parseIpv4, parseIpv4Range, formatIpv4 } from '../../lib/ipv4.js';
import { Allocator, poolSubnet, poolUse, sanitizeHostname, type Decision, type PoolSubnet } from './allocator.js';
import type { ClientRequest } from './request.js';
import { seedFromEnv } from '../../test/support/seeded.js';

const ip = (s: string): number => parseIpv4(s)!;
const SERVER = ip('10.0.0.1');
const LEASE_MS = 60_000;

function setup(reuseGraceMs = 0, inventory = false): { allocator: Allocator; subnet: PoolSubnet; fsm: Fsm; commit: (c: Command, at: number) => void } {
  const subnet = poolSubnet({
    subnet: parseCidr('10.0.0.0/24')!,
    pools: [parseIpv4Range('10.0.0.10-10.0.0.19')!, parseIpv4Range('10.0.0.30-10.0.0.33')!],
    reservations: [{ mac: '02:00:00:00:00:r0'.replace('r0', 'f0'), ip: ip('10.0.0.5'), hostname: 'resv-out' }, { mac: '02:00:00:00:00:f1', ip: ip('10.0.0.12') }],
    leaseTime: LEASE_MS,
  });
  const allocator = new Allocator([subnet], { offerTtlMs: 5000, declineQuarantineMs: 30_000, reuseGraceMs, authoritative: true, offersMax: 1000 });
  const fsm = new Fsm();
  let index = 0;
  const commit = (c: Command, at: number): void => fsm.apply(++index, { at, command: c });
  // Inventory nodes: one outside the pools, one inside a pool, one without an address.
  if (inventory) commit({ type: 'node.add', name: 'inv-out', mac: '02:00:00:00:00:03', ip: ip('10.0.0.25') }, 0);
  if (inventory) commit({ type: 'node.add', name: 'inv-in', mac: '02:00:00:00:00:04', ip: ip('10.0.0.11') }, 0);
  if (inventory) commit({ type: 'node.add', name: 'inv-pool', mac: '02:00:00:00:00:05' }, 0);
  return { allocator, subnet, fsm, commit };
}

function req(mac: string, type: ClientRequest['type'], extra: Partial<ClientRequest> = {}): ClientRequest {
  return { type, xid: 1, mac, clientKey: `mac:${mac}`, ciaddr: 0, giaddr: 0, broadcast: false, userClasses: [], parameterRequest: [], ...extra };
}

const macOf = (n: number): string => `02:00:00:00:00:${n.toString(16).padStart(2, '0')}`;

t.test('random event sequences keep the allocator safe', (t) => {
  const seed = seedFromEnv(7);
  const event = fc.record({
    client: fc.integer({ min: 0xf0, max: 0xf1 + 24 }).map((n) => (n > 0xf1 ? n - 0xf0 : n)),
    kind: fc.constantFrom('discover', 'select', 'renew', 'reboot', 'release', 'decline', 'wait', 'sweep'),
    waitMs: fc.integer({ min: 0, max: 40_000 }),
    requested: fc.option(fc.integer({ min: 0, max: 40 }).map((n) => ip(`10.0.0.${n}`)), { nil: undefined }),
  });
  fc.assert(fc.property(fc.array(event, { maxLength: 120 }), fc.integer({ min: 0, max: 20_000 }), (events, grace) => {
    const { allocator, subnet, fsm, commit } = setup(grace, true);
    let now = 1_000_000;
    /** What each client believes: the address it was ACKed and until when. */
    const held = new Map<string, { ip: number; until: number }>();
    const offered = new Map<string, number>();
    const check = (d: Decision, mac: string): void => {
      if (d.kind === 'offer' || d.kind === 'ack') {
        const inPool = subnet.ranges.some((r) => d.ip >= r.first && d.ip <= r.last);
        const ownReservation = subnet.reservations.find((r) => r.ip === d.ip);
        const node = fsm.inventory.byIp(d.ip);
        if (ownReservation) { if (ownReservation.mac !== mac) throw new Error(`reserved ${formatIpv4(d.ip)} handed to ${mac}`); }
        else if (node) { if (node.mac !== mac) throw new Error(`node ${node.name}'s ${formatIpv4(d.ip)} handed to ${mac}`); }
        else if (!inPool) throw new Error(`${formatIpv4(d.ip)} outside the pool`);
        const own = fsm.inventory.byMac(mac);
        if (own?.ip !== undefined && d.ip !== own.ip) throw new Error(`node ${own.name} offered ${formatIpv4(d.ip)}, not its ${formatIpv4(own.ip)}`);
        if (d.kind === 'ack' && own !== undefined && d.propose.type === 'lease.grant' && d.propose.hostname !== own.name) throw new Error(`node ${own.name} granted under another name`);
      }
    };
    const grant = (mac: string, d: Decision): void => {
      check(d, mac);
      if (d.kind !== 'ack') return;
      const before = fsm.lease(d.ip);
      commit(d.propose, now);
      allocator.settle(`mac:${mac}`);
      const after = fsm.lease(d.ip);
      if (after?.mac !== mac || after.state !== 'bound') return; // the server would NAK
      if (before?.mac === mac && before.state === 'bound' && after.expiresAt < before.expiresAt) throw new Error('renewal shortened a lease');
      held.set(mac, { ip: d.ip, until: after.expiresAt });
    };
    for (const e of events) {
      const mac = macOf(e.client);
      const mine = held.get(mac);
      switch (e.kind) {
        case 'discover': {
          const d = allocator.onDiscover(req(mac, 'discover', e.requested === undefined ? {} : { requestedIp: e.requested }), subnet, fsm, now);
          check(d, mac);
          if (d.kind === 'offer') offered.set(mac, d.ip);
          break;
        }
        case 'select': {
          const o = offered.get(mac);
          if (o !== undefined) grant(mac, allocator.onRequest(req(mac, 'request', { serverId: SERVER, requestedIp: o }), subnet, [SERVER], fsm, now));
          break;
        }
        case 'renew':
          if (mine) grant(mac, allocator.onRequest(req(mac, 'request', { ciaddr: mine.ip }), subnet, [SERVER], fsm, now));
          break;
        case 'reboot':
          grant(mac, allocator.onRequest(req(mac, 'request', { requestedIp: mine?.ip ?? e.requested ?? ip('10.0.0.10') }), subnet, [SERVER], fsm, now));
          break;
        case 'release':
          if (mine) {
            const d = allocator.onRelease(req(mac, 'release', { ciaddr: mine.ip }), fsm);
            if (d.kind === 'release') { commit(d.propose, now); held.delete(mac); }
          }
          break;
        case 'decline': {
          const target = mine?.ip ?? offered.get(mac);
          if (target !== undefined) {
            const d = allocator.onDecline(req(mac, 'decline', { requestedIp: target }), fsm, now);
            if (d.kind === 'decline') { commit(d.propose, now); held.delete(mac); }
          }
          break;
        }
        case 'wait': now += e.waitMs; break;
        case 'sweep': for (const c of allocator.expiredLeases([...fsm.leases()], now, 100)) commit(c, now); break;
      }
      // No address is offered to two clients at once (a reclaimed offer is gone from its first client).
      const offeredTo = new Map<number, string>();
      for (let n = 0xf0; n <= 0xf1 + 24; n++) {
        const key = `mac:${macOf(n > 0xf1 ? n - 0xf0 : n)}`;
        const o = allocator.offerFor(key);
        if (o === undefined || o.expiresMs <= now) continue;
        const other = offeredTo.get(o.ip);
        if (other !== undefined && other !== key) throw new Error(`${formatIpv4(o.ip)} offered to ${other} and ${key}`);
        offeredTo.set(o.ip, key);
      }
      // Safety: no address believed held (unexpired) by two clients.
      const byIp = new Map<number, string>();
      for (const [m, h] of held) {
        if (h.until <= now) continue;
        const other = byIp.get(h.ip);
        if (other !== undefined && other !== m) throw new Error(`${formatIpv4(h.ip)} held by ${other} and ${m}`);
        byIp.set(h.ip, m);
      }
    }
  }), { seed, numRuns: 300 });
  t.pass(`seed ${seed}`);
  t.end();
});

t.test('RFC 2131 §4.3 cases', async (t) => {
  t.test('a returning client gets its previous address', (t) => {
    const { allocator, subnet, fsm, commit } = setup();
    const a = macOf(1);
    const first = allocator.onDiscover(req(a, 'discover'), subnet, fsm, 0);
    t.equal(first.kind, 'offer');
    if (first.kind !== 'offer') return t.end();
    const ack = allocator.onRequest(req(a, 'request', { serverId: SERVER, requestedIp: first.ip }), subnet, [SERVER], fsm, 0);
    t.equal(ack.kind, 'ack');
    if (ack.kind === 'ack') commit(ack.propose, 0);
    allocator.settle(`mac:${a}`);
    for (let i = 2; i < 6; i++) allocator.onDiscover(req(macOf(i), 'discover'), subnet, fsm, 10);
    const again = allocator.onDiscover(req(a, 'discover'), subnet, fsm, 20);
    t.equal(again.kind === 'offer' ? again.ip : -1, first.ip);
    t.end();
  });
  t.test('a stale offer in memory never NAKs a renewal of the client the log bound the address to', (t) => {
    // This server offered .10 to b (then lost leadership before b's grant committed); meanwhile the
    // other server granted .10 to a, and the log says so. Leading again, this server must renew a's
    // lease, not refuse it for b's offer.
    const { allocator, subnet, fsm, commit } = setup();
    const a = macOf(1);
    const b = macOf(2);
    const offer = allocator.onDiscover(req(b, 'discover'), subnet, fsm, 0);
    t.equal(offer.kind === 'offer' ? formatIpv4(offer.ip) : offer.kind, '10.0.0.10');
    commit({ type: 'lease.grant', ip: ip('10.0.0.10'), mac: a, subnet: subnet.id, leaseMs: LEASE_MS }, 100);
    const renew = allocator.onRequest(req(a, 'request', { ciaddr: ip('10.0.0.10') }), subnet, [SERVER], fsm, 1000);
    t.equal(renew.kind, 'ack', 'the renewal is ACKed');
    const reboot = allocator.onRequest(req(a, 'request', { requestedIp: ip('10.0.0.10') }), subnet, [SERVER], fsm, 1100);
    t.equal(reboot.kind, 'ack', 'and so is its INIT-REBOOT');
    const other = allocator.onRequest(req(b, 'request', { serverId: SERVER, requestedIp: ip('10.0.0.10') }), subnet, [SERVER], fsm, 1200);
    t.equal(other.kind, 'nak', 'b, whose offer went stale, cannot take a\'s bound address');
    t.end();
  });
  t.test('a requested free address in range is offered', (t) => {
    const { allocator, subnet, fsm } = setup();
    const d = allocator.onDiscover(req(macOf(1), 'discover', { requestedIp: ip('10.0.0.31') }), subnet, fsm, 0);
    t.equal(d.kind === 'offer' ? formatIpv4(d.ip) : d.kind, '10.0.0.31');
    const outside = allocator.onDiscover(req(macOf(2), 'discover', { requestedIp: ip('10.0.0.25') }), subnet, fsm, 0);
    t.not(outside.kind === 'offer' ? formatIpv4(outside.ip) : '', '10.0.0.25', 'not in a pool range');
    t.end();
  });
  t.test('a reservation is offered to its MAC and never to another', (t) => {
    const { allocator, subnet, fsm } = setup();
    const d = allocator.onDiscover(req('02:00:00:00:00:f0', 'discover'), subnet, fsm, 0);
    t.equal(d.kind === 'offer' ? formatIpv4(d.ip) : d.kind, '10.0.0.5');
    const other = allocator.onDiscover(req(macOf(3), 'discover', { requestedIp: ip('10.0.0.12') }), subnet, fsm, 0);
    t.not(other.kind === 'offer' ? formatIpv4(other.ip) : '', '10.0.0.12');
    t.end();
  });
  t.test('SELECTING with another server id drops our offer silently', (t) => {
    const { allocator, subnet, fsm } = setup();
    allocator.onDiscover(req(macOf(1), 'discover'), subnet, fsm, 0);
    t.equal(allocator.offerCount, 1);
    const d = allocator.onRequest(req(macOf(1), 'request', { serverId: ip('10.0.0.99'), requestedIp: ip('10.0.0.10') }), subnet, [SERVER], fsm, 0);
    t.equal(d.kind, 'silent');
    t.equal(allocator.offerCount, 0);
    t.end();
  });
  t.test('INIT-REBOOT: wrong network NAK, unknown client NAK, known client ACK', (t) => {
    const { allocator, subnet, fsm, commit } = setup();
    t.equal(allocator.onRequest(req(macOf(1), 'request', { requestedIp: ip('192.168.1.5') }), subnet, [SERVER], fsm, 0).kind, 'nak');
    t.equal(allocator.onRequest(req(macOf(1), 'request', { requestedIp: ip('10.0.0.11') }), subnet, [SERVER], fsm, 0).kind, 'nak');
    commit({ type: 'lease.grant', ip: ip('10.0.0.11'), mac: macOf(1), subnet: subnet.id, leaseMs: LEASE_MS }, 0);
    t.equal(allocator.onRequest(req(macOf(1), 'request', { requestedIp: ip('10.0.0.11') }), subnet, [SERVER], fsm, 5).kind, 'ack');
    t.equal(allocator.onRequest(req(macOf(2), 'request', { requestedIp: ip('10.0.0.11') }), subnet, [SERVER], fsm, 5).kind, 'nak', 'another client\'s address');
    t.end();
  });
  t.test('RENEWING extends; another client renewing the same address is NAKed', (t) => {
    const { allocator, subnet, fsm, commit } = setup();
    commit({ type: 'lease.grant', ip: ip('10.0.0.11'), mac: macOf(1), subnet: subnet.id, leaseMs: LEASE_MS }, 0);
    const d = allocator.onRequest(req(macOf(1), 'request', { ciaddr: ip('10.0.0.11') }), subnet, [SERVER], fsm, 30_000);
    t.equal(d.kind, 'ack');
    if (d.kind === 'ack') { commit(d.propose, 30_000); t.equal(fsm.lease(ip('10.0.0.11'))!.expiresAt, 30_000 + LEASE_MS); }
    t.equal(allocator.onRequest(req(macOf(2), 'request', { ciaddr: ip('10.0.0.11') }), subnet, [SERVER], fsm, 30_000).kind, 'nak');
    t.end();
  });
  t.test('DECLINE quarantines; the address is not offered until the quarantine ends', (t) => {
    const { allocator, subnet, fsm, commit } = setup();
    const o = allocator.onDiscover(req(macOf(1), 'discover', { requestedIp: ip('10.0.0.10') }), subnet, fsm, 0);
    t.equal(o.kind === 'offer' ? formatIpv4(o.ip) : '', '10.0.0.10');
    const d = allocator.onDecline(req(macOf(1), 'decline', { requestedIp: ip('10.0.0.10') }), fsm, 0);
    t.equal(d.kind, 'decline');
    if (d.kind === 'decline') commit(d.propose, 0);
    const next = allocator.onDiscover(req(macOf(2), 'discover', { requestedIp: ip('10.0.0.10') }), subnet, fsm, 1000);
    t.not(next.kind === 'offer' ? formatIpv4(next.ip) : '', '10.0.0.10');
    for (const c of allocator.expiredLeases([...fsm.leases()], 31_000, 10)) commit(c, 31_000);
    const later = allocator.onDiscover(req(macOf(3), 'discover', { requestedIp: ip('10.0.0.10') }), subnet, fsm, 31_000);
    t.equal(later.kind === 'offer' ? formatIpv4(later.ip) : '', '10.0.0.10');
    t.end();
  });
  t.test('one MAC declining address after address (proxy ARP, a static host over the pool) quarantines at most 4 at a time', (t) => {
    // Each DECLINE takes an address out for declineQuarantine (an hour by default): one client that
    // sees a conflict on every address drained the whole pool, for everyone, for that hour.
    const { allocator, subnet, fsm, commit } = setup();
    const mac = macOf(1);
    const declined: string[] = [];
    let refused: Decision | undefined;
    for (let round = 0; round < 8 && refused === undefined; round++) {
      const o = allocator.onDiscover(req(mac, 'discover'), subnet, fsm, round * 100);
      if (o.kind !== 'offer') break;
      const d = allocator.onDecline(req(mac, 'decline', { requestedIp: o.ip }), fsm, round * 100);
      if (d.kind === 'decline') { commit(d.propose, round * 100); declined.push(formatIpv4(o.ip)); } else refused = d;
    }
    t.equal(declined.length, 4, `four addresses quarantined (${declined.join(', ')})`);
    t.same(refused && { kind: refused.kind, failure: refused.kind === 'silent' ? refused.failure : undefined }, { kind: 'silent', failure: 'decline-limit' }, 'the fifth DECLINE is refused and says why');
    const other = allocator.onDecline(req(macOf(2), 'decline', { requestedIp: ip('10.0.0.19') }), fsm, 1000);
    t.equal(other.kind, 'silent', 'another client still declines only what it was given');
    for (const c of allocator.expiredLeases([...fsm.leases()], 31_000, 10)) commit(c, 31_000);
    const o = allocator.onDiscover(req(mac, 'discover'), subnet, fsm, 31_000);
    const again = o.kind === 'offer' ? allocator.onDecline(req(mac, 'decline', { requestedIp: o.ip }), fsm, 31_000) : o;
    t.equal(again.kind, 'decline', 'once its quarantines have run out the MAC may decline again');
    t.end();
  });
  t.test('RELEASE frees the address for others (grace 0)', (t) => {
    const { allocator, subnet, fsm, commit } = setup();
    commit({ type: 'lease.grant', ip: ip('10.0.0.10'), mac: macOf(1), subnet: subnet.id, leaseMs: LEASE_MS }, 0);
    const d = allocator.onRelease(req(macOf(1), 'release', { ciaddr: ip('10.0.0.10') }), fsm);
    t.equal(d.kind, 'release');
    if (d.kind === 'release') commit(d.propose, 10);
    const o = allocator.onDiscover(req(macOf(2), 'discover', { requestedIp: ip('10.0.0.10') }), subnet, fsm, 20);
    t.equal(o.kind === 'offer' ? formatIpv4(o.ip) : '', '10.0.0.10');
    t.end();
  });
  t.test('expired leases are reused only after the grace', (t) => {
    const { allocator, subnet, fsm, commit } = setup(10_000);
    commit({ type: 'lease.grant', ip: ip('10.0.0.10'), mac: macOf(1), subnet: subnet.id, leaseMs: LEASE_MS }, 0);
    const early = allocator.onDiscover(req(macOf(2), 'discover', { requestedIp: ip('10.0.0.10') }), subnet, fsm, LEASE_MS + 5000);
    t.not(early.kind === 'offer' ? formatIpv4(early.ip) : '', '10.0.0.10');
    const late = allocator.onDiscover(req(macOf(3), 'discover', { requestedIp: ip('10.0.0.10') }), subnet, fsm, LEASE_MS + 10_000);
    t.equal(late.kind === 'offer' ? formatIpv4(late.ip) : '', '10.0.0.10');
    t.end();
  });
  t.test('pool exhaustion stays silent; offers expire', (t) => {
    const { allocator, subnet, fsm } = setup();
    let offers = 0;
    for (let i = 0; i < 20; i++) if (allocator.onDiscover(req(macOf(i), 'discover'), subnet, fsm, 0).kind === 'offer') offers++;
    t.equal(offers, 13, '14 pool addresses, one of them reserved for someone else');
    t.equal(allocator.onDiscover(req(macOf(40), 'discover'), subnet, fsm, 100).kind, 'silent');
    t.equal(allocator.onDiscover(req(macOf(40), 'discover'), subnet, fsm, 5001).kind, 'offer', 'after the offer TTL');
    t.end();
  });
  t.test('a dry pool takes back the oldest unanswered offer: never a grant in flight, a reservation\'s, or one younger than the floor', (t) => {
    const { allocator, subnet, fsm, commit } = setup();
    const given = new Map<string, number>();
    // The reserved client of 10.0.0.12 (inside a pool) asks first, so its offer is the oldest.
    const reserved = allocator.onDiscover(req('02:00:00:00:00:f1', 'discover'), subnet, fsm, 0);
    t.equal(reserved.kind === 'offer' ? formatIpv4(reserved.ip) : reserved.kind, '10.0.0.12');
    for (let i = 1; i <= 13; i++) {
      const d = allocator.onDiscover(req(macOf(i), 'discover'), subnet, fsm, 0);
      if (d.kind === 'offer') given.set(macOf(i), d.ip);
    }
    t.equal(given.size, 13, 'the other 13 pool addresses are offered');
    // Client 1 answers its offer: the grant is in flight (not settled) when the flood goes on.
    const granting = allocator.onRequest(req(macOf(1), 'request', { serverId: SERVER, requestedIp: given.get(macOf(1))! }), subnet, [SERVER], fsm, 100);
    t.equal(granting.kind, 'ack');
    t.equal(allocator.onDiscover(req(macOf(50), 'discover'), subnet, fsm, 200).kind, 'silent', 'offers younger than the floor (250 ms) are left alone');
    const first = allocator.onDiscover(req(macOf(50), 'discover'), subnet, fsm, 300);
    t.equal(first.kind === 'offer' ? formatIpv4(first.ip) : first.kind, formatIpv4(given.get(macOf(2))!), 'the oldest plain offer (client 2\'s) goes to the new client');
    t.equal(first.kind === 'offer' ? first.reclaimed?.clientKey : undefined, `mac:${macOf(2)}`, 'and the decision says whose it was');
    t.equal(allocator.offerFor(`mac:${macOf(2)}`), undefined, 'client 2 holds no offer any more');
    const late = allocator.onRequest(req(macOf(2), 'request', { serverId: SERVER, requestedIp: given.get(macOf(2))! }), subnet, [SERVER], fsm, 350);
    t.equal(late.kind, 'nak', 'client 2\'s REQUEST for the address given to another is NAKed');
    const taken = new Set<number>([first.kind === 'offer' ? first.ip : 0]);
    for (let i = 51; i < 70; i++) {
      const d = allocator.onDiscover(req(macOf(i), 'discover'), subnet, fsm, 400);
      if (d.kind === 'offer') taken.add(d.ip);
    }
    t.equal(taken.size, 12, 'client 2\'s and each of the 11 other plain offers are taken back once, then the pool is dry again');
    t.notOk(taken.has(ip('10.0.0.12')), 'never the reservation\'s address');
    t.notOk(taken.has(given.get(macOf(1))!), 'never the address of a grant in flight');
    if (granting.kind === 'ack') commit(granting.propose, 500);
    allocator.settle(`mac:${macOf(1)}`);
    t.equal(fsm.lease(given.get(macOf(1))!)?.mac, macOf(1), 'the grant in flight commits for its client');
    t.end();
  });
  t.test('relayed requests select the subnet by giaddr', (t) => {
    const a = poolSubnet({ subnet: parseCidr('10.0.0.0/24')!, pools: [parseIpv4Range('10.0.0.10-10.0.0.20')!], reservations: [], leaseTime: 1000 });
    const b = poolSubnet({ subnet: parseCidr('10.1.0.0/24')!, pools: [parseIpv4Range('10.1.0.10-10.1.0.20')!], reservations: [], relays: [ip('172.16.0.2')], leaseTime: 1000 });
    const allocator = new Allocator([a, b], { offerTtlMs: 1, declineQuarantineMs: 1, reuseGraceMs: 0, authoritative: true, offersMax: 10 });
    t.equal(allocator.selectSubnet({ giaddr: ip('10.1.0.1'), ciaddr: 0 }, a)?.id, '10.1.0.0/24');
    t.equal(allocator.selectSubnet({ giaddr: ip('172.16.0.2'), ciaddr: 0 }, a)?.id, '10.1.0.0/24');
    t.equal(allocator.selectSubnet({ giaddr: ip('192.168.0.1'), ciaddr: 0 }, a), undefined);
    t.equal(allocator.selectSubnet({ giaddr: 0, ciaddr: 0 }, a)?.id, '10.0.0.0/24');
    t.end();
  });
  t.test('a pool that holds the site\'s own addresses (VIP, servers, router, DNS, NTP) never hands them out', (t) => {
    // A careless but valid config: pool 10.0.0.1-10.0.0.6 over the VIP (.1), a server (.2), the router (.3), DNS (.4), NTP (.5).
    const subnet = poolSubnet({
      subnet: parseCidr('10.0.0.0/24')!, pools: [parseIpv4Range('10.0.0.1-10.0.0.6')!], reservations: [], leaseTime: LEASE_MS,
      router: [ip('10.0.0.3')], dns: [ip('10.0.0.4'), ip('10.0.0.1')], ntp: [ip('10.0.0.5')],
    }, [ip('10.0.0.1'), ip('10.0.0.2'), ip('192.168.9.9')]);
    const allocator = new Allocator([subnet], { offerTtlMs: 5000, declineQuarantineMs: 1, reuseGraceMs: 0, authoritative: true, offersMax: 10 });
    const fsm = new Fsm();
    const first = allocator.onDiscover(req(macOf(1), 'discover'), subnet, fsm, 0);
    t.same(first.kind === 'offer' ? formatIpv4(first.ip) : first.kind, '10.0.0.6', 'the one pool address no one else uses is offered');
    t.equal(allocator.onDiscover(req(macOf(2), 'discover'), subnet, fsm, 0).kind, 'silent', 'then the pool is dry: the site addresses do not count as free');
    for (const taken of ['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.4', '10.0.0.5']) {
      const asked = allocator.onDiscover(req(macOf(3), 'discover', { requestedIp: ip(taken) }), subnet, fsm, 0);
      t.not(asked.kind === 'offer' ? formatIpv4(asked.ip) : asked.kind, taken, `a DISCOVER asking for ${taken} does not get it`);
      const selecting = allocator.onRequest(req(macOf(3), 'request', { requestedIp: ip(taken), serverId: SERVER }), subnet, [SERVER], fsm, 0);
      t.equal(selecting.kind, 'nak', `a REQUEST for ${taken} is NAKed`);
    }
    // A client that was bound to the VIP before (an older config, or a lease granted before this check) is moved off it at its renewal.
    fsm.apply(1, { at: 0, command: { type: 'lease.grant', ip: ip('10.0.0.1'), mac: macOf(4), subnet: subnet.id, leaseMs: LEASE_MS } });
    t.equal(allocator.onRequest(req(macOf(4), 'request', { ciaddr: ip('10.0.0.1') }), subnet, [SERVER], fsm, 1000).kind, 'nak', 'its renewal of the VIP is NAKed');
    t.same(poolUse([subnet], fsm.leases(), 1000)[0]!.pools[0], { range: '10.0.0.1-10.0.0.6', used: 0, total: 1 }, 'the pool counts only the address it can give');
    // The time server that takes its own address by a reservation still gets it; a reservation of the VIP never does.
    const reserved = poolSubnet({
      subnet: parseCidr('10.0.0.0/24')!, pools: [parseIpv4Range('10.0.0.10-10.0.0.20')!], leaseTime: LEASE_MS, ntp: [ip('10.0.0.5')],
      reservations: [{ mac: macOf(5), ip: ip('10.0.0.5') }, { mac: macOf(6), ip: ip('10.0.0.1') }],
    }, [ip('10.0.0.1')]);
    const withReservations = new Allocator([reserved], { offerTtlMs: 5000, declineQuarantineMs: 1, reuseGraceMs: 0, authoritative: true, offersMax: 10 });
    const ntp = withReservations.onDiscover(req(macOf(5), 'discover'), reserved, new Fsm(), 0);
    t.equal(ntp.kind === 'offer' ? formatIpv4(ntp.ip) : ntp.kind, '10.0.0.5', 'the NTP server\'s reservation is honoured');
    t.equal(withReservations.onDiscover(req(macOf(6), 'discover'), reserved, new Fsm(), 0).kind, 'silent', 'a reservation of the VIP is not');
    t.end();
  });
  t.test('one MAC behind two relays: each machine keeps its own subnet\'s binding, renews it, and INIT-REBOOT finds it', (t) => {
    const a = poolSubnet({ subnet: parseCidr('10.0.0.0/24')!, pools: [parseIpv4Range('10.0.0.10-10.0.0.20')!], reservations: [], relays: [ip('172.16.0.1')], leaseTime: LEASE_MS });
    const b = poolSubnet({ subnet: parseCidr('10.1.0.0/24')!, pools: [parseIpv4Range('10.1.0.10-10.1.0.20')!], reservations: [], relays: [ip('172.16.0.2')], leaseTime: LEASE_MS });
    const allocator = new Allocator([a, b], { offerTtlMs: 5000, declineQuarantineMs: 1, reuseGraceMs: 0, authoritative: true, offersMax: 10 });
    const fsm = new Fsm();
    let index = 0;
    const take = (d: Decision, at: number): string => {
      if (d.kind !== 'ack') return d.kind;
      fsm.apply(++index, { at, command: d.propose });
      allocator.settle(`mac:${macOf(9)}`);
      return formatIpv4(d.ip);
    };
    const viaA = { giaddr: ip('172.16.0.1') }, viaB = { giaddr: ip('172.16.0.2') };
    t.equal(take(allocator.onRequest(req(macOf(9), 'request', { ...viaA, requestedIp: ip('10.0.0.10'), serverId: SERVER }), a, [SERVER], fsm, 0), 0), '10.0.0.10');
    t.equal(take(allocator.onRequest(req(macOf(9), 'request', { ...viaB, requestedIp: ip('10.1.0.10'), serverId: SERVER }), b, [SERVER], fsm, 100), 100), '10.1.0.10');
    t.equal(fsm.lease(ip('10.0.0.10'))?.state, 'bound', 'the first machine\'s binding stays');
    const other = allocator.onDiscover(req(macOf(7), 'discover', { ...viaA, requestedIp: ip('10.0.0.10') }), a, fsm, 200);
    t.not(other.kind === 'offer' ? formatIpv4(other.ip) : other.kind, '10.0.0.10', 'no third client is offered it');
    t.equal(take(allocator.onRequest(req(macOf(9), 'request', { ...viaA, requestedIp: ip('10.0.0.10') }), a, [SERVER], fsm, 300), 300), '10.0.0.10', 'INIT-REBOOT of the first machine is ACKed');
    t.equal(take(allocator.onRequest(req(macOf(9), 'request', { ...viaB, ciaddr: ip('10.1.0.10') }), b, [SERVER], fsm, 400), 400), '10.1.0.10', 'the second renews its own');
    t.end();
  });
  t.test('host names become DNS labels', (t) => {
    t.equal(sanitizeHostname('My_Laptop.local'), 'my-laptop');
    t.equal(sanitizeHostname('--'), undefined);
    t.equal(sanitizeHostname('x'.repeat(80))?.length, 63);
    t.end();
  });
  t.end();
});

t.test('the state machine refuses a grant over another client\'s live lease', (t) => {
  const { fsm, commit } = setup();
  commit({ type: 'lease.grant', ip: ip('10.0.0.10'), mac: macOf(1), clientId: '01aa', subnet: '10.0.0.0/24', leaseMs: LEASE_MS }, 0);
  commit({ type: 'lease.grant', ip: ip('10.0.0.10'), mac: macOf(2), subnet: '10.0.0.0/24', leaseMs: LEASE_MS }, 10);
  t.equal(fsm.lease(ip('10.0.0.10'))!.mac, macOf(1));
  t.equal(fsm.leaseByClientId('01aa')?.ip, ip('10.0.0.10'));
  commit({ type: 'lease.grant', ip: ip('10.0.0.10'), mac: macOf(2), subnet: '10.0.0.0/24', leaseMs: LEASE_MS }, LEASE_MS);
  t.equal(fsm.lease(ip('10.0.0.10'))!.mac, macOf(2), 'allowed once the first lease ended');
  t.end();
});
