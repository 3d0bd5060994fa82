import { z } from 'zod';
import { ipv4WithPrefix } from '../../lib/schema.js';

// The `vip:` block: the floating address held by the Raft leader.

export const vipConfig = z.object({
  address: ipv4WithPrefix,
  interface: z.string().min(1),
  mode: z.enum(['fast', 'strict']).default('fast'),
  lifetimeSeconds: z.number().int().min(1).max(60).default(2),
}).strict();

export type VipConfig = z.output<typeof vipConfig>;
