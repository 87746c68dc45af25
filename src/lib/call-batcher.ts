import {DfsError} from './errors.js'

interface Waiting<I, O> {
  item: I
  resolve: (value: O) => void
  reject: (error: unknown) => void
}

/**
 * Gathers single calls into batched requests: calls made while `maxInFlight` batches are under way
 * (or in the same event-loop turn) wait and leave together, up to `maxItems` in one request. An
 * idle caller pays no delay, and a busy one sends a request per group instead of one per call.
 * `send` answers each item in order: its value, or an Error that fails that call alone; a `send`
 * that throws fails every call of its batch.
 */
export class CallBatcher<I, O> {
  readonly #waiting: Array<Waiting<I, O>> = []
  #inFlight = 0
  #scheduled = false

  constructor(
    readonly send: (items: I[]) => Promise<Array<O | Error>>,
    readonly options: {maxItems: number; maxInFlight: number},
  ) {}

  call(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.#waiting.push({item, resolve, reject})
      if (this.#scheduled) return
      this.#scheduled = true
      // The calls made in this turn go with this one.
      queueMicrotask(() => {
        this.#scheduled = false
        this.#pump()
      })
    })
  }

  #pump(): void {
    while (this.#inFlight < this.options.maxInFlight && this.#waiting.length > 0) {
      this.#inFlight++
      void this.#run(this.#waiting.splice(0, this.options.maxItems))
    }
  }

  async #run(batch: Array<Waiting<I, O>>): Promise<void> {
    try {
      const answers = await this.send(batch.map((entry) => entry.item))
      if (answers.length !== batch.length) throw new DfsError('DFS_ERR_BAD_RESPONSE', `a batch of ${batch.length} requests was answered with ${answers.length} answers`)
      for (const [index, entry] of batch.entries()) {
        const answer = answers[index]!
        if (answer instanceof Error) entry.reject(answer)
        else entry.resolve(answer)
      }
    } catch (error) {
      for (const entry of batch) entry.reject(error)
    } finally {
      this.#inFlight--
      this.#pump()
    }
  }
}
