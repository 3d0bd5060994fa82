// A window of the last N durations (a ring) with quantiles over it, and listeners told of each new
// one (a Prometheus histogram). Bounded memory whatever the rate; no clock of its own.

export class LatencyWindow {
  readonly size: number;
  #ring: number[] = [];
  #next = 0;
  #count = 0;
  #listeners = new Set<(ms: number) => void>();

  constructor(size = 1024) {
    this.size = size;
  }

  /** How many durations were ever recorded. */
  get count(): number { return this.#count; }

  record(ms: number): void {
    if (this.#ring.length < this.size) this.#ring.push(ms);
    else this.#ring[this.#next] = ms;
    this.#next = (this.#next + 1) % this.size;
    this.#count++;
    for (const l of this.#listeners) l(ms);
  }

  /** The q-quantile (0..1, nearest rank) of the window, or null when empty. */
  quantile(q: number): number | null {
    if (this.#ring.length === 0) return null;
    const sorted = [...this.#ring].sort((a, b) => a - b);
    return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
  }

  subscribe(listener: (ms: number) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}
