import { z } from 'zod';
import { cidr, duration, hostname, ipv4, ipv4Range, mac, port } from '../../lib/schema.js';
import { parseIpv4 } from '../../lib/ipv4.js';
import { configOptionBytes } from './options.js';

// The `dhcp:` block. Times are milliseconds after parsing ("12h" -> 43_200_000).

const reservation = z.object({
  mac: mac.optional(),
  clientId: z.string().optional(),
  ip: ipv4,
  hostname: hostname.optional(),
}).strict().refine((r) => r.mac !== undefined || r.clientId !== undefined, { message: 'is a reservation without mac or clientId' });

const route = z.object({ destination: cidr, gateway: ipv4 }).strict();

const subnet = z.object({
  subnet: cidr,
  pools: z.array(ipv4Range).min(1, { message: 'is an empty list (give at least one range)' }),
  router: z.array(ipv4).optional(),
  dns: z.array(ipv4).optional(),
  ntp: z.array(ipv4).optional(),
  domain: hostname.optional(),
  search: z.array(hostname).optional(),
  broadcast: ipv4.optional(),
  leaseTime: duration.default(12 * 3_600_000),
  renewTime: duration.optional(),
  rebindTime: duration.optional(),
  routes: z.array(route).optional(),
  /** Relay agents (giaddr) whose requests select this subnet besides the subnet's own range. */
  relays: z.array(ipv4).optional(),
  reservations: z.array(reservation).default([]),
  /** Extra options by code: a string (text), a number (u32), or "hex:0a0b..". */
  options: z.record(z.string().regex(/^\d{1,3}$/, { message: 'is not an option code 1..254' }), z.union([z.string(), z.number()])).optional(),
}).strict().superRefine((s, ctx) => {
  // Extra options: codes 1..254 (0 and 255 are PAD and END), values that encode for the code's type.
  for (const [code, value] of Object.entries(s.options ?? {})) {
    const n = Number(code);
    if (n < 1 || n > 254) { ctx.addIssue({ code: 'custom', path: ['options', code], message: 'is not an option code 1..254' }); continue; }
    const bytes = configOptionBytes(n, value, parseIpv4);
    if (typeof bytes === 'string') ctx.addIssue({ code: 'custom', path: ['options', code], message: bytes });
    else if (bytes.length > 1024) ctx.addIssue({ code: 'custom', path: ['options', code], message: 'is longer than 1024 octets' });
  }
});

const bootRule = z.object({
  name: z.string().optional(),
  match: z.object({
    arch: z.array(z.number().int().min(0).max(65535)).optional(),
    vendorClass: z.string().optional(),
    userClass: z.string().optional(),
    mac: z.array(mac).optional(),
    raspberryPi: z.boolean().optional(),
  }).strict().default({}),
  nextServer: ipv4.optional(),
  bootfile: z.string().min(1).max(127, { message: 'is longer than the 127-byte BOOTP file field' }),
}).strict();

export const dhcpConfig = z.object({
  port: port.default(67),
  clientPort: port.default(68),
  listen: ipv4.optional(),
  interface: z.string().optional(),
  /** Server identifier (option 54): the VIP in a site, the node address on a single node. */
  serverId: ipv4.optional(),
  offerTtl: duration.default(30_000),
  declineQuarantine: duration.default(3_600_000),
  reuseGrace: duration.default(0),
  authoritative: z.boolean().default(true),
  subnets: z.array(subnet).min(1, { message: 'is an empty list (a DHCP server needs at least one subnet)' }),
  boot: z.array(bootRule).default([]),
  rateLimit: z.object({
    perMac: z.number().int().min(1).default(5),
    perMacWindow: duration.default(10_000),
    global: z.number().int().min(1).default(2000),
  }).strict().default({ perMac: 5, perMacWindow: 10_000, global: 2000 }),
}).strict();

export type DhcpConfig = z.output<typeof dhcpConfig>;
export type DhcpSubnetConfig = DhcpConfig['subnets'][number];
