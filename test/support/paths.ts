import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

// Tests run from dist/; fixtures and examples stay in the source tree.
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const repoPath = (...parts: string[]): string => join(REPO_ROOT, ...parts);
export const LANCTL = repoPath('dist', 'bin', 'lanctl.js');
