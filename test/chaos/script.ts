// Each worker's whole script, drawn from the seed before anything runs: which operation, on which
// name, with which size and content, and the pause after it. Nothing here looks at what the cluster
// answered, so `--seed N` gives every worker the same script again, whatever happened the first time.

import {pickSize} from './content.js'
import type {Rng} from './prng.js'

export type Wait = '1' | '2' | 'all'

export type ScriptedOp =
  | {kind: 'put'; name: string; label: string; size: number; wait: Wait; pauseMs: number}
  | {kind: 'get'; name: string; rangeSize?: string; pauseMs: number}
  | {kind: 'rm'; name: string; pauseMs: number}

export interface ScriptOptions {
  /** Operations to draw: more than the worker can run before the deadline. */
  ops: number
  maxBytes: number
  /** Names every worker draws from (shared-names mode), so that their operations race. */
  sharedNames: string[]
  /** Chance that an operation is on a shared name rather than on one of the worker's own. */
  sharedChance: number
}

const RANGE_SIZES = ['64KiB', '256KiB', '1MiB', undefined, undefined] as const

/** A name in one of the styles users give files: plain, with spaces, non-ASCII, very long. */
export function styledName(rng: Rng, tag: string): string {
  const style = rng.weighted({plain: 70, spaced: 12, unicode: 10, long: 8})
  if (style === 'spaced') return `clip ${tag} (take 2).mp4`
  if (style === 'unicode') return `vidéo-${tag}-ü·日本.mp4`
  if (style === 'long') return `${'long-name-'.repeat(20)}${tag}.bin`
  return `${tag}.bin`
}

/** The common pool of shared-names mode. */
export function drawSharedNames(rng: Rng, count: number): string[] {
  return Array.from({length: count}, (_, index) => styledName(rng, `shared-${String(index + 1).padStart(2, '0')}`))
}

/**
 * A worker's script. On its own names the worker plays as if every operation succeeded (it gets
 * and removes names it has put, and puts removed names again), so most operations meet a file;
 * when one did not succeed, the next ones on that name simply meet what the cluster really holds.
 */
export function drawScript(rng: Rng, worker: number, options: ScriptOptions): ScriptedOp[] {
  const script: ScriptedOp[] = []
  const present: string[] = []
  const removed: string[] = []
  const generations = new Map<string, number>()
  let sequence = 0
  const pause = () => rng.int(0, 150)
  const put = (name: string, label: string, minSize = 0): ScriptedOp => ({
    kind: 'put',
    name,
    label,
    size: Math.max(minSize, pickSize(rng, options.maxBytes)),
    wait: rng.weighted({'1': 65, all: 25, '2': 10}),
    pauseMs: pause(),
  })
  const get = (name: string): ScriptedOp => ({kind: 'get', name, rangeSize: rng.pick(RANGE_SIZES), pauseMs: pause()})

  for (let index = 0; index < options.ops; index++) {
    if (options.sharedNames.length > 0 && rng.chance(options.sharedChance)) {
      const name = rng.pick(options.sharedNames)
      const kind = rng.weighted({put: 40, get: 40, rm: 20})
      // Racing puts of one name must differ in content, or the oracle could not tell which one
      // won: no empty or one-byte files here (the workers' own names have them).
      if (kind === 'put') script.push(put(name, `${name}#w${worker}.${index}`, 16))
      else if (kind === 'get') script.push(get(name))
      else script.push({kind: 'rm', name, pauseMs: pause()})
      continue
    }

    const kind = present.length === 0 ? 'put' : rng.weighted({put: 50, get: 32, rm: 18})
    if (kind === 'put') {
      const reuse = removed.length > 0 && rng.chance(0.25)
      const name = reuse ? removed.splice(rng.int(0, removed.length - 1), 1)[0]! : styledName(rng, `w${worker}-${String(++sequence).padStart(4, '0')}`)
      const generation = (generations.get(name) ?? 0) + 1
      generations.set(name, generation)
      present.push(name)
      script.push(put(name, `${name}#${generation}`))
    } else if (kind === 'get') {
      script.push(get(rng.pick(present)))
    } else {
      const name = present.splice(rng.int(0, present.length - 1), 1)[0]!
      removed.push(name)
      script.push({kind: 'rm', name, pauseMs: pause()})
    }
  }

  return script
}
