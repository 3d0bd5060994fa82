// Long work on the event loop cut into slices with a turn of the loop between them, so what waits
// (DHCP packets, timers, I/O) runs meanwhile: sorting, and the JSON text of documents that hold a long
// array (a state hash, a snapshot, an API answer with every lease).

/** Items per slice: a few ms of the event loop each (leases: ~150 KB of JSON). */
export const ITEMS_PER_SLICE = 1000;

/** One turn of the event loop: what waits (DHCP packets, timers, I/O) runs before the next slice. */
export const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * `items` sorted by `compare` (a new array; `items` is reordered too), a slice at a time with a turn of
 * the event loop between: runs of ITEMS_PER_SLICE sorted one per turn, then merged pairwise, at most
 * 2 x ITEMS_PER_SLICE items moved per turn. Stable, as Array.prototype.sort. `stop`, asked after each
 * turn, gives null.
 */
export async function sortInSlices<T>(items: T[], compare: (a: T, b: T) => number, stop: () => boolean = () => false): Promise<T[] | null> {
  const n = items.length;
  for (let lo = 0; lo < n; lo += ITEMS_PER_SLICE) {
    if (lo > 0) {
      await turn();
      if (stop()) return null;
    }
    const run = items.slice(lo, lo + ITEMS_PER_SLICE).sort(compare);
    for (let k = 0; k < run.length; k++) items[lo + k] = run[k]!;
  }
  let from = items;
  let to: T[] = new Array<T>(n);
  let moved = 0;
  for (let width = ITEMS_PER_SLICE; width < n; width *= 2) {
    for (let lo = 0; lo < n; lo += 2 * width) {
      const mid = Math.min(lo + width, n);
      const hi = Math.min(lo + 2 * width, n);
      let a = lo;
      let b = mid;
      for (let k = lo; k < hi; k++) {
        to[k] = a < mid && (b >= hi || compare(from[a]!, from[b]!) <= 0) ? from[a++]! : from[b++]!;
        if (++moved >= 2 * ITEMS_PER_SLICE) {
          moved = 0;
          await turn();
          if (stop()) return null;
        }
      }
    }
    [from, to] = [to, from];
  }
  return from;
}

/**
 * Gives `sink` the text of JSON.stringify(document(items)), with `items` (an array that `document`
 * puts where it puts its argument) made a slice at a time and a turn of the event loop between
 * slices. `stop`, asked after each turn, ends it early (what was given is then a prefix). `items`
 * must not change meanwhile; each is given as JSON.stringify gives it inside the whole document.
 */
export async function stringifyInSlices(document: (items: unknown) => unknown, items: readonly unknown[], sink: (part: string) => void, stop: () => boolean = () => false): Promise<void> {
  // The document with a marker where the items go, then the items spliced in.
  const marker = `\u0000lanha-items-${items.length}\u0000`;
  const frame = JSON.stringify(document(marker));
  const quoted = JSON.stringify(marker);
  const at = frame.indexOf(quoted);
  if (at < 0 || frame.indexOf(quoted, at + 1) >= 0) { sink(JSON.stringify(document(items))); return; }
  sink(`${frame.slice(0, at)}[`);
  for (let i = 0; i < items.length; i += ITEMS_PER_SLICE) {
    if (i > 0) {
      await turn();
      if (stop()) return;
    }
    const slice = items.slice(i, i + ITEMS_PER_SLICE).map((item) => JSON.stringify(item) ?? 'null').join(',');
    sink(i === 0 ? slice : `,${slice}`);
  }
  sink(`]${frame.slice(at + quoted.length)}`);
}

/**
 * The UTF-8 bytes of JSON.stringify(value), in parts to write one after the other, made a slice at a
 * time when the value is (or is a plain object holding at its top level) an array longer than
 * ITEMS_PER_SLICE: the longest such array's items are stringified ITEMS_PER_SLICE per turn of the
 * event loop (stringifyInSlices). The array is copied at the call; its items must not change until
 * the promise resolves. `stop`, asked after each turn, gives null. An API answer with every lease
 * (22,000: ~5 MiB of JSON) held the loop 70-90 ms in one block; the parts are not joined, as copying
 * them into one buffer of that size took another 20-30 ms here.
 */
export async function jsonInSlices(value: unknown, stop: () => boolean = () => false): Promise<Buffer[] | null> {
  const long = longArray(value);
  if (long === null) return [Buffer.from(JSON.stringify(value) ?? 'null', 'utf8')];
  const parts: Buffer[] = [];
  await stringifyInSlices(long.document, long.items, (part) => { parts.push(Buffer.from(part, 'utf8')); }, stop);
  return stop() ? null : parts;
}

/** The bytes of `parts` together. */
export function byteLength(parts: readonly Buffer[]): number {
  let n = 0;
  for (const part of parts) n += part.byteLength;
  return n;
}

/** The array jsonInSlices slices: `value` itself, or its longest top-level array (plain objects only: a class's toJSON decides its own text). */
function longArray(value: unknown): { items: unknown[]; document: (items: unknown) => unknown } | null {
  if (Array.isArray(value)) return value.length > ITEMS_PER_SLICE ? { items: [...value], document: (items) => items } : null;
  if (typeof value !== 'object' || value === null) return null;
  const proto = Object.getPrototypeOf(value) as unknown;
  if (proto !== Object.prototype && proto !== null) return null;
  let key: string | null = null;
  let longest = ITEMS_PER_SLICE;
  for (const [k, v] of Object.entries(value)) {
    if (Array.isArray(v) && v.length > longest) { key = k; longest = v.length; }
  }
  if (key === null) return null;
  const object = value as Record<string, unknown>;
  const name = key;
  // Spreading keeps the keys in their order, the array's key where it was.
  return { items: [...(object[name] as unknown[])], document: (items) => ({ ...object, [name]: items }) };
}
