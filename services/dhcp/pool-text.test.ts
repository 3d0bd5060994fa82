// Proves the inventory-mode lines of `lanctl status`: one per subnet for known clients only, saying
// what unknown clients get (nothing, with the count ignored, or the unknownPool), none otherwise; an
// unknownPool's use is a line of the pool table of its own.
import t from 'tap';
import { formatClientModes, formatPoolUse } from './pool-text.js';

t.test('formatClientModes: a line per known-only subnet, nothing for clients: all', async (t) => {
  t.equal(formatClientModes(undefined), '');
  t.equal(formatClientModes([{ subnet: '10.0.0.0/24', clients: 'all', unknownPool: null, ignored: 0 }]), '');
  t.equal(formatClientModes([
    { subnet: '10.0.0.0/24', clients: 'known', unknownPool: null, ignored: 12 },
    { subnet: '10.0.1.0/24', clients: 'all', unknownPool: null, ignored: 0 },
    { subnet: '10.0.2.0/24', clients: 'known', unknownPool: '10.0.2.240-10.0.2.249', ignored: 0 },
  ]), 'dhcp 10.0.0.0/24: known clients only (a reservation or an inventory node); unknown clients get no reply (12 requests ignored)\n'
    + 'dhcp 10.0.2.0/24: known clients only (a reservation or an inventory node); unknown clients get 10.0.2.240-10.0.2.249 without boot options\n');
});

t.test('formatPoolUse: an unknownPool is a line of its own under its subnet', async (t) => {
  const text = formatPoolUse([{ subnet: '10.0.0.0/24', used: 1, total: 3, pools: [{ range: '10.0.0.10-10.0.0.12', used: 1, total: 3 }], unknownPool: { range: '10.0.0.200-10.0.0.203', used: 1, total: 4 } }]);
  const lines = text.trimEnd().split('\n');
  t.equal(lines.length, 3, 'header, subnet, unknownPool');
  t.match(lines[1], /^10\.0\.0\.0\/24\s+10\.0\.0\.10-10\.0\.0\.12\s+1\/3\s+33%$/);
  t.match(lines[2], /^\s+10\.0\.0\.200-10\.0\.0\.203 \(unknownPool\)\s+1\/4\s+25%$/);
});
