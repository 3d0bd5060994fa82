// A big-endian cursor over a datagram. Reads past the end return 0 or an empty slice and latch
// `overrun`, so a decoder reads a whole fixed header and checks the flag once. Never throws.
export class WireReader {
  readonly bytes: Uint8Array;
  #view: DataView;
  #offset: number;
  #overrun = false;

  constructor(bytes: Uint8Array, offset = 0) {
    this.bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.#offset = Math.min(Math.max(0, offset), bytes.byteLength);
  }

  get offset(): number { return this.#offset; }
  get overrun(): boolean { return this.#overrun; }
  get remaining(): number { return this.#view.byteLength - this.#offset; }
  get length(): number { return this.#view.byteLength; }

  u8(): number { return this.#claim(1) ? this.#view.getUint8(this.#offset - 1) : 0; }
  u16(): number { return this.#claim(2) ? this.#view.getUint16(this.#offset - 2) : 0; }
  u32(): number { return this.#claim(4) ? this.#view.getUint32(this.#offset - 4) : 0; }

  /** A view (not a copy) of the next `count` bytes; empty on overrun. */
  bytesView(count: number): Uint8Array {
    if (!this.#claim(count)) return new Uint8Array(0);
    return this.bytes.subarray(this.#offset - count, this.#offset);
  }

  skip(count: number): void { this.#claim(count); }

  /** Moves the cursor; an out-of-range target latches overrun. */
  seek(offset: number): void {
    if (offset < 0 || offset > this.#view.byteLength) { this.#overrun = true; return; }
    this.#offset = offset;
  }

  #claim(count: number): boolean {
    if (this.#overrun || count < 0 || count > this.remaining) {
      this.#overrun = true;
      return false;
    }
    this.#offset += count;
    return true;
  }
}
