// Seeded randomness for the chaos run: every decision (what to do, which file, which keeper to
// kill, how long to wait) comes from a PRNG derived from the run's seed, so that `--seed N` makes
// the same decisions again. Independent streams (one per worker, one for the chaos loop) keep one
// stream's sequence from depending on how the others interleave in time.

import {createHash} from 'node:crypto'

/** mulberry32: a tiny 32-bit PRNG, good enough for test decisions (not for cryptography). */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296
  }
}

/** A 32-bit seed derived from a run seed and a label ("worker-1", "chaos"): independent streams. */
export function deriveSeed(seed: number, label: string): number {
  return createHash('sha256').update(`${seed}:${label}`).digest().readUInt32LE(0)
}

export class Rng {
  readonly #next: () => number

  constructor(readonly seed: number) {
    this.#next = mulberry32(seed)
  }

  /** A new independent stream for `label`, the same for the same seed and label. */
  fork(label: string): Rng {
    return new Rng(deriveSeed(this.seed, label))
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.#next()
  }

  /** Uniform integer in [min, max], both included. */
  int(min: number, max: number): number {
    return min + Math.floor(this.#next() * (max - min + 1))
  }

  /** Uniform real in [min, max). */
  real(min: number, max: number): number {
    return min + this.#next() * (max - min)
  }

  chance(probability: number): boolean {
    return this.#next() < probability
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('pick from an empty list')
    return items[Math.floor(this.#next() * items.length)]!
  }

  /** Picks a key of `weights` with probability proportional to its weight. */
  weighted<K extends string>(weights: Record<K, number>): K {
    const entries = Object.entries(weights) as Array<[K, number]>
    const total = entries.reduce((sum, [, weight]) => sum + weight, 0)
    let roll = this.#next() * total
    for (const [key, weight] of entries) {
      roll -= weight
      if (roll < 0) return key
    }

    return entries[entries.length - 1]![0]
  }
}
