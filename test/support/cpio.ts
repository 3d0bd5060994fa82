// A writer for the "newc" cpio format (the SVR4 "070701" ASCII header), the format the Linux kernel
// unpacks an initramfs from. Written here because the host may have no `cpio` and the per-run keys
// archive is built in memory. Layout of one entry:
//
//   "070701"  then 13 fields of 8 upper-case hex digits:
//   ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor namesize check
//   name + NUL, padded with NULs to a multiple of 4 (counting the 110-byte header)
//   data, padded with NULs to a multiple of 4
//
// The archive ends with an entry named "TRAILER!!!". Symlink data is the target path.

export type CpioEntry =
  | { kind: 'dir'; path: string; mode?: number }
  | { kind: 'file'; path: string; data: Uint8Array; mode?: number }
  | { kind: 'symlink'; path: string; target: string }
  | { kind: 'char'; path: string; major: number; minor: number; mode?: number };

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;

function hex8(n: number): string {
  return (n >>> 0).toString(16).toUpperCase().padStart(8, '0');
}

function pad4(length: number): number {
  return (4 - (length % 4)) % 4;
}

function header(fields: { ino: number; mode: number; nlink: number; mtime: number; size: number; rdevMajor: number; rdevMinor: number; nameSize: number }): string {
  return '070701' + [fields.ino, fields.mode, 0, 0, fields.nlink, fields.mtime, fields.size, 0, 0,
    fields.rdevMajor, fields.rdevMinor, fields.nameSize, 0].map(hex8).join('');
}

/** The entry's mode bits, data and device numbers. */
function describe(entry: CpioEntry): { mode: number; data: Uint8Array; rdevMajor: number; rdevMinor: number; nlink: number } {
  switch (entry.kind) {
    case 'dir': return { mode: S_IFDIR | (entry.mode ?? 0o755), data: new Uint8Array(0), rdevMajor: 0, rdevMinor: 0, nlink: 2 };
    case 'file': return { mode: S_IFREG | (entry.mode ?? 0o644), data: entry.data, rdevMajor: 0, rdevMinor: 0, nlink: 1 };
    case 'symlink': return { mode: S_IFLNK | 0o777, data: Buffer.from(entry.target), rdevMajor: 0, rdevMinor: 0, nlink: 1 };
    case 'char': return { mode: S_IFCHR | (entry.mode ?? 0o600), data: new Uint8Array(0), rdevMajor: entry.major, rdevMinor: entry.minor, nlink: 1 };
  }
}

/**
 * A newc archive of `entries` in the order given (a directory must come before what it holds).
 * Paths are relative ("init", "bin/busybox"); every entry gets the same `mtime` so the archive is
 * a function of its inputs.
 */
export function newcArchive(entries: readonly CpioEntry[], mtime = 0): Buffer {
  const parts: Buffer[] = [];
  const push = (head: string, name: string, data: Uint8Array): void => {
    const nameBytes = Buffer.from(`${name}\0`);
    parts.push(Buffer.from(head, 'ascii'), nameBytes, Buffer.alloc(pad4(110 + nameBytes.length)));
    parts.push(Buffer.from(data.buffer, data.byteOffset, data.byteLength), Buffer.alloc(pad4(data.byteLength)));
  };
  let ino = 1;
  for (const entry of entries) {
    const name = entry.path.replace(/^\/+/, '');
    const d = describe(entry);
    push(header({ ino: ino++, mode: d.mode, nlink: d.nlink, mtime, size: d.data.byteLength, rdevMajor: d.rdevMajor, rdevMinor: d.rdevMinor, nameSize: Buffer.byteLength(name) + 1 }), name, d.data);
  }
  push(header({ ino: 0, mode: 0, nlink: 1, mtime: 0, size: 0, rdevMajor: 0, rdevMinor: 0, nameSize: 11 }), 'TRAILER!!!', new Uint8Array(0));
  return Buffer.concat(parts);
}

/** Every parent directory of `paths` ("a/b/c" gives "a", "a/b"), parents first, without duplicates. */
export function parentDirs(paths: readonly string[]): string[] {
  const dirs = new Set<string>();
  for (const p of paths) {
    const parts = p.replace(/^\/+/, '').split('/');
    for (let i = 1; i < parts.length; i++) dirs.add(parts.slice(0, i).join('/'));
  }
  return [...dirs].sort((a, b) => a.split('/').length - b.split('/').length || a.localeCompare(b));
}
