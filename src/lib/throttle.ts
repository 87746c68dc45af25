import {Transform, type TransformCallback} from 'node:stream'
import {setTimeout as sleep} from 'node:timers/promises'

/**
 * Passes bytes through at no more than `bytesPerSecond`, so background work (the scrubber) leaves
 * the disk to the reads and writes that users wait for.
 */
export class Throttle extends Transform {
  readonly #started = Date.now()
  #bytes = 0

  constructor(private readonly bytesPerSecond: number) {
    super()
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#bytes += chunk.length
    const due = (this.#bytes / this.bytesPerSecond) * 1000 - (Date.now() - this.#started)
    if (due <= 0) return callback(null, chunk)
    sleep(due).then(() => callback(null, chunk), callback)
  }
}
