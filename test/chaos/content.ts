// File contents for the chaos workload, derived from the run seed and the file's label, so a
// failing file can be re-created byte for byte from the seed (`contentOf`) without keeping it.

import {createCipheriv, createHash} from 'node:crypto'
import {createWriteStream} from 'node:fs'
import {once} from 'node:events'

import type {Rng} from './prng.js'

const CHUNK = 1024 * 1024
const ZEROES = Buffer.alloc(CHUNK)

/** The AES-256-CTR keystream for (seed, label): fast, deterministic, incompressible bytes. */
function keystream(seed: number, label: string) {
  const key = createHash('sha256').update(`dfs-chaos:${seed}:${label}`).digest()
  return createCipheriv('aes-256-ctr', key, Buffer.alloc(16))
}

/** Writes the `size` bytes of (seed, label) to `path`; returns their sha256. */
export async function writeContent(path: string, seed: number, label: string, size: number): Promise<string> {
  const cipher = keystream(seed, label)
  const hash = createHash('sha256')
  const out = createWriteStream(path)
  for (let written = 0; written < size; ) {
    const length = Math.min(CHUNK, size - written)
    const chunk = cipher.update(length === CHUNK ? ZEROES : ZEROES.subarray(0, length))
    hash.update(chunk)
    written += length
    if (!out.write(chunk)) await once(out, 'drain')
  }

  out.end()
  await once(out, 'close')
  return hash.digest('hex')
}

/** The sha256 of the content of (seed, label, size), without writing it. */
export function sha256Of(seed: number, label: string, size: number): string {
  const cipher = keystream(seed, label)
  const hash = createHash('sha256')
  for (let done = 0; done < size; ) {
    const length = Math.min(CHUNK, size - done)
    hash.update(cipher.update(length === CHUNK ? ZEROES : ZEROES.subarray(0, length)))
    done += length
  }

  return hash.digest('hex')
}

const KiB = 1024
const MiB = 1024 * 1024

/**
 * A file size: mostly log-uniform between 1 KiB and `maxBytes`, sometimes an edge case (empty,
 * one byte, exactly on or one byte around a 1 MiB chunk or a 4 MiB range boundary).
 */
export function pickSize(rng: Rng, maxBytes: number): number {
  if (rng.chance(0.12)) {
    const edges = [0, 1, 64 * KiB - 1, MiB - 1, MiB, MiB + 1, 4 * MiB - 1, 4 * MiB, 4 * MiB + 1].filter((size) => size <= maxBytes)
    return rng.pick(edges)
  }

  const low = Math.log(KiB)
  const high = Math.log(maxBytes)
  return Math.round(Math.exp(rng.real(low, high)))
}
