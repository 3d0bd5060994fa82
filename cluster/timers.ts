// The Raft and VIP timers (heartbeat, election timeout and its random spread, leader lease), given
// one by one (`cluster.heartbeat`, `cluster.electionTimeout`) or derived from one figure,
// `cluster.failoverBudget`: the longest unplanned VIP gap the site accepts (crash of the holder ->
// the new holder's first gratuitous ARP). With none of the three given, the budget is the least
// whose timers ride out `cluster.pauseTolerance` (100 ms: 480 ms; defaultBudgetMs). Pure: the
// config check and the daemon use the same maths, and the simulation (test/sim/vip-sim.ts) runs on its output.
//
//   budget B = detection (at most E + S after the last heartbeat heard) + takeover allowance O
//   E = (B - O) / 1.5, S = E / 2, H = E / 6, L = (E - room) / (1 + drift)      (whole ticks, down)
//
// Why no two holders: another member can win only E after it last heard the leader (pre-vote and
// check-quorum); the old holder's lease ends L after the send of the last heartbeat a majority
// acknowledged, and its guard deletes the VIP GUARD_MARGIN_MS before that. `room` covers one Raft
// tick of rounding, that margin and the guard's own work; `drift` a 2 % difference in clock rates.
// What pause a leader rides out: the lease has at least L - H - tick left when it stops, and the
// guard deletes GUARD_MARGIN_MS before the end, and up to GUARD_CLOCK_EARLY_MS before that (its
// coarse clock); followers start an election E - H after it stops.

/** The Raft tick (cluster/raft-state-log.ts): every Raft timer is counted in it. */
export const RAFT_TICK_MS = 10;
/** The VIP guard deletes the VIP this long before the leader lease would end (services/vip/guard.ts). */
export const GUARD_MARGIN_MS = 20;
/** The guard's monotonic clock (/proc/uptime) counts in steps of this (services/vip/guard.ts). */
export const GUARD_CLOCK_STEP_MS = 10;
/**
 * How much earlier than the hold's end the guard may delete the VIP: it sets the end one clock step
 * early so the coarse reading never makes it late, and that reading lags up to one more step.
 * Safe for two holders (earlier only), but a paused leader loses the VIP up to this much sooner.
 */
export const GUARD_CLOCK_EARLY_MS = 2 * GUARD_CLOCK_STEP_MS;
/** What the guard needs after its margin: wake up, fork `ip`, netlink. */
export const GUARD_WORK_MS = 20;
/** Clock-rate difference between two members that the derived lease allows for (crystals: 0.02 %). */
export const DRIFT = 0.02;
/**
 * What a takeover costs beyond failure detection, allowed for in the budget: pre-vote and vote
 * round trips, the vote fsync, the first heartbeat's acknowledgements (the lease), `ip addr`, the
 * first GARP. Measured parts: bench:vip (`vip.takeover.*` RESULT lines).
 */
export const TAKEOVER_ALLOWANCE_MS = 100;
/** Pauses a Pi's daemon sees (GC 50-100 ms, short SD-card stalls) that must change nothing. */
export const PAUSE_TOLERANCE_DEFAULT_MS = 100;

const ROOM_MS = RAFT_TICK_MS + GUARD_MARGIN_MS + GUARD_WORK_MS;

export interface RaftTimers {
  heartbeatMs: number;
  /** Minimum election timeout E: a member waits a random time in [E, E + spread). */
  electionMs: number;
  electionSpreadMs: number;
  /** Leader lease, from the send of a heartbeat a majority acknowledged. */
  leaseMs: number;
}

export interface TimerSettings {
  heartbeat?: number | undefined;
  electionTimeout?: number | undefined;
  failoverBudget?: number | undefined;
  /** cluster.pauseTolerance: with no timer key given, the timers are the fastest that ride it out. */
  pauseTolerance?: number | undefined;
}

const down = (ms: number): number => Math.floor(ms / RAFT_TICK_MS) * RAFT_TICK_MS;

/** The timers a budget gives. */
export function timersFromBudget(budgetMs: number): RaftTimers {
  const electionMs = Math.max(2 * RAFT_TICK_MS, down((budgetMs - TAKEOVER_ALLOWANCE_MS) / 1.5));
  return {
    electionMs,
    electionSpreadMs: Math.max(RAFT_TICK_MS, down(electionMs / 2)),
    heartbeatMs: Math.max(RAFT_TICK_MS, down(electionMs / 6)),
    leaseMs: Math.max(RAFT_TICK_MS, down((electionMs - ROOM_MS) / (1 + DRIFT))),
  };
}

/**
 * The budget the timers follow when the `cluster:` block names no timer (no failoverBudget,
 * heartbeat or electionTimeout): the least that rides out its pauseTolerance (default 100 ms: 480 ms,
 * which gives heartbeat 40 ms, election timeout 250-370 ms, lease 190 ms). Why this is the default
 * and not the hand-set 100/500 ms pair of sessions 1-5 (a crash gap of ~0.85 s): services/vip/README.md
 * "Default timers".
 */
export function defaultBudgetMs(pauseToleranceMs: number = PAUSE_TOLERANCE_DEFAULT_MS): number {
  return leastBudgetMs(pauseToleranceMs);
}

/** Where a `cluster:` block's timers come from: its failoverBudget, its heartbeat/electionTimeout, or the default budget. */
export function timerSource(c: TimerSettings | undefined): { kind: 'budget' | 'explicit' | 'default'; budgetMs: number | null } {
  if (c?.failoverBudget !== undefined) return { kind: 'budget', budgetMs: c.failoverBudget };
  if (c?.heartbeat !== undefined || c?.electionTimeout !== undefined) return { kind: 'explicit', budgetMs: null };
  return { kind: 'default', budgetMs: defaultBudgetMs(c?.pauseTolerance) };
}

/**
 * The timers of a `cluster:` block: from failoverBudget when given; else, when heartbeat or
 * electionTimeout is given, those two (the other one 100 ms / 500 ms; spread [E, 2E), lease 0.9 x E);
 * else those of the default budget (defaultBudgetMs).
 */
export function raftTimers(c: TimerSettings | undefined): RaftTimers {
  const source = timerSource(c);
  if (source.budgetMs !== null) return timersFromBudget(source.budgetMs);
  const electionMs = c?.electionTimeout ?? 500;
  return { heartbeatMs: c?.heartbeat ?? 100, electionMs, electionSpreadMs: electionMs, leaseMs: 0.9 * electionMs };
}

/** What the timers give: the longest pause that changes nothing, and the longest failure detection. */
export function timerLimits(t: RaftTimers): { pauseToleranceMs: number; detectionMaxMs: number; guardRoomMs: number } {
  const leader = t.leaseMs - t.heartbeatMs - RAFT_TICK_MS - GUARD_MARGIN_MS - GUARD_CLOCK_EARLY_MS;
  const election = t.electionMs - t.heartbeatMs - RAFT_TICK_MS;
  return {
    pauseToleranceMs: Math.min(leader, election),
    detectionMaxMs: t.electionMs + t.electionSpreadMs,
    guardRoomMs: t.electionMs - t.leaseMs - RAFT_TICK_MS - GUARD_MARGIN_MS,
  };
}

/** The shortest budget (in 10 ms steps) whose timers ride out `pauseMs`. */
export function leastBudgetMs(pauseMs: number): number {
  let b = TAKEOVER_ALLOWANCE_MS + 3 * RAFT_TICK_MS;
  while (timerLimits(timersFromBudget(b)).pauseToleranceMs < pauseMs && b < 600_000) b += RAFT_TICK_MS;
  return b;
}

export interface TimerProblem { path: string[]; message: string }

/**
 * Timer settings that `lanctl config check` refuses, each with the key path to blame: a budget
 * given beside the timers it sets, a budget too short for `pauseToleranceMs`, and (with a VIP) an
 * election timeout that leaves the guard no room or a heartbeat the lease cannot outlast twice.
 */
export function timerProblems(c: TimerSettings, pauseToleranceMs: number, vip: boolean): TimerProblem[] {
  const problems: TimerProblem[] = [];
  if (c.failoverBudget !== undefined) {
    for (const key of ['heartbeat', 'electionTimeout'] as const) {
      if (c[key] !== undefined) problems.push({ path: ['cluster', key], message: 'is set together with cluster.failoverBudget, which derives it (remove one of the two)' });
    }
    const t = timersFromBudget(c.failoverBudget);
    const limits = timerLimits(t);
    if (limits.pauseToleranceMs < pauseToleranceMs) {
      problems.push({ path: ['cluster', 'failoverBudget'], message: `is too short to ride out ${pauseToleranceMs} ms pauses (cluster.pauseTolerance): it gives an election timeout of ${t.electionMs} ms, a heartbeat every ${t.heartbeatMs} ms and a ${t.leaseMs} ms leader lease, so a leader paused for more than ${Math.max(0, limits.pauseToleranceMs)} ms loses the VIP; use at least ${leastBudgetMs(pauseToleranceMs)}ms (or a lower cluster.pauseTolerance)` });
    }
    return problems;
  }
  if (timerSource(c).kind === 'default') {
    // The default timers are derived to ride out pauseTolerance; only a tolerance no budget reaches fails.
    const budgetMs = defaultBudgetMs(pauseToleranceMs);
    const limits = timerLimits(timersFromBudget(budgetMs));
    if (limits.pauseToleranceMs < pauseToleranceMs) problems.push({ path: ['cluster', 'pauseTolerance'], message: `is longer than the timers of any failover budget up to ${budgetMs} ms ride out (${Math.max(0, Math.round(limits.pauseToleranceMs))} ms); use a shorter pauseTolerance` });
    return problems;
  }
  const t = raftTimers(c);
  const limits = timerLimits(t);
  if (vip && limits.guardRoomMs < GUARD_WORK_MS) {
    const least = 10 * ROOM_MS;
    problems.push({ path: ['cluster', 'electionTimeout'], message: `is too short with a VIP: the old holder's guard would have ${Math.round(limits.guardRoomMs)} ms between deleting the VIP and the earliest moment another member can win (it needs ${GUARD_WORK_MS}); use at least ${least}ms` });
  }
  if (vip && t.heartbeatMs * 2 > t.leaseMs) {
    problems.push({ path: ['cluster', 'heartbeat'], message: `is too long: the leader lease (0.9 x electionTimeout = ${Math.round(t.leaseMs)} ms) must outlast two heartbeats, or one late heartbeat drops the VIP; use at most ${Math.floor(t.leaseMs / 2)}ms` });
  } else if (limits.pauseToleranceMs < pauseToleranceMs) {
    problems.push({ path: ['cluster', 'heartbeat'], message: `leaves a leader only ${Math.max(0, Math.round(limits.pauseToleranceMs))} ms of pause before it loses its lease${vip ? ' and the VIP' : ''} (cluster.pauseTolerance is ${pauseToleranceMs} ms): shorten the heartbeat or lengthen electionTimeout` });
  }
  return problems;
}

/**
 * Application-level liveness of each Raft peer link (cluster/raft/transport.ts): each end of an
 * authenticated link sends a ping once it has sent nothing for `pingMs`, and closes (then redials)
 * a link on which it has heard nothing for `deadMs`. Without it a link whose packets were
 * blackholed recovers only when TCP retransmits, seconds to tens of seconds after the path heals.
 *
 *   deadMs = max(2 E, LINK_DEAD_MIN_MS)      pingMs = deadMs / 4      (E = the election timeout)
 *
 * Why: a peer silent for E is already treated as gone by Raft (a follower stands for election,
 * a leader steps down on check-quorum), so closing its link earlier buys nothing; closing it at 2 E
 * keeps the link through anything Raft itself rides out. A healthy link is heard at least every
 * pingMs plus the sender's pause, so a link is closed wrongly only after a pause (GC, SD-card
 * stall, a busy CPU) of deadMs - pingMs: 750 ms, against the 50-100 ms a Pi's GC takes. The ping
 * follows the deadline, not E: pings only keep the deadline from closing a healthy link, and at
 * E / 4 (62 ms with the default timers) they were 16 a second on every idle link end, the largest
 * share of an idle follower's and witness's wake-ups (bench:idle); at deadMs / 4 they are 4.
 * The 1 s floor keeps a short budget's timers (E = 230 ms at 450 ms) from turning a loaded machine's event-loop stalls into reconnects; TCP's own first
 * retransmission back-off steps are 0.2-1 s, so a shorter deadline would gain little anyway.
 * A dial must finish its handshake within dialMs = 1 s (two LAN round trips and three HMACs take
 * milliseconds); a SYN lost in a cut is otherwise resent by TCP only 1, 3, 7 s later.
 */
export interface LinkLiveness {
  pingMs: number;
  deadMs: number;
  /** A dial whose handshake has not finished by then is given up and retried at once. */
  dialMs: number;
}

/** The shortest dead-link deadline, whatever the election timeout. */
export const LINK_DEAD_MIN_MS = 1000;
export const LINK_DIAL_MS = 1000;

export function linkLiveness(t: Pick<RaftTimers, 'electionMs'>): LinkLiveness {
  const deadMs = Math.max(LINK_DEAD_MIN_MS, 2 * t.electionMs);
  return { pingMs: Math.floor(deadMs / 4), deadMs, dialMs: LINK_DIAL_MS };
}
