import { readFileSync } from 'node:fs';

// The package version, read once from package.json next to the build output (dist/bin -> ../../).
function readVersion(): string {
  try {
    const text = readFileSync(new URL('../../package.json', import.meta.url), 'utf8');
    return String((JSON.parse(text) as { version?: unknown }).version ?? '0.0.0');
  } catch {
    return '0.0.0';
  }
}

export const VERSION = readVersion();
