import { createHash } from 'node:crypto';

// A rootfs generation's manifest: one entry per path (type, mode, owner, size, sha256, symlink
// target, device numbers, hardlink group, xattrs), in a canonical text form whose sha256 is the
// generation id. Pure: scan.ts reads the disk and hands the entries here. Modification times are
// deliberately not part of it: a generation is its content, so the same tree committed twice gets
// the same id.
//
//   lanha-rootfs-manifest 1 xattrs=1\n
//   {"p":".","t":"d","m":493,"u":0,"g":0}\n
//   {"p":"bin/sh","t":"l","m":511,"u":0,"g":0,"l":"busybox"}\n
//   {"p":"etc/a","t":"f","m":420,"u":0,"g":0,"s":3,"h":"<sha256 hex>","x":{"user.k":"6869"}}\n
//   {"p":"etc/b","t":"f",...,"k":"etc/a"}\n     <- hardlink of etc/a (the group's first path)
//
// Lines are sorted by path in byte order; keys always appear in the order above.

export type EntryType = 'f' | 'd' | 'l' | 'c' | 'b' | 'p' | 's';

export interface ManifestEntry {
  /** Path relative to the tree root, "." for the root itself; no leading "./". */
  path: string;
  type: EntryType;
  /** Permission bits including setuid/setgid/sticky (mode & 0o7777). */
  mode: number;
  uid: number;
  gid: number;
  /** Regular files: size in bytes. */
  size?: number;
  /** Regular files: sha256 of the content, hex. */
  sha256?: string;
  /** Symlinks: the target as stored. */
  target?: string;
  /** Character and block devices: "major,minor". */
  rdev?: string;
  /** Hardlinks: the first path (in manifest order) of the group this file shares an inode with. */
  linkTo?: string;
  /** Extended attributes: name -> value as hex, when the manifest records xattrs. */
  xattrs?: Record<string, string>;
}

export interface Manifest {
  xattrs: boolean;
  entries: ManifestEntry[];
}

const HEADER = 'lanha-rootfs-manifest 1';

export function comparePaths(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** The canonical bytes: header line, then one JSON object per entry with a fixed key order. */
export function encodeManifest(manifest: Manifest): string {
  const entries = [...manifest.entries].sort((a, b) => comparePaths(a.path, b.path));
  const lines = [`${HEADER} xattrs=${manifest.xattrs ? 1 : 0}`];
  for (const e of entries) {
    const o: Record<string, unknown> = { p: e.path, t: e.type, m: e.mode, u: e.uid, g: e.gid };
    if (e.size !== undefined) o['s'] = e.size;
    if (e.sha256 !== undefined) o['h'] = e.sha256;
    if (e.target !== undefined) o['l'] = e.target;
    if (e.rdev !== undefined) o['r'] = e.rdev;
    if (e.linkTo !== undefined) o['k'] = e.linkTo;
    if (manifest.xattrs && e.xattrs !== undefined && Object.keys(e.xattrs).length > 0) {
      o['x'] = Object.fromEntries(Object.entries(e.xattrs).sort(([a], [b]) => comparePaths(a, b)));
    }
    lines.push(JSON.stringify(o));
  }
  return lines.join('\n') + '\n';
}

/** The generation id: sha256 of the canonical manifest, hex. */
export function manifestId(manifest: Manifest): string {
  return createHash('sha256').update(encodeManifest(manifest)).digest('hex');
}

export type DecodeManifestResult = { ok: true; manifest: Manifest } | { ok: false; error: string };

const TYPES: ReadonlySet<string> = new Set(['f', 'd', 'l', 'c', 'b', 'p', 's']);

/** Parses a stored manifest; never throws (the file may be damaged). */
export function decodeManifest(text: string): DecodeManifestResult {
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  const header = /^lanha-rootfs-manifest 1 xattrs=([01])$/.exec(lines[0] ?? '');
  if (!header) return { ok: false, error: 'not a lanha rootfs manifest (bad first line)' };
  const entries: ManifestEntry[] = [];
  for (let i = 1; i < lines.length; i++) {
    let o: Record<string, unknown>;
    try {
      o = JSON.parse(lines[i]!) as Record<string, unknown>;
    } catch {
      return { ok: false, error: `line ${i + 1} is not JSON` };
    }
    if (o === null || typeof o !== 'object' || typeof o['p'] !== 'string' || typeof o['t'] !== 'string' || !TYPES.has(o['t'])
      || typeof o['m'] !== 'number' || typeof o['u'] !== 'number' || typeof o['g'] !== 'number') {
      return { ok: false, error: `line ${i + 1} is not a manifest entry` };
    }
    const e: ManifestEntry = { path: o['p'], type: o['t'] as EntryType, mode: o['m'], uid: o['u'], gid: o['g'] };
    if (typeof o['s'] === 'number') e.size = o['s'];
    if (typeof o['h'] === 'string') e.sha256 = o['h'];
    if (typeof o['l'] === 'string') e.target = o['l'];
    if (typeof o['r'] === 'string') e.rdev = o['r'];
    if (typeof o['k'] === 'string') e.linkTo = o['k'];
    if (o['x'] !== null && typeof o['x'] === 'object') e.xattrs = o['x'] as Record<string, string>;
    entries.push(e);
  }
  return { ok: true, manifest: { xattrs: header[1] === '1', entries } };
}

export interface ManifestCounts {
  files: number;
  dirs: number;
  symlinks: number;
  others: number;
  /** Paths that share an inode with an earlier path. */
  hardlinks: number;
  /** Sum of regular file sizes, each inode counted once. */
  bytes: number;
}

export function manifestCounts(manifest: Manifest): ManifestCounts {
  const c: ManifestCounts = { files: 0, dirs: 0, symlinks: 0, others: 0, hardlinks: 0, bytes: 0 };
  for (const e of manifest.entries) {
    if (e.type === 'f') {
      c.files++;
      if (e.linkTo !== undefined) c.hardlinks++;
      else c.bytes += e.size ?? 0;
    } else if (e.type === 'd') c.dirs++;
    else if (e.type === 'l') c.symlinks++;
    else c.others++;
  }
  return c;
}

export interface ManifestChange {
  path: string;
  /** What differs: "missing", "added", or the fields that differ ("sha256", "mode", ...). */
  what: string;
}

const FIELDS: ReadonlyArray<[keyof ManifestEntry, string]> = [
  ['type', 'type'], ['mode', 'mode'], ['uid', 'owner'], ['gid', 'group'], ['size', 'size'], ['sha256', 'content'],
  ['target', 'symlink target'], ['rdev', 'device'], ['linkTo', 'hardlink'],
];

/** Every path where `actual` differs from `expected`, in path order. */
export function diffManifests(expected: Manifest, actual: Manifest): ManifestChange[] {
  const byPath = new Map(actual.entries.map((e) => [e.path, e]));
  const changes: ManifestChange[] = [];
  for (const e of expected.entries) {
    const a = byPath.get(e.path);
    byPath.delete(e.path);
    if (!a) { changes.push({ path: e.path, what: 'missing' }); continue; }
    const differ = FIELDS.filter(([key]) => e[key] !== a[key]).map(([, name]) => name);
    if (expected.xattrs && actual.xattrs && JSON.stringify(sortedXattrs(e.xattrs)) !== JSON.stringify(sortedXattrs(a.xattrs))) differ.push('xattrs');
    if (differ.length > 0) changes.push({ path: e.path, what: differ.join(', ') });
  }
  for (const a of byPath.values()) changes.push({ path: a.path, what: 'added' });
  return changes.sort((x, y) => comparePaths(x.path, y.path));
}

function sortedXattrs(x: Record<string, string> | undefined): Array<[string, string]> {
  return Object.entries(x ?? {}).sort(([a], [b]) => comparePaths(a, b));
}

/** "etc/passwd (content), usr/bin/x (missing) and 3 more": for error messages. */
export function describeChanges(changes: readonly ManifestChange[], max = 10): string {
  const shown = changes.slice(0, max).map((c) => `${c.path} (${c.what})`).join(', ');
  return changes.length > max ? `${shown} and ${changes.length - max} more` : shown;
}

/**
 * `sha256sum -c` lines for every regular file ("<hex>  ./path"), for a netbooting node to check its
 * copy with busybox. Paths holding a newline or a backslash are left out (sha256sum would need
 * escaping that busybox does not read).
 */
export function checklist(manifest: Manifest): string {
  return manifest.entries
    .filter((e) => e.type === 'f' && e.sha256 !== undefined && !/[\n\\]/.test(e.path))
    .map((e) => `${e.sha256}  ./${e.path}\n`).join('');
}

/** True for a generation id (64 lower-case hex characters). */
export function isGenerationId(text: string): boolean {
  return /^[0-9a-f]{64}$/.test(text);
}
