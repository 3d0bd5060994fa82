import t from 'tap';
import fc from 'fast-check';
import { decodeNtp, encodeNtp, HEADER_LENGTH } from './wire.js';
import { buildKissOfDeath, buildReply } from './responder.js';
import { admitHeader } from './gate.js';
import { seedFromEnv } from '../../test/support/seeded.js';

// Fuzzing the decoder (and the reply builder behind it): arbitrary datagrams never throw; whatever
// decodes re-encodes to the same bytes; and whatever the gate admits gets a reply no larger than the
// request (no amplification). Time-budgeted: LANHA_FUZZ_MS (default 3 s) per property.

const budgetMs = Number(process.env['LANHA_FUZZ_MS'] ?? 3000);
const served = {
  leap: 0 as const, stratum: 3, referenceId: 0x0a000001, referenceTimestamp: { seconds: 1, fraction: 2 },
  rootDelayS: 0.001, rootDispersionS: 0.002, precision: -20,
};
// Mostly NTP-shaped datagrams: a 48-byte header followed by random (often extension-like) bytes.
const datagram = fc.oneof(
  fc.uint8Array({ maxLength: 1500 }),
  fc.tuple(fc.uint8Array({ minLength: HEADER_LENGTH, maxLength: HEADER_LENGTH }), fc.uint8Array({ maxLength: 200 }))
    .map(([h, rest]) => Uint8Array.from([...h, ...rest])),
  fc.tuple(fc.uint8Array({ minLength: HEADER_LENGTH, maxLength: HEADER_LENGTH }), fc.nat({ max: 0xffff }), fc.integer({ min: 4, max: 12 }))
    .map(([h, type, words]) => {
      const ext = new Uint8Array(words * 4);
      ext[0] = type >> 8; ext[1] = type & 0xff; ext[2] = 0; ext[3] = words * 4;
      h[0] = (h[0]! & 0xc7) | (4 << 3);
      return Uint8Array.from([...h, ...ext]);
    }),
);

t.test('decoder: never throws, and decoded packets survive a round trip', async (t) => {
  let decodedCount = 0;
  fc.assert(fc.property(datagram, (bytes) => {
    const first = decodeNtp(bytes);
    if (!first.ok) return true;
    decodedCount++;
    const again = encodeNtp(first.value);
    return again.length === bytes.length && again.every((b, i) => b === bytes[i]);
  }), { seed: seedFromEnv(71), interruptAfterTimeLimit: budgetMs, numRuns: Number.MAX_SAFE_INTEGER });
  t.ok(decodedCount > 0, `some inputs decoded (${decodedCount})`);
});

t.test('responder: an admitted request never gets a reply larger than itself', async (t) => {
  let replies = 0;
  fc.assert(fc.property(datagram, (bytes) => {
    const d = decodeNtp(bytes);
    if (!d.ok || admitHeader(d.value).kind !== 'answer') return true;
    replies++;
    const rx = { seconds: 5, fraction: 6 };
    return buildReply(d.value, rx, served).length <= bytes.length && buildKissOfDeath(d.value, rx).length <= bytes.length;
  }), { seed: seedFromEnv(72), interruptAfterTimeLimit: budgetMs, numRuns: Number.MAX_SAFE_INTEGER });
  t.ok(replies > 0, `some inputs were answered (${replies})`);
});
