// A small HTTP proxy in front of a real keeper that can hold back range requests, so that a test can
// catch a download half-way on purpose instead of hoping to be quick enough.

import {createServer, request, type IncomingMessage, type Server, type ServerResponse} from 'node:http'
import {once} from 'node:events'
import type {AddressInfo} from 'node:net'

export class StallingProxy {
  /** When true, a GET of a range that does not start at byte 0 gets no answer until the proxy closes. */
  stallLaterRanges = false
  /** Requests held back so far. */
  stalled = 0
  readonly #held = new Set<ServerResponse>()

  private constructor(
    readonly server: Server,
    readonly url: string,
    readonly target: string,
  ) {}

  /** A proxy on a free loopback port that forwards to the keeper that will listen on `targetPort`. */
  static async start(targetPort: number): Promise<StallingProxy> {
    let proxy!: StallingProxy
    const server = createServer((req, res) => proxy.#handle(req, res))
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    const {port} = server.address() as AddressInfo
    proxy = new StallingProxy(server, `http://127.0.0.1:${port}`, `http://127.0.0.1:${targetPort}`)
    return proxy
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const range = /^bytes=(\d+)-/.exec(req.headers.range ?? '')
    if (this.stallLaterRanges && req.method === 'GET' && range && range[1] !== '0') {
      this.stalled++
      this.#held.add(res)
      req.resume()
      return
    }

    const upstream = request(new URL(req.url ?? '/', this.target), {method: req.method, headers: req.headers}, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers)
      answer.pipe(res)
    })
    upstream.on('error', () => res.destroy())
    req.pipe(upstream)
  }

  async close(): Promise<void> {
    for (const res of this.#held) res.destroy()
    this.server.closeAllConnections()
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
  }
}

/** A port nobody listens on right now, for a process that must be told its port in advance. */
export async function freePort(): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const {port} = server.address() as AddressInfo
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}
