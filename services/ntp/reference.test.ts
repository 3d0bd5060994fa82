import t from 'tap';
import {
  decideReference, sampleFromReply, recordPoll, REFID_LOCAL, DEFAULT_WALL_FLOOR_UNIX_S,
  type ReferenceSettings, type SourceSample, type SourceState,
} from './reference.js';
import { timestampFromUnixNs, shortFromSeconds, asciiReferenceId, type NtpPacket } from './wire.js';
import { parseIpv4 } from '../../lib/ipv4.js';

// Source selection as a table of named cases: which mode (source / local / unsynchronised), which
// stratum, refid and leap a node serves for a given set of samples; and the on-wire sample maths
// (offset, delay, era, bogus origin, kiss codes) from a crafted reply.

const NOW_NS = BigInt(Date.UTC(2026, 10, 23, 6, 0, 0)) * 1_000_000n;
const NOW_MONO = 100_000;
const settings: ReferenceSettings = {
  localStratum: undefined, maxOffsetS: 0.128, sampleMaxAgeMs: 60_000,
  ownAddresses: new Set([parseIpv4('10.20.0.2')!]), wallFloorUnixS: DEFAULT_WALL_FLOOR_UNIX_S,
};

function sample(overrides: Partial<SourceSample> = {}): SourceSample {
  return {
    atMonoMs: NOW_MONO - 1000, atUnixNs: NOW_NS - 1_000_000_000n, offsetS: 0.0002, delayS: 0.001, dispersionS: 0.00001,
    leap: 0, stratum: 2, referenceId: parseIpv4('192.0.2.1')!, rootDelayS: 0.01, rootDispersionS: 0.02, ...overrides,
  };
}

function source(name: string, kind: 'upstream' | 'peer', samples: SourceSample[]): SourceState {
  return { name: `${name}:123`, kind, address: parseIpv4(name)!, samples, reach: 0xff, lastProblem: null };
}

t.test('decisions', async (t) => {
  const cases: Array<{ name: string; sources: SourceState[]; settings?: Partial<ReferenceSettings>; nowNs?: bigint; want: Record<string, unknown> }> = [
    { name: 'no sources, no local stratum: unsynchronised, leap 3, stratum 16', sources: [],
      want: { mode: 'unsynchronised', synchronised: false, served: { leap: 3, stratum: 16 } } },
    { name: 'no sources, local stratum 10: LOCL', sources: [], settings: { localStratum: 10 },
      want: { mode: 'local', served: { leap: 0, stratum: 10, referenceId: REFID_LOCAL } } },
    { name: 'a good upstream: its stratum + 1, refid = its address',
      sources: [source('10.0.0.5', 'upstream', [sample()])],
      want: { mode: 'source', source: '10.0.0.5:123', offsetS: 0.0002, served: { leap: 0, stratum: 3, referenceId: parseIpv4('10.0.0.5') } } },
    { name: 'upstream leap warning is passed on', sources: [source('10.0.0.5', 'upstream', [sample({ leap: 1 })])],
      want: { served: { leap: 1 } } },
    { name: 'our clock 2 s off the upstream: unsynchronised even with local stratum',
      sources: [source('10.0.0.5', 'upstream', [sample({ offsetS: 2 })])], settings: { localStratum: 10 },
      want: { mode: 'unsynchronised', served: { leap: 3 } } },
    { name: 'an offset past the limit that its delay cannot prove (a stalled peer): still synchronised, not called undisciplined',
      sources: [source('10.20.0.3', 'peer', [sample({ offsetS: 0.224, delayS: 0.46, stratum: 10 })])], settings: { localStratum: 10 },
      want: { mode: 'source', source: '10.20.0.3:123', served: { leap: 0, stratum: 11 } } },
    { name: 'an offset past the limit by more than half its delay: unsynchronised',
      sources: [source('10.20.0.3', 'peer', [sample({ offsetS: 0.224, delayS: 0.18, stratum: 10 })])], settings: { localStratum: 10 },
      want: { mode: 'unsynchronised', served: { leap: 3 } } },
    { name: 'samples older than the window: falls back to local',
      sources: [source('10.0.0.5', 'upstream', [sample({ atMonoMs: NOW_MONO - 61_000 })])], settings: { localStratum: 9 },
      want: { mode: 'local', served: { stratum: 9 } } },
    { name: 'upstream preferred over the peer even when the peer is closer',
      sources: [source('10.20.0.3', 'peer', [sample({ stratum: 2, rootDelayS: 0 })]), source('10.0.0.5', 'upstream', [sample({ stratum: 3, rootDelayS: 0.1 })])],
      want: { source: '10.0.0.5:123', served: { stratum: 4 } } },
    { name: 'peer used when no upstream answers',
      sources: [source('10.0.0.5', 'upstream', []), source('10.20.0.3', 'peer', [sample({ stratum: 3 })])],
      want: { mode: 'source', source: '10.20.0.3:123', served: { stratum: 4 } } },
    { name: 'a peer synchronised to us is a loop: ignored',
      sources: [source('10.20.0.3', 'peer', [sample({ stratum: 4, referenceId: parseIpv4('10.20.0.2')! })])], settings: { localStratum: 10 },
      want: { mode: 'local', served: { stratum: 10 } } },
    { name: 'a stratum 15 source cannot make us 16',
      sources: [source('10.0.0.5', 'upstream', [sample({ stratum: 15 })])],
      want: { mode: 'unsynchronised' } },
    { name: 'the sample with least delay wins',
      sources: [source('10.0.0.5', 'upstream', [sample({ delayS: 0.05, offsetS: 0.02 }), sample({ delayS: 0.001, offsetS: 0.0001 }), sample({ delayS: 0.03, offsetS: -0.01 })])],
      want: { offsetS: 0.0001 } },
    { name: 'a wall clock in 1970 is never served, not even as local',
      sources: [], settings: { localStratum: 10 }, nowNs: 5_000_000_000n,
      want: { mode: 'unsynchronised', served: { leap: 3 } } },
  ];
  for (const c of cases) {
    const d = decideReference(c.sources, { ...settings, ...c.settings }, NOW_MONO, c.nowNs ?? NOW_NS);
    t.match(d, c.want, c.name);
  }
});

t.test('served root delay and dispersion come from the sample and grow with its age', async (t) => {
  const s = sample({ offsetS: -0.003, delayS: 0.002, dispersionS: 0.0001, rootDelayS: 0.01, rootDispersionS: 0.02, atMonoMs: NOW_MONO - 10_000 });
  const d = decideReference([source('10.0.0.5', 'upstream', [s])], settings, NOW_MONO, NOW_NS);
  t.equal(d.served.rootDelayS.toFixed(6), '0.012000', 'root delay = upstream root delay + our delay');
  t.equal(d.served.rootDispersionS.toFixed(6), (0.02 + 0.0001 + 0.003 + 15e-6 * 10).toFixed(6), 'root dispersion = upstream + sample + |offset| + PHI x age');
  t.same(d.served.referenceTimestamp, timestampFromUnixNs(s.atUnixNs), 'reference time = when the sample was taken');
});

function reply(overrides: Partial<NtpPacket>): NtpPacket {
  return {
    leap: 0, version: 4, mode: 4, stratum: 2, poll: 6, precision: -20, rootDelay: shortFromSeconds(0.01), rootDispersion: shortFromSeconds(0.02),
    referenceId: 1, referenceTimestamp: { seconds: 0, fraction: 0 }, originTimestamp: { seconds: 0, fraction: 0 },
    receiveTimestamp: { seconds: 0, fraction: 0 }, transmitTimestamp: { seconds: 0, fraction: 0 }, extensions: [], mac: null, ...overrides,
  };
}

t.test('sample maths: offset and delay from t1..t4 (RFC 5905 §8)', async (t) => {
  const ms = 1_000_000n;
  const t1 = NOW_NS;
  // Server clock 5 ms ahead; 2 ms each way; 1 ms hold.
  const t2 = t1 + 2n * ms + 5n * ms, t3 = t2 + 1n * ms, t4 = t1 + 5n * ms;
  const sent = timestampFromUnixNs(t1);
  const r = sampleFromReply(reply({ originTimestamp: sent, receiveTimestamp: timestampFromUnixNs(t2), transmitTimestamp: timestampFromUnixNs(t3) }), sent, t1, t4, 5);
  if (!r.ok) { t.fail(r.detail); return; }
  t.equal(r.sample.offsetS.toFixed(6), '0.005000');
  t.equal(r.sample.delayS.toFixed(6), '0.004000');
  t.equal(r.sample.rootDelayS.toFixed(4), '0.0100');
  t.equal(r.sample.stratum, 2);
  const bad: Array<[string, Partial<NtpPacket>, string]> = [
    ['origin not ours', { originTimestamp: { seconds: 1, fraction: 1 } }, 'bogus-origin'],
    ['KoD RATE', { originTimestamp: sent, stratum: 0, referenceId: asciiReferenceId('RATE') }, 'kiss'],
    ['server unsynchronised', { originTimestamp: sent, leap: 3 }, 'unsynchronised'],
    ['stratum 16', { originTimestamp: sent, stratum: 16 }, 'unsynchronised'],
    ['a client packet', { originTimestamp: sent, mode: 3 }, 'not-a-server-reply'],
  ];
  const stepped = sampleFromReply(reply({ originTimestamp: sent, receiveTimestamp: timestampFromUnixNs(t2), transmitTimestamp: timestampFromUnixNs(t3) }), sent, t1, t4 + 3600n * 1_000_000_000n, 5);
  t.equal(stepped.ok ? 'ok' : stepped.problem, 'bad-timestamps', 'our clock stepped during the exchange: an hour-long round trip is refused');
  for (const [name, o, problem] of bad) {
    const b = sampleFromReply(reply(o), sent, t1, t4, 5);
    t.equal(b.ok ? 'ok' : b.problem, problem, name);
  }
});

t.test('sample maths across the 2036 rollover', async (t) => {
  const rollover = BigInt(2 ** 32 - 2_208_988_800) * 1_000_000_000n;
  const t1 = rollover - 500_000_000n; // half a second before
  const t2 = t1 + 1_000_000_000n; // server 1 s ahead: its stamps are in era 1 (seconds near 0)
  const t3 = t2, t4 = t1;
  const sent = timestampFromUnixNs(t1);
  const r = sampleFromReply(reply({ originTimestamp: sent, receiveTimestamp: timestampFromUnixNs(t2), transmitTimestamp: timestampFromUnixNs(t3) }), sent, t1, t4, 0);
  t.ok(r.ok && Math.abs(r.sample.offsetS - 1) < 1e-9, 'offset is +1 s, not -136 years');
});

t.test('the reach register and sample window', async (t) => {
  const s = source('10.0.0.5', 'upstream', []);
  s.reach = 0;
  for (let i = 0; i < 10; i++) recordPoll(s, { sample: sample() });
  recordPoll(s, { problem: 'no reply' });
  t.equal(s.reach, 0b11111110);
  t.equal(s.samples.length, 8, 'at most 8 samples kept');
  t.equal(s.lastProblem, 'no reply');
  recordPoll(s, { sample: sample({ offsetS: 3600 }) });
  t.equal(s.samples.length, 1, 'a step (offset jump over 128 ms) forgets the samples from before it');
  const d = decideReference([s], { ...settings, localStratum: 10 }, NOW_MONO, NOW_NS);
  t.equal(d.mode, 'unsynchronised', 'and the step is seen at once');
});
