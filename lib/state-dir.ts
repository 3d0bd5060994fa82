import { accessSync, constants, readdirSync, statSync } from 'node:fs';
import { makeDirs } from './durable-file.js';
import { join } from 'node:path';
import { LanhaError } from './errors.js';

// Before the daemon opens anything in node.stateDir: the directory exists (made if missing) and
// this process may write it and what lanha keeps in it. The usual way it may not is lanha run once
// as root (`sudo lanctl serve`) before the service runs as its own user: every state file is then
// root's, and the start failed on whichever file came first with Node's bare "EACCES: permission
// denied, open '...'". One message instead: which files, whose they are, and the chown line.

/** Where lanha writes inside the state directory (directories: their entries are checked too). */
const WRITTEN_DIRS = ['', 'raft', 'raft/wal'];
/** Other directories lanha writes in the state directory (the deploy store, job directories). */
const OTHER_DIRS = new Set(['rootfs', 'deploy']);
const SHOWN_MAX = 3;

interface Refused { path: string; uid: number; mode: number; code: string }

/**
 * Makes `dir` if missing and checks it and lanha's files in it are writable; throws a LanhaError
 * naming the rest. A directory on a read-only file system is not refused here: the member starts
 * fenced on what it can read and writes again once it is writable (cluster/raft/README.md, "Out of
 * space"); 'read-only' says so. One that cannot be made at all is refused.
 */
export function checkStateDir(dir: string, uid: number | null = process.getuid?.() ?? null): 'writable' | 'read-only' {
  try {
    makeDirs(dir);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'error';
    throw new LanhaError('io', `node.stateDir ${dir} cannot be made (${code}): make it and give it to the user lanha runs as${uid === null ? '' : ` (uid ${uid})`}, e.g. install -d -o lanha -g lanha -m 0750 ${dir} (the systemd unit's StateDirectory=lanha makes /var/lib/lanha)`);
  }
  const refused: Refused[] = [];
  let readOnly = false;
  const check = (path: string, mode: number): boolean => {
    try {
      accessSync(path, mode);
      return true;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? 'error';
      if (code === 'ENOENT') return true;
      if (code === 'EROFS') readOnly = true;
      let st: { uid: number; mode: number } = { uid: -1, mode: 0 };
      try { st = statSync(path); } catch { /* gone meanwhile */ }
      refused.push({ path, uid: st.uid, mode: st.mode & 0o7777, code });
      return false;
    }
  };
  for (const sub of WRITTEN_DIRS) {
    const at = sub === '' ? dir : join(dir, sub);
    try {
      if (!statSync(at).isDirectory()) continue;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') check(at, constants.X_OK);
      continue;
    }
    if (!check(at, constants.R_OK | constants.W_OK | constants.X_OK)) continue;
    const names = readdirSync(at);
    for (const name of names) {
      const path = join(at, name);
      let isDir: boolean;
      try { isDir = statSync(path).isDirectory(); } catch { continue; }
      // raft/ and raft/wal/ have their turn above; the deploy store's directories are checked
      // themselves, not the trees below them.
      if (!isDir) check(path, constants.R_OK | constants.W_OK);
      else if (sub === '' && OTHER_DIRS.has(name)) check(path, constants.R_OK | constants.W_OK | constants.X_OK);
    }
  }
  if (refused.length === 0) return 'writable';
  if (readOnly && refused.every((r) => r.code === 'EROFS')) return 'read-only';
  const shown = refused.slice(0, SHOWN_MAX).map((r) => `${r.path} (owner uid ${r.uid}, mode ${r.mode.toString(8).padStart(4, '0')})`).join(', ');
  const more = refused.length > SHOWN_MAX ? ` and ${refused.length - SHOWN_MAX} more` : '';
  const who = uid === null ? 'this process' : `this process (uid ${uid})`;
  const hint = refused.some((r) => r.uid === 0) && uid !== 0 ? ' Was lanha run as root once (sudo lanctl serve)?' : '';
  throw new LanhaError('io', `node.stateDir ${dir}: ${who} cannot write ${shown}${more}.${hint} Give the state back to the user lanha runs as: chown -R ${uid ?? 'lanha'}:${process.getgid?.() ?? 'lanha'} ${dir}`);
}
