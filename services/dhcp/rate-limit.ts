// Per-MAC admission for the DHCP server: a token bucket per client hardware address. A client may
// send a burst of `burst` packets at once and then earns them back at `burst` per `windowMs`, so a
// machine that netboots (firmware, then iPXE or U-Boot, then the kernel, then the OS, each with a
// DISCOVER and a REQUEST and their retransmissions, and an operator's `dhcp` at a prompt) is never
// dropped, while one that loops is held to the refill rate. Pure: times are passed in (monotonic ms).

interface Bucket {
  tokens: number;
  lastMs: number;
}

/**
 * Buckets kept before the idle ones (full again) are dropped; when that frees less than a tenth, all
 * are (a flood of forged MACs: each new one would otherwise cost a scan of the table).
 */
const PRUNE_AT = 50_000;

export class MacBuckets {
  readonly burst: number;
  readonly windowMs: number;
  readonly #buckets = new Map<string, Bucket>();

  constructor(burst: number, windowMs: number) {
    this.burst = burst;
    this.windowMs = windowMs;
  }

  /** Takes one packet's token for `mac` at `nowMs`: false when it has none left (drop the packet). */
  admit(mac: string, nowMs: number): boolean {
    let bucket = this.#buckets.get(mac);
    if (bucket === undefined) {
      if (this.#buckets.size >= PRUNE_AT) this.#prune(nowMs);
      bucket = { tokens: this.burst, lastMs: nowMs };
      this.#buckets.set(mac, bucket);
    } else if (nowMs > bucket.lastMs) {
      bucket.tokens = Math.min(this.burst, bucket.tokens + ((nowMs - bucket.lastMs) * this.burst) / this.windowMs);
      bucket.lastMs = nowMs;
    }
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }

  get size(): number { return this.#buckets.size; }

  /** Drops the buckets that are full again (their MACs start over alike); if too many are still filling, all of them. */
  #prune(nowMs: number): void {
    for (const [mac, b] of this.#buckets) {
      if (b.tokens + ((nowMs - b.lastMs) * this.burst) / this.windowMs >= this.burst) this.#buckets.delete(mac);
    }
    if (this.#buckets.size >= PRUNE_AT * 0.9) this.#buckets.clear();
  }
}
