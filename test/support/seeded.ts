import { seededRandom, type Random } from '../../lib/random.js';

// Seeds for property and simulation tests. LANHA_SEED=n replays one seed; otherwise seeds run from a
// base so every CI run covers the same ground. A failure message must print its seed.
export function seedFromEnv(fallback: number): number {
  const text = process.env['LANHA_SEED'];
  if (text === undefined || text === '') return fallback;
  const n = Number(text);
  if (!Number.isInteger(n)) throw new Error(`LANHA_SEED=${text} is not an integer`);
  return n >>> 0;
}

/** The seeds a test should run: just LANHA_SEED when set, else `count` seeds from `base`. */
export function seedsToRun(count: number, base = 1): number[] {
  const one = process.env['LANHA_SEED'];
  if (one !== undefined && one !== '') return [seedFromEnv(base)];
  return Array.from({ length: count }, (_, i) => base + i);
}

export function randomFor(seed: number): Random {
  return seededRandom(seed);
}
