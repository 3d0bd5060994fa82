// Response rate limiting per source prefix (the idea of BIND/NSD RRL, reduced to what a LAN server
// needs): each IPv4 /N (IPv6 /64) gets `responsesPerSecond` tokens a second. Past that, one reply in
// `slip` is sent truncated (TC=1, no records: tiny, so useless for amplification, and a real client
// retries over TCP) and the others are dropped. Pure: time comes in as an argument.

export type RrlVerdict = 'send' | 'slip' | 'drop';

interface Bucket { tokens: number; last: number; limited: number }

export class ResponseRateLimiter {
  readonly #rate: number;
  readonly #slip: number;
  readonly #mask: number;
  #buckets = new Map<number | string, Bucket>();

  constructor(responsesPerSecond: number, slip: number, ipv4Prefix: number) {
    this.#rate = responsesPerSecond;
    this.#slip = slip;
    this.#mask = ipv4Prefix === 0 ? 0 : (0xffffffff << (32 - ipv4Prefix)) >>> 0;
  }

  /** `source`: an IPv4 address as uint32, or IPv6 text. */
  check(source: number | string, nowMs: number): RrlVerdict {
    const key = typeof source === 'number' ? (source & this.#mask) >>> 0 : ipv6Prefix64(source);
    let b = this.#buckets.get(key);
    if (b === undefined) {
      if (this.#buckets.size >= 65536) this.#prune(nowMs);
      b = { tokens: this.#rate, last: nowMs, limited: 0 };
      this.#buckets.set(key, b);
    } else {
      const elapsed = nowMs - b.last;
      if (elapsed > 0) {
        b.tokens = Math.min(this.#rate, b.tokens + (elapsed * this.#rate) / 1000);
        b.last = nowMs;
      }
    }
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 'send';
    }
    b.limited++;
    return this.#slip > 0 && b.limited % this.#slip === 0 ? 'slip' : 'drop';
  }

  get trackedPrefixes(): number { return this.#buckets.size; }

  #prune(nowMs: number): void {
    for (const [k, b] of this.#buckets) if (nowMs - b.last > 1000) this.#buckets.delete(k);
    if (this.#buckets.size >= 65536) this.#buckets.clear();
  }
}

function ipv6Prefix64(text: string): string {
  const groups = text.split(':');
  return groups.slice(0, 4).join(':').slice(0, 19) + '/64';
}
