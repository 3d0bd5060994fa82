// Table-driven reflected CRC-32s: CRC-32C (Castagnoli), the checksum of storage records (as etcd's
// WAL and ext4 use), and the zlib/IEEE CRC-32 (U-Boot images, services/boot/uimage.ts). About
// 400 MB/s in V8, far above what a SD card writes.

/** The 256-entry table of a reflected CRC-32 with this (reversed) polynomial. */
function crcTable(poly: number): Uint32Array {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? poly ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
}

function crcOver(table: Uint32Array, bytes: Uint8Array, seed: number): number {
  let c = ~seed >>> 0;
  for (let i = 0; i < bytes.length; i++) c = table[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

const CASTAGNOLI = crcTable(0x82f63b78);
const IEEE = crcTable(0xedb88320);

export function crc32c(bytes: Uint8Array, seed = 0): number {
  return crcOver(CASTAGNOLI, bytes, seed);
}

/** The zlib/IEEE CRC-32 (init and final xor 0xFFFFFFFF), from the table. */
export function crc32Ieee(bytes: Uint8Array, seed = 0): number {
  return crcOver(IEEE, bytes, seed);
}
