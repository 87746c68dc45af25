import {randomBytes} from 'node:crypto'
import {channel} from 'node:diagnostics_channel'
import {createWriteStream} from 'node:fs'
import {link, open, rename, rm, type FileHandle} from 'node:fs/promises'
import {basename, dirname, join} from 'node:path'
import type {Readable} from 'node:stream'
import {pipeline} from 'node:stream/promises'

import {DfsError} from './errors.js'
import {HashingStream} from './hashing.js'
import {syncingBehind} from './sync-behind.js'

/** Write chunk size: 64 KiB chunks cap a stream near 340 MB/s on our machines, 1 MiB reaches ~2 GB/s. */
export const CHUNK_SIZE = 1024 * 1024

export interface Expected {
  size: number
  sha256: string
}

/** A small document written beside a blob and made durable with it (a blob's description). */
export interface Companion {
  path: string
  data: string | Buffer
}

/**
 * Streams `source` into a fresh temp file in `tmpDir` while hashing it, checks size and sha256
 * against what was announced, fsyncs, and renames it to `finalPath`. On any failure the temp file
 * is removed and nothing appears at `finalPath`: partial writes never become visible.
 *
 * With a `companion`, that document is written to its own temp file and fsynced while the body
 * streams, renamed into place right after the blob (same directory), and one directory fsync then
 * makes both renames durable. The blob is renamed first, so a crash between the renames, or before
 * the directory fsync, leaves at worst a whole blob without its companion (or, should the disk
 * order the renames otherwise, a companion without its blob): never a companion beside a partial
 * blob, since both were complete and fsynced before either rename.
 *
 * Answers the body's first bytes (HashingStream's `head`).
 */
export async function writeDurably(source: Readable, tmpDir: string, finalPath: string, expected: Expected, companion?: Companion): Promise<{head: Buffer}> {
  const companionTmp = companion && join(tmpDir, `${randomBytes(8).toString('hex')}.part`)
  // Written (and fsynced) while the body streams; awaited, and its failure handled, below.
  const companionWritten = companion && companionTmp ? writeSynced(companionTmp, companion.data) : undefined
  companionWritten?.catch(() => {})
  let spooled: Spooled | undefined
  try {
    spooled = await spoolDurably(source, tmpDir)
    verify(spooled, expected)
    await companionWritten
    await renameDurably(spooled.path, finalPath, companion && companionTmp ? {tmpPath: companionTmp, path: companion.path} : undefined)
    return {head: spooled.head}
  } catch (error) {
    await companionWritten?.catch(() => {})
    if (spooled) await rm(spooled.path, {force: true})
    if (companionTmp) await rm(companionTmp, {force: true})
    throw asStorageError(error)
  }
}

/** A body written whole to a temp file and fsynced, with its size and sha256. */
export interface Spooled {
  path: string
  size: number
  sha256: string
  /** Its first bytes (HashingStream's `head`). */
  head: Buffer
}

/**
 * Streams `source` into a fresh temp file in `tmpDir` while hashing it, and fsyncs it: the first
 * half of writeDurably, for a body whose sha256 is named only after its end (a one-pass upload).
 * On failure the temp file is removed. The caller moves it into place with `placeDurably`, or removes it.
 */
export async function spoolDurably(source: Readable, tmpDir: string): Promise<Spooled> {
  const tmpPath = join(tmpDir, `${randomBytes(8).toString('hex')}.part`)
  try {
    const hashing = new HashingStream()
    // flush: the file is fsynced before the stream closes, and pipeline resolves only after that;
    // a large body's writeback starts while it arrives, so that this fsync is short (sync-behind.ts).
    const file = createWriteStream(tmpPath, {flags: 'wx', flush: true, highWaterMark: CHUNK_SIZE, fs: syncingBehind()})
    // The fsync runs between the last write and the close: that span is its latency (and the close's).
    if (fsyncs.hasSubscribers) file.once('finish', () => void timeFsync(new Promise<void>((resolve) => file.once('close', () => resolve()))))
    await pipeline(source, hashing, file)
    return {path: tmpPath, size: hashing.bytes, sha256: hashing.digest, head: hashing.head}
  } catch (error) {
    await rm(tmpPath, {force: true})
    throw asStorageError(error)
  }
}

/**
 * Moves a spooled, fsynced temp file to `finalPath`, with its companion written durably beside it,
 * as writeDurably does (the same crash guarantees). The temp file stays where it was on failure.
 */
export async function placeDurably(tmpPath: string, finalPath: string, companion: Companion): Promise<void> {
  const companionTmp = join(dirname(tmpPath), `${randomBytes(8).toString('hex')}.part`)
  try {
    await writeSynced(companionTmp, companion.data)
    await renameDurably(tmpPath, finalPath, {tmpPath: companionTmp, path: companion.path})
  } catch (error) {
    await rm(companionTmp, {force: true})
    throw asStorageError(error)
  }
}

/** The blob first, then its companion, then one directory fsync for both renames. */
async function renameDurably(tmpPath: string, finalPath: string, companion?: {tmpPath: string; path: string}): Promise<void> {
  await rename(tmpPath, finalPath)
  if (companion) await rename(companion.tmpPath, companion.path)
  await syncDirectory(dirname(finalPath))
}

/** Writes `data` to a new file at `path` (created with `mode`) and fsyncs it; the file is removed again on failure. */
async function writeSynced(path: string, data: string | Buffer, mode = 0o666): Promise<void> {
  let handle: FileHandle | undefined
  try {
    handle = await open(path, 'wx', mode)
    await handle.writeFile(data)
    await timeFsync(handle.sync())
    await handle.close()
    handle = undefined
  } catch (error) {
    await handle?.close().catch(() => {})
    await rm(path, {force: true})
    throw error
  }
}

/**
 * Writes a small document durably: temp file, fsync, rename, fsync of the directory. Without
 * `syncDirectory`, a crash may leave the document before this write, never a torn one.
 */
export async function writeFileDurably(tmpDir: string, finalPath: string, data: string | Buffer, options: {syncDirectory?: boolean} = {}): Promise<void> {
  const tmpPath = join(tmpDir, `${randomBytes(8).toString('hex')}.part`)
  try {
    await writeSynced(tmpPath, data)
    await rename(tmpPath, finalPath)
    if (options.syncDirectory !== false) await syncDirectory(dirname(finalPath))
  } catch (error) {
    await rm(tmpPath, {force: true})
    throw asStorageError(error)
  }
}

/**
 * Writes a small secret (a key, a token) readable by its owner only (mode 0600): temp file beside
 * it, fsync, then into place and a directory fsync. Unless `replace`, an existing file is kept and
 * the call fails with EEXIST (a link, not a rename, so no other writer is overwritten either).
 * Errors are the file system's, for the caller to word.
 */
export async function writePrivateFile(path: string, data: string, options: {replace: boolean}): Promise<void> {
  const tmpPath = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.part`)
  try {
    await writeSynced(tmpPath, data, 0o600)
    if (options.replace) await rename(tmpPath, path)
    else await link(tmpPath, path)
    await syncDirectory(dirname(path))
  } finally {
    await rm(tmpPath, {force: true})
  }
}

/** Throws DFS_ERR_SIZE_MISMATCH or DFS_ERR_CHECKSUM_MISMATCH unless the received bytes are the announced ones. */
export function verify(received: {size: number; sha256: string}, expected: Expected): void {
  if (received.size !== expected.size) {
    throw new DfsError('DFS_ERR_SIZE_MISMATCH', `received ${received.size} bytes but ${expected.size} were announced`)
  }

  if (received.sha256 !== expected.sha256) {
    throw new DfsError(
      'DFS_ERR_CHECKSUM_MISMATCH',
      `received bytes have sha256 ${received.sha256} but ${expected.sha256} was announced`,
    )
  }
}

interface DirectorySync {
  /** The fsync under way: it may have started before a caller's rename, so it cannot serve new callers. */
  running: Promise<void> | undefined
  /** The fsync that starts when the running one ends; every caller arriving meanwhile shares it. */
  next: Promise<void> | undefined
  /**
   * The directory, opened by the first fsync and kept open while fsyncs follow one another (a
   * stream of small files: an open and a close saved per fsync), closed DIRECTORY_IDLE_MS after
   * the last one ends and after any failed one.
   */
  handle: Promise<FileHandle> | undefined
  idle: NodeJS.Timeout | undefined
}

const directorySyncs = new Map<string, DirectorySync>()
const DIRECTORY_IDLE_MS = 1000

/**
 * A rename is durable only once the directory entry itself is on disk. Concurrent callers share
 * fsyncs (group commit): with none under way one starts at once; while one runs, every caller
 * waits for the single next fsync, which starts after the running one and so covers their renames.
 */
export function syncDirectory(path: string): Promise<void> {
  let state = directorySyncs.get(path)
  if (!state) {
    state = {running: undefined, next: undefined, handle: undefined, idle: undefined}
    directorySyncs.set(path, state)
  }

  if (!state.running) return startDirectorySync(path, state)
  if (!state.next) {
    const current = state
    current.next = current.running!.then(
      () => undefined,
      () => undefined,
    ).then(() => {
      current.next = undefined
      return startDirectorySync(path, current)
    })
  }

  return state.next!
}

function startDirectorySync(path: string, state: DirectorySync): Promise<void> {
  if (state.idle) clearTimeout(state.idle)
  state.idle = undefined
  const sync = fsyncDirectory(path, state).finally(() => {
    if (state.running === sync) state.running = undefined
    if (!state.running && !state.next) closeWhenIdle(path, state)
  })
  state.running = sync
  return sync
}

/** fsync of the directory through its kept handle (opened now if none is); a failure closes the handle. */
async function fsyncDirectory(path: string, state: DirectorySync): Promise<void> {
  const opened = (state.handle ??= open(path, 'r'))
  try {
    await timeFsync((await opened).sync())
  } catch (error) {
    // Never trusted again after a failure: the next fsync opens the directory afresh.
    if (state.handle === opened) state.handle = undefined
    void opened.then((handle) => handle.close()).catch(() => {})
    throw error
  }
}

function closeWhenIdle(path: string, state: DirectorySync): void {
  state.idle = setTimeout(() => {
    state.idle = undefined
    if (state.running || state.next) return
    if (directorySyncs.get(path) === state) directorySyncs.delete(path)
    const opened = state.handle
    state.handle = undefined
    void opened?.then((handle) => handle.close()).catch(() => {})
  }, DIRECTORY_IDLE_MS)
  // A process with nothing else to do exits; its open directory goes with it.
  state.idle.unref()
}

/** fsync of a file, or of a directory (its entries), opened by path. */
export async function fsyncPath(path: string): Promise<void> {
  const handle = await open(path, 'r')
  try {
    await timeFsync(handle.sync())
  } finally {
    await handle.close()
  }
}

/** Where each fsync's seconds are published (`{seconds}`), for a keeper's metrics (metrics.ts). */
export const FSYNC_CHANNEL = 'dfs:fsync'
const fsyncs = channel(FSYNC_CHANNEL)

/** Waits for an fsync under way and, when anyone listens (a keeper's /metrics), publishes how long it took. */
async function timeFsync(sync: Promise<unknown>): Promise<void> {
  if (!fsyncs.hasSubscribers) {
    await sync
    return
  }

  const start = performance.now()
  await sync
  fsyncs.publish({seconds: (performance.now() - start) / 1000})
}

/** Maps disk errors to the catalogue, so that a full or read-only disk reads as such at the client. */
export function asStorageError(error: unknown): unknown {
  const code = (error as {code?: string} | undefined)?.code
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new DfsError('DFS_ERR_INSUFFICIENT_STORAGE', 'the keeper has no space left for this file', {cause: error})
  }

  if (code === 'EROFS' || code === 'EACCES' || code === 'EPERM') {
    return new DfsError('DFS_ERR_INSUFFICIENT_STORAGE', `the keeper cannot write to its disk (${code})`, {cause: error})
  }

  return error
}
