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
      const files = this.keeper.store.inventory()
      // A line at each end of a pass: how far the scrubber got, and whether it keeps up with the disk.
      const pass = this.passes + 1
      const started = Date.now()
      const total = files.reduce((sum, file) => sum + file.size, 0)
      if (files.length > 0) this.keeper.options.log(`scrub pass ${pass}: re-hashing ${files.length} files, ${total} bytes, at up to ${this.options.bytesPerSecond} bytes/s`)
      let checked = 0
      let corrupt = 0
      let done = 0
      const {metrics} = this.keeper
      metrics.scrubProgress.set(total > 0 ? 0 : 1)
      for (const file of files) {
        if (this.#stopped) return
        // Deleted or replaced since the pass began: nothing to check.
        if (this.keeper.store.byId(file.fileId) !== file) continue
        try {
          const result = await this.keeper.verifyReplica(file, new Throttle(this.options.bytesPerSecond))
          checked++
          metrics.scrubbedFiles.inc()
          metrics.scrubbedBytes.inc(result.size)
          if (!result.ok) corrupt++
        } catch (error) {
          this.keeper.options.log(`scrubbing "${file.name}" failed: ${(error as Error).message}`)
        }

        done += file.size
        if (total > 0) metrics.scrubProgress.set(done / total)
      }

      metrics.scrubProgress.set(1)
      metrics.scrubPasses.inc()

      if (files.length > 0) {
        const seconds = ((Date.now() - started) / 1000).toFixed(1)
        this.keeper.options.log(`scrub pass ${pass} done: ${checked} of ${files.length} files checked in ${seconds} s, ${corrupt} corrupt`)
      }

      this.passes++
    }
  }
}
