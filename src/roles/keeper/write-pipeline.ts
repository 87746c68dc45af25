// The forwarding half of a write pipeline (docs/architecture.md, "Put"): a keeper that receives a
// one-pass upload's bytes passes every chunk on to the next keeper of the upload's pipeline while it
// writes it, so that the copies ride along with the upload instead of being pulled after it.

import {PassThrough, Transform, pipeline as connect, type Readable} from 'node:stream'

import {CHUNK_SIZE} from '../../lib/durable-file.js'
import {showingGrant} from '../../lib/grants.js'
import {Peer, timedOut} from '../../lib/peer-client.js'
import {PIPELINE_HEADER, SIZE_HEADER, UPSTREAM_HEADER, keeperRoutes, type PipelineKeeper} from '../../lib/protocol.js'

/** How far the disk and the downstream may each run ahead of the other, in bytes. */
const FORWARD_SLACK = 4 * CHUNK_SIZE

/** A keeper down the pipeline that holds the bytes whole, with the sha256 it computed of them. */
export interface HeldCopy {
  id: string
  sha256: string
}

export interface ForwardOptions {
  upload: {fileId: string; name: string; size: number}
  /** The keeper the bytes go to, and those it forwards them to in turn. */
  next: PipelineKeeper
  rest: PipelineKeeper[]
  /** This keeper's id, which the next one is told (its copy is a copy, not the upload). */
  from: string
  agent: Peer['agent']
  /** A downstream that takes no byte, or gives no answer, for this long is cut off. */
  stallMs: number
  log: (message: string) => void
}

/**
 * Forwards `source` to the next keeper of a pipeline while `body` yields it unchanged for this
 * keeper's own disk. A chunk goes on once the downstream took it too, so the upload advances at the
 * slower of the disk and the downstream, and nothing piles up in memory. A downstream that fails,
 * or takes no byte for `stallMs`, is cut off and the bytes go on without it: a copy never fails
 * the upload (the replicator makes it later). `held` resolves to the keepers down the chain that
 * hold the bytes whole, in order, with their digests: none once the next one is cut off.
 */
export class PipelineForward {
  readonly body: Transform
  readonly held: Promise<HeldCopy[]>
  // Slack for the downstream: the disk and the next keeper each go at their pace until it is used up.
  readonly #out = new PassThrough({highWaterMark: FORWARD_SLACK})
  readonly #options: ForwardOptions
  #cut = false
  #wake: (() => void) | undefined

  constructor(source: Readable, options: ForwardOptions) {
    this.#options = options
    const {upload, next, rest} = options
    // Its failures reach `held` through the request that reads it.
    this.#out.on('error', () => {})
    const peer = new Peer({role: 'keeper', baseUrl: next.url, agent: options.agent, credentials: showingGrant(next.grant)})
    const headers = {
      'content-type': 'application/octet-stream',
      'content-length': String(upload.size),
      [SIZE_HEADER]: String(upload.size),
      [UPSTREAM_HEADER]: options.from,
      ...(rest.length > 0 ? {[PIPELINE_HEADER]: JSON.stringify(rest)} : {}),
    }
    this.held = peer
      .call(keeperRoutes.holdUpload, {params: {id: upload.fileId}, query: {name: upload.name}, headers, body: this.#out}, {timeout: options.stallMs})
      .then((answer) => (answer.size === upload.size ? [{id: next.id, sha256: answer.sha256}, ...(answer.pipeline ?? [])] : []))
      .catch((error: unknown) => {
        this.cut(timedOut(error) ? this.#silence() : (error as Error).message)
        return []
      })
    const forward = (body: Transform, chunk: Buffer, done: () => void) => {
      // The chunk goes to the disk at once; the next one is taken once the downstream has room too.
      body.push(chunk)
      if (this.#cut || this.#out.write(chunk)) return done()
      void this.#drained().then(done)
    }

    this.body = new Transform({
      highWaterMark: FORWARD_SLACK,
      transform(chunk: Buffer, _encoding, done) {
        forward(this, chunk, () => done())
      },
      flush: (done) => {
        if (!this.#cut) this.#out.end()
        done()
      },
    })
    // This keeper's own write failed, or its sender went away: the downstream's copy is cut off too.
    this.body.once('close', () => {
      if (!this.body.writableFinished) this.cut('the upload did not arrive whole')
    })
    connect(source, this.body, () => {})
  }

  /** Stops forwarding: the downstream's request is aborted (it keeps nothing), and the upload goes on alone. */
  cut(reason: string): void {
    if (this.#cut) return
    this.#cut = true
    this.#options.log(`write pipeline of "${this.#options.upload.name}" (${this.#options.upload.fileId}): keeper ${this.#options.next.id} cut off (${reason}); the replicator copies it later`)
    this.#out.destroy()
    this.#wake?.()
  }

  /**
   * Why a downstream that went quiet for `stallMs` is cut off. The request's own timeout and the
   * drain timer measure the same silence, and whichever fires first names it the same way.
   */
  #silence(): string {
    const what = this.#out.writableEnded ? 'gave no answer' : 'took no byte'
    return `it ${what} for ${this.#options.stallMs / 1000} s`
  }

  /** Resolves once the downstream took the pending bytes, or was cut off (by failing, or after `stallMs` without a byte). */
  #drained(): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.cut(this.#silence()), this.#options.stallMs)
      const done = () => {
        clearTimeout(timer)
        this.#out.off('drain', done)
        this.#wake = undefined
        resolve()
      }

      this.#wake = done
      this.#out.once('drain', done)
    })
  }
}
