// Proves lease caching (dhcp.cacheThreshold / cacheMaxAge, Kea's cache-threshold): the pure rule
// (allocator.ts reusableLease) never states a lease time past the committed expiry and never answers
// from the cache when the grant would change anything the lease records (properties, fast-check);
// T1/T2 keep their share of what is left (responder.ts remainingLease); and the handler ACKs a
// repeated REQUEST from the committed lease without a log entry only when the rule, a current
// state and no command in flight on the address all allow it.
import t from 'tap';
import fc from 'fast-check';
import { Fsm, type Lease } from '../../cluster/fsm.js';
import { MemoryStateLog, type StateLog } from '../../cluster/state-log.js';
import type { Command } from '../../cluster/commands.js';
import type { AckRecord } from '../../cluster/ack-audit.js';
import { ManualClock } from '../../test/support/manual-clock.js';
import { seedFromEnv } from '../../test/support/seeded.js';
import { silentLogger } from '../../lib/log.js';
import { formatIpv4, parseIpv4 } from '../../lib/ipv4.js';
import { parseConfig } from '../../config/index.js';
import { reusableLease, type LeaseCacheSettings, type LeaseGrant } from './allocator.js';
import { remainingLease, type SubnetReplyOptions } from './responder.js';
import { DhcpHandler, type Reply } from './server.js';
import { decodeDhcp, encodeDhcp, emptyMessage, BootOp, type DhcpMessage } from './wire.js';
import { DhcpOption, textBytes, u32Value } from './options.js';

const grantOf = (lease: Lease): LeaseGrant => ({
  type: 'lease.grant', ip: lease.ip, mac: lease.mac, subnet: lease.subnet, leaseMs: lease.expiresAt - lease.grantedAt,
  ...(lease.clientId === undefined ? {} : { clientId: lease.clientId }),
  ...(lease.hostname === undefined ? {} : { hostname: lease.hostname }),
});

const leaseArb = fc.record({
  ip: fc.integer({ min: 1, max: 2 ** 32 - 1 }),
  mac: fc.constantFrom('02:00:00:00:00:01', '02:00:00:00:00:02'),
  clientId: fc.option(fc.constantFrom('01aa', '01bb'), { nil: undefined }),
  hostname: fc.option(fc.constantFrom('node1', 'node2'), { nil: undefined }),
  subnet: fc.constantFrom('10.0.0.0/24', '10.1.0.0/24'),
  state: fc.constantFrom<Lease['state']>('bound', 'bound', 'bound', 'released', 'expired', 'declined'),
  grantedAt: fc.integer({ min: 0, max: 10 ** 12 }),
  leaseMs: fc.integer({ min: 1000, max: 7 * 86_400_000 }),
}).map((l): Lease => {
  const lease: Lease = { ip: l.ip, mac: l.mac, subnet: l.subnet, state: l.state, grantedAt: l.grantedAt, expiresAt: l.grantedAt + l.leaseMs, changedAt: l.grantedAt };
  if (l.clientId !== undefined) lease.clientId = l.clientId;
  if (l.hostname !== undefined) lease.hostname = l.hostname;
  return lease;
});

/** One change a REQUEST can bring that the lease does not record. */
const changeArb = fc.constantFrom('none', 'ip', 'mac', 'clientId', 'clientId-dropped', 'hostname', 'hostname-dropped', 'subnet', 'leaseMs');

function changed(grant: LeaseGrant, change: string): LeaseGrant {
  const g: LeaseGrant = { ...grant };
  switch (change) {
    case 'ip': g.ip = (g.ip + 1) >>> 0; break;
    case 'mac': g.mac = g.mac === '02:00:00:00:00:01' ? '02:00:00:00:00:09' : '02:00:00:00:00:01'; break;
    case 'clientId': g.clientId = `${g.clientId ?? ''}ff`; break;
    case 'clientId-dropped': if (g.clientId === undefined) g.clientId = '01cc'; else delete g.clientId; break;
    case 'hostname': g.hostname = `${g.hostname ?? 'x'}-new`; break;
    case 'hostname-dropped': if (g.hostname === undefined) g.hostname = 'added'; else delete g.hostname; break;
    case 'subnet': g.subnet = `${g.subnet}x`; break;
    case 'leaseMs': g.leaseMs += 1000; break;
  }
  return g;
}

const settingsArb = fc.record({
  threshold: fc.option(fc.oneof(fc.double({ min: 0, max: 1.5, noNaN: true }), fc.constantFrom(0, 0.25, 0.5, 0.999)), { nil: undefined }),
  maxAgeMs: fc.option(fc.integer({ min: 0, max: 86_400_000 }), { nil: undefined }),
});

t.test('a cached ACK never states a lease time past the committed expiry, and is never given when anything changes', (t) => {
  const seed = seedFromEnv(14);
  let cached = 0;
  fc.assert(fc.property(leaseArb, changeArb, settingsArb, fc.double({ min: -0.01, max: 1.2, noNaN: true }), (lease, change, settings: LeaseCacheSettings, ageShare) => {
    const nowMs = lease.grantedAt + Math.floor(ageShare * (lease.expiresAt - lease.grantedAt));
    const grant = changed(grantOf(lease), change);
    const reuse = reusableLease(lease, grant, settings, nowMs);
    if (reuse === null) return;
    cached++;
    const ageMs = nowMs - lease.grantedAt;
    const lifetimeMs = lease.expiresAt - lease.grantedAt;
    t.equal(change, 'none', 'only a grant identical to the lease is cached');
    t.equal(lease.state, 'bound', 'only a bound lease');
    t.equal(nowMs + reuse.remainingMs, lease.expiresAt, 'the stated lease ends exactly at the committed expiry');
    t.ok(reuse.remainingMs >= 1000, 'at least one whole second left to state');
    t.ok(ageMs >= 0, 'the age is measured forward');
    t.ok(settings.threshold !== undefined || settings.maxAgeMs !== undefined, 'caching is on');
    if (settings.threshold !== undefined) t.ok(settings.threshold > 0 && settings.threshold < 1 && ageMs < settings.threshold * lifetimeMs, 'younger than threshold x lease time');
    if (settings.maxAgeMs !== undefined) t.ok(ageMs < settings.maxAgeMs, 'younger than the max age');
  }), { seed, numRuns: 3000 });
  t.ok(cached > 50, `the property saw cached grants too (${cached})`);
  t.end();
});

t.test('the rule case by case: Kea\'s example (2000 s, 0.25: reusable below 500 s of age), max age, 0 is off, the last second', async (t) => {
  const lease: Lease = { ip: 1, mac: '02:00:00:00:00:01', subnet: 's', state: 'bound', grantedAt: 1_000_000, expiresAt: 1_000_000 + 2_000_000, changedAt: 1_000_000 };
  const g = grantOf(lease);
  t.same(reusableLease(lease, g, { threshold: 0.25 }, 1_000_000 + 499_000), { remainingMs: 1_501_000 });
  t.equal(reusableLease(lease, g, { threshold: 0.25 }, 1_000_000 + 500_000), null, 'at the threshold: through the log');
  t.equal(reusableLease(lease, g, {}, 1_000_000 + 1000), null, 'neither set: off');
  t.equal(reusableLease(lease, g, { threshold: 0 }, 1_000_000 + 1000), null, 'threshold 0: off');
  t.equal(reusableLease(lease, g, { threshold: 0.25, maxAgeMs: 0 }, 1_000_000 + 1000), null, 'max age 0: off');
  t.same(reusableLease(lease, g, { maxAgeMs: 600_000 }, 1_000_000 + 599_000), { remainingMs: 1_401_000 }, 'max age alone turns it on');
  t.equal(reusableLease(lease, g, { threshold: 0.9, maxAgeMs: 600_000 }, 1_000_000 + 600_000), null, 'both set: both apply');
  t.equal(reusableLease(lease, g, { threshold: 0.9999 }, 1_000_000 + 1_999_500), null, 'under a second left: through the log');
  t.equal(reusableLease(lease, g, { threshold: 0.25 }, 1_000_000 - 1), null, 'a clock behind the grant: through the log');
  t.equal(reusableLease(undefined, g, { threshold: 0.25 }, 1_000_000), null, 'no lease');
});

t.test('T1 and T2 keep their share of the lease time left: T1 < T2 < lease time <= what is left', (t) => {
  const seed = seedFromEnv(15);
  fc.assert(fc.property(fc.integer({ min: 8_000, max: 7 * 86_400_000 }), fc.double({ min: 0.05, max: 0.45, noNaN: true }), fc.double({ min: 0.55, max: 0.95, noNaN: true }), fc.double({ min: 0.001, max: 1, noNaN: true }),
    (leaseMs, t1, t2, left) => {
      const subnet: SubnetReplyOptions = { subnetId: 's', options: new Map(), leaseMs, renewMs: Math.floor(leaseMs * t1), rebindMs: Math.floor(leaseMs * t2) };
      const remainingMs = Math.max(1000, Math.floor(leaseMs * left));
      const r = remainingLease(subnet, remainingMs);
      t.ok(r.leaseMs <= remainingMs && r.leaseMs <= leaseMs, 'never more than what is left');
      t.ok(r.renewMs <= r.rebindMs && r.rebindMs < r.leaseMs, 'T1 <= T2 < lease time');
      t.ok(Math.abs(r.renewMs / r.leaseMs - subnet.renewMs / leaseMs) < 0.01 || r.leaseMs < 100_000, 'T1 keeps its share');
    }), { seed, numRuns: 500 });
  t.end();
});

// ---- the handler --------------------------------------------------------------------------------

const CONFIG = (extra: string, leaseTime = '1h'): string => `
node: { name: t1, address: 10.50.0.1 }
dhcp:
  rateLimit: { perMac: 1000 }
${extra}  subnets:
    - subnet: 10.50.0.0/24
      pools: [10.50.0.100-10.50.0.120]
      leaseTime: ${leaseTime}
      reservations:
        - { mac: "52:54:00:00:00:99", ip: 10.50.0.9, hostname: node09 }
`;

interface Opts { type: number; mac?: string; ciaddr?: string; requested?: string; serverId?: string; hostname?: string; clientId?: string }

function packet(o: Opts): Uint8Array {
  const m = emptyMessage();
  m.op = BootOp.Request;
  m.xid = 0x77;
  m.chaddr.set((o.mac ?? '52:54:00:00:00:01').split(':').map((h) => parseInt(h, 16)));
  if (o.ciaddr) m.ciaddr = parseIpv4(o.ciaddr)!;
  m.options.set(DhcpOption.MessageType, Uint8Array.of(o.type));
  if (o.requested) m.options.set(DhcpOption.RequestedIpAddress, Uint8Array.from(o.requested.split('.').map(Number)));
  if (o.serverId) m.options.set(DhcpOption.ServerIdentifier, Uint8Array.from(o.serverId.split('.').map(Number)));
  if (o.hostname) m.options.set(DhcpOption.HostName, textBytes(o.hostname));
  if (o.clientId) m.options.set(DhcpOption.ClientIdentifier, Uint8Array.from(Buffer.from(o.clientId, 'hex')));
  return encodeDhcp(m, 548);
}

function one(replies: Reply[]): DhcpMessage {
  if (replies.length !== 1) throw new Error(`expected one reply, got ${replies.length}`);
  const d = decodeDhcp(replies[0]!.bytes);
  if (!d.ok) throw new Error(d.error.code);
  return d.value;
}
const kind = (m: DhcpMessage): number => m.options.get(DhcpOption.MessageType)![0]!;
const times = (m: DhcpMessage): number[] => [51, 58, 59].map((c) => u32Value(m.options.get(c)!)!);

function setup(extra = '  cacheThreshold: 0.25\n', state?: StateLog, leaseTime = '1h'): { handler: DhcpHandler; state: StateLog; acks: AckRecord[]; clock: ManualClock } {
  const config = parseConfig(CONFIG(extra, leaseTime));
  const clock = new ManualClock(0, 0);
  const log = state ?? new MemoryStateLog(new Fsm(), clock);
  const acks: AckRecord[] = [];
  return { handler: new DhcpHandler({ config: config.dhcp!, state: log, nodeAddress: config.node.address, log: silentLogger, onAck: (a) => acks.push(a) }), state: log, acks, clock };
}

async function bind(handler: DhcpHandler, now: number, o: Partial<Opts> = {}): Promise<string> {
  const offer = one(await handler.handle(packet({ ...o, type: 1 }), 'p', now));
  const ack = one(await handler.handle(packet({ ...o, type: 3, requested: formatIpv4(offer.yiaddr), serverId: '10.50.0.1' }), 'p', now));
  return formatIpv4(ack.yiaddr);
}

t.test('a renewal early in the lease is ACKed from the committed lease: the time left, T1/T2 scaled, nothing written', async (t) => {
  const { handler, state, acks, clock } = setup();
  const ip = await bind(handler, 0);
  const index = state.fsm.appliedIndex;
  const renew = one(await handler.handle(packet({ type: 3, ciaddr: ip }), 'p', 60_000));
  t.equal(kind(renew), 5, 'ACK');
  t.equal(formatIpv4(renew.yiaddr), ip);
  t.same(times(renew), [3540, 1770, 3097], 'lease time left (3600 - 60), T1 and T2 at 0.5 and 0.875 of it');
  t.equal(state.fsm.appliedIndex, index, 'no log entry');
  t.equal(state.fsm.lease(parseIpv4(ip)!)!.expiresAt, 3_600_000, 'the committed expiry is unchanged, and it is what the client was told');
  t.equal(handler.counters.get('lease.reused'), 1, 'counted');
  t.equal(handler.counters.get('sent.ack'), 2, 'an ACK like any other');
  t.equal(handler.allocator.offerFor('mac:52:54:00:00:00:01'), undefined, 'no address held for the client afterwards');
  t.same(acks.map((a) => a.index), [index, index], 'the ACK audit is told the committed grant\'s index');
  // INIT-REBOOT (a client that rebooted) and a rebind (broadcast, no server id) are cached alike.
  t.equal(kind(one(await handler.handle(packet({ type: 3, requested: ip }), 'p', 120_000))), 5);
  t.equal(state.fsm.appliedIndex, index, 'INIT-REBOOT: no log entry');
  // Past 0.25 x 1 h the renewal goes through the log and extends the lease.
  clock.advance(900_000);
  const late = one(await handler.handle(packet({ type: 3, ciaddr: ip }), 'p', 900_000));
  t.same(times(late), [3600, 1800, 3150], 'a full lease from the log');
  t.ok(state.fsm.appliedIndex > index, 'written');
  t.equal(state.fsm.lease(parseIpv4(ip)!)!.expiresAt, 900_000 + 3_600_000);
  t.equal(handler.counters.get('lease.reused'), 2);
});

t.test('on by default at a quarter of the lease time (Kea 3.0\'s default); 0 in either setting turns it off', async (t) => {
  for (const [extra, cached] of [['', true], ['  cacheThreshold: 0\n', false], ['  cacheMaxAge: 0s\n', false], ['  cacheMaxAge: 10m\n', true]] as const) {
    const { handler, state } = setup(extra);
    const ip = await bind(handler, 0);
    const index = state.fsm.appliedIndex;
    // 1 s into a 1 h lease, then 16 min in: past a quarter of the lease even the default writes.
    t.same(times(one(await handler.handle(packet({ type: 3, ciaddr: ip }), 'p', 1000))), cached ? [3599, 1799, 3149] : [3600, 1800, 3150], `${JSON.stringify(extra)}: the time stated`);
    t.equal(state.fsm.appliedIndex, cached ? index : index + 1, `${JSON.stringify(extra)}: ${cached ? 'nothing written' : 'the renewal written'}`);
    t.equal(handler.counters.get('lease.reused'), cached ? 1 : 0);
    t.same(times(one(await handler.handle(packet({ type: 3, ciaddr: ip }), 'p', 16 * 60_000))), [3600, 1800, 3150], `${JSON.stringify(extra)}: past the threshold, a full lease from the log`);
  }
});

t.test('anything the grant would change goes through the log: host name, client id, a reservation\'s name, the lease time', async (t) => {
  const { handler, state } = setup();
  const ip = await bind(handler, 0, { hostname: 'alpha' });
  let index = state.fsm.appliedIndex;
  t.equal(kind(one(await handler.handle(packet({ type: 3, ciaddr: ip, hostname: 'alpha' }), 'p', 1000))), 5);
  t.equal(state.fsm.appliedIndex, index, 'same name: cached');
  t.equal(kind(one(await handler.handle(packet({ type: 3, ciaddr: ip, hostname: 'beta' }), 'p', 2000))), 5);
  t.equal(state.fsm.appliedIndex, ++index, 'a new host name: written');
  t.equal(state.fsm.lease(parseIpv4(ip)!)!.hostname, 'beta');
  t.equal(kind(one(await handler.handle(packet({ type: 3, ciaddr: ip }), 'p', 3000))), 5);
  t.equal(state.fsm.appliedIndex, ++index, 'the name dropped: written');
  t.equal(state.fsm.lease(parseIpv4(ip)!)!.hostname, undefined);
  // A client id the lease does not record: the same MAC with option 61 is a grant with a client id.
  t.equal(kind(one(await handler.handle(packet({ type: 3, ciaddr: ip, clientId: '01525400000001' }), 'p', 4000))), 5);
  t.equal(state.fsm.appliedIndex, ++index, 'a new client id: written');
  t.equal(kind(one(await handler.handle(packet({ type: 3, ciaddr: ip, clientId: '01525400000001' }), 'p', 5000))), 5);
  t.equal(state.fsm.appliedIndex, index, 'the same client id again: cached');
  // A name someone else's reservation owns: the full path would drop it from the grant, so a lease
  // holding it is not the grant's, and the name comes off through the log.
  const other = setup();
  const ip2 = await bind(other.handler, 0, { mac: '52:54:00:00:00:02' });
  // (granted before the reservation named it: straight into the log, as an older config did)
  await other.state.propose({ type: 'lease.grant', ip: parseIpv4(ip2)!, mac: '52:54:00:00:00:02', subnet: '10.50.0.0/24', leaseMs: 3_600_000, hostname: 'node09' });
  const before = other.state.fsm.appliedIndex;
  t.equal(kind(one(await other.handler.handle(packet({ type: 3, mac: '52:54:00:00:00:02', ciaddr: ip2, hostname: 'node09' }), 'p', 2000))), 5);
  t.equal(other.state.fsm.appliedIndex, before + 1, 'a reservation\'s name on another client\'s lease: written');
  t.equal(other.state.fsm.lease(parseIpv4(ip2)!)!.hostname, undefined, 'and the name is gone from the lease');
  // The lease time changed in the config: the same state served with leaseTime 2h.
  const fsm = new Fsm();
  const shared = new MemoryStateLog(fsm, new ManualClock(0, 0));
  const ip3 = await bind(setup(undefined, shared).handler, 0);
  const longer = setup(undefined, shared, '2h').handler;
  const at = fsm.appliedIndex;
  t.same(times(one(await longer.handle(packet({ type: 3, ciaddr: ip3 }), 'p', 1000))), [7200, 3600, 6300], 'a new lease time: a full lease of it');
  t.equal(fsm.appliedIndex, at + 1, 'written');
});

t.test('no cached ACK from a state that may miss entries, nor while a command on the address is in flight', async (t) => {
  const fsm = new Fsm();
  const inner = new MemoryStateLog(fsm, new ManualClock(0, 0));
  let current = true;
  let hold: Promise<void> | null = null;
  const state: StateLog = {
    fsm, isLeader: () => true, status: () => inner.status(), close: async () => undefined, stateCurrent: () => current,
    propose: async (c: Command) => { if (hold) await hold; return inner.propose(c); },
  };
  const { handler } = setup(undefined, state);
  const ip = await bind(handler, 0);
  let index = fsm.appliedIndex;
  current = false;
  t.equal(kind(one(await handler.handle(packet({ type: 3, ciaddr: ip }), 'p', 1000))), 5);
  t.equal(fsm.appliedIndex, ++index, 'a new leader that has not applied an entry of its term yet: through the log');
  current = true;
  // A release in flight (lanctl leases release goes through proposeLease too): the renewal that
  // arrives meanwhile must not be answered from the lease the release is about to end.
  let open!: () => void;
  hold = new Promise((resolve) => { open = resolve; });
  const release = handler.proposeLease({ type: 'lease.release', ip: parseIpv4(ip)!, mac: '52:54:00:00:00:01' });
  const renewal = handler.handle(packet({ type: 3, ciaddr: ip }), 'p', 2000);
  hold = null;
  open();
  await release;
  const reply = one(await renewal);
  t.equal(kind(reply), 5, 'ACKed');
  t.equal(fsm.lease(parseIpv4(ip)!)!.state, 'bound', 'by a grant written after the release: the client holds what it was told');
  t.equal(fsm.appliedIndex, index + 2, 'release and grant both written');
  t.equal(handler.counters.get('lease.reused'), 0, 'nothing cached');
  // A follower answers nothing, cached or not.
  const follower = setup(undefined, { ...state, isLeader: () => false });
  t.same(await follower.handler.handle(packet({ type: 3, ciaddr: ip }), 'p', 3000), []);
});
