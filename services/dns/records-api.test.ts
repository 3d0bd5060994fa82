// Proves `lanctl records set` (POST /v1/dns/records) applies the zone file's rules to the name and
// the data: control characters, label and name length, anything that would split or cut the line,
// and per-type data (the same parser as config records). Nothing bad reaches the replicated log.
import t from 'tap';
import { Fsm } from '../../cluster/fsm.js';
import { MemoryStateLog } from '../../cluster/state-log.js';
import { ManualClock } from '../../test/support/manual-clock.js';
import { recordRoutes } from './records-api.js';
import { buildZoneSet } from './zone.js';
import { parseRecordLine } from './rdata.js';

const state = new MemoryStateLog(new Fsm(), new ManualClock());
const zones = buildZoneSet({ zones: [{ name: 'lan', ttl: 3_600_000, negativeTtl: 60_000, records: [], leases: true }], reverseSubnets: [], leaseNames: [], operatorRecords: [], serial: 1 });
const set = recordRoutes(state, () => zones)['POST /v1/dns/records']!;

async function post(name: string, type: string, data: string): Promise<{ status: number; error: string }> {
  const r = await set({ query: new URLSearchParams(), body: { name, type, data } });
  return { status: r.status, error: String((r.body as { error?: string }).error ?? '') };
}

const long = 'a'.repeat(64);
const bad: Array<[string, string, string, string, RegExp]> = [
  ['a NUL in the name', 'pri\u0000nter.lan', 'A', '10.0.0.9', /control character/],
  ['a newline in the name', 'printer\n.lan', 'A', '10.0.0.9', /control character/],
  ['a label of 64 octets', `${long}.lan`, 'A', '10.0.0.9', /label longer than 63/],
  ['a name over 255 octets', `${Array(5).fill('b'.repeat(60)).join('.')}.lan`, 'A', '10.0.0.9', /longer than 255/],
  ['an empty label', 'a..lan', 'A', '10.0.0.9', /empty label/],
  ['a blank that would split the line', 'a b.lan', 'A', '10.0.0.9', /blank/],
  ['a control character in the data', 'printer.lan', 'TXT', '"a\u0000b"', /control character/],
  ['a comment cutting the data', 'printer.lan', 'A', '10.0.0.9 ; 10.0.0.10', /outside quotes/],
  ['a bad address', 'printer.lan', 'A', '10.0.0.300', /not an IPv4 address/],
  ['a CNAME target with a 64-octet label', 'www.lan', 'CNAME', `${long}.lan.`, /label longer than 63/],
  ['an MX without preference', 'lan', 'MX', 'mail.lan.', /MX data/],
  ['an SRV port out of range', '_x._tcp.lan', 'SRV', '0 0 70000 host.lan.', /0\.\.65535/],
  ['a TXT string over 255 bytes', 'printer.lan', 'TXT', `"${'x'.repeat(256)}"`, /longer than 255/],
];

for (const [what, name, type, data, message] of bad) {
  t.test(`records set refuses ${what}`, async (t) => {
    const r = await post(name, type, data);
    t.equal(r.status, 400, r.error);
    t.match(r.error, message);
    t.equal([...state.fsm.records()].length, 0, 'nothing reached the log');
  });
}

t.test('records set accepts what the zone file accepts', async (t) => {
  for (const [name, type, data] of [['printer.lan', 'A', '10.0.0.9'], ['www.lan', 'CNAME', 'printer'], ['lan', 'TXT', '"v=spf1 -all" "two; strings"'], ['*.apps.lan', 'A', '10.0.0.70']]) {
    const r = await post(name!, type!, data!);
    t.equal(r.status, 200, `${name} ${type} ${data}: ${r.error}`);
  }
});

t.test('the zone-file parser refuses the same names in config records', async (t) => {
  const r = parseRecordLine(`${long} A 10.0.0.1`, 'lan');
  t.notOk(r.ok);
  if (!r.ok) t.match(r.error, /owner name .* label longer than 63/);
  const target = parseRecordLine('www CNAME a..b', 'lan');
  t.notOk(target.ok);
});
