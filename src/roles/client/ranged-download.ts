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
   * Bytes of ranges held at once: fetched or being fetched and not yet taken by the consumer, plus
   * the range the consumer holds. At least one range whatever its size. Default 12 MiB.
   */
  maxBuffered?: number
}

/**
 * Default cap on the bytes of ranges in memory, whatever the number of replicas (three 4 MiB ranges:
 * one being written, two being fetched). 1 GiB get, 3 replicas, peak RSS: 8 MiB 121–125 MB,
 * 12 MiB 130–131 MB, 16 MiB 144–162 MB, the old 8 ranges (32 MiB) 161–189 MB; no difference in
 * speed measurable on this 2-core machine, where the client is CPU-bound.
 */
export const MAX_BUFFERED = 12 * 1024 * 1024
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
  /** Why it was dropped, as a code: a replica that sent wrong bytes is not an unreachable one. */
  failedCode?: string
}

/**
 * Downloads a file from all its replicas at once and yields its ranges in order. The file is cut
 * into ranges; each free replica takes the next range, so faster replicas take more. A replica that
 * fails is dropped and its range goes to another. At most `maxBuffered` bytes of ranges are held in
 * memory (counted in whole ranges), never the file: the consumer's pace bounds how far ahead it reads.
 */
export class RangedDownload {
  readonly #options: Required<RangedDownloadOptions>
  readonly #sources: SourceState[]

  constructor(options: RangedDownloadOptions) {
    if (options.sources.length === 0) throw new DfsError('DFS_ERR_NO_KEEPERS', `no alive replica of "${options.name}"`)
    this.#options = {perSource: 2, maxBuffered: MAX_BUFFERED, ...options}
    this.#sources = options.sources.map(({keeper, peer}) => ({keeper, url: peer.baseUrl, peer, bytes: 0, ranges: 0, busy: 0}))
  }

  /** Per replica: bytes and ranges it served, and why it was dropped if it was. */
  get report(): SourceReport[] {
    return this.#sources.map(({busy: _busy, peer: _peer, failedCode: _code, ...report}) => report)
  }

  /**
   * The file's ranges in order, each as the chunks that came off the socket. A range counts against
   * the window until the consumer asks for the next one, so it may write the range it was given
   * before asking (or keep one write in flight: one range more).
   */
  async *ranges(): AsyncGenerator<Buffer[], void, undefined> {
    const {size, rangeSize, maxBuffered} = this.#options
    const count = Math.ceil(size / rangeSize)
    const window = Math.max(1, Math.floor(maxBuffered / rangeSize))
    const done = new Map<number, Buffer[]>()
    const retry: number[] = []
    const inFlight = new Set<Promise<void>>()
    let nextToStart = 0
    let nextToYield = 0

    const start = () => {
      for (;;) {
        const source = this.#freeSource()
        if (!source) return
        retry.sort((a, b) => a - b)
        let index: number | undefined
        if (retry.length > 0) index = retry.shift()
        else if (nextToStart < count && nextToStart < nextToYield + window) index = nextToStart++
        if (index === undefined) return
        const range = index
        const work = this.#fetch(source, range).then(
          (buffer) => void done.set(range, buffer),
          (error: unknown) => {
            source.failed = (error as Error).message
            source.failedCode = (error as {code?: string}).code
            retry.push(range)
          },
        )
        inFlight.add(work)
        void work.finally(() => inFlight.delete(work))
      }
    }

    while (nextToYield < count) {
      const ready = done.get(nextToYield)
      if (ready) {
        done.delete(nextToYield)
        yield ready
        // The consumer is done with that range: its room in the window goes to the next fetch.
        nextToYield++
        start()
        continue
      }

      start()
      if (inFlight.size === 0) {
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
      if (source.failed !== undefined || source.busy >= this.#options.perSource) continue
      if (!best || source.busy < best.busy || (source.busy === best.busy && source.bytes < best.bytes)) best = source
    }

    return best
  }

  /**
   * One range from one replica, checked for length and for being the right generation of the file.
   * Its chunks are kept as they came off the socket, not copied into one buffer.
   */
  async #fetch(source: SourceState, index: number): Promise<Buffer[]> {
    const {name, fileId, size, rangeSize} = this.#options
    const first = index * rangeSize
    const last = Math.min(size, first + rangeSize) - 1
    const input = {params: {name}, query: {fileId}, headers: {range: `bytes=${first}-${last}`}}
    // A keeper may answer a Range over the whole file with the whole file.
    const expect = first === 0 && last === size - 1 ? [206, 200] : [206]
    source.busy++
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
      const chunks: Buffer[] = []
      let received = 0
      for await (const chunk of response.body as AsyncIterable<Buffer>) {
        received += chunk.length
        if (received > expected) throw new DfsError('DFS_ERR_INTEGRITY', `the keeper at ${source.url} sent too many bytes`)
        chunks.push(chunk)
      }

      if (received !== expected) throw new DfsError('DFS_ERR_INTEGRITY', `the keeper at ${source.url} sent ${received} of ${expected} bytes`)
      source.bytes += expected
      source.ranges++
      return chunks
    } finally {
      source.busy--
    }
  }
}
