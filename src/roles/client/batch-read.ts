import {FrameReader} from '../../lib/frame-reader.js'
import type {SourceReport, WriteAt} from './ranged-download.js'

/**
 * One frame's bytes as the source of a get's download (in place of a RangedDownload: one range,
 * from one replica), so that the file is written, hashed, checked, fsynced and renamed exactly as
 * any get's. `run` takes the frame off the answer (a small file: one buffer's worth) before it
 * writes it, so that the next frame can be read while this file is written and synced.
 */
export class FrameSource {
  readonly rangeCount = 1
  #started = false
  #taken = false
  #resolveRead!: (error: unknown) => void
  /** Settles once the frame is off the answer: undefined, or the error that kept it from being read whole. */
  readonly read: Promise<unknown> = new Promise((resolve) => (this.#resolveRead = resolve))

  constructor(
    readonly reader: FrameReader,
    readonly keeper: string,
    readonly size: number,
    /** The file's other alive replicas, reported as unused (as a single get reports the replicas it did not need). */
    readonly others: ReadonlyArray<{keeper: string; url: string}> = [],
  ) {}

  get started(): boolean {
    return this.#started
  }

  get report(): SourceReport[] {
    const unused = this.others.filter((other) => other.keeper !== this.keeper).map(({keeper, url}) => ({keeper, url, bytes: 0, ranges: 0}))
    return [{keeper: this.keeper, url: this.reader.url, bytes: this.#taken ? this.size : 0, ranges: this.#taken ? 1 : 0}, ...unused]
  }

  async run(write: WriteAt, onDone?: (bytes: number) => void): Promise<void> {
    this.#started = true
    let chunks: Buffer[]
    try {
      chunks = await this.reader.take(this.size)
    } catch (error) {
      this.#resolveRead(error)
      throw error
    }

    this.#taken = true
    this.#resolveRead(undefined)
    if (this.size > 0) await write(chunks, 0)
    onDone?.(this.size)
  }
}
