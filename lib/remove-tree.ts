import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { LanhaError } from './errors.js';

// Removes a directory tree however deep it is. Node's rmSync walks by absolute path, so a tree
// whose deepest path is 4096 bytes or more (PATH_MAX) cannot be removed by it (ENAMETOOLONG);
// GNU rm walks with openat and has no such limit, so it takes over then.

/** `rm -rf PATH` that also removes trees deeper than PATH_MAX; throws LanhaError('io') when it cannot. */
export function removeTreeSync(path: string): void {
  try {
    rmSync(path, { recursive: true, force: true });
    return;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENAMETOOLONG') throw error;
  }
  const rm = spawnSync('rm', ['-rf', '--one-file-system', '--', path], { encoding: 'utf8' });
  if (rm.status !== 0) throw new LanhaError('io', `cannot remove ${path}: ${(rm.stderr || rm.error?.message || `rm exited ${rm.status}`).trim()}`);
}
