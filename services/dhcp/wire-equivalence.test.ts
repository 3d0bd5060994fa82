// Proves that the allocation cuts in the DHCP codec and reply builder changed no byte: for random
// messages the encoder writes exactly what the previous encoder wrote (or both refuse), for random
// and mutated datagrams the decoder returns exactly what the previous decoder returned (the same
// error, or an equal message) and never throws, decoding what we encode gives the message back, and
// the reply builder's replies encode to the same bytes as before for random requests, kinds, boot
// plans and host names. The previous code is kept in test/support/dhcp-wire-reference.ts.
import t from 'tap';
import fc from 'fast-check';
import { seedFromEnv } from '../../test/support/seeded.js';
import { referenceBuildReply, referenceDecodeDhcp, referenceEncodeDhcp } from '../../test/support/dhcp-wire-reference.js';
import { decodeDhcp, encodeDhcp, emptyMessage, type DhcpMessage } from './wire.js';
import { buildReply, encodeReply, type ReplyInput, type SubnetReplyOptions } from './responder.js';
import { readRequest } from './request.js';
import { DhcpOption } from './options.js';

const bytesArb = (min: number, max: number): fc.Arbitrary<Uint8Array> => fc.uint8Array({ minLength: min, maxLength: max });
const u32 = fc.integer({ min: 0, max: 0xffffffff });

/** Options as a client or the responder might set them: any code but PAD/END, lengths 0-300, 52 and 82 now and then. */
const optionsArb = fc.array(fc.tuple(fc.oneof(fc.integer({ min: 1, max: 254 }), fc.constantFrom(1, 3, 6, 12, 51, 52, 53, 54, 55, 61, 82)), fc.oneof(bytesArb(0, 12), bytesArb(0, 300))), { maxLength: 14 })
  .map((list) => new Map(list));

const messageArb: fc.Arbitrary<DhcpMessage> = fc.record({
  op: fc.integer({ min: 0, max: 255 }), htype: fc.integer({ min: 0, max: 255 }), hlen: fc.integer({ min: 0, max: 16 }), hops: fc.integer({ min: 0, max: 255 }),
  xid: u32, secs: fc.integer({ min: 0, max: 0xffff }), flags: fc.integer({ min: 0, max: 0xffff }),
  ciaddr: u32, yiaddr: u32, siaddr: u32, giaddr: u32,
  chaddr: fc.oneof(bytesArb(16, 16), bytesArb(0, 20)),
  sname: fc.oneof(fc.constant(new Uint8Array(64)), bytesArb(64, 64), bytesArb(0, 70)),
  file: fc.oneof(fc.constant(new Uint8Array(128)), bytesArb(128, 128), bytesArb(0, 130)),
  options: optionsArb,
});

const sizeArb = fc.constantFrom(548, 548, 1472, 576, 300, 241, 240, 260, 1000);

type Outcome = { bytes: Uint8Array } | { threw: string };
const attempt = (f: () => Uint8Array): Outcome => {
  try { return { bytes: f() }; } catch (error) { return { threw: error instanceof RangeError ? 'RangeError' : String(error) }; }
};

t.test('encodeDhcp writes the same bytes as the previous encoder, or refuses as it did', (t) => {
  const seed = seedFromEnv(1401);
  let encoded = 0, refused = 0;
  fc.assert(fc.property(messageArb, sizeArb, (message, sizeMax) => {
    const now = attempt(() => encodeDhcp(message, sizeMax));
    const before = attempt(() => referenceEncodeDhcp(message, sizeMax));
    if ('bytes' in now) encoded++; else refused++;
    t.same(now, before);
  }), { seed, numRuns: 3000 });
  t.ok(encoded > 1000 && refused > 0, `both outcomes covered (${encoded} encoded, ${refused} refused)`);
  t.end();
});

/** Datagrams: our encodings of random messages, then bytes flipped, cut or appended; and noise. */
const datagramArb = fc.oneof(
  fc.tuple(messageArb, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }), fc.integer({ min: -40, max: 40 })).map(([m, flips, cut]) => {
    let bytes: Uint8Array;
    try { bytes = referenceEncodeDhcp(m, 1500); } catch { bytes = new Uint8Array(300); }
    const out = new Uint8Array(Math.max(0, bytes.length + cut));
    out.set(bytes.subarray(0, out.length));
    for (const [at, value] of flips) if (out.length > 0) out[at % out.length] = value;
    return out;
  }),
  bytesArb(0, 600),
  bytesArb(240, 330).map((b) => { b.set([99, 130, 83, 99], 236); return b; }),
);

t.test('decodeDhcp returns what the previous decoder returned, and never throws', (t) => {
  const seed = seedFromEnv(1402);
  let ok = 0, errors = 0;
  fc.assert(fc.property(datagramArb, (bytes) => {
    const now = decodeDhcp(bytes);
    const before = referenceDecodeDhcp(bytes);
    if (now.ok) ok++; else errors++;
    t.same(now, before);
  }), { seed, numRuns: 3000 });
  t.ok(ok > 300 && errors > 300, `both outcomes covered (${ok} decoded, ${errors} refused)`);
  t.end();
});

t.test('what encodeDhcp writes decodes to the message (options in order, 82 last, 52 as structure)', (t) => {
  const seed = seedFromEnv(1403);
  fc.assert(fc.property(messageArb, (message) => {
    message.hlen = Math.min(message.hlen, 16);
    message.chaddr = message.chaddr.length === 16 ? message.chaddr : new Uint8Array(16);
    message.sname = new Uint8Array(64);
    message.file = new Uint8Array(128);
    let bytes: Uint8Array;
    try { bytes = encodeDhcp(message, 1500); } catch { return; }
    const back = decodeDhcp(bytes);
    t.ok(back.ok);
    if (!back.ok) return;
    const expected = [...message.options].filter(([code]) => code !== DhcpOption.OptionOverload && code !== DhcpOption.RelayAgentInformation);
    const relay = message.options.get(DhcpOption.RelayAgentInformation);
    if (relay) expected.push([DhcpOption.RelayAgentInformation, relay]);
    t.same([...back.value.options], expected);
    t.same({ ...back.value, options: null }, { ...message, options: null });
  }), { seed, numRuns: 1000 });
  t.end();
});

const subnetArb: fc.Arbitrary<SubnetReplyOptions> = fc.record({
  options: fc.array(fc.tuple(fc.constantFrom(1, 3, 6, 12, 15, 26, 28, 42, 43, 60, 66, 67, 119, 121, 150, 200), bytesArb(0, 40)), { maxLength: 10 }).map((l) => new Map(l)),
  leaseMs: fc.integer({ min: 1000, max: 86_400_000 }),
}).map(({ options, leaseMs }) => ({ subnetId: 's', options, leaseMs, renewMs: Math.floor(leaseMs / 2), rebindMs: Math.floor(leaseMs * 0.875) }));

const requestArb = fc.record({
  xid: u32, flags: fc.constantFrom(0, 0x8000), ciaddr: fc.constantFrom(0, 0x0a000005), giaddr: fc.constantFrom(0, 0xac100002),
  prl: fc.array(fc.integer({ min: 1, max: 254 }), { maxLength: 20 }),
  clientId: fc.option(bytesArb(1, 20), { nil: undefined }), relay: fc.option(bytesArb(0, 30), { nil: undefined }),
  maxSize: fc.option(fc.integer({ min: 0, max: 0xffff }), { nil: undefined }),
});

t.test('buildReply builds replies that encode to the same bytes as before', (t) => {
  const seed = seedFromEnv(1404);
  fc.assert(fc.property(
    requestArb, fc.constantFrom<'offer' | 'ack' | 'nak' | 'inform'>('offer', 'ack', 'nak', 'inform'), fc.option(subnetArb, { nil: undefined }),
    fc.option(fc.constantFrom('node01', 'a-much-longer-host-name'), { nil: undefined }),
    fc.option(fc.record({ nextServer: u32, bootfile: fc.constantFrom('ipxe.efi', 'boot/x'), pxeClient: fc.boolean(), vendorSpecific: fc.option(bytesArb(1, 30), { nil: undefined }) }), { nil: undefined }),
    fc.constantFrom(548, 300, 1472),
    (r, kind, subnet, hostname, bootFields, sizeMax) => {
      const m = emptyMessage();
      m.op = 1; m.xid = r.xid; m.flags = r.flags; m.ciaddr = r.ciaddr; m.giaddr = r.giaddr;
      m.chaddr.set([2, 0, 0, 0, 0, 7]);
      m.options.set(DhcpOption.MessageType, Uint8Array.of(kind === 'inform' ? 8 : kind === 'offer' ? 1 : 3));
      if (r.prl.length > 0) m.options.set(DhcpOption.ParameterRequestList, Uint8Array.from(r.prl));
      if (r.clientId) m.options.set(DhcpOption.ClientIdentifier, r.clientId);
      if (r.maxSize !== undefined) m.options.set(DhcpOption.MaximumMessageSize, Uint8Array.of(r.maxSize >> 8, r.maxSize & 0xff));
      if (r.relay) m.options.set(DhcpOption.RelayAgentInformation, r.relay);
      const request = decodeDhcp(encodeDhcp(m, 1500));
      if (!request.ok) throw new Error('request');
      const client = readRequest(request.value);
      if (!client.ok) throw new Error(client.problem);
      const boot = bootFields === undefined ? undefined : { rule: 'r', nextServer: bootFields.nextServer, bootfile: bootFields.bootfile, pxeClient: bootFields.pxeClient, ...(bootFields.vendorSpecific ? { vendorSpecific: bootFields.vendorSpecific } : {}) };
      const input: ReplyInput & { kind: typeof kind } = {
        kind, request: request.value, client: client.value, serverId: 0x0a000001, ip: 0x0a000064,
        ...(subnet ? { subnet } : {}), ...(hostname ? { hostname } : {}), ...(boot ? { boot } : {}), ...(kind === 'nak' ? { message: 'address taken' } : {}),
      };
      const now = buildReply(input);
      const before = referenceBuildReply(input);
      t.same([...now.message.options.keys()], [...before.message.options.keys()], 'options in the same order');
      t.same(attempt(() => encodeReply(now.message, now.requested, sizeMax)), attempt(() => encodeReply(before.message, [...before.requested], sizeMax)));
      t.same(attempt(() => encodeDhcp(now.message, sizeMax)), attempt(() => referenceEncodeDhcp(before.message, sizeMax)));
    },
  ), { seed, numRuns: 1500 });
  t.end();
});
