import { z } from 'zod';
import { duration, port } from '../../lib/schema.js';

// The `ntp:` block.

export const ntpConfig = z.object({
  port: port.default(123),
  listen: z.array(z.string()).optional(),
  upstreams: z.array(z.string()).default([]),
  pollInterval: duration.default(64_000),
  /** Serve this stratum with refid LOCL when no upstream is reachable (an isolated rack). */
  localStratum: z.number().int().min(1).max(15).optional(),
  rateLimit: z.object({
    interval: z.number().int().min(-4).max(12).default(3),
    burst: z.number().int().min(1).max(255).default(8),
    leak: z.number().int().min(1).max(4).default(2),
  }).strict().optional(),
}).strict();

export type NtpConfig = z.output<typeof ntpConfig>;
