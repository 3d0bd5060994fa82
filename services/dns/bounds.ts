import type { DnsConfig } from './config.js';

// Bounds of the `dns:` block the daemon reads at run time, apart from its schema (config.ts), so the
// daemon uses them without loading the schemas.

/**
 * Client queries waiting upstream at once, the whole daemon: unbound's num-queries-per-thread
 * (1024; one thread). dnsmasq's dns-forward-max, 150, is per upstream group and its own manual
 * calls it low for busy sites; 150 shared between two processes answered SERVFAIL on 20 ms stalls
 * at 4,000 misses a second (services/dns/README.md, Bounds).
 */
export const MAX_IN_FLIGHT = 1024;

/** The TCP connections one source may hold: the configured share, else 1/8 of the cap (at least 1). */
export function tcpShare(c: Pick<DnsConfig, 'maxTcpConnections' | 'maxTcpConnectionsPerSource'>): number {
  return c.maxTcpConnectionsPerSource ?? Math.max(1, Math.floor(c.maxTcpConnections / 8));
}
