import { invariant } from './assert.js';

// A big-endian writer with a hard size limit. Writing past the limit is a programmer error in the
// encoder (it must check sizes first) or a deliberate stop: `fits()` lets encoders test before they
// write, and a write that would pass the limit throws, never silently truncates.
export class WireWriter {
  #buf: Uint8Array;
  #view: DataView;
  #offset = 0;
  readonly sizeMax: number;

  constructor(sizeMax: number, initial = Math.min(sizeMax, 512)) {
    invariant(sizeMax > 0, 'sizeMax must be positive');
    this.sizeMax = sizeMax;
    this.#buf = new Uint8Array(Math.max(1, initial));
    this.#view = new DataView(this.#buf.buffer);
  }

  get offset(): number { return this.#offset; }

  fits(count: number): boolean { return this.#offset + count <= this.sizeMax; }

  u8(value: number): this { this.#ensure(1); this.#view.setUint8(this.#offset, value & 0xff); this.#offset += 1; return this; }
  u16(value: number): this { this.#ensure(2); this.#view.setUint16(this.#offset, value & 0xffff); this.#offset += 2; return this; }
  u32(value: number): this { this.#ensure(4); this.#view.setUint32(this.#offset, value >>> 0); this.#offset += 4; return this; }

  bytes(value: Uint8Array): this {
    this.#ensure(value.byteLength);
    this.#buf.set(value, this.#offset);
    this.#offset += value.byteLength;
    return this;
  }

  zeros(count: number): this {
    this.#ensure(count);
    this.#buf.fill(0, this.#offset, this.#offset + count);
    this.#offset += count;
    return this;
  }

  /** Overwrites a u16 already written (length fields filled in afterwards). */
  patchU16(at: number, value: number): void {
    invariant(at >= 0 && at + 2 <= this.#offset, 'patch outside written bytes');
    this.#view.setUint16(at, value & 0xffff);
  }

  patchU8(at: number, value: number): void {
    invariant(at >= 0 && at + 1 <= this.#offset, 'patch outside written bytes');
    this.#view.setUint8(at, value & 0xff);
  }

  /** The written bytes (a copy, so the writer can be dropped). */
  finish(): Uint8Array { return this.#buf.slice(0, this.#offset); }

  #ensure(count: number): void {
    const need = this.#offset + count;
    if (need > this.sizeMax) throw new RangeError(`write of ${count} bytes at ${this.#offset} passes the ${this.sizeMax}-byte limit`);
    if (need <= this.#buf.byteLength) return;
    let size = this.#buf.byteLength * 2;
    while (size < need) size *= 2;
    const grown = new Uint8Array(Math.min(size, this.sizeMax));
    grown.set(this.#buf.subarray(0, this.#offset));
    this.#buf = grown;
    this.#view = new DataView(grown.buffer);
  }
}
