import t from 'tap';
import fc from 'fast-check';
import { decodePacket, encodePacket } from '../../services/tftp/wire.js';
import { checkName } from '../../services/tftp/paths.js';

// Random datagrams into the TFTP decoder: it never throws, and whatever decodes survives
// re-encode and decode unchanged. Random names into the name check: what it accepts is relative,
// has no ".." component and no NUL.
const budgetRuns = process.env['CI'] === 'true' ? 20_000 : 5_000;

t.test('decodePacket never throws and round-trips', async (t) => {
  const datagram = fc.oneof(
    fc.uint8Array({ maxLength: 1500 }),
    // Mostly-valid requests: opcode 1/2/6 then NUL-separated strings.
    fc.tuple(fc.constantFrom(1, 2, 6), fc.array(fc.string({ maxLength: 20 }), { maxLength: 8 })).map(([op, parts]) =>
      Uint8Array.from([0, op, ...Buffer.from(parts.map((p) => `${p}\0`).join(''), 'latin1')])),
  );
  fc.assert(fc.property(datagram, (bytes) => {
    const first = decodePacket(bytes);
    if (!first.ok) return;
    const again = decodePacket(encodePacket(first.value));
    if (!again.ok) throw new Error(`re-encoded ${first.value.op} failed to decode: ${again.error.code}`);
    // Byte payloads compare as plain arrays: a Buffer and a Uint8Array of the same bytes are equal
    // (Buffer's toJSON runs before any replacer, so convert first).
    const plain = (p: object): string => JSON.stringify(Object.fromEntries(Object.entries(p).map(([k, v]) => [k, v instanceof Uint8Array ? [...v] : v])));
    const a = plain(first.value), b = plain(again.value);
    if (a !== b) throw new Error(`round trip changed the packet: ${a} != ${b}`);
  }), { numRuns: budgetRuns, seed: Number(process.env['LANHA_SEED'] ?? 11) });
  t.pass('no throw, stable round trip');
});

t.test('checkName never lets an escape through', async (t) => {
  const piece = fc.constantFrom('..', '.', '', 'a', '\\', '/', '\0', '%2e', 'etc', 'passwd', '..\\', '../');
  fc.assert(fc.property(fc.array(piece, { maxLength: 30 }).map((p) => p.join('')), fc.string({ maxLength: 300 }), (built, random) => {
    for (const name of [built, random]) {
      const r = checkName(name);
      if (!r.ok) continue;
      if (r.path.startsWith('/') || r.path.includes('\0') || r.path.split('/').includes('..') || r.path.includes('\\')) throw new Error(`escaped: ${JSON.stringify(name)} -> ${r.path}`);
    }
  }), { numRuns: budgetRuns, seed: Number(process.env['LANHA_SEED'] ?? 12) });
  t.pass('checked names stay relative and free of ..');
});
