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

// The guard's margin before the lease ends, and the timer checks, live with the Raft timers.
export { GUARD_MARGIN_MS } from '../../cluster/timers.js';
