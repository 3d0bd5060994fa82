import { randomBytes, randomInt } from 'node:crypto';

// Randomness is injected: production uses the OS CSPRNG, tests and the simulator a seeded PRNG so a
// failing seed replays exactly.
export interface Random {
  /** An integer in [0, bound). */
  int(bound: number): number;
  /** A float in [0, 1). */
  float(): number;
  bytes(count: number): Uint8Array;
}

export const cryptoRandom: Random = {
  int: (bound) => (bound <= 1 ? 0 : randomInt(bound)),
  float: () => randomInt(2 ** 48) / 2 ** 48,
  bytes: (count) => new Uint8Array(randomBytes(count)),
};

/** xoshiro128** seeded through splitmix32: fast, small state, good enough for simulation. */
export function seededRandom(seed: number): Random {
  let s = seed >>> 0;
  const split = (): number => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
  let a = split(), b = split(), c = split(), d = split();
  const next = (): number => {
    const result = Math.imul(rotl(Math.imul(b, 5) >>> 0, 7), 9) >>> 0;
    const t = (b << 9) >>> 0;
    c ^= a; d ^= b; b ^= c; a ^= d;
    c ^= t;
    d = rotl(d, 11);
    return result;
  };
  const float = (): number => next() / 2 ** 32;
  return {
    int: (bound) => (bound <= 1 ? 0 : Math.floor(float() * bound)),
    float,
    bytes: (count) => {
      const out = new Uint8Array(count);
      for (let i = 0; i < count; i++) out[i] = next() & 0xff;
      return out;
    },
  };
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
