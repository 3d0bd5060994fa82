import { RCODE, T, type DnsRecord } from './wire.js';

// The forwarding cache (pure; time is an argument). Positive answers live for the smallest TTL of
// their answer records, negative ones (NXDOMAIN, NODATA) for min(SOA TTL, SOA minimum) of the SOA
// in authority (RFC 2308 §5); a negative answer without a SOA is not cached. Served TTLs count
// down. The cache holds at most `capacity` questions; the least recently used goes first.

export interface CachedAnswer {
  rcode: number;
  answers: DnsRecord[];
  authority: DnsRecord[];
  additional: DnsRecord[];
}

interface Entry extends CachedAnswer {
  storedAt: number;
  expiresAt: number;
}

const POSITIVE_TTL_MAX = 86_400;
const NEGATIVE_TTL_MAX = 3_600;

export function cacheTtl(a: CachedAnswer): number {
  if (a.rcode === RCODE.NOERROR && a.answers.length > 0) {
    return Math.min(POSITIVE_TTL_MAX, ...a.answers.map((r) => r.ttl));
  }
  if (a.rcode === RCODE.NXDOMAIN || (a.rcode === RCODE.NOERROR && a.answers.length === 0)) {
    const soa = a.authority.find((r) => r.type === T.SOA);
    if (soa === undefined || soa.rdata.length < 4) return 0;
    const at = soa.rdata.length - 4;
    const minimum = ((soa.rdata[at]! << 24) | (soa.rdata[at + 1]! << 16) | (soa.rdata[at + 2]! << 8) | soa.rdata[at + 3]!) >>> 0;
    return Math.min(NEGATIVE_TTL_MAX, soa.ttl, minimum);
  }
  return 0;
}

export class ForwardCache {
  readonly capacity: number;
  #entries = new Map<string, Entry>();

  constructor(capacity: number) {
    this.capacity = capacity;
  }

  get size(): number { return this.#entries.size; }

  /** The answer with TTLs reduced by the time it has spent here, or null (absent or expired). */
  get(key: string, nowMs: number): CachedAnswer | null {
    const e = this.#entries.get(key);
    if (e === undefined) return null;
    if (nowMs >= e.expiresAt) {
      this.#entries.delete(key);
      return null;
    }
    this.#entries.delete(key);
    this.#entries.set(key, e); // most recently used last
    const age = Math.floor((nowMs - e.storedAt) / 1000);
    const dec = (r: DnsRecord): DnsRecord => ({ ...r, ttl: Math.max(0, r.ttl - age) });
    return { rcode: e.rcode, answers: e.answers.map(dec), authority: e.authority.map(dec), additional: e.additional.map(dec) };
  }

  put(key: string, answer: CachedAnswer, nowMs: number): void {
    if (this.capacity === 0) return;
    const ttl = cacheTtl(answer);
    if (ttl <= 0) return;
    this.#entries.delete(key);
    while (this.#entries.size >= this.capacity) {
      const oldest = this.#entries.keys().next().value as string;
      this.#entries.delete(oldest);
    }
    this.#entries.set(key, { ...answer, storedAt: nowMs, expiresAt: nowMs + ttl * 1000 });
  }

  clear(): void { this.#entries.clear(); }
}
