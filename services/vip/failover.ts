import type { LanhaConfig } from '../../config/index.js';
import type { Clock } from '../../lib/clock.js';
import type { Logger } from '../../lib/log.js';
import type { ApiHandler, ApiResponse } from '../../lib/control-server.js';
import type { StateLog } from '../../cluster/state-log.js';
import type { InFlightWork, RunningService } from '../contract.js';

// Planned failover (`lanctl failover [--to NODE]`, HA.md §2.5): on the leader, check the target is a
// LAN-service voter and caught up (waiting up to 2 s), let in-flight TFTP transfers finish while the
// VIP still serves (bounded by vip.drainTimeout; new transfers are taken meanwhile; a transfer
// whose client stopped answering is not waited for), end what is left with an ERROR so firmware retries at once, drop the VIP, hand leadership over with
// TimeoutNow, and wait for the new holder's report of its half of the gap (a `vip.takeover` entry).
// GET /v1/failover says what a running failover waits for. Not done here: draining DHCP commits in
// flight (new proposals are refused while the transfer runs; clients retry).

const CATCH_UP_WAIT_MS = 2000;
const NEW_LEADER_WAIT_MS = 3000;
/** After the new leader is known, how long to wait for its vip.takeover entry. */
const TAKEOVER_REPORT_WAIT_MS = 2000;
const POLL_MS = 5;
const DRAIN_POLL_MS = 20;
/** Time for the ERRORs services send in handOver() to leave from the VIP before it is deleted. */
const HAND_OVER_GRACE_MS = 20;

interface Transferable {
  transferLeadership(to: string): boolean;
}

interface VipHandle {
  holdOff(): Promise<void>;
  resume(): void;
}

export interface FailoverDeps {
  vip: VipHandle;
  state: StateLog;
  config: LanhaConfig;
  clock: Clock;
  log: Logger;
  /** The running services, asked to hand over in-flight work first. */
  services: () => readonly RunningService[];
  /** Tests shorten the waits. */
  catchUpWaitMs?: number;
  newLeaderWaitMs?: number;
  takeoverWaitMs?: number;
  /** Where a running failover publishes what it waits for (GET /v1/failover). */
  progress?: FailoverProgress;
  /** Told once the VIP is deleted here, with the monotonic time its release started: the client-side probes start. */
  onRelease?: ((startedMono: number) => void) | undefined;
}

/** What a running failover is doing, for GET /v1/failover and the CLI's progress lines. */
export interface FailoverProgress {
  phase: 'idle' | 'catch-up' | 'drain' | 'release' | 'transfer' | 'takeover-report';
  /** What it waits for, one line each (e.g. the TFTP transfers still running). */
  waitingFor: string[];
  /** Time spent in this phase, and the most it will wait there. */
  elapsedMs: number;
  limitMs: number;
  /** Monotonic start of the phase (internal). */
  since: number;
}

export interface FailoverResult {
  from: string;
  to: string;
  leader: string;
  /**
   * The silence a LAN client sees on the VIP: from the release here to the new holder's first
   * GARP (this node's release + the new holder's parts). Null if the new holder's report did not
   * arrive; then `leaderKnownMs` is all there is.
   */
  gapMs: number | null;
  /** Named parts of gapMs in order (release, vote, lease wait, ip addr, sockets bound, first GARP). */
  parts: Array<[string, number]>;
  /** Before the gap, while the VIP still served: waiting for in-flight transfers. */
  drainMs: number;
  /** Transfers still running when the drain ended (they got an ERROR). */
  drainLeft: string[];
  /** Transfers not waited for because their client had stopped answering (they got the ERROR too). */
  drainStalled: string[];
  /** From the release here until this node learned of the new leader. */
  leaderKnownMs: number;
  catchUpMs: number;
  /**
   * Set when an election moved leadership to the target before this node handed it over (during
   * the catch-up wait or the drain): the VIP went with it, but nothing was drained or handed over
   * by the failover itself, and the gap was not measured here.
   */
  elected?: true;
}

function canTransfer(state: StateLog): state is StateLog & Transferable {
  return typeof (state as Partial<Transferable>).transferLeadership === 'function';
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function refuse(status: number, error: string, extra: Record<string, unknown> = {}): ApiResponse {
  return { status, body: { error, ...extra } };
}

export function idleProgress(): FailoverProgress {
  return { phase: 'idle', waitingFor: [], elapsedMs: 0, limitMs: 0, since: 0 };
}

/** POST /v1/failover runs one; GET /v1/failover says what the running one waits for. */
export function failoverRoutes(deps: FailoverDeps): Record<string, ApiHandler> {
  let running = false;
  const progress = deps.progress ?? idleProgress();
  const withProgress = { ...deps, progress };
  return {
    'POST /v1/failover': async (request) => {
      if (running) return refuse(409, 'a failover is already running on this node');
      running = true;
      try {
        const body = (request.body ?? {}) as { to?: unknown };
        return await failover(withProgress, typeof body.to === 'string' ? body.to : undefined);
      } finally {
        running = false;
        setPhase(progress, 'idle', 0, deps.clock.monotonicMs());
      }
    },
    'GET /v1/failover': () => {
      const { since: _since, ...rest } = progress;
      return { status: 200, body: { running, ...rest, elapsedMs: running ? Math.round(deps.clock.monotonicMs() - progress.since) : 0 } };
    },
  };
}

function setPhase(progress: FailoverProgress | undefined, phase: FailoverProgress['phase'], limitMs: number, now: number, waitingFor: string[] = []): void {
  if (!progress) return;
  progress.phase = phase;
  progress.limitMs = limitMs;
  progress.since = now;
  progress.waitingFor = waitingFor;
}

/** What the services still have in flight, each line prefixed by the service's name. */
function inFlight(services: readonly RunningService[]): InFlightWork[] {
  return services.flatMap((s) => (s.inFlight?.() ?? []).map((w) => ({ line: `${s.name} ${w.line}`, stalled: w.stalled })));
}

const lines = (work: readonly InFlightWork[], stalled: boolean): string[] => work.filter((w) => w.stalled === stalled).map((w) => w.line);

/** Waits until the target holds every entry we have; the refusal if it does not in time. */
async function awaitCatchUp(deps: FailoverDeps, to: string): Promise<ApiResponse | null> {
  const { state, clock, config } = deps;
  const started = clock.monotonicMs();
  const waitMs = deps.catchUpWaitMs ?? CATCH_UP_WAIT_MS;
  // On etcd the state is not replicated by us: a new holder applies everything up to its win before it serves.
  if (state.status()['backend'] === 'etcd') return null;
  for (;;) {
    const s = state.status() as { lastIndex?: number; progress?: Record<string, { match: number }> };
    if (s.progress?.[to]?.match !== undefined && s.progress[to]!.match >= (s.lastIndex ?? Infinity)) return null;
    // Leadership first: a daemon stalled through the wait may wake with both gone, and then the
    // election, not the target, is what happened.
    if (!state.isLeader()) return LOST_LEADERSHIP;
    if (clock.monotonicMs() - started > waitMs) {
      return refuse(409, `${to} is not caught up (match ${s.progress?.[to]?.match ?? 'unknown'} of ${s.lastIndex ?? '?'}) after ${waitMs} ms: is it running?`);
    }
    await sleep(POLL_MS);
  }
}

/**
 * Lets in-flight work finish while the VIP still serves, up to drainTimeout. Stalled work (its
 * client stopped answering: it would only end after the server's timeout x retries) is not waited
 * for. Returns what is left, live and stalled.
 */
async function drain(deps: FailoverDeps): Promise<{ left: string[]; stalled: string[] }> {
  const { clock, log } = deps;
  const limitMs = deps.config.vip?.drainTimeout ?? 0;
  const started = clock.monotonicMs();
  let work = inFlight(deps.services());
  let live = lines(work, false);
  if (live.length > 0) log.info({ event: 'vip.failover.drain', waitingFor: live, stalled: lines(work, true), limitMs }, `failover: waiting up to ${limitMs / 1000} s for ${live.length} transfer(s) to finish`);
  while (live.length > 0 && clock.monotonicMs() - started < limitMs && deps.state.isLeader()) {
    setPhase(deps.progress, 'drain', limitMs, started, [...live, ...lines(work, true).map((l) => `(not waited for: ${l})`)]);
    await sleep(DRAIN_POLL_MS);
    work = inFlight(deps.services());
    live = lines(work, false);
  }
  const stalled = lines(work, true);
  if (stalled.length > 0) log.info({ event: 'vip.failover.drain_stalled', stalled }, `failover: not waiting for ${stalled.length} stalled transfer(s) (no ACK from the client for two retransmit intervals)`);
  return { left: live, stalled };
}

/** awaitCatchUp's answer when this node stopped leading meanwhile (an election, not the failover). */
const LOST_LEADERSHIP: ApiResponse = { status: 409, body: { error: 'lost leadership' } };

/**
 * Leadership left this node before the failover handed it over: an election (a timeout somewhere,
 * a partition) moved it. Waits for the new leader: if it is the target, what the operator asked
 * for happened and the answer says how; if it is this node again, the caller may run the failover
 * once more; otherwise the answer names where to run it.
 */
async function afterLostLeadership(deps: FailoverDeps, to: string, phase: string, known: Omit<FailoverResult, 'leader' | 'leaderKnownMs' | 'gapMs' | 'parts'>): Promise<ApiResponse | 'lead-again'> {
  const { state, clock, config, log } = deps;
  const self = config.node.name;
  const lostAt = clock.monotonicMs();
  const waitMs = deps.newLeaderWaitMs ?? NEW_LEADER_WAIT_MS;
  setPhase(deps.progress, 'transfer', waitMs, lostAt, ['a leader after an election moved leadership away from this node']);
  // A witness that wins hands leadership on to a LAN-service node at once: wait for that too.
  const witnesses = new Set((config.cluster?.members ?? []).filter((m) => m.role === 'witness').map((m) => m.name));
  const settled = (leader: string | null): boolean => leader !== null && !witnesses.has(leader) && (leader !== self || state.isLeader());
  let leader = state.status().leader;
  while (!settled(leader) && clock.monotonicMs() - lostAt < waitMs) {
    await sleep(POLL_MS);
    leader = state.status().leader;
  }
  if (leader === self && state.isLeader()) return 'lead-again';
  const leaderKnownMs = Math.round(clock.monotonicMs() - lostAt);
  log.warn({ event: 'vip.failover.lost_leadership', to, phase, leader }, `failover to ${to}: an election moved leadership ${leader === null ? 'away' : `to ${leader}`} during the ${phase}, before the hand-over`);
  if (leader === to) {
    const result: FailoverResult = { ...known, leader, gapMs: null, parts: [], leaderKnownMs, elected: true };
    return { status: 200, body: result };
  }
  const where = leader === null || witnesses.has(leader)
    ? `no LAN-service node leads after ${waitMs} ms; run it again once \`lanctl status\` shows one`
    : `run it on ${leader}, the leader now, if the VIP should move again`;
  return refuse(409, `${self} lost leadership during the ${phase} (an election, not the failover); nothing was handed over: ${where}`, { leader });
}

export async function failover(deps: FailoverDeps, requested: string | undefined): Promise<ApiResponse> {
  // Leadership may come back here after an election during the catch-up or drain: then one more try.
  for (let attempt = 0; attempt < 2; attempt++) {
    const answer = await failoverOnce(deps, requested);
    if (answer !== 'lead-again') return answer;
  }
  return refuse(409, `${deps.config.node.name} lost and regained leadership twice during the failover; nothing was handed over: run it again`);
}

async function failoverOnce(deps: FailoverDeps, requested: string | undefined): Promise<ApiResponse | 'lead-again'> {
  const { state, config, clock, log } = deps;
  const self = config.node.name;
  const st = state.status();
  if (st.role !== 'leader' || !state.isLeader()) {
    const where = st.leader !== null && st.leader !== self ? `run it on ${st.leader}, the leader` : 'no leader is known right now; try again in a second';
    return refuse(409, `${self} is not the leader: ${where}`, { leader: st.leader });
  }
  if (!canTransfer(state)) return refuse(409, 'this node runs without a cluster: there is no other node to fail over to');
  const servers = (config.cluster?.members ?? []).filter((m) => m.role === 'server' && m.name !== self).map((m) => m.name);
  const to = requested ?? servers[0];
  if (to === undefined) return refuse(409, 'no other LAN-service node in cluster.members to fail over to');
  if (!servers.includes(to)) {
    const what = to === self ? `${to} is this node, which already leads and holds the VIP`
      : (config.cluster?.members ?? []).some((m) => m.name === to && m.role === 'witness') ? `${to} is the witness, which serves nothing and cannot hold the VIP`
        : `${to} is not another LAN-service node of this cluster`;
    return refuse(400, `${what} (choose one of: ${servers.join(', ') || 'none'})`);
  }

  // 1. The target must hold every entry we have, or it could not win (and would lose acked leases).
  const started = clock.monotonicMs();
  setPhase(deps.progress, 'catch-up', deps.catchUpWaitMs ?? CATCH_UP_WAIT_MS, started, [`${to} to hold every log entry`]);
  const notCaughtUp = await awaitCatchUp(deps, to);
  const catchUpMs = Math.round(clock.monotonicMs() - started);
  const nothingDrained = { from: self, to, drainMs: 0, drainLeft: [], drainStalled: [], catchUpMs };
  if (notCaughtUp === LOST_LEADERSHIP) return afterLostLeadership(deps, to, 'catch-up wait', nothingDrained);
  if (notCaughtUp) return notCaughtUp;

  // 2. Drain: in-flight transfers finish from the VIP (a U-Boot without netretry gives up on an
  // ERROR), new ones are still taken; bounded by vip.drainTimeout.
  const drainStarted = clock.monotonicMs();
  const { left: drainLeft, stalled: drainStalled } = await drain(deps);
  const drainMs = Math.round(clock.monotonicMs() - drainStarted);
  const drained = { from: self, to, drainMs, drainLeft, drainStalled, catchUpMs };
  if (!state.isLeader()) return afterLostLeadership(deps, to, 'drain', drained);
  // DHCP commits made while draining: the target must have them too.
  const behind = await awaitCatchUp(deps, to);
  if (behind === LOST_LEADERSHIP) return afterLostLeadership(deps, to, 'drain', drained);
  if (behind) return behind;

  // 3. What is left ends while the VIP is still here (a TFTP ERROR must leave from it).
  if (drainLeft.length > 0 || drainStalled.length > 0) {
    if (drainLeft.length > 0) log.warn({ event: 'vip.failover.drain_timeout', left: drainLeft, drainMs }, `failover: ${drainLeft.length} transfer(s) still running after ${drainMs} ms; ending them with an ERROR`);
    for (const service of deps.services()) {
      if (service.handOver === undefined) continue;
      await service.handOver().catch((error: unknown) => log.warn({ event: 'vip.failover.hand_over_failed', service: service.name, err: error }, `${service.name} could not hand over`));
    }
    await sleep(HAND_OVER_GRACE_MS);
  }

  // 4. Drop the VIP first, then hand over: the target claims it as soon as it wins.
  setPhase(deps.progress, 'release', 0, clock.monotonicMs(), ['the VIP to be deleted here']);
  const term = state.status().term;
  const reports: Array<{ node: string; term: number; parts: Array<[string, number]>; totalMs: number }> = [];
  const unsubscribe = state.fsm.subscribe((entry) => {
    if (entry.command.type === 'vip.takeover') reports.push(entry.command);
  });
  const releaseStarted = clock.monotonicMs();
  await deps.vip.holdOff();
  const releasedAt = clock.monotonicMs();
  // Probes start once the address is gone here (before, this node would answer them itself) and count from the release's start.
  deps.onRelease?.(releaseStarted);
  const releaseMs = Math.round(releasedAt - releaseStarted);
  log.info({ event: 'vip.failover.start', to, catchUpMs, drainMs, releaseMs }, `failover to ${to}: VIP released, transferring leadership`);
  if (!state.transferLeadership(to)) {
    unsubscribe();
    deps.vip.resume();
    return refuse(409, `leadership transfer to ${to} was refused (not leader any more?)`);
  }
  try {
    const waitMs = deps.newLeaderWaitMs ?? NEW_LEADER_WAIT_MS;
    setPhase(deps.progress, 'transfer', waitMs, releasedAt, [`${to} to win the election`]);
    let leader: string | null;
    for (;;) {
      leader = state.status().leader;
      if (leader !== null && leader !== self) break;
      if (clock.monotonicMs() - releasedAt > waitMs) {
        log.warn({ event: 'vip.failover.timeout', to }, `failover to ${to}: no new leader within ${waitMs} ms`);
        return refuse(504, `${to} did not take over within ${waitMs} ms; the transfer is abandoned and ${self} stays leader if it still can`);
      }
      await sleep(POLL_MS);
    }
    const leaderKnownMs = Math.round(clock.monotonicMs() - releaseStarted);
    // 5. The new holder's half of the gap comes back through the log.
    const reportWaitMs = deps.takeoverWaitMs ?? TAKEOVER_REPORT_WAIT_MS;
    const waitingSince = clock.monotonicMs();
    setPhase(deps.progress, 'takeover-report', reportWaitMs, waitingSince, [`${leader} to report its takeover`]);
    let report = reports.find((r) => r.node === leader && r.term > term);
    while (report === undefined && clock.monotonicMs() - waitingSince < reportWaitMs) {
      await sleep(POLL_MS);
      report = reports.find((r) => r.node === leader && r.term > term);
    }
    const parts: Array<[string, number]> = [['release', releaseMs], ...(report?.parts ?? [])];
    const gapMs = report === undefined ? null : releaseMs + report.totalMs;
    const result: FailoverResult = { from: self, to, leader, gapMs, parts, drainMs, drainLeft, drainStalled, leaderKnownMs, catchUpMs };
    log.info({ event: 'vip.failover.done', to, leader, gapMs, parts: Object.fromEntries(parts), drainMs, leaderKnownMs },
      gapMs === null ? `failover done: ${leader} leads (known ${leaderKnownMs} ms after the release; no takeover report)` : `failover done: ${leader} leads; clients saw ${gapMs} ms without the VIP`);
    return { status: 200, body: result };
  } finally {
    unsubscribe();
    // As a follower now the core will not take it again; if the transfer failed, we may.
    deps.vip.resume();
  }
}
