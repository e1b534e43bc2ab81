/**
 * @module Message ids: short, time-ordered, unique across restarts (time + counter + random).
 * They never encode mutable state such as a retry schedule (STYLE.md convention 8).
 */

/** Returns a generator of ids like "mhx3k2a9c00q4f7z": base-36 ms time, a counter, randomness. */
export function createIdGenerator(now: () => number, random: () => number = Math.random): () => string {
  let lastMs = -1;
  let counter = 0;
  return () => {
    const ms = now();
    counter = ms === lastMs ? counter + 1 : 0;
    lastMs = ms;
    const rand = Math.floor(random() * 36 ** 4).toString(36).padStart(4, '0');
    return `${ms.toString(36).padStart(9, '0')}${(counter % 36 ** 3).toString(36).padStart(3, '0')}${rand}`;
  };
}
