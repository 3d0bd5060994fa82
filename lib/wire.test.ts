import t from 'tap';
import fc from 'fast-check';
import { WireReader } from './wire-reader.js';
import { WireWriter } from './wire-writer.js';
import { seededRandom } from './random.js';
import { parseHex, toHex } from '../test/support/hex.js';

t.test('reader latches overrun and never throws', async (t) => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 16 }), fc.array(fc.integer({ min: 0, max: 5 }), { maxLength: 20 }), (bytes, ops) => {
    const r = new WireReader(bytes);
    for (const op of ops) [() => r.u8(), () => r.u16(), () => r.u32(), () => r.bytesView(3), () => r.skip(2), () => r.seek(100)][op]!();
    return r.offset <= bytes.length;
  }));
  const r = new WireReader(new Uint8Array([1, 2, 3]));
  t.equal(r.u16(), 0x0102);
  t.equal(r.u16(), 0, 'short read gives 0');
  t.ok(r.overrun);
  t.equal(r.u8(), 0, 'stays latched');
});

t.test('writer round-trips and enforces its limit', async (t) => {
  const w = new WireWriter(9, 1);
  w.u8(1).u16(0x0203).u32(0x04050607);
  t.ok(w.fits(2));
  t.notOk(w.fits(3));
  w.u16(0x0809);
  t.throws(() => w.u8(0), RangeError, 'a write past the limit throws');
  t.same([...w.finish()], [1, 2, 3, 4, 5, 6, 7, 8, 9]);
});

t.test('seeded random replays', async (t) => {
  const a = seededRandom(42), b = seededRandom(42), c = seededRandom(43);
  const seqA = Array.from({ length: 10 }, () => a.int(1000));
  t.same(seqA, Array.from({ length: 10 }, () => b.int(1000)), 'same seed, same sequence');
  t.not(JSON.stringify(seqA), JSON.stringify(Array.from({ length: 10 }, () => c.int(1000))), 'other seed differs');
  const r = seededRandom(7);
  for (let i = 0; i < 1000; i++) { const f = r.float(); if (f < 0 || f >= 1) t.fail(`float out of range: ${f}`); }
});

t.test('hex golden reader', async (t) => {
  const packets = parseHex('# a comment\n01 02 0a # trailing\n\n---\nff:ee\n');
  t.same(packets.map((p) => [...p]), [[1, 2, 10], [255, 238]]);
  t.throws(() => parseHex('0g'), /not hex/);
  t.throws(() => parseHex('012'), /odd number/);
  t.equal(toHex(new Uint8Array([0, 255])), '00 ff');
});
