import {createHash, type Hash} from 'node:crypto'
import {Transform, type TransformCallback} from 'node:stream'

export const SHA256_HEX = /^[0-9a-f]{64}$/

/** Counts and hashes the bytes that flow through it, so data is hashed in the same pass that moves it. */
export class HashingStream extends Transform {
  readonly #hash: Hash = createHash('sha256')
  #bytes = 0
  #digest: string | undefined

  get bytes(): number {
    return this.#bytes
  }

  /** The hex sha256 of everything that passed; only after the stream has finished. */
  get digest(): string {
    this.#digest ??= this.#hash.digest('hex')
    return this.#digest
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#bytes += chunk.length
    this.#hash.update(chunk)
    callback(null, chunk)
  }
}
