import type {IncomingHttpHeaders} from 'node:http'
import {Readable} from 'node:stream'
import {setFlagsFromString} from 'node:v8'

import {TypeCompiler, type TSchema, type TypeCheck} from '#typebox'
import undici from '#undici-client'
import type {Agent, Dispatcher} from 'undici'

import {parseHttpUrl} from './config.js'
import {DfsError, ERRORS, catalogueError, type ErrorCode} from './errors.js'
import {ROLE_HEADER, type AnswerOf, type Route, type RouteInput} from './protocol.js'
import {RetryPolicy} from './retry-policy.js'
import {describeTlsFailure} from './tls-failures.js'

// Why: undici parses HTTP with llhttp compiled to WebAssembly, and V8's optimizing compile of it
// (TurboFan) costs ~34 MB of transient memory and ~0.3 s of CPU in every process's first request
// (`dfs ls`: peak RSS 110 → 74 MB, 0.75–0.9 s → 0.45–0.65 s). Liftoff's baseline code parses fast
// enough: a 1 GiB get took the same CPU and time with and without the flag (4 runs each, noise
// ±30 %). `--no-wasm-tier-up` alone does not avoid the compile. undici compiles the module lazily at
// its first connection, so setting the flag here, after undici's import but before any request, is
// early enough. It applies to the whole process (the master and keepers import this module too).
setFlagsFromString('--liftoff-only')

// Why: undici's index loads all of undici (fetch, WebSocket, caches, mocks: 111 modules, and through
// its web cookies Node's own bundled copy of undici as well), about a third of what `dfs ls` loaded
// before it sent a byte. A Peer needs the connection pool and request() only: undici's
// lib/dispatcher/agent and lib/api/api-request, bundled with what they need (and without HTTP/2)
// into one file by scripts/bundle-undici.mjs. undici has no exports map; its index makes request()
// the same way, by calling api-request on the dispatcher with the URL's origin and path. It is
// imported as `#undici-client` (package.json "imports") so that the client's bundle takes it in.
const ConnectionPool = undici.Agent
const dispatchRequest = undici.request

export type PeerRole = 'master' | 'keeper'

/** What a request is, for credentials that depend on it (a grant names one file and operation). */
export interface OutgoingRequest {
  route: Route
  method: string
  /** Path and query string. */
  path: string
}

/**
 * Headers that prove who sends a request: a cluster key, a token, a grant. Asked for every
 * request, so that a short-lived one can be renewed.
 */
export type Credentials = (request: OutgoingRequest) => Record<string, string> | Promise<Record<string, string>>

export interface PeerOptions {
  role: PeerRole
  /** http(s)://host:port of the peer. */
  baseUrl: string
  /** The connection pool; by default the process's one, which trusts the system's authorities (see connectionPool). */
  agent?: Dispatcher
  credentials?: Credentials
  /** What is tried again: by default refused connections for 3 s to the master, nothing to a keeper. */
  retry?: RetryPolicy
}

export interface RequestOptions {
  signal?: AbortSignal
  /**
   * Milliseconds to wait for the answer's headers, and between two chunks of its body. Default:
   * 30 s for a JSON answer; undici's 300 s for requests that carry file bytes.
   */
  timeout?: number
  /** Instead of the peer's policy, for this request. */
  retry?: RetryPolicy
}

/** An answer that carries file bytes. Its body must be read to the end or dumped. */
export interface FileAnswer {
  statusCode: number
  headers: IncomingHttpHeaders
  body: Dispatcher.ResponseData['body']
}

// One keep-alive pool per process: connection set-up is a large part of a small request's cost.
let sharedAgent: Agent | undefined

const JSON_TIMEOUT_MS = 30_000
// An error answer is a short JSON line; more than this is not one, and is not read further.
const MAX_ERROR_BODY = 64 * 1024

/**
 * The one way dfs talks to another node: a master or a keeper at one URL, over one connection
 * pool, with the credentials to show and the retry policy to follow. Requests name a route of
 * protocol.ts; JSON answers are checked against the route's schema, so an answer that does not
 * fit (a peer that is not what it should be, or lies) becomes one clear DfsError, never a crash
 * further on.
 */
export class Peer {
  readonly role: PeerRole
  readonly baseUrl: string
  readonly agent: Dispatcher
  readonly retry: RetryPolicy
  readonly #credentials: Credentials | undefined

  constructor(options: PeerOptions) {
    if (options.role !== 'master' && options.role !== 'keeper') throw new TypeError(`Peer: role must be "master" or "keeper", not ${String(options.role)}`)
    this.role = options.role
    this.baseUrl = parseHttpUrl(options.baseUrl, `${options.role} URL`)
    this.agent = options.agent ?? (sharedAgent ??= connectionPool())
    this.retry = options.retry ?? (options.role === 'master' ? RetryPolicy.refusedForAWhile : RetryPolicy.never)
    this.#credentials = options.credentials
  }

  /** A request on a route that answers JSON; the answer is checked against the route's schema. */
  async call<const R extends Route & {readonly bytes?: 'request'}>(route: R, input: RouteInput<R>, options: RequestOptions = {}): Promise<AnswerOf<R>> {
    const path = pathOf(route, input)
    const response = await this.#send(route, route.method, path, input, options, route.bytes === 'request' ? undefined : JSON_TIMEOUT_MS)
    if (response.statusCode >= 400) throw await this.#refusal(route.method, path, response)
    const expected = route.status ?? 200
    if (response.statusCode !== expected) {
      await response.body.dump()
      throw this.#notOne(route.method, path, `HTTP ${response.statusCode} instead of ${expected}`)
    }

    let answer: unknown
    try {
      const text = await response.body.text()
      answer = text.length > 0 ? JSON.parse(text) : undefined
    } catch (error) {
      if (error instanceof SyntaxError) throw this.#notOne(route.method, path, 'not JSON')
      throw unreachable(this.role, this.baseUrl, error)
    }

    if (route.response) check(route.response, answer, (problem) => this.#notOne(route.method, path, problem))
    return answer as AnswerOf<R>
  }

  /**
   * A request on a route that answers with file bytes (HEAD: its headers only). `expect`: the
   * statuses that answer this request (206 to a Range); any other is not a dfs answer.
   */
  async open<const R extends Route & {bytes: 'response'}>(
    route: R,
    input: RouteInput<R>,
    options: RequestOptions & {method?: 'HEAD'; expect?: readonly number[]} = {},
  ): Promise<FileAnswer> {
    const path = pathOf(route, input)
    const method = options.method ?? route.method
    const response = await this.#send(route, method, path, input, options, undefined)
    if (response.statusCode >= 400) throw await this.#refusal(method, path, response)
    try {
      const expect = options.expect ?? [200]
      if (!expect.includes(response.statusCode)) throw this.#notOne(method, path, `HTTP ${response.statusCode} instead of ${expect.join(' or ')}`)
      if (route.responseHeaders) check(route.responseHeaders, response.headers, (problem) => this.#notOne(method, path, `headers: ${problem}`))
    } catch (error) {
      await response.body.dump()
      throw error
    }

    return response
  }

  /** The error for an answer this peer should never give: it is not the dfs node it is said to be. */
  #notOne(method: string, path: string, problem: string): DfsError {
    // The route without its query: a query may carry a grant, and the route is what the user needs.
    const route = path.split('?')[0]
    return new DfsError('DFS_ERR_BAD_RESPONSE', `${this.baseUrl} is not a dfs ${this.role} (its answer to ${method} ${route} is not one: ${problem})`)
  }

  async #send(route: Route, method: string, path: string, input: RouteInput<Route>, options: RequestOptions, defaultTimeout: number | undefined): Promise<Dispatcher.ResponseData> {
    const headers: Record<string, string> = {}
    for (const [key, value] of Object.entries(input.headers ?? {})) if (value !== undefined) headers[key] = String(value)
    let body: string | Buffer | Readable | undefined
    if (route.bytes === 'request') {
      body = input.body as Buffer | Readable
    } else if (input.body !== undefined) {
      headers['content-type'] = 'application/json'
      body = JSON.stringify(input.body)
    }

    if (this.#credentials) Object.assign(headers, await this.#credentials({route, method, path}))
    const timeout = options.timeout ?? defaultTimeout
    const url = new URL(path, this.baseUrl)
    // A stream cannot be sent twice.
    const retry = body instanceof Readable ? RetryPolicy.never : (options.retry ?? this.retry)
    const response = await retry.run(
      async () => {
        try {
          return await dispatchRequest.call(this.agent, {
            origin: url.origin,
            path: `${url.pathname}${url.search}`,
            method: method as Dispatcher.HttpMethod,
            headers,
            body,
            signal: options.signal,
            ...(timeout === undefined ? {} : {headersTimeout: timeout, bodyTimeout: timeout}),
          })
        } catch (error) {
          throw unreachable(this.role, this.baseUrl, error)
        }
      },
      {signal: options.signal},
    )
    // A dfs server of another role (a keeper's URL given as --master) answers even the routes it
    // does not have in dfs's format; its role header tells it apart.
    const role = response.headers[ROLE_HEADER]
    if (role !== undefined && role !== this.role) {
      await response.body.dump()
      throw new DfsError('DFS_ERR_BAD_RESPONSE', `${this.baseUrl} is not a dfs ${this.role}: it is a dfs ${String(role)}`)
    }

    return response
  }

  /** The error an answer of status >= 400 stands for: the one its body names, if it is a dfs error. */
  async #refusal(method: string, path: string, response: Dispatcher.ResponseData): Promise<DfsError> {
    let body: unknown
    try {
      body = JSON.parse(await readAtMost(response.body, MAX_ERROR_BODY))
    } catch {
      body = undefined
    }

    const error = catalogueError(body)
    if (error) return error
    // An answer to HEAD has no body to name its error: its status is all there is.
    if (method === 'HEAD') return new DfsError(codeOfStatus(response.statusCode), `the ${this.role} at ${this.baseUrl} answered HEAD ${path.split('?')[0]} with HTTP ${response.statusCode}`)
    return this.#notOne(method, path, `HTTP ${response.statusCode} without a dfs error`)
  }
}

/**
 * A keep-alive connection pool for Peers. `ca`: the certificate authority that https peers'
 * certificates must chain to (--ca); it replaces the system's list, so that a process of a cluster
 * with a private CA trusts that CA only. Made once per process and shared by its Peers.
 */
export function connectionPool(ca?: Buffer): Agent {
  return new ConnectionPool({keepAliveTimeout: 10_000, keepAliveMaxTimeout: 60_000, connections: 64, pipelining: 1, ...(ca ? {connect: {ca}} : {})})
}

/** The path and query string of a request on `route`. */
function pathOf(route: Route, input: RouteInput<Route>): string {
  const params = input.params as Record<string, unknown> | undefined
  let path = route.url.replaceAll(/:(\w+)/g, (_, key: string) => {
    const value = params?.[key]
    if (value === undefined) throw new TypeError(`${route.method} ${route.url} needs the path parameter ${key}`)
    return encodeURIComponent(String(value))
  })
  if (input.query) {
    const search = new URLSearchParams()
    for (const [key, value] of Object.entries(input.query)) if (value !== undefined) search.append(key, String(value))
    const query = search.toString()
    if (query) path += `?${query}`
  }

  return path
}

// Each schema is compiled once per process, when it is first used.
const compiled = new WeakMap<TSchema, TypeCheck<TSchema>>()

/** Throws `fail(problem)` unless `value` fits `schema` (compiled once per schema and process). */
export function check(schema: TSchema, value: unknown, fail: (problem: string) => DfsError): void {
  let validator = compiled.get(schema)
  if (!validator) compiled.set(schema, (validator = TypeCompiler.Compile(schema)))
  if (validator.Check(value)) return
  const first = validator.Errors(value).First()
  throw fail(first ? `${first.message.charAt(0).toLowerCase()}${first.message.slice(1)} at ${first.path || '/'}` : 'of the wrong shape')
}

async function readAtMost(body: Dispatcher.ResponseData['body'], limit: number): Promise<string> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of body as AsyncIterable<Buffer>) {
    chunks.push(chunk)
    size += chunk.length
    if (size > limit) {
      body.destroy()
      break
    }
  }

  return Buffer.concat(chunks).toString('utf8')
}

function codeOfStatus(status: number): ErrorCode {
  const code = (Object.keys(ERRORS) as ErrorCode[]).find((candidate) => ERRORS[candidate].status === status)
  return code ?? 'DFS_ERR_INTERNAL'
}

/** The error for a peer that did not answer at all (refused, reset, timed out, bad address). */
/** Whether a request to a peer failed because the peer went quiet for longer than its `timeout` (the request's own error or its cause). */
export function timedOut(error: unknown): boolean {
  for (let cause = error; cause instanceof Error; cause = cause.cause) {
    const {code} = cause as {code?: string}
    if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') return true
  }

  return false
}

function unreachable(role: PeerRole, baseUrl: string, error: unknown): DfsError {
  if (error instanceof DfsError) return error
  const code = role === 'master' ? 'DFS_ERR_MASTER_UNREACHABLE' : 'DFS_ERR_KEEPER_UNREACHABLE'
  return new DfsError(code, `cannot reach the ${role} at ${baseUrl}: ${reason(error)}`, {cause: error})
}

function reason(error: unknown): string {
  if (!(error instanceof Error)) return String(error)
  const cause = (error as {cause?: unknown}).cause
  const code = (error as {code?: string}).code
  const tls = describeTlsFailure(error)
  if (tls) return tls
  if (cause instanceof Error && cause.message) return cause.message
  if (code === 'ECONNREFUSED') return 'connection refused'
  return error.message || code || error.name
}
