import {cpus} from 'node:os'
import {performance} from 'node:perf_hooks'

import {DEFAULTS} from '../../lib/config.js'
import {DfsError} from '../../lib/errors.js'
import type {Peer} from '../../lib/peer-client.js'
import {FILE_ID_HEADER, keeperRoutes} from '../../lib/protocol.js'

export interface Source {
  /** The keeper's id. */
  keeper: string
  peer: Peer
}

export interface RangedDownloadOptions {
  name: string
  fileId: string
  size: number
  sources: Source[]
  /** Bytes per range request. */
  rangeSize: number
  /** Range requests under way at once against one replica. */
  perSource?: number
  /**
   * How far past the first unfinished range a range may start, in bytes (at least one range):
   * bounds how sparse the file gets while a slow replica holds an early range. Default 64 MiB.
   */
  maxAhead?: number
  /** How the sources in use are chosen as the download goes (chooseSources; a test may force a choice). */
  choose?: typeof chooseSources
}

/**
 * Writes the chunks at `position` of the file. Several ranges write at once, each at its place;
 * one range waits for its previous write before the next, which is the backpressure on its socket.
 */
export type WriteAt = (chunks: Buffer[], position: number) => Promise<void>

/**
 * Ranges are written as they arrive, in any order, so memory does not hold ranges waiting for an
 * earlier one; it holds at most two write batches (WRITE_BATCH) per request under way. The window
 * only bounds how far ahead of the first unfinished range requests go.
 */
export const MAX_AHEAD = 64 * 1024 * 1024
/** Bytes gathered off one socket before they are written: ~1 MiB writevs cost less system time than 64 KiB ones or 4 MiB ones. */
export const WRITE_BATCH = 1024 * 1024
// A replica cut off in the middle of a range sends nothing more and closes nothing (its packets
// are lost, not refused): after this long without a byte its range goes to another replica,
// instead of waiting undici's 300 s.
export const RANGE_STALL_TIMEOUT_MS = DEFAULTS.stallTimeoutMs

export interface SourceReport {
  keeper: string
  url: string
  bytes: number
  ranges: number
  failed?: string
}

interface SourceState extends SourceReport {
  peer: Peer
  busy: number
  /** Left unused for now: the client's own CPU, not the replicas, was what held the download back. */
  standby: boolean
  /** Time its finished ranges took, each from request to last write. */
  ms: number
  /** Why it was dropped, as a code: a replica that sent wrong bytes is not an unreachable one. */
  failedCode?: string
}

/** A failure to write the local file: it ends the download, since no other replica can help. */
class LocalWriteError extends Error {
  constructor(readonly error: unknown) {
    super('local write failed')
  }
}

/**
 * Downloads a file from its replicas into the caller's file, range by range. The file is cut into
 * ranges; each free replica in use takes the next range, so faster replicas take more. Each range
 * is written at its place as its bytes arrive, whatever the order of the ranges. All replicas start;
 * every few ranges chooseSources weighs how busy the client was (BusyMeter: this thread, and this
 * machine's CPUs): a client whose CPU is the limit goes on with the fastest replica alone (more
 * would only cost it, and the keepers, CPU), one that waits takes another back. A replica that
 * fails is dropped and its range goes to another (written again from its start), a standby one if
 * none in use is left.
 */
export class RangedDownload {
  readonly #options: Required<RangedDownloadOptions>
  readonly #sources: SourceState[]

  constructor(options: RangedDownloadOptions) {
    if (options.sources.length === 0) throw new DfsError('DFS_ERR_NO_KEEPERS', `no alive replica of "${options.name}"`)
    this.#options = {perSource: 2, maxAhead: MAX_AHEAD, choose: chooseSources, ...options}
    this.#sources = options.sources.map(({keeper, peer}) => ({keeper, url: peer.baseUrl, peer, bytes: 0, ranges: 0, busy: 0, standby: false, ms: 0}))
  }

  /** The number of range requests the file takes (without retries). */
  get rangeCount(): number {
    return Math.ceil(this.#options.size / this.#options.rangeSize)
  }

  /** Per replica: bytes and ranges it served, and why it was dropped if it was. */
  get report(): SourceReport[] {
    return this.#sources.map(({busy: _busy, peer: _peer, failedCode: _code, standby: _standby, ms: _ms, ...report}) => report)
  }

  /**
   * Fetches every range and hands its bytes to `write`. `onDone(bytes)` is told each time the
   * file's first `bytes` are written (their writes finished) and will not be written again.
   * A failed write ends the download with that write's error.
   */
  async run(write: WriteAt, onDone?: (bytes: number) => void): Promise<void> {
    const {size, rangeSize, maxAhead} = this.#options
    const count = this.rangeCount
    const window = Math.max(1, Math.floor(maxAhead / rangeSize))
    const finished = new Set<number>()
    const retry: number[] = []
    const inFlight = new Set<Promise<void>>()
    let nextToStart = 0
    // Every range before this one is finished.
    let firstUnfinished = 0
    let writeFailure: LocalWriteError | undefined
    // How busy the client was since the sources were last chosen, and over how many ranges.
    const meter = new BusyMeter()
    let rangesSinceMark = 0
    const rechoose = () => {
      const inUse = this.#sources.filter((source) => !source.standby && source.failed === undefined).length
      // Every source in use finished a couple of ranges: their first request's wait is not the measure.
      if (++rangesSinceMark < 2 * Math.max(1, inUse)) return
      rangesSinceMark = 0
      this.#options.choose(meter.read(), this.#sources)
    }

    const start = () => {
      for (;;) {
        if (writeFailure) return
        const source = this.#freeSource()
        if (!source) {
          // Every source in use failed: a standby one takes over.
          if (this.#sources.some((source) => !source.standby && source.failed === undefined)) return
          const standby = this.#sources.find((source) => source.standby && source.failed === undefined)
          if (!standby) return
          standby.standby = false
          continue
        }

        retry.sort((a, b) => a - b)
        let index: number | undefined
        if (retry.length > 0) index = retry.shift()
        else if (nextToStart < count && nextToStart < firstUnfinished + window) index = nextToStart++
        if (index === undefined) return
        const range = index
        const work = this.#fetch(source, range, write).then(
          () => {
            finished.add(range)
            rechoose()
          },
          (error: unknown) => {
            if (error instanceof LocalWriteError) {
              writeFailure ??= error
              return
            }

            source.failed = (error as Error).message
            source.failedCode = (error as {code?: string}).code
            retry.push(range)
          },
        )
        inFlight.add(work)
        void work.finally(() => inFlight.delete(work))
      }
    }

    while (firstUnfinished < count) {
      if (finished.has(firstUnfinished)) {
        while (finished.delete(firstUnfinished)) firstUnfinished++
        onDone?.(Math.min(size, firstUnfinished * rangeSize))
        continue
      }

      start()
      if (inFlight.size === 0) {
        if (writeFailure) throw writeFailure.error
        const reasons = this.#sources.map((source) => `${source.keeper}: ${source.failed ?? 'unused'}`).join('; ')
        const lied = this.#sources.every((source) => source.failedCode === 'DFS_ERR_INTEGRITY')
        throw new DfsError(lied ? 'DFS_ERR_INTEGRITY' : 'DFS_ERR_KEEPER_UNREACHABLE', `every replica of "${this.#options.name}" failed (${reasons})`)
      }

      await Promise.race(inFlight)
    }
  }

  #freeSource(): SourceState | undefined {
    let best: SourceState | undefined
    for (const source of this.#sources) {
      if (source.failed !== undefined || source.standby || source.busy >= this.#options.perSource) continue
      if (!best || source.busy < best.busy || (source.busy === best.busy && source.bytes < best.bytes)) best = source
    }

    return best
  }

  /**
   * One range from one replica into the file, checked for length and for being the right
   * generation of the file. Its chunks are written as they came off the socket, in batches of
   * about WRITE_BATCH, one write in flight; the range is done when its last write is.
   */
  async #fetch(source: SourceState, index: number, write: WriteAt): Promise<void> {
    const {name, fileId, size, rangeSize} = this.#options
    const first = index * rangeSize
    const last = Math.min(size, first + rangeSize) - 1
    const input = {params: {name}, query: {fileId}, headers: {range: `bytes=${first}-${last}`}}
    // A keeper may answer a Range over the whole file with the whole file.
    const expect = first === 0 && last === size - 1 ? [206, 200] : [206]
    let writing: Promise<void> | undefined
    // Waits for the write under way; its failure is the disk's, not the replica's.
    const written = async () => {
      try {
        await writing
      } catch (error) {
        throw new LocalWriteError(error)
      }
    }

    source.busy++
    const started = performance.now()
    try {
      const response = await source.peer.open(keeperRoutes.read, input, {expect, timeout: RANGE_STALL_TIMEOUT_MS})
      if (response.headers[FILE_ID_HEADER] !== fileId) {
        await response.body.dump()
        throw new DfsError('DFS_ERR_INTEGRITY', `the keeper at ${source.url} served another generation of "${name}"`)
      }

      // Right length, wrong place: bytes of another range would pass every length check.
      const contentRange = response.headers['content-range']
      if (response.statusCode === 206 && contentRange !== `bytes ${first}-${last}/${size}`) {
        await response.body.dump()
        throw new DfsError('DFS_ERR_INTEGRITY', `the keeper at ${source.url} answered bytes ${first}-${last} with ${contentRange ? `range ${String(contentRange)}` : 'no Content-Range'}`)
      }

      const expected = last - first + 1
      let batch: Buffer[] = []
      let batchBytes = 0
      let position = first
      const flush = async () => {
        await written()
        writing = write(batch, position)
        position += batchBytes
        batch = []
        batchBytes = 0
      }

      for await (const chunk of response.body as AsyncIterable<Buffer>) {
        if (position + batchBytes + chunk.length > last + 1) throw new DfsError('DFS_ERR_INTEGRITY', `the keeper at ${source.url} sent too many bytes`)
        batch.push(chunk)
        batchBytes += chunk.length
        if (batchBytes >= WRITE_BATCH) await flush()
      }

      if (batchBytes > 0) await flush()
      await written()
      const received = position - first
      if (received !== expected) throw new DfsError('DFS_ERR_INTEGRITY', `the keeper at ${source.url} sent ${received} of ${expected} bytes`)
      source.bytes += expected
      source.ranges++
      source.ms += performance.now() - started
    } finally {
      // A write still under way must land before the range is tried again, or it could land after
      // the retry's bytes. Its own failure was not the question here.
      await writing?.catch(() => {})
      source.busy--
    }
  }
}

/**
 * How busy the client was since the last reading, 0..1: the larger of its main thread's share of
 * time busy and its machine's CPUs' (cpus(): the hashing worker, other processes). Why the machine
 * too: with a large file's sha256 in a worker the main thread is seldom busy to the limit while the
 * CPUs are, and where the keepers share the client's machine (a test or a bench cluster on one
 * host) their serving of more replicas costs the same CPUs; a client on its own idle machine reads
 * only its thread's share.
 */
export class BusyMeter {
  #loop = performance.eventLoopUtilization()
  #cpu = cpuTimes()

  read(): number {
    const loop = performance.eventLoopUtilization(this.#loop).utilization
    const cpu = cpuTimes()
    this.#loop = performance.eventLoopUtilization()
    const machine = machineBusy(this.#cpu, cpu)
    this.#cpu = cpu
    return Math.max(loop, machine)
  }
}

export interface CpuTimes {
  /** Milliseconds idle, over every CPU. */
  idle: number
  /** Milliseconds in all, over every CPU. */
  total: number
}

function cpuTimes(): CpuTimes {
  let idle = 0
  let total = 0
  for (const {times} of cpus()) {
    idle += times.idle
    total += times.user + times.nice + times.sys + times.idle + times.irq
  }

  return {idle, total}
}

/** The CPUs' busy share between two readings, 0..1 (0 when no time passed, as it may between readings 10 ms apart). */
export function machineBusy(before: CpuTimes, after: CpuTimes): number {
  const total = after.total - before.total
  return total > 0 ? Math.min(1, Math.max(0, 1 - (after.idle - before.idle) / total)) : 0
}

/** Above this share of its time busy, the client's CPU is what limits the download. */
export const CLIENT_BOUND = 0.85
/** Below this share, it mostly waits for the replicas' bytes. */
export const CLIENT_WAITING = 0.5

export interface SourceChoice {
  bytes: number
  ms: number
  standby: boolean
  failed?: string
}

/**
 * Chooses the sources to read from, by how busy the client was (`busy`, 0..1, BusyMeter) while they
 * served: when the client's CPU was the limit, more replicas only add sockets, out-of-order writes and
 * the keepers' CPU, so the download keeps the fastest one alone; when it mostly waited, one more
 * replica (the one that took least time so far) is taken in. Marks `standby` in place.
 */
export function chooseSources(busy: number, sources: SourceChoice[]): void {
  const usable = sources.filter((source) => source.failed === undefined)
  const inUse = usable.filter((source) => !source.standby)
  if (busy >= CLIENT_BOUND && inUse.length > 1) {
    const rate = (source: SourceChoice) => (source.ms > 0 ? source.bytes / source.ms : 0)
    const fastest = inUse.reduce((best, source) => (rate(source) > rate(best) ? source : best))
    for (const source of inUse) source.standby = source !== fastest
  } else if (busy < CLIENT_WAITING) {
    const next = usable.filter((source) => source.standby).sort((a, b) => a.ms - b.ms)[0]
    if (next) next.standby = false
  }
}
