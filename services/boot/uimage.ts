import zlib from 'node:zlib';
import { crc32Ieee } from '../../lib/crc32c.js';
import { decoded, failed, type Decoded } from '../../lib/result.js';

// U-Boot legacy script images (what `mkimage -A arm -O linux -T script -C none -n NAME -d FILE`
// writes and U-Boot's `source` runs), written and read in TypeScript: no mkimage on the server.
// Pure: the image time is a parameter (the same bytes as mkimage with SOURCE_DATE_EPOCH set).
// No compression, no FIT images, no multi-file images (a script image holds one file).
//
//   0       4       8       12      16      20      24      28  29  30  31  32            64
//   +-------+-------+-------+-------+-------+-------+-------+---+---+---+---+-------------+
//   | magic | hcrc  | time  | size  | load  | entry | dcrc  |os |arc|typ|cmp| name (32)   |
//   +-------+-------+-------+-------+-------+-------+-------+---+---+---+---+-------------+
//   then the data (size octets): len0 u32 | 0 u32 | script (len0 octets, no padding)
//
// Every integer is big-endian. hcrc: CRC-32 of the 64 header octets with hcrc zero; dcrc: CRC-32
// of the data. size = 8 + script length. The name is NUL-padded; 32 octets or more are cut to 32
// with no NUL (mkimage's strncpy).

export const UIMAGE_MAGIC = 0x27051956;
export const UIMAGE_HEADER_BYTES = 64;
export const UIMAGE_NAME_BYTES = 32;

/** U-Boot's IH_OS_LINUX, IH_TYPE_SCRIPT, IH_COMP_NONE (include/image.h). */
export const UImageOs = { linux: 5 } as const;
export const UImageType = { script: 6 } as const;
export const UImageCompression = { none: 0 } as const;
/** U-Boot's IH_ARCH_* values for the architectures lanha writes images for. */
export const UImageArch = { arm: 2, arm64: 22, riscv: 26, x86_64: 24 } as const;
export type UImageArchName = keyof typeof UImageArch;

/** zlib.crc32 exists from Node 20.15; older Node 20 releases use the table. */
const nativeCrc32 = (zlib as { crc32?: (data: Uint8Array) => number }).crc32;

/** The zlib/IEEE CRC-32 U-Boot uses (`crc32(0, ...)`). */
export function crc32(bytes: Uint8Array): number {
  return typeof nativeCrc32 === 'function' ? nativeCrc32(bytes) >>> 0 : crc32Ieee(bytes);
}

/** Only for the test that checks both ways agree. */
export const crc32ForTest = { table: crc32Ieee };

export interface ScriptImageInput {
  /** The script text (UTF-8) or its bytes; must not be empty. */
  script: string | Uint8Array;
  /** The image name (`-n`); its UTF-8 octets are cut at 32 with no NUL, as mkimage does. */
  name: string;
  /** Image time in seconds since 1970 (mkimage's SOURCE_DATE_EPOCH); 0..2^32-1. */
  timeS: number;
  /** `-A arm` (2), `arm64` (22), `riscv` (26), `x86_64` (24); U-Boot's `source` does not check it. Default arm. */
  arch?: UImageArchName;
}

/** The 32 name octets as mkimage's strncpy leaves them (stops at a NUL, NUL-padded, no terminator at 32). */
export function nameBytes(name: string): Uint8Array {
  const out = new Uint8Array(UIMAGE_NAME_BYTES);
  const raw = Buffer.from(name, 'utf8');
  for (let i = 0; i < raw.length && i < UIMAGE_NAME_BYTES; i++) {
    if (raw[i] === 0) break;
    out[i] = raw[i]!;
  }
  return out;
}

/**
 * Writes a legacy script image, byte-identical to
 * `SOURCE_DATE_EPOCH=timeS mkimage -A arm -O linux -T script -C none -n name -d script`.
 * Throws on an empty script (U-Boot's `source` refuses one with "Empty Script") or a bad time.
 */
export function writeScriptImage(input: ScriptImageInput): Buffer {
  const script = typeof input.script === 'string' ? Buffer.from(input.script, 'utf8') : input.script;
  if (script.length === 0) {
    throw new RangeError('U-Boot script image: the script is empty (U-Boot refuses to run an empty script; give at least one command)');
  }
  if (!Number.isInteger(input.timeS) || input.timeS < 0 || input.timeS > 0xffffffff) {
    throw new RangeError(`U-Boot script image: time ${input.timeS} is not whole seconds between 0 and 4294967295`);
  }
  if (script.length > 0xffffffff - 8) throw new RangeError('U-Boot script image: the script is larger than 4 GiB');
  const dataBytes = 8 + script.length;
  const out = Buffer.alloc(UIMAGE_HEADER_BYTES + dataBytes);
  // Data: the multi-file size table (one length, then the 0 terminator), then the script.
  out.writeUInt32BE(script.length, UIMAGE_HEADER_BYTES);
  out.writeUInt32BE(0, UIMAGE_HEADER_BYTES + 4);
  out.set(script, UIMAGE_HEADER_BYTES + 8);
  out.writeUInt32BE(UIMAGE_MAGIC, 0);
  out.writeUInt32BE(input.timeS, 8);
  out.writeUInt32BE(dataBytes, 12);
  out.writeUInt32BE(0, 16); // load address (-a)
  out.writeUInt32BE(0, 20); // entry point (-e)
  out.writeUInt32BE(crc32(out.subarray(UIMAGE_HEADER_BYTES)), 24);
  out[28] = UImageOs.linux;
  out[29] = UImageArch[input.arch ?? 'arm'];
  out[30] = UImageType.script;
  out[31] = UImageCompression.none;
  out.set(nameBytes(input.name), 32);
  // The header CRC covers the 64 octets with its own field zero (it still is here).
  out.writeUInt32BE(crc32(out.subarray(0, UIMAGE_HEADER_BYTES)), 4);
  return out;
}

export interface UImageHeader {
  magic: number;
  headerCrc: number;
  timeS: number;
  dataBytes: number;
  loadAddress: number;
  entryPoint: number;
  dataCrc: number;
  os: number;
  arch: number;
  type: number;
  compression: number;
  /** The name up to its first NUL (latin1, so any octets show). */
  name: string;
}

export interface ScriptImage {
  header: UImageHeader;
  /** The script bytes U-Boot's `source` would run (the first file of the size table). */
  script: Buffer;
}

export type UImageProblem =
  | 'short-header' | 'bad-magic' | 'bad-header-crc' | 'truncated' | 'bad-data-crc' | 'not-script' | 'bad-table' | 'empty-script';

/** Reads the 64-octet header fields without checking anything (for display). */
export function readHeader(bytes: Uint8Array): UImageHeader | null {
  if (bytes.length < UIMAGE_HEADER_BYTES) return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const nameRaw = bytes.subarray(32, 64);
  const end = nameRaw.indexOf(0);
  return {
    magic: view.getUint32(0),
    headerCrc: view.getUint32(4),
    timeS: view.getUint32(8),
    dataBytes: view.getUint32(12),
    loadAddress: view.getUint32(16),
    entryPoint: view.getUint32(20),
    dataCrc: view.getUint32(24),
    os: bytes[28]!,
    arch: bytes[29]!,
    type: bytes[30]!,
    compression: bytes[31]!,
    name: Buffer.from(end < 0 ? nameRaw : nameRaw.subarray(0, end)).toString('latin1'),
  };
}

/**
 * Reads and verifies a script image the way U-Boot's `source` does: magic, header CRC, data CRC,
 * type script, a non-empty first length inside the data. Never throws; trailing octets after the
 * data are ignored (as U-Boot does).
 */
export function readScriptImage(bytes: Uint8Array): Decoded<ScriptImage, UImageProblem> {
  const header = readHeader(bytes);
  if (header === null) return failed('short-header', bytes.length, `${bytes.length} octets, a header is ${UIMAGE_HEADER_BYTES}`);
  if (header.magic !== UIMAGE_MAGIC) return failed('bad-magic', 0, `0x${header.magic.toString(16).padStart(8, '0')}`);
  const copy = Buffer.from(bytes.subarray(0, UIMAGE_HEADER_BYTES));
  copy.writeUInt32BE(0, 4);
  if (crc32(copy) !== header.headerCrc) return failed('bad-header-crc', 4);
  const dataEnd = UIMAGE_HEADER_BYTES + header.dataBytes;
  if (dataEnd > bytes.length) return failed('truncated', bytes.length, `header says ${header.dataBytes} data octets, ${bytes.length - UIMAGE_HEADER_BYTES} present`);
  const data = bytes.subarray(UIMAGE_HEADER_BYTES, dataEnd);
  if (crc32(data) !== header.dataCrc) return failed('bad-data-crc', 24);
  if (header.type !== UImageType.script) return failed('not-script', 30, `type ${header.type}`);
  if (data.length < 8) return failed('bad-table', UIMAGE_HEADER_BYTES, 'no size table');
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const length = view.getUint32(0);
  if (length === 0) return failed('empty-script', UIMAGE_HEADER_BYTES);
  // The table runs to a zero entry; the first file starts after it.
  let at = 4;
  while (at + 4 <= data.length && view.getUint32(at) !== 0) at += 4;
  if (at + 4 > data.length) return failed('bad-table', UIMAGE_HEADER_BYTES + at, 'size table has no terminator');
  const start = at + 4;
  if (start + length > data.length) return failed('bad-table', UIMAGE_HEADER_BYTES, `script length ${length} runs past the data`);
  return decoded({ header, script: Buffer.from(data.subarray(start, start + length)) });
}

/** Human words for each problem (lanctl, logs, tests). */
export const uimageProblemText: Record<UImageProblem, string> = {
  'short-header': 'shorter than the 64-octet header',
  'bad-magic': 'bad magic (not a U-Boot legacy image)',
  'bad-header-crc': 'bad header CRC',
  'truncated': 'data shorter than the header says',
  'bad-data-crc': 'bad data CRC',
  'not-script': 'not a script image',
  'bad-table': 'bad size table',
  'empty-script': 'empty script',
};
