import { z } from 'zod';
import { cidr, duration, hostname, port } from '../../lib/schema.js';

// The `dns:` block. Records are written as in a zone file, one string each, relative names allowed:
//   "www A 10.0.0.5", "@ MX 10 mail", "_ntp._udp SRV 0 0 123 lan-a".

export const dnsConfig = z.object({
  port: port.default(53),
  listen: z.array(z.string()).optional(),
  tcp: z.boolean().default(true),
  zones: z.array(z.object({
    name: hostname,
    ttl: duration.default(3_600_000),
    negativeTtl: duration.default(60_000),
    primary: hostname.optional(),
    admin: z.string().optional(),
    records: z.array(z.string()).default([]),
    /** Lease hostnames go in this zone (and reverse names in the subnets' reverse zones). */
    leases: z.boolean().default(false),
  }).strict()).default([]),
  reverseZones: z.boolean().default(true),
  forward: z.object({
    upstreams: z.array(z.string()).min(1),
    allow: z.array(cidr).min(1, { message: 'is an empty list (forwarding must be limited to LAN prefixes)' }),
    timeout: duration.default(2000),
    cacheSize: z.number().int().min(0).default(10_000),
  }).strict().optional(),
  rateLimit: z.object({
    responsesPerSecond: z.number().int().min(1).default(200),
    slip: z.number().int().min(0).default(2),
    ipv4Prefix: z.number().int().min(8).max(32).default(24),
  }).strict().optional(),
  maxTcpConnections: z.number().int().min(1).default(256),
  tcpIdleTimeout: duration.default(10_000),
}).strict();

export type DnsConfig = z.output<typeof dnsConfig>;
