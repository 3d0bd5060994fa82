// Degraded split-pool DHCP, the pure part (cluster/degraded.ts, degraded-leases.ts, the Fsm's
// `lease.merge`): the pool split, the MCLT rules one by one, the merge, and a seeded simulation of
// two LAN members with the real allocator: each alone for a while, both alone in a LAN split (with
// and without the witness on one side), then merged. Checked at every step: no address is held by
// two clients at once (as the clients themselves were told by ACKs), no lone member allocates outside
// its half or past MCLT; at the end merge conflicts are 0 and every replica holds the same state.
import t from 'tap';
import { Fsm } from './fsm.js';
import type { Command, StampedCommand } from './commands.js';
import { PoolOwnership, decideDegradedGrant, decideLeaderGrant, partnerKnowsUntil, reportSlice, degradedRefusal, handBackRefusal, handBackVerdict, mergeRecord, VIP_PROBE_FRESH_MS, parseDegradedRecord, DEGRADED_HOLD_MS, type DegradedRecord } from './degraded.js';
import { DegradedLeases } from './degraded-leases.js';
import { parseCidr, parseIpv4, parseIpv4Range, formatIpv4 } from '../lib/ipv4.js';
import { Allocator, poolSubnet, type AllocationPolicy, type PoolSubnet } from '../services/dhcp/allocator.js';
import type { ClientRequest } from '../services/dhcp/request.js';
import { randomFor, seedsToRun } from '../test/support/seeded.js';
import { commandLevel, levelRefusal } from './apply-level.js';
import type { Random } from '../lib/random.js';

const ip = (s: string): number => parseIpv4(s)!;
const MCLT = 300_000;
const LEASE_MS = 600_000;

t.test('pools split in two halves, the first to the member whose name sorts first', (t) => {
  const own = new PoolOwnership([{ subnet: 'n', ranges: [parseIpv4Range('10.0.0.10-10.0.0.14')!, parseIpv4Range('10.0.0.20-10.0.0.23')!] }], ['lan-b', 'lan-a']);
  t.same(own.members, ['lan-a', 'lan-b']);
  t.equal(own.ownerOf(ip('10.0.0.10')), 'lan-a');
  t.equal(own.ownerOf(ip('10.0.0.14')), 'lan-a');
  t.equal(own.ownerOf(ip('10.0.0.20')), 'lan-b', '9 addresses: 5 to lan-a, 4 to lan-b across the ranges');
  t.equal(own.ownerOf(ip('10.0.0.23')), 'lan-b');
  t.equal(own.ownerOf(ip('10.0.0.5')), undefined, 'outside every pool');
  t.equal(own.partnerOf('lan-a'), 'lan-b');
  t.throws(() => new PoolOwnership([], ['lan-a']), /two LAN members/);
  t.end();
});

t.test('the MCLT rules for a member alone', (t) => {
  const own = new PoolOwnership([{ subnet: 'n', ranges: [parseIpv4Range('10.0.0.10-10.0.0.19')!] }], ['lan-a', 'lan-b']);
  const now = 10_000_000;
  const mine = ip('10.0.0.11'); const theirs = ip('10.0.0.17');
  const lease = (a: number, mac: string, expiresAt: number, state: 'bound' | 'released' | 'declined' = 'bound') => ({ ip: a, mac, subnet: 'n', state, grantedAt: expiresAt - LEASE_MS, expiresAt, changedAt: expiresAt - LEASE_MS });
  t.same(decideDegradedGrant({ ip: mine, mac: 'm1', leaseMs: LEASE_MS }, undefined, undefined, 'lan-a', own, MCLT, now), { ok: true, leaseMs: MCLT }, 'a new binding from its own half: at most MCLT');
  t.match(decideDegradedGrant({ ip: theirs, mac: 'm1', leaseMs: LEASE_MS }, undefined, undefined, 'lan-a', own, MCLT, now), { ok: false, reason: /owned by lan-b/ }, 'never from the partner\'s half');
  t.same(decideDegradedGrant({ ip: theirs, mac: 'm1', leaseMs: LEASE_MS }, lease(theirs, 'm1', now + 1000), undefined, 'lan-a', own, MCLT, now), { ok: true, leaseMs: 1000 + MCLT }, 'a renewal in the partner\'s half: to committed expiry + MCLT');
  t.match(decideDegradedGrant({ ip: theirs, mac: 'm1', leaseMs: LEASE_MS }, lease(theirs, 'm1', now - MCLT), undefined, 'lan-a', own, MCLT, now), { ok: false }, 'past committed expiry + MCLT: nothing');
  t.match(decideDegradedGrant({ ip: mine, mac: 'm2', leaseMs: LEASE_MS }, lease(mine, 'm1', now - MCLT + 1000), undefined, 'lan-a', own, MCLT, now), { ok: false, reason: /MCLT/ }, 'another client\'s address before its expiry + MCLT');
  t.same(decideDegradedGrant({ ip: mine, mac: 'm2', leaseMs: LEASE_MS }, lease(mine, 'm1', now - MCLT), undefined, 'lan-a', own, MCLT, now), { ok: true, leaseMs: MCLT }, '... and after it');
  t.match(decideDegradedGrant({ ip: mine, mac: 'm2', leaseMs: LEASE_MS }, lease(mine, 'm1', now - MCLT + 1000, 'declined'), undefined, 'lan-a', own, MCLT, now), { ok: false }, 'a declined address stays out MCLT past its quarantine');
  t.match(decideDegradedGrant({ ip: mine, mac: 'm2', leaseMs: LEASE_MS }, undefined, lease(mine, 'm3', now + 5000), 'lan-a', own, MCLT, now), { ok: false, reason: /another client/ }, 'its own degraded binding of another client');
  t.same(decideDegradedGrant({ ip: ip('10.0.0.5'), mac: 'm9', leaseMs: LEASE_MS }, undefined, undefined, 'lan-a', own, MCLT, now), { ok: true, leaseMs: MCLT }, 'an address in no pool (a reservation): the client\'s own, at most MCLT');
  t.end();
});

t.test('the merge: later expiry per (ip, mac), releases only when newer, overlaps are conflicts', (t) => {
  const base = { ip: 1, subnet: 'n', grantedAt: 100, changedAt: 100 };
  const rec = (mac: string, state: DegradedRecord['state'], at: number, expiresAt: number): DegradedRecord => ({ ip: 1, mac, subnet: 'n', state, at, expiresAt });
  t.match(mergeRecord(undefined, rec('a', 'bound', 200, 900), 5, 'lan-a'), { kind: 'set', lease: { mac: 'a', state: 'bound', expiresAt: 900, index: 5, ackedBy: 'lan-a' } });
  t.same(mergeRecord({ ...base, mac: 'a', state: 'bound', expiresAt: 1000 }, rec('a', 'bound', 200, 900), 5, 'x'), { kind: 'keep' }, 'the state already runs longer');
  t.match(mergeRecord({ ...base, mac: 'a', state: 'bound', expiresAt: 800 }, rec('a', 'bound', 200, 900), 5, 'x'), { kind: 'set', lease: { expiresAt: 900, grantedAt: 100 } });
  t.match(mergeRecord({ ...base, mac: 'b', state: 'bound', expiresAt: 800 }, rec('a', 'bound', 200, 900), 5, 'x'), { kind: 'conflict', other: 'b' });
  t.match(mergeRecord({ ...base, mac: 'b', state: 'bound', expiresAt: 150 }, rec('a', 'bound', 200, 900), 5, 'x'), { kind: 'set', lease: { mac: 'a' } }, 'after the other binding ended');
  t.same(mergeRecord({ ...base, mac: 'a', state: 'bound', expiresAt: 800, changedAt: 300 }, rec('a', 'released', 250, 250), 5, 'x'), { kind: 'keep' }, 'a release older than the last change is history');
  t.match(mergeRecord({ ...base, mac: 'a', state: 'bound', expiresAt: 800 }, rec('a', 'released', 250, 250), 5, 'x'), { kind: 'set', lease: { state: 'released' } }, 'a newer release');
  t.end();
});

t.test('journal records from the wire are checked field by field', (t) => {
  t.same(parseDegradedRecord({ ip: 5, mac: 'm', subnet: 'n', state: 'bound', at: 1, expiresAt: 2, hostname: 'h' }), { ip: 5, mac: 'm', subnet: 'n', state: 'bound', at: 1, expiresAt: 2, hostname: 'h' });
  t.equal(parseDegradedRecord({ ip: -1, mac: 'm', subnet: 'n', state: 'bound', at: 1, expiresAt: 2 }), null);
  t.equal(parseDegradedRecord({ ip: 5, mac: 'm', subnet: 'n', state: 'gone', at: 1, expiresAt: 2 }), null);
  t.equal(parseDegradedRecord('x'), null);
  t.end();
});

t.test('entry conditions (HA.md 2.5, DEGRADED-SOLO)', (t) => {
  const ok = { noQuorumMs: 6000, vipAnswered: false, partnerHeard: false, stateValid: true, partnerConfigDiffers: false };
  t.equal(degradedRefusal(ok), null);
  t.match(degradedRefusal({ ...ok, noQuorumMs: 4000 }), /under 5000 ms/);
  t.match(degradedRefusal({ ...ok, vipAnswered: true }), /answers ARP for the VIP/);
  t.match(degradedRefusal({ ...ok, vipAnswered: null }), /not probed/);
  t.match(degradedRefusal({ ...ok, partnerHeard: true }), /partner is still heard/);
  t.match(degradedRefusal({ ...ok, stateValid: false }), /rule 6/);
  t.match(degradedRefusal({ ...ok, partnerConfigDiffers: true }), /other pool halves/);
  t.equal(degradedRefusal({ ...ok, partnerArp: '10.0.0.3', vipAnswered: false }), 'partner 10.0.0.3 answers ARP: a cluster-link problem, not a dead partner', 'the partner\'s host answers ARP: not entered');
  t.equal(degradedRefusal({ ...ok, partnerArp: null }), null, 'silent partner address: entered');
  t.end();
});

t.test('the hand-back: a leader adds the VIP only once its partner may no longer hold it degraded', (t) => {
  const at = (nowMs: number, partner: Parameters<typeof handBackRefusal>[0]['partner']): string | null =>
    handBackRefusal({ nowMs, startedMs: 0, partner, reportEveryMs: 1000, holdMs: DEGRADED_HOLD_MS });
  const silentMs = 1000 + DEGRADED_HOLD_MS + 500;
  const report = (receivedMs: number, active: boolean, held: boolean, noQuorumMs: number) => ({ receivedMs, degraded: { active, held, noQuorumMs } });
  t.match(at(100, null), /not reported since this member started/, 'never heard since start: it may hold the VIP');
  t.equal(at(silentMs, null), null, 'silent since start past a report interval and its guard deadline: it holds nothing');
  t.equal(at(100_000, { receivedMs: 99_000, degraded: null }), null, 'a report without degraded mode (off there): never held degraded');
  t.equal(at(10_000, report(9_000, false, false, 0)), null, 'a partner with a quorum, not degraded: no wait (a failover is not slowed)');
  t.match(at(10_000, report(9_900, true, true, 7000)), /holds the VIP degraded/, 'its latest report says it holds it');
  t.match(at(9_900 + silentMs - 1, report(9_900, true, true, 7000)), /holds the VIP degraded/, 'until it has been silent past its next report and its guard');
  t.equal(at(9_900 + silentMs, report(9_900, true, true, 7000)), null, 'then its guard deleted it');
  t.match(at(10_000, report(9_900, true, false, 7000)), /in degraded mode/, 'degraded, not holding yet: it may take it any moment');
  t.match(at(10_000, report(9_900, false, false, 4500)), /without a quorum for 4.5 s/, 'no quorum for 4.5 s: it may go degraded before its next report');
  t.equal(at(10_000, report(9_900, false, false, 500)), null, 'no quorum for 0.5 s: it cannot go degraded for seconds');
  t.match(at(10_000, report(9_900, false, true, 0)), /holds the VIP degraded/, 'left degraded mode, its ip addr del not returned yet: still held');
  const arp = (nowMs: number, partnerArp: 'off-lan' | 'answers' | 'probing', partner: Parameters<typeof handBackRefusal>[0]['partner'] = null): string | null =>
    handBackRefusal({ nowMs, startedMs: 0, partner, reportEveryMs: 1000, holdMs: DEGRADED_HOLD_MS, partnerArp });
  t.equal(arp(1300, 'off-lan'), null, 'restarted, the partner never heard, its address and the VIP silent to ARP: no wait');
  t.match(arp(1300, 'answers'), /its LAN address answers ARP: its machine is up/, 'its machine answers: the wait, and why');
  t.match(arp(300, 'probing'), /being ARP-probed/, 'while the probe runs: the wait, and what ends it');
  t.match(arp(1300, 'off-lan', report(1200, true, true, 7000)), /holds the VIP degraded/, 'a report came after all: the report decides');
  t.end();
});

t.test('a partner whose machine answers ARP but whose cluster and DNS ports both reset: its lanha is down, not a cut link', (t) => {
  const facts = { noQuorumMs: 6000, vipAnswered: false, partnerHeard: false, stateValid: true, partnerConfigDiffers: false, partnerArp: '10.0.0.3' };
  t.match(degradedRefusal(facts), /answers ARP: a cluster-link problem/, 'its address answers, nothing else known: stays out (as before)');
  t.match(degradedRefusal({ ...facts, partnerPorts: 'open' }), /cluster-link problem/, 'a port accepts: it runs, the link failed: stays out');
  t.match(degradedRefusal({ ...facts, partnerPorts: 'silent' }), /cluster-link problem/, 'no answer at all: a cut link: stays out');
  t.equal(degradedRefusal({ ...facts, partnerPorts: 'refused' }), null, 'both reset: nothing of lanha runs there: degraded');
  t.match(degradedRefusal({ ...facts, partnerPorts: 'refused', vipAnswered: true }), /answers ARP for the VIP/, 'the VIP answered all the same: stays out');
  const back = (partnerArp: 'lanha-down' | 'answers') => handBackRefusal({ nowMs: 1300, startedMs: 0, partner: null, reportEveryMs: 1000, holdMs: DEGRADED_HOLD_MS, partnerArp });
  t.equal(back('lanha-down'), null, 'a leader started with the partner\'s lanha down (the VIP silent too): no wait for its report or guard');
  t.match(back('answers'), /its machine is up/, 'its machine answers, its lanha may run: the wait');
  t.end();
});

t.test('the hand-back on a one-way cluster link: a partner whose Raft messages arrive runs, whatever its silence on reports', (t) => {
  // vip-sim degraded seeds 491 and 1282: the leader, never hearing the degraded partner's reports
  // (they ride the connection the leader cannot dial), took 2.5 s of silence since its start for a
  // partner paused or gone and added the VIP; the partner was up and holding (its Raft messages came
  // in), then paused, and its guard kept the VIP 0.6-0.7 s more: two holders.
  const silentMs = 1000 + DEGRADED_HOLD_MS + 500;
  const told = 1000 + DEGRADED_HOLD_MS + 500;
  const at = (nowMs: number, partnerRaftMs: number | null, leadReportMs: number | null, partner: Parameters<typeof handBackRefusal>[0]['partner'] = null): string | null =>
    handBackRefusal({ nowMs, startedMs: 0, partner, reportEveryMs: 1000, holdMs: DEGRADED_HOLD_MS, partnerArp: 'answers', partnerRaftMs, leadReportMs });
  t.equal(at(silentMs, null, null), null, 'nothing heard of it since the start: silent, its guard ran out (as before)');
  t.match(at(silentMs, 2000, null), /its Raft messages arrive, its reports do not \(a one-way cluster link\)/, 'a Raft message 2 s in: it ran then, and may have renewed its guard');
  t.match(at(2000 + silentMs - 1, 2000, null), /one-way/, 'until it has been silent past its guard deadline from that message');
  t.equal(at(2000 + silentMs, 2000, null), null, 'then it is silent (paused or gone), its guard ran out');
  t.match(at(3000 + told - 1, 9000, 3000), /one-way/, 'this leader\'s report saying it leads went out at 3 s: not yet');
  t.equal(at(3000 + told, 9000, 3000), null, 'past the transit and its guard deadline after that report: it let go on it, or was paused and its guard deleted the VIP');
  const held = { receivedMs: 1000, degraded: { active: true, held: true, noQuorumMs: 7000 } };
  t.match(at(1000 + silentMs, 2000, null, held), /holds the VIP degraded.*one-way/, 'a partner that reported once, then only its Raft messages came: counted from the later');
  t.equal(at(2000 + silentMs, 2000, null, held), null, 'and silent past that');
  t.equal(handBackRefusal({ nowMs: 1300, startedMs: 0, partner: null, reportEveryMs: 1000, holdMs: DEGRADED_HOLD_MS, partnerArp: 'off-lan', partnerRaftMs: 1000 }), null,
    'its address and the VIP silent to ARP: nothing on this LAN to wait for');
  t.end();
});

t.test('the hand-back on silence alone asks for an ARP probe of the VIP: a partner cut off both ways may hold it', (t) => {
  // vip-sim degraded seeds with the cluster link cut both ways (`twoWayCut`): no report and no Raft
  // message of the degraded partner, so 2.5 s of silence since the leader's start read as a partner
  // paused or gone; it ran and held the VIP, and its next probe (about 1.4 s) found the leader's.
  const silentMs = 1000 + DEGRADED_HOLD_MS + 500;
  const at = (nowMs: number, vipProbe: { endedMs: number; answered: boolean } | null, partner: Parameters<typeof handBackRefusal>[0]['partner'] = null) =>
    handBackVerdict({ nowMs, startedMs: 0, partner, reportEveryMs: 1000, holdMs: DEGRADED_HOLD_MS, partnerArp: 'answers', vipProbe });
  t.same(at(silentMs - 1400, null).probe, false, 'the wait on its report or guard, no probe yet');
  t.match(at(silentMs - 1300, null), { refusal: /not reported since this member started/, probe: true }, 'the probe starts 1.3 s before the wait ends');
  t.match(at(silentMs, null), { refusal: /ARP-probing the VIP before adding it/, probe: true }, 'the wait is over, no probe answer yet');
  t.match(at(silentMs, { endedMs: silentMs - 10, answered: true }), { refusal: /another MAC answers ARP for the VIP/, probe: true }, 'another MAC answers: held back, probed again');
  t.same(at(silentMs, { endedMs: silentMs - 10, answered: false }), { refusal: null, probe: false }, 'a fresh probe nobody answered: added');
  t.match(at(silentMs + VIP_PROBE_FRESH_MS + 11, { endedMs: silentMs - 10, answered: false }), { refusal: /ARP-probing/ }, 'a probe older than VIP_PROBE_FRESH_MS is not fresh');
  t.same(at(100, null, { receivedMs: 50, degraded: { active: false, held: false, noQuorumMs: 0 } }), { refusal: null, probe: false }, 'a report saying it let go: added at once, no probe');
  t.same(handBackVerdict({ nowMs: 300, startedMs: 0, partner: null, reportEveryMs: 1000, holdMs: DEGRADED_HOLD_MS, partnerArp: 'off-lan', vipProbe: null }), { refusal: null, probe: false }, 'its address and the VIP silent at start: no probe');
  t.equal(handBackRefusal({ nowMs: silentMs, startedMs: 0, partner: null, reportEveryMs: 1000, holdMs: DEGRADED_HOLD_MS }), null, 'no vipProbe in the facts: silence alone, as before');
  t.end();
});

// ---- the simulation ------------------------------------------------------------------------------

const POOL = parseIpv4Range('10.0.0.10-10.0.0.33')!; // 24 addresses, 12 a member
const CLIENTS = 36;
const macOf = (n: number): string => `02:00:00:00:01:${n.toString(16).padStart(2, '0')}`;

function request(mac: string, type: ClientRequest['type'], extra: Partial<ClientRequest> = {}): ClientRequest {
  return { type, xid: 1, mac, clientKey: `mac:${mac}`, ciaddr: 0, giaddr: 0, broadcast: false, userClasses: [], parameterRequest: [], ...extra };
}

interface Member {
  name: string;
  up: boolean;
  allocator: Allocator;
  /** This member's replica of the log: applies the committed entries it was present for. */
  replica: Fsm;
  applied: number;
  degraded: DegradedLeases | null;
  journals: number;
}

/** One seeded run; returns what a failure must print. Throws (via t) on a broken invariant. */
function simulate(t: { fail(message: string): void }, seed: number): { conflicts: number; hashes: string[]; grants: { normal: number; degraded: number } } {
  const rnd: Random = randomFor(seed);
  const subnet: PoolSubnet = poolSubnet({ subnet: parseCidr('10.0.0.0/24')!, pools: [POOL], reservations: [], leaseTime: LEASE_MS });
  const ownership = new PoolOwnership([{ subnet: subnet.id, ranges: subnet.ranges }], ['lan-a', 'lan-b']);
  const log: StampedCommand[] = [];
  const witness = { replica: new Fsm(), applied: 0, up: true };
  const mk = (name: string): Member => ({
    name, up: true, replica: new Fsm(), applied: 0, degraded: null, journals: 0,
    allocator: new Allocator([subnet], { offerTtlMs: 5000, declineQuarantineMs: 60_000, reuseGraceMs: 0, authoritative: true, offersMax: 1000 }),
  });
  const members = [mk('lan-a'), mk('lan-b')];
  const partnerOf = (m: Member): Member => (m === members[0] ? members[1]! : members[0]!);
  const policy = (m: Member, mode: 'normal' | 'degraded'): AllocationPolicy => ({
    mayAllocate: (a) => ownership.ownerOf(a) === m.name,
    prefers: (a) => ownership.ownerOf(a) === m.name,
    keeps: (lease, at) => (mode === 'degraded' ? lease.expiresAt + MCLT : partnerKnowsUntil(lease, MCLT, partnerOf(m).applied)) - at >= 1000,
    reuseAfterMs: MCLT,
  });
  let now = 50_000_000;
  /** What each client was told: the address and until when (ground truth on the wire). */
  const told = new Map<string, { ip: number; until: number; by: string }>();
  const grants = { normal: 0, degraded: 0 };
  const catchUp = (r: { replica: Fsm; applied: number }): void => {
    while (r.applied < log.length) { r.applied++; r.replica.apply(r.applied, log[r.applied - 1]!); }
  };
  const commit = (leader: Member, command: Command): void => {
    log.push({ at: now, by: leader.name, command });
    for (const r of [...members.filter((m) => m.up && m.degraded === null), ...(witness.up ? [witness] : [])]) catchUp(r);
  };
  const checkTold = (mac: string, a: number, until: number, by: string): void => {
    for (const [other, held] of told) {
      if (other !== mac && held.ip === a && held.until > now) {
        t.fail(`seed ${seed}: ${formatIpv4(a)} told to ${mac} by ${by} until ${until} while ${other} holds it until ${held.until} (told by ${held.by})`);
      }
    }
    told.set(mac, { ip: a, until, by });
  };
  /** One client's DHCP with `server` (normal leader, or degraded alone). */
  const serve = (server: Member, mac: string, mode: 'normal' | 'degraded'): void => {
    const view = mode === 'degraded' ? server.degraded!.overlay : server.replica;
    server.allocator.setPolicy(policy(server, mode));
    const held = told.get(mac);
    let decision;
    if (held !== undefined && held.until > now && rnd.float() < 0.5) {
      decision = server.allocator.onRequest(request(mac, 'request', { ciaddr: held.ip }), subnet, [1], view, now);
    } else if (held !== undefined && held.until > now && rnd.float() < 0.2) {
      const release = server.allocator.onRelease(request(mac, 'release', { ciaddr: held.ip }), view);
      if (release.kind !== 'release') return;
      if (mode === 'normal') commit(server, release.propose);
      else {
        const out = server.degraded!.decide(release.propose, now);
        if (out.kind === 'record') server.degraded!.add(out.record);
      }
      told.delete(mac);
      return;
    } else {
      const offer = server.allocator.onDiscover(request(mac, 'discover'), subnet, view, now);
      if (offer.kind !== 'offer') return;
      if (mode === 'degraded' && ownership.ownerOf(offer.ip) !== server.name && view.lease(offer.ip)?.mac !== mac) t.fail(`seed ${seed}: ${server.name} alone offered ${formatIpv4(offer.ip)} outside its half`);
      decision = server.allocator.onRequest(request(mac, 'request', { requestedIp: offer.ip, serverId: 1 }), subnet, [1], view, now);
    }
    if (decision.kind !== 'ack' || decision.propose.type !== 'lease.grant') { server.allocator.settle(`mac:${mac}`); return; }
    const grant = decision.propose;
    server.allocator.settle(`mac:${mac}`);
    if (mode === 'normal') {
      const capped = decideLeaderGrant({ ip: grant.ip, mac, leaseMs: grant.leaseMs }, server.replica.lease(grant.ip), server.name, ownership, MCLT, partnerOf(server).applied, now);
      if (!capped.ok) return;
      commit(server, { ...grant, leaseMs: capped.leaseMs });
      const lease = server.replica.lease(grant.ip);
      if (lease?.mac !== mac || lease.state !== 'bound') return; // refused by the state machine (the client gets a NAK)
      grants.normal++;
      checkTold(mac, grant.ip, lease.expiresAt, server.name);
    } else {
      const out = server.degraded!.decide(grant, now);
      if (out.kind !== 'record') return;
      const committed = server.replica.lease(grant.ip);
      if (out.record.expiresAt - now > MCLT && !(committed?.mac === mac && out.record.expiresAt <= committed.expiresAt + MCLT)) t.fail(`seed ${seed}: degraded grant of ${formatIpv4(grant.ip)} past MCLT`);
      server.degraded!.add(out.record);
      grants.degraded++;
      checkTold(mac, grant.ip, out.record.expiresAt, `${server.name} (degraded)`);
    }
  };
  const goDegraded = (m: Member): void => {
    m.degraded = new DegradedLeases({ self: m.name, ownership, mcltMs: MCLT, committed: m.replica, journal: `${m.name}-${++m.journals}` });
  };
  /** Back in the cluster: catch up, then the journal's merge entry is committed by `leader`. */
  const rejoin = (m: Member, leader: Member): void => {
    catchUp(m);
    const merge = m.degraded?.mergeCommand();
    m.degraded = null;
    if (merge) commit(leader, merge);
  };
  const run = (steps: number, act: () => void): void => {
    for (let i = 0; i < steps; i++) {
      now += 1000 + rnd.int(90_000);
      act();
    }
  };
  const clientsOf = (pick: (n: number) => boolean): string[] => Array.from({ length: CLIENTS }, (_, n) => n).filter(pick).map(macOf);
  const anyOf = (macs: string[]): string => macs[rnd.int(macs.length)]!;
  const [a, b] = members as [Member, Member];
  const all = clientsOf(() => true);
  // Normal, both present; the leader is A or B.
  const leader0 = rnd.int(2) === 0 ? a : b;
  run(20 + rnd.int(40), () => serve(leader0, anyOf(all), 'normal'));
  // Phases in a seeded order: A alone (B and W down), B alone, a LAN split with no witness side, a LAN
  // split with the witness on one side (that side leads normally, the partner away), normal between.
  const phases = ['a-alone', 'b-alone', 'split', 'split-witness'];
  for (let i = phases.length - 1; i > 0; i--) { const j = rnd.int(i + 1); [phases[i], phases[j]] = [phases[j]!, phases[i]!]; }
  for (const phase of phases) {
    const steps = 20 + rnd.int(60);
    if (phase === 'a-alone' || phase === 'b-alone') {
      const [alone, away] = phase === 'a-alone' ? [a, b] : [b, a];
      away.up = false; witness.up = false;
      goDegraded(alone);
      run(steps, () => serve(alone, anyOf(all), 'degraded'));
      away.up = true; witness.up = true;
      catchUp(witness); catchUp(away);
      rejoin(alone, away);
    } else {
      const inA = clientsOf(() => rnd.float() < 0.5);
      const inB = all.filter((mac) => !inA.includes(mac));
      if (inA.length === 0 || inB.length === 0) continue;
      if (phase === 'split') {
        goDegraded(a); goDegraded(b); witness.up = false;
        run(steps, () => { const s = rnd.int(2) === 0 ? a : b; serve(s, anyOf(s === a ? inA : inB), 'degraded'); });
        witness.up = true; catchUp(witness);
        rejoin(a, a); rejoin(b, a);
      } else {
        // The witness sides with one member, which leads with the partner away: it borrows nothing.
        const [lead, alone] = rnd.int(2) === 0 ? [a, b] : [b, a];
        goDegraded(alone);
        run(steps, () => { if (rnd.int(2) === 0) serve(lead, anyOf(lead === a ? inA : inB), 'normal'); else serve(alone, anyOf(alone === a ? inA : inB), 'degraded'); });
        rejoin(alone, lead);
      }
    }
    // Normal again, both present, with expiries reclaimed by the leader's sweep.
    const leader = rnd.int(2) === 0 ? a : b;
    run(10 + rnd.int(20), () => {
      serve(leader, anyOf(all), 'normal');
      for (const c of leader.allocator.expiredLeases(leader.replica.leases(), now, 16)) commit(leader, c);
    });
  }
  for (const r of [a, b, witness]) catchUp(r);
  let conflicts = 0;
  for (const [, m] of a.replica.degradedMerges()) conflicts += m.conflicts;
  return { conflicts, hashes: [a.replica.hash(), b.replica.hash(), witness.replica.hash()], grants };
}

t.test('simulation: each member alone, both alone in a LAN split, merged: no address on two clients, 0 conflicts, equal replicas', (t) => {
  let degradedGrants = 0;
  for (const seed of seedsToRun(150, 2300)) {
    const out = simulate(t, seed);
    degradedGrants += out.grants.degraded;
    if (out.conflicts !== 0) t.fail(`seed ${seed}: ${out.conflicts} merge conflicts (LANHA_SEED=${seed} replays it)`);
    if (new Set(out.hashes).size !== 1) t.fail(`seed ${seed}: replicas differ after the merges (LANHA_SEED=${seed})`);
  }
  t.ok(degradedGrants > 1000, `degraded grants were made (${degradedGrants})`);
  t.end();
});

t.test('the overlay: a lone member\'s own grants show at once, the merge clears them, a replayed merge changes nothing', (t) => {
  const subnet = poolSubnet({ subnet: parseCidr('10.0.0.0/24')!, pools: [POOL], reservations: [], leaseTime: LEASE_MS });
  const ownership = new PoolOwnership([{ subnet: subnet.id, ranges: subnet.ranges }], ['lan-a', 'lan-b']);
  const committed = new Fsm();
  const d = new DegradedLeases({ self: 'lan-a', ownership, mcltMs: MCLT, committed, journal: 'j1' });
  const out = d.decide({ type: 'lease.grant', ip: ip('10.0.0.10'), mac: 'aa', subnet: subnet.id, leaseMs: LEASE_MS }, 1_000_000);
  t.equal(out.kind, 'record');
  if (out.kind !== 'record') return t.end();
  t.equal(d.add(out.record), 1);
  t.equal(d.overlay.lease(ip('10.0.0.10'))?.mac, 'aa');
  t.equal(committed.lease(ip('10.0.0.10')), undefined, 'the committed state is untouched');
  const merge = d.mergeCommand()!;
  committed.apply(1, { at: 2_000_000, command: merge });
  committed.apply(2, { at: 2_000_001, command: merge });
  t.equal(committed.degradedMerged('lan-a')?.merges, 1, 'the replay merged nothing');
  t.equal(committed.lease(ip('10.0.0.10'))?.expiresAt, 1_000_000 + MCLT);
  d.merged('j1', 1);
  t.equal(d.records.length, 0);
  t.equal(d.mergeCommand(), null);
  t.equal(d.overlay.lease(ip('10.0.0.10'))?.mac, 'aa', 'the overlay now reads it from the committed state');
  t.end();
});

t.test('lease.merge is apply level 2: never proposed while a member runs a level-1 lanha (0.1.0)', (t) => {
  t.equal(commandLevel({ type: 'lease.merge' }), 2);
  t.match(levelRefusal({ type: 'lease.merge' }, [{ name: 'lan-b', level: 2, version: '0.1.1' }, { name: 'witness', level: null, version: '0.1.0' }]), /witness \(lanha 0.1.0/);
  t.equal(levelRefusal({ type: 'lease.merge' }, [{ name: 'lan-b', level: 2, version: '0.1.1' }, { name: 'witness', level: 2, version: '0.1.1' }]), null);
  t.end();
});

t.test('a report carries as many journal records as fit its byte bound (a report over 1 MiB is refused and the member looks silent)', (t) => {
  const long = (n: number): DegradedRecord => ({ ip: n, mac: '02:00:00:00:00:01', subnet: '10.0.0.0/24', state: 'bound', at: n, expiresAt: n + 1, clientId: 'ff'.repeat(300), hostname: 'h'.repeat(255) });
  const records = Array.from({ length: 2000 }, (_, i) => long(i));
  const slice = reportSlice(records, 2000, 256 * 1024);
  t.ok(slice.length > 0 && slice.length < 2000, `${slice.length} of 2000 long records`);
  t.ok(JSON.stringify(slice).length <= 256 * 1024 + slice.length, 'within the byte bound');
  t.equal(reportSlice(records.slice(0, 10).map((r) => ({ ...r, clientId: undefined, hostname: undefined }) as unknown as DegradedRecord), 2000, 256 * 1024).length, 10, 'short records: all of them');
  t.equal(reportSlice(records, 5, 1 << 30).length, 5, 'the count bound');
  t.equal(reportSlice(records, 2000, 10).length, 1, 'always at least one record');
  t.end();
});
