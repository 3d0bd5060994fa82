import { readFileSync } from 'node:fs';

// The version every member reports: the package version, and the commit the build came from as
// semver build metadata ("0.1.0+g1a2b3c4d5e6f", ".dirty" when tracked files differed from it), from
// dist/build.json written by build-stamp.ts. Builds without it (no git at build time) report the
// package version alone.

function readJson(relative: string): Record<string, unknown> | null {
  try {
    return JSON.parse(readFileSync(new URL(relative, import.meta.url), 'utf8')) as Record<string, unknown>;
  } catch {
    return null;
  }
}

/** The version string for a package version and a build stamp (pure, for tests). */
export function versionString(packageVersion: unknown, stamp: Record<string, unknown> | null): string {
  const base = typeof packageVersion === 'string' && packageVersion !== '' ? packageVersion : '0.0.0';
  const commit = stamp?.['commit'];
  if (typeof commit !== 'string' || !/^[0-9a-f]{7,40}$/.test(commit)) return base;
  return `${base}+g${commit}${stamp?.['dirty'] === true ? '.dirty' : ''}`;
}

// dist/bin -> ../../package.json and ../build.json.
export const VERSION = versionString(readJson('../../package.json')?.['version'], readJson('../build.json'));
