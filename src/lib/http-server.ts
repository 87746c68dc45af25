import {STATUS_CODES} from 'node:http'
import type {Socket} from 'node:net'

import Fastify, {LogController, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest} from 'fastify'
import type {Registry} from 'prom-client'

import {DfsError, ERRORS, codeForStatus, type ErrorCode} from './errors.js'
import {lazyCompilers} from './lazy-validators.js'
import {countRequests} from './metrics.js'
import {ROLE_HEADER} from './protocol.js'
import type {ServerTls} from './tls.js'

export interface ServerOptions {
  logLevel: string
  /** Who answers, for the messages of this server's own errors. */
  role: 'master' | 'keeper'
  /** Serve https with this certificate and key instead of plain http. */
  tls?: ServerTls
  /** The role's metrics: every request answered is counted in it (its route, status and bytes). */
  registry?: Registry
}

// Names travel in the path; leave room for 255 bytes of percent-encoded UTF-8.
const MAX_PARAM_LENGTH = 2048
// JSON bodies only; file bytes are streamed by the routes and never held whole.
const BODY_LIMIT = 16 * 1024 * 1024

// Servers that are stopping: they finish what is under way and refuse new requests.
const closing = new WeakSet<FastifyInstance>()

/**
 * A fastify instance that answers every error as `{error, message}` JSON with a fitting status,
 * logs to stderr (stdout is kept for the one line that says where the server listens) and passes
 * request bodies that are not JSON through untouched, as streams.
 */
export function createServer(options: ServerOptions): FastifyInstance {
  const app = Fastify({
    ...(options.tls ? {https: {cert: options.tls.cert, key: options.tls.key}} : {}),
    logger: {level: options.logLevel, stream: process.stderr},
    logController: new LogController({disableRequestLogging: true}),
    routerOptions: {maxParamLength: MAX_PARAM_LENGTH},
    bodyLimit: BODY_LIMIT,
    // Answered by the onRequest hook below instead, in the catalogue's format.
    return503OnClosing: false,
    forceCloseConnections: 'idle',
    // Errors the router raises before any route runs (bad percent-encoding, a too-long segment)
    // would otherwise answer in fastify's own format.
    frameworkErrors: (error, request, reply) => sendError(error, request, reply),
    // Requests that are not even HTTP (headers too large, a malformed line, a body cut short).
    clientErrorHandler: answerClientError,
    // Each route's schemas are compiled at its first request, not all at start (lazy-validators.ts).
    schemaController: {compilersFactory: lazyCompilers()},
  })

  // First, so that the refusals of the hooks below are counted too.
  if (options.registry) countRequests(app, options.registry)

  app.addHook('onRequest', async (request, reply) => {
    reply.header(ROLE_HEADER, options.role)
    if (closing.has(app)) {
      reply.header('connection', 'close')
      return reply.status(503).send({error: 'DFS_ERR_SHUTTING_DOWN', message: `the ${options.role} is shutting down`})
    }
  })

  // File bodies stay unread here; the route streams request.raw itself.
  app.addContentTypeParser('*', (_request, _payload, done) => done(null))
  app.addContentTypeParser('application/octet-stream', (_request, _payload, done) => done(null))

  // A route that takes a JSON body, sent another type (text/plain has a parser of fastify's, others
  // get nothing from the catch-all above): say so rather than "body must be object".
  app.addHook('preValidation', async (request) => {
    const type = request.headers['content-type']
    if (request.routeOptions.schema?.body && type !== undefined && !/^application\/json\s*(;|$)/i.test(type)) {
      throw new DfsError('DFS_ERR_UNSUPPORTED_MEDIA_TYPE', `${request.method} ${request.routeOptions.url} takes a JSON body (application/json), not ${type.split(';')[0]}`)
    }
  })

  app.setErrorHandler((error: FastifyError | DfsError, request, reply) => sendError(error, request, reply))

  app.setNotFoundHandler((request, reply) =>
    reply.status(404).send({error: 'DFS_ERR_NOT_FOUND', message: `no such endpoint: ${request.method} ${pathOf(request.url)}`}),
  )

  return app
}

/** Answers any error of a request in the catalogue's `{error, message}`, with the status of its code. */
function sendError(error: FastifyError | DfsError, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const {code, message, aborted} = describeError(error, request)
  const {status} = ERRORS[code]
  // A client that went away mid-body (Ctrl-C, a dropped link) is worth one line, not a stack: no
  // bug of ours. A refusal of ours that the client then cut short is logged as the refusal.
  if (aborted) request.log.warn(`${request.method} ${pathOf(request.url)} aborted by the client before its body was complete`)
  else if (status >= 500) {
    if (error instanceof DfsError) request.log.warn({code}, message)
    else request.log.error({err: error}, 'request failed')
  }

  return reply.status(status).send({error: code, message})
}

/** The catalogue code and one-line message for an error raised by us, by fastify, or by a library. */
function describeError(error: FastifyError | DfsError, request: FastifyRequest): {code: ErrorCode; message: string; aborted?: boolean} {
  if (error instanceof DfsError) return {code: error.code, message: error.message}
  if (error.validation) return {code: 'DFS_ERR_BAD_REQUEST', message: `invalid request ${error.validationContext ?? 'body'}: ${error.message}`}
  switch (error.code) {
    case 'FST_ERR_BAD_URL':
      return {code: 'DFS_ERR_BAD_REQUEST', message: 'the URL path is not valid percent-encoding (a % must be followed by two hex digits)'}
    case 'FST_ERR_MAX_PARAM_LENGTH':
      return {code: 'DFS_ERR_URI_TOO_LONG', message: `a path segment is longer than ${MAX_PARAM_LENGTH} characters (a file name is at most 255 bytes)`}
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return {code: 'DFS_ERR_BODY_TOO_LARGE', message: `the request body is larger than ${BODY_LIMIT / 1024 / 1024} MiB`}
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return {code: 'DFS_ERR_UNSUPPORTED_MEDIA_TYPE', message: `unsupported Content-Type ${request.headers['content-type'] ?? '(none)'}`}
  }

  // A client that went away mid-body: nobody reads the answer, and it is no bug of ours.
  if (clientAborted(request)) {
    return {code: 'DFS_ERR_BAD_REQUEST', message: 'the request was aborted before its body was complete', aborted: true}
  }

  const code = codeForStatus(error.statusCode ?? 500)
  return {code, message: code === 'DFS_ERR_INTERNAL' ? `internal error: ${error.message}` : error.message}
}

/** True when the client closed the connection before sending the whole request body. */
function clientAborted(request: FastifyRequest): boolean {
  return !request.raw.complete && (request.raw.destroyed || request.raw.readableAborted)
}

/**
 * Answers a connection whose bytes are not a request fastify can route (node's own 400, 408 and
 * 431 would be bare text), then closes it, like node does.
 */
function answerClientError(error: Error & {code?: string}, socket: Socket): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return
  const [code, message]: [ErrorCode, string] =
    error.code === 'HPE_HEADER_OVERFLOW'
      ? ['DFS_ERR_HEADERS_TOO_LARGE', 'the request line and headers are larger than the server accepts']
      : error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? ['DFS_ERR_REQUEST_TIMEOUT', 'the request did not arrive in time']
        : error.code === 'HPE_INVALID_EOF_STATE'
          ? ['DFS_ERR_BAD_REQUEST', 'the connection was closed before the request body was complete']
          : ['DFS_ERR_BAD_REQUEST', `malformed HTTP request (${error.code ?? error.message})`]
  // Not while an answer to an earlier request is going out on this connection, or both would be
  // garbled (node's own check, in lib/_http_server.js).
  const inFlight = (socket as Socket & {_httpMessage?: {headersSent?: boolean}})._httpMessage
  if (socket.writable && !inFlight?.headersSent) {
    const body = JSON.stringify({error: code, message})
    const {status} = ERRORS[code]
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    )
  }

  socket.destroy(error)
}

/** The path of a request URL without its query, which may carry a credential (`?grant=`). */
function pathOf(url: string): string {
  const query = url.indexOf('?')
  return query === -1 ? url : url.slice(0, query)
}

/** Closes a server, letting in-flight requests finish for up to `graceMs`, then cutting them. */
export async function closeGracefully(app: FastifyInstance, graceMs: number): Promise<void> {
  closing.add(app)
  const timer = setTimeout(() => app.server.closeAllConnections(), graceMs)
  // Node closes only the connections idle when the stop begins: one whose request was under way
  // stays open, kept alive, once answered, and would hold the stop until the grace ends. Those are
  // closed as they fall idle (nothing is added to any request while the server runs).
  const idle = setInterval(() => app.server.closeIdleConnections(), 100)
  try {
    await app.close()
  } finally {
    clearTimeout(timer)
    clearInterval(idle)
  }
}

/** Runs `stop` once on the first SIGINT or SIGTERM, then exits; a second signal exits at once. */
export function onShutdownSignal(stop: () => Promise<void>): void {
  let stopping = false
  const handler = (signal: NodeJS.Signals) => {
    if (stopping) process.exit(130)
    stopping = true
    stop().then(
      () => process.exit(0),
      (error: unknown) => {
        process.stderr.write(`error while stopping on ${signal}: ${String(error)}\n`)
        process.exit(1)
      },
    )
  }

  process.on('SIGINT', handler)
  process.on('SIGTERM', handler)
}
