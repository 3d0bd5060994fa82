// jsonInSlices: JSON.stringify's bytes (its parts together), with the items of a long array stringified at most
// ITEMS_PER_SLICE per turn of the event loop (counted by the items' own toJSON, no clock).
import t from 'tap';
import fc from 'fast-check';
import { ITEMS_PER_SLICE, jsonInSlices as inParts } from './slices.js';
import { loopTurns } from '../test/support/loop-turns.js';


t.test('the same bytes as JSON.stringify: long arrays at the top or under a key, short ones, scalars', async (t) => {
  const long = Array.from({ length: 2 * ITEMS_PER_SLICE + 7 }, (_, i) => ({ ip: `10.0.${i >> 8}.${i & 255}`, n: i, none: undefined, note: i % 5 === 0 ? 'é"\n\u0000' : null }));
  const cases: unknown[] = [
    { now: 'x', leases: long, pools: [{ a: 1 }], after: undefined },
    { short: [1, 2, 3], leases: long, more: long.slice(0, 10) },
    long,
    [...long, undefined, () => 1],
    { leases: [...long, undefined] },
    { nothing: [] },
    'text', 42, null, true,
    { toJSON: () => ({ replaced: long.length }), leases: long },
    new (class Rows { rows = long; })(),
    { date: new Date(0), leases: long.map((r) => ({ ...r, at: new Date(r.n) })) },
  ];
  for (const [i, value] of cases.entries()) {
    const got = await jsonInSlices(value);
    t.ok(got?.equals(Buffer.from(JSON.stringify(value) ?? 'null', 'utf8')), `case ${i}`);
  }
  await fc.assert(fc.asyncProperty(fc.array(fc.jsonValue(), { minLength: ITEMS_PER_SLICE - 2, maxLength: ITEMS_PER_SLICE + 40 }), fc.jsonValue(), async (items, other) => {
    const doc = { other, items, tail: other };
    return (await jsonInSlices(doc))!.equals(Buffer.from(JSON.stringify(doc), 'utf8'));
  }), { numRuns: 20, seed: 28 });
});

t.test('at most ITEMS_PER_SLICE items of a long array stringified per turn of the loop; stop gives null', async (t) => {
  const counter = loopTurns();
  const items = Array.from({ length: 22_000 }, (_, i) => ({ toJSON: () => { counter.seen(); return { i }; } }));
  const got = await jsonInSlices({ now: 'x', leases: items });
  const { turns, most } = counter.stop();
  t.ok(most <= ITEMS_PER_SLICE, `the most items stringified in one turn: ${most} of 22,000`);
  t.ok(turns >= 21, `the loop turned ${turns} times meanwhile`);
  t.equal(JSON.parse(got!.toString('utf8')).leases.length, 22_000);
  let asked = 0;
  t.equal(await jsonInSlices(items, () => ++asked > 2), null, 'stopped after its third slice');
});

async function jsonInSlices(value: unknown, stop?: () => boolean): Promise<Buffer | null> {
  const parts = await inParts(value, stop);
  return parts === null ? null : Buffer.concat(parts);
}
