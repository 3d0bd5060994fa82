import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { LANCTL_JS } from '../../lib/serve-daemon.js';

// Tests run from dist/; fixtures and examples stay in the source tree.
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const repoPath = (...parts: string[]): string => join(REPO_ROOT, ...parts);
export const LANCTL = LANCTL_JS;
