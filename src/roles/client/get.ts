import {randomBytes} from 'node:crypto'
import {createWriteStream} from 'node:fs'
import {mkdir, rename, rm, stat} from 'node:fs/promises'
import {basename, dirname, join, resolve} from 'node:path'
import {Readable, type Writable} from 'node:stream'
import {pipeline} from 'node:stream/promises'

import {CHUNK_SIZE} from '../../lib/durable-file.js'
import {DEFAULTS} from '../../lib/config.js'
import {DfsError} from '../../lib/errors.js'
import {HashingStream} from '../../lib/hashing.js'
import {callJson} from '../../lib/http-client.js'
import type {FileInfo, SuspectVerdict} from '../../lib/protocol.js'
import {statFile} from './admin.js'
import {RangedDownload, type SourceReport} from './ranged-download.js'

export interface GetOptions {
  /** Where to write: a file path, an existing directory, or '-' for stdout. Default: ./NAME. */
  output?: string
  rangeSize?: number
  /** Read from at most this many replicas (all alive ones by default). */
  sources?: number
  stdout?: Writable
}

export interface GetResult {
  name: string
  size: number
  sha256: string
  path: string
  sources: SourceReport[]
  /** Replicas found corrupt on the way (dropped by their keepers and copied again by the master). */
  corruptReplicas: string[]
}

/**
 * Downloads several files into one directory (created if needed), a few at a time. Every name is
 * tried; if any failed, the error names them all.
 */
export async function getFiles(master: string, names: string[], options: GetOptions = {}): Promise<GetResult[]> {
  if (names.length === 1) return [await getFile(master, names[0]!, options)]
  const directory = resolve(options.output ?? '.')
  await mkdir(directory, {recursive: true})
  const results: GetResult[] = []
  const failures: string[] = []
  let next = 0
  const worker = async () => {
    while (next < names.length) {
      const name = names[next++]!
      try {
        results.push(await getFile(master, name, {...options, output: join(directory, name)}))
      } catch (error) {
        failures.push(`${name}: ${(error as Error).message}`)
      }
    }
  }

  await Promise.all(Array.from({length: Math.min(8, names.length)}, worker))
  if (failures.length > 0) {
    throw new DfsError('DFS_ERR_INTEGRITY', `${failures.length} of ${names.length} downloads failed: ${failures.join('; ')}`)
  }

  return results.sort((a, b) => names.indexOf(a.name) - names.indexOf(b.name))
}

/**
 * Downloads a file from every alive replica in parallel, in ranges, into a temp file beside the
 * destination; size and sha256 are checked before the rename, so a wrong or partial download never
 * takes the destination's place. With output '-' the bytes go to stdout as they arrive, in order.
 */
export async function getFile(master: string, name: string, options: GetOptions = {}): Promise<GetResult> {
  const corrupt = new Set<string>()
  for (let attempt = 1; ; attempt++) {
    const info = await statFile(master, name)
    try {
      return {...(await download(info, options, corrupt)), corruptReplicas: [...corrupt]}
    } catch (error) {
      // Bytes that do not match the master's sha256 came from a bad replica (or were damaged on the
      // way): report every replica read from, let the master have each verified, and read again
      // from the good ones. Bytes already written to stdout cannot be taken back.
      if (options.output === '-' || attempt >= MAX_ATTEMPTS) throw error
      // Every replica read from failed (killed, or trimmed meanwhile): ask the master again.
      if (error instanceof DfsError && error.code === 'DFS_ERR_KEEPER_UNREACHABLE') continue
      if (!(error instanceof IntegrityError)) throw error
      const verdicts = await Promise.all(error.sources.map((keeper) => reportSuspect(master, info, keeper)))
      for (const verdict of verdicts) if (verdict.corrupt) corrupt.add(verdict.keeper)
    }
  }
}

// A download is tried again after a checksum mismatch, at most this many times in all.
const MAX_ATTEMPTS = 3

/** A finished download whose bytes did not match, with the replicas that served them. */
class IntegrityError extends DfsError {
  constructor(
    message: string,
    readonly sources: string[],
  ) {
    super('DFS_ERR_INTEGRITY', message)
  }
}

async function reportSuspect(master: string, info: FileInfo, keeper: string): Promise<SuspectVerdict> {
  try {
    return await callJson<SuspectVerdict>('master', master, `/files/${encodeURIComponent(info.name)}/suspect`, {body: {keeperId: keeper, fileId: info.fileId}})
  } catch {
    return {keeper, corrupt: false}
  }
}

async function download(info: FileInfo, options: GetOptions, exclude: ReadonlySet<string>): Promise<Omit<GetResult, 'corruptReplicas'>> {
  const alive = info.replicas.filter((replica) => replica.alive && !exclude.has(replica.keeper))
  if (alive.length === 0) throw new DfsError('DFS_ERR_NO_KEEPERS', `no alive keeper holds a good replica of "${info.name}" right now`)
  const sources = shuffle(alive).slice(0, options.sources ?? alive.length)
  const download = new RangedDownload({
    name: info.name,
    fileId: info.fileId,
    size: info.size,
    sources: sources.map((replica) => ({keeper: replica.keeper, url: replica.url})),
    rangeSize: options.rangeSize ?? DEFAULTS.rangeSize,
  })

  if (options.output === '-') {
    const hashing = await copyVerified(download, info, options.stdout ?? process.stdout)
    return {name: info.name, size: hashing.bytes, sha256: hashing.digest, path: '-', sources: download.report}
  }

  const path = await destinationPath(options.output, info.name)
  const tmpPath = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.dfs-part`)
  try {
    await copyVerified(download, info, createWriteStream(tmpPath, {flags: 'wx', flush: true, highWaterMark: CHUNK_SIZE}))
    await rename(tmpPath, path)
  } catch (error) {
    await rm(tmpPath, {force: true})
    const code = (error as {code?: string}).code
    if (code && !(error instanceof DfsError)) {
      throw new DfsError('DFS_ERR_LOCAL_FILE', `cannot write ${path}: ${(error as Error).message}`, {cause: error})
    }

    throw error
  }

  return {name: info.name, size: info.size, sha256: info.sha256, path, sources: download.report}
}

async function copyVerified(download: RangedDownload, info: FileInfo, destination: Writable): Promise<HashingStream> {
  const hashing = new HashingStream()
  await pipeline(Readable.from(download.chunks(), {objectMode: false}), hashing, destination, {end: destination !== process.stdout})
  if (hashing.bytes !== info.size || hashing.digest !== info.sha256) {
    const sources = download.report.filter((source) => source.ranges > 0).map((source) => source.keeper)
    throw new IntegrityError(`downloaded "${info.name}" does not match the master's record (${hashing.bytes} bytes, sha256 ${hashing.digest})`, sources)
  }

  return hashing
}

async function destinationPath(output: string | undefined, name: string): Promise<string> {
  // "downloads/" names a directory, made if needed.
  if (output !== undefined && /[/\\]$/.test(output)) {
    await mkdir(output, {recursive: true})
    return join(resolve(output), name)
  }

  const path = resolve(output ?? name)
  const info = await stat(path).catch(() => undefined)
  return info?.isDirectory() ? join(path, name) : path
}

function shuffle<T>(items: T[]): T[] {
  const copy = [...items]
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1))
    ;[copy[i], copy[j]] = [copy[j]!, copy[i]!]
  }

  return copy
}
