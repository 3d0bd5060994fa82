import { NtpMode, type NtpPacket } from './wire.js';
import type { Random } from '../../lib/random.js';

// Ordered admission of a decoded request, cheapest check first: version, mode, then the per-client
// rate limit. Only client requests (mode 3, versions 1-4) are ever answered: control (6) and private
// (7) modes are the classic reflection amplifiers (monlist, CVE-2013-5211), symmetric and broadcast
// modes would let a stranger peer with us. Pure: time and randomness come in as arguments.

export type GateVerdict =
  | { kind: 'answer' }
  /** Rate-limited, and this one gets a Kiss-o'-Death RATE (RFC 5905 §7.4). */
  | { kind: 'kod' }
  | { kind: 'drop'; reason: GateDropReason };

export type GateDropReason = 'version' | 'mode' | 'rate';

export interface RateLimitSettings {
  /** log2 seconds between responses a client may average (chrony `interval`; lanha's default -1 = 0.5 s). */
  interval: number;
  /** Responses a client may get in a burst (chrony `burst`, default 8). */
  burst: number;
  /** When limited, one request in 2^leak still gets an answer: a KoD RATE (chrony `leak`, default 2). */
  leak: number;
}

/**
 * chrony's `ratelimit` defaults except the interval: chrony's 8 s is for public servers, and KoDs a
 * LAN client polling every second (`minpoll 0 maxpoll 0`, the configuration chrony's own manual gives
 * for a LAN server with hardware timestamps). Two responses a second on average leaves such a client
 * twice its rate and still limits a client polling faster.
 */
export const DEFAULT_RATE_LIMIT: RateLimitSettings = { interval: -1, burst: 8, leak: 2 };

const ANSWER: GateVerdict = { kind: 'answer' };
const KOD: GateVerdict = { kind: 'kod' };
const DROP_VERSION: GateVerdict = { kind: 'drop', reason: 'version' };
const DROP_MODE: GateVerdict = { kind: 'drop', reason: 'mode' };
const DROP_RATE: GateVerdict = { kind: 'drop', reason: 'rate' };

/** Header checks that need no state. */
export function admitHeader(packet: Pick<NtpPacket, 'version' | 'mode'>): GateVerdict {
  // RFC 5905 §9.2: versions 1-4 are answered (a version 1 client sends mode 0 and is dropped below).
  if (packet.version < 1 || packet.version > 4) return DROP_VERSION;
  if (packet.mode !== NtpMode.Client) return DROP_MODE;
  return ANSWER;
}

interface Bucket {
  tokens: number;
  lastMs: number;
}

/**
 * Per-client token buckets: a client earns one token every 2^interval seconds up to `burst`; each
 * answered request spends one. The table is bounded: past `clientsMax` the oldest client is forgotten
 * (which only ever makes the limiter more lenient, never blocks anyone wrongly).
 */
export class RateLimiter {
  readonly settings: RateLimitSettings;
  readonly clientsMax: number;
  #intervalMs: number;
  #clients = new Map<string, Bucket>();

  constructor(settings: RateLimitSettings, clientsMax = 65_536) {
    this.settings = settings;
    this.clientsMax = clientsMax;
    this.#intervalMs = 1000 * 2 ** settings.interval;
  }

  get clientCount(): number { return this.#clients.size; }

  /** Whether `client` may be answered at `nowMs` (monotonic), spending a token if so. */
  admit(client: string, nowMs: number, random: Random): GateVerdict {
    let bucket = this.#clients.get(client);
    if (bucket === undefined) {
      if (this.#clients.size >= this.clientsMax) {
        const oldest = this.#clients.keys().next();
        if (!oldest.done) this.#clients.delete(oldest.value);
      }
      bucket = { tokens: this.settings.burst, lastMs: nowMs };
      this.#clients.set(client, bucket);
    } else {
      const earned = (nowMs - bucket.lastMs) / this.#intervalMs;
      if (earned > 0) bucket.tokens = Math.min(this.settings.burst, bucket.tokens + earned);
      bucket.lastMs = Math.max(bucket.lastMs, nowMs);
    }
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return ANSWER;
    }
    // RFC 5905 §7.4 / chrony `leak`: a spoofed flood must not silence the real client entirely, so
    // some limited requests are answered, with a KoD that tells a real client to slow down.
    return random.int(2 ** this.settings.leak) === 0 ? KOD : DROP_RATE;
  }
}

/** The whole gate: header checks, then the rate limit when one is configured. */
export function admit(
  packet: Pick<NtpPacket, 'version' | 'mode'>,
  client: string,
  nowMs: number,
  limiter: RateLimiter | null,
  random: Random,
): GateVerdict {
  const header = admitHeader(packet);
  if (header.kind !== 'answer' || limiter === null) return header;
  return limiter.admit(client, nowMs, random);
}
