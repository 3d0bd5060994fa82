import t from 'tap';
import fc from 'fast-check';
import {
  decodeNtp, encodeNtp, eraOf, timestampFromUnixNs, unixNsFromTimestamp, shortFromSeconds, secondsFromShort,
  asciiReferenceId, referenceIdText, NTP_UNIX_OFFSET_S, type NtpPacket,
} from './wire.js';
import { readHexPacket } from '../../test/support/hex.js';
import { repoPath } from '../../test/support/paths.js';
import { seedFromEnv } from '../../test/support/seeded.js';

// The NTP codec: real client and server packets decode to the expected fields and re-encode byte for
// byte; extension fields and MACs are walked safely; timestamps convert exactly across the 2036 era
// rollover; arbitrary packets round-trip (fast-check, seeded by LANHA_SEED).

const golden = (name: string): Uint8Array => readHexPacket(repoPath('test', 'golden', 'ntp', name));
const S = 1_000_000_000n;
const unixNs = (iso: string): bigint => BigInt(Date.parse(iso)) * 1_000_000n;

t.test('real captured packets decode to their fields and re-encode identically', async (t) => {
  const cases = [
    { file: 'ntpdig-request.hex', leap: 3, version: 4, mode: 3, stratum: 0, poll: 0 },
    { file: 'chronyd-q-request.hex', leap: 0, version: 4, mode: 3, stratum: 0, poll: 6 },
    { file: 'chrony-reply-to-ntpdig.hex', leap: 0, version: 4, mode: 4, stratum: 8, poll: 0 },
    { file: 'chrony-reply-to-chronyd-q.hex', leap: 0, version: 4, mode: 4, stratum: 8, poll: 6 },
  ];
  for (const c of cases) {
    const bytes = golden(c.file);
    const d = decodeNtp(bytes);
    t.ok(d.ok, `${c.file} decodes`);
    if (!d.ok) continue;
    t.match(d.value, { leap: c.leap, version: c.version, mode: c.mode, stratum: c.stratum, poll: c.poll, extensions: [], mac: null }, c.file);
    t.same([...encodeNtp(d.value)], [...bytes], `${c.file} re-encodes byte for byte`);
  }
  const reply = decodeNtp(golden('chrony-reply-to-ntpdig.hex'));
  const request = decodeNtp(golden('ntpdig-request.hex'));
  if (reply.ok && request.ok) {
    t.same(reply.value.originTimestamp, request.value.transmitTimestamp, 'chrony echoes the client transmit as origin');
    t.equal(reply.value.precision, -26, 'precision is a signed log2');
    t.equal(referenceIdText(reply.value.referenceId, reply.value.stratum), '127.127.1.1');
    const sent = unixNsFromTimestamp(request.value.transmitTimestamp, unixNs('2026-11-23T00:00:00Z'));
    t.equal(new Date(Number(sent / 1_000_000n)).toISOString(), '2026-11-23T05:47:51.628Z', 'the capture time');
  }
});

function header(overrides: Partial<NtpPacket> = {}): NtpPacket {
  return {
    leap: 0, version: 4, mode: 3, stratum: 0, poll: 6, precision: -20, rootDelay: 0, rootDispersion: 0, referenceId: 0,
    referenceTimestamp: { seconds: 0, fraction: 0 }, originTimestamp: { seconds: 0, fraction: 0 },
    receiveTimestamp: { seconds: 0, fraction: 0 }, transmitTimestamp: { seconds: 0xeeae5207, fraction: 0x1234 },
    extensions: [], mac: null, ...overrides,
  };
}

t.test('trailers: extension fields, legacy MACs, and garbage', async (t) => {
  const ext = { type: 0x0104, value: new Uint8Array(28).fill(7) }; // 32-byte NTS unique-identifier-like field
  const withExt = encodeNtp(header({ extensions: [ext] }));
  t.equal(withExt.length, 80);
  const d = decodeNtp(withExt);
  t.ok(d.ok && d.value.extensions.length === 1 && d.value.extensions[0]!.type === 0x0104, 'an extension field is found');
  const withMac = encodeNtp(header({ mac: new Uint8Array(20).fill(1) }));
  const m = decodeNtp(withMac);
  t.ok(m.ok && m.value.mac?.length === 20 && m.value.extensions.length === 0, 'a 20-byte trailer is a MAC');
  const both = encodeNtp(header({ extensions: [ext], mac: new Uint8Array(24) }));
  const b = decodeNtp(both);
  t.ok(b.ok && b.value.extensions.length === 1 && b.value.mac?.length === 24, 'extension then MAC');
  const v3mac = encodeNtp(header({ version: 3, mac: new Uint8Array(20) }));
  t.ok(decodeNtp(v3mac).ok, 'v3 with a MAC');

  const bad: Array<[string, Uint8Array]> = [
    ['47 bytes', new Uint8Array(47)],
    ['one byte of trailer', new Uint8Array([...withExt.subarray(0, 48), 0])],
    ['extension length shorter than 16', patched(withExt, 50, [0, 8])],
    ['extension length not a multiple of 4', patched(withExt, 50, [0, 30])],
    ['extension length past the end', patched(withExt, 50, [0xff, 0xfc])],
    ['v3 with an extension field', patched(withExt, 0, [0x1b])],
  ];
  for (const [name, bytes] of bad) t.notOk(decodeNtp(bytes).ok, `refused: ${name}`);
  t.equal(decodeNtp(new Uint8Array(10)).ok ? '' : (decodeNtp(new Uint8Array(10)) as { error: { code: string } }).error.code, 'short');
});

function patched(bytes: Uint8Array, at: number, values: number[]): Uint8Array {
  const copy = bytes.slice();
  copy.set(values, at);
  return copy;
}

t.test('timestamps and the 2036 era rollover (RFC 5905 §6)', async (t) => {
  const rollover = BigInt(2 ** 32 - NTP_UNIX_OFFSET_S) * S; // 2036-02-07T06:28:16Z
  t.equal(new Date(Number(rollover / 1_000_000n)).toISOString(), '2036-02-07T06:28:16.000Z');
  t.same(timestampFromUnixNs(rollover), { seconds: 0, fraction: 0 }, 'era 1 starts at seconds 0');
  t.same(timestampFromUnixNs(rollover - 1n), { seconds: 0xffffffff, fraction: 0xfffffffb }, 'last nanosecond of era 0');
  const cases: Array<[string, bigint, bigint]> = [
    ['just after rollover read with a pivot just before', rollover + 5n * S, rollover - 3600n * S],
    ['just before rollover read with a pivot just after', rollover - 5n * S, rollover + 3600n * S],
    ['1970 itself', 0n, 0n],
    ['1968 (era 0, before Unix)', -2n * 365n * 86400n * S, 0n],
    ['2106 (era 1)', unixNs('2106-03-01T00:00:00Z'), unixNs('2106-01-01T00:00:00Z')],
    ['today', unixNs('2026-11-23T05:47:51.628Z'), unixNs('2026-11-23T05:00:00Z')],
  ];
  for (const [name, value, pivot] of cases) {
    t.equal(unixNsFromTimestamp(timestampFromUnixNs(value), pivot), value, name);
  }
  t.equal(unixNsFromTimestamp({ seconds: 10, fraction: 0 }, rollover - 100n * S), rollover + 10n * S, 'small seconds near the rollover belong to era 1');
  t.equal(eraOf(0n), 0n);
  t.equal(eraOf(2n ** 32n - 1n), 0n);
  t.equal(eraOf(2n ** 32n), 1n);
  t.equal(eraOf(-1n), -1n, 'before 1900 is era -1');
});

t.test('short format and reference ids', async (t) => {
  t.equal(shortFromSeconds(1.5), 0x00018000);
  t.equal(secondsFromShort(0x00018000), 1.5);
  t.equal(shortFromSeconds(-1), 0, 'negative saturates at 0');
  t.equal(shortFromSeconds(1e9), 0xffffffff, 'large saturates');
  t.equal(shortFromSeconds(Number.NaN), 0);
  t.equal(asciiReferenceId('RATE'), 0x52415445);
  t.equal(referenceIdText(asciiReferenceId('GPS'), 1), 'GPS');
  t.equal(referenceIdText(0x0a140002, 3), '10.20.0.2');
});

t.test('property: ns -> timestamp -> ns is exact within ±68 years of the pivot', async () => {
  const near = 2n ** 31n * S - S;
  fc.assert(fc.property(
    fc.bigInt({ min: -(2n ** 62n), max: 2n ** 62n }),
    fc.bigInt({ min: -near, max: near }),
    (pivot, delta) => unixNsFromTimestamp(timestampFromUnixNs(pivot + delta), pivot) === pivot + delta,
  ), { seed: seedFromEnv(61), numRuns: 2000 });
});

const arbTimestamp = fc.record({ seconds: fc.nat({ max: 0xffffffff }), fraction: fc.nat({ max: 0xffffffff }) });
const arbPacket: fc.Arbitrary<NtpPacket> = fc.record({
  leap: fc.constantFrom(0 as const, 1 as const, 2 as const, 3 as const),
  version: fc.integer({ min: 4, max: 7 }),
  mode: fc.integer({ min: 0, max: 7 }),
  stratum: fc.nat({ max: 255 }),
  poll: fc.integer({ min: -128, max: 127 }),
  precision: fc.integer({ min: -128, max: 127 }),
  rootDelay: fc.nat({ max: 0xffffffff }),
  rootDispersion: fc.nat({ max: 0xffffffff }),
  referenceId: fc.nat({ max: 0xffffffff }),
  referenceTimestamp: arbTimestamp,
  originTimestamp: arbTimestamp,
  receiveTimestamp: arbTimestamp,
  transmitTimestamp: arbTimestamp,
  extensions: fc.array(fc.record({
    type: fc.nat({ max: 0xffff }),
    // The last field must be at least 28 bytes when no MAC follows (RFC 7822 §7.5); use 28+ for all.
    value: fc.integer({ min: 6, max: 40 }).chain((words) => fc.uint8Array({ minLength: words * 4, maxLength: words * 4 })),
  }), { maxLength: 3 }),
  mac: fc.option(fc.constantFrom(20, 24).chain((n) => fc.uint8Array({ minLength: n, maxLength: n })), { nil: null }),
});

t.test('property: encode then decode gives the packet back', async () => {
  fc.assert(fc.property(arbPacket, (p) => {
    const d = decodeNtp(encodeNtp(p));
    if (!d.ok) return false;
    return JSON.stringify(normalise(d.value)) === JSON.stringify(normalise(p));
  }), { seed: seedFromEnv(62), numRuns: 500 });
});

function normalise(p: NtpPacket): unknown {
  return { ...p, extensions: p.extensions.map((e) => ({ type: e.type, value: [...e.value] })), mac: p.mac === null ? null : [...p.mac] };
}
