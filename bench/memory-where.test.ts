import t from 'tap';
import { smapsParts } from './memory-where.js';

// The kinds of mapping bench/memory-where.ts tells apart in /proc/PID/smaps, on a made-up process:
// the node binary, a library, [heap], a malloc arena (64 MiB-aligned, rest reserved), a thread stack
// after its guard page, V8 heap pages, a 64 MiB SharedArrayBuffer (the TFTP cache).
const vma = (range: string, perm: string, path: string, rss: number, anon: number): string =>
  `${range} ${perm} 00000000 fe:00 1 ${path}\nSize: 0 kB\nRss: ${rss} kB\nPss: ${rss} kB\nAnonymous: ${anon} kB\n`;
const SMAPS = [
  vma('00400000-00b6f000', 'r--p', '/usr/bin/node', 5948, 0),
  vma('00b72000-025fe000', 'r-xp', '/usr/bin/node', 21432, 0),
  vma('0563e000-0565d000', 'rw-p', '/usr/bin/node', 124, 120),
  vma('23b71000-24246000', 'rw-p', '[heap]', 6476, 6476),
  vma('3970740000-3970780000', 'rw-p', '', 256, 256),
  vma('7fb6c0000000-7fb6c019d000', 'rw-p', '', 1628, 1628),
  vma('7fb6c019d000-7fb6c4000000', '---p', '', 0, 0),
  vma('7fb6b7ffc000-7fb6bc000000', 'rw-p', '', 8, 8),
  vma('7fb6fa7fd000-7fb6fa7fe000', '---p', '', 0, 0),
  vma('7fb6fa7fe000-7fb6faffe000', 'rw-p', '', 24, 24),
  vma('7fb70100a000-7fb7011f3000', 'r-xp', '/usr/lib/x86_64-linux-gnu/libc.so.6', 1504, 0),
  vma('7ffee84bf000-7ffee84e0000', 'rw-p', '[stack]', 64, 64),
].join('');

t.test('smapsParts: malloc, stacks, big mappings and file pages apart', async (t) => {
  const p = smapsParts(SMAPS, '/usr/bin/node');
  t.equal(p.mallocKiB, 6476 + 1628, '[heap] and the arena');
  t.equal(p.stacksKiB, 64 + 24, 'the main stack and the thread stack after its guard');
  t.equal(p.bigKiB, 8, 'the 64 MiB mapping that is no arena (not aligned)');
  t.equal(p.anonKiB, 120 + 6476 + 256 + 1628 + 8 + 24 + 64, 'every anonymous page, the binary\'s written data too');
  t.equal(p.fileNodeKiB, 5948 + 21432 + 4, 'the binary\'s file pages');
  t.equal(p.fileOtherKiB, 1504, 'the library\'s');
  t.same([...p.files], [['/usr/bin/node', 5948 + 21432 + 4], ['/usr/lib/x86_64-linux-gnu/libc.so.6', 1504]], 'per file, for the union');
});
