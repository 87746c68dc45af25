import type {ServerResponse} from 'node:http'

import type {FastifyInstance, FastifyRequest} from 'fastify'
import type send from 'send'

import {CHUNK_SIZE} from '../../lib/durable-file.js'
import {DfsError, asDfsError} from '../../lib/errors.js'
import {GRANT_HEADER} from '../../lib/grants.js'
import {serveRoute} from '../../lib/http-routes.js'
import {createServer} from '../../lib/http-server.js'
import {secondsSince, sendMetrics} from '../../lib/metrics.js'
import {contentTypeOf} from '../../lib/media-types.js'
import {MemberGate, requireMaster} from '../../lib/member-auth.js'
import {assertValidName} from '../../lib/names.js'
import {check} from '../../lib/peer-client.js'
import {FILE_ID_HEADER, FRAMES_TYPE, MAX_BATCH_READ_SIZE, PIPELINE_HEADER, Pipeline, SHA256_HEADER, SIZE_HEADER, UPSTREAM_HEADER, keeperRoutes} from '../../lib/protocol.js'
import type {ServerTls} from '../../lib/tls.js'
import {clientCheck} from '../../lib/client-auth.js'
import {requireGrant, requireGrantToken, requireGrantedPipeline, requireGrantedUpload} from './grant-check.js'
import type {Keeper} from './keeper.js'

/** The keeper's HTTP face: uploads in, files out (with Range), replication pulls, deletes. */
export function createKeeperServer(keeper: Keeper, logLevel: string, tls?: ServerTls): FastifyInstance {
  const app = createServer({logLevel, role: 'keeper', tls, registry: keeper.metrics.registry})
  // The master's orders (copy, delete, verify): with a cluster key, only from the master (401
  // without a member credential, 403 from a keeper).
  const key = keeper.options.clusterKey
  const gate = key ? new MemberGate(key, () => ({keeperId: keeper.id})) : undefined
  const fromMaster = async (request: FastifyRequest): Promise<void> => {
    if (gate) requireMaster(await gate.check(request))
  }

  allowOrigin(app, new URL(keeper.options.master.baseUrl).origin)

  // Probes of orchestrators carry no credential, and these answers tell nothing but up or not.
  serveRoute(app, keeperRoutes.health, async () => ({role: 'keeper', status: 'ok', id: keeper.id, url: keeper.url}) as const)
  serveRoute(app, keeperRoutes.ready, async () => {
    await keeper.assertReady()
    return {status: 'ready'} as const
  })
  // The master's check of client tokens, offline: a keeper does not know which were revoked (docs/security.md).
  const client = clientCheck(key, () => false, undefined)
  serveRoute(app, keeperRoutes.metrics, async (request, reply) => {
    if (!keeper.options.metricsPublic) await client(request, 'read')
    await sendMetrics(keeper.metrics.registry, reply)
  })

  serveRoute(app, keeperRoutes.upload, async (request) => {
    const {name} = request.params
    assertValidName(name)
    const grant = await requireGrant(key, request, {ops: ['write'], keeperId: keeper.id, name, fileId: request.query.upload})
    const size = announcedSize(request)
    requireGrantedUpload(grant, {size, sha256: request.headers[SHA256_HEADER]})
    const stored = await keeper.acceptUpload(request.raw, {fileId: request.query.upload, name, size, sha256: request.headers[SHA256_HEADER], createdAt: Date.now()})
    return {name: stored.name, fileId: stored.fileId, size: stored.size, sha256: stored.sha256}
  })

  serveRoute(app, keeperRoutes.holdUpload, async (request) => {
    const {name} = request.query
    assertValidName(name)
    const fileId = request.params.id
    const grant = await requireGrant(key, request, {ops: ['write'], keeperId: keeper.id, name, fileId})
    const size = announcedSize(request)
    // The ticket's grant names no sha256 yet: a grant naming one is for the header path.
    requireGrantedUpload(grant, {size, sha256: ''})
    const pipeline = pipelineOf(request)
    if (pipeline) await requireGrantedPipeline(key, pipeline, {fileId, name, size})
    const upstream = request.headers[UPSTREAM_HEADER]
    const held = await keeper.holdUpload(request.raw, {fileId, name, size, createdAt: Date.now()}, {pipeline, upstream})
    return {uploadId: fileId, size: held.size, sha256: held.sha256, ...(held.pipeline ? {pipeline: held.pipeline} : {})}
  })

  serveRoute(app, keeperRoutes.sealUpload, async (request) => {
    const fileId = request.params.id
    const upload = keeper.store.held(fileId)
    if (!upload) throw new DfsError('DFS_ERR_UNKNOWN_UPLOAD', `this keeper holds no upload ${fileId} to seal (never received whole, or expired)`)
    // The seal's grant is the master's, naming the sha256 the client told it: a keeper seals only that.
    const grant = await requireGrant(key, request, {ops: ['write'], keeperId: keeper.id, name: upload.name, fileId})
    requireGrantedUpload(grant, {size: upload.size, sha256: request.body.sha256})
    const {file, replicas} = await keeper.sealUpload(fileId, request.body.sha256, request.body.pipeline)
    return {name: file.name, fileId: file.fileId, size: file.size, sha256: file.sha256, replicas}
  })

  serveRoute(app, keeperRoutes.dropUpload, async (request) => {
    const fileId = request.params.id
    const upload = keeper.store.held(fileId)
    if (!upload) return {uploadId: fileId, dropped: false}
    await requireGrant(key, request, {ops: ['write'], keeperId: keeper.id, name: upload.name, fileId})
    return {uploadId: fileId, dropped: await keeper.dropUpload(fileId)}
  })

  const held = (name: string, fileId: string | undefined) => {
    assertValidName(name)
    const file = keeper.store.get(name, fileId)
    if (!file) throw new DfsError('DFS_ERR_NOT_FOUND', `this keeper holds no file named "${name}"`)
    return file
  }

  // fastify answers HEAD with this route too; send leaves the body out for HEAD.
  serveRoute(app, keeperRoutes.read, async (request, reply) => {
    const {name} = request.params
    assertValidName(name)
    // A copy the master ordered reads with the `replicate-from` grant the order carried.
    const grant = await requireGrant(key, request, {ops: ['read', 'replicate-from'], keeperId: keeper.id, name, fileId: request.query.fileId})
    const file = held(name, grant?.fileId ?? request.query.fileId)
    const whole = request.method === 'GET' && asksWholeSmallFile(request.headers, file.size) ? await keeper.store.readWhole(file) : undefined
    // Loaded by the first read, not at every keeper's start (with its table of types, ~0.1 CPU-s).
    const [sendFile, contentType] = await Promise.all([whole ? undefined : import('send').then((module) => module.default), contentTypeOf(name)])
    reply.hijack()
    const res = reply.raw
    // A client that hung up during the awaits above is gone, and its 'close' came before anyone
    // listened: counting this transfer as started would leave it counted for good.
    if (res.destroyed) return
    res.setHeader('Content-Type', contentType)
    res.setHeader('ETag', `"${file.sha256}"`)
    res.setHeader(FILE_ID_HEADER, file.fileId)
    res.setHeader(SHA256_HEADER, file.sha256)
    keeper.transferStarted()
    const start = performance.now()
    res.once('close', () => {
      keeper.transferEnded()
      if (request.method === 'GET') keeper.metrics.downloads.observe({result: res.writableFinished ? 'ok' : 'aborted'}, secondsSince(start))
    })
    if (whole) {
      // The headers send gives the same answer (mp4-serving.test.ts compares them).
      res.setHeader('Accept-Ranges', 'bytes')
      res.setHeader('Last-Modified', whole.modified.toUTCString())
      if (request.headers.range !== undefined) {
        res.statusCode = 206
        res.setHeader('Content-Range', `bytes 0-${file.size - 1}/${file.size}`)
      }

      res.setHeader('Content-Length', whole.bytes.length)
      res.end(whole.bytes)
      return
    }

    // send passes its options on to fs.createReadStream: 1 MiB reads instead of 64 KiB ones.
    const options = {etag: false, dotfiles: 'allow', cacheControl: false, acceptRanges: true, highWaterMark: CHUNK_SIZE} as send.SendOptions
    const stream = sendFile!(request.raw, keeper.store.pathOf(file.fileId), options)
    stream.on('error', (error: {status?: number; headers?: Record<string, string>; message?: string}) => {
      const status = error.status ?? 500
      if (res.headersSent) return res.destroy()
      for (const [key, value] of Object.entries(error.headers ?? {})) res.setHeader(key, value)
      const code = status === 416 ? 'DFS_ERR_RANGE_NOT_SATISFIABLE' : status === 404 ? 'DFS_ERR_NOT_FOUND' : 'DFS_ERR_INTERNAL'
      res.statusCode = status
      res.setHeader('Content-Type', 'application/json; charset=utf-8')
      res.end(JSON.stringify({error: code, message: status === 416 ? 'requested range not satisfiable' : String(error.message)}))
    })
    stream.pipe(res)
  })

  // Each item is checked as a GET of it is (its grant, its name, its generation) and answered by
  // its own frame: a file refused or missing is an error frame, and the others are still served.
  // One file's bytes in memory at a time (files of up to MAX_BATCH_READ_SIZE), written with the
  // socket's backpressure.
  serveRoute(app, keeperRoutes.readBatch, async (request, reply) => {
    const items = request.body.files
    reply.hijack()
    const res = reply.raw
    if (res.destroyed) return
    res.statusCode = 200
    res.setHeader('Content-Type', FRAMES_TYPE)
    keeper.transferStarted()
    res.once('close', () => keeper.transferEnded())
    keeper.metrics.batchReads.inc()
    for (const item of items) {
      let head: Record<string, unknown>
      let bytes: Buffer | undefined
      try {
        assertValidName(item.name)
        const grant = await requireGrantToken(key, item.grant, {ops: ['read', 'replicate-from'], keeperId: keeper.id, name: item.name, fileId: item.fileId}, 'the item\'s grant')
        const file = held(item.name, grant?.fileId ?? item.fileId)
        if (file.size > MAX_BATCH_READ_SIZE) throw new DfsError('DFS_ERR_BAD_REQUEST', `"${item.name}" is larger than a batch read serves (${MAX_BATCH_READ_SIZE} bytes): GET it`)
        const whole = await keeper.store.readWhole(file)
        // A blob gone or not of its recorded size: the client reads the file from another replica.
        if (!whole) throw new DfsError('DFS_ERR_NOT_FOUND', `this keeper cannot read its copy of "${item.name}" whole`)
        head = {fileId: file.fileId, size: file.size, sha256: file.sha256}
        bytes = whole.bytes
        keeper.metrics.batchReadFiles.inc({result: 'served'})
      } catch (error) {
        const refusal = asDfsError(error)
        head = {fileId: item.fileId, error: refusal.code, message: refusal.message}
        keeper.metrics.batchReadFiles.inc({result: 'refused'})
      }

      if (res.destroyed) return
      res.cork()
      res.write(`${JSON.stringify(head)}\n`)
      const more = bytes && bytes.length > 0 ? res.write(bytes) : true
      res.uncork()
      if (!more) await drained(res)
    }

    if (!res.destroyed) res.end()
  })

  serveRoute(app, keeperRoutes.remove, async (request) => {
    await fromMaster(request)
    const {name} = request.params
    if (gate && request.query.fileId === undefined) throw new DfsError('DFS_ERR_BAD_REQUEST', 'a delete order names the generation it deletes (?fileId=)')
    const file = held(name, request.query.fileId)
    await keeper.store.remove(file.fileId)
    return {name, fileId: file.fileId, deleted: true} as const
  })

  serveRoute(app, keeperRoutes.verify, async (request) => {
    await fromMaster(request)
    return keeper.verifyReplica(held(request.params.name, request.query.fileId))
  })

  serveRoute(app, keeperRoutes.replicate, async (request) => {
    await fromMaster(request)
    assertValidName(request.body.name)
    const stored = await keeper.pullReplica(request.body)
    return {name: stored.name, fileId: stored.fileId, size: stored.size, sha256: stored.sha256}
  })

  serveRoute(app, keeperRoutes.replicateBatch, async (request) => {
    await fromMaster(request)
    const results = await keeper.pullReplicas(request.body.copies)
    const copies = request.body.copies.map(({fileId}, index) => {
      const result = results[index]
      return result instanceof DfsError ? {fileId, stored: false, error: result.code, message: result.message} : {fileId, stored: true}
    })
    return {copies}
  })

  return app
}

/**
 * A GET that a small file answers from one buffer (FileStore.readWhole) instead of a read stream:
 * the whole file, with no Range or the one range over all of it (as a client's get of a file of
 * one range asks), and no condition (If-None-Match, If-Range, ...: send answers those). Up to
 * CHUNK_SIZE, what one read of the stream would hold anyway.
 */
function asksWholeSmallFile(headers: FastifyRequest['headers'], size: number): boolean {
  if (size > CHUNK_SIZE) return false
  for (const header in headers) if (header.startsWith('if-')) return false
  return headers.range === undefined || (size > 0 && headers.range === `bytes=0-${size - 1}`)
}

/**
 * Lets the master's dashboard, a page of the master's origin, upload straight to this keeper (a
 * cross-origin PUT with the protocol's headers) and read its answers: CORS for that one origin,
 * preflight included. Other origins get no CORS headers, so browsers keep their pages out. Every
 * request still needs its grant; CORS only lets the dashboard show one.
 */
function allowOrigin(app: FastifyInstance, origin: string): void {
  app.addHook('onRequest', async (request, reply) => {
    if (request.headers.origin !== origin) return
    // On the raw answer, so that the file reads (which write it themselves) carry them too.
    reply.raw.setHeader('Access-Control-Allow-Origin', origin)
    reply.raw.setHeader('Vary', 'Origin')
    reply.raw.setHeader('Access-Control-Expose-Headers', [FILE_ID_HEADER, SHA256_HEADER, 'content-range', 'etag'].join(', '))
    if (request.method === 'OPTIONS' && request.headers['access-control-request-method'] !== undefined) {
      reply.raw.setHeader('Access-Control-Allow-Methods', 'GET, HEAD, PUT')
      reply.raw.setHeader('Access-Control-Allow-Headers', ['content-type', 'range', SHA256_HEADER, SIZE_HEADER, GRANT_HEADER].join(', '))
      reply.raw.setHeader('Access-Control-Max-Age', '600')
      return reply.code(204).send()
    }
  })
}

/** Resolves when the answer takes more bytes again, or is closed (listeners removed either way). */
async function drained(res: ServerResponse): Promise<void> {
  await new Promise<void>((resolve) => {
    const done = () => {
      res.off('drain', done)
      res.off('close', done)
      resolve()
    }

    res.on('drain', done)
    res.on('close', done)
  })
}

function header(request: FastifyRequest, name: string): string | undefined {
  const value = request.headers[name]
  return Array.isArray(value) ? value[0] : value
}

/** The keepers a one-pass upload's bytes are forwarded to (the pipeline header), none without it; a clear 400 for a header that is not one. */
function pipelineOf(request: FastifyRequest): Pipeline | undefined {
  const value = header(request, PIPELINE_HEADER)
  if (value === undefined) return undefined
  const refused = (problem: string) => new DfsError('DFS_ERR_BAD_REQUEST', `${PIPELINE_HEADER} is not a pipeline: ${problem}`)
  let pipeline: unknown
  try {
    pipeline = JSON.parse(value)
  } catch {
    throw refused('not JSON')
  }

  check(Pipeline, pipeline, refused)
  return pipeline as Pipeline
}

/** The size the client announced: `x-dfs-size`, else Content-Length. One of them is required. */
function announcedSize(request: FastifyRequest): number {
  const announced = header(request, SIZE_HEADER)
  const length = header(request, 'content-length')
  const parse = (value: string, what: string) => {
    if (!/^\d{1,16}$/.test(value) || !Number.isSafeInteger(Number(value))) {
      throw new DfsError('DFS_ERR_BAD_REQUEST', `${what} "${value}" is not a byte count`)
    }

    return Number(value)
  }

  if (announced !== undefined) {
    const size = parse(announced, SIZE_HEADER)
    if (length !== undefined && parse(length, 'Content-Length') !== size) {
      throw new DfsError('DFS_ERR_SIZE_MISMATCH', `Content-Length ${length} differs from the announced size ${size}`)
    }

    return size
  }

  if (length !== undefined) return parse(length, 'Content-Length')
  throw new DfsError('DFS_ERR_BAD_REQUEST', `an upload needs an ${SIZE_HEADER} or Content-Length header`)
}
