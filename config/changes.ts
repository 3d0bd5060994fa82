// Which settings differ between the config a daemon runs with and the file as it is now: the
// answer to SIGHUP (`systemctl reload lanha`). Pure: two parsed configs in, key paths out.

/**
 * Key paths whose values differ, as deep as where they differ but at most `depth` keys deep
 * ("dns.zones", "node.logLevel", "tftp"); sorted. Arrays compare whole.
 */
export function configChanges(running: unknown, next: unknown, depth = 2): string[] {
  const out: string[] = [];
  walk(running, next, '', depth, out);
  return out.sort();
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !ArrayBuffer.isView(v);
}

function walk(a: unknown, b: unknown, path: string, depth: number, out: string[]): void {
  if (same(a, b)) return;
  if (depth === 0 || !isRecord(a) || !isRecord(b)) { out.push(path === '' ? '(the whole file)' : path); return; }
  for (const key of new Set([...Object.keys(a), ...Object.keys(b)])) {
    walk(a[key], b[key], path === '' ? key : `${path}.${key}`, depth - 1, out);
  }
}

function same(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (a instanceof Uint8Array && b instanceof Uint8Array) return Buffer.compare(a, b) === 0;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => same(x, b[i]));
  if (isRecord(a) && isRecord(b)) {
    const ka = Object.keys(a).filter((k) => a[k] !== undefined);
    const kb = Object.keys(b).filter((k) => b[k] !== undefined);
    return ka.length === kb.length && ka.every((k) => same(a[k], b[k]));
  }
  return false;
}
