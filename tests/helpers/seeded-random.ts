/**
 * Seeded randomness for tests and scripts: every random choice comes from a PRNG whose seed is
 * printed, and an environment variable sets the seed, so a failing run can be replayed exactly
 * (the choices; the machine's timing is not replayed).
 */

/** mulberry32: a small deterministic PRNG returning numbers in [0, 1). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * The seed for `label`: `envVar` when it is set, else `fallback` when given, else a fresh random
 * one. Printed either way with the line that replays it.
 */
export function seedFromEnv(envVar: string, label: string, fallback?: number): number {
  const given = process.env[envVar];
  let seed: number;
  if (given !== undefined && given !== '') {
    seed = Number(given);
    if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new Error(`${envVar}=${given}: not a seed (an integer from 0 to 4294967295)`);
  } else {
    seed = fallback ?? Math.floor(Math.random() * 0x100000000);
  }
  console.log(`${label}: seed ${seed} (replay with ${envVar}=${seed})`);
  return seed;
}

/** Helpers over one PRNG: an integer in [min, max], one of a list. */
export function chooser(random: () => number) {
  return {
    random,
    int: (min: number, max: number): number => min + Math.floor(random() * (max - min + 1)),
    pick: <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)],
    chance: (p: number): boolean => random() < p,
  };
}
