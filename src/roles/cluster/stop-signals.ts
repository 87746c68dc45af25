/** Owns SIGINT/SIGTERM from the start, so a first one stops the cluster gracefully (even mid-startup) and a second kills it. */
export class StopSignals {
  readonly first: Promise<NodeJS.Signals>
  #resolve!: (signal: NodeJS.Signals) => void
  #received = 0
  #onSecond: () => void
  #handler = (signal: NodeJS.Signals) => {
    this.#received++
    if (this.#received === 1) this.#resolve(signal)
    else this.#onSecond()
  }

  constructor(onSecond: () => void) {
    this.#onSecond = onSecond
    this.first = new Promise((resolve) => (this.#resolve = resolve))
    process.on('SIGINT', this.#handler)
    process.on('SIGTERM', this.#handler)
  }

  dispose(): void {
    process.removeListener('SIGINT', this.#handler)
    process.removeListener('SIGTERM', this.#handler)
  }
}
