import type { Socket } from 'node:net';

// Open connections per remote address, for listeners that cap what one host may hold (boot HTTP,
// the status HTTP listener): one host that opens connections and leaves them, or reconnects in a
// loop, must not take every slot from the others. Counted from accept to close.

export class SourceSlots {
  readonly #open = new Map<string, number>();

  /** `max`: the connections one source may hold at once. */
  constructor(readonly max: number) {}

  /** Counts `socket` against its source and returns true, or returns false (the caller closes it) when the source holds `max` already. */
  take(socket: Socket): boolean {
    const source = socket.remoteAddress ?? '';
    const held = this.#open.get(source) ?? 0;
    if (held >= this.max) return false;
    this.#open.set(source, held + 1);
    socket.once('close', () => {
      const n = (this.#open.get(source) ?? 1) - 1;
      if (n <= 0) this.#open.delete(source); else this.#open.set(source, n);
    });
    return true;
  }

  /** Connections `source` holds now. */
  held(source: string): number { return this.#open.get(source) ?? 0; }
}
