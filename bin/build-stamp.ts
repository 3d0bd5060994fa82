import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

// Run after tsc (`npm run build`): records which commit the build came from in dist/build.json, so
// that two builds of the same package version tell themselves apart (`lanctl --version`, status,
// doctor's cluster.version-differs during a rolling upgrade). Outside a git checkout (a tarball)
// the file says so and the version is the package version alone.

const root = fileURLToPath(new URL('../../', import.meta.url));

function git(args: string[]): string | null {
  try {
    return execFileSync('git', args, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return null;
  }
}

const commit = git(['rev-parse', '--short=12', 'HEAD']);
// Tracked files changed since that commit: the build is not exactly that commit.
const dirty = commit !== null && (git(['status', '--porcelain', '--untracked-files=no']) ?? '') !== '';
writeFileSync(new URL('../build.json', import.meta.url), JSON.stringify({ commit, dirty }) + '\n');
