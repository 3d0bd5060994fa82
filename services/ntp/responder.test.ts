import t from 'tap';
import fc from 'fast-check';
import { decodeNtp, encodeNtp, timestampFromUnixNs, HEADER_LENGTH, type NtpPacket } from './wire.js';
import { buildKissOfDeath, buildReply, stampTransmit, KISS_RATE, type ServedReference } from './responder.js';
import { readHexPacket } from '../../test/support/hex.js';
import { repoPath } from '../../test/support/paths.js';
import { ManualClock } from '../../test/support/manual-clock.js';
import { seedFromEnv } from '../../test/support/seeded.js';

// The responder with an injected clock: for any client request, the reply is mode 4 with the
// client's transmit as origin, our receive stamp, version and poll echoed, the served reference's
// stratum/leap/refid, and it is never larger than the request. KoD RATE has stratum 0 and leap 3.

const reference: ServedReference = {
  leap: 0, stratum: 3, referenceId: 0x0a140002, referenceTimestamp: { seconds: 0xeeae5200, fraction: 0 },
  rootDelayS: 0.0125, rootDispersionS: 0.25, precision: -20,
};

t.test('a real ntpdig request gets a well-formed reply', async (t) => {
  const clock = new ManualClock(Date.UTC(2026, 10, 23, 5, 47, 51, 629));
  const raw = readHexPacket(repoPath('test', 'golden', 'ntp', 'ntpdig-request.hex'));
  const request = decodeNtp(raw);
  if (!request.ok) { t.fail('golden request decodes'); return; }
  const rx = timestampFromUnixNs(BigInt(clock.wallMs()) * 1_000_000n);
  clock.advance(1);
  const tx = timestampFromUnixNs(BigInt(clock.wallMs()) * 1_000_000n);
  const bytes = buildReply(request.value, rx, reference);
  t.same([...bytes.subarray(40, 48)], [0, 0, 0, 0, 0, 0, 0, 0], 'transmit is left for the shell');
  stampTransmit(bytes, tx);
  const reply = decodeNtp(bytes);
  if (!reply.ok) { t.fail('reply decodes'); return; }
  t.equal(bytes.length, HEADER_LENGTH);
  t.match(reply.value, { leap: 0, version: 4, mode: 4, stratum: 3, poll: 0, precision: -20, referenceId: 0x0a140002 });
  t.same(reply.value.originTimestamp, request.value.transmitTimestamp, 'origin = client transmit');
  t.same(reply.value.receiveTimestamp, rx);
  t.same(reply.value.transmitTimestamp, tx);
  t.equal(reply.value.rootDelay, Math.round(0.0125 * 65536), 'root delay in 16.16');
  t.equal(reply.value.rootDispersion, 0.25 * 65536);
});

t.test('KoD RATE: stratum 0, kiss code, leap 3, origin echoed', async (t) => {
  const request = decodeNtp(readHexPacket(repoPath('test', 'golden', 'ntp', 'chronyd-q-request.hex')));
  if (!request.ok) { t.fail(); return; }
  const kod = decodeNtp(buildKissOfDeath(request.value, { seconds: 1, fraction: 2 }));
  if (!kod.ok) { t.fail(); return; }
  t.match(kod.value, { stratum: 0, leap: 3, mode: 4, version: 4, referenceId: KISS_RATE, poll: 6 });
  t.same(kod.value.originTimestamp, request.value.transmitTimestamp);
});

t.test('versions 1-3 get 48 bytes; v4 extension fields are mirrored; a MAC is never echoed', async (t) => {
  const base: NtpPacket = {
    leap: 0, version: 3, mode: 3, stratum: 0, poll: 4, precision: 0, rootDelay: 0, rootDispersion: 0, referenceId: 0,
    referenceTimestamp: { seconds: 0, fraction: 0 }, originTimestamp: { seconds: 0, fraction: 0 },
    receiveTimestamp: { seconds: 0, fraction: 0 }, transmitTimestamp: { seconds: 9, fraction: 9 }, extensions: [], mac: new Uint8Array(20),
  };
  t.equal(buildReply(base, { seconds: 1, fraction: 1 }, reference).length, 48, 'v3 with MAC: 48 bytes, no MAC');
  const ext = { type: 0x0104, value: new Uint8Array(28).fill(0xab) };
  const v4 = { ...base, version: 4, extensions: [ext], mac: null };
  const reply = buildReply(v4, { seconds: 1, fraction: 1 }, reference);
  t.equal(reply.length, encodeNtp(v4).length, 'same size as the request');
  const d = decodeNtp(reply);
  t.ok(d.ok && d.value.extensions[0]?.type === 0x0104 && d.value.extensions[0].value.every((b) => b === 0xab), 'extension field mirrored');
});

t.test('property: any client request, any clock: reply fields follow the request and the reference', async () => {
  const ts = fc.record({ seconds: fc.nat({ max: 0xffffffff }), fraction: fc.nat({ max: 0xffffffff }) });
  fc.assert(fc.property(
    fc.integer({ min: 1, max: 4 }), fc.integer({ min: -128, max: 127 }), ts,
    fc.bigInt({ min: 0n, max: 4_000_000_000n * 1_000_000_000n }), fc.nat({ max: 5_000_000 }),
    fc.constantFrom(0 as const, 1 as const, 2 as const, 3 as const), fc.integer({ min: 1, max: 16 }),
    (version, poll, transmit, rxNs, holdNs, leap, stratum) => {
      const request: NtpPacket = {
        leap: 0, version, mode: 3, stratum: 0, poll, precision: 0, rootDelay: 0, rootDispersion: 0, referenceId: 0,
        referenceTimestamp: { seconds: 0, fraction: 0 }, originTimestamp: { seconds: 0, fraction: 0 },
        receiveTimestamp: { seconds: 0, fraction: 0 }, transmitTimestamp: transmit, extensions: [], mac: null,
      };
      const rx = timestampFromUnixNs(rxNs);
      const tx = timestampFromUnixNs(rxNs + BigInt(holdNs));
      const bytes = buildReply(request, rx, { ...reference, leap, stratum });
      stampTransmit(bytes, tx);
      const d = decodeNtp(bytes);
      if (!d.ok) return false;
      const r = d.value;
      return bytes.length === 48 && r.mode === 4 && r.version === version && r.poll === poll && r.leap === leap && r.stratum === stratum
        && r.originTimestamp.seconds === transmit.seconds && r.originTimestamp.fraction === transmit.fraction
        && r.receiveTimestamp.seconds === rx.seconds && r.receiveTimestamp.fraction === rx.fraction
        && r.transmitTimestamp.seconds === tx.seconds && r.transmitTimestamp.fraction === tx.fraction;
    },
  ), { seed: seedFromEnv(81), numRuns: 1000 });
});
