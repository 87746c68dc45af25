import {createHash, type Hash} from 'node:crypto'
import {closeSync, openSync, readSync} from 'node:fs'
import {Worker} from 'node:worker_threads'

/** A worker's messages: the file's bytes 0..N are written (number), or hash them up to N and answer. */
export type HasherRequest = {written: number} | {end: number}
export type HasherAnswer = {sha256: string} | {error: string}

/**
 * The sha256 of a file that is being written in any order, from the file itself: the writer tells
 * how long a prefix is complete, and that prefix is read back (from the page cache, as it was just
 * written) and hashed. The hash then checks the bytes that will be renamed into place, whatever
 * order they arrived in. `inWorker`: the hashing runs in a worker thread while the main thread
 * receives and writes (worth its start-up, ~0.1–0.25 s of CPU, only for a large file); otherwise
 * the prefix is hashed on the calling thread as it grows, between the socket reads.
 */
export class FileHasher {
  readonly #path: string
  readonly #worker: Worker | undefined
  #answer: Promise<HasherAnswer> | undefined
  /** On the calling thread: the file, the hash so far and how far it got. */
  #here: {fd: number; hash: Hash; buffer?: Buffer; hashed: number} | undefined
  #failure: Error | undefined

  constructor(path: string, inWorker: boolean) {
    this.#path = path
    if (!inWorker) {
      this.#here = {fd: openSync(path, 'r'), hash: createHash('sha256'), hashed: 0}
    } else {
      this.#worker = new Worker(new URL('file-hasher-worker.js', import.meta.url), {workerData: {path}})
      // Until it is asked for a digest, a worker's failure is kept for that moment.
      this.#answer = new Promise((resolve) => {
        this.#worker!.once('message', resolve)
        this.#worker!.once('error', (error) => resolve({error: error.message}))
        this.#worker!.once('exit', (code) => resolve({error: `the hashing worker exited (${code})`}))
      })
    }
  }

  /** Bytes 0..`bytes` of the file are written and will not change. */
  written(bytes: number): void {
    this.#worker?.postMessage({written: bytes} satisfies HasherRequest)
    this.#hashHere(bytes)
  }

  /** The hex sha256 of the file's first `size` bytes (all written by now). */
  async digest(size: number): Promise<string> {
    let answer: HasherAnswer
    if (this.#worker) {
      this.#worker.postMessage({end: size} satisfies HasherRequest)
      answer = await this.#answer!
    } else {
      this.#hashHere(size)
      answer = this.#failure ? {error: this.#failure.message} : {sha256: this.#here!.hash.digest('hex')}
    }

    if ('error' in answer) throw new Error(`cannot hash ${this.#path}: ${answer.error}`)
    return answer.sha256
  }

  /** Stops the worker, if there is one; the hasher is of no use afterwards. */
  async close(): Promise<void> {
    if (this.#here) closeSync(this.#here.fd)
    this.#here = undefined
    await this.#worker?.terminate()
  }

  // A read that fails is kept for digest(), as the worker's is: written() is called from the
  // download's loop, which must not end for the hash's sake.
  #hashHere(upTo: number): void {
    const here = this.#here
    if (!here || this.#failure || upTo <= here.hashed) return
    try {
      // A one-range file is hashed in one call: no 1 MiB buffer for a file of a few KiB.
      here.buffer ??= Buffer.allocUnsafe(Math.min(READ_SIZE, upTo - here.hashed))
      hashInto(here.hash, here.fd, here.hashed, upTo, here.buffer)
      here.hashed = upTo
    } catch (error) {
      this.#failure = error as Error
    }
  }
}

export const READ_SIZE = 1024 * 1024

/** Reads bytes from..to of an open file into `hash`, through one reused buffer. */
export function hashInto(hash: Hash, fd: number, from: number, to: number, buffer: Buffer): void {
  while (from < to) {
    const read = readSync(fd, buffer, 0, Math.min(buffer.length, to - from), from)
    if (read === 0) throw new Error(`the file ends at ${from} bytes, before ${to}`)
    hash.update(buffer.subarray(0, read))
    from += read
  }
}
