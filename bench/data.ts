// Test data: random bytes written in 1 MiB chunks (never a whole file in memory), hashed as they
// are written so that every download can be checked against the original.

import {createHash, randomBytes, randomFill} from 'node:crypto'
import {createReadStream} from 'node:fs'
import {mkdir, open} from 'node:fs/promises'
import {join} from 'node:path'
import {promisify} from 'node:util'

const CHUNK = 1024 * 1024
const fill = promisify(randomFill)

export interface DataFile {
  /** Absolute path. */
  path: string
  /** Base name, which is also its dfs name. */
  name: string
  size: number
  sha256: string
}

/** Writes `size` random bytes to `path`, 1 MiB at a time, and fsyncs it. */
export async function generateFile(path: string, size: number): Promise<DataFile> {
  const hash = createHash('sha256')
  const handle = await open(path, 'wx')
  try {
    const chunk = Buffer.allocUnsafe(Math.min(CHUNK, size))
    for (let written = 0; written < size; ) {
      const length = Math.min(CHUNK, size - written)
      const view = chunk.subarray(0, length)
      await fill(view)
      hash.update(view)
      await handle.write(view, 0, length)
      written += length
    }

    await handle.sync()
  } finally {
    await handle.close()
  }

  return {path, name: path.split('/').pop()!, size, sha256: hash.digest('hex')}
}

/** `count` random files of `size` bytes each, named `${prefix}-00001.bin`… in `dir`. */
export async function generateFiles(dir: string, prefix: string, count: number, size: number): Promise<DataFile[]> {
  await mkdir(dir, {recursive: true})
  const digits = String(count).length
  const files: DataFile[] = []
  for (let index = 1; index <= count; index++) {
    const name = `${prefix}-${String(index).padStart(digits, '0')}.bin`
    const path = join(dir, name)
    if (size <= CHUNK) {
      const bytes = randomBytes(size)
      const handle = await open(path, 'wx')
      await handle.writeFile(bytes)
      await handle.close()
      files.push({path, name, size, sha256: createHash('sha256').update(bytes).digest('hex')})
    } else {
      files.push(await generateFile(path, size))
    }
  }

  return files
}

/** sha256 of a file, read as a stream. */
export async function hashFile(path: string): Promise<{size: number; sha256: string}> {
  const hash = createHash('sha256')
  let size = 0
  for await (const chunk of createReadStream(path, {highWaterMark: CHUNK}) as AsyncIterable<Buffer>) {
    hash.update(chunk)
    size += chunk.length
  }

  return {size, sha256: hash.digest('hex')}
}

/** Throws unless the file at `path` has exactly the bytes of `expected`. */
export async function verifyFile(path: string, expected: DataFile, what: string): Promise<void> {
  const actual = await hashFile(path)
  if (actual.size !== expected.size || actual.sha256 !== expected.sha256) {
    throw new Error(`${what}: ${path} has ${actual.size} bytes, sha256 ${actual.sha256}; expected ${expected.size} bytes, ${expected.sha256}`)
  }
}

export const MiB = 1024 * 1024
export const GiB = 1024 * MiB

/** "1GiB", "16MiB", "512k", "1000" → bytes. */
export function parseSize(text: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?$/i.exec(text.trim())
  if (!match) throw new Error(`"${text}" is not a size: use 1GiB, 256MiB, 64KiB or a number of bytes`)
  const unit = {'': 1, k: 1024, m: MiB, g: GiB, t: 1024 * GiB}[match[2]!.toLowerCase() as '' | 'k' | 'm' | 'g' | 't']
  const bytes = Math.round(Number(match[1]) * unit)
  if (bytes <= 0) throw new Error(`a size must be more than zero, not "${text}"`)
  return bytes
}

/** Bytes for people: 1 GiB, 256 MiB, 64 KiB. */
export function formatSize(bytes: number): string {
  for (const [unit, factor] of [['GiB', GiB], ['MiB', MiB], ['KiB', 1024]] as const) {
    if (bytes >= factor) {
      const value = bytes / factor
      return `${Number.isInteger(value) ? value : value.toFixed(1)} ${unit}`
    }
  }

  return `${bytes} B`
}
