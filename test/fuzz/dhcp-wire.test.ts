// Fuzzes the DHCP decoder: arbitrary bytes, and bytes that pass the header and cookie checks so the
// option parser is reached, never throw; whatever decodes re-encodes and decodes to the same message.
import t from 'tap';
import fc from 'fast-check';
import { deepStrictEqual } from 'node:assert';
import { decodeDhcp, encodeDhcp, MAGIC_COOKIE } from '../../services/dhcp/wire.js';
import { readRequest } from '../../services/dhcp/request.js';
import { seedFromEnv } from '../support/seeded.js';

const budgetMs = Number(process.env['LANHA_FUZZ_MS'] ?? 3000);

function roundTrips(bytes: Uint8Array): void {
  const first = decodeDhcp(bytes);
  if (!first.ok) return;
  readRequest(first.value); // must not throw either
  const second = decodeDhcp(encodeDhcp(first.value, 4096));
  if (!second.ok) throw new Error(`re-encoded message does not decode: ${second.error.code}`);
  deepStrictEqual(second.value, first.value);
}

const withCookie = fc.tuple(
  fc.uint8Array({ minLength: 236, maxLength: 236 }),
  // Option soup biased towards plausible codes and short lengths, sometimes with END and overload.
  fc.array(fc.oneof(
    fc.tuple(fc.constantFrom(1, 3, 12, 43, 52, 53, 55, 61, 82, 119, 121, 255, 0), fc.integer({ min: 0, max: 12 }))
      .chain(([code, len]) => fc.uint8Array({ minLength: len, maxLength: len }).map((data) => [code, len, ...data])),
    fc.uint8Array({ maxLength: 8 }).map((a) => [...a]),
  ), { maxLength: 60 }).map((parts) => parts.flat()),
  fc.boolean(),
).map(([head, opts, end]) => {
  const out = new Uint8Array(240 + opts.length + (end ? 1 : 0));
  out.set(head);
  out[2] = head[2]! % 20; // hlen mostly legal
  new DataView(out.buffer).setUint32(236, MAGIC_COOKIE);
  out.set(opts, 240);
  if (end) out[out.length - 1] = 255;
  return out;
});

t.test('arbitrary bytes never throw, and what decodes survives a round trip', (t) => {
  const seed = seedFromEnv(20261123);
  fc.assert(fc.property(fc.uint8Array({ maxLength: 1500 }), (bytes) => { roundTrips(bytes); }),
    { seed, interruptAfterTimeLimit: budgetMs / 2, numRuns: Number.MAX_SAFE_INTEGER });
  t.pass(`seed ${seed}`);
  t.end();
});

t.test('header+cookie+option soup never throws and round-trips', (t) => {
  const seed = seedFromEnv(20261124);
  let decodedCount = 0;
  let runs = 0;
  // At least 500 runs whatever the CPU time (a loaded machine ran too few for the count to mean anything).
  fc.assert(fc.property(withCookie, (bytes) => {
    runs++;
    if (decodeDhcp(bytes).ok) decodedCount++;
    roundTrips(bytes);
  }), { seed, numRuns: 500 });
  fc.assert(fc.property(withCookie, (bytes) => {
    runs++;
    if (decodeDhcp(bytes).ok) decodedCount++;
    roundTrips(bytes);
  }), { seed: seed + 1, interruptAfterTimeLimit: budgetMs / 2, numRuns: Number.MAX_SAFE_INTEGER });
  // The generator is built to reach the option parser: about one packet in seven decodes; one in twenty is the floor.
  t.ok(decodedCount >= runs / 20, `the generator reaches the option parser (${decodedCount} of ${runs} decoded, seed ${seed})`);
  t.end();
});
