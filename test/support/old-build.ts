import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from './paths.js';

/**
 * An earlier build's lanctl.js: `commit` from this clone's history, extracted with `git archive` and
 * compiled with this tree's node_modules; `given` (a path from the environment) instead when set.
 * `path` null with why not (a shallow clone, a failed build): the caller skips loudly.
 */
export function oldLanctl(commit: string, given: string | undefined, envName: string): { path: string | null; why: string; cleanup: () => void } {
  if (given !== undefined) return { path: given, why: '', cleanup: () => {} };
  try {
    execFileSync('git', ['-C', REPO_ROOT, 'cat-file', '-e', `${commit}^{commit}`], { stdio: 'ignore' });
  } catch {
    return { path: null, why: `commit ${commit} is not in this clone's history; fetch it (git fetch --unshallow) or set ${envName}=/path/to/old/dist/bin/lanctl.js`, cleanup: () => {} };
  }
  const dir = mkdtempSync(join(tmpdir(), 'lanha-old-build-'));
  const cleanup = (): void => rmSync(dir, { recursive: true, force: true });
  try {
    execFileSync('sh', ['-c', `git -C "${REPO_ROOT}" archive "${commit}" | tar -x -C "${dir}"`], { stdio: 'ignore' });
    symlinkSync(join(REPO_ROOT, 'node_modules'), join(dir, 'node_modules'));
    execFileSync(process.execPath, [join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(dir, 'tsconfig.json')], { stdio: 'ignore', timeout: 600_000 });
  } catch (error) {
    cleanup();
    return { path: null, why: `building ${commit} failed: ${(error as Error).message.slice(0, 300)}`, cleanup: () => {} };
  }
  return { path: join(dir, 'dist', 'bin', 'lanctl.js'), why: '', cleanup };
}
