// A small HTTP proxy in front of a real master, for tests that must see the requests a client
// makes (its ticket requests, its polls) or hold one back at a chosen moment. The master behind it
// is real; the proxy only watches and waits. Bodies are buffered: it is meant for the master's JSON
// API, not for file bodies.

import {once} from 'node:events'
import {createServer, type IncomingMessage, type Server} from 'node:http'
import type {AddressInfo} from 'node:net'

export interface ProxiedRequest {
  method: string
  /** Path and query, as the client sent them. */
  path: string
  body: string
}

export interface Exchange extends ProxiedRequest {
  status: number
  answer: string
}

export interface ProxyHooks {
  /** Runs before the request goes on to the server; the client waits until it resolves. */
  beforeForward?: (request: ProxiedRequest) => Promise<void> | void
  /** Runs with the server's answer before it goes back to the client; the client waits until it resolves. */
  beforeAnswer?: (exchange: Exchange) => Promise<void> | void
}

export class HttpProxy {
  /** Every request answered, in the order the answers went back. */
  readonly exchanges: Exchange[] = []

  private constructor(
    private readonly server: Server,
    readonly url: string,
  ) {}

  static async start(target: string, hooks: ProxyHooks = {}): Promise<HttpProxy> {
    let proxy: HttpProxy | undefined
    const server = createServer((incoming, outgoing) => {
      void (async () => {
        const request: ProxiedRequest = {method: incoming.method ?? 'GET', path: incoming.url ?? '/', body: await readBody(incoming)}
        await hooks.beforeForward?.(request)
        const headers = {...incoming.headers}
        delete headers.host
        delete headers.connection
        delete headers['content-length']
        const response = await fetch(new URL(request.path, target), {
          method: request.method,
          headers: headers as Record<string, string>,
          body: request.method === 'GET' || request.method === 'HEAD' ? undefined : request.body,
        })
        const exchange: Exchange = {...request, status: response.status, answer: await response.text()}
        await hooks.beforeAnswer?.(exchange)
        proxy!.exchanges.push(exchange)
        outgoing.writeHead(exchange.status, {'content-type': response.headers.get('content-type') ?? 'application/json'})
        outgoing.end(exchange.answer)
      })().catch((error: unknown) => {
        outgoing.destroy(error as Error)
      })
    })
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    proxy = new HttpProxy(server, `http://127.0.0.1:${(server.address() as AddressInfo).port}`)
    return proxy
  }

  /** The answered requests with this method and path (query included). */
  seen(method: string, path: string): Exchange[] {
    return this.exchanges.filter((exchange) => exchange.method === method && exchange.path === path)
  }

  async close(): Promise<void> {
    this.server.closeAllConnections()
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
  }
}

async function readBody(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = []
  for await (const chunk of request) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks).toString('utf8')
}
