import { createHash } from 'node:crypto';
import { createReadStream, type BigIntStats } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { LanhaError } from '../../lib/errors.js';
import { comparePaths, type EntryType, type Manifest, type ManifestEntry } from './manifest.js';

// Reads a tree on disk into a Manifest (manifest.ts is the pure half). Files are hashed a few at a
// time; extended attributes come from one `getfattr -R` run (Node has no xattr API), so they are
// recorded only when the attr package is installed.

const HASH_PARALLEL = 8;
/** lstat calls in flight at once while taking a tree's stat digest. */
const STAT_BATCH = 64;

export interface ScanOptions {
  /** Record xattrs: 'auto' when getfattr exists, true requires it. */
  xattrs?: boolean | 'auto';
  /**
   * The tree was written with rsync --fake-super (a store kept by a daemon that is not root):
   * owner, set-id/sticky mode bits and device numbers come from each file's `user.rsync.%stat`
   * xattr, `user.rsync.NAME` is the xattr NAME, so the manifest (and the id) is the one of the real
   * tree. Needs getfattr. POSIX ACLs (`user.rsync.%aacl`/`%dacl`) are not in the manifest then.
   */
  fakeSuper?: boolean;
  /** The tree's path as the operator knows it, for messages (a commit scans its copy in the store). */
  shownAs?: string;
}

/** A name's bytes for a message: printable ASCII as is, every other byte as \xNN. */
export function escapeBytes(raw: Buffer): string {
  let out = '';
  for (const b of raw) out += b >= 0x20 && b < 0x7f && b !== 0x5c ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, '0')}`;
  return out;
}

const isUtf8 = (raw: Buffer): boolean => Buffer.from(raw.toString('utf8'), 'utf8').equals(raw);

/** rsync's `user.rsync.%stat` value ("MODE MAJOR,MINOR UID:GID", mode in octal), or null. */
export function parseFakeStat(value: string): { mode: number; major: number; minor: number; uid: number; gid: number } | null {
  const m = /^([0-7]+) (\d+),(\d+) (\d+):(\d+)$/.exec(value.trim());
  if (!m) return null;
  return { mode: parseInt(m[1]!, 8), major: Number(m[2]), minor: Number(m[3]), uid: Number(m[4]), gid: Number(m[5]) };
}

const FAKE_PREFIX = 'user.rsync.';
const FAKE_STAT = 'user.rsync.%stat';

/** The type bits of a full st_mode as a manifest type, or null when none are set. */
function typeOfMode(mode: number): EntryType | null {
  switch (mode & 0o170000) {
    case 0o100000: return 'f';
    case 0o040000: return 'd';
    case 0o120000: return 'l';
    case 0o020000: return 'c';
    case 0o060000: return 'b';
    case 0o010000: return 'p';
    case 0o140000: return 's';
    default: return null;
  }
}

/** Applies rsync --fake-super's recorded attributes to a scanned entry and its xattrs (the real values win nowhere else). */
function applyFakeSuper(entry: ManifestEntry, xattrs: Record<string, string> | undefined): Record<string, string> | undefined {
  if (xattrs === undefined) return undefined;
  const raw = xattrs[FAKE_STAT];
  const fake = raw === undefined ? null : parseFakeStat(Buffer.from(raw, 'hex').toString('latin1').replace(/\0+$/, ''));
  if (fake !== null) {
    const type = typeOfMode(fake.mode);
    if (type !== null && type !== entry.type) {
      entry.type = type;
      delete entry.size;
      delete entry.sha256;
    }
    entry.mode = fake.mode & 0o7777;
    entry.uid = fake.uid;
    entry.gid = fake.gid;
    if (entry.type === 'c' || entry.type === 'b') entry.rdev = `${fake.major},${fake.minor}`;
  }
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(xattrs)) {
    if (!name.startsWith(FAKE_PREFIX)) out[name] = value;
    else if (!name.startsWith(`${FAKE_PREFIX}%`)) out[name.slice(FAKE_PREFIX.length)] = value;
  }
  return out;
}

export async function scanTree(root: string, options: ScanOptions = {}): Promise<Manifest> {
  const want = options.xattrs ?? 'auto';
  const haveGetfattr = await getfattrAvailable();
  if (want === true && !haveGetfattr) {
    throw new LanhaError('unavailable', 'this manifest records xattrs but getfattr is not installed here: apt-get install attr');
  }
  const fakeSuper = options.fakeSuper === true;
  if (fakeSuper && !haveGetfattr) {
    throw new LanhaError('unavailable', 'the generation store keeps owners in xattrs (deploy.fakeSuper) but getfattr is not installed here: apt-get install attr');
  }
  const withXattrs = want === true || (want === 'auto' && haveGetfattr);
  const entries: ManifestEntry[] = [];
  const inodes = new Map<string, string[]>();
  const files: ManifestEntry[] = [];

  const shown = (rel: string): string => join(options.shownAs ?? root, rel);
  const visit = async (rel: string): Promise<void> => {
    const abs = rel === '.' ? root : join(root, rel);
    const st = await lstat(abs, { bigint: true });
    const type = entryType(st);
    const entry: ManifestEntry = { path: rel, type, mode: Number(st.mode & 0o7777n), uid: Number(st.uid), gid: Number(st.gid) };
    if (type === 'f') {
      entry.size = Number(st.size);
      files.push(entry);
      if (st.nlink > 1n) {
        const key = `${st.dev}:${st.ino}`;
        const group = inodes.get(key);
        if (group) group.push(rel); else inodes.set(key, [rel]);
      }
    } else if (type === 'l') {
      // The manifest (and the generation id) must describe the link exactly: a target decoded with
      // U+FFFD for bad bytes would give two different trees one id, and verify could not tell them apart.
      const target = await readlink(abs, { encoding: 'buffer' });
      if (!isUtf8(target)) throw new LanhaError('io', `${shown(rel)}: the symlink's target is not UTF-8 (${escapeBytes(target)}); change it before committing the tree`);
      entry.target = target.toString('utf8');
    } else if (type === 'c' || type === 'b') {
      entry.rdev = `${Number(st.rdev) >>> 8 & 0xfff},${(Number(st.rdev) & 0xff) | ((Number(st.rdev) >>> 12) & 0xfff00)}`;
    }
    entries.push(entry);
    if (type === 'd') {
      const names = await readdir(abs, { encoding: 'buffer' });
      for (const raw of names) {
        const name = raw.toString('utf8');
        if (!isUtf8(raw)) {
          throw new LanhaError('io', `${shown(rel)}/${escapeBytes(raw)}: the file name is not UTF-8; rename it before committing the tree`);
        }
        await visit(rel === '.' ? name : `${rel}/${name}`);
      }
    }
  };
  try {
    const top = await lstat(root);
    if (!top.isDirectory()) throw new LanhaError('io', `${root} is not a directory`);
    await visit('.');
  } catch (error) {
    if (error instanceof LanhaError) throw error;
    const e = error as NodeJS.ErrnoException;
    throw new LanhaError('io', `cannot read the tree at ${root}: ${e.code ?? ''} ${e.path ?? ''} ${e.message}`.replace(/\s+/g, ' ').trim());
  }

  // Before hashing: a device kept as an empty file by --fake-super is a device, not a file to hash.
  const fakeXattrs = fakeSuper ? await readXattrs(root) : undefined;
  if (fakeXattrs !== undefined) {
    for (const e of entries) {
      const x = applyFakeSuper(e, fakeXattrs.get(e.path));
      if (x === undefined) continue;
      if (Object.keys(x).length > 0) fakeXattrs.set(e.path, x); else fakeXattrs.delete(e.path);
    }
    for (let i = files.length - 1; i >= 0; i--) if (files[i]!.type !== 'f') files.splice(i, 1);
  }

  // A hardlink group is named by its first path in manifest order; every other path points at it.
  // Entries found by path through one map: a search of the whole list per linked path grew with the
  // square of the tree (1.3 s of CPU with the event loop blocked for 20,000 files linked twice, 25 times
  // that for 100,000), long enough for a leader committing a deduplicated tree to lose its lease.
  const byPath = new Map(entries.map((e) => [e.path, e]));
  for (const group of inodes.values()) {
    if (group.length < 2) continue;
    group.sort(comparePaths);
    const first = group[0]!;
    for (const path of group.slice(1)) byPath.get(path)!.linkTo = first;
  }
  await hashAll(root, files);
  if (withXattrs) {
    const xattrs = fakeXattrs ?? await readXattrs(root);
    for (const e of entries) {
      const x = xattrs.get(e.path);
      if (x && Object.keys(x).length > 0) e.xattrs = x;
    }
  }
  entries.sort((a, b) => comparePaths(a.path, b.path));
  return { xattrs: withXattrs, entries };
}

/**
 * A digest of every path's inode, size, mode, owner, link count and change times (no content read):
 * equal digests mean nothing was written, chmodded, chowned, renamed or had an xattr set since, as
 * any of those moves ctime. What lets a deploy skip re-hashing a generation verified before.
 */
export async function statDigest(root: string): Promise<string> {
  const lines: string[] = [];
  const line = (rel: string, st: BigIntStats): string => `${rel}\0${st.ino}\0${st.size}\0${st.mtimeNs}\0${st.ctimeNs}\0${st.mode}\0${st.uid}\0${st.gid}\0${st.nlink}`;
  lines.push(line('.', await lstat(root, { bigint: true })));
  // A directory's entries are lstat'ed STAT_BATCH at a time: one after the other, each waits a
  // thread-pool round trip, which on a busy machine made this check take longer than the rsync it guards.
  const visitDir = async (rel: string): Promise<void> => {
    const names = await readdir(rel === '.' ? root : join(root, rel));
    const dirs: string[] = [];
    for (let i = 0; i < names.length; i += STAT_BATCH) {
      const batch = names.slice(i, i + STAT_BATCH).map((name) => (rel === '.' ? name : `${rel}/${name}`));
      const stats = await Promise.all(batch.map((path) => lstat(join(root, path), { bigint: true })));
      stats.forEach((st, k) => {
        lines.push(line(batch[k]!, st));
        if (st.isDirectory()) dirs.push(batch[k]!);
      });
    }
    for (const dir of dirs) await visitDir(dir);
  };
  await visitDir('.');
  lines.sort();
  return createHash('sha256').update(lines.join('\n')).digest('hex');
}

function entryType(st: { isFile(): boolean; isDirectory(): boolean; isSymbolicLink(): boolean; isCharacterDevice(): boolean; isBlockDevice(): boolean; isFIFO(): boolean }): EntryType {
  if (st.isFile()) return 'f';
  if (st.isDirectory()) return 'd';
  if (st.isSymbolicLink()) return 'l';
  if (st.isCharacterDevice()) return 'c';
  if (st.isBlockDevice()) return 'b';
  if (st.isFIFO()) return 'p';
  return 's';
}

async function hashAll(root: string, files: ManifestEntry[]): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < files.length) {
      const entry = files[next++]!;
      entry.sha256 = await hashFile(join(root, entry.path));
    }
  };
  await Promise.all(Array.from({ length: Math.min(HASH_PARALLEL, files.length) }, worker));
}

export function hashFile(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    const stream = createReadStream(path);
    stream.on('data', (chunk) => hash.update(chunk));
    stream.on('error', reject);
    stream.on('end', () => resolve(hash.digest('hex')));
  });
}

let getfattrChecked: Promise<boolean> | undefined;

export function getfattrAvailable(): Promise<boolean> {
  return getfattrChecked ??= new Promise((resolve) => {
    execFile('getfattr', ['--version'], (error) => resolve(error === null));
  });
}

/** xattrs of every path under root (relative paths, values hex), from `getfattr -R -d -m - -e hex`. */
async function readXattrs(root: string): Promise<Map<string, Record<string, string>>> {
  const stdout = await new Promise<string>((resolve, reject) => {
    execFile('getfattr', ['-R', '-P', '-h', '-d', '-m', '-', '-e', 'hex', '--absolute-names', root], { maxBuffer: 256 << 20 }, (error, out, err) => {
      // getfattr exits 1 when some file has no xattr support; the output is still complete.
      if (error && (error as { code?: unknown }).code !== 1) reject(new LanhaError('io', `getfattr on ${root} failed: ${String(err).trim() || error.message}`));
      else resolve(out);
    });
  });
  return parseGetfattr(stdout, root);
}

/** Parses getfattr's dump format; exported for tests. */
export function parseGetfattr(text: string, root: string): Map<string, Record<string, string>> {
  const result = new Map<string, Record<string, string>>();
  const base = root.replace(/\/+$/, '');
  let current: Record<string, string> | undefined;
  for (const line of text.split('\n')) {
    if (line.startsWith('# file: ')) {
      const abs = unescapeGetfattr(line.slice(8));
      const rel = abs === base ? '.' : abs.startsWith(base + '/') ? abs.slice(base.length + 1) : null;
      current = rel === null ? undefined : {};
      if (rel !== null && current) result.set(rel, current);
      continue;
    }
    if (!current || line === '') continue;
    const eq = line.indexOf('=');
    const name = unescapeGetfattr(eq < 0 ? line : line.slice(0, eq));
    const value = eq < 0 ? '' : line.slice(eq + 1);
    current[name] = value.startsWith('0x') ? value.slice(2).toLowerCase() : Buffer.from(value.replace(/^"|"$/g, ''), 'utf8').toString('hex');
  }
  return result;
}

function unescapeGetfattr(text: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < text.length; i++) {
    if (text[i] === '\\' && /^[0-7]{3}$/.test(text.slice(i + 1, i + 4))) {
      bytes.push(parseInt(text.slice(i + 1, i + 4), 8));
      i += 3;
    } else if (text[i] === '\\' && text[i + 1] === '\\') {
      bytes.push(0x5c);
      i += 1;
    } else {
      for (const b of Buffer.from(text[i]!, 'utf8')) bytes.push(b);
    }
  }
  return Buffer.from(bytes).toString('utf8');
}
