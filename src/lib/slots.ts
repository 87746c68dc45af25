/** At most `count` pieces of work at once; the others wait their turn, in order. */
export class Slots {
  #free: number
  readonly #waiting: Array<() => void> = []

  constructor(count: number) {
    this.#free = count
  }

  async run<T>(work: () => Promise<T>): Promise<T> {
    if (this.#free > 0) this.#free--
    else await new Promise<void>((resolve) => this.#waiting.push(resolve))
    try {
      return await work()
    } finally {
      // The slot passes straight to the next in line, or becomes free.
      const next = this.#waiting.shift()
      if (next) next()
      else this.#free++
    }
  }
}
