// Pure name handling: the requested name -> remap rules (with per-client tokens from the client's
// DHCP lease) -> a checked relative path. No file system here: the shell then resolves the path
// with realpath and requires it to stay inside the root (symlinks cannot escape), see files.ts.
// Remap patterns run on V8's linear-time engine (lib/linear-regexp.ts): client names cannot make them backtrack.

import { linearRegExp } from '../../lib/linear-regexp.js';

export const NAME_BYTES_MAX = 255;

export type NameRefusal = 'empty' | 'nul' | 'absolute' | 'dotdot' | 'too-long';

export type CheckedName = { ok: true; path: string } | { ok: false; reason: NameRefusal };

/**
 * Checks a name (one char per octet) and returns it as a relative path with "/" separators.
 * Backslashes count as separators (UEFI and Windows loaders send `\EFI\BOOT\...`); "." and empty
 * components inside the name are dropped (`./a`, `d//f`, `d/./f` are `a`, `d/f`, `d/f`); NUL,
 * absolute names, ".." components and names over 255 octets are refused. A name that ends in `/`
 * or in a `.` component (`a/`, `a//`, `a/.`, `.`) names a directory, as the kernel reads it: the
 * path keeps one trailing `/` (`a/`, and `./` for the root), so opening it finds a directory or
 * fails (ENOTDIR, "file not found" for a file `a`), as tftpd-hpa answers; it is never file `a`.
 */
export function checkName(name: string): CheckedName {
  if (name.length === 0) return { ok: false, reason: 'empty' };
  if (name.length > NAME_BYTES_MAX) return { ok: false, reason: 'too-long' };
  if (name.includes('\0')) return { ok: false, reason: 'nul' };
  const slashed = name.replaceAll('\\', '/');
  if (slashed.startsWith('/')) return { ok: false, reason: 'absolute' };
  const parts: string[] = [];
  const components = slashed.split('/');
  for (const part of components) {
    if (part === '..') return { ok: false, reason: 'dotdot' };
    if (part === '' || part === '.') continue;
    parts.push(part);
  }
  const last = components[components.length - 1];
  const directory = last === '' || last === '.';
  if (parts.length === 0) return directory ? { ok: true, path: './' } : { ok: false, reason: 'empty' };
  return { ok: true, path: directory ? `${parts.join('/')}/` : parts.join('/') };
}

/** A name that checkName passes and that names a file, not a directory (`a/`, `a/.`): what a config may point at. */
export function isFileName(name: string): boolean {
  const checked = checkName(name);
  return checked.ok && !checked.path.endsWith('/');
}

/**
 * A requested TFTP name read from the root: leading `/` and `\` dropped, so "/grub/grub.cfg" is
 * "grub/grub.cfg" under the root. GRUB's netboot image asks for its modules and grub.cfg by
 * absolute names from its prefix "/grub"; tftpd-hpa -s (chroot) and dnsmasq read them from the
 * root too. Confinement is unchanged: checkName still refuses ".." and the open stays in the root.
 */
export function rootRelative(name: string): string {
  const relative = name.replace(/^[/\\]+/, '');
  // "/" alone is the root itself: a directory (checkName), not an empty name.
  return relative === '' && name !== '' ? '.' : relative;
}

/** What the server knows about a client: its address, and its lease when DHCP gave it one. */
export interface ClientInfo {
  ip: string;
  mac?: string;
  hostname?: string;
}

export interface RemapRuleConfig {
  match: string;
  replace: string;
}

export interface RemapRule {
  readonly match: RegExp;
  readonly replace: string;
  /** The rule uses per-client tokens: when its file is missing the next rule (or the name itself) is tried. */
  readonly perClient: boolean;
}

const TOKEN = /\{(ip|iphex|mac|mac-|hostname)\}/g;
const SAFE_HOSTNAME = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}))*$/;

export function compileRemap(rules: readonly RemapRuleConfig[]): RemapRule[] {
  return rules.map((r) => ({ match: linearRegExp(r.match), replace: r.replace, perClient: /\{(ip|iphex|mac|mac-|hostname)\}/.test(r.replace) }));
}

/** The value of a per-client token, or null when the client has none (no lease, unsafe hostname). */
export function tokenValue(token: string, client: ClientInfo): string | null {
  switch (token) {
    case 'ip': return client.ip;
    case 'iphex': {
      // pxelinux and u-boot look for the address as 8 upper-case hex digits (10.0.0.5 -> 0A000005).
      const octets = client.ip.split('.');
      if (octets.length !== 4) return null;
      return octets.map((o) => Number(o).toString(16).toUpperCase().padStart(2, '0')).join('');
    }
    case 'mac': return client.mac ?? null;
    case 'mac-': return client.mac === undefined ? null : client.mac.replaceAll(':', '-');
    case 'hostname':
      // A DHCP hostname is chosen by the client: only a plain DNS name may go into a path.
      return client.hostname !== undefined && SAFE_HOSTNAME.test(client.hostname) ? client.hostname : null;
    default: return null;
  }
}

/** `$` in a substituted value must not be read as a replacement pattern. */
function literal(value: string): string {
  return value.replaceAll('$', '$$$$');
}

export interface Candidate {
  name: string;
  /** Try the next candidate when this one does not exist. */
  fallThrough: boolean;
}

/**
 * The names to try for a request, in order. Rules are tried in order; a rule that matches and
 * has every token it needs gives a candidate. A rule without per-client tokens is final (like
 * tftp-hpa's -m); a per-client rule falls through to the following rules and at last to the
 * requested name itself when its file does not exist.
 */
export function remapCandidates(name: string, rules: readonly RemapRule[], client: ClientInfo): Candidate[] {
  const out: Candidate[] = [];
  for (const rule of rules) {
    rule.match.lastIndex = 0;
    if (!rule.match.test(name)) continue;
    let missing = false;
    const replace = rule.replace.replace(TOKEN, (_all, token: string) => {
      const value = tokenValue(token, client);
      if (value === null) { missing = true; return ''; }
      return literal(value);
    });
    if (missing) continue;
    rule.match.lastIndex = 0;
    const mapped = name.replace(rule.match, replace);
    out.push({ name: mapped, fallThrough: rule.perClient });
    if (!rule.perClient) return out;
  }
  out.push({ name, fallThrough: false });
  return out;
}

/**
 * Names from the wire go into logs escaped, never raw: JSON's escapes for C0, and DEL and the C1
 * controls too (an octet 0x9b of a name is U+009B, a CSI to many terminals; JSON leaves it raw).
 */
export function printable(text: string): string {
  return JSON.stringify(text.length > 300 ? `${text.slice(0, 300)}...` : text).slice(1, -1)
    .replace(/[\u007f-\u009f]/g, (c) => `\\u00${c.charCodeAt(0).toString(16)}`);
}
