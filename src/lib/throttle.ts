import {Transform, type TransformCallback} from 'node:stream'
import {setTimeout as sleep} from 'node:timers/promises'

/** Where a Throttle reads the time and waits: the real clock, or a test's. */
export interface Clock {
  now(): number
  sleep(ms: number): Promise<void>
}

const REAL_CLOCK: Clock = {now: () => Date.now(), sleep: (ms) => sleep(ms)}

/**
 * How long to hold back a chunk so that the `bytes` passed so far, this chunk included, are no
 * more than `bytesPerSecond` allows in `elapsedMs` since the start (0: pass it now).
 */
export function throttleDelay(bytes: number, elapsedMs: number, bytesPerSecond: number): number {
  return Math.max(0, (bytes / bytesPerSecond) * 1000 - elapsedMs)
}

/**
 * Passes bytes through at no more than `bytesPerSecond`, so background work (the scrubber) leaves
 * the disk to the reads and writes that users wait for.
 */
export class Throttle extends Transform {
  readonly #clock: Clock
  readonly #started: number
  #bytes = 0

  constructor(
    private readonly bytesPerSecond: number,
    clock: Clock = REAL_CLOCK,
  ) {
    super()
    this.#clock = clock
    this.#started = clock.now()
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    const due = throttleDelay(this.#bytes + chunk.length, this.#clock.now() - this.#started, this.bytesPerSecond)
    const pass = () => {
      this.#bytes += chunk.length
      callback(null, chunk)
    }

    if (due <= 0) return pass()
    this.#clock.sleep(due).then(pass, callback)
  }
}
