import { createHash, randomBytes } from 'node:crypto';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, readdirSync } from 'node:fs';
import { readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { LanhaError, errorMessage } from '../../lib/errors.js';
import { writeFileDurably } from '../../lib/durable-file.js';
import { removeTreeSync } from '../../lib/remove-tree.js';
import { decodeManifest, diffManifests, encodeManifest, isGenerationId, manifestCounts, type Manifest, type ManifestChange, type ManifestCounts } from './manifest.js';
import { scanTree, statDigest } from './scan.js';

// The generation store on a LAN member: node.stateDir/rootfs/<id>/ holds the tree (a hardlink- and
// xattr-preserving `rsync -aHAX` copy of what was committed) and <id>.manifest the canonical
// manifest whose sha256 is <id>. A copy under a temporary name becomes <id> only after it was
// scanned, so a crash mid-commit leaves no half generation behind.

export function storeDir(stateDir: string): string {
  return join(stateDir, 'rootfs');
}

export function generationDir(stateDir: string, id: string): string {
  return join(storeDir(stateDir), id);
}

export function manifestPath(stateDir: string, id: string): string {
  return join(storeDir(stateDir), `${id}.manifest`);
}

/** The stat digest of the tree when it last matched its manifest (see statDigest). */
function verifiedPath(stateDir: string, id: string): string {
  return join(storeDir(stateDir), `${id}.verified`);
}

/** Present when the generation's tree keeps owners and devices in xattrs (committed with --fake-super). */
export function fakeSuperPath(stateDir: string, id: string): string {
  return join(storeDir(stateDir), `${id}.fake-super`);
}

/** Whether generation `id` is stored the --fake-super way here: every rsync reading it must say --fake-super. */
export function isFakeSuper(stateDir: string, id: string): boolean {
  return existsSync(fakeSuperPath(stateDir, id));
}

export interface CommitResult {
  id: string;
  counts: ManifestCounts;
  /** False when the same tree was already stored. */
  created: boolean;
}

export interface StoreOptions {
  /** The store keeps owners, set-id bits and devices in xattrs (rsync --fake-super; deploy.fakeSuper). */
  fakeSuper?: boolean;
}

/**
 * Copies `source` into the store, scans the copy, and files it under its manifest's id. With
 * `fakeSuper` the copy keeps what a non-root daemon cannot set (owners, set-id bits, devices) in
 * xattrs and the scan reads them back: the same tree gets the same id either way.
 */
export async function commitTree(source: string, stateDir: string, options: StoreOptions = {}): Promise<CommitResult> {
  const store = storeDir(stateDir);
  mkdirSync(store, { recursive: true, mode: 0o700 });
  if (!existsSync(source)) throw new LanhaError('not-found', `${source}: no such directory`);
  // As long a name as the generation's own (64 characters): a path that fits in the copy fits once
  // it is renamed into place, so a tree too deep for the store fails while the copy is scanned.
  const partial = join(store, `.partial-${randomBytes(28).toString('hex').slice(0, 55)}`);
  let placed: string | undefined;
  try {
    // -M--fake-super: only the receiving side (the store) fakes; the source is read as it is.
    // --sparse: a file with holes (a disk image, a swap file) stays sparse here and on every node.
    const copy = await runRsync(['-aHAX', '--sparse', '--numeric-ids', ...(options.fakeSuper === true ? ['-M--fake-super'] : []), `${source.replace(/\/+$/, '')}/`, `${partial}/`]);
    if (copy.code !== 0 && /File name too long/.test(copy.stderr)) throw tooLongForStore(source, store);
    if (copy.code !== 0) throw new LanhaError('io', `copying ${source} into the generation store failed (rsync exit ${copy.code}): ${copy.stderr.trim().split('\n').slice(-3).join(' ')}`);
    // rsync writes by relative names, so the copy itself succeeds; the scan's lstat is the first call
    // that sees a whole path (and every later reader does too).
    const manifest = await scanTree(partial, { fakeSuper: options.fakeSuper === true, shownAs: source.replace(/\/+$/, '') }).catch((error: unknown) => {
      throw /ENAMETOOLONG/.test(errorMessage(error)) ? tooLongForStore(source, store) : error;
    });
    const text = encodeManifest(manifest);
    const id = sha256(text);
    const counts = manifestCounts(manifest);
    if (existsSync(generationDir(stateDir, id)) && existsSync(manifestPath(stateDir, id))) {
      const changes = await verifyGeneration(stateDir, id).catch(() => [{ path: '.', what: 'unreadable' }]);
      if (changes.length === 0) return { id, counts, created: false };
      removeTreeSync(generationDir(stateDir, id));
    }
    if (options.fakeSuper === true) await writeFileDurably(fakeSuperPath(stateDir, id), '');
    else await rm(fakeSuperPath(stateDir, id), { force: true });
    placed = id;
    await rename(partial, generationDir(stateDir, id));
    await writeFileDurably(manifestPath(stateDir, id), text);
    await writeFileDurably(verifiedPath(stateDir, id), await statDigest(generationDir(stateDir, id)));
    placed = undefined;
    return { id, counts, created: true };
  } finally {
    // A tree renamed into place whose manifest or stat digest could not be written is no generation
    // (no entry names it): it goes with the copy. prune drops what cannot be removed here.
    const leftovers = placed === undefined ? [partial] : [partial, generationDir(stateDir, placed), manifestPath(stateDir, placed), verifiedPath(stateDir, placed), fakeSuperPath(stateDir, placed)];
    for (const leftover of leftovers) {
      try { removeTreeSync(leftover); } catch { /* swept at the next daemon start */ }
    }
  }
}

/** Linux refuses a path of PATH_MAX (4096) bytes or more, its terminating NUL counted. */
export const PATH_BYTES_MAX = 4095;

/** The error for a tree with a path too long to be stored: names the longest path and the room there is. */
function tooLongForStore(source: string, store: string): LanhaError {
  const prefix = Buffer.byteLength(`${store}/${'0'.repeat(64)}/`);
  const longest = longestPath(source);
  const shown = longest.length > 120 ? `${longest.slice(0, 56)}...${longest.slice(-56)}` : longest;
  return new LanhaError('usage', `${source} holds a path too long for the generation store: ${shown} (${Buffer.byteLength(longest)} bytes). In the store every path is prefixed with ${store}/<id>/ (${prefix} bytes) and Linux refuses paths of ${PATH_BYTES_MAX + 1} bytes or more, so at most ${PATH_BYTES_MAX - prefix} bytes fit: shorten it, or give node.stateDir a shorter path. Nothing was committed`);
}

/** The longest path below `dir`, relative to it (walked by relative names: deep trees too). */
function longestPath(dir: string): string {
  const find = spawnSync('find', ['.', '-mindepth', '1', '-printf', '%P\\0'], { cwd: dir, maxBuffer: 1 << 30 });
  let longest = '';
  for (const path of (find.stdout ?? Buffer.alloc(0)).toString('utf8').split('\0')) if (Buffer.byteLength(path) > Buffer.byteLength(longest)) longest = path;
  return longest;
}

export async function readStoredManifest(stateDir: string, id: string): Promise<Manifest> {
  let text: string;
  try {
    text = await readFile(manifestPath(stateDir, id), 'utf8');
  } catch {
    throw new LanhaError('not-found', `generation ${id.slice(0, 12)} has no manifest on this node (${manifestPath(stateDir, id)})`);
  }
  if (sha256(text) !== id) throw new LanhaError('io', `the manifest of generation ${id.slice(0, 12)} on this node is damaged (its sha256 is not the id)`);
  const decoded = decodeManifest(text);
  if (!decoded.ok) throw new LanhaError('io', `the manifest of generation ${id.slice(0, 12)} is damaged: ${decoded.error}`);
  return decoded.manifest;
}

/**
 * Compares the stored tree with its manifest; returns every changed path (empty = verified). With
 * `quick`, a tree whose stat digest is the one recorded at its last verification is taken as
 * verified without reading a byte (a deploy's check); otherwise, or when anything was touched,
 * every file is hashed again.
 */
export async function verifyGeneration(stateDir: string, id: string, options: { quick?: boolean } = {}): Promise<ManifestChange[]> {
  const manifest = await readStoredManifest(stateDir, id);
  const dir = generationDir(stateDir, id);
  if (!existsSync(dir)) return [{ path: '.', what: 'missing' }];
  const before = await statDigest(dir);
  if (options.quick === true) {
    const recorded = await readFile(verifiedPath(stateDir, id), 'utf8').catch(() => undefined);
    if (recorded === before) return [];
  }
  const actual = await scanTree(dir, { xattrs: manifest.xattrs, fakeSuper: isFakeSuper(stateDir, id) });
  const changes = diffManifests(manifest, actual);
  if (changes.length === 0 && (await statDigest(dir)) === before) await writeFileDurably(verifiedPath(stateDir, id), before);
  return changes;
}

/** Generations stored on this member (ids with both a tree and a manifest). */
export function storedGenerations(stateDir: string): string[] {
  const store = storeDir(stateDir);
  if (!existsSync(store)) return [];
  const names = new Set(readdirSync(store));
  return [...names].filter((n) => isGenerationId(n) && names.has(`${n}.manifest`)).sort();
}

/** Deletes stored generations not in `keep` (tree, manifest and marks). Returns the ids dropped. Leftovers of cut-off commits: sweepStoreLeftovers. */
export function pruneStore(stateDir: string, keep: ReadonlySet<string>): string[] {
  const store = storeDir(stateDir);
  if (!existsSync(store)) return [];
  const dropped: string[] = [];
  for (const name of readdirSync(store)) {
    const id = name.replace(/\.(manifest|verified|fake-super)(\.tmp)?$/, '');
    if (!isGenerationId(id) || keep.has(id)) continue;
    removeTreeSync(join(store, name));
    if (id === name) dropped.push(id);
  }
  return dropped;
}

/**
 * Daemon start: removes what a commit or a copy to the peer member that was cut off left in the
 * store (`.partial-*`, the copy being made; `.peer-<member>`, that copy's known_hosts; `<id>.manifest.tmp`
 * and the like, a durable write cut off before its rename). Only then: while the daemon runs, one may
 * be in use. Returns each path with the bytes it held.
 */
export function sweepStoreLeftovers(stateDir: string): Array<{ path: string; bytes: number }> {
  const store = storeDir(stateDir);
  if (!existsSync(store)) return [];
  const swept: Array<{ path: string; bytes: number }> = [];
  for (const name of readdirSync(store)) {
    const tmp = /^(.*)\.(manifest|verified|fake-super)\.tmp$/.exec(name);
    if (!/^\.(partial|peer)-/.test(name) && !(tmp !== null && isGenerationId(tmp[1]!))) continue;
    const path = join(store, name);
    const bytes = treeBytes(path);
    removeTreeSync(path);
    swept.push({ path, bytes });
  }
  return swept;
}

/** Bytes of the regular files below `path` (what removing it frees, hardlinks aside). */
export function treeBytes(path: string): number {
  let st;
  try { st = lstatSync(path); } catch { return 0; }
  if (!st.isDirectory()) return st.isFile() ? st.size : 0;
  let total = 0;
  let names: string[] = [];
  try { names = readdirSync(path); } catch { /* unreadable: counted as empty */ }
  for (const name of names) total += treeBytes(join(path, name));
  return total;
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}


export interface ProcessResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the system rsync to completion (local copies; deploy.ts runs the remote ones with progress). */
export function runRsync(args: readonly string[]): Promise<ProcessResult> {
  return new Promise((resolve) => {
    const child = spawn('rsync', [...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    child.stdout.on('data', (d: Buffer) => { if (stdout.length < 1 << 20) stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { if (stderr.length < 1 << 20) stderr += d.toString(); });
    child.on('error', (error) => resolve({ code: 127, stdout, stderr: `cannot run rsync: ${error.message} (apt-get install rsync)` }));
    child.on('close', (code, signal) => resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr }));
  });
}
