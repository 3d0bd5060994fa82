import { z } from 'zod';
import { duration, listenAddress, port, refuseRepeats } from '../../lib/schema.js';
import { DEFAULT_RATE_LIMIT } from './gate.js';
import { parseEndpoint } from './endpoint.js';

// The `ntp:` block.

// parseEndpoint lives in endpoint.ts (no schema there: the daemon's services import it without loading
// zod); kept here for the config's other readers.
export { parseEndpoint } from './endpoint.js';

const endpoint = z.string({ error: 'is not an upstream (text like "10.0.0.1" or "10.0.0.1:123")' })
  .refine((s) => parseEndpoint(s) !== null, { message: 'is not an upstream like "10.0.0.1" or "10.0.0.1:123" (IPv4 address, optional port)' });

export const ntpConfig = z.object({
  port: port.default(123),
  listen: z.array(listenAddress).optional(),
  /** Servers this node samples (with its own SNTP client) to know whether its clock is good. */
  upstreams: z.array(endpoint).default([]),
  /** How often each upstream (and the other LAN node) is sampled after the first quick burst. */
  pollInterval: duration.refine((ms) => ms >= 1000 && ms <= 86_400_000, { message: 'is not between 1s and 1d' }).default(64_000),
  /** Serve this stratum with refid LOCL when no upstream is reachable (an isolated rack). */
  localStratum: z.number().int().min(1).max(15).optional(),
  /** An upstream further from our clock than this means the OS is not disciplining it: leap 3. */
  maxOffset: duration.refine((ms) => ms > 0 && ms <= 60_000, { message: 'is not between 1ms and 60s' }).default(128),
  /** Sample the other LAN-service node of the cluster (cluster.members) as a fallback source. */
  samplePeer: z.boolean().default(true),
  /**
   * Take the measured event-loop wake-up off receive stamps and half a send call onto transmit
   * stamps (wake.ts, wake-probe.ts); false serves the raw stamps.
   */
  stampCorrection: z.boolean().default(true),
  /**
   * Receive stamps from the kernel, read from a packet-capture child (tcpdump; capture.ts): `auto`
   * uses them when tcpdump is there and the capture opens, `off` never starts it.
   */
  kernelStamps: z.enum(['auto', 'off'], { error: 'is not auto or off' }).default('auto'),
  rateLimit: z.object({
    /** false turns per-client rate limiting off (benchmarks; a trusted network only). */
    enabled: z.boolean().default(true),
    interval: z.number().int().min(-4).max(12).default(DEFAULT_RATE_LIMIT.interval),
    burst: z.number().int().min(1).max(255).default(DEFAULT_RATE_LIMIT.burst),
    leak: z.number().int().min(1).max(4).default(DEFAULT_RATE_LIMIT.leak),
  }).strict().optional(),
}).strict().superRefine((c, ctx) => {
  refuseRepeats(ctx, c.listen, ['listen'], ['ntp']);
  refuseRepeats(ctx, c.upstreams.map((u) => { const e = parseEndpoint(u); return e === null ? u : `${e.address}:${e.port}`; }), ['upstreams'], ['ntp']);
});

export type NtpConfig = z.output<typeof ntpConfig>;
