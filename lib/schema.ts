import { isIP } from 'node:net';
import { z } from 'zod';
import { parseCidr, parseIpv4, parseIpv4Range, type Cidr, type Ipv4, type Ipv4Range } from './ipv4.js';
import { parseMac, type Mac } from './mac.js';
import { formatPath } from './config-errors.js';
import { isHostname, parseByteSize, parseDurationMs } from './scalars.js';

// Zod building blocks for the config: each parses operator text into the typed value the services
// use, and its message is a predicate ("is not ...") that the formatter puts after the key path and
// the bad value.

export const ipv4 = z.string({ error: 'is not an IPv4 address (text like "10.0.0.1")' })
  .refine((s) => parseIpv4(s) !== null, { message: 'is not an IPv4 address' })
  .transform((s): Ipv4 => parseIpv4(s)!);

export const cidr = z.string({ error: 'is not a CIDR prefix (text like "10.0.0.0/24")' })
  .refine((s) => parseCidr(s) !== null, { message: 'is not a CIDR prefix like "10.0.0.0/24"' })
  .transform((s): Cidr => parseCidr(s)!);

/** "10.0.0.1/24": an address with its prefix length (host bits kept). */
export const ipv4WithPrefix = z.string({ error: 'is not an address with prefix (text like "10.0.0.1/24")' })
  .refine((s) => {
    const [ip, len] = s.split('/');
    return ip !== undefined && len !== undefined && parseIpv4(ip) !== null && /^\d{1,2}$/.test(len) && Number(len) <= 32;
  }, { message: 'is not an address with prefix like "10.0.0.1/24"' })
  .transform((s) => {
    const [ip, len] = s.split('/');
    return { address: parseIpv4(ip!)!, prefixLength: Number(len) };
  });

export const ipv4Range = z.string({ error: 'is not an IPv4 range (text like "10.0.0.100-10.0.0.199")' })
  .refine((s) => parseIpv4Range(s) !== null, { message: 'is not an IPv4 range like "10.0.0.100-10.0.0.199" (first <= last)' })
  .transform((s): Ipv4Range => parseIpv4Range(s)!);

export const mac = z.string({ error: 'is not a MAC address (text like "b8:27:eb:01:02:03")' })
  .refine((s) => parseMac(s) !== null, { message: 'is not a MAC address like "b8:27:eb:01:02:03"' })
  .transform((s): Mac => parseMac(s)!);

// Port 0 would bind a port the kernel picks, which no client could find: refused everywhere.
export const port = z.number({ error: 'is not a port number (an integer 1..65535)' })
  .int({ message: 'is not an integer port' })
  .min(1, { message: 'is not a port (1..65535; 0 would be a random port no client can find)' })
  .max(65535, { message: 'is not a port (1..65535)' });

export const hostname = z.string({ error: 'is not a host name' })
  .refine(isHostname, { message: 'is not a valid DNS name (labels of letters, digits and "-", at most 63 each)' })
  .transform((s) => (s.endsWith('.') ? s.slice(0, -1) : s).toLowerCase());

/** A duration in milliseconds, written "500ms", "30s", "5m", "12h", "7d" or as seconds. */
export const duration = z.union([z.string(), z.number()], { error: 'is not a duration (like "30s", "12h" or a number of seconds)' })
  .refine((v) => parseDurationMs(v) !== null, { message: 'is not a duration (like "500ms", "30s", "12h" or a number of seconds)' })
  .transform((v) => parseDurationMs(v)!);

export const logLevel = z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);

/** A size in bytes, written "512KiB", "8MiB", "1GB" or as a number of bytes. */
export const byteSize = z.union([z.string(), z.number()], { error: 'is not a size (like "8MiB", "512KiB" or a number of bytes)' })
  .refine((v) => parseByteSize(v) !== null, { message: 'is not a size (like "8MiB", "512KiB" or a number of bytes)' })
  .transform((v) => parseByteSize(v)!);

/** An address a service binds (`listen:` lists): IPv4 or IPv6 text. */
export const listenAddress = z.string({ error: 'is not an IP address to listen on' })
  .refine((s) => isIP(s) !== 0, { message: 'is not an IP address to listen on' });

/** One value of a list that must not repeat: its comparison key (undefined: not checked) and where it sits. */
export interface KeyedEntry { key: string | undefined; path: PropertyKey[] }

/**
 * Refuses every entry whose key an earlier entry already has: the issue sits at the later entry and
 * names the first by its full key path (`root` + its path), e.g. "is the same as dhcp.subnets[0]...".
 */
export function refuseDuplicates(ctx: z.RefinementCtx, entries: readonly KeyedEntry[], root: readonly PropertyKey[], what = 'is the same as'): void {
  const first = new Map<string, KeyedEntry>();
  for (const entry of entries) {
    if (entry.key === undefined) continue;
    const earlier = first.get(entry.key);
    if (earlier === undefined) first.set(entry.key, entry);
    else ctx.addIssue({ code: 'custom', path: entry.path, message: `${what} ${formatPath([...root, ...earlier.path])}` });
  }
}

/** Refuses repeated values in a list of strings or numbers (`listen`, `upstreams`...). */
export function refuseRepeats(ctx: z.RefinementCtx, values: readonly unknown[] | undefined, path: readonly PropertyKey[], root: readonly PropertyKey[]): void {
  refuseDuplicates(ctx, (values ?? []).map((v, i) => ({ key: JSON.stringify(v), path: [...path, i] })), root, 'is listed twice: also at');
}

/**
 * Whether a value of the schema's own parsing (an address, range, prefix) parsed: zod runs the
 * cross-checks even when a field failed its refine, with the field's raw text where the parsed
 * value would be, and a check then reports "outside its subnet" beside the real problem.
 */
export function parsedValue(value: unknown): boolean {
  return typeof value === 'number' || (typeof value === 'object' && value !== null);
}
