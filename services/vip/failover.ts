import type { LanhaConfig } from '../../config/index.js';
import type { Clock } from '../../lib/clock.js';
import type { Logger } from '../../lib/log.js';
import type { ApiHandler, ApiResponse } from '../../lib/control-server.js';
import type { StateLog } from '../../cluster/state-log.js';
import type { RunningService } from '../contract.js';

// Planned failover (`lanctl failover [--to NODE]`, HA.md §2.5, simplified): on the leader, check the
// target is a LAN-service voter and caught up (waiting up to 2 s), let services end in-flight work
// (TFTP sends ERROR so firmware retries at once), drop the VIP, hand leadership over with
// TimeoutNow, and wait until a new leader is known. Not done here: draining DHCP commits in flight
// (new proposals are refused while the transfer runs; clients retry).

const CATCH_UP_WAIT_MS = 2000;
const NEW_LEADER_WAIT_MS = 3000;
const POLL_MS = 5;
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
}

export interface FailoverResult {
  from: string;
  to: string;
  leader: string;
  /** Time from deleting the VIP here until this node learned of the new leader (which adds it at once). */
  gapMs: number;
  catchUpMs: number;
}

function canTransfer(state: StateLog): state is StateLog & Transferable {
  return typeof (state as Partial<Transferable>).transferLeadership === 'function';
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function refuse(status: number, error: string, extra: Record<string, unknown> = {}): ApiResponse {
  return { status, body: { error, ...extra } };
}

export function failoverRoute(deps: FailoverDeps): ApiHandler {
  let running = false;
  return async (request) => {
    if (running) return refuse(409, 'a failover is already running on this node');
    running = true;
    try {
      const body = (request.body ?? {}) as { to?: unknown };
      return await failover(deps, typeof body.to === 'string' ? body.to : undefined);
    } finally {
      running = false;
    }
  };
}

export async function failover(deps: FailoverDeps, requested: string | undefined): Promise<ApiResponse> {
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
    return refuse(400, `${to} is not another LAN-service node of this cluster (choose one of: ${servers.join(', ') || 'none'})`);
  }

  // 1. The target must hold every entry we have, or it could not win (and would lose acked leases).
  const started = clock.monotonicMs();
  for (;;) {
    const s = state.status() as { lastIndex?: number; progress?: Record<string, { match: number }> };
    if (s.progress?.[to]?.match !== undefined && s.progress[to]!.match >= (s.lastIndex ?? Infinity)) break;
    const waitMs = deps.catchUpWaitMs ?? CATCH_UP_WAIT_MS;
    if (clock.monotonicMs() - started > waitMs) {
      return refuse(409, `${to} is not caught up (match ${s.progress?.[to]?.match ?? 'unknown'} of ${s.lastIndex ?? '?'}) after ${waitMs} ms: is it running?`);
    }
    if (!state.isLeader()) return refuse(409, `${self} lost leadership while waiting for ${to} to catch up`);
    await sleep(POLL_MS);
  }
  const catchUpMs = Math.round(clock.monotonicMs() - started);

  // 2. In-flight work ends while the VIP is still here (a TFTP ERROR must leave from it).
  let handedOver = false;
  for (const service of deps.services()) {
    if (service.handOver === undefined) continue;
    handedOver = true;
    await service.handOver().catch((error: unknown) => log.warn({ event: 'vip.failover.hand_over_failed', service: service.name, err: error }, `${service.name} could not hand over`));
  }
  if (handedOver) await sleep(HAND_OVER_GRACE_MS);

  // 3. Drop the VIP first, then hand over: the target claims it as soon as it wins.
  await deps.vip.holdOff();
  const releasedAt = clock.monotonicMs();
  log.info({ event: 'vip.failover.start', to, catchUpMs }, `failover to ${to}: VIP released, transferring leadership`);
  if (!state.transferLeadership(to)) {
    deps.vip.resume();
    return refuse(409, `leadership transfer to ${to} was refused (not leader any more?)`);
  }
  try {
    for (;;) {
      const leader = state.status().leader;
      if (leader !== null && leader !== self) {
        const gapMs = Math.round(clock.monotonicMs() - releasedAt);
        log.info({ event: 'vip.failover.done', to, leader, gapMs }, `failover done: ${leader} leads (${gapMs} ms after the VIP was released here)`);
        const result: FailoverResult = { from: self, to, leader, gapMs, catchUpMs };
        return { status: 200, body: result };
      }
      const waitMs = deps.newLeaderWaitMs ?? NEW_LEADER_WAIT_MS;
      if (clock.monotonicMs() - releasedAt > waitMs) {
        log.warn({ event: 'vip.failover.timeout', to }, `failover to ${to}: no new leader within ${waitMs} ms`);
        return refuse(504, `${to} did not take over within ${waitMs} ms; the transfer is abandoned and ${self} stays leader if it still can`);
      }
      await sleep(POLL_MS);
    }
  } finally {
    // As a follower now the core will not take it again; if the transfer failed, we may.
    deps.vip.resume();
  }
}
