import { seededRandom, type Random } from '../../lib/random.js';
import { RaftNode } from '../../cluster/raft/node.js';
import type { Entry, HardState, Message, NodeId, Ready } from '../../cluster/raft/types.js';
import { initialVipState, onGuardExpired, onTick, vipTimings, type VipState } from '../../services/vip/core.js';
import { raftTimers, type RaftTimers } from '../../cluster/timers.js';
import { ACQUIRE_LEASE_MIN_MS } from '../../services/vip/server.js';
import { DEGRADED_AFTER_MS, DEGRADED_HOLD_MS, degradedRefusal, handBackVerdict, VIP_PROBE_FRESH_MS, type DegradedVipReport, type HandBackFacts, type HandBackVerdict } from '../../cluster/degraded.js';
import { REPORT_EVERY_MS } from '../../cluster/member-status.js';
import { PARTNER_BACK_WAIT_MS } from '../../services/dhcp/degraded-state.js';

// A deterministic simulation of who holds the VIP: two servers and a witness running the real Raft
// core (production timers: 10 ms ticks and by default those of the default failover budget, 480 ms:
// heartbeat 40 ms, election 250-370 ms, lease 190 ms; or any others, cluster/timers.ts) and, on
// each server, the real VIP core driven as server.ts drives it (a holder's tick at its next renewal,
// GARP or lease end, role changes and guard expiries at once, the guard's deadline moved by each
// acknowledgement that extends the lease; `vipSchedule: 'poll'` the 20 ms tick before), plus models of what is
// not code: the guard process (guard.ts: deletes the VIP when a hold runs out or the daemon dies),
// each kernel (the address, its `valid_lft` lifetime) and `ip`/arping latency. Faults from one seed:
// pauses of the leader process (GC-sized 50-150 ms, SD-card stalls, SIGSTOP up to 3 s), kill -9 of
// the process (its kernel stays), machine crashes (the kernel goes too), network isolation, slow
// fsyncs, clock drift and wall-clock steps (wall time is not used by any timer here: the steps must
// change nothing). After every event: never two kernels holding the VIP. After the faults stop:
// exactly one holder within a bounded time. A failure names its seed; LANHA_SEED=<n> replays it.
//
// `scenario: 'degraded'` adds degraded DHCP mode on both servers, as services/dhcp/degraded-state.ts
// runs it (its 250 ms tick, the three ARP probes of the VIP, the look at the quorum on every VIP tick
// and report, the stall rule) and the member reports between them (every second and on a new
// connection, with what degraded mode says of the VIP): one server's machine and the witness go down,
// the other, alone, goes degraded and holds the VIP (guard deadline DEGRADED_HOLD_MS per tick), and
// when they come back the hand-back runs under pauses, message delays and slow fsyncs. Some cycles
// instead crash the partner's machine and kill -9 the leader, which restarts alone with the witness
// (the partner comes back seconds later): how soon it holds the VIP again (restartGapsMs).
// `partnerBack` makes returns where the partner comes back on the LAN unable to lead (the cluster link
// cut both ways, the witness down): the degraded member's yield and its retake after 6 s with no taker,
// with the partner never taking, taking late, or flapping; the witness's reports reach both servers.

const TICK_MS = 10;
const VIP_TICK_MS = 20;
const LIFETIME_MS = 2000;
/** degraded-state.ts: its tick, the stall rule, how long a probe's answer holds. */
const DG_TICK_MS = 250;
const STALL_MS = DEGRADED_HOLD_MS - 200;
const PROBE_VALID_MS = 3000;

function freshDegraded(nowMs: number): DegradedModel {
  return { active: false, noQuorumSince: null, probe: null, probing: null, partnerAnswered: false, partnerRefused: false, lastLook: null, stalledAt: null, yieldedAt: null, startedAt: nowMs, heard: null, releaseAt: -Infinity, heldBack: false, heldBackSince: null, heldDegraded: false, startArp: null, startProbe: null, partnerRaftAt: null, leadReportAt: null, leaderProbe: null, leaderProbing: null, probeStarted: 0, degradedStretch: false, witnessHeard: null, yieldedToPartner: null, yieldTerm: 0, partnerBackSpent: false };
}

export interface VipSimOptions {
  /** Model the guard (default true). Without it a paused or killed holder keeps the VIP for its lifetime. */
  guard?: boolean;
  /** The guard's margin before the lease ends (server.ts GUARD_MARGIN_MS). */
  guardMarginMs?: number;
  chaosMs?: number;
  trace?: boolean;
  /** Raft timers (default: the daemon's defaults, raftTimers(undefined)). */
  timers?: RaftTimers;
  /**
   * `chaos` (default): every fault at random. `voter-dead`: once a leader holds the VIP, the other
   * server (`follower`) or the witness is killed for good, the leader proposes an entry every 20 ms,
   * and the faults are only GC-sized pauses (50-100 ms) of the leader or the voter left and slow
   * fsyncs (up to 150 ms): the leader keeps its quorum throughout, so it should keep the VIP.
   */
  scenario?: 'chaos' | 'voter-dead' | 'degraded';
  deadVoter?: 'follower' | 'witness';
  /**
   * Heartbeats and their answers go out at once, as cluster/raft/host.ts sends them (default
   * true). false: after the Ready in progress is persisted, as the host did before (the regression).
   */
  heartbeatsFirst?: boolean;
  /**
   * How the VIP service runs (services/vip/server.ts). `due` (default, since session 10): a holder's
   * timer sleeps until its next renewal, GARP or lease end, role changes and a guard expiry tick at
   * once, and each acknowledgement that extends the lease moves the guard's deadline. `poll`: a tick
   * every 20 ms that also writes the guard its hold, as before.
   */
  vipSchedule?: 'due' | 'poll';
  /**
   * degraded: a leader adds the VIP only once its partner may no longer hold it degraded (default
   * true, cluster/degraded.ts handBackRefusal). false: at once, as before (the overlap it removes).
   */
  handBack?: boolean;
  /**
   * degraded: when the degraded holder's report that it let go is sent. `at-once` (default): as its
   * `ip addr del` returns (services/vip/server.ts onDegradedReleased), and a leader held back ticks
   * its VIP service on a partner's report (bin/daemon.ts); `tick`: at its next report (every
   * second), the leader's next tick, as before.
   */
  releaseReport?: 'at-once' | 'tick';
  /**
   * degraded: each server ARP-probes its partner's address and the VIP at start, and as leader adds
   * the VIP without waiting for a partner never heard from when both were silent (default true,
   * degraded-state.ts #probeAtStart); false: it waits for the partner's report or guard, as before.
   */
  startProbe?: boolean;
  /**
   * degraded: a member without a leader heard counts its partner's fresh report saying it leads as
   * a quorum (default true, degraded-state.ts #quorum: a one-way cluster link, where no heartbeat
   * reaches it but the leader's reports do); false: only a heartbeat counts, as before.
   */
  leaderReports?: boolean;
  /**
   * degraded: a leader whose partner's reports do not come counts the partner silent from its last
   * Raft message, and done once its own report saying it leads has had the time to reach the partner
   * and the partner's guard to run out (default true, cluster/degraded.ts handBackRefusal
   * partnerRaftMs/leadReportMs); false: silent since its start or last report, as before (a one-way
   * link: the partner runs, holds, and its reports are lost).
   */
  oneWayEvidence?: boolean;
  /**
   * degraded: the share of cycles (0-1, default 0) in which the server that goes away loses only its
   * lanha (kill -9; its machine up, its address answering ARP) rather than its machine, with the witness.
   */
  partnerLanhaKill?: number;
  /**
   * degraded: probes knock on the partner's cluster and DNS ports too, and both resetting (its lanha
   * dead on a machine that is up) does not keep a member out of degraded mode (default true,
   * services/dhcp/partner-ports.ts); false: its address answering ARP keeps it out, as before.
   */
  portProbe?: boolean;
  /**
   * degraded: the share of returns (0-1, default 0) that come with the cluster link between the two
   * servers cut both ways for 3-8 s (no Raft message, no report either way; the witness reaches both,
   * and ARP on the LAN works): the degraded member cannot hear the new leader by any cluster path.
   */
  twoWayCut?: number;
  /**
   * degraded: a leader whose hand-back rests on its partner's silence (no report saying it let go)
   * ARP-probes the VIP first and adds it only on a probe that ended within VIP_PROBE_FRESH_MS and
   * found nobody answering (default true, cluster/degraded.ts handBackVerdict `vipProbe`); false:
   * the silence alone, as before (a cut both ways: two holders until the degraded one's next probe).
   */
  leaderProbe?: boolean;
  /**
   * degraded: a degraded member's own probes look at its partner's address and ports too, and its
   * partner's machine answering with its ports not resetting (its lanha runs) while no report of it
   * came since the probe started (its cluster link cut) makes it leave degraded mode and yield the
   * VIP: the partner may lead with the witness (default true, degraded-state.ts tick); false: it
   * holds on until a probe of the VIP finds another holder, as before.
   */
  lanYield?: boolean;
  /**
   * degraded: the share of returns (0-1, default 0) in which only the partner's machine comes back,
   * with its lanha up but the cluster link between the two servers cut both ways and the witness
   * still down, so it cannot lead: the degraded member sees it back on the LAN, yields, and takes
   * the VIP again once nobody took it within PARTNER_BACK_WAIT_MS (degraded-state.ts #noTaker).
   * Each such return is one of three kinds, in turn at random: `never` (the witness comes back only
   * after the cut heals, 12-18 s later: nobody can take the VIP until then), `late` (the witness
   * comes back 4-14 s later, the cut lasting 15-20 s: the partner leads with it, before or after
   * the retake, and must find the VIP answering), `flap` (the partner's lanha is killed and
   * restarted, or its machine crashes and boots, 2-4 times 1-3 s apart, then the witness and the
   * link come back). Not in the last 15 s of the faults (the return must end within the run).
   */
  partnerBack?: number;
  /**
   * degraded: a Raft term newer than the one at the yield to the partner back on the LAN (another
   * member campaigned with the witness: a leader may be coming, and may add the VIP after its own
   * probe) starts the retake's wait again (default true, degraded-state.ts #noTaker); false: the
   * wait runs from the yield whatever the term, as before.
   */
  retakeTerm?: boolean;
  /**
   * degraded: the witness's reports (every second, and at once on a new connection, as every
   * member's) reach the servers, and a fresh one saying it follows a leader other than the member
   * reading it counts as a quorum there (default true, degraded-state.ts #quorum: the witness's
   * view decides, as the partner's own report saying it leads does); false: only the partner's
   * reports are read, as before.
   */
  witnessReports?: boolean;
  /**
   * degraded: a member degraded earlier in this stretch without a quorum, not degraded now (it left
   * as its partner's lanha went away a moment), whose partner comes back on the LAN with its reports
   * silent, runs the same wait for a taker as after a yield (default true, degraded-state.ts
   * #partnerBackIdle); false: it stays out ("a cluster-link problem") for as long as the cut lasts.
   */
  retakeIdle?: boolean;
  /**
   * degraded: the share of steady cycles (0-1, default 0) in which only the follower's machine
   * crashes (the witness stays up) for 8-16 s: the leader leads on with the witness while pauses of
   * 150-700 ms lapse its lease, and each time it adds the VIP again its hand-back rests on the
   * partner's silence (silent past 4 s: the ARP probe of the VIP first). The no-holder stretches
   * of such cycles are `partnerDownGapsMs`.
   */
  partnerDown?: number;
  /**
   * degraded: a leader holding the VIP keeps the hand-back's ARP probe fresh (the next one 300 ms
   * after the last ended) while its partner's silence would ask for one, now or once the last probe
   * aged, so a lapse of its lease adds the VIP back on it at once (default true, degraded-state.ts
   * leaderHolding); false: a lapse waits for a new probe (about 1.2 s), as before.
   */
  holdingProbe?: boolean;
}

export interface VipSimReport {
  seed: number;
  violations: string[];
  /** Total ms with two kernels holding the VIP. */
  twoHolderMs: number;
  takeovers: number;
  pauses: number;
  kills: number;
  /** Per kill -9 or crash of the holder: ms until another server's kernel held the VIP. */
  crashGapsMs: number[];
  /** The holder let the VIP go while its process was up (lease lapse or guard expiry). */
  lapses: number;
  /** voter-dead: ms without any kernel holding the VIP after the first one took it. */
  noHolderMs: number;
  /** degraded: VIP acquisitions flagged degraded, and leader acquisitions the hand-back held back first. */
  degradedHolds: number;
  heldBack: number;
  /** degraded: per hand-back, ms from the degraded holding's kernel letting the VIP go to a leader's kernel holding it. */
  handBackGapsMs: number[];
  /** degraded: per leader held back on its partner's reports that then added the VIP (its lease valid throughout), ms from the first held-back tick to the acquire. */
  heldBackMs: number[];
  /** degraded: per leader killed and restarted while its partner's machine was down, ms from the restart to its holding the VIP. */
  restartGapsMs: number[];
  /** degraded: cycles whose return came with a one-way cluster link. */
  oneWayCuts: number;
  /** degraded: cycles whose return came with the cluster link cut both ways. */
  twoWayCuts: number;
  /** degraded: a leader's VIP probes before a hand-back on silence, and those another MAC answered. */
  leaderProbes: number;
  leaderProbesAnswered: number;
  /** degraded: per cycle whose server went away, ms until the one left held the VIP degraded (none within the cycle's 20 s: not counted; see aloneNever). */
  aloneGapsMs: number[];
  /** degraded: cycles whose server left alone never held the VIP degraded before the others came back. */
  aloneNever: number;
  /** degraded, partnerBack: such returns by kind, the retakes (degraded again after yielding with no taker), and per kind every no-holder stretch within such a return (ms). */
  partnerBacks: Record<PartnerBackKind, number>;
  retakes: number;
  partnerBackGapsMs: Record<PartnerBackKind, number[]>;
  /** degraded, partnerDown: such cycles, and every no-holder stretch within them (ms). */
  partnerDowns: number;
  partnerDownGapsMs: number[];
  trace: string[];
}

export type PartnerBackKind = 'never' | 'late' | 'flap';

/** A server's degraded DHCP mode (services/dhcp/degraded-state.ts), as the simulation runs it. */
interface DegradedModel {
  active: boolean;
  noQuorumSince: number | null;
  probe: { at: number; answered: boolean } | null;
  probing: { started: number; answered: boolean; partnerAnswered: boolean; partnerRefused: boolean } | null;
  partnerAnswered: boolean;
  /** The last probe found the partner's cluster and DNS ports resetting (its machine up, its lanha dead: partner-ports.ts `refused`). */
  partnerRefused: boolean;
  lastLook: number | null;
  stalledAt: number | null;
  yieldedAt: number | null;
  startedAt: number;
  /** The partner's latest report: when it arrived and what it said. */
  heard: { at: number; report: SimReport } | null;
  /** When the `ip addr del` of a degraded holding lands (the report says held until then). */
  releaseAt: number;
  heldBack: boolean;
  /** A leader with a valid lease held back since (null: not held back, or it lost the lease meanwhile). */
  heldBackSince: number | null;
  /** The VIP core last held degraded (the kernel's holding is a degraded one until a leader's lease takes it over). */
  heldDegraded: boolean;
  /** degraded-state.ts #probeAtStart: what the probe of the partner's address and the VIP at start found, and its samples. */
  startArp: 'off-lan' | 'lanha-down' | 'answers' | 'probing' | null;
  startProbe: { partner: boolean; vip: boolean; refused: boolean } | null;
  /** When a Raft message of the partner last arrived since this start (cluster/raft-state-log.ts peerHeard). */
  partnerRaftAt: number | null;
  /** When this server, leading in `term`, first sent the partner a report saying so (cluster/member-status.ts leadReportSent). */
  leadReportAt: { at: number; term: number } | null;
  /** The leader's last ARP probe of the VIP before a hand-back on silence (degraded-state.ts #leaderProbe): when it ended, and whether another MAC answered. */
  leaderProbe: { endedAt: number; answered: boolean } | null;
  /** One running: whether a sample found another holder. */
  leaderProbing: { answered: boolean } | null;
  /** When the last probe that ended (`probe`) started. */
  probeStarted: number;
  /** Degraded at some point since the quorum was last seen (degraded-state.ts #degradedStretch). */
  degradedStretch: boolean;
  /** The witness's latest report: when it arrived and the leader it named. */
  witnessHeard: { at: number; leader: NodeId | null } | null;
  /** degraded-state.ts #yieldedToPartner, #partnerBackSpent. */
  yieldedToPartner: number | null;
  /** The Raft term at the yield (or its last change since): a newer one starts the wait again. */
  yieldTerm: number;
  partnerBackSpent: boolean;
}

type Proc = 'up' | 'paused' | 'dead' | 'machine-down';

interface SimNode {
  id: NodeId;
  server: boolean;
  proc: Proc;
  inc: number;
  core: RaftNode | undefined;
  disk: { hard: HardState; entries: Entry[] };
  drift: number;
  lastTickAt: number;
  pausedAt: number;
  deferred: Message[];
  busy: boolean;
  /** The Ready being persisted. */
  rd: Ready | undefined;
  vip: VipState;
  /** Kernel: does it hold the VIP, and until when without a renewal. */
  kernelHeld: boolean;
  kernelExpiresAt: number;
  /**
   * When the daemon's last `ip` call lands: server.ts runs one batch of actions at a time and awaits
   * each, so a release decided right after an acquire deletes the address after it was added.
   */
  kernelOpAt: number;
  /** Guard: armed deadline (null: disarmed). */
  guardDeadline: number | null;
  /** The guard printed `expired`; the daemon handles it on its next tick (server.ts). */
  guardFired: boolean;
  isolatedUntil: number;
  /** `due`: when the VIP timer is armed for (a vip-tick at another time is a stale one). */
  vipTimerAt: number;
  dg: DegradedModel;
}

type Event =
  | { t: number; seq: number; kind: 'tick' | 'vip-tick' | 'vip-event' | 'guard' | 'guard-del'; node: number; inc: number }
  | { t: number; seq: number; kind: 'deliver'; msg: Message }
  | { t: number; seq: number; kind: 'kernel'; node: number; held: boolean; renew: boolean }
  | { t: number; seq: number; kind: 'persisted'; node: number; inc: number }
  | { t: number; seq: number; kind: 'fault' | 'heal-one' | 'propose' | 'flap'; node: number }
  | { t: number; seq: number; kind: 'dg-tick' | 'report' | 'report-now' | 'probe-sample' | 'probe-done' | 'start-sample' | 'start-done' | 'lprobe-sample' | 'lprobe-done'; node: number; inc: number }
  | { t: number; seq: number; kind: 'report-rx'; node: number; report: SimReport }
  | { t: number; seq: number; kind: 'w-report'; node: number; inc: number }
  | { t: number; seq: number; kind: 'w-report-rx'; node: number; leader: NodeId | null };

/** A member report as the simulation carries it: what degraded mode says of the VIP, and the sender's role and term. */
type SimReport = DegradedVipReport & { leads: boolean; term: number };

export function runVipSim(seed: number, options: VipSimOptions = {}): VipSimReport {
  return new VipSim(seed, options).run();
}

class VipSim {
  #seed: number;
  #rng: Random;
  /** The witness's report timing: its own stream, so the seeds of before it still replay the same faults. */
  #wRng: Random;
  #o: Required<VipSimOptions>;
  #now = 0;
  #seq = 0;
  #q: Event[] = [];
  #nodes: SimNode[];
  #ids = ['a', 'b', 'w'];
  #violations: string[] = [];
  #trace: string[] = [];
  #twoSince: number | null = null;
  #twoHolderMs = 0;
  #takeovers = 0;
  #pauses = 0;
  #kills = 0;
  #crashedHolderAt: number | null = null;
  #crashGaps: number[] = [];
  #ipMaxMs: number;
  #fsyncMaxMs: number;
  #netMaxMs: number;
  #guardMaxMs: number;
  #lapses = 0;
  #noHolderSince: number | null = null;
  #noHolderMs = 0;
  #everHeld = false;
  #dead: number | null = null;
  #degradedHolds = 0;
  #heldBack = 0;
  #handBackGaps: number[] = [];
  #heldBackMs: number[] = [];
  /** The last kernel holding was degraded and it ended here: the hand-back gap runs. */
  #degradedGoneAt: number | null = null;
  #lastHolder = -1;
  /** degraded: the cycle of the scenario (#degradedFault). */
  #cycle: { phase: 'steady' | 'alone' | 'held' | 'back' | 'restart' | 'down'; at: number; survivor: number } = { phase: 'steady', at: 0, survivor: 0 };
  #restartGaps: number[] = [];
  /** degraded: a one-way cluster link: `dialler` cannot connect to `listener` (its raft messages there and the listener's reports back are lost) until `until`. */
  #cut: { dialler: number; listener: number; until: number; both: boolean } | null = null;
  #oneWayCuts = 0;
  #twoWayCuts = 0;
  #leaderProbes = 0;
  #leaderProbesAnswered = 0;
  #aloneGaps: number[] = [];
  #aloneNever = 0;
  /** degraded: the server left alone since (its degraded holding ends the count). */
  #aloneSince: { node: number; at: number } | null = null;
  /** degraded, partnerBack: the return under way (until a leader holds the VIP), and its no-holder stretch running. */
  #partnerBack: { kind: PartnerBackKind; noHolderSince: number | null } | null = null;
  #partnerBacks: Record<PartnerBackKind, number> = { never: 0, late: 0, flap: 0 };
  #partnerBackGaps: Record<PartnerBackKind, number[]> = { never: [], late: [], flap: [] };
  #retakes = 0;
  /** degraded, partnerDown: the cycle under way (its follower's machine down) and its no-holder stretch running. */
  #partnerDown: { noHolderSince: number | null } | null = null;
  #partnerDowns = 0;
  #partnerDownGaps: number[] = [];
  /** The leader killed with its partner's machine down restarted here (the restart gap runs). */
  #restartedAt: { node: number; at: number } | null = null;

  constructor(seed: number, options: VipSimOptions) {
    this.#seed = seed;
    this.#rng = seededRandom(seed);
    this.#wRng = seededRandom(seed * 131 + 7);
    this.#o = {
      guard: options.guard ?? true, guardMarginMs: options.guardMarginMs ?? 20, chaosMs: options.chaosMs ?? 20_000, trace: options.trace ?? false, vipSchedule: options.vipSchedule ?? 'due',
      timers: options.timers ?? raftTimers(undefined), scenario: options.scenario ?? 'chaos', deadVoter: options.deadVoter ?? 'follower', heartbeatsFirst: options.heartbeatsFirst ?? true,
      handBack: options.handBack ?? true, releaseReport: options.releaseReport ?? 'at-once', startProbe: options.startProbe ?? true, leaderReports: options.leaderReports ?? true,
      oneWayEvidence: options.oneWayEvidence ?? true, partnerLanhaKill: options.partnerLanhaKill ?? 0, portProbe: options.portProbe ?? true,
      twoWayCut: options.twoWayCut ?? 0, leaderProbe: options.leaderProbe ?? true, lanYield: options.lanYield ?? true, partnerBack: options.partnerBack ?? 0,
      retakeTerm: options.retakeTerm ?? true, witnessReports: options.witnessReports ?? true, retakeIdle: options.retakeIdle ?? true,
      partnerDown: options.partnerDown ?? 0, holdingProbe: options.holdingProbe ?? true,
    };
    const r = this.#rng;
    this.#ipMaxMs = 1 + r.int(30);
    this.#fsyncMaxMs = r.int(30);
    this.#netMaxMs = 1 + r.int(5);
    this.#guardMaxMs = 1 + r.int(10);
    this.#nodes = this.#ids.map((id, i) => ({
      id, server: i < 2, proc: 'up', inc: 0, core: undefined, disk: { hard: { term: 0, vote: null, commit: 0 }, entries: [] },
      // ±200 ppm is real crystal drift; ±1 % stresses the timing argument far beyond it.
      drift: 1 + (r.float() * 0.02 - 0.01), lastTickAt: 0, pausedAt: 0, deferred: [], busy: false, rd: undefined,
      vip: initialVipState, kernelHeld: false, kernelExpiresAt: 0, kernelOpAt: 0, guardDeadline: null, guardFired: false, isolatedUntil: 0, vipTimerAt: -1,
      dg: freshDegraded(0),
    }));
    this.#nodes.forEach((_, i) => this.#start(i));
    this.#push({ t: 1500 + r.int(1000), seq: 0, kind: 'fault', node: 0 });
  }

  run(): VipSimReport {
    // degraded: a cycle's crash just before the faults stop is followed by a lone server's entry
    // into degraded mode (5 s without a quorum, then its ARP probes, about 8.2 s in all): it gets the time.
    const end = this.#o.chaosMs + (this.#o.scenario === 'degraded' ? 12_000 : 8000);
    let settledAt = -1;
    while (this.#q.length > 0 && this.#violations.length === 0) {
      const e = this.#q.shift()!;
      this.#now = e.t;
      if (this.#now > end) break;
      this.#handle(e);
      this.#check();
      if (this.#now > this.#o.chaosMs + 500 && settledAt < 0 && this.#holders().length === 1) settledAt = this.#now;
    }
    if (this.#twoSince !== null) {
      this.#twoHolderMs += this.#now - this.#twoSince;
      this.#violate(`two VIP holders from ${Math.round(this.#twoSince)} ms to the end`);
    }
    if (this.#violations.length === 0 && settledAt < 0) this.#violate(`no VIP holder within ${end - this.#o.chaosMs} ms after the last fault`);
    if (this.#noHolderSince !== null) this.#noHolderMs += this.#now - this.#noHolderSince;
    return {
      seed: this.#seed, violations: this.#violations, twoHolderMs: Math.round(this.#twoHolderMs), takeovers: this.#takeovers, pauses: this.#pauses, kills: this.#kills,
      crashGapsMs: this.#crashGaps, lapses: this.#lapses, noHolderMs: Math.round(this.#noHolderMs), degradedHolds: this.#degradedHolds, heldBack: this.#heldBack, handBackGapsMs: this.#handBackGaps, heldBackMs: this.#heldBackMs, restartGapsMs: this.#restartGaps, oneWayCuts: this.#oneWayCuts, twoWayCuts: this.#twoWayCuts, leaderProbes: this.#leaderProbes, leaderProbesAnswered: this.#leaderProbesAnswered, aloneGapsMs: this.#aloneGaps, aloneNever: this.#aloneNever,
      partnerBacks: this.#partnerBacks, retakes: this.#retakes, partnerBackGapsMs: this.#partnerBackGaps,
      partnerDowns: this.#partnerDowns, partnerDownGapsMs: this.#partnerDownGaps, trace: this.#trace,
    };
  }

  /** Keeps the queue sorted by (time, seq): binary insertion. */
  #push(e: Event): void {
    e.seq = this.#seq++;
    let lo = 0, hi = this.#q.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      const m = this.#q[mid]!;
      if (m.t < e.t || (m.t === e.t && m.seq < e.seq)) lo = mid + 1; else hi = mid;
    }
    this.#q.splice(lo, 0, e);
  }

  #start(i: number): void {
    const n = this.#nodes[i]!;
    n.inc++;
    n.proc = 'up';
    n.core = new RaftNode({
      id: n.id, witnessFactor: 3, random: seededRandom(this.#seed * 31 + i * 7 + n.inc),
      // As cluster/raft-state-log.ts turns milliseconds into ticks.
      electionTicks: Math.round(this.#o.timers.electionMs / TICK_MS), heartbeatTicks: Math.round(this.#o.timers.heartbeatMs / TICK_MS),
      electionSpreadTicks: Math.round(this.#o.timers.electionSpreadMs / TICK_MS), leaseTicks: Math.floor(this.#o.timers.leaseMs / TICK_MS),
    }, { hardState: { ...n.disk.hard }, conf: { voters: [...this.#ids], learners: [], witnesses: ['w'] }, entries: n.disk.entries.slice() });
    n.busy = false;
    n.deferred = [];
    n.vip = initialVipState;
    n.guardFired = false;
    n.guardDeadline = null;
    n.lastTickAt = this.#now;
    this.#push({ t: this.#now + TICK_MS * n.drift, seq: 0, kind: 'tick', node: i, inc: n.inc });
    if (n.server) this.#armVip(i, VIP_TICK_MS * n.drift, true);
    if (!n.server && this.#o.scenario === 'degraded' && this.#o.witnessReports) {
      // A new connection: its report goes out at once, then every second.
      this.#push({ t: this.#now + 1 + this.#wRng.int(20), seq: 0, kind: 'w-report', node: i, inc: n.inc });
    }
    if (n.server && this.#o.scenario === 'degraded') {
      n.dg = freshDegraded(this.#now);
      if (this.#o.startProbe) {
        n.dg.startArp = 'probing';
        n.dg.startProbe = { partner: false, vip: false, refused: false };
        for (const later of [0, 100, 200]) this.#push({ t: this.#now + later + 1 + this.#rng.int(5), seq: 0, kind: 'start-sample', node: i, inc: n.inc });
        this.#push({ t: this.#now + 1200 + this.#rng.int(20), seq: 0, kind: 'start-done', node: i, inc: n.inc });
      }
      this.#push({ t: this.#now + DG_TICK_MS * n.drift, seq: 0, kind: 'dg-tick', node: i, inc: n.inc });
      this.#push({ t: this.#now + REPORT_EVERY_MS * n.drift, seq: 0, kind: 'report', node: i, inc: n.inc });
      // A new connection: the partner's report comes at once (cluster/raft/transport.ts), and ours to it.
      const other = 1 - i;
      const o = this.#nodes[other]!;
      if (o.core !== undefined && (o.proc === 'up' || o.proc === 'paused')) {
        this.#sendReport(other, 1 + this.#rng.int(20));
        this.#sendReport(i, 1 + this.#rng.int(20));
      }
    }
  }

  #handle(e: Event): void {
    switch (e.kind) {
      case 'tick': {
        const n = this.#nodes[e.node]!;
        if (n.inc !== e.inc || (n.proc !== 'up' && n.proc !== 'paused')) return;
        this.#push({ t: this.#now + TICK_MS * n.drift, seq: 0, kind: 'tick', node: e.node, inc: e.inc });
        if (n.proc === 'paused') return;
        const role = n.core!.role;
        n.core!.tick();
        n.lastTickAt = this.#now;
        this.#heartbeatsNow(n);
        this.#pump(e.node);
        this.#roleEvent(e.node, role);
        return;
      }
      case 'vip-tick': {
        const n = this.#nodes[e.node]!;
        if (n.inc !== e.inc || (n.proc !== 'up' && n.proc !== 'paused')) return;
        if (this.#o.vipSchedule === 'poll') {
          this.#push({ t: this.#now + VIP_TICK_MS * n.drift, seq: 0, kind: 'vip-tick', node: e.node, inc: e.inc });
          if (n.proc === 'paused') return;
          this.#vipTick(e.node);
          return;
        }
        if (e.t !== n.vipTimerAt) return; // re-armed earlier meanwhile
        // A paused process runs its timer once it resumes: look again a tick later.
        if (n.proc === 'paused') { this.#armVip(e.node, VIP_TICK_MS * n.drift, true); return; }
        this.#vipTick(e.node);
        this.#armVip(e.node, this.#vipDueMs(e.node), true);
        return;
      }
      case 'vip-event': {
        // server.ts ticks at once on a role change or a guard expiry (a paused process when it resumes: its timer does).
        const n = this.#nodes[e.node]!;
        if (n.inc !== e.inc || n.proc !== 'up') return;
        this.#vipTick(e.node);
        this.#armVip(e.node, this.#vipDueMs(e.node), false);
        return;
      }
      case 'guard': {
        const n = this.#nodes[e.node]!;
        // The guard is its own process: it runs while the daemon is paused or dead.
        if (n.proc === 'machine-down' || n.guardDeadline === null || this.#now < n.guardDeadline) return;
        n.guardDeadline = null;
        this.#tr(`${n.id} guard deletes the VIP`);
        this.#guardDeletes(e.node);
        n.guardFired = true;
        if (this.#o.vipSchedule === 'due') this.#push({ t: this.#now + 1, seq: 0, kind: 'vip-event', node: e.node, inc: n.inc });
        return;
      }
      case 'guard-del': {
        const n = this.#nodes[e.node]!;
        // A repeat delete is skipped once the daemon armed the guard again (it holds the VIP anew).
        if (n.proc === 'machine-down' || (n.guardDeadline !== null && n.inc === e.inc)) return;
        n.kernelHeld = false;
        return;
      }
      case 'kernel': {
        const n = this.#nodes[e.node]!;
        if (n.proc === 'machine-down') return;
        if (e.held) {
          if (!n.kernelHeld && !e.renew) {
            this.#takeovers++;
            if (this.#crashedHolderAt !== null && n.proc === 'up') { this.#crashGaps.push(Math.round(this.#now - this.#crashedHolderAt)); this.#crashedHolderAt = null; }
          }
          // A renew is `ip addr replace` too: it adds the address back if the guard deleted it meanwhile.
          n.kernelHeld = true;
          n.kernelExpiresAt = this.#now + LIFETIME_MS;
          this.#push({ t: n.kernelExpiresAt, seq: 0, kind: 'kernel', node: e.node, held: false, renew: true });
        } else if (e.renew) {
          if (n.kernelHeld && this.#now >= n.kernelExpiresAt) { n.kernelHeld = false; this.#tr(`${n.id} kernel lifetime ran out`); }
        } else {
          n.kernelHeld = false;
        }
        return;
      }
      case 'deliver': {
        const i = this.#ids.indexOf(e.msg.to);
        const n = this.#nodes[i]!;
        if (n.proc === 'dead' || n.proc === 'machine-down') return;
        if (n.proc === 'paused') { n.deferred.push(e.msg); return; }
        this.#heardRaft(i, e.msg);
        this.#stepNode(i, e.msg);
        return;
      }
      case 'persisted': {
        const n = this.#nodes[e.node]!;
        if (n.inc !== e.inc || n.proc === 'dead' || n.proc === 'machine-down') return;
        if (n.proc === 'paused') { this.#push({ t: this.#now + 5, seq: 0, kind: 'persisted', node: e.node, inc: e.inc }); return; }
        this.#finish(e.node);
        return;
      }
      case 'fault':
        if (this.#o.scenario === 'degraded') {
          if (this.#now < this.#o.chaosMs) this.#degradedFault();
          return;
        }
        if (this.#o.scenario === 'voter-dead') {
          if (this.#now < this.#o.chaosMs) this.#voterDeadFault();
          return;
        }
        if (this.#now < this.#o.chaosMs) {
          this.#fault();
          this.#push({ t: this.#now + 300 + this.#rng.int(1500), seq: 0, kind: 'fault', node: 0 });
        }
        return;
      case 'heal-one':
        this.#healOne(e.node);
        return;
      case 'flap': {
        // partnerBack `flap`: the partner's lanha killed (its machine up: its ports reset) or its
        // machine crashed, or, when down, started again.
        const n = this.#nodes[e.node]!;
        if (n.proc === 'dead' || n.proc === 'machine-down') { this.#healOne(e.node); return; }
        if (n.proc === 'paused') n.proc = 'up';
        const machine = this.#rng.float() < 0.3;
        n.proc = machine ? 'machine-down' : 'dead';
        if (machine) { n.kernelHeld = false; n.guardDeadline = null; }
        else if (this.#o.guard && n.guardDeadline !== null) { n.guardDeadline = null; this.#guardDeletes(e.node); }
        this.#kills++;
        this.#tr(`flap: ${machine ? 'crash machine' : 'kill -9 the lanha of'} ${n.id}`);
        return;
      }
      case 'dg-tick':
      case 'report-now':
      case 'report': {
        const n = this.#nodes[e.node]!;
        if (n.inc !== e.inc || (n.proc !== 'up' && n.proc !== 'paused')) return;
        // A paused process runs its interval timers once it resumes.
        if (n.proc === 'paused') { this.#push({ t: this.#now + 5, seq: 0, kind: e.kind, node: e.node, inc: e.inc }); return; }
        if (e.kind === 'dg-tick') {
          this.#push({ t: this.#now + DG_TICK_MS * n.drift, seq: 0, kind: 'dg-tick', node: e.node, inc: e.inc });
          this.#dgTick(e.node);
        } else if (e.kind === 'report-now') {
          this.#sendReport(e.node, 0);
        } else {
          this.#push({ t: this.#now + REPORT_EVERY_MS * n.drift, seq: 0, kind: 'report', node: e.node, inc: e.inc });
          this.#sendReport(e.node, 0);
        }
        return;
      }
      case 'w-report': {
        const n = this.#nodes[e.node]!;
        if (n.inc !== e.inc || (n.proc !== 'up' && n.proc !== 'paused')) return;
        if (n.proc === 'paused') { this.#push({ ...e, t: this.#now + 5 }); return; }
        this.#push({ ...e, t: this.#now + REPORT_EVERY_MS * n.drift });
        if (n.isolatedUntil > this.#now) return;
        for (const to of [0, 1]) {
          if (this.#nodes[to]!.isolatedUntil > this.#now) continue;
          this.#push({ t: this.#now + 0.1 + this.#wRng.float() * this.#netMaxMs, seq: 0, kind: 'w-report-rx', node: to, leader: n.core!.leader });
        }
        return;
      }
      case 'w-report-rx': {
        const n = this.#nodes[e.node]!;
        if (n.proc === 'dead' || n.proc === 'machine-down') return;
        if (n.proc === 'paused') { this.#push({ ...e, t: this.#now + 5 }); return; }
        n.dg.witnessHeard = { at: this.#now, leader: e.leader };
        return;
      }
      case 'report-rx': {
        const n = this.#nodes[e.node]!;
        if (n.proc === 'dead' || n.proc === 'machine-down') return;
        if (n.proc === 'paused') { this.#push({ ...e, t: this.#now + 5 }); return; }
        n.dg.heard = { at: this.#now, report: e.report };
        // bin/daemon.ts: a leader held back by its partner ticks its VIP service on the partner's report.
        if (this.#o.releaseReport === 'at-once' && n.dg.heldBack && n.proc === 'up') this.#push({ t: this.#now, seq: 0, kind: 'vip-event', node: e.node, inc: n.inc });
        return;
      }
      case 'start-sample': {
        const n = this.#nodes[e.node]!;
        const p = n.dg.startProbe;
        if (n.inc !== e.inc || p === null) return;
        if (this.#nodes.some((o, j) => j !== e.node && o.server && o.proc !== 'machine-down' && o.kernelHeld)) p.vip = true;
        if (this.#nodes[1 - e.node]!.proc !== 'machine-down') p.partner = true;
        if (this.#o.portProbe && this.#nodes[1 - e.node]!.proc === 'dead') p.refused = true;
        return;
      }
      case 'start-done': {
        const n = this.#nodes[e.node]!;
        const p = n.dg.startProbe;
        if (n.inc !== e.inc || p === null || (n.proc !== 'up' && n.proc !== 'paused')) return;
        if (n.proc === 'paused') { this.#push({ ...e, t: this.#now + 5 }); return; }
        n.dg.startArp = p.partner ? (p.refused && !p.vip ? 'lanha-down' : 'answers') : p.vip ? null : 'off-lan';
        n.dg.startProbe = null;
        this.#tr(`${n.id} start probe: ${n.dg.startArp}`);
        return;
      }
      case 'lprobe-sample': {
        const n = this.#nodes[e.node]!;
        if (n.inc !== e.inc || n.dg.leaderProbing === null) return;
        if (this.#nodes.some((o, j) => j !== e.node && o.server && o.proc !== 'machine-down' && o.kernelHeld)) n.dg.leaderProbing.answered = true;
        return;
      }
      case 'lprobe-done': {
        const n = this.#nodes[e.node]!;
        if (n.inc !== e.inc || n.dg.leaderProbing === null || (n.proc !== 'up' && n.proc !== 'paused')) return;
        if (n.proc === 'paused') { this.#push({ ...e, t: this.#now + 5 }); return; }
        n.dg.leaderProbe = { endedAt: this.#now, answered: n.dg.leaderProbing.answered };
        n.dg.leaderProbing = null;
        if (n.dg.leaderProbe.answered) this.#leaderProbesAnswered++;
        this.#tr(`${n.id} leader's VIP probe: ${n.dg.leaderProbe.answered ? 'answered' : 'silent'}`);
        return;
      }
      case 'probe-sample': {
        // arping runs in processes of its own: it samples while the daemon is paused too.
        const n = this.#nodes[e.node]!;
        if (n.inc !== e.inc || n.dg.probing === null) return;
        if (this.#nodes.some((o, j) => j !== e.node && o.server && o.proc !== 'machine-down' && o.kernelHeld)) n.dg.probing.answered = true;
        // The partner's LAN address answers while its machine is up (a killed or paused lanha too).
        if (this.#nodes[1 - e.node]!.proc !== 'machine-down') n.dg.probing.partnerAnswered = true;
        // Its ports reset while no lanha runs there (killed: its machine up); a paused one's kernel accepts.
        if (this.#o.portProbe && this.#nodes[1 - e.node]!.proc === 'dead') n.dg.probing.partnerRefused = true;
        return;
      }
      case 'probe-done': {
        const n = this.#nodes[e.node]!;
        if (n.inc !== e.inc || n.dg.probing === null || (n.proc !== 'up' && n.proc !== 'paused')) return;
        if (n.proc === 'paused') { this.#push({ ...e, t: this.#now + 5 }); return; }
        const { started, answered, partnerAnswered, partnerRefused } = n.dg.probing;
        n.dg.probing = null;
        n.dg.probe = { at: this.#now, answered };
        n.dg.probeStarted = started;
        n.dg.partnerAnswered = partnerAnswered;
        n.dg.partnerRefused = partnerRefused;
        if (n.dg.stalledAt !== null && started < n.dg.stalledAt) n.dg.probe = null;
        else if (!answered) n.dg.stalledAt = null;
        // degraded-state.ts #partnerBack, as the probe ends (before the VIP's next tick could claim on it):
        // the partner's machine is back on the LAN with its lanha up, and no report of it came since the probe started.
        const dg = n.dg;
        if (!partnerAnswered || partnerRefused || (dg.heard !== null && dg.heard.at >= started)) { dg.yieldedToPartner = null; dg.partnerBackSpent = false; }
        if (this.#o.lanYield && dg.active && partnerAnswered && !partnerRefused && (dg.heard === null || dg.heard.at < started) && !dg.partnerBackSpent) {
          dg.yieldedToPartner = this.#now;
          dg.yieldTerm = n.core!.term;
          dg.yieldedAt = this.#now;
          dg.active = false;
          dg.probe = null;
          this.#tr(`${n.id} leaves degraded mode: its partner answers on the LAN, its reports silent`);
        } else if (this.#o.retakeIdle && !dg.active && dg.degradedStretch && dg.yieldedToPartner === null && !dg.partnerBackSpent && partnerAnswered && !partnerRefused && (dg.heard === null || dg.heard.at < started)) {
          // degraded-state.ts: not degraded (its lanha was gone a moment, it left then) and back with
          // its reports silent: the same wait for a taker as after a yield.
          dg.yieldedToPartner = this.#now;
          dg.yieldTerm = n.core!.term;
          this.#tr(`${n.id} partner back on the LAN after this stretch's degraded holding: the wait for a taker runs`);
        }
        return;
      }
      case 'propose':
        this.#propose();
        return;
    }
  }

  /** cluster/raft-state-log.ts: when a Raft message of each peer last arrived (the partner's is what degraded mode reads). */
  #heardRaft(i: number, m: Message): void {
    const n = this.#nodes[i]!;
    if (n.server && m.from === this.#ids[1 - i]) n.dg.partnerRaftAt = this.#now;
  }

  /** What server.ts does on each tick: hold the guard, run the core, carry out the actions. */
  #vipTick(i: number): void {
    const n = this.#nodes[i]!;
    const core = n.core!;
    if (n.guardFired) {
      n.guardFired = false;
      this.#lapses++;
      this.#tr(`${n.id} lapse: the guard expired`);
      const wasDegraded = n.vip.held && n.vip.degraded;
      const [expired, cleanup] = onGuardExpired(n.vip);
      n.vip = expired;
      for (const a of cleanup) if (a.kind === 'release') this.#released(i, this.#ipAt(n), wasDegraded);
    }
    // As server.ts: with a guard, the VIP is taken only with ACQUIRE_LEASE_MIN_MS of lease left.
    const remainingMs = core.leaseRemainingTicks() * TICK_MS * n.drift - (this.#now - n.lastTickAt);
    const leaseValid = core.role === 'leader' && core.transferee === null && core.leaseValid()
      && (n.vip.held || !this.#o.guard || remainingMs >= ACQUIRE_LEASE_MIN_MS);
    const degraded = this.#o.scenario === 'degraded';
    const claim = degraded ? this.#vipClaim(i) : undefined;
    const verdict = degraded && this.#o.handBack && leaseValid && !n.vip.held ? this.#handBackVerdict(i) : null;
    const heldBack = verdict !== null && verdict.refusal !== null;
    if (heldBack && !n.dg.heldBack) { this.#heldBack++; this.#tr(`${n.id} holds back: ${verdict.refusal}`); }
    if (verdict?.probe === true) this.#runLeaderProbe(i);
    // degraded-state.ts leaderHolding: holding as leader, the probe kept fresh where a lapse would wait for one.
    if (degraded && this.#o.handBack && this.#o.holdingProbe && this.#o.leaderProbe && n.vip.held && !n.vip.degraded && leaseValid && n.dg.leaderProbing === null
      && (n.dg.leaderProbe === null || this.#now - n.dg.leaderProbe.endedAt >= 300)) {
      const facts = this.#handBackFacts(i);
      if (handBackVerdict(facts).probe || handBackVerdict({ ...facts, nowMs: this.#now + VIP_PROBE_FRESH_MS }).probe) this.#runLeaderProbe(i);
    }
    n.dg.heldBack = heldBack;
    // The hand-back's wait: a leader held back on what its partner reported (not one that never heard it since its start).
    if (!leaseValid) n.dg.heldBackSince = null;
    else if (heldBack && n.dg.heard !== null) n.dg.heldBackSince ??= this.#now;
    const wasDegraded = n.vip.held && n.vip.degraded;
    const [next, actions] = onTick(n.vip, claim === undefined ? { nowMs: this.#now, leaseValid } : { nowMs: this.#now, leaseValid, degraded: claim, heldBack }, vipTimings('fast', LIFETIME_MS / 1000));
    if (actions.some((a) => a.kind === 'release')) { this.#lapses++; this.#tr(`${n.id} lapse: ${wasDegraded ? `degraded holding let go (${claim})` : `lease lost (${core.role} term ${core.term})`}`); }
    if (actions.some((a) => a.kind === 'acquire') && next.degraded) { this.#degradedHolds++; this.#tr(`${n.id} acquires degraded`); }
    if (actions.some((a) => a.kind === 'acquire') && !next.degraded && n.dg.heldBackSince !== null) {
      this.#heldBackMs.push(Math.round(this.#now - n.dg.heldBackSince));
      n.dg.heldBackSince = null;
    }
    n.vip = next;
    if (next.held) n.dg.heldDegraded = next.degraded;
    if (this.#o.guard && next.held && leaseValid) {
      n.guardDeadline = this.#now + Math.max(1, remainingMs - this.#o.guardMarginMs);
      this.#push({ t: n.guardDeadline, seq: 0, kind: 'guard', node: i, inc: n.inc });
    } else if (this.#o.guard && next.held && next.degraded) {
      // server.ts: a degraded holding's guard deadline moves DEGRADED_HOLD_MS ahead on each tick.
      n.guardDeadline = this.#now + DEGRADED_HOLD_MS;
      this.#push({ t: n.guardDeadline, seq: 0, kind: 'guard', node: i, inc: n.inc });
    }
    if (actions.some((a) => a.kind === 'acquire')) this.#tr(`${n.id} acquires (term ${core.term}, lease ${Math.round(remainingMs)} ms left, acks ${JSON.stringify(core.leaseAckAges())} ticks old)`);
    for (const a of actions) {
      const at = this.#ipAt(n);
      if (a.kind === 'acquire') this.#push({ t: at, seq: 0, kind: 'kernel', node: i, held: true, renew: false });
      else if (a.kind === 'renew') this.#push({ t: at, seq: 0, kind: 'kernel', node: i, held: true, renew: true });
      else if (a.kind === 'release') this.#released(i, at, wasDegraded);
    }
    if (!next.held) n.guardDeadline = null;
  }

  /** The daemon's `ip addr del` lands at `at`; a degraded holding's report says held until then, and (at-once) goes out as it returns (server.ts reportNow). */
  #released(i: number, at: number, degraded: boolean): void {
    const n = this.#nodes[i]!;
    this.#push({ t: at, seq: 0, kind: 'kernel', node: i, held: false, renew: false });
    if (!degraded) return;
    n.dg.releaseAt = at;
    if (this.#o.releaseReport === 'at-once') this.#push({ t: at + 0.5, seq: 0, kind: 'report-now', node: i, inc: n.inc });
  }

  /** degraded-state.ts #look: a quorum seen leaves degraded mode at once; a stall voids the last probe. */
  #look(i: number): boolean {
    const n = this.#nodes[i]!;
    const dg = n.dg;
    if (dg.lastLook !== null && this.#now - dg.lastLook >= STALL_MS) { dg.stalledAt = this.#now; dg.probe = null; }
    dg.lastLook = this.#now;
    const core = n.core!;
    const heard = dg.heard;
    // degraded-state.ts #quorum: the partner's fresh report saying it leads (a one-way cluster link) counts too.
    const quorum = (core.role === 'leader' && core.transferee === null && core.leaseValid()) || (core.role === 'follower' && core.leader !== null)
      || (this.#o.leaderReports && heard !== null && this.#now - heard.at < 2 * REPORT_EVERY_MS && heard.report.leads)
      || (this.#o.witnessReports && dg.witnessHeard !== null && this.#now - dg.witnessHeard.at < 2 * REPORT_EVERY_MS && dg.witnessHeard.leader !== null && dg.witnessHeard.leader !== n.id);
    if (!quorum && this.#o.retakeTerm && dg.active && dg.partnerAnswered && !dg.partnerRefused && core.term !== dg.yieldTerm) {
      // degraded-state.ts #look: degraded with the partner's machine up (its lanha too), and a newer
      // term: an election with the witness, the partner may win it and add the VIP; yield as on its return.
      dg.active = false;
      dg.probe = null;
      dg.yieldedAt = this.#now;
      dg.yieldedToPartner = this.#now;
      dg.yieldTerm = core.term;
      dg.partnerBackSpent = false;
      this.#tr(`${n.id} leaves degraded mode: a newer term with its partner back on the LAN`);
    }
    if (quorum) {
      // degraded-state.ts: a quorum seen after none is reported at once (reportNow).
      if (dg.noQuorumSince !== null && this.#o.releaseReport === 'at-once') this.#push({ t: this.#now + 0.5, seq: 0, kind: 'report-now', node: i, inc: n.inc });
      dg.noQuorumSince = null;
      dg.yieldedToPartner = null;
      dg.partnerBackSpent = false;
      dg.degradedStretch = false;
      if (dg.active) { dg.active = false; dg.probe = null; this.#tr(`${n.id} leaves degraded mode: a quorum`); }
    } else {
      dg.noQuorumSince ??= this.#now;
    }
    return quorum;
  }

  /** degraded-state.ts vipClaim. */
  #vipClaim(i: number): 'hold' | 'yield' | 'off' {
    const dg = this.#nodes[i]!.dg;
    const quorum = this.#look(i);
    if (dg.probe?.answered === true || (dg.yieldedAt !== null && this.#now - dg.yieldedAt < 5000)) return 'yield';
    return dg.active && !quorum && dg.stalledAt === null ? 'hold' : 'off';
  }

  /** degraded-state.ts leaderHeldBack: this server as leader, its partner's latest report (and its own VIP probe). */
  #handBackVerdict(i: number): HandBackVerdict {
    return handBackVerdict(this.#handBackFacts(i));
  }

  #handBackFacts(i: number): HandBackFacts {
    const dg = this.#nodes[i]!.dg;
    return ({
      nowMs: this.#now, startedMs: dg.startedAt, reportEveryMs: REPORT_EVERY_MS, holdMs: DEGRADED_HOLD_MS,
      partner: dg.heard === null ? null : { receivedMs: dg.heard.at, degraded: dg.heard.report },
      ...(dg.startArp === null ? {} : { partnerArp: dg.startArp }),
      ...(this.#o.oneWayEvidence ? { partnerRaftMs: dg.partnerRaftAt, leadReportMs: dg.leadReportAt?.term === this.#nodes[i]!.core!.term ? dg.leadReportAt.at : null } : {}),
      ...(this.#o.leaderProbe ? { vipProbe: dg.leaderProbe === null ? null : { endedMs: dg.leaderProbe.endedAt, answered: dg.leaderProbe.answered } } : {}),
    });
  }

  /** degraded-state.ts #runLeaderProbe: three arping -D 100 ms apart, each waiting a second; sampled while the daemon is paused too. */
  #runLeaderProbe(i: number): void {
    const n = this.#nodes[i]!;
    if (n.dg.leaderProbing !== null) return;
    n.dg.leaderProbing = { answered: false };
    this.#leaderProbes++;
    for (const later of [0, 100, 200]) this.#push({ t: this.#now + later + 1 + this.#rng.int(5), seq: 0, kind: 'lprobe-sample', node: i, inc: n.inc });
    this.#push({ t: this.#now + 1200 + this.#rng.int(20), seq: 0, kind: 'lprobe-done', node: i, inc: n.inc });
  }

  /** degraded-state.ts tick (every 250 ms): enter, leave, yield, probe. */
  #dgTick(i: number): void {
    const n = this.#nodes[i]!;
    const dg = n.dg;
    const quorum = this.#look(i);
    if (dg.probe !== null && this.#now - dg.probe.at > PROBE_VALID_MS) dg.probe = null;
    if (dg.active) {
      if (dg.probe?.answered === true) {
        dg.yieldedAt = this.#now;
        dg.active = false;
        dg.probe = null;
        this.#tr(`${n.id} leaves degraded mode: another MAC answers for the VIP`);
      } else if (dg.probe === null || this.#now - dg.probe.at >= 200) this.#runProbe(i);
      return;
    }
    if (quorum) return;
    const noQuorumMs = this.#now - dg.noQuorumSince!;
    const partnerHeard = dg.heard !== null && this.#now - dg.heard.at < 5000;
    const facts = { noQuorumMs, vipAnswered: dg.probe === null ? null : dg.probe.answered, partnerHeard, stateValid: true, partnerConfigDiffers: false, partnerArp: dg.probe !== null && dg.partnerAnswered ? 'partner' : null, partnerPorts: dg.probe !== null && dg.partnerRefused ? 'refused' as const : null };
    let refusal = degradedRefusal(facts);
    if (partnerHeard) { dg.yieldedToPartner = null; dg.partnerBackSpent = false; }
    // degraded-state.ts #noTaker: yielded to the partner back on the LAN, and nobody took the VIP since.
    if (this.#o.retakeTerm && dg.yieldedToPartner !== null && n.core!.term !== dg.yieldTerm) {
      dg.yieldedToPartner = this.#now;
      dg.yieldTerm = n.core!.term;
      this.#tr(`${n.id} a newer term since its yield: the retake's wait starts again`);
    }
    const y = dg.yieldedToPartner;
    if (refusal !== null && y !== null && this.#now - y >= PARTNER_BACK_WAIT_MS && dg.probe !== null && !dg.probe.answered && dg.probeStarted >= y + 5000 && degradedRefusal({ ...facts, partnerArp: null }) === null) {
      dg.partnerBackSpent = true;
      dg.yieldedToPartner = null;
      this.#retakes++;
      this.#tr(`${n.id} yielded to its partner but nobody took the VIP: degraded again`);
      refusal = null;
    }
    if (refusal === null) {
      dg.active = true;
      dg.degradedStretch = true;
      dg.yieldTerm = n.core!.term;
      this.#tr(`${n.id} enters degraded mode`);
    } else if ((dg.probe === null || this.#now - dg.probe.at >= PROBE_VALID_MS - 1500) && noQuorumMs >= DEGRADED_AFTER_MS - 500 && !partnerHeard) this.#runProbe(i);
  }

  /** Three arping -D 100 ms apart, each waiting a second (services/dhcp/server.ts probeVipArp). */
  #runProbe(i: number): void {
    const n = this.#nodes[i]!;
    if (n.dg.probing !== null) return;
    n.dg.probing = { started: this.#now, answered: false, partnerAnswered: false, partnerRefused: false };
    for (const later of [0, 100, 200]) this.#push({ t: this.#now + later + 1 + this.#rng.int(5), seq: 0, kind: 'probe-sample', node: i, inc: n.inc });
    this.#push({ t: this.#now + 1200 + this.#rng.int(20), seq: 0, kind: 'probe-done', node: i, inc: n.inc });
  }

  /** This server's report to its partner (bin/daemon.ts localReport `degradedVip`), over the cluster link. */
  #sendReport(i: number, afterMs: number): void {
    const n = this.#nodes[i]!;
    const to = 1 - i;
    const quorum = this.#look(i);
    const report: SimReport = {
      active: n.dg.active, held: (n.vip.held && n.vip.degraded) || this.#now < n.dg.releaseAt,
      noQuorumMs: quorum || n.dg.noQuorumSince === null ? 0 : Math.round(this.#now - n.dg.noQuorumSince),
      leads: n.core!.role === 'leader', term: n.core!.term,
    };
    if (n.isolatedUntil > this.#now || this.#nodes[to]!.isolatedUntil > this.#now) return;
    // Reports travel on the connection the receiver dialled: none while it cannot dial the sender.
    if (this.#cut !== null && this.#now < this.#cut.until && this.#cut.dialler === to && this.#cut.listener === i) return;
    if (this.#cut !== null && this.#now < this.#cut.until && this.#cut.both && to < 2) return;
    // The transport writes a report only on a connection the partner dialled (and it is up): sent is on its way.
    const to_ = this.#nodes[to]!;
    if (report.leads && to_.proc !== 'dead' && to_.proc !== 'machine-down' && n.dg.leadReportAt?.term !== report.term) n.dg.leadReportAt = { at: this.#now, term: report.term };
    this.#push({ t: this.#now + afterMs + 0.1 + this.#rng.float() * this.#netMaxMs, seq: 0, kind: 'report-rx', node: to, report });
  }

  /**
   * degraded: a cycle every few seconds: once a leader holds the VIP, one server's machine and the
   * witness go down; the server left alone goes degraded and holds the VIP; 0-3 s later both come
   * back (in either order, up to 1.5 s apart) while the faults of the hand-back run: pauses of any
   * member (GC-sized to SIGSTOP-sized), message delay spikes and slow fsyncs.
   */
  #degradedFault(): void {
    const r = this.#rng;
    const c = this.#cycle;
    const leader = this.#nodes.findIndex((n) => n.server && n.proc === 'up' && n.core?.role === 'leader' && n.kernelHeld);
    if (c.phase === 'steady' && leader >= 0 && this.#o.partnerDown > 0 && this.#now - c.at > 1000 && this.#now < this.#o.chaosMs - 17_000
      && this.#holders().length === 1 && this.#nodes.every((n) => n.proc === 'up') && r.float() < this.#o.partnerDown) {
      // Only the follower's machine: the leader leads on with the witness.
      const down = 1 - leader;
      const d = this.#nodes[down]!;
      d.proc = 'machine-down';
      d.kernelHeld = false;
      d.guardDeadline = null;
      this.#kills++;
      this.#partnerDowns++;
      this.#partnerDown = { noHolderSince: null };
      this.#tr(`crash machine ${d.id} (the witness up): ${this.#nodes[leader]!.id} leads on`);
      c.phase = 'down';
      c.survivor = leader;
      c.at = this.#now + 8000 + r.int(8000);
    } else if (c.phase === 'down') {
      if (this.#now >= c.at) {
        this.#partnerDown = null;
        this.#push({ t: this.#now, seq: 0, kind: 'heal-one', node: 1 - c.survivor });
        this.#tr('the crashed follower comes back');
        c.phase = 'back';
        c.at = this.#now;
      } else if (r.float() < 0.5) {
        // Pauses that lapse the leader's lease (GC under load, an SD-card stall), or the witness's.
        const n = r.float() < 0.8 ? c.survivor : 2;
        const node = this.#nodes[n]!;
        if (node.proc === 'up') {
          const ms = 150 + r.int(550);
          node.proc = 'paused';
          node.pausedAt = this.#now;
          this.#pauses++;
          this.#tr(`pause ${node.id} ${ms} ms`);
          this.#push({ t: this.#now + ms, seq: 0, kind: 'heal-one', node: n });
        }
      }
    } else if (c.phase === 'steady') {
      if (leader >= 0 && this.#now - c.at > 1000 && this.#holders().length === 1 && this.#nodes.every((n) => n.proc === 'up') && r.float() < 0.3) {
        // The leader is killed and restarted while its partner's machine is down (the witness up).
        const down = 1 - leader;
        const d = this.#nodes[down]!, l = this.#nodes[leader]!;
        d.proc = 'machine-down';
        d.kernelHeld = false;
        d.guardDeadline = null;
        l.proc = 'dead';
        this.#kills += 2;
        if (l.guardDeadline !== null) { l.guardDeadline = null; this.#guardDeletes(leader); }
        this.#tr(`crash machine ${d.id} and kill -9 ${l.id}`);
        this.#push({ t: this.#now + 300 + r.int(1200), seq: 0, kind: 'heal-one', node: leader });
        c.phase = 'restart';
        c.survivor = leader;
        c.at = this.#now + 5000 + r.int(3000);
      } else if (leader >= 0 && this.#now - c.at > 1000 && this.#holders().length === 1 && this.#nodes.every((n) => n.proc === 'up')) {
        const victim = r.float() < 0.5 ? leader : 1 - leader;
        c.survivor = 1 - victim;
        // Only its lanha killed (its machine up): its guard deletes the VIP as its stdin closes.
        const lanhaOnly = this.#o.partnerLanhaKill > 0 && r.float() < this.#o.partnerLanhaKill;
        for (const k of [victim, 2]) {
          const n = this.#nodes[k]!;
          if (k === victim && lanhaOnly) {
            n.proc = 'dead';
            if (this.#o.guard && n.guardDeadline !== null) { n.guardDeadline = null; this.#guardDeletes(k); }
            continue;
          }
          n.proc = k === 2 ? 'dead' : 'machine-down';
          n.kernelHeld = false;
          n.guardDeadline = null;
        }
        this.#kills += 2;
        this.#aloneSince = { node: c.survivor, at: this.#now };
        this.#tr(`${lanhaOnly ? 'kill -9 the lanha of' : 'crash machine'} ${this.#nodes[victim]!.id} and kill the witness: ${this.#nodes[c.survivor]!.id} alone`);
        c.phase = 'alone';
        c.at = this.#now;
      } else if (r.float() < 0.3) this.#pauseSome(r.float() < 0.8 ? 50 + r.int(250) : 700 + r.int(2000));
    } else if (c.phase === 'alone') {
      const s = this.#nodes[c.survivor]!;
      if (s.kernelHeld && s.vip.degraded) { c.phase = 'held'; c.at = this.#now + r.int(3000); }
      else if (this.#now - c.at > 20_000) {
        c.phase = 'held';
        c.at = this.#now;
        if (this.#aloneSince !== null) { this.#aloneNever++; this.#aloneSince = null; }
      }
    } else if (c.phase === 'restart') {
      if (this.#now >= c.at) {
        this.#push({ t: this.#now, seq: 0, kind: 'heal-one', node: 1 - c.survivor });
        this.#tr('the crashed server comes back');
        c.phase = 'back';
        c.at = this.#now;
      }
    } else if (c.phase === 'held') {
      // Not in the last 15 s of the faults: such a return lasts up to 21 s, and must end in the run.
      if (this.#now >= c.at && this.#o.partnerBack > 0 && this.#now < this.#o.chaosMs - 15_000 && r.float() < this.#o.partnerBack) {
        this.#partnerBackReturn();
        c.phase = 'back';
        c.at = this.#now;
      } else if (this.#now >= c.at) {
        for (const k of [1 - c.survivor, 2]) this.#push({ t: this.#now + r.int(1500), seq: 0, kind: 'heal-one', node: k });
        this.#tr('the crashed server and the witness come back');
        if (this.#o.twoWayCut > 0 && r.float() < this.#o.twoWayCut) {
          // The cluster link between the two servers cut both ways (a switch port, a VLAN): no Raft
          // message and no report either way; the witness reaches both, and ARP on the LAN works.
          this.#cut = { dialler: 1 - c.survivor, listener: c.survivor, until: this.#now + 3000 + r.int(5000), both: true };
          this.#twoWayCuts++;
          this.#tr(`cluster link cut both ways between ${this.#nodes[0]!.id} and ${this.#nodes[1]!.id} until ${Math.round(this.#cut.until)}`);
        } else if (r.float() < 0.3) {
          // The server coming back cannot dial the degraded one (a firewall, a half-broken link): it
          // gets none of its reports, and the degraded one none of its heartbeats, only its reports.
          this.#cut = { dialler: 1 - c.survivor, listener: c.survivor, until: this.#now + 3000 + r.int(5000), both: false };
          this.#oneWayCuts++;
          this.#tr(`one-way cluster link: ${this.#nodes[1 - c.survivor]!.id} cannot dial ${this.#nodes[c.survivor]!.id} until ${Math.round(this.#cut.until)}`);
        }
        c.phase = 'back';
        c.at = this.#now;
      }
    } else {
      const k = r.int(10);
      if (k <= 4) this.#pauseSome(k <= 2 ? 50 + r.int(250) : 700 + r.int(2000));
      else if (k <= 7) { this.#netMaxMs = 1 + r.int(60); this.#tr(`messages delayed up to ${this.#netMaxMs} ms`); }
      else { this.#fsyncMaxMs = r.int(200); this.#tr(`fsync up to ${this.#fsyncMaxMs} ms`); }
      if (this.#now - c.at > 6000 && leader >= 0 && this.#holders().length === 1) { c.phase = 'steady'; c.at = this.#now; }
    }
    this.#push({ t: this.#now + 100 + r.int(600), seq: 0, kind: 'fault', node: 0 });
  }

  /**
   * partnerBack: the partner's machine comes back with its lanha up, the cluster link between the
   * two servers cut both ways and the witness down (VipSimOptions.partnerBack for the kinds).
   */
  #partnerBackReturn(): void {
    const r = this.#rng;
    const c = this.#cycle;
    const partner = 1 - c.survivor;
    const kinds: PartnerBackKind[] = ['never', 'late', 'flap'];
    const kind = kinds[r.int(3)]!;
    this.#partnerBacks[kind]++;
    this.#partnerBack = { kind, noHolderSince: null };
    this.#push({ t: this.#now + r.int(500), seq: 0, kind: 'heal-one', node: partner });
    let cutMs: number, witnessMs: number;
    if (kind === 'never') {
      cutMs = 12_000 + r.int(6000);
      witnessMs = cutMs + r.int(1500);
    } else if (kind === 'late') {
      cutMs = 15_000 + r.int(5000);
      witnessMs = 4000 + r.int(10_000);
    } else {
      let at = 500;
      const flaps = 2 + r.int(3);
      for (let f = 0; f < flaps; f++) {
        at += 1000 + r.int(2000);
        this.#push({ t: this.#now + at, seq: 0, kind: 'flap', node: partner });
      }
      // An odd count leaves it down: it comes back for good with the link.
      at += 1000 + r.int(2000);
      this.#push({ t: this.#now + at, seq: 0, kind: 'heal-one', node: partner });
      cutMs = at + 1000 + r.int(3000);
      witnessMs = cutMs + r.int(1500);
    }
    this.#cut = { dialler: partner, listener: c.survivor, until: this.#now + cutMs, both: true };
    this.#push({ t: this.#now + witnessMs, seq: 0, kind: 'heal-one', node: 2 });
    this.#tr(`partner-back (${kind}): ${this.#nodes[partner]!.id} back on the LAN, cluster link cut both ways for ${cutMs} ms, the witness back in ${witnessMs} ms`);
  }

  /** Pauses a running member (the survivor of a cycle most often) for `ms`. */
  #pauseSome(ms: number): void {
    const r = this.#rng;
    const pick = r.float() < 0.6 ? this.#cycle.survivor : r.int(3);
    const n = this.#nodes[pick]!;
    if (n.proc !== 'up') return;
    n.proc = 'paused';
    n.pausedAt = this.#now;
    this.#pauses++;
    this.#tr(`pause ${n.id} ${ms} ms`);
    this.#push({ t: this.#now + ms, seq: 0, kind: 'heal-one', node: pick });
  }

  /** When an `ip` call the daemon starts now lands: after its previous one (server.ts awaits each in turn). */
  #ipAt(n: SimNode): number {
    n.kernelOpAt = Math.max(this.#now, n.kernelOpAt) + 1 + this.#rng.int(this.#ipMaxMs);
    return n.kernelOpAt;
  }

  /** A message reaches a running node: step it, send, and (`due`) what server.ts hears of it: role changes, lease extensions. */
  #stepNode(i: number, msg: Message): void {
    const n = this.#nodes[i]!;
    const core = n.core!;
    const role = core.role;
    const endBefore = core.ticks + core.leaseRemainingTicks();
    core.step(msg);
    this.#heartbeatsNow(n);
    this.#pump(i);
    this.#roleEvent(i, role);
    if (this.#o.vipSchedule !== 'due' || !n.server || core.role !== 'leader') return;
    if ((msg.type !== 'heartbeat-resp' && msg.type !== 'append-resp') || core.leaseRemainingTicks() <= 0 || core.ticks + core.leaseRemainingTicks() <= endBefore) return;
    // RaftStateLog.onLeaseExtended -> VipService: the guard's deadline follows the lease while held.
    if (!this.#o.guard || !n.vip.held) return;
    const remainingMs = core.leaseRemainingTicks() * TICK_MS * n.drift - (this.#now - n.lastTickAt);
    if (core.transferee !== null || remainingMs - this.#o.guardMarginMs <= 0) {
      this.#push({ t: this.#now, seq: 0, kind: 'vip-event', node: i, inc: n.inc });
      return;
    }
    n.guardDeadline = this.#now + remainingMs - this.#o.guardMarginMs;
    this.#push({ t: n.guardDeadline, seq: 0, kind: 'guard', node: i, inc: n.inc });
  }

  /** `due`: a role change ticks the VIP service at once (server.ts onRoleChange). */
  #roleEvent(i: number, before: string): void {
    const n = this.#nodes[i]!;
    if (this.#o.vipSchedule !== 'due' || !n.server || n.core!.role === before) return;
    this.#push({ t: this.#now, seq: 0, kind: 'vip-event', node: i, inc: n.inc });
  }

  /** server.ts nextDueMs, on this node's clock. */
  #vipDueMs(i: number): number {
    const n = this.#nodes[i]!;
    const core = n.core!;
    if (n.guardFired) return VIP_TICK_MS * n.drift;
    const degraded = this.#o.scenario === 'degraded';
    // server.ts: held degraded, every tick; degraded mode could claim it: every 250 ms.
    if (degraded && n.vip.held && n.vip.degraded) return VIP_TICK_MS * n.drift;
    if (!n.vip.held) return (core.role === 'leader' ? VIP_TICK_MS : degraded ? DG_TICK_MS : 1000) * n.drift;
    const leaseMs = core.role === 'leader' && core.transferee === null ? core.leaseRemainingTicks() * TICK_MS * n.drift - (this.#now - n.lastTickAt) : 0;
    if (leaseMs <= 0) return VIP_TICK_MS * n.drift;
    const renewMs = (n.vip.renewedAt + 500 - this.#now) * n.drift;
    const garpMs = (n.vip.since! + n.vip.nextGarpOffsetMs - this.#now) * n.drift;
    return Math.max(1, Math.min(leaseMs, renewMs, garpMs, 1000 * n.drift));
  }

  /** server.ts #arm: the timer is moved only earlier, unless `replace` (the timer itself fired, or a restart). */
  #armVip(i: number, delayMs: number, replace: boolean): void {
    const n = this.#nodes[i]!;
    const at = this.#now + delayMs;
    if (!replace && n.vipTimerAt > this.#now && n.vipTimerAt <= at) return;
    n.vipTimerAt = at;
    this.#push({ t: at, seq: 0, kind: 'vip-tick', node: i, inc: n.inc });
  }

  /** guard.ts: delete now, and again 0.05 s and 0.3 s later (an `ip addr replace` still in flight). */
  #guardDeletes(i: number): void {
    const n = this.#nodes[i]!;
    const armedAgainAfter = n.inc;
    for (const later of [0, 50, 300]) {
      this.#push({ t: this.#now + later + this.#rng.int(this.#guardMaxMs + 1), seq: 0, kind: 'guard-del', node: i, inc: armedAgainAfter });
    }
  }

  /** As cluster/raft/host.ts after each tick and step: heartbeats and their answers of the term on disk go out at once. */
  #heartbeatsNow(n: SimNode): void {
    if (n.core && this.#o.heartbeatsFirst) for (const m of n.core.takeHeartbeats(n.disk.hard.term)) this.#send(m);
  }

  #pump(i: number): void {
    const n = this.#nodes[i]!;
    if (n.busy || n.proc !== 'up' || !n.core!.hasReady()) return;
    n.busy = true;
    const rd = n.core!.ready();
    if (rd.softState) this.#tr(`${n.id} ${rd.softState.role} term ${n.core!.term} leader ${rd.softState.leader}`);
    n.rd = rd;
    this.#push({ t: this.#now + (rd.mustSync ? this.#rng.int(this.#fsyncMaxMs + 1) : 0), seq: 0, kind: 'persisted', node: i, inc: n.inc });
  }

  #finish(i: number): void {
    const n = this.#nodes[i]!;
    const rd = n.rd!;
    for (const e of rd.entries) {
      n.disk.entries.length = Math.min(n.disk.entries.length, e.index - 1);
      n.disk.entries.push(e);
    }
    if (rd.hardState) n.disk.hard = { ...rd.hardState };
    for (const m of rd.messages) this.#send(m);
    n.core!.advance(rd);
    n.busy = false;
    n.rd = undefined;
    this.#pump(i);
  }

  #send(m: Message): void {
    const from = this.#nodes[this.#ids.indexOf(m.from)]!, to = this.#nodes[this.#ids.indexOf(m.to)]!;
    if (from.isolatedUntil > this.#now || to.isolatedUntil > this.#now) return;
    // Raft messages travel on the sender's own connection: none while it cannot dial the receiver.
    if (this.#cut !== null && this.#now < this.#cut.until && this.#ids[this.#cut.dialler] === m.from && this.#ids[this.#cut.listener] === m.to) return;
    // Cut both ways: nothing between the two servers (the witness reaches both).
    if (this.#cut !== null && this.#now < this.#cut.until && this.#cut.both && m.from !== 'w' && m.to !== 'w') return;
    this.#push({ t: this.#now + 0.1 + this.#rng.float() * this.#netMaxMs, seq: 0, kind: 'deliver', msg: m });
  }

  #fault(): void {
    const r = this.#rng;
    const leader = this.#nodes.findIndex((n) => n.server && n.proc === 'up' && n.core?.role === 'leader');
    const i = leader >= 0 && r.float() < 0.8 ? leader : r.int(3);
    const n = this.#nodes[i]!;
    if (n.proc !== 'up') return;
    const k = r.int(10);
    if (k <= 3) {
      // Pauses: GC-sized, SD-card-stall-sized, or a SIGSTOP.
      const ms = k <= 1 ? 50 + r.int(100) : k === 2 ? 150 + r.int(600) : 500 + r.int(2500);
      n.proc = 'paused';
      n.pausedAt = this.#now;
      this.#pauses++;
      this.#tr(`pause ${n.id} ${ms} ms`);
      this.#push({ t: this.#now + ms, seq: 0, kind: 'heal-one', node: i });
    } else if (k <= 5) {
      if (n.kernelHeld && this.#holders().length === 1) this.#crashedHolderAt = this.#now;
      n.proc = 'dead';
      this.#kills++;
      this.#tr(`kill -9 ${n.id} (guard ${n.guardDeadline === null ? "disarmed" : `armed until ${Math.round(n.guardDeadline)}`}, vip core held ${n.vip.held}, kernel ${n.kernelHeld})`);
      // The guard sees its stdin close and deletes the VIP at once; without it the kernel keeps it.
      if (this.#o.guard && n.guardDeadline !== null) {
        n.guardDeadline = null;
        this.#guardDeletes(i);
      }
      this.#push({ t: this.#now + 300 + r.int(2500), seq: 0, kind: 'heal-one', node: i });
    } else if (k === 6) {
      if (n.kernelHeld && this.#holders().length === 1) this.#crashedHolderAt = this.#now;
      n.proc = 'machine-down';
      n.kernelHeld = false;
      n.guardDeadline = null;
      this.#kills++;
      this.#tr(`crash machine ${n.id}`);
      this.#push({ t: this.#now + 300 + r.int(2500), seq: 0, kind: 'heal-one', node: i });
    } else if (k === 7) {
      n.isolatedUntil = this.#now + 200 + r.int(2500);
      this.#tr(`isolate ${n.id} until ${Math.round(n.isolatedUntil)}`);
    } else if (k === 8) {
      this.#fsyncMaxMs = r.int(200);
      this.#tr(`fsync up to ${this.#fsyncMaxMs} ms`);
    } else {
      this.#tr(`wall clock of ${n.id} steps ${r.float() < 0.5 ? '-' : '+'}1 h (no timer reads it)`);
    }
  }

  /**
   * voter-dead: first (once a leader holds the VIP) kill the voter chosen for good, then GC-sized
   * pauses of the leader or the voter left and fsync slowdowns, every 200-700 ms.
   */
  #voterDeadFault(): void {
    const r = this.#rng;
    const leader = this.#nodes.findIndex((n) => n.server && n.proc === 'up' && n.core?.role === 'leader' && n.kernelHeld);
    if (this.#dead === null) {
      if (leader < 0) { this.#push({ t: this.#now + 100, seq: 0, kind: 'fault', node: 0 }); return; }
      const victim = this.#o.deadVoter === 'witness' ? 2 : 1 - leader;
      const n = this.#nodes[victim]!;
      n.proc = 'dead';
      n.guardDeadline = null;
      this.#kills++;
      this.#dead = victim;
      this.#tr(`kill -9 ${n.id} for good`);
      this.#propose();
    } else {
      const k = r.int(10);
      if (k <= 7) {
        const left = [0, 1, 2].filter((i) => i !== this.#dead && this.#nodes[i]!.proc === 'up');
        const i = left[r.int(left.length)];
        if (i !== undefined) {
          const n = this.#nodes[i]!;
          const ms = 50 + r.int(51);
          n.proc = 'paused';
          n.pausedAt = this.#now;
          this.#pauses++;
          this.#tr(`pause ${n.id} ${ms} ms`);
          this.#push({ t: this.#now + ms, seq: 0, kind: 'heal-one', node: i });
        }
      } else {
        this.#fsyncMaxMs = r.int(151);
        this.#tr(`fsync up to ${this.#fsyncMaxMs} ms`);
      }
    }
    this.#push({ t: this.#now + 200 + r.int(500), seq: 0, kind: 'fault', node: 0 });
  }

  /** voter-dead: the leader (DHCP under load) proposes an entry every 20 ms. */
  #propose(): void {
    if (this.#now > this.#o.chaosMs) return;
    for (let i = 0; i < this.#nodes.length; i++) {
      const n = this.#nodes[i]!;
      if (n.proc === 'up' && n.core?.role === 'leader' && n.core.propose(new Uint8Array([1, 2, 3])).ok) this.#pump(i);
    }
    this.#push({ t: this.#now + 20, seq: 0, kind: 'propose', node: 0 });
  }

  #healOne(i: number): void {
    const n = this.#nodes[i]!;
    if (n.proc === 'paused') {
      n.proc = 'up';
      // The host catches up the ticks it missed before anything else (the lease ages); all of them
      // came late, so the timeouts they reach wait for what arrived meanwhile (RaftNode.catchUp).
      const missed = Math.floor((this.#now - n.lastTickAt) / (TICK_MS * n.drift));
      n.core!.catchUp(Math.min(missed, 1000), missed);
      n.lastTickAt += missed * TICK_MS * n.drift;
      const msgs = n.deferred;
      n.deferred = [];
      this.#heartbeatsNow(n);
      for (const m of msgs) { this.#heardRaft(i, m); n.core!.step(m); this.#heartbeatsNow(n); }
      if (n.server) this.#vipTick(i);
      if (n.server && this.#o.vipSchedule === 'due') this.#armVip(i, this.#vipDueMs(i), true);
      this.#pump(i);
      this.#tr(`resume ${n.id}`);
    } else if (n.proc === 'dead' || n.proc === 'machine-down') {
      // ExecStartPre= / start(): a restarted daemon deletes a stale VIP before anything else.
      if (n.proc === 'dead') this.#push({ t: this.#now + 1 + this.#rng.int(this.#ipMaxMs), seq: 0, kind: 'kernel', node: i, held: false, renew: false });
      this.#start(i);
      this.#tr(`restart ${n.id}`);
      if (this.#cycle.phase === 'restart' && i === this.#cycle.survivor) this.#restartedAt = { node: i, at: this.#now };
    }
  }

  #holders(): NodeId[] {
    return this.#nodes.filter((n) => n.server && n.proc !== 'machine-down' && n.kernelHeld).map((n) => n.id);
  }

  #check(): void {
    const count = this.#holders().length;
    if (this.#o.scenario === 'degraded') { this.#handBackGap(count); this.#partnerBackGap(count); this.#partnerDownGap(count); }
    if (count > 0) this.#everHeld = true;
    if (this.#everHeld && count === 0 && this.#noHolderSince === null) this.#noHolderSince = this.#now;
    if (count > 0 && this.#noHolderSince !== null) { this.#noHolderMs += this.#now - this.#noHolderSince; this.#noHolderSince = null; }
    const two = count > 1;
    if (two && this.#twoSince === null) this.#twoSince = this.#now;
    if (!two && this.#twoSince !== null) {
      this.#twoHolderMs += this.#now - this.#twoSince;
      this.#violate(`two VIP holders for ${Math.round(this.#now - this.#twoSince)} ms (from ${Math.round(this.#twoSince)} ms)`);
      this.#twoSince = null;
    }
  }

  /** partnerDown: each stretch with no holder while the follower's machine is down. */
  #partnerDownGap(count: number): void {
    const pd = this.#partnerDown;
    if (pd === null) return;
    if (count === 0) { pd.noHolderSince ??= this.#now; return; }
    if (pd.noHolderSince !== null) { this.#partnerDownGaps.push(Math.round(this.#now - pd.noHolderSince)); pd.noHolderSince = null; }
  }

  /** partnerBack: each stretch with no holder within such a return, until a leader holds the VIP (the return is over then). */
  #partnerBackGap(count: number): void {
    const pb = this.#partnerBack;
    if (pb === null) return;
    if (count === 0) { pb.noHolderSince ??= this.#now; return; }
    if (pb.noHolderSince !== null) { this.#partnerBackGaps[pb.kind].push(Math.round(this.#now - pb.noHolderSince)); pb.noHolderSince = null; }
    const h = this.#nodes.find((n) => n.server && n.proc !== 'machine-down' && n.kernelHeld)!;
    if (count === 1 && !h.dg.heldDegraded && (this.#cut === null || this.#now >= this.#cut.until)) this.#partnerBack = null;
  }

  /** degraded: the gap between a degraded holding's end and a leader's holding (a new degraded holding ends the count). */
  #handBackGap(count: number): void {
    const alone = this.#aloneSince;
    if (alone !== null && this.#nodes[alone.node]!.kernelHeld && this.#nodes[alone.node]!.dg.heldDegraded) {
      this.#aloneGaps.push(Math.round(this.#now - alone.at));
      this.#aloneSince = null;
    }
    if (count >= 1 && this.#restartedAt !== null) {
      if (this.#nodes[this.#restartedAt.node]!.kernelHeld) this.#restartGaps.push(Math.round(this.#now - this.#restartedAt.at));
      this.#restartedAt = null;
    }
    if (count === 1) {
      const h = this.#nodes.findIndex((n) => n.server && n.proc !== 'machine-down' && n.kernelHeld);
      if (this.#degradedGoneAt !== null) {
        if (!this.#nodes[h]!.dg.heldDegraded) this.#handBackGaps.push(Math.round(this.#now - this.#degradedGoneAt));
        this.#degradedGoneAt = null;
      }
      this.#lastHolder = h;
    } else if (count === 0 && this.#lastHolder >= 0) {
      const last = this.#nodes[this.#lastHolder]!;
      if (last.dg.heldDegraded && last.proc !== 'machine-down') this.#degradedGoneAt = this.#now;
      this.#lastHolder = -1;
    }
  }

  #violate(text: string): void {
    this.#violations.push(`seed ${this.#seed} t=${Math.round(this.#now)}ms: ${text}`);
  }

  #tr(text: string): void {
    if (this.#o.trace) this.#trace.push(`${Math.round(this.#now)} ${text}; holders [${this.#holders().join(',')}]`);
  }
}
