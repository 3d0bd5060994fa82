// The prebuilt table's storage: entries written one after another into shared chunks (and large
// ones into buffers of their own) each give back exactly their own answer after thousands more were
// added, asked in any case; clearing drops them all. (The answers' equality with the decoding path
// is handler.test.ts's property.)
import t from 'tap';
import { FAST_CHUNK_BYTES, FastAnswers, fastReply, scanQuery, type FastQuery } from './fast.js';
import { encodeName } from './name.js';

function question(name: string): Buffer {
  return Buffer.concat([Buffer.from(encodeName(name)), Buffer.of(0, 1, 0, 1)]);
}

function query(id: number, name: string): Buffer {
  return Buffer.concat([Buffer.of(id >> 8, id & 0xff, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0), question(name)]);
}

/** A made-up answer to `query(id, name)` whose record data is `payload` bytes of `fill`. */
function answer(id: number, name: string, payload: number, fill: number): Buffer {
  const head = Buffer.of(id >> 8, id & 0xff, 0x85, 0, 0, 1, 0, 1, 0, 0, 0, 0);
  const rr = Buffer.concat([Buffer.of(0xc0, 12, 0, 16, 0, 1, 0, 0, 0, 60, payload >> 8, payload & 0xff), Buffer.alloc(payload, fill)]);
  return Buffer.concat([head, question(name), rr]);
}

t.test('entries across many chunks and large ones of their own each answer with their own bytes', async (t) => {
  const fast = new FastAnswers(20_000);
  const fq: FastQuery = { qEnd: 0, ednsLimit: 0, hash: 0 };
  const count = 6_000;
  const sizeOf = (i: number): number => (i % 997 === 0 ? FAST_CHUNK_BYTES / 2 : 20 + (i % 200));
  let stored = 0;
  let shaped = 0;
  for (let i = 0; i < count; i++) {
    const name = `host${i}.example`;
    const q = query(i, name);
    if (scanQuery(q, fq)) shaped++;
    fast.add(q, fq, answer(i, name, sizeOf(i), i & 0xff), 0);
    stored += sizeOf(i);
  }
  t.equal(shaped, count, 'every query has the fast path\'s shape');
  t.ok(stored > 10 * FAST_CHUNK_BYTES, `${stored} bytes of answers stored: many chunks`);
  let wrong = 0;
  for (let i = 0; i < count; i++) {
    const name = `HOST${i}.Example`;
    const q = query(0xffff - (i & 0x7fff), name);
    scanQuery(q, fq);
    const e = fast.get(q, fq);
    const expected = answer(0xffff - (i & 0x7fff), name, sizeOf(i), i & 0xff);
    if (e === null || Buffer.compare(fastReply(q, fq, e, false, true), expected) !== 0) wrong++;
  }
  t.equal(wrong, 0, 'every entry answers with its own bytes, the asker\'s ID and case');
  fast.clear();
  const q = query(1, 'host1.example');
  scanQuery(q, fq);
  t.equal(fast.get(q, fq), null, 'cleared');
  t.equal(fast.size, 0);
  fast.add(q, fq, answer(1, 'host1.example', 4, 9), 0);
  t.same(fastReply(q, fq, fast.get(q, fq)!, false, false), answer(1, 'host1.example', 4, 9), 'filled again after a clear');
});
