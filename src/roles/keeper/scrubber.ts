import {setTimeout as sleep} from 'node:timers/promises'

import {Throttle} from '../../lib/throttle.js'
import type {Keeper} from './keeper.js'

export interface ScrubberOptions {
  /** Pause between two passes over every stored file. */
  intervalMs: number
  /** Read rate of a pass, so that scrubbing does not starve serving. */
  bytesPerSecond: number
}

/**
 * Re-hashes every stored file in the background (HDFS's block scanner): bit rot, a truncated file
 * or a stray write is found even if no client ever reads the file, and the bad replica is dropped
 * and reported so the master copies a good one back.
 */
export class Scrubber {
  #stopped = false
  #wake = new AbortController()
  passes = 0

  constructor(
    private readonly keeper: Keeper,
    private readonly options: ScrubberOptions,
  ) {}

  start(): void {
    void this.#loop()
  }

  stop(): void {
    this.#stopped = true
    this.#wake.abort()
  }

  async #loop(): Promise<void> {
    while (!this.#stopped) {
      await sleep(this.options.intervalMs, undefined, {signal: this.#wake.signal}).catch(() => {})
      if (this.#stopped) return
      for (const file of this.keeper.store.inventory()) {
        if (this.#stopped) return
        // Deleted or replaced since the pass began: nothing to check.
        if (this.keeper.store.byId(file.fileId) !== file) continue
        try {
          await this.keeper.verifyReplica(file, new Throttle(this.options.bytesPerSecond))
        } catch (error) {
          this.keeper.options.log(`scrubbing "${file.name}" failed: ${(error as Error).message}`)
        }
      }

      this.passes++
    }
  }
}
