import Fastify, {LogController, type FastifyError, type FastifyInstance} from 'fastify'

import {DfsError} from './errors.js'

export interface ServerOptions {
  logLevel: string
  /** Who answers, for the messages of this server's own errors. */
  role: 'master' | 'keeper'
}

// Servers that are stopping: they finish what is under way and refuse new requests.
const closing = new WeakSet<FastifyInstance>()

/**
 * A fastify instance that answers every error as `{error, message}` JSON with a fitting status,
 * logs to stderr (stdout is kept for the one line that says where the server listens) and passes
 * request bodies that are not JSON through untouched, as streams.
 */
export function createServer(options: ServerOptions): FastifyInstance {
  const app = Fastify({
    logger: {level: options.logLevel, stream: process.stderr},
    logController: new LogController({disableRequestLogging: true}),
    // Names travel in the path; leave room for 255 bytes of percent-encoded UTF-8.
    routerOptions: {maxParamLength: 2048},
    bodyLimit: 16 * 1024 * 1024,
    // Answered by the onRequest hook below instead, in the catalogue's format.
    return503OnClosing: false,
    forceCloseConnections: 'idle',
  })

  app.addHook('onRequest', async (request, reply) => {
    if (closing.has(app)) {
      reply.header('connection', 'close')
      return reply.status(503).send({error: 'DFS_ERR_SHUTTING_DOWN', message: `the ${options.role} is shutting down`})
    }
  })

  // File bodies stay unread here; the route streams request.raw itself.
  app.addContentTypeParser('*', (_request, _payload, done) => done(null))
  app.addContentTypeParser('application/octet-stream', (_request, _payload, done) => done(null))

  app.setErrorHandler((error: FastifyError | DfsError, request, reply) => {
    if (error instanceof DfsError) {
      if (error.status >= 500) request.log.warn({code: error.code}, error.message)
      return reply.status(error.status).send(error.toJSON())
    }

    if (error.validation) {
      const message = `invalid request ${error.validationContext ?? 'body'}: ${error.message}`
      return reply.status(400).send({error: 'DFS_ERR_BAD_REQUEST', message})
    }

    const status = error.statusCode ?? 500
    if (status >= 400 && status < 500) {
      return reply.status(status).send({error: 'DFS_ERR_BAD_REQUEST', message: error.message})
    }

    request.log.error({err: error}, 'request failed')
    return reply.status(500).send({error: 'DFS_ERR_INTERNAL', message: 'internal error: ' + error.message})
  })

  app.setNotFoundHandler((request, reply) =>
    reply.status(404).send({error: 'DFS_ERR_NOT_FOUND', message: `no such endpoint: ${request.method} ${request.url}`}),
  )

  return app
}

/** Closes a server, letting in-flight requests finish for up to `graceMs`, then cutting them. */
export async function closeGracefully(app: FastifyInstance, graceMs: number): Promise<void> {
  closing.add(app)
  const timer = setTimeout(() => app.server.closeAllConnections(), graceMs)
  try {
    await app.close()
  } finally {
    clearTimeout(timer)
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
