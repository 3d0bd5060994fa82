import { appendFileSync } from 'node:fs';

// Module loader hooks (registered by module-trace.ts, run on Node's loader thread): append the URL
// of every module a process loads from disk, one a line, to the file named at registration.

let out = '';

export function initialize(data: { out: string }): void {
  out = data.out;
}

export async function load(url: string, context: unknown, next: (url: string, context: unknown) => Promise<unknown>): Promise<unknown> {
  if (url.startsWith('file:')) appendFileSync(out, url + '\n');
  return next(url, context);
}
