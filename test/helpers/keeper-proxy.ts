// A fault-injecting HTTP proxy in front of one real keeper. The keeper advertises the proxy's URL
// (--advertise), so the master, clients and other keepers all reach it through the proxy, which
// passes everything through unless a test tells it to lie about ranges or to hold file bodies.

import {createHash} from 'node:crypto'
import {once} from 'node:events'
import {createServer, request, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse} from 'node:http'
import {Transform} from 'node:stream'
import type {TestContext} from 'node:test'

import type {ServerProcess, TestCluster} from './cluster.js'
import {freePort, startKeeper} from './keeper-process.js'

/**
 * How ranged GETs are answered: `short` and `long` send one byte too few or too many (with a
 * Content-Length to match), `shifted` serves the same number of bytes from another offset with the
 * keeper's honest Content-Range, `relabelled` does the same but claims the range that was asked.
 */
export type RangeLie = 'none' | 'short' | 'long' | 'shifted' | 'relabelled'

// How far a shifted range is moved.
const SHIFT = 4096

export class KeeperProxy {
  rangeLie: RangeLie = 'none'
  /** Ranged answers that lied. */
  lies = 0
  /** GET bodies are held after this many bytes until `release()`; undefined: never. */
  holdAfter: number | undefined
  /** GET bodies held right now. */
  holding = 0
  /** GET bodies begun so far. */
  bodies = 0
  /**
   * Uploads (PUT) are answered 201 as if stored, with the name, upload id, size and sha256 they
   * announced, and never reach the keeper: a keeper that claims what it did not do.
   */
  fakeStores = false
  /** One byte of each one-pass upload's body (PUT /uploads/:id) is flipped on its way to the keeper: a transfer that corrupts. */
  corruptUploads = false
  /** Like corruptUploads, only for bytes another keeper forwards down a write pipeline (they carry x-dfs-upstream). */
  corruptForwardedUploads = false
  /** One-pass upload bodies corrupted so far. */
  corrupted = 0
  /** The next forwarded upload body stops after `bytes` until the keeper dies; `reached` runs when it does. */
  #stallForwarded: {bytes: number; reached: () => void} | undefined
  /** What a faked one-pass upload claimed (name, size, the sha256 of what came), by upload id, for its faked seal. */
  readonly #faked = new Map<string, {name: string; size: number; sha256: string}>()
  /** Copy orders (POST /replicate, POST /replicate/batch) are answered 503 without reaching the keeper: a keeper that cannot take copies for now. */
  refuseCopies = false
  /** Copy orders refused so far. */
  refused = 0
  /** Answers to batch reads (POST /files/read) are cut off (the connection closed) after this many bytes; undefined: never. */
  cutBatchReads: number | undefined
  /** Batch read answers cut off so far. */
  batchReadsCut = 0
  /** The grant (x-dfs-grant) of each GET that carried one, in order. */
  readonly grants: string[] = []
  // The first body the hold applies to, counted by `bodies`.
  #holdFrom = 0
  #release: Promise<void> = Promise.resolve()
  #releaseNow = () => {}

  private constructor(
    readonly server: Server,
    readonly url: string,
    readonly target: string,
  ) {}

  static async start(target: string): Promise<KeeperProxy> {
    const server = createServer()
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    const {port} = server.address() as {port: number}
    const proxy = new KeeperProxy(server, `http://127.0.0.1:${port}`, target)
    server.on('request', (incoming, outgoing) => proxy.#forward(incoming, outgoing))
    return proxy
  }

  /**
   * GET bodies stop after `bytes` bytes, until `release()`: from now on (bodies under way too), or
   * only once `passing` more bodies have begun (those pass whole).
   */
  hold(bytes: number, passing = 0): void {
    this.holdAfter = bytes
    this.#holdFrom = passing === 0 ? 0 : this.bodies + passing
    this.#release = new Promise((resolve) => (this.#releaseNow = resolve))
  }

  /**
   * The next one-pass upload body another keeper forwards through this proxy stops after `bytes`
   * bytes, for good (until the keeper behind it dies, say); resolves once more than that came.
   */
  stallForwardedUpload(bytes: number): Promise<void> {
    return new Promise((resolve) => (this.#stallForwarded = {bytes, reached: resolve}))
  }

  release(): void {
    this.holdAfter = undefined
    this.#releaseNow()
  }

  async close(): Promise<void> {
    this.release()
    this.server.closeAllConnections()
    this.server.close()
  }

  #forward(incoming: IncomingMessage, outgoing: ServerResponse): void {
    const onePass = /^\/uploads\/([^/?]+)(\/seal)?(\?|$)/.exec(incoming.url ?? '')
    if (this.fakeStores && onePass) return void this.#fakeOnePass(incoming, outgoing, onePass[1]!, onePass[2] !== undefined)
    if (this.fakeStores && incoming.method === 'PUT') return void this.#fakeStore(incoming, outgoing)
    if (this.refuseCopies && incoming.method === 'POST' && (incoming.url === '/replicate' || incoming.url === '/replicate/batch')) {
      this.refused++
      incoming.resume()
      outgoing.writeHead(503, {'content-type': 'application/json'})
      return void outgoing.end(JSON.stringify({error: 'DFS_ERR_SHUTTING_DOWN', message: 'the test proxy refuses copies'}))
    }

    const range = /^bytes=(\d+)-(\d+)$/.exec(incoming.headers.range ?? '')
    const grant = incoming.headers['x-dfs-grant']
    if (incoming.method === 'GET' && typeof grant === 'string') this.grants.push(grant)
    const lie = incoming.method === 'GET' && range ? this.rangeLie : 'none'
    const headers: IncomingHttpHeaders = {...incoming.headers}
    let asked: [number, number] | undefined
    if (range && (lie === 'shifted' || lie === 'relabelled')) {
      asked = [Number(range[1]), Number(range[2])]
      const shift = asked[0] >= SHIFT ? -SHIFT : SHIFT
      headers.range = `bytes=${asked[0] + shift}-${asked[1] + shift}`
    }

    const target = new URL(incoming.url ?? '/', this.target)
    const upstream = request(target, {method: incoming.method, headers}, (answer) => {
      if (lie === 'none') return void this.#pass(incoming, answer, outgoing)
      this.#lie(lie, answer, outgoing, asked).catch(() => outgoing.destroy())
    })
    upstream.on('error', () => outgoing.destroy())
    const forwarded = incoming.method === 'PUT' && onePass !== null && incoming.headers['x-dfs-upstream'] !== undefined
    const stall = forwarded ? this.#stallForwarded : undefined
    // A forwarding keeper that dies mid-body cuts its downstream off, as it would without the proxy.
    if (forwarded) {
      incoming.once('close', () => {
        if (!incoming.complete) upstream.destroy()
      })
    }

    if (stall) {
      this.#stallForwarded = undefined
      let passed = 0
      incoming.pipe(
        new Transform({
          transform(chunk: Buffer, _encoding, done) {
            if (passed + chunk.length <= stall.bytes) {
              passed += chunk.length
              return done(null, chunk)
            }

            // The head goes on; the rest never does (the callback is never called), so the sender backs up.
            this.push(chunk.subarray(0, stall.bytes - passed))
            passed = stall.bytes
            stall.reached()
          },
        }),
      ).pipe(upstream)
      return
    }

    if ((this.corruptUploads || (this.corruptForwardedUploads && forwarded)) && incoming.method === 'PUT' && onePass) {
      this.corrupted++
      let flipped = false
      incoming.pipe(
        new Transform({
          transform(chunk: Buffer, _encoding, done) {
            if (!flipped && chunk.length > 0) {
              chunk = Buffer.from(chunk)
              chunk[chunk.length >> 1]! ^= 0xff
              flipped = true
            }

            done(null, chunk)
          },
        }),
      ).pipe(upstream)
      return
    }

    incoming.pipe(upstream)
  }

  /**
   * A one-pass upload that never reaches the keeper: its bytes are answered 202 with the sha256 of
   * what came, and its seal 201 as if stored, whatever sha256 the seal names.
   */
  #fakeOnePass(incoming: IncomingMessage, outgoing: ServerResponse, uploadId: string, seal: boolean): void {
    const url = new URL(incoming.url ?? '/', this.url)
    const hash = createHash('sha256')
    let size = 0
    incoming.on('data', (chunk: Buffer) => {
      size += chunk.length
      if (!seal) hash.update(chunk)
    })
    incoming.on('end', () => {
      outgoing.writeHead(seal ? 201 : 202, {'content-type': 'application/json'})
      if (!seal) {
        const claim = {name: url.searchParams.get('name') ?? '', size, sha256: hash.digest('hex')}
        this.#faked.set(uploadId, claim)
        return void outgoing.end(JSON.stringify({uploadId, size, sha256: claim.sha256}))
      }

      const claim = this.#faked.get(uploadId)
      outgoing.end(JSON.stringify({name: claim?.name, fileId: uploadId, size: claim?.size, sha256: claim?.sha256}))
    })
  }

  #fakeStore(incoming: IncomingMessage, outgoing: ServerResponse): void {
    const url = new URL(incoming.url ?? '/', this.url)
    const claim = {
      name: decodeURIComponent(url.pathname.replace(/^\/files\//, '')),
      fileId: url.searchParams.get('upload'),
      size: Number(incoming.headers['x-dfs-size'] ?? incoming.headers['content-length']),
      sha256: incoming.headers['x-dfs-sha256'],
    }
    incoming.resume()
    incoming.on('end', () => {
      outgoing.writeHead(201, {'content-type': 'application/json'})
      outgoing.end(JSON.stringify(claim))
    })
  }

  /** Passes an answer through, holding a GET body after `holdAfter` bytes while a hold is on. */
  async #pass(incoming: IncomingMessage, answer: IncomingMessage, outgoing: ServerResponse): Promise<void> {
    outgoing.writeHead(answer.statusCode ?? 502, answer.headers)
    // A keeper that dies under a held body cuts its client off, as it would without the proxy.
    answer.once('close', () => {
      if (!answer.complete) outgoing.destroy()
    })
    const body = incoming.method === 'GET' ? this.bodies++ : -1
    const cut = incoming.method === 'POST' && incoming.url === '/files/read' ? this.cutBatchReads : undefined
    let sent = 0
    try {
      for await (const chunk of answer as AsyncIterable<Buffer>) {
        let rest = chunk
        if (cut !== undefined && sent + rest.length > cut) {
          this.batchReadsCut++
          answer.destroy()
          // The bytes before the cut go out first (a destroy right away could drop those still buffered).
          return void outgoing.write(rest.subarray(0, Math.max(0, cut - sent)), () => outgoing.destroy())
        }

        const limit = body >= this.#holdFrom ? this.holdAfter : undefined
        if (limit !== undefined && sent + rest.length > limit) {
          const head = rest.subarray(0, Math.max(0, limit - sent))
          if (head.length > 0 && !outgoing.write(head)) await once(outgoing, 'drain')
          sent += head.length
          rest = rest.subarray(head.length)
          this.holding++
          await this.#release
          this.holding--
        }

        sent += rest.length
        if (!outgoing.write(rest)) await once(outgoing, 'drain')
      }

      outgoing.end()
    } catch {
      outgoing.destroy()
    }
  }

  async #lie(lie: RangeLie, answer: IncomingMessage, outgoing: ServerResponse, asked: [number, number] | undefined): Promise<void> {
    const chunks: Buffer[] = []
    for await (const chunk of answer as AsyncIterable<Buffer>) chunks.push(chunk)
    let body = Buffer.concat(chunks)
    const headers = {...answer.headers}
    if (answer.statusCode === 206) {
      this.lies++
      if (lie === 'short') body = body.subarray(0, body.length - 1)
      if (lie === 'long') body = Buffer.concat([body, Buffer.from([0])])
      if (lie === 'relabelled' && asked) headers['content-range'] = headers['content-range']?.replace(/^bytes \d+-\d+/, `bytes ${asked[0]}-${asked[1]}`)
    }

    headers['content-length'] = String(body.length)
    outgoing.writeHead(answer.statusCode ?? 502, headers)
    outgoing.end(body)
  }
}

/**
 * A real keeper behind a KeeperProxy: it listens on a port chosen beforehand and advertises the
 * proxy's URL, so every peer reaches it through the proxy. Both end with the test.
 */
export async function startProxiedKeeper(t: TestContext, cluster: TestCluster, dataDir: string, args: string[] = []): Promise<{keeper: ServerProcess; proxy: KeeperProxy}> {
  const port = await freePort()
  const proxy = await KeeperProxy.start(`http://127.0.0.1:${port}`)
  t.after(() => proxy.close())
  const keeper = await startKeeper(t, cluster, dataDir, ['--port', String(port), '--advertise', proxy.url, ...args])
  return {keeper, proxy}
}
