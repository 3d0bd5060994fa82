import {
  LeapIndicator, NtpMode, STRATUM_KOD, STRATUM_UNSYNCHRONISED, ZERO_TIMESTAMP, asciiReferenceId,
  referenceIdText, secondsFromShort, timestampFromUnixNs, timestampsEqual, unixNsFromTimestamp,
  type Leap, type NtpPacket, type NtpTimestamp,
} from './wire.js';
import type { ServedReference } from './responder.js';

// What the server may claim about its clock. The OS disciplines the clock (chrony, timesyncd);
// lanha never steps it. It samples its upstreams and the other LAN node with its own SNTP client
// and from those offsets decides: synchronised to a source (stratum = source + 1, refid = source
// address, root delay and dispersion from the sample), local (the configured `localStratum`, refid
// LOCL, for an isolated rack), or unsynchronised (leap 3, stratum 16: clients must refuse).
// Pure: samples, settings and the current time come in as arguments. The socket work is sampler.ts.

/** RFC 5905 §7.2 PHI: the frequency tolerance assumed when dispersion grows with age (15 ppm). */
export const PHI = 15e-6;
/** Clock reading resolution we claim: 2^-20 s, about a microsecond. */
export const PRECISION_LOG2 = -20;
const PRECISION_S = 2 ** PRECISION_LOG2;
/** RFC 5905 MAXDISP: root dispersion served while unsynchronised. */
const MAX_DISPERSION_S = 16;
/** RFC 5905 MAXDIST: samples with a longer round trip are not used. */
const MAX_DELAY_S = 1;
export const REFID_LOCAL = asciiReferenceId('LOCL');

export type SourceKind = 'upstream' | 'peer';

/** One answered query, as the SNTP client measured it (RFC 5905 §8 on-wire protocol). */
export interface SourceSample {
  /** Monotonic ms at reception (t4): ages samples without trusting the wall clock. */
  atMonoMs: number;
  /** Wall ns at reception (t4): the reference timestamp we serve when this sample is chosen. */
  atUnixNs: bigint;
  /** Server clock minus ours, seconds: ((t2 - t1) + (t3 - t4)) / 2. */
  offsetS: number;
  /** Round trip minus the server's hold time, seconds: (t4 - t1) - (t3 - t2). */
  delayS: number;
  /** Our reading error for this sample: precisions plus PHI over the round trip. */
  dispersionS: number;
  leap: Leap;
  stratum: number;
  referenceId: number;
  rootDelayS: number;
  rootDispersionS: number;
}

export interface SourceState {
  /** "10.20.0.2:123". */
  name: string;
  kind: SourceKind;
  /** The source's IPv4 address as 32 bits: the reference id we serve when synchronised to it. */
  address: number;
  /** Newest last, at most SAMPLES_KEPT. */
  samples: SourceSample[];
  /** RFC 5905 reach register: a 1 shifted in per answered poll. */
  reach: number;
  /** Why the last exchange gave no usable sample, if it did not. */
  lastProblem: string | null;
}

export const SAMPLES_KEPT = 8;
/** RFC 5905 STEPT (0.128 s). */
export const STEP_THRESHOLD_S = 0.128;

export interface ReferenceSettings {
  /** Serve this stratum, refid LOCL, when no source is usable; absent = leap 3 instead. */
  localStratum: number | undefined;
  /** A source whose offset to us is larger than this means our clock is not disciplined. */
  maxOffsetS: number;
  /** Samples older than this no longer count. */
  sampleMaxAgeMs: number;
  /** Our own addresses: a source whose reference id is one of them is synchronised to us (a loop). */
  ownAddresses: ReadonlySet<number>;
  /** Our wall clock before this (a Pi without RTC at 1970) is never served, not even as local. */
  wallFloorUnixS: number;
}

export type ReferenceMode = 'source' | 'local' | 'unsynchronised';

export interface ReferenceDecision {
  mode: ReferenceMode;
  synchronised: boolean;
  /** The chosen source's name, in `source` mode. */
  source: string | null;
  /** Our offset to the chosen source, seconds (its clock minus ours). */
  offsetS: number | null;
  /** One line for the operator: why this mode. */
  reason: string;
  served: ServedReference;
}

/** The wall floor: 2025-01-01, before this code existed; a clock earlier than that is surely wrong. */
export const DEFAULT_WALL_FLOOR_UNIX_S = Date.UTC(2025, 0, 1) / 1000;

export type SampleProblem = 'not-a-server-reply' | 'bogus-origin' | 'kiss' | 'unsynchronised' | 'bad-timestamps';

/**
 * Turns a reply to our query into a sample. `sent` is the transmit timestamp we put in the query
 * (the reply must echo it as origin: RFC 5905 §8 bogus check); t1/t4 are our send/receive times.
 */
export function sampleFromReply(
  reply: NtpPacket, sent: NtpTimestamp, t1Ns: bigint, t4Ns: bigint, atMonoMs: number,
): { ok: true; sample: SourceSample } | { ok: false; problem: SampleProblem; detail: string } {
  if (reply.mode !== NtpMode.Server) return { ok: false, problem: 'not-a-server-reply', detail: `mode ${reply.mode}` };
  if (!timestampsEqual(reply.originTimestamp, sent)) return { ok: false, problem: 'bogus-origin', detail: 'origin does not echo our transmit timestamp' };
  if (reply.stratum === STRATUM_KOD) {
    return { ok: false, problem: 'kiss', detail: `kiss code ${referenceIdText(reply.referenceId, 0) || '(empty)'}` };
  }
  if (reply.leap === LeapIndicator.Unsynchronised || reply.stratum >= STRATUM_UNSYNCHRONISED) {
    return { ok: false, problem: 'unsynchronised', detail: `leap ${reply.leap}, stratum ${reply.stratum}` };
  }
  const t2 = unixNsFromTimestamp(reply.receiveTimestamp, t1Ns);
  const t3 = unixNsFromTimestamp(reply.transmitTimestamp, t1Ns);
  if (t3 < t2 || t4Ns < t1Ns) return { ok: false, problem: 'bad-timestamps', detail: 'transmit before receive' };
  const offsetS = Number((t2 - t1Ns) + (t3 - t4Ns)) / 2e9;
  const delayS = Math.max(Number((t4Ns - t1Ns) - (t3 - t2)) / 1e9, PRECISION_S);
  // RFC 5905 MAXDIST (1 s): a longer round trip is no measurement (and one across a step of our
  // own clock looks like an hour-long round trip with half the step as offset).
  if (delayS > MAX_DELAY_S) return { ok: false, problem: 'bad-timestamps', detail: `round trip of ${delayS.toFixed(3)} s` };
  return {
    ok: true,
    sample: {
      atMonoMs,
      atUnixNs: t4Ns,
      offsetS,
      delayS,
      dispersionS: PRECISION_S + 2 ** reply.precision + PHI * Number(t4Ns - t1Ns) / 1e9,
      leap: reply.leap,
      stratum: reply.stratum,
      referenceId: reply.referenceId,
      rootDelayS: secondsFromShort(reply.rootDelay),
      rootDispersionS: secondsFromShort(reply.rootDispersion),
    },
  };
}

/** Records the outcome of one poll in a source (reach register, samples kept). Returns the same object. */
export function recordPoll(source: SourceState, outcome: { sample: SourceSample } | { problem: string }): SourceState {
  source.reach = ((source.reach << 1) | ('sample' in outcome ? 1 : 0)) & 0xff;
  if ('sample' in outcome) {
    // RFC 5905 STEPT: an offset jump this large means one of the two clocks was stepped; the older
    // samples describe a clock that no longer exists (and the least-delayed one could be among them).
    const last = source.samples[source.samples.length - 1];
    if (last !== undefined && Math.abs(outcome.sample.offsetS - last.offsetS) > STEP_THRESHOLD_S) source.samples.length = 0;
    source.samples.push(outcome.sample);
    if (source.samples.length > SAMPLES_KEPT) source.samples.splice(0, source.samples.length - SAMPLES_KEPT);
    source.lastProblem = null;
  } else {
    source.lastProblem = outcome.problem;
  }
  return source;
}

/** RFC 5905 §10 clock filter, simplified: among recent samples, the one with the least delay. */
export function bestSample(source: SourceState, settings: ReferenceSettings, nowMonoMs: number): SourceSample | null {
  let best: SourceSample | null = null;
  for (const s of source.samples) {
    if (nowMonoMs - s.atMonoMs > settings.sampleMaxAgeMs) continue;
    if (best === null || s.delayS < best.delayS) best = s;
  }
  return best;
}

function rootDistance(s: SourceSample): number {
  return s.rootDelayS / 2 + s.delayS / 2 + s.rootDispersionS + s.dispersionS;
}

/** Decides what to serve now. */
export function decideReference(
  sources: readonly SourceState[], settings: ReferenceSettings, nowMonoMs: number, nowUnixNs: bigint,
): ReferenceDecision {
  if (Number(nowUnixNs / 1_000_000_000n) < settings.wallFloorUnixS) {
    return unsynchronised(`the system clock reads ${new Date(Number(nowUnixNs / 1_000_000n)).toISOString()}, before ${new Date(settings.wallFloorUnixS * 1000).toISOString().slice(0, 10)}: not set`);
  }
  const candidates: Array<{ source: SourceState; sample: SourceSample }> = [];
  for (const source of sources) {
    const sample = bestSample(source, settings, nowMonoMs);
    if (sample === null) continue;
    // RFC 5905 §8: a source whose reference is us would only echo our own clock back (a loop).
    if (settings.ownAddresses.has(sample.referenceId) && sample.stratum > 1) continue;
    // Our stratum would be its stratum + 1, which must stay below 16.
    if (sample.stratum + 1 >= STRATUM_UNSYNCHRONISED) continue;
    candidates.push({ source, sample });
  }
  // Upstreams before the other LAN node (it is a fallback, as chrony's orphan peers are), then the
  // smallest root distance.
  candidates.sort((a, b) => kindRank(a.source.kind) - kindRank(b.source.kind) || rootDistance(a.sample) - rootDistance(b.sample));
  // The true offset lies within offset ± delay/2 (RFC 5905 §8): only a sample whose nearest bound is
  // past maxOffsetS proves our clock undisciplined. A stalled process on either side (a loaded Pi)
  // gives one-sided delays of hundreds of ms, and a clock that is right must not be called 200 ms
  // off for it (the served root dispersion still carries the whole |offset|).
  const within = candidates.find((c) => Math.abs(c.sample.offsetS) - c.sample.delayS / 2 <= settings.maxOffsetS);
  if (within !== undefined) return synchronisedTo(within.source, within.sample, nowMonoMs);
  if (candidates.length > 0) {
    const c = candidates[0]!;
    return unsynchronised(`our clock is ${(c.sample.offsetS * 1000).toFixed(3)} ms off ${c.source.name} (more than ${(settings.maxOffsetS * 1000).toFixed(0)} ms): the OS is not disciplining it`, c.sample.offsetS);
  }
  if (settings.localStratum !== undefined) {
    return {
      mode: 'local',
      synchronised: true,
      source: null,
      offsetS: null,
      reason: `no usable source; serving local stratum ${settings.localStratum}`,
      served: {
        leap: LeapIndicator.NoWarning,
        stratum: settings.localStratum,
        referenceId: REFID_LOCAL,
        referenceTimestamp: timestampFromUnixNs(nowUnixNs),
        rootDelayS: 0,
        rootDispersionS: 0,
        precision: PRECISION_LOG2,
      },
    };
  }
  return unsynchronised(sources.length === 0 ? 'no upstream configured and no localStratum' : 'no source has answered with usable time recently');
}

function kindRank(kind: SourceKind): number {
  return kind === 'upstream' ? 0 : 1;
}

function synchronisedTo(source: SourceState, s: SourceSample, nowMonoMs: number): ReferenceDecision {
  const ageS = Math.max(0, nowMonoMs - s.atMonoMs) / 1000;
  return {
    mode: 'source',
    synchronised: true,
    source: source.name,
    offsetS: s.offsetS,
    reason: `synchronised to ${source.kind} ${source.name}`,
    served: {
      leap: s.leap,
      stratum: s.stratum + 1,
      referenceId: source.address,
      referenceTimestamp: timestampFromUnixNs(s.atUnixNs),
      rootDelayS: s.rootDelayS + s.delayS,
      // We do not correct our clock by the offset, so it is part of the error we serve.
      rootDispersionS: s.rootDispersionS + s.dispersionS + Math.abs(s.offsetS) + PHI * ageS,
      precision: PRECISION_LOG2,
    },
  };
}

function unsynchronised(reason: string, offsetS: number | null = null): ReferenceDecision {
  return {
    mode: 'unsynchronised',
    synchronised: false,
    source: null,
    offsetS,
    reason,
    served: {
      leap: LeapIndicator.Unsynchronised,
      stratum: STRATUM_UNSYNCHRONISED,
      referenceId: 0,
      referenceTimestamp: ZERO_TIMESTAMP,
      rootDelayS: 0,
      rootDispersionS: MAX_DISPERSION_S,
      precision: PRECISION_LOG2,
    },
  };
}
