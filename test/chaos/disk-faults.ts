// Damage done to keepers' disks from outside, as bit rot and a filling disk would: bytes flipped in
// a stored blob, and a small disk (a tmpfs) filled up by something else.

import {execFileSync} from 'node:child_process'
import {mkdir, open, readdir, readFile, rm, stat, statfs} from 'node:fs/promises'
import {dirname, join} from 'node:path'
import type {TestContext} from 'node:test'

import {sha256File, tempDir} from '../helpers/cluster.js'
import {skipOrFail} from '../helpers/skip.js'

/** A blob on a keeper's disk with its description (as file-store.ts writes them). */
export interface Blob {
  fileId: string
  path: string
  name?: string
  size?: number
  sha256?: string
  /** The upload's commit had no answer: the keeper waits for the master's word on it. */
  undecided: boolean
  /** No readable description beside the blob. */
  described: boolean
}

/** Every blob in a keeper's data dir, by file id; descriptions without a blob are left out. */
export async function blobsIn(dataDir: string): Promise<Blob[]> {
  const dir = join(dataDir, 'blobs')
  const entries = new Set(await readdir(dir).catch(() => [] as string[]))
  const blobs: Blob[] = []
  for (const entry of [...entries].sort()) {
    if (entry.endsWith('.json')) continue
    const path = join(dir, entry)
    let description: {name?: string; size?: number; sha256?: string; undecided?: boolean} | undefined
    // An upload whose commit had no answer is described at <fileId>.undecided.json (or, as keepers
    // wrote it before, with the mark inside <fileId>.json); a decided description stands.
    const marked = !entries.has(`${entry}.json`) && entries.has(`${entry}.undecided.json`)
    try {
      description = JSON.parse(await readFile(`${path}${marked ? '.undecided.json' : '.json'}`, 'utf8')) as typeof description
    } catch {
      description = undefined
    }

    blobs.push({fileId: entry, path, name: description?.name, size: description?.size, sha256: description?.sha256, undecided: marked || description?.undecided === true, described: description !== undefined})
  }

  return blobs
}

/** Files in a keeper's tmp/: uploads and copies under way. */
export async function transfersIn(dataDir: string): Promise<string[]> {
  return readdir(join(dataDir, 'tmp')).catch(() => [] as string[])
}

/** Flips the byte at each offset (fractions of the size, deduplicated): bit rot the scrubber must find. */
export async function flipBytes(path: string, size: number, at: number[]): Promise<number[]> {
  const offsets = [...new Set(at.map((fraction) => Math.min(size - 1, Math.floor(fraction * size))))].sort((a, b) => a - b)
  await flipBytesAt(path, offsets)
  return offsets
}

/** Flips one byte every `step` bytes of a stored replica, as bit rot would. */
export async function flipEvery(path: string, step: number): Promise<void> {
  const {size} = await stat(path)
  const offsets: number[] = []
  for (let offset = 17; offset < size; offset += step) offsets.push(offset)
  await flipBytesAt(path, offsets)
}

async function flipBytesAt(path: string, offsets: number[]): Promise<void> {
  const handle = await open(path, 'r+')
  try {
    const byte = Buffer.alloc(1)
    for (const offset of offsets) {
      await handle.read(byte, 0, 1, offset)
      byte[0] = byte[0]! ^ 0xff
      await handle.write(byte, 0, 1, offset)
    }
  } finally {
    await handle.close()
  }
}

/** Whether the blob at `path` is gone or holds `sha256` again (dropped, or copied back good). */
export async function blobIsGoodOrGone(path: string, sha256: string): Promise<boolean> {
  try {
    return (await sha256File(path)) === sha256
  } catch (error) {
    if ((error as {code?: string}).code === 'ENOENT') return true
    throw error
  }
}

/** A tmpfs mounted in a temp dir of its own, for one keeper's data dir. */
export interface SmallDisk {
  path: string
  /** A scratch dir on the ordinary disk, removed with the small one. */
  scratch: string
  /** Unmounts the disk and removes its mount point; call once whatever used it has stopped. */
  release(): Promise<void>
}

/**
 * A tmpfs of `bytes` in a temp dir, so that one keeper's disk can really fill up; undefined where
 * it cannot be mounted (it needs root): the test is then skipped, or fails under CI.
 */
export async function mountSmallDisk(t: TestContext, bytes: number): Promise<SmallDisk | undefined> {
  const scratch = await tempDir()
  const path = join(scratch, 'small-disk')
  await mkdir(path)
  const why = mountTmpfs(path, bytes)
  if (why !== undefined) {
    await rm(scratch, {recursive: true, force: true})
    skipOrFail(t, `mounting a small tmpfs needs root: ${why}`)
    return undefined
  }

  return {
    path,
    scratch,
    async release() {
      unmountSmallDisk(path)
      await rm(scratch, {recursive: true, force: true})
    },
  }
}

/** Mounts a tmpfs of `bytes` at `path` (an existing empty directory). Returns why it could not, or undefined once mounted. */
export function mountTmpfs(path: string, bytes: number): string | undefined {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${bytes}`, 'tmpfs', path], {stdio: ['ignore', 'ignore', 'pipe']})
    return undefined
  } catch (error) {
    const stderr = (error as {stderr?: Buffer}).stderr?.toString().trim()
    return stderr || (error as Error).message
  }
}

export function unmountSmallDisk(path: string): void {
  // Lazy: a process that still holds a file there does not keep the mount alive.
  execFileSync('umount', ['-l', path], {stdio: 'ignore'})
}

/** Fills the disk holding `path` with a file of zeroes, leaving about `leaveBytes` free. */
export async function fillDisk(path: string, leaveBytes: number): Promise<number> {
  const stats = await statfs(dirname(path))
  const free = Number(stats.bavail) * Number(stats.bsize)
  const chunk = Buffer.alloc(1024 * 1024)
  const handle = await open(path, 'w')
  let written = 0
  try {
    while (written < free - leaveBytes) {
      const length = Math.min(chunk.length, free - leaveBytes - written)
      try {
        await handle.write(chunk, 0, length)
      } catch (error) {
        // The keeper wrote meanwhile: the disk is full all the same.
        if ((error as {code?: string}).code === 'ENOSPC') break
        throw error
      }

      written += length
    }
  } finally {
    await handle.close()
  }

  return written
}

export async function freeDisk(path: string): Promise<void> {
  await rm(path, {force: true})
}
