import t from 'tap';
import fc from 'fast-check';
import { mkdtempSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeMessage, encodeMessage, splitFrames, encodeFrame, frameMacOk, decodeHello, FrameKind } from '../../cluster/raft/wire.js';
import { loadState, scanSegment, decodeSnapshot, encodeSnapshot, encodeRecord, StorageError } from '../../cluster/raft/wal.js';
import type { Message, MessageType } from '../../cluster/raft/types.js';

// Hostile bytes into the Raft frame/message decoders and the WAL/snapshot loader: never a crash,
// a clear refusal (file and offset) instead, and whatever decodes round-trips.
const runs = process.env['CI'] === 'true' ? 20_000 : 5_000;
const seed = Number(process.env['LANHA_SEED'] ?? 31);

const TYPES: MessageType[] = ['prevote', 'prevote-resp', 'vote', 'vote-resp', 'append', 'append-resp', 'heartbeat', 'heartbeat-resp', 'snapshot', 'snapshot-resp', 'timeout-now'];
const id = fc.stringMatching(/^[a-z][a-z0-9-]{0,10}$/);
const n = fc.integer({ min: 0, max: 2 ** 40 });
const message: fc.Arbitrary<Message> = fc.record({
  type: fc.constantFrom(...TYPES), from: id, to: id, term: n, logTerm: n, index: n, commit: n, hint: n, context: n, reject: fc.boolean(),
  entries: fc.array(fc.record({ term: n, index: n, type: fc.constantFrom(0 as const, 1 as const), data: fc.uint8Array({ maxLength: 40 }) }), { maxLength: 5 }),
}).map((m) => m as Message);

function canonical(m: Message): string {
  const { offset: _o, entries, ...rest } = m;
  const sorted = Object.fromEntries(Object.entries(rest).sort(([a], [b]) => (a < b ? -1 : 1)));
  return JSON.stringify({ ...sorted, entries: entries.map((e) => [e.term, e.index, e.type, [...e.data]]) });
}

t.test('messages round-trip; random and mutated bytes never throw', async (t) => {
  fc.assert(fc.property(message, fc.integer({ min: 0, max: 200 }), fc.integer({ min: 0, max: 255 }), (m, pos, byte) => {
    const bytes = encodeMessage(m);
    const back = decodeMessage(bytes);
    if (!back.ok) throw new Error(`valid message refused: ${back.error.code}`);
    if (canonical(back.value) !== canonical(m)) throw new Error(`round trip changed the message: ${canonical(back.value)} != ${canonical(m)}`);
    const mutated = Uint8Array.from(bytes);
    if (mutated.length > 0) mutated[pos % mutated.length] = byte;
    decodeMessage(mutated);
    decodeMessage(bytes.subarray(0, pos % (bytes.length + 1)));
  }), { numRuns: runs, seed });
  fc.assert(fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
    decodeMessage(bytes);
    decodeHello(bytes);
    splitFrames(bytes, 4096);
  }), { numRuns: runs, seed: seed + 1 });
  t.pass('no throw');
});

t.test('a frame with any flipped bit fails its MAC or its framing', async (t) => {
  const key = new Uint8Array(32).fill(7);
  fc.assert(fc.property(message, fc.nat(), fc.integer({ min: 0, max: 7 }), (m, pos, bit) => {
    const frame = encodeFrame(FrameKind.raft, 5, encodeMessage(m), key);
    const ok = splitFrames(frame);
    if (ok.frames.length !== 1 || !frameMacOk(ok.frames[0]!, key)) throw new Error('a good frame did not verify');
    const bad = Buffer.from(frame);
    const at = pos % bad.length;
    bad[at] = bad[at]! ^ (1 << bit);
    const split = splitFrames(bad);
    if (split.frames.length === 1 && at >= 4 && frameMacOk(split.frames[0]!, key)) throw new Error(`flipped bit at ${at} passed the MAC`);
  }), { numRuns: runs / 5, seed: seed + 2 });
  t.pass('tampering is always caught');
});

t.test('WAL loader: corrupt segments and snapshots are cut (last segment) or refused with file and offset', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'lanha-walfuzz-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const good: Uint8Array[] = [Buffer.from('LHWAL\u0000\u0000\u0001')];
  for (let i = 1; i <= 4; i++) good.push(encodeRecord(1, 1, i, new TextEncoder().encode(`entry ${i}`)));
  const segment = Buffer.concat(good);
  let k = 0;
  fc.assert(fc.property(fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }), fc.boolean(), fc.nat(), (edits, older, cut) => {
    const dir = join(root, String(k++));
    mkdirSync(join(dir, 'wal'), { recursive: true });
    const bad = Buffer.from(segment).subarray(0, Math.max(0, segment.length - (cut % 30)));
    for (const [pos, byte] of edits) if (bad.length > 0) bad[pos % bad.length] = byte;
    writeFileSync(join(dir, 'wal', `${'1'.padStart(16, '0')}-${'1'.padStart(16, '0')}.wal`), bad);
    if (older) writeFileSync(join(dir, 'wal', `${'2'.padStart(16, '0')}-${'5'.padStart(16, '0')}.wal`), Buffer.concat([good[0]!, encodeRecord(1, 1, 5, new Uint8Array(1))]));
    try {
      const s = loadState(dir);
      for (let i = 0; i < s.entries.length; i++) if (s.entries[i]!.index !== i + 1) throw new Error('loaded a log with a gap');
    } catch (error) {
      if (!(error instanceof StorageError)) throw error;
      if (!/ at offset \d+: /.test(error.message) || !error.file.startsWith(dir)) throw new Error(`unclear refusal: ${error.message}`);
    }
    scanSegment(bad);
  }), { numRuns: Math.min(runs / 10, 1000), seed: seed + 3 });
  t.ok(readdirSync(root).length > 0);
  const snap = encodeSnapshot({ meta: { index: 9, term: 2, conf: { voters: ['a'], learners: [], witnesses: [] } }, data: new Uint8Array(64) });
  fc.assert(fc.property(fc.nat(), fc.integer({ min: 0, max: 255 }), fc.nat(), (pos, byte, cut) => {
    const bad = Buffer.from(snap).subarray(0, snap.length - (cut % 10));
    bad[pos % bad.length] = byte;
    const r = decodeSnapshot(bad);
    if (r.ok && (bad.length !== snap.length || Buffer.compare(bad, snap) !== 0)) throw new Error('a damaged snapshot decoded');
  }), { numRuns: runs / 5, seed: seed + 4 });
  t.pass('snapshot damage is always detected');
});
