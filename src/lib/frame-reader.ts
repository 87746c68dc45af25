import {DfsError} from './errors.js'
import {check} from './peer-client.js'
import {BatchReadFrame, MAX_BATCH_READ_SIZE} from './protocol.js'

// A frame's header is a short JSON line (ids, a size, a sha256, or an error's code and message);
// a longer one is not a dfs keeper's.
const MAX_HEADER = 16 * 1024
const EMPTY = Buffer.alloc(0)

/**
 * Reads the frames of a batch read's answer (POST /files/read, docs/protocol.md) off its body as
 * they come: a header line, then exactly its size in bytes. Anything else, or an answer that ends
 * inside a frame, is DFS_ERR_BAD_RESPONSE; a connection that fails is DFS_ERR_KEEPER_UNREACHABLE.
 * Read by a client's get of many files and by a keeper's batched copies.
 */
export class FrameReader {
  readonly #iterator: AsyncIterator<Buffer>
  #buffered: Buffer = EMPTY

  constructor(
    body: AsyncIterable<Buffer>,
    readonly url: string,
  ) {
    this.#iterator = body[Symbol.asyncIterator]()
  }

  /** The next frame's header, checked against the protocol; undefined where the answer ends. */
  async header(): Promise<BatchReadFrame | undefined> {
    for (;;) {
      const end = this.#buffered.indexOf(10)
      if (end !== -1) {
        const line = this.#buffered.subarray(0, end).toString('utf8')
        this.#buffered = this.#buffered.subarray(end + 1)
        let head: unknown
        try {
          head = JSON.parse(line)
        } catch {
          throw this.#bad('a frame header is not JSON')
        }

        check(BatchReadFrame, head, (problem) => this.#bad(`a frame header is not one: ${problem}`))
        const frame = head as BatchReadFrame
        if ('size' in frame && frame.size > MAX_BATCH_READ_SIZE) throw this.#bad(`a frame of ${frame.size} bytes is larger than a batch read serves`)
        return frame
      }

      if (this.#buffered.length > MAX_HEADER) throw this.#bad('a frame header is too long')
      if (!(await this.#more())) {
        if (this.#buffered.length === 0) return undefined
        throw this.#bad('the answer ends inside a frame header')
      }
    }
  }

  /** The next `size` bytes of the answer (a frame's), as the chunks they came in. */
  async take(size: number): Promise<Buffer[]> {
    const chunks: Buffer[] = []
    let left = size
    while (left > 0) {
      if (this.#buffered.length === 0 && !(await this.#more())) throw this.#bad(`the answer ends ${left} bytes before the end of a frame`)
      const chunk = this.#buffered.length > left ? this.#buffered.subarray(0, left) : this.#buffered
      this.#buffered = this.#buffered.subarray(chunk.length)
      chunks.push(chunk)
      left -= chunk.length
    }

    return chunks
  }

  /** Lets the rest of the answer go (the connection is closed, not read to its end). */
  close(): void {
    void this.#iterator.return?.().catch(() => {})
  }

  async #more(): Promise<boolean> {
    let next: IteratorResult<Buffer>
    try {
      next = await this.#iterator.next()
    } catch (error) {
      throw new DfsError('DFS_ERR_KEEPER_UNREACHABLE', `the batch read from ${this.url} broke off: ${(error as Error).message}`, {cause: error})
    }

    if (next.done) return false
    this.#buffered = this.#buffered.length === 0 ? next.value : Buffer.concat([this.#buffered, next.value])
    return true
  }

  #bad(problem: string): DfsError {
    return new DfsError('DFS_ERR_BAD_RESPONSE', `${this.url} is not a dfs keeper (its answer to POST /files/read is not one: ${problem})`)
  }
}
