import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join, relative } from 'node:path';
import type { BootFile, BootFilesDigest } from '../../cluster/member-status.js';

// The boot tree of this LAN node (tftp.root and boot.root: kernels, initrds, device trees, firmware
// files) as path + sha256, so members can compare theirs (doctor: boot files that differ between
// the LAN nodes serve a node differently depending on who holds the VIP). A file is hashed again
// only when its size or mtime changed; the walk is bounded in files and depth and follows no
// symlinked directory. Rendered boot files (boot.scr.uimg, pxelinux.cfg/...) are made per request
// from the replicated state and are not here.

export const BOOT_FILES_MAX = 2048;
const DEPTH_MAX = 16;

interface Cached { size: number; mtimeMs: number; sha256: string }

export class BootFileIndex {
  #roots: ReadonlyArray<{ dir: string; label: string }>;
  #cache = new Map<string, Cached>();
  #files: BootFile[] = [];
  #digest: BootFilesDigest | null = null;
  #truncated = false;

  /** `roots`: the directories to index; with more than one, paths carry the root's label first. */
  constructor(roots: ReadonlyArray<{ dir: string; label: string }>) {
    this.#roots = roots;
  }

  /** The last scan (null before the first one finished). */
  digest(): BootFilesDigest | null { return this.#digest; }

  get truncated(): boolean { return this.#truncated; }

  /** Walks the roots again, hashing new or changed files. Never throws: unreadable parts are skipped. */
  async refresh(): Promise<void> {
    const found: Array<{ path: string; file: string }> = [];
    this.#truncated = false;
    for (const root of this.#roots) {
      await this.#walk(root.dir, root.dir, 0, (file) => {
        if (found.length >= BOOT_FILES_MAX) { this.#truncated = true; return false; }
        const rel = relative(root.dir, file).split('\\').join('/');
        found.push({ path: this.#roots.length > 1 ? `${root.label}/${rel}` : rel, file });
        return true;
      });
    }
    const files: BootFile[] = [];
    const seen = new Set<string>();
    for (const { path, file } of found) {
      try {
        const st = await stat(file);
        const cached = this.#cache.get(file);
        const sha256 = cached && cached.size === st.size && cached.mtimeMs === st.mtimeMs ? cached.sha256 : await sha256File(file);
        this.#cache.set(file, { size: st.size, mtimeMs: st.mtimeMs, sha256 });
        seen.add(file);
        files.push({ path, sha256, bytes: st.size });
      } catch { /* vanished or unreadable since the walk */ }
    }
    for (const k of [...this.#cache.keys()]) if (!seen.has(k)) this.#cache.delete(k);
    files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    this.#files = files;
    const h = createHash('sha256');
    for (const f of files) h.update(`${f.path}\u0000${f.sha256}\n`);
    this.#digest = { digest: h.digest('hex'), count: files.length, files };
  }

  async #walk(root: string, dir: string, depth: number, add: (file: string) => boolean): Promise<boolean> {
    if (depth > DEPTH_MAX) return true;
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch {
      return true;
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      const path = join(dir, e.name);
      if (e.isDirectory()) {
        if (!(await this.#walk(root, path, depth + 1, add))) return false;
      } else if (e.isFile() || e.isSymbolicLink()) {
        if (e.isSymbolicLink()) {
          const st = await stat(path).catch(() => null);
          if (st === null || !st.isFile()) continue; // a symlinked directory is not followed
        }
        if (!add(path)) return false;
      }
    }
    return true;
  }
}

function sha256File(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(file).on('data', (c) => h.update(c)).on('error', reject).on('end', () => resolve(h.digest('hex')));
  });
}

/** What differs between this node's boot files and another member's list. */
export function compareBootFiles(here: readonly BootFile[], there: readonly BootFile[]): { differ: string[]; onlyHere: string[]; onlyThere: string[] } {
  const theirs = new Map(there.map((f) => [f.path, f.sha256]));
  const ours = new Map(here.map((f) => [f.path, f.sha256]));
  return {
    differ: here.filter((f) => theirs.has(f.path) && theirs.get(f.path) !== f.sha256).map((f) => f.path),
    onlyHere: here.filter((f) => !theirs.has(f.path)).map((f) => f.path),
    onlyThere: there.filter((f) => !ours.has(f.path)).map((f) => f.path),
  };
}
