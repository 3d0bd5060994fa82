import { z } from 'zod';
import { parseIpv4 } from '../../lib/ipv4.js';

// The `http:` block: the read-only operator listener (pages, /metrics, the control API's GET routes
// as JSON). Absent: no listener. Loopback by default; writes never go here (the control socket).

const LISTEN = /^(\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5})$/;

export interface HttpListen {
  host: string;
  port: number;
}

/** "127.0.0.1:7480" -> {host, port}; null when it is not IPv4:port. */
export function parseListen(text: string): HttpListen | null {
  const m = LISTEN.exec(text.trim());
  if (!m || parseIpv4(m[1]!) === null) return null;
  const port = Number(m[2]);
  return port <= 65535 ? { host: m[1]!, port } : null;
}

const listen = z.string({ error: 'is not an address:port (text like "127.0.0.1:7480")' })
  .refine((s) => parseListen(s) !== null, { message: 'is not an IPv4 address:port like "127.0.0.1:7480"' })
  .transform((s) => parseListen(s)!);

export const DEFAULT_HTTP_LISTEN = '127.0.0.1:7480';

export const httpConfig = z.object({
  listen: listen.default(parseListen(DEFAULT_HTTP_LISTEN)!),
  /** Serve Prometheus text at /metrics. */
  metrics: z.boolean().default(true),
  /** Per-lease series with MAC, IP and hostname labels: only for small sites (cardinality). */
  perClientMetrics: z.boolean().default(false),
  /** Open connections at once; more are refused at accept. */
  maxConnections: z.number().int().min(1).max(1024).default(32),
  /** Of those, open at once from one address: one host cannot take every slot (a browser uses up to 6). */
  maxConnectionsPerSource: z.number().int().min(1).max(1024).default(8),
}).strict();

export type HttpConfig = z.output<typeof httpConfig>;
