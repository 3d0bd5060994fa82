// Named monotonically increasing counters, the cheapest form of metrics: services bump them on
// every drop or refusal, and `lanctl status --json` shows them.
export class Counters {
  #values = new Map<string, number>();

  inc(name: string, by = 1): void {
    this.#values.set(name, (this.#values.get(name) ?? 0) + by);
  }

  get(name: string): number {
    return this.#values.get(name) ?? 0;
  }

  toJSON(): Record<string, number> {
    return Object.fromEntries([...this.#values.entries()].sort(([a], [b]) => a.localeCompare(b)));
  }
}
