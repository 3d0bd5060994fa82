import { openInRoot, type CachedSource, type OpenedFile } from './files.js';

// Test support shared by files.test.ts, block-cache.test.ts and its worker fixture: file contents
// that differ at every offset, opening under a root, and reading through a source as a transfer does.

/** `size` octets whose value depends on the offset and `seed`: a misplaced or stale block shows. */
export function pattern(size: number, seed: number): Buffer {
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i++) b[i] = (i * 31 + seed * 101 + (i >> 8)) & 0xff;
  return b;
}

export async function opened(root: string, name: string): Promise<OpenedFile> {
  const r = await openInRoot(root, name);
  if (!r.ok) throw new Error(`open ${name}: ${r.reason}`);
  return r.file;
}

/** `length` octets at `offset` through `source`, copied 4 octets into a packet as the engine does. */
export async function read(source: CachedSource, offset: number, length: number): Promise<Buffer> {
  const into = Buffer.alloc(length + 4, 0xee);
  const copied = source.copy(offset, length, into, 4);
  if (copied !== true) await copied;
  return into.subarray(4);
}
