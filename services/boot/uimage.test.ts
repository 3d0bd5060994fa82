import t from 'tap';
import fc from 'fast-check';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32, crc32ForTest, nameBytes, readHeader, readScriptImage, writeScriptImage, UIMAGE_MAGIC, type UImageArchName } from './uimage.js';
import { randomFor, seedFromEnv } from '../../test/support/seeded.js';
import { haveTools } from '../../test/support/tools.js';

// The image writer against the real mkimage (Debian u-boot-tools) run now into a temp dir: the
// same script, name and SOURCE_DATE_EPOCH give the same bytes, for scripts of 1, 4095 and 65536
// octets and names of 0/31/32/40 chars, arm and arm64. Then the reader: both CRCs verify and the
// script comes back, for any script and name (fast-check); every damaged field is named.

const TIME_S = 1_764_590_000;

function printableScript(length: number, seed: number): Buffer {
  const random = randomFor(seed);
  const out = Buffer.alloc(length);
  for (let i = 0; i < length; i++) out[i] = i % 64 === 63 ? 0x0a : 0x20 + random.int(95);
  return out;
}

t.test('golden: byte-identical to mkimage with SOURCE_DATE_EPOCH', async (t) => {
  if (!haveTools(t, ['mkimage'], 'uimage golden test (apt-get install u-boot-tools)')) return;
  const dir = mkdtempSync(join(tmpdir(), 'lanha-uimage-'));
  try {
    const names = ['', 'n'.repeat(31), 'abcdefghijklmnopqrstuvwxyz012345', 'node-with-a-rather-long-name-'.padEnd(40, 'x')];
    for (const length of [1, 4095, 65536]) {
      for (const name of names) {
        for (const arch of (length === 1 ? ['arm', 'arm64', 'riscv', 'x86_64'] : ['arm', 'arm64']) as UImageArchName[]) {
          const script = printableScript(length, length + name.length);
          const input = join(dir, 'script');
          const output = join(dir, 'image');
          writeFileSync(input, script);
          execFileSync('mkimage', ['-A', arch, '-O', 'linux', '-T', 'script', '-C', 'none', '-n', name, '-d', input, output], {
            env: { ...process.env, SOURCE_DATE_EPOCH: String(TIME_S) }, stdio: ['ignore', 'ignore', 'pipe'],
          });
          const expected = readFileSync(output);
          const ours = writeScriptImage({ script, name, timeS: TIME_S, arch });
          t.ok(ours.equals(expected), `${length} octets, name of ${name.length} chars, ${arch}: same bytes as mkimage`);
        }
      }
    }
    // mkimage reads our image back as valid.
    const image = writeScriptImage({ script: 'echo from lanha\n', name: 'lanha check', timeS: TIME_S });
    writeFileSync(join(dir, 'ours'), image);
    const listed = execFileSync('mkimage', ['-l', join(dir, 'ours')], { encoding: 'utf8' });
    t.match(listed, /Image Name:\s+lanha check/);
    t.match(listed, /Linux Script/);
    // mkimage refuses an empty file; so do we.
    writeFileSync(join(dir, 'empty'), '');
    let refused = false;
    try {
      execFileSync('mkimage', ['-A', 'arm', '-O', 'linux', '-T', 'script', '-C', 'none', '-n', 'x', '-d', join(dir, 'empty'), join(dir, 'out')], { stdio: 'ignore' });
    } catch { refused = true; }
    t.ok(refused, 'mkimage refuses an empty script file');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

t.test('the header layout, field by field', async (t) => {
  const image = writeScriptImage({ script: 'echo hi\n', name: 'x', timeS: 0x01020304, arch: 'arm64' });
  t.equal(image.length, 64 + 8 + 8);
  t.equal(image.readUInt32BE(0), UIMAGE_MAGIC);
  t.equal(image.readUInt32BE(8), 0x01020304, 'time');
  t.equal(image.readUInt32BE(12), 16, 'data size = table + script');
  t.equal(image.readUInt32BE(16), 0);
  t.equal(image.readUInt32BE(20), 0);
  t.same([image[28], image[29], image[30], image[31]], [5, 22, 6, 0], 'os linux, arch arm64, type script, no compression');
  t.equal(image.readUInt32BE(64), 8, 'first length');
  t.equal(image.readUInt32BE(68), 0, 'table terminator');
  t.equal(image.subarray(72).toString(), 'echo hi\n');
});

t.test('names: UTF-8 octets cut at 32 with no NUL, a NUL ends the name', async (t) => {
  t.same([...nameBytes('')], new Array(32).fill(0));
  t.equal(Buffer.from(nameBytes('a'.repeat(40))).toString(), 'a'.repeat(32), 'cut at 32 with no terminator');
  t.equal(Buffer.from(nameBytes('ab\0cd')).subarray(0, 3).toString('latin1'), 'ab\0');
  t.equal(nameBytes('ab\0cd')[3], 0, 'nothing copied after a NUL');
  t.equal(readHeader(writeScriptImage({ script: 'x', name: 'é'.repeat(20), timeS: 0 }))!.name.length, 32, '20 two-octet chars cut at 32 octets');
});

t.test('refusals: empty script, bad time', async (t) => {
  t.throws(() => writeScriptImage({ script: '', name: 'n', timeS: 0 }), /script is empty/);
  t.throws(() => writeScriptImage({ script: new Uint8Array(0), name: 'n', timeS: 0 }), /script is empty/);
  t.throws(() => writeScriptImage({ script: 'x', name: 'n', timeS: -1 }), /time -1/);
  t.throws(() => writeScriptImage({ script: 'x', name: 'n', timeS: 2 ** 32 }), /time/);
  t.throws(() => writeScriptImage({ script: 'x', name: 'n', timeS: 1.5 }), /time/);
});

t.test('crc32: zlib and the table agree, and match the check value', async (t) => {
  t.equal(crc32(Buffer.from('123456789')), 0xcbf43926);
  t.equal(crc32ForTest.table(Buffer.from('123456789')), 0xcbf43926);
  fc.assert(fc.property(fc.uint8Array({ maxLength: 2000 }), (bytes) => crc32(bytes) === crc32ForTest.table(bytes)), { seed: seedFromEnv(11), numRuns: 300 });
});

t.test('property: both CRCs verify and the reader returns the script', async (t) => {
  fc.assert(fc.property(
    fc.uint8Array({ minLength: 1, maxLength: 5000 }),
    fc.string({ maxLength: 50 }),
    fc.nat({ max: 0xffffffff }),
    fc.constantFrom<UImageArchName>('arm', 'arm64'),
    (script, name, timeS, arch) => {
      const image = writeScriptImage({ script, name, timeS, arch });
      const read = readScriptImage(image);
      if (!read.ok) return false;
      const copy = Buffer.from(image.subarray(0, 64));
      copy.writeUInt32BE(0, 4);
      return read.value.script.equals(Buffer.from(script)) && read.value.header.timeS === timeS
        && crc32(copy) === image.readUInt32BE(4) && crc32(image.subarray(64)) === image.readUInt32BE(24);
    },
  ), { seed: seedFromEnv(12), numRuns: 500 });
  t.pass('checked');
});

t.test('property: the reader never throws on arbitrary bytes', async (t) => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => { readScriptImage(bytes); return true; }), { seed: seedFromEnv(13), numRuns: 2000 });
  t.pass('checked');
});

t.test('the reader names each damage', async (t) => {
  const good = writeScriptImage({ script: 'echo ok\n', name: 'n', timeS: 5 });
  const problem = (bytes: Uint8Array): string => { const r = readScriptImage(bytes); return r.ok ? 'ok' : r.error.code; };
  t.equal(problem(good), 'ok');
  t.equal(problem(good.subarray(0, 63)), 'short-header');
  const magic = Buffer.from(good); magic[0] = 0; t.equal(problem(magic), 'bad-magic');
  const header = Buffer.from(good); header[40] = 0x41; t.equal(problem(header), 'bad-header-crc');
  t.equal(problem(good.subarray(0, good.length - 1)), 'truncated');
  const data = Buffer.from(good); data[data.length - 1] = data[data.length - 1]! ^ 1; t.equal(problem(data), 'bad-data-crc');
  t.equal(problem(Buffer.concat([good, Buffer.from('trailing')])), 'ok', 'trailing octets are ignored, as U-Boot does');
});
