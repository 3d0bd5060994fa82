// Proves the degraded mode's side of the VIP hand-back (HA.md 2.5) with a manual clock and a state
// log whose quorum the test sets: a member that hears a leader leaves degraded mode on the VIP's
// very next look (not only on its own 250 ms tick), so it never claims the VIP again on a stale
// `active`; a stall of the process voids the last ARP probe, so the VIP is claimed again only
// after a probe started since; what its report says; and the leader's wait on its partner.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManualClock } from '../../test/support/manual-clock.js';
import { Fsm } from '../../cluster/fsm.js';
import { MemoryStateLog, type StateLogStatus } from '../../cluster/state-log.js';
import { PoolOwnership, DEGRADED_HOLD_MS } from '../../cluster/degraded.js';
import type { MemberView } from '../../cluster/member-status.js';
import { parseIpv4Range } from '../../lib/ipv4.js';
import { createLogger, silentLogger, type Logger } from '../../lib/log.js';
import { AlreadySaidError } from '../../lib/errors.js';
import { haveTools } from '../../test/support/tools.js';
import { DegradedStateLog, PARTNER_BACK_WAIT_MS } from './degraded-state.js';
import { DEGRADED_JOURNAL_FILE, readJournal } from './degraded-journal.js';
import { formatIpv4 } from '../../lib/ipv4.js';

/** A follower whose leader the test sets (null: no quorum). */
class Follower extends MemoryStateLog {
  leader: string | null = null;
  /** When a Raft message of lan-b last arrived (RaftStateLog.peerHeardAt). */
  partnerHeard: number | null = null;
  /** The Raft term this member knows (a newer one learnt from the witness: an election elsewhere). */
  term = 1;
  override isLeader(): boolean { return false; }
  peerHeardAt(peer: string): number | null { return peer === 'lan-b' ? this.partnerHeard : null; }
  override status(): StateLogStatus { return { ...super.status(), role: 'follower', leader: this.leader, term: this.term }; }
}

function rig(partner?: { answers: boolean; onVipLan?: boolean; ports?: 'refused' | 'open' | 'silent' }, compactMinRecords?: number, log: Logger = silentLogger) {
  const clock = new ManualClock();
  const reportsNow: number[] = [];
  const inner = new Follower(new Fsm(), clock);
  const probes: Array<(r: 'answered' | 'silent') => void> = [];
  const members: Record<string, MemberView> = {};
  /** This member's first report to lan-b saying it leads (MemberStatusBoard.leadReportSent). */
  const lead: { sent: { term: number; monoMs: number } | null } = { sent: null };
  const ownership = new PoolOwnership([{ subnet: '10.0.0.0/24', ranges: [parseIpv4Range('10.0.0.10-10.0.0.29')!] }], ['lan-a', 'lan-b']);
  const stateDir = mkdtempSync(join(tmpdir(), 'lanha-degraded-state-'));
  const d = new DegradedStateLog({
    inner, self: 'lan-a', ownership, mcltMs: 60_000, stateDir, ...(compactMinRecords === undefined ? {} : { compactMinRecords }),
    members: () => members, clock, log, reportNow: () => { reportsNow.push(clock.monotonicMs()); },
    leadReportSent: (peer) => (peer === 'lan-b' ? lead.sent : null),
    probeVip: () => new Promise((resolve) => { probes.push(resolve); }),
    ...(partner === undefined ? {} : { probePartner: { address: '10.0.0.3', probe: async () => (partner.answers ? 'answered' as const : 'silent' as const), ...(partner.onVipLan === undefined ? {} : { onVipLan: partner.onVipLan }),
      ...(partner.ports === undefined ? {} : { ports: async () => partner.ports! }) } }),
  });
  /** Ticks every 250 ms for `ms` (the mode's own timer), answering each probe with `probe`. */
  const run = async (ms: number, probe: 'answered' | 'silent' = 'silent'): Promise<void> => {
    for (let left = ms; left > 0; left -= 250) {
      clock.advance(Math.min(250, left));
      d.tick();
      for (const resolve of probes.splice(0)) resolve(probe);
      await new Promise((r) => setImmediate(r));
    }
  };
  return { clock, inner, d, members, run, stateDir, reportsNow, probes, lead };
}

t.test('alone 5 s with the VIP unanswered: degraded, claims the VIP; hearing a leader leaves at once and for good', async (t) => {
  const { inner, d, run, clock } = rig();
  await run(7000);
  t.ok(d.active, 'degraded');
  t.equal(d.vipClaim(), 'hold');
  t.match(d.vipReport(), { active: true }, 'its report says degraded');
  t.ok(d.vipReport().noQuorumMs >= 6500, `no quorum for ${d.vipReport().noQuorumMs} ms`);
  inner.leader = 'lan-b';
  clock.advance(20);
  t.equal(d.vipClaim(), 'off', 'the VIP tick after the leader was heard: let go');
  t.notOk(d.active, 'degraded mode left on that look, before its own tick');
  t.same(d.vipReport(), { active: false, noQuorumMs: 0 });
  // The leader is lost again before this mode's own tick ran: the claim does not come back.
  inner.leader = null;
  clock.advance(20);
  t.equal(d.vipClaim(), 'off', 'no claim again without 5 s more alone and a new probe');
  t.end();
});

t.test('a quorum seen after none asks for the report at once (the leader waits on it), once per return', async (t) => {
  const { inner, d, run, clock, reportsNow } = rig();
  await run(7000);
  t.ok(d.active);
  t.same(reportsNow, [], 'nothing asked while alone');
  inner.leader = 'lan-b';
  clock.advance(20);
  t.equal(d.vipClaim(), 'off');
  t.same(reportsNow, [clock.monotonicMs()], 'asked on the look that saw the leader');
  d.vipClaim();
  d.tick();
  t.equal(reportsNow.length, 1, 'not again while the quorum stays');
  inner.leader = null;
  await run(1000);
  inner.leader = 'lan-b';
  d.tick();
  t.equal(reportsNow.length, 2, 'again after a stretch without a quorum, not degraded (its noQuorumMs held a leader back)');
  t.end();
});

t.test('restarted with the partner never heard: its address and the VIP silent to ARP at start, a leader adds the VIP without waiting', async (t) => {
  const settle = async (): Promise<void> => { for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r)); };
  const dead = rig({ answers: false, onVipLan: true });
  dead.d.start(() => undefined);
  t.teardown(() => dead.d.stop());
  dead.clock.advance(300);
  t.match(dead.d.leaderHeldBack(), /being ARP-probed/, 'while the start probe runs: the wait, and what ends it');
  for (const resolve of dead.probes.splice(0)) resolve('silent');
  await settle();
  t.equal(dead.d.leaderHeldBack(), null, 'its machine is down (or off this LAN): no wait for its report or its guard');

  const up = rig({ answers: true, onVipLan: true });
  up.d.start(() => undefined);
  t.teardown(() => up.d.stop());
  for (const resolve of up.probes.splice(0)) resolve('silent');
  await settle();
  up.clock.advance(300);
  t.match(up.d.leaderHeldBack(), /answers ARP: its machine is up/, 'its machine answers: the wait, and why');

  const elsewhere = rig({ answers: false, onVipLan: false });
  elsewhere.d.start(() => undefined);
  t.teardown(() => elsewhere.d.stop());
  t.same(elsewhere.probes.length, 0, 'addresses off the VIP subnet: no start probe (a silence there proves nothing)');
  elsewhere.clock.advance(300);
  t.match(elsewhere.d.leaderHeldBack(), /not reported since this member started/);

  const held = rig({ answers: false, onVipLan: true });
  held.d.start(() => undefined);
  t.teardown(() => held.d.stop());
  for (const resolve of held.probes.splice(0)) resolve('answered');
  await settle();
  held.clock.advance(300);
  t.match(held.d.leaderHeldBack(), /not reported since this member started/, 'someone answers for the VIP: the wait as before');
  t.end();
});

t.test('a stall of the process voids the last probe: the VIP is claimed again only after a probe started since', async (t) => {
  const { d, run, clock } = rig();
  await run(7000);
  t.equal(d.vipClaim(), 'hold');
  clock.advance(DEGRADED_HOLD_MS + 500); // paused (SIGSTOP-sized): its guard deleted the VIP, a leader may have taken it
  t.equal(d.vipClaim(), 'off', 'after the stall: no claim on the probe from before it');
  await run(250, 'answered');
  t.equal(d.vipClaim(), 'yield', 'the probe started after the stall finds the VIP answered (taken meanwhile): yields');
  await run(250);
  t.notOk(d.active, 'and leaves degraded mode on its next tick');

  const again = rig();
  await again.run(7000);
  again.clock.advance(DEGRADED_HOLD_MS + 500);
  t.equal(again.d.vipClaim(), 'off');
  await again.run(250, 'silent');
  t.equal(again.d.vipClaim(), 'hold', 'a probe started after the stall found the VIP unanswered: claimed again');
  again.clock.advance(300); // a GC-sized pause: the guard's deadline is not reached, nothing voided
  t.equal(again.d.vipClaim(), 'hold');
  t.end();
});

t.test('a one-way cluster link: degraded, no heartbeat of the leader arrives but its own reports say it leads: the witness\'s view decides, it lets go', async (t) => {
  const { d, members, run, clock, inner } = rig();
  await run(7000);
  t.equal(d.vipClaim(), 'hold');
  const leading = (term: number, lastContactMs: number): MemberView =>
    ({ report: { node: 'lan-b', role: 'leader', leader: 'lan-b', term }, receivedAt: '', lastContactMs, clockOffsetMs: 0, offsetMethod: 'one-way', roundTripMs: null, bootFiles: null }) as unknown as MemberView;
  const term = inner.status().term;
  members['lan-b'] = leading(term, 2500);
  clock.advance(20);
  t.equal(d.vipClaim(), 'hold', 'a report 2.5 s old says nothing of now');
  members['lan-b'] = leading(term, 100);
  clock.advance(20);
  t.equal(d.vipClaim(), 'off', 'a fresh report saying it leads: let go');
  t.notOk(d.active, 'degraded mode left');
  t.same(d.vipReport(), { active: false, noQuorumMs: 0 });
  await run(7000);
  t.notOk(d.active, 'and not entered again while its reports say it leads');
  t.end();
});

t.test('the leader\'s wait on its partner (cluster/degraded.ts handBackRefusal) from the partner\'s last report', async (t) => {
  const { d, members, clock } = rig();
  t.match(d.leaderHeldBack(), /not reported since this member started/, 'just started, nothing heard of the partner');
  const view = (degradedVip: { active: boolean; held: boolean; noQuorumMs: number } | undefined, lastContactMs: number): MemberView =>
    ({ report: { node: 'lan-b', ...(degradedVip === undefined ? {} : { degradedVip }) }, receivedAt: '', lastContactMs, clockOffsetMs: 0, offsetMethod: 'one-way', roundTripMs: null, bootFiles: null }) as unknown as MemberView;
  members['lan-b'] = view({ active: true, held: true, noQuorumMs: 9000 }, 100);
  t.match(d.leaderHeldBack(), /holds the VIP degraded/);
  members['lan-b'] = view({ active: false, held: false, noQuorumMs: 0 }, 100);
  t.equal(d.leaderHeldBack(), null, 'it heard the leader and let go');
  members['lan-b'] = view(undefined, 100);
  t.equal(d.leaderHeldBack(), null, 'degraded mode off there');
  delete members['lan-b'];
  clock.advance(2500);
  t.match(d.leaderHeldBack(), /silent: ARP-probing the VIP/, 'silent since this member started, past a report and its guard: the VIP probed first');
  t.end();
});

t.test('leading and holding the VIP with the partner silent: the hand-back probe is kept fresh, so a lease lapse adds the VIP back at once', async (t) => {
  // bench/vip-twoway.ts partnerdown: the follower's machine down, pauses lapse the leader's lease;
  // each time it added the VIP back it waited for a new probe (about 1.2 s).
  const settle = async (): Promise<void> => { for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r)); };
  const { d, clock, probes, members } = rig();
  const holding = (): void => { (d as { leaderHolding?(): void }).leaderHolding?.(); };
  clock.advance(3000);
  t.match(d.leaderHeldBack(), /ARP-probing the VIP/, 'silent since the start: the probe first');
  clock.advance(1200);
  probes.shift()!('silent');
  await settle();
  t.equal(d.leaderHeldBack(), null, 'nobody answered: the VIP is added');
  clock.advance(300);
  holding();
  t.equal(probes.length, 1, 'holding: the next probe starts 300 ms after the last ended');
  holding();
  t.equal(probes.length, 1, 'one at a time');
  clock.advance(1200);
  for (const resolve of probes.splice(0)) resolve('silent');
  await settle();
  clock.advance(700);
  t.equal(d.leaderHeldBack(), null, 'the lease lapsed and came back: the VIP is added at once on the probe that ended 0.7 s ago');
  members['lan-b'] = ({ report: { node: 'lan-b', role: 'follower', leader: 'lan-a', term: 1, degradedVip: { active: false, held: false, noQuorumMs: 0 } }, receivedAt: '', lastContactMs: 0, clockOffsetMs: 0, offsetMethod: 'one-way', roundTripMs: null, bootFiles: null }) as unknown as MemberView;
  clock.advance(1000);
  holding();
  t.equal(probes.length, 0, 'a partner reporting, not degraded: no probe while holding');
  t.end();
});

t.test('a partner silent both ways (a cluster link cut both ways): the leader adds the VIP only once nobody answers ARP for it', async (t) => {
  const settle = async (): Promise<void> => { for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r)); };
  const { d, clock, probes } = rig();
  clock.advance(1000);
  t.match(d.leaderHeldBack(), /not reported since this member started/, 'the wait on its report or its guard');
  t.equal(probes.length, 0, 'no probe yet: the wait has 1.5 s left');
  clock.advance(300);
  t.match(d.leaderHeldBack(), /not reported since this member started/, 'still the wait');
  t.equal(probes.length, 1, 'the probe starts 1.3 s before the wait ends, so its answer comes as the wait ends');
  clock.advance(1200);
  probes.shift()!('answered');
  await settle();
  t.match(d.leaderHeldBack(), /another MAC answers ARP for the VIP: the partner holds it degraded over a cluster link cut both ways/, 'the partner holds it where no report comes from: held back');
  t.equal(probes.length, 1, 'and probed again');
  t.match(d.view().counters, { 'handback.vip-answered': 1 });
  clock.advance(1200);
  probes.shift()!('silent');
  await settle();
  t.equal(d.leaderHeldBack(), null, 'a fresh probe nobody answered: the VIP is added');
  clock.advance(1600);
  t.match(d.leaderHeldBack(), /ARP-probing the VIP/, 'a probe older than 1.5 s says nothing of now');
  t.end();
});

t.test('degraded, the partner\'s machine answers ARP again with its ports up while its reports are silent: it leaves degraded mode and yields the VIP', async (t) => {
  const partner = { answers: false, ports: 'open' as 'refused' | 'open' | 'silent' };
  const { d, run, members, clock } = rig(partner);
  await run(8000);
  t.ok(d.active, 'degraded: the partner\'s machine is down');
  t.equal(d.vipClaim(), 'hold');
  partner.ports = 'refused';
  partner.answers = true; // its machine is back, its lanha not yet
  await run(1500);
  t.ok(d.active, 'its ports reset: no lanha there, nothing can lead; still degraded');
  t.equal(d.vipClaim(), 'hold');
  // Its lanha up and reporting over a working cluster link: a leader is heard there, nothing to yield to on the LAN.
  partner.ports = 'open';
  members['lan-b'] = ({ report: { node: 'lan-b', role: 'follower', leader: null, term: 1 }, receivedAt: '', lastContactMs: 0, clockOffsetMs: 0, offsetMethod: 'one-way', roundTripMs: null, bootFiles: null }) as unknown as MemberView;
  for (let i = 0; i < 6; i++) { clock.advance(250); d.tick(); await run(0); await new Promise((r) => setImmediate(r)); }
  t.ok(d.active, 'its reports arrive: still degraded (the hand-back runs on them)');
  delete members['lan-b'];
  await run(1500);
  t.notOk(d.active, 'its lanha answers on the LAN, its reports silent: the cluster link is cut, it may lead with the witness');
  t.equal(d.vipClaim(), 'yield', 'the VIP is let go at once');
  t.match(d.view().counters, { 'partner-back': 1 });
  await run(4000, 'answered');
  t.notOk(d.active, 'the partner took the VIP (it leads): not entered again while it answers (a cluster-link problem)');
  t.match(d.view(), { notDegradedBecause: /another node answers ARP for the VIP|cluster-link problem/ });
  t.end();
});

t.test('yielded to a partner back on the LAN, and nobody took the VIP: degraded again, and no second yield until the partner is heard', async (t) => {
  const partner = { answers: false, ports: 'open' as 'refused' | 'open' | 'silent' };
  const { d, run, members } = rig(partner);
  await run(8000);
  t.ok(d.active, 'degraded: the partner\'s machine is down');
  partner.answers = true; // back, its lanha up, its cluster link cut: no report
  await run(1500);
  t.notOk(d.active, 'yielded');
  await run(4500);
  t.notOk(d.active, `not before ${PARTNER_BACK_WAIT_MS / 1000} s (and a probe started after the yield's 5 s)`);
  await run(4000);
  t.ok(d.active, 'nobody answers for the VIP: the partner could not lead; degraded again');
  t.equal(d.vipClaim(), 'hold', 'and holds the VIP');
  t.match(d.view().counters, { 'partner-back': 1, 'partner-back.no-taker': 1 });
  await run(5000);
  t.ok(d.active, 'no second yield while the partner stays as it is (it would flap for as long as the cut lasts)');
  t.equal(d.vipClaim(), 'hold');
  // Its reports come again: the link works, a leader is heard there; a later cut may yield again.
  members['lan-b'] = ({ report: { node: 'lan-b', role: 'follower', leader: null, term: 1 }, receivedAt: '', lastContactMs: 0, clockOffsetMs: 0, offsetMethod: 'one-way', roundTripMs: null, bootFiles: null }) as unknown as MemberView;
  await run(500);
  delete members['lan-b'];
  await run(3000);
  t.match(d.view().counters, { 'partner-back': 2 }, 'heard, then silent again with its machine up: yields once more');
  t.end();
});

t.test('yielded to a partner back on the LAN, then a newer Raft term (it campaigns with the witness): the retake waits 6 s from the term\'s change', async (t) => {
  // The VIP simulation (partnerBack `late`, seed 27): the partner won with the witness 2 s before this
  // member's retake, its own probe silent (this member held nothing), and added the VIP while this
  // member's retake probe, started before, was ending silent: both held it for 1.2 s.
  const partner = { answers: false, ports: 'open' as 'refused' | 'open' | 'silent' };
  const { d, run, inner } = rig(partner);
  await run(8000);
  t.ok(d.active, 'degraded: the partner\'s machine is down');
  partner.answers = true; // back, its lanha up, its cluster link cut: no report
  await run(1500);
  t.notOk(d.active, 'yielded');
  await run(3000);
  inner.term = 2; // the witness refused this member's pre-vote in a newer term: someone campaigned with it
  await run(4000);
  t.notOk(d.active, `${PARTNER_BACK_WAIT_MS / 1000} s after the yield, but an election came since: no retake (a leader may add the VIP any moment)`);
  t.match(d.view().counters, { 'partner-back.new-term': 1 });
  t.notMatch(d.view().counters, { 'partner-back.no-taker': 1 });
  await run(3000);
  t.ok(d.active, `${PARTNER_BACK_WAIT_MS / 1000} s and more after the newer term, nobody answers for the VIP: degraded again`);
  t.match(d.view().counters, { 'partner-back.no-taker': 1 });
  t.end();
});

t.test('degraded again after a retake, its partner up on the LAN, then a newer Raft term: it yields at once, and takes the VIP back only 6 s after the term\'s change', async (t) => {
  // The VIP simulation (partnerBack `late`, seed 62): retaken, then paused past its guard; the partner
  // won with the witness meanwhile and added the VIP after a silent probe, while this member, still
  // degraded, claimed it again on its own probe after the stall: both held it for 1.2 s.
  const partner = { answers: false, ports: 'open' as 'refused' | 'open' | 'silent' };
  const { d, run, inner } = rig(partner);
  await run(8000);
  partner.answers = true;
  await run(1500);
  t.notOk(d.active, 'yielded to the partner back on the LAN');
  await run(8000);
  t.ok(d.active, 'nobody took the VIP: degraded again');
  t.equal(d.vipClaim(), 'hold');
  inner.term = 2; // an election with the witness
  d.vipClaim();
  t.notOk(d.active, 'a newer term: leaves degraded mode on the very next look');
  t.equal(d.vipClaim(), 'yield', 'and lets the VIP go');
  t.match(d.view().counters, { 'partner-back.new-term': 1 });
  await run(5000);
  t.notOk(d.active, 'not retaken within the wait');
  await run(3000);
  t.ok(d.active, 'nobody took it 6 s after the term\'s change: degraded again');
  t.end();
});

t.test('degraded, the witness\'s fresh report names the partner as its leader (the cluster link between the servers cut both ways): it lets go', async (t) => {
  // The VIP simulation (partnerBack `late`, seeds 231, 538): the partner won with the witness; the
  // witness left this member's pre-votes unanswered (it heard its leader), so no newer term came
  // here, and the leader's probe and this member's retake overlapped. The witness's reports reach
  // both servers.
  const partner = { answers: false, ports: 'open' as 'refused' | 'open' | 'silent' };
  const { d, run, members } = rig(partner);
  await run(8000);
  t.ok(d.active, 'degraded: the partner\'s machine is down');
  t.equal(d.vipClaim(), 'hold');
  const witness = (leader: string | null, lastContactMs = 0): MemberView => ({ report: { node: 'w', role: 'witness', leader, term: 2 }, receivedAt: '', lastContactMs, clockOffsetMs: 0, offsetMethod: 'one-way', roundTripMs: null, bootFiles: null }) as unknown as MemberView;
  members['w'] = witness(null);
  await run(500);
  t.ok(d.active, 'the witness reports no leader: still degraded');
  members['w'] = witness('lan-b');
  t.equal(d.vipClaim(), 'off', 'it names the partner as its leader: the VIP is let go on the very next look');
  t.notOk(d.active, 'and degraded mode left');
  members['w'] = witness('lan-b', 2500);
  await run(3000);
  t.notOk(d.active, 'its report gone stale: the count without a quorum starts again (5 s, then the probes)');
  await run(6000);
  t.ok(d.active, 'degraded again once the wait and the probes are done');
  t.end();
});

t.test('degraded in this stretch, left while the partner\'s lanha was gone a moment; it comes back with its reports silent: the wait for a taker runs, then degraded again', async (t) => {
  // The VIP simulation (partnerBack `flap`, seed 267): the partner's lanha came back, went (its
  // ports reset) and came back again while the cut lasted; the member left alone then stayed out
  // ("a cluster-link problem") and nobody held the VIP until the cut healed.
  const partner = { answers: false, ports: 'open' as 'refused' | 'open' | 'silent' };
  const { d, run, clock, probes } = rig(partner);
  await run(8000);
  t.ok(d.active, 'degraded: the partner\'s machine is down');
  partner.answers = true;
  await run(1500);
  t.notOk(d.active, 'its lanha back, its reports silent: yielded');
  // Its lanha gone a moment: one probe finds its ports resetting, then this process stalls (the
  // probe is void after it) and the lanha is back before the next.
  partner.ports = 'refused';
  for (let i = 0; i < 20 && probes.length === 0; i++) { clock.advance(250); d.tick(); }
  t.equal(probes.length, 1, 'a probe runs');
  for (const resolve of probes.splice(0)) resolve('silent');
  await new Promise((r) => setImmediate(r));
  partner.ports = 'open';
  clock.advance(1000);
  d.tick();
  await run(3000);
  t.notOk(d.active, 'back again: out while it may lead');
  await run(8000);
  t.ok(d.active, 'nobody took the VIP: degraded again');
  t.match(d.view().counters, { 'partner-back.no-taker': 1 });
  t.end();
});

t.test('a partner whose Raft messages arrive but not its reports (a one-way cluster link): the wait runs from its last message, or from this leader\'s report', async (t) => {
  const { d, inner, clock, lead, probes } = rig();
  /** What the leader says once the ARP probe of the VIP it asks for (a hand-back on silence) found nobody. */
  const afterSilentProbe = async (): Promise<string | null> => {
    d.leaderHeldBack();
    for (const resolve of probes.splice(0)) resolve('silent');
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    return d.leaderHeldBack();
  };
  clock.advance(2000);
  inner.partnerHeard = clock.monotonicMs();
  clock.advance(1000);
  t.match(d.leaderHeldBack(), /its Raft messages arrive, its reports do not/, '3 s after the start, its Raft message 1 s ago: it runs, it may hold the VIP degraded');
  clock.advance(1500);
  t.equal(await afterSilentProbe(), null, 'silent 2.5 s since that message: its guard ran out (and nobody answers for the VIP)');
  inner.partnerHeard = clock.monotonicMs();
  lead.sent = { term: inner.status().term + 1, monoMs: clock.monotonicMs() };
  clock.advance(2500);
  inner.partnerHeard = clock.monotonicMs();
  t.match(d.leaderHeldBack(), /one-way/, 'a report of another term: not this leadership\'s');
  lead.sent = { term: inner.status().term, monoMs: clock.monotonicMs() - 2499 };
  t.match(d.leaderHeldBack(), /one-way/, 'this term\'s report, 2.499 s ago: not yet');
  clock.advance(1);
  t.equal(await afterSilentProbe(), null, '2.5 s after it: the partner let go on it, or its guard ran out (and nobody answers for the VIP)');
  t.end();
});

t.test('the partner\'s LAN address answers ARP while its reports are silent: not degraded, and the status says why; silent: degraded', async (t) => {
  const partner = { answers: true };
  const { d, run } = rig(partner);
  await run(8000);
  t.notOk(d.active, 'not degraded while the partner\'s host answers');
  t.match(d.view(), { notDegradedBecause: 'partner 10.0.0.3 answers ARP: a cluster-link problem, not a dead partner', partnerAnswersArp: '10.0.0.3' });
  t.equal(d.vipClaim(), 'off');
  partner.answers = false; // its machine went down
  await run(3500);
  t.ok(d.active, 'the partner\'s address silent too: degraded');
  t.match(d.view(), { partnerAnswersArp: null, notDegradedBecause: null });
  t.end();
});

t.test('the partner\'s address answers ARP but its cluster and DNS ports reset: its lanha is down, degraded; a port that accepts keeps it out', async (t) => {
  const partner = { answers: true, ports: 'open' as 'refused' | 'open' | 'silent' };
  const { d, run } = rig(partner);
  await run(8000);
  t.notOk(d.active, 'a port accepts: it runs, the cluster link is what failed');
  t.match(d.view(), { notDegradedBecause: /cluster-link problem/ });
  partner.ports = 'silent';
  await run(3500);
  t.notOk(d.active, 'no answer on its ports: a cut link, still out');
  partner.ports = 'refused';
  await run(3500);
  t.ok(d.active, 'both ports reset, its machine up: its lanha is down, degraded');
  t.equal(d.vipClaim(), 'hold');
  t.end();
});

t.test('alone, renewals compact the journal in place: the file, the overlay and the report keep the first grant and the newest renewal per client; grants go on', async (t) => {
  const { d, run, clock, stateDir } = rig(undefined, 40);
  d.start(() => undefined);
  t.teardown(() => d.stop());
  await run(7000);
  t.ok(d.active);
  const ip = (c: number): number => parseIpv4Range('10.0.0.10-10.0.0.10')!.first + c;
  const mac = (c: number): string => `02:00:00:00:00:${(c + 16).toString(16)}`;
  const firstGrant = d.logTimeMs();
  for (let round = 0; round < 13; round++) {
    for (let c = 0; c < 10; c++) await d.propose({ type: 'lease.grant', ip: ip(c), mac: mac(c), subnet: '10.0.0.0/24', leaseMs: 30_000 });
    clock.advance(1000);
  }
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
  const file = readJournal(join(stateDir, DEGRADED_JOURNAL_FILE))!;
  t.ok(d.counters.toJSON()['compacted']! >= 1, `compacted ${d.counters.toJSON()['compacted']} times`);
  t.ok(file.records.length < 40, `130 grants alone, ${file.records.length} records on the disk`);
  t.same(new Set(file.records.map((r) => r.mac)).size, 10, 'every client still there');
  const report = d.journalReport()!;
  t.same({ journal: report.journal, from: report.from, records: report.records }, { journal: file.journal, from: file.from, records: file.records }, 'the report carries the file: the new journal id, renumbered from 1');
  for (let c = 0; c < 10; c++) {
    const lease = d.fsm.lease(ip(c));
    const newest = file.records.filter((r) => r.ip === ip(c)).at(-1)!;
    t.ok(lease?.mac === mac(c) && lease.expiresAt === newest.expiresAt, `${formatIpv4(ip(c))}: the overlay holds ${mac(c)}'s newest renewal`);
    t.equal(lease?.grantedAt, firstGrant, `${formatIpv4(ip(c))}: granted when first granted, not at its newest renewal`);
  }
  t.end();
});

t.test('the journal out of file descriptors: no ACK, said once with a recovery line, the refusals thrown as already said; grants go on after', async (t) => {
  if (!haveTools(t, ['prlimit'], 'degraded journal descriptor test')) return;
  const lines: Array<Record<string, unknown>> = [];
  const log = createLogger({ level: 'debug', destination: { write: (s: string) => { lines.push(JSON.parse(s) as Record<string, unknown>); } } });
  const { d, run, stateDir } = rig(undefined, undefined, log);
  d.start(() => undefined);
  t.teardown(() => d.stop());
  await run(7000);
  t.ok(d.active, 'degraded');
  const ip = (c: number): number => parseIpv4Range('10.0.0.10-10.0.0.10')!.first + c;
  const grant = (c: number) => d.propose({ type: 'lease.grant', ip: ip(c), mac: `02:00:00:00:01:${(c + 16).toString(16)}`, subnet: '10.0.0.0/24', leaseMs: 30_000 });
  const [soft, hard] = execFileSync('prlimit', ['--pid', String(process.pid), '--nofile', '--noheadings', '--output=SOFT,HARD'], { encoding: 'utf8' }).trim().split(/\s+/);
  const refused: unknown[] = [];
  const held: number[] = [];
  try {
    // The journal is opened at the first grant: with every descriptor below the limit taken, it cannot be.
    execFileSync('prlimit', ['--pid', String(process.pid), `--nofile=${readdirSync('/proc/self/fd').length + 40}:${hard}`]);
    try { for (let i = 0; i < 100_000; i++) held.push(openSync('/dev/null', 'r')); } catch { /* EMFILE: every descriptor taken */ }
    for (let c = 0; c < 3; c++) await grant(c).then(() => refused.push(null), (err: unknown) => refused.push(err));
  } finally {
    for (const fd of held) closeSync(fd);
    execFileSync('prlimit', ['--pid', String(process.pid), `--nofile=${soft}:${hard}`]);
  }
  t.equal(refused.length, 3);
  t.ok(refused.every((e) => e instanceof AlreadySaidError && /cannot be opened for want of file descriptors \(EMFILE\); no ACK/.test(e.message)), 'each grant refused (no ACK), as a cause already said');
  const said = lines.filter((l) => l['event'] === 'dhcp.degraded.journal_fd_exhausted');
  t.equal(said.length, 1, 'the shortage said once for three refused grants');
  t.match(said[0], { code: 'EMFILE', limit: Number }, 'with the errno and the limit');
  t.equal(d.counters.toJSON()['journal_fd_exhausted'], 3, 'each refusal counted');
  t.equal(readJournal(join(stateDir, DEGRADED_JOURNAL_FILE))?.records.length ?? 0, 0, 'nothing written');
  await grant(5);
  t.match(lines.filter((l) => l['event'] === 'dhcp.degraded.journal_fd_recovered'), [{ refused: 3 }], 'the end said once, with how many got no ACK');
  t.equal(readJournal(join(stateDir, DEGRADED_JOURNAL_FILE))!.records.length, 1, 'the next grant is on the disk');
  t.end();
});
