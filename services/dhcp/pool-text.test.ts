// Proves the inventory-mode lines of `lanctl status`: one per subnet for known clients only, saying
// what unknown clients get (nothing, with the count ignored, or the unknownPool); none otherwise.
import t from 'tap';
import { formatClientModes } from './pool-text.js';

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
