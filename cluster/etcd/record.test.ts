import t from 'tap';
import fc from 'fast-check';
import { encodeCommand } from '../commands.js';
import { decodeRecord } from './state-log.js';

// The etcd backend's log values (cluster/etcd/state-log.ts): a batch record (JSON array of entries)
// or one entry as older versions wrote it. Hostile bytes never throw, and give at least one result.

t.test('a batch record decodes to its entries in order; a lone entry still decodes', async (t) => {
  const one = encodeCommand({ at: 5, by: 'a', command: { type: 'noop' } });
  const two = encodeCommand({ at: 6, command: { type: 'lease.release', ip: 0x0a000001, mac: '02:00:00:00:00:01' } });
  const record = new TextEncoder().encode(`[${Buffer.from(one).toString()},${Buffer.from(two).toString()}]`);
  const decoded = decodeRecord(record);
  t.same(decoded.map((d) => d.ok && d.value.at), [5, 6]);
  t.same(decodeRecord(one).map((d) => d.ok && d.value.by), ['a'], 'an older version\'s one-command value');
  t.same(decodeRecord(new TextEncoder().encode('[]')).map((d) => d.ok), [false], 'an empty record is one skipped entry');
  t.same(decodeRecord(new TextEncoder().encode('[1,')).map((d) => d.ok), [false], 'a torn record too');
});

t.test('hostile bytes never throw', async () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => decodeRecord(bytes).length >= 1), { numRuns: 2000 });
  fc.assert(fc.property(fc.json(), (text) => decodeRecord(new TextEncoder().encode(text)).length >= 1), { numRuns: 2000 });
  fc.assert(fc.property(fc.array(fc.json()), (items) => decodeRecord(new TextEncoder().encode(`[${items.join(',')}]`)).length === Math.max(1, items.length)), { numRuns: 1000 });
});
