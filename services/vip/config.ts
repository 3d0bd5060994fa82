import { z } from 'zod';
import { duration, ipv4WithPrefix } from '../../lib/schema.js';

// The `vip:` block: the floating address held by the Raft leader.

export const vipConfig = z.object({
  address: ipv4WithPrefix,
  interface: z.string().min(1),
  mode: z.enum(['fast', 'strict']).default('fast'),
  lifetimeSeconds: z.number().int().min(1).max(60).default(2),
  /**
   * Planned failover: how long the VIP stays while in-flight TFTP transfers finish (new ones are
   * still taken); what is left after this gets an ERROR. 0 ends them at once.
   */
  drainTimeout: duration.default(30_000).refine((ms) => ms <= 300_000, { message: 'is longer than 5 minutes (a failover waits this long at most)' }),
}).strict();

export type VipConfig = z.output<typeof vipConfig>;

/**
 * The VIP guard deletes the VIP this long before the leader lease would end: room for the guard to
 * wake up and run `ip addr del` before the earliest moment another member can win.
 */
export const GUARD_MARGIN_MS = 20;
/** The Raft tick (cluster/raft-state-log.ts): lease and election timing are counted in it. */
const RAFT_TICK_MS = 10;
/** What the guard needs after its margin: wake up, fork `ip`, netlink. */
const GUARD_WORK_MS = 20;

/**
 * Timer settings under which the VIP could be held by two nodes (or drop on one late heartbeat),
 * each with the config path to blame. The old holder's lease ends 0.9 x electionTimeout after the
 * last acknowledged heartbeat was sent; another member can win only electionTimeout after it last
 * heard that heartbeat (less one tick of rounding); the guard deletes GUARD_MARGIN_MS before the
 * lease ends and needs GUARD_WORK_MS to do it.
 */
export function vipTimingProblems(electionTimeoutMs: number, heartbeatMs: number): Array<{ path: string[]; message: string }> {
  const problems: Array<{ path: string[]; message: string }> = [];
  const room = 0.1 * electionTimeoutMs - RAFT_TICK_MS - GUARD_MARGIN_MS;
  if (room < GUARD_WORK_MS) {
    const least = 10 * (RAFT_TICK_MS + GUARD_MARGIN_MS + GUARD_WORK_MS);
    problems.push({ path: ['cluster', 'electionTimeout'], message: `is too short with a VIP: the old holder's guard would have ${Math.round(room)} ms between deleting the VIP and the earliest moment another member can win (it needs ${GUARD_WORK_MS}); use at least ${least}ms` });
  }
  const leaseMs = 0.9 * electionTimeoutMs;
  if (heartbeatMs * 2 > leaseMs) {
    problems.push({ path: ['cluster', 'heartbeat'], message: `is too long: the leader lease (0.9 x electionTimeout = ${Math.round(leaseMs)} ms) must outlast two heartbeats, or one late heartbeat drops the VIP; use at most ${Math.floor(leaseMs / 2)}ms` });
  }
  return problems;
}
