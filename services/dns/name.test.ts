import t from 'tap';
import fc from 'fast-check';
import { Counters } from '../../lib/counters.js';
import { systemClock } from '../../lib/clock.js';
import { seededRandom } from '../../lib/random.js';
import { ForwardCache } from './cache.js';
import { Forwarder } from './forward.js';
import { encodeName, isSubdomain, nameUnderAt, parentName, readName } from './name.js';
import { RCODE, T } from './wire.js';
import { buildZoneSet } from './zone.js';

// isSubdomain is label by label: an escaped dot is inside a label, letters match in any case, the
// root is above everything. It must say what its wire twin nameUnderAt says for the same names, and
// what a plain label-list comparison says; parentName drops exactly one label. Then the callers:
// a zone's names and empty non-terminals, and the forwarding rules' longest match.

t.test('isSubdomain: labels, not characters', async (t) => {
  const cases: Array<[string, string, boolean, string]> = [
    ['www.lan', 'lan', true, 'one label below'],
    ['lan', 'lan', true, 'the zone itself'],
    ['notlan', 'lan', false, 'a suffix that is no label'],
    ['a\\.lan', 'lan', false, 'an escaped dot is no boundary: one label "a.lan"'],
    ['x.a\\.lan', 'a\\.lan', true, 'below a label holding a dot'],
    ['x.a.lan', 'a\\.lan', false, 'two labels are not the one label "a.lan"'],
    ['a\\\\.lan', 'lan', true, 'an escaped backslash, then a real dot'],
    ['WWW.Lan', 'lan', true, 'case (RFC 4343)'],
    ['www.lan', 'LAN', true, 'case on the zone side'],
    ['www.lan.', 'lan', true, 'a trailing dot on the name'],
    ['www.lan', 'lan.', true, 'a trailing dot on the zone'],
    ['anything.example', '', true, 'the root is above every name'],
    ['anything.example', '.', true, 'the root written as "."'],
    ['', '', true, 'the root is its own zone'],
    ['', 'lan', false, 'the root is below nothing'],
    ['lan', 'www.lan', false, 'a parent is not below its child'],
    ['x.a\\\\.', 'a\\\\', true, 'an escaped backslash, then the final dot: the dot ends the name'],
    ['x.a\\.', 'a', false, 'an escaped final dot belongs to the label "a."'],
    ['a\\bc.lan', 'abc.lan', true, 'an escaped ordinary letter is that letter'],
    ['a..lan', 'lan', false, 'not a name: an empty label'],
    ['www.lan', 'x..lan', false, 'not a zone: an empty label'],
  ];
  for (const [name, zone, want, why] of cases) t.equal(isSubdomain(name, zone), want, `${JSON.stringify(name)} under ${JSON.stringify(zone)}: ${why}`);
});

t.test('parentName drops one label, an escaped dot included in it', async (t) => {
  t.equal(parentName('a.b.c'), 'b.c');
  t.equal(parentName('a\\.b.c'), 'c');
  t.equal(parentName('a\\\\.b.c'), 'b.c', 'an escaped backslash ends before the dot');
  t.equal(parentName('lan'), '');
  t.equal(parentName('a\\.lan'), '', 'one label');
  t.equal(parentName(''), null);
});

// Labels from an alphabet with the characters that need care: dots, backslashes, both cases.
const labelArb = fc.array(fc.constantFrom(0x61, 0x41, 0x62, 0x42, 0x2e, 0x5c, 0x7a, 0x30, 0xe9), { minLength: 1, maxLength: 4 }).map((codes) => Uint8Array.from(codes));
const labelsArb = fc.array(labelArb, { maxLength: 4 });

/** The uncompressed wire form of a label list. */
function wire(labels: readonly Uint8Array[]): Uint8Array {
  const out: number[] = [];
  for (const l of labels) out.push(l.length, ...l);
  out.push(0);
  return Uint8Array.from(out);
}

const lower = (l: Uint8Array): string => String.fromCharCode(...l.map((c) => (c >= 0x41 && c <= 0x5a ? c | 0x20 : c)));

/** The model: `zone`'s labels are the last labels of `name`'s, letters in any case. */
function modelUnder(name: readonly Uint8Array[], zone: readonly Uint8Array[]): boolean {
  if (zone.length > name.length) return false;
  return zone.every((l, i) => lower(l) === lower(name[name.length - zone.length + i]!));
}

/** Pairs that share a suffix often (else almost every pair is a plain "no"). */
const pairArb = fc.tuple(labelsArb, labelsArb, labelsArb, fc.boolean()).map(([head, shared, other, related]) => {
  const name = [...head, ...shared];
  const zone = related ? shared.map((l) => Uint8Array.from(l, (c) => (c >= 0x61 && c <= 0x7a && (c & 1) === 0 ? c & ~0x20 : c))) : [...other, ...shared];
  return { name, zone };
});

t.test('isSubdomain of the names read from the wire = nameUnderAt on the wire = the label model', async () => {
  fc.assert(fc.property(pairArb, ({ name, zone }) => {
    const n = wire(name), z = wire(zone);
    const msg = new Uint8Array(n.length + z.length);
    msg.set(n, 0);
    msg.set(z, n.length);
    const nameText = readName(msg, 0)!.name, zoneText = readName(msg, n.length)!.name;
    const want = modelUnder(name, zone);
    return isSubdomain(nameText, zoneText) === want && nameUnderAt(msg, 0, n.length) === want
      && isSubdomain(`${nameText}.`, zoneText) === want;
  }), { numRuns: 3000 });
});

t.test('parentName of a name read from the wire is the name of its labels but the first', async () => {
  fc.assert(fc.property(labelsArb, (labels) => {
    const text = readName(wire(labels), 0)!.name;
    const parent = parentName(text);
    if (labels.length === 0) return parent === null;
    return parent === readName(wire(labels.slice(1)), 0)!.name;
  }), { numRuns: 2000 });
});

t.test('a zone name with an escaped dot: no empty non-terminal made up from half a label', async (t) => {
  const z = buildZoneSet({
    zones: [{ name: 'lan', ttl: 600_000, negativeTtl: 60_000, leases: false, records: ['x\\.y A 10.20.0.7', 'a.b A 10.20.0.8'] }],
    reverseSubnets: [], leaseNames: [], operatorRecords: [], serial: 1,
  });
  t.same(z.warnings, []);
  t.equal(z.resolve('x\\.y.lan', T.A)!.answers.length, 1, 'the name with the dot in its first label');
  t.equal(z.resolve('y.lan', T.A)!.rcode, RCODE.NXDOMAIN, '"y.lan" does not exist: "x.y" is one label');
  t.equal(z.resolve('b.lan', T.A)!.rcode, RCODE.NOERROR, 'a real empty non-terminal still exists');
});

t.test('forwarding rules: the longest domain by labels, an escaped dot inside a label', async (t) => {
  const up = (port: number) => [{ address: '127.0.0.1', port }];
  const f = new Forwarder({
    upstreams: up(1), domains: [{ name: 'corp.example', upstreams: up(2) }, { name: 'LAB.corp.example', upstreams: up(3) }],
    timeoutMs: 1000, cache: new ForwardCache({ entries: 10, bytes: 1 << 16 }), clock: systemClock, random: seededRandom(1), counters: new Counters(), maxInFlight: 1,
  });
  const port = (name: string): number => f.upstreamsFor(name)[0]!.port;
  t.equal(port('host.corp.example'), 2);
  t.equal(port('x.Lab.Corp.Example'), 3, 'longest wins, any case');
  t.equal(port('notcorp.example'), 1);
  t.equal(port('a\\.corp.example'), 1, '"a.corp" is one label under "example": not corp.example\'s');
  t.equal(port('x.lab\\.corp.example'), 1, '"lab.corp" is one label: neither domain');
  t.equal(port('x.y\\.z.corp.example'), 2, 'a dotted label below corp.example is still below it');
  t.same([...encodeName('a\\.corp.example')].slice(0, 7), [6, 0x61, 0x2e, 0x63, 0x6f, 0x72, 0x70], 'the escaped name is one 6-byte label on the wire');
});
