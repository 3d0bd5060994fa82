// The newc writer: every header field where the kernel's unpacker reads it, 4-byte alignment of
// names and data, the trailer; and the module helpers of the netboot fixtures (depends= parsing,
// load order with dependencies first).
import t from 'tap';
import { newcArchive, parentDirs } from './cpio.js';
import { moduleDepends, moduleLoadOrder, withDirs } from './netboot-fixtures.js';

interface Parsed { name: string; mode: number; size: number; rdev: [number, number]; data: Buffer; offset: number }

/** A reader written from the format description, independent of the writer's code. */
function parse(archive: Buffer): Parsed[] {
  const out: Parsed[] = [];
  let at = 0;
  for (;;) {
    const magic = archive.subarray(at, at + 6).toString('ascii');
    if (magic !== '070701') throw new Error(`bad magic at ${at}: ${magic}`);
    const field = (i: number): number => parseInt(archive.subarray(at + 6 + i * 8, at + 14 + i * 8).toString('ascii'), 16);
    const nameSize = field(11);
    const size = field(6);
    const name = archive.subarray(at + 110, at + 110 + nameSize - 1).toString();
    const dataAt = Math.ceil((at + 110 + nameSize) / 4) * 4;
    out.push({ name, mode: field(1), size, rdev: [field(9), field(10)], data: archive.subarray(dataAt, dataAt + size), offset: at });
    at = Math.ceil((dataAt + size) / 4) * 4;
    if (name === 'TRAILER!!!') break;
  }
  if (at !== archive.length) throw new Error(`${archive.length - at} bytes after the trailer`);
  return out;
}

t.test('newc entries parse back with their kinds, modes, data and device numbers', async (t) => {
  const archive = newcArchive([
    { kind: 'dir', path: 'etc' },
    { kind: 'file', path: '/etc/hostname', data: Buffer.from('node1\n'), mode: 0o600 },
    { kind: 'file', path: 'init', data: Buffer.from('#!/bin/sh\n'), mode: 0o755 },
    { kind: 'symlink', path: 'sbin', target: 'bin' },
    { kind: 'char', path: 'console', major: 5, minor: 1 },
    { kind: 'file', path: 'empty', data: Buffer.alloc(0) },
  ]);
  t.equal(archive.length % 4, 0, 'the archive is a multiple of 4 bytes');
  const entries = parse(archive);
  t.same(entries.map((e) => [e.name, e.mode.toString(8)]), [
    ['etc', '40755'], ['etc/hostname', '100600'], ['init', '100755'], ['sbin', '120777'], ['console', '20600'], ['empty', '100644'], ['TRAILER!!!', '0'],
  ], 'names (leading / dropped) and modes with their file-type bits');
  t.equal(entries[1]!.data.toString(), 'node1\n', 'file data');
  t.equal(entries[3]!.data.toString(), 'bin', 'a symlink holds its target');
  t.same(entries[4]!.rdev, [5, 1], 'a character device carries its major and minor');
  for (const e of entries) t.equal(e.offset % 4, 0, `${e.name} starts on a 4-byte boundary`);
});

t.test('parentDirs and withDirs put every directory before what it holds', async (t) => {
  t.same(parentDirs(['a/b/c', 'a/d', 'e']), ['a', 'a/b']);
  const entries = withDirs([{ kind: 'file', path: 'etc/netboot/id', data: Buffer.from('k') }, { kind: 'dir', path: 'run', mode: 0o700 }, { kind: 'dir', path: 'etc' }]);
  t.same(entries.map((e) => e.path), ['etc', 'run', 'etc/netboot', 'etc/netboot/id'], 'directories first, parents before children, each once');
  t.same(entries[1], { kind: 'dir', path: 'run', mode: 0o700 }, 'a given directory keeps its mode');
});

t.test('moduleDepends reads the depends= field of a .modinfo section', async (t) => {
  const ko = Buffer.from('\x7fELF...\0license=GPL\0depends=virtio_ring,virtio,net_failover\0retpoline=Y\0name=virtio_net\0');
  t.same(moduleDepends(ko), ['virtio_ring', 'virtio', 'net_failover']);
  t.same(moduleDepends(Buffer.from('\0depends=\0name=virtio_ring\0')), [], 'an empty field: no dependencies');
  t.same(moduleDepends(Buffer.from('no modinfo at all')), [], 'no field: no dependencies');
});

t.test('moduleLoadOrder loads dependencies first, each once, and names a cycle', async (t) => {
  const deps: Record<string, string[]> = {
    virtio_net: ['virtio_ring', 'virtio', 'net_failover'], net_failover: ['failover'], failover: [],
    virtio_ring: [], virtio: [], virtio_mmio: ['virtio', 'virtio_ring'], virtio_blk: ['virtio', 'virtio_ring'],
  };
  const order = moduleLoadOrder(['virtio_mmio', 'virtio_net', 'virtio_blk'], (m) => deps[m] ?? []);
  t.same(order, ['virtio', 'virtio_ring', 'virtio_mmio', 'failover', 'net_failover', 'virtio_net', 'virtio_blk']);
  t.throws(() => moduleLoadOrder(['a'], (m) => (m === 'a' ? ['b'] : ['a'])), /cycle: a -> b -> a/);
});
