import { isIPv4, isIPv6 } from 'node:net';
import { z } from 'zod';
import { byteSize, cidr, duration, hostname, listenAddress, port, refuseDuplicates, refuseRepeats } from '../../lib/schema.js';
import { parseRecordLine } from './rdata.js';
import { MAX_IN_FLIGHT } from './bounds.js';

// The `dns:` block. Records are written as in a zone file, one string each, relative names allowed:
//   "www A 10.0.0.5", "@ MX 10 mail", "_ntp._udp SRV 0 0 123 lan-a".

export interface Upstream { address: string; port: number }

/** "192.0.2.53", "192.0.2.53:5353", "::1", "[::1]:5353"; null when it is none of those. */
export function parseUpstream(text: string): Upstream | null {
  const bracket = /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(text);
  const portOk = (p: string | undefined): boolean => p === undefined || (Number(p) >= 1 && Number(p) <= 65535);
  if (bracket) return isIPv6(bracket[1]!) && portOk(bracket[2]) ? { address: bracket[1]!, port: Number(bracket[2] ?? 53) } : null;
  if (isIPv6(text)) return { address: text, port: 53 };
  const m = /^([\d.]+)(?::(\d{1,5}))?$/.exec(text);
  if (!m || !isIPv4(m[1]!) || !portOk(m[2])) return null;
  return { address: m[1]!, port: Number(m[2] ?? 53) };
}

/** An "address[:port]" schema; `what` names it in errors ("an upstream resolver", "a secondary"). */
const serverAddress = (what: string) => z.string({ error: `is not ${what} address` })
  .refine((s) => parseUpstream(s) !== null, { message: `is not ${what} like "192.0.2.53", "192.0.2.53:5353" or "[2001:db8::53]:53"` })
  .transform((s) => parseUpstream(s)!);
const upstream = serverAddress('an upstream resolver');

const record = z.string({ error: 'is not a record (text like "www A 10.0.0.5")' }).superRefine((line, ctx) => {
  const r = parseRecordLine(line, 'zone.invalid');
  if (!r.ok) ctx.addIssue({ code: 'custom', message: r.error.startsWith('is ') ? r.error : `is not a valid record (it ${r.error})` });
});

const CACHE_ENTRIES = 10_000;
const CACHE_BYTES = 4 * 1024 * 1024;

export const dnsConfig = z.object({
  port: port.default(53),
  listen: z.array(listenAddress).optional(),
  tcp: z.boolean().default(true),
  zones: z.array(z.object({
    name: hostname,
    ttl: duration.default(3_600_000),
    negativeTtl: duration.default(60_000),
    primary: hostname.optional(),
    admin: z.string().optional(),
    records: z.array(record).default([]),
    /** Lease hostnames go in this zone (and reverse names in the subnets' reverse zones). */
    leases: z.boolean().default(false),
  }).strict()).default([]),
  /** Serve in-addr.arpa zones for the DHCP subnets and for `subnets`. */
  reverseZones: z.boolean().default(true),
  /** Subnets to serve reverse zones for besides the DHCP ones. */
  subnets: z.array(cidr).default([]),
  forward: z.object({
    upstreams: z.array(upstream).min(1, { message: 'is an empty list (give at least one upstream resolver)' }),
    allow: z.array(cidr).min(1, { message: 'is an empty list (forwarding must be limited to LAN prefixes)' }),
    timeout: duration.default(2000),
    /**
     * The cache's bounds: a number of answers (`10000`) or `{ entries, bytes }` (bytes as "4MiB");
     * whichever is reached first evicts the least recently used answer. 0 entries: no cache.
     */
    cacheSize: z.union([
      z.number().int().min(0),
      z.object({ entries: z.number().int().min(0).default(CACHE_ENTRIES), bytes: byteSize.default(CACHE_BYTES) }).strict(),
    ], { error: 'is not a cache size (a number of entries, or { entries: 10000, bytes: 4MiB })' })
      .default(CACHE_ENTRIES)
      .transform((v) => (typeof v === 'number' ? { entries: v, bytes: CACHE_BYTES } : v)),
    /**
     * Client queries waiting for upstream answers at once in the whole daemon (unbound's
     * num-queries-per-thread, dnsmasq's dns-forward-max); more get SERVFAIL. Shared between the
     * processes by where queries are served (forward.ts `inFlightShares`).
     */
    maxInFlight: z.number().int().min(1).max(65_536).default(MAX_IN_FLIGHT),
    /** Conditional forwarding: names in `name` (and below) go to these upstreams instead; the longest match wins. */
    domains: z.array(z.object({
      name: hostname,
      upstreams: z.array(upstream).min(1, { message: 'is an empty list (give at least one upstream resolver for the domain)' }),
    }).strict()).default([]),
  }).strict().optional(),
  /** Zone transfers (AXFR, and IXFR answered as AXFR) for secondaries in these prefixes; none without it. */
  transfer: z.object({
    allow: z.array(cidr).min(1, { message: 'is an empty list (name the secondaries\' prefixes, or leave transfer out)' }),
    /** Secondaries told of every change by NOTIFY (RFC 1996): "192.0.2.54" or "192.0.2.54:5353". */
    notify: z.array(serverAddress('a secondary')).default([]),
  }).strict().optional(),
  rateLimit: z.object({
    responsesPerSecond: z.number().int().min(1).default(200),
    slip: z.number().int().min(0).default(2),
    ipv4Prefix: z.number().int().min(8).max(32).default(24),
  }).strict().optional(),
  /**
   * Worker processes that answer UDP queries beside the daemon, reading the same sockets (0: the
   * daemon alone). Default: 1 on a machine with two cores or more, else 0; see services/dns/README.md.
   */
  workers: z.number().int().min(0).max(8).optional(),
  maxTcpConnections: z.number().int().min(1).default(256),
  /**
   * Open TCP connections one source address may hold (default: 1/8 of maxTcpConnections, at least
   * 1), so one client cannot take every connection and shut the others out.
   */
  maxTcpConnectionsPerSource: z.number().int().min(1).optional(),
  /** A TCP client must complete each message (and the first) within this; trickling bytes do not extend it. */
  tcpIdleTimeout: duration.refine((ms) => ms >= 100, { message: 'is shorter than 100ms' }).default(10_000),
}).strict().superRefine((c, ctx) => {
  if (c.maxTcpConnectionsPerSource !== undefined && c.maxTcpConnectionsPerSource > c.maxTcpConnections) {
    ctx.addIssue({ code: 'custom', path: ['maxTcpConnectionsPerSource'], message: `is above maxTcpConnections (${c.maxTcpConnections})` });
  }
  refuseRepeats(ctx, c.listen, ['listen'], ['dns']);
  refuseDuplicates(ctx, c.zones.map((z, i) => ({ key: z.name, path: ['zones', i, 'name'] })), ['dns'], 'is the name of another zone:');
  refuseDuplicates(ctx, (c.forward?.domains ?? []).map((d, i) => ({ key: d.name, path: ['forward', 'domains', i, 'name'] })), ['dns'], 'is forwarded twice: also at');
  refuseRepeats(ctx, c.forward?.upstreams.map((u) => `${u.address}:${u.port}`), ['forward', 'upstreams'], ['dns']);
  refuseRepeats(ctx, c.transfer?.notify.map((u) => `${u.address}:${u.port}`), ['transfer', 'notify'], ['dns']);
});

export type DnsConfig = z.output<typeof dnsConfig>;

// The bounds' defaults and derived values live in bounds.ts (no schema there: the daemon's
// services import them without loading zod); kept here for the config's other readers.
export { MAX_IN_FLIGHT, tcpShare } from './bounds.js';
