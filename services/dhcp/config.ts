import { z } from 'zod';
import { MCLT_DEFAULT_MS } from '../../cluster/degraded.js';
import { cidr, duration, hostname, ipv4, ipv4Range, mac, port, parsedValue, refuseDuplicates, refuseRepeats } from '../../lib/schema.js';
import { broadcastOf, cidrContains, formatCidr, formatIpv4, parseIpv4, type Cidr, type Ipv4 } from '../../lib/ipv4.js';
import { configOptionBytes } from './options.js';

// The `dhcp:` block. Times are milliseconds after parsing ("12h" -> 43_200_000).

const reservation = z.object({
  mac: mac.optional(),
  clientId: z.string().optional(),
  ip: ipv4,
  hostname: hostname.optional(),
}).strict().refine((r) => r.mac !== undefined || r.clientId !== undefined, { message: 'is a reservation without mac or clientId' });

/** Option 51/58/59 carry whole seconds (u32): 0 s would hand out leases that are over when given. */
const leaseDuration = duration.refine((ms) => ms >= 1000 && ms <= 0xffffffff * 1000, { message: 'is not a lease time between 1s and 136 years (0 would end every lease at once)' });

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
  leaseTime: leaseDuration.default(12 * 3_600_000),
  renewTime: leaseDuration.optional(),
  rebindTime: leaseDuration.optional(),
  routes: z.array(route).optional(),
  /** Relay agents (giaddr) whose requests select this subnet besides the subnet's own range. */
  relays: z.array(ipv4).optional(),
  reservations: z.array(reservation).default([]),
  /**
   * Inventory mode: `known` serves only clients a reservation names (MAC or client id) or that are
   * inventory nodes (dnsmasq's dhcp-ignore=tag:!known, Kea's client-class KNOWN); others get nothing,
   * or an address of `unknownPool` for `unknownLeaseTime` (10m) without boot options.
   */
  clients: z.enum(['all', 'known']).default('all'),
  unknownPool: ipv4Range.optional(),
  unknownLeaseTime: leaseDuration.optional(),
  /**
   * RFC 4039 Rapid Commit: a DISCOVER with option 80 gets an ACK of a committed lease at once (two
   * packets, not four). Off by default, as dnsmasq's dhcp-rapid-commit: with two servers on the
   * link a client could be bound by both (services/dhcp/README.md).
   */
  rapidCommit: z.boolean({ error: 'is not true or false (Rapid Commit, RFC 4039: off unless true)' }).default(false),
  /** Extra options by code: a string (text), a number (u32), or "hex:0a0b..". */
  options: z.record(z.string().regex(/^\d{1,3}$/, { message: 'is not an option code 1..254' }), z.union([z.string(), z.number()])).optional(),
}).strict().superRefine((s, ctx) => {
  checkSubnet(s, ctx);
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
  /**
   * Lease caching (Kea's cache-threshold, cache-max-age): a REQUEST that would change nothing in
   * its client's lease, granted or renewed less than cacheThreshold x the lease time ago (and less
   * than cacheMaxAge), is ACKed from the committed lease with the lease time left, writing nothing.
   * cacheThreshold defaults to 0.25, as Kea's cache-threshold does since Kea 3.0; cacheMaxAge has no
   * default. 0 in either turns caching off.
   */
  cacheThreshold: z.number({ error: 'is not a fraction of the lease time (a number from 0 up to but not including 1, like 0.25; 0 is off)' })
    .min(0, { message: 'is not a fraction of the lease time (0 <= x < 1, like 0.25; 0 is off)' })
    .lt(1, { message: 'is not below 1 (a cached ACK could then state a lease that has run out; use 0 <= x < 1, like 0.25)' })
    .default(0.25),
  cacheMaxAge: duration.optional(),
  subnets: z.array(subnet).min(1, { message: 'is an empty list (a DHCP server needs at least one subnet)' }),
  boot: z.array(bootRule).default([]),
  /**
   * BOOTP clients (RFC 951, RFC 1542): a BOOTREQUEST (no option 53) from a client with a reserved
   * address is always answered; with `dynamic` (dnsmasq's bootp-dynamic) any client gets a pool
   * address, a lease that never ends by itself.
   */
  bootp: z.object({
    dynamic: z.boolean({ error: 'is not true or false (BOOTP clients without a reservation get a pool address only when true)' }).default(false),
  }).strict().default({ dynamic: false }),
  /**
   * The rogue-server detector (rogue.ts, rogue-probe.ts): every `interval` the node serving DHCP
   * broadcasts a DISCOVER from the site's probe MAC and reports OFFERs from servers not ours;
   * `ignore` lists server ids the operator knows and accepts. 0 or false turns the probe off
   * (clients' REQUESTs naming another server are still counted).
   */
  rogueProbe: z.object({
    interval: z.union([z.literal(false), duration], { error: 'is not a probe interval (a duration like "60s", or 0 / false for off)' })
      .transform((v) => (v === false ? 0 : v))
      .refine((ms) => ms === 0 || ms >= 1000, { message: 'is not a probe interval of at least 1s (like "60s"; 0 or false turns the probe off)' })
      .default(60_000),
    ignore: z.array(ipv4).default([]),
  }).strict().default({ interval: 60_000, ignore: [] }),
  /**
   * Degraded split-pool mode (HA.md 2.4, cluster/degraded.ts): a LAN member alone (no quorum for 5 s,
   * the VIP unanswered, its partner silent) answers DHCP from its own half of each pool, leases at
   * most `mclt`, its grants fsync'd to a journal of its own and merged into the log once a quorum is
   * back. Off by default (see services/dhcp/README.md, "Degraded mode"). On, the leader also keeps to
   * the halves: new bindings from its own half only.
   */
  degraded: z.object({
    enabled: z.boolean({ error: 'is not true or false (a member alone answers DHCP from its half of the pools when true)' }).default(false),
    mclt: duration.refine((ms) => ms >= 60_000 && ms <= 7 * 86_400_000, { message: 'is not an MCLT between 1m and 7d (like "1h", the default)' }).default(MCLT_DEFAULT_MS),
  }).strict().default({ enabled: false, mclt: MCLT_DEFAULT_MS }),
  rateLimit: z.object({
    /** A burst of this many packets per MAC, earned back at this many per perMacWindow (rate-limit.ts). */
    perMac: z.number().int().min(1).default(20),
    perMacWindow: duration.refine((ms) => ms >= 1, { message: 'is not a time a MAC earns its burst back in (at least 1ms, like "10s")' }).default(10_000),
    global: z.number().int().min(1).default(2000),
  }).strict().default({ perMac: 20, perMacWindow: 10_000, global: 2000 }),
}).strict().superRefine((c, ctx) => {
  checkSubnets(c.subnets, ctx);
  refuseRepeats(ctx, c.rogueProbe.ignore, ['rogueProbe', 'ignore'], ['dhcp']);
  refuseDuplicates(ctx, c.boot.map((b, i) => ({ key: b.name, path: ['boot', i, 'name'] })), ['dhcp'], 'is the name of another boot rule:');
  if (c.clientPort === c.port) ctx.addIssue({ code: 'custom', path: ['clientPort'], message: 'is the same as dhcp.port (replies would go to the server port)' });
});

type SubnetInput = {
  subnet: Cidr; pools: ReadonlyArray<{ first: number; last: number }>; leaseTime: number; renewTime?: number | undefined; rebindTime?: number | undefined;
  clients?: 'all' | 'known' | undefined; unknownPool?: { first: number; last: number } | undefined; unknownLeaseTime?: number | undefined;
  reservations: ReadonlyArray<{ ip: number; mac?: string | undefined; clientId?: string | undefined; hostname?: string | undefined }>;
  relays?: readonly number[] | undefined;
};

const range = (r: { first: number; last: number }): string => (r.first === r.last ? formatIpv4(r.first) : `${formatIpv4(r.first)}-${formatIpv4(r.last)}`);
const seconds = (ms: number): string => `${ms / 1000}s`;

/** What must hold inside one subnet: pools apart, reservations on a host address of it, T1 < T2 < lease time. */
function checkSubnet(s: SubnetInput, ctx: z.RefinementCtx): void {
  if (!parsedValue(s.subnet)) return; // its own problem is reported; every check below measures against it
  s.pools.forEach((p, j) => {
    if (!parsedValue(p)) return;
    const k = s.pools.findIndex((q, i) => i < j && p.first <= q.last && q.first <= p.last);
    if (k >= 0) ctx.addIssue({ code: 'custom', path: ['pools', j], message: `overlaps pools[${k}] (${range(s.pools[k]!)}); each address may be in one pool only` });
  });
  s.reservations.forEach((r, k) => {
    const where = { code: 'custom' as const, path: ['reservations', k, 'ip'] };
    if (!parsedValue(r.ip)) return;
    if (!cidrContains(s.subnet, r.ip)) ctx.addIssue({ ...where, message: `is outside its subnet ${formatCidr(s.subnet)}` });
    else if (s.subnet.prefixLength < 31 && r.ip === s.subnet.network) ctx.addIssue({ ...where, message: `is the network address of ${formatCidr(s.subnet)}, not a host address` });
    else if (s.subnet.prefixLength < 31 && r.ip === broadcastOf(s.subnet)) ctx.addIssue({ ...where, message: `is the broadcast address of ${formatCidr(s.subnet)}, not a host address` });
  });
  checkUnknownPool(s, ctx);
  // RFC 2131 §4.4.5: T1 (renew) < T2 (rebind) < lease time. Unset ones default to 0.5 and 0.875 of it.
  if (!(s.leaseTime >= 1000)) return; // leaseTime itself is refused
  const renew = s.renewTime ?? Math.floor(s.leaseTime / 2);
  const rebind = s.rebindTime ?? Math.floor(s.leaseTime * 0.875);
  // Options 58 and 59 carry whole seconds: a default T1 of 0 s has clients renew without pause.
  const t1 = Math.floor(renew / 1000), t2 = Math.floor(rebind / 1000);
  if (s.renewTime === undefined && s.rebindTime === undefined && (t1 < 1 || t2 <= t1)) {
    ctx.addIssue({ code: 'custom', path: ['leaseTime'], message: `is too short: the renewal time (T1) would go out as ${t1} s and the rebinding time (T2) as ${t2} s (whole seconds); give at least 3s` });
  }
  const renewLong = s.renewTime !== undefined && s.renewTime >= s.leaseTime;
  const rebindLong = s.rebindTime !== undefined && s.rebindTime >= s.leaseTime;
  if (renewLong) ctx.addIssue({ code: 'custom', path: ['renewTime'], message: `is not shorter than leaseTime (${seconds(s.leaseTime)})` });
  if (rebindLong) ctx.addIssue({ code: 'custom', path: ['rebindTime'], message: `is not shorter than leaseTime (${seconds(s.leaseTime)})` });
  if (renewLong || rebindLong || renew < rebind) return;
  if (s.renewTime !== undefined) {
    ctx.addIssue({ code: 'custom', path: ['renewTime'], message: `is not shorter than ${s.rebindTime !== undefined ? 'rebindTime' : 'the default rebindTime'} (${seconds(rebind)})` });
  } else {
    ctx.addIssue({ code: 'custom', path: ['rebindTime'], message: `is not longer than the default renewTime (${seconds(renew)}, half the lease); set renewTime below it` });
  }
}

/** unknownPool: only with `clients: known`, a range of host addresses of the subnet apart from its pools and reservations. */
function checkUnknownPool(s: SubnetInput, ctx: z.RefinementCtx): void {
  const u = s.unknownPool;
  if (u === undefined) {
    if (s.unknownLeaseTime !== undefined) ctx.addIssue({ code: 'custom', path: ['unknownLeaseTime'], message: 'is set without unknownPool (it is the lease time of unknownPool\'s addresses)' });
    return;
  }
  const where = { code: 'custom' as const, path: ['unknownPool'] };
  if (!parsedValue(u)) return;
  if (s.clients !== 'known') ctx.addIssue({ ...where, message: 'is set but clients is not "known" (with clients: all every client gets the pools)' });
  if (!cidrContains(s.subnet, u.first) || !cidrContains(s.subnet, u.last)) ctx.addIssue({ ...where, message: `is outside its subnet ${formatCidr(s.subnet)}` });
  else if (s.subnet.prefixLength < 31 && (u.first === s.subnet.network || u.last === broadcastOf(s.subnet))) ctx.addIssue({ ...where, message: `holds the network or broadcast address of ${formatCidr(s.subnet)}` });
  const k = s.pools.findIndex((p) => u.first <= p.last && p.first <= u.last);
  if (k >= 0) ctx.addIssue({ ...where, message: `overlaps pools[${k}] (${range(s.pools[k]!)}); unknown clients get addresses apart from known ones` });
  const r = s.reservations.findIndex((x) => x.ip >= u.first && x.ip <= u.last);
  if (r >= 0) ctx.addIssue({ ...where, message: `holds reservations[${r}].ip (${formatIpv4(s.reservations[r]!.ip)}), which is a known client's` });
  // T1 and T2 default to 0.5 and 0.875 of it, in whole seconds: under 3s T1 or T2 would go out as 0 s or equal.
  if (s.unknownLeaseTime !== undefined && s.unknownLeaseTime < 3000) ctx.addIssue({ code: 'custom', path: ['unknownLeaseTime'], message: 'is too short: T1 and T2 (half and 7/8 of it, whole seconds) would be 0 s or equal; give at least 3s' });
}

/** What must hold across subnets: no overlap, one reservation per address / MAC / client id / name. */
function checkSubnets(subnets: readonly SubnetInput[], ctx: z.RefinementCtx): void {
  subnets.forEach((s, j) => {
    const k = subnets.findIndex((o, i) => i < j && (cidrContains(o.subnet, s.subnet.network) || cidrContains(s.subnet, o.subnet.network)));
    if (k >= 0) ctx.addIssue({ code: 'custom', path: ['subnets', j, 'subnet'], message: `overlaps dhcp.subnets[${k}].subnet (${formatCidr(subnets[k]!.subnet)})` });
    (s.relays ?? []).forEach((relay, r) => {
      const other = subnets.findIndex((o, i) => i !== j && (cidrContains(o.subnet, relay) || (i < j && (o.relays ?? []).includes(relay))));
      if (other >= 0) ctx.addIssue({ code: 'custom', path: ['subnets', j, 'relays', r], message: `is already a relay of dhcp.subnets[${other}] (${formatCidr(subnets[other]!.subnet)}); a relay selects one subnet` });
    });
    refuseRepeats(ctx, s.relays, ['subnets', j, 'relays'], ['dhcp']);
  });
  const all = subnets.flatMap((s, i) => s.reservations.map((r, k) => ({ r, path: ['subnets', i, 'reservations', k] })));
  refuseDuplicates(ctx, all.map(({ r, path }) => ({ key: String(r.ip), path: [...path, 'ip'] })), ['dhcp'], 'is reserved twice: also at');
  refuseDuplicates(ctx, all.map(({ r, path }) => ({ key: r.mac, path: [...path, 'mac'] })), ['dhcp'], 'is reserved twice: also at');
  refuseDuplicates(ctx, all.map(({ r, path }) => ({ key: r.clientId?.toLowerCase().replace(/[^0-9a-f]/g, ''), path: [...path, 'clientId'] })), ['dhcp'], 'is reserved twice: also at');
  // A reservation's name belongs to its client: two reservations cannot share one.
  refuseDuplicates(ctx, all.map(({ r, path }) => ({ key: r.hostname?.split('.')[0], path: [...path, 'hostname'] })), ['dhcp'], 'is the host name of another reservation:');
}

export type DhcpConfig = z.output<typeof dhcpConfig>;
export type DhcpSubnetConfig = DhcpConfig['subnets'][number];

// The site's own addresses live in site-addresses.ts (no schema there: the daemon's services
// import them without loading zod); kept here for the config's other readers.
export { siteAddressRoles, siteAddressesOf, type SiteConfig } from './site-addresses.js';
