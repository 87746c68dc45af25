import type {FastifyInstance, FastifyRequest} from 'fastify'

import {createServer} from '../../lib/http-server.js'
import {
  schemas,
  type CommitRequest,
  type CorruptReport,
  type SuspectReport,
  type HeartbeatRequest,
  type RegisterRequest,
  type ReplicaReport,
  type UploadRequest,
} from '../../lib/protocol.js'
import type {Master} from './master.js'

type ByName = {Params: {name: string}}
type ById = {Params: {id: string}}

/** The master's HTTP face: every route parses and validates, then calls one Master method. */
export function createMasterServer(master: Master, logLevel: string): FastifyInstance {
  const app = createServer({logLevel, role: 'master'})

  app.get('/health', async () => ({role: 'master'}))

  app.post('/keepers', {schema: {body: schemas.register}}, async (request: FastifyRequest<{Body: RegisterRequest}>) =>
    master.register(request.body),
  )
  app.post('/keepers/:id/heartbeat', {schema: {params: schemas.idParams, body: schemas.heartbeat}}, async (request: FastifyRequest<ById & {Body: HeartbeatRequest}>) =>
    master.heartbeat(request.params.id, request.body),
  )
  app.get('/keepers', async () => ({keepers: master.status()}))

  app.post('/uploads', {schema: {body: schemas.upload}}, async (request: FastifyRequest<{Body: UploadRequest}>, reply) =>
    reply.status(201).send(master.beginUpload(request.body)),
  )
  app.post('/uploads/:id/commit', {schema: {params: schemas.idParams, body: schemas.commit}}, async (request: FastifyRequest<ById & {Body: CommitRequest}>, reply) =>
    reply.status(201).send(master.commitUpload(request.params.id, request.body)),
  )

  app.get('/files', async () => ({files: master.list()}))
  app.get('/files/:name', {schema: {params: schemas.nameParams}}, async (request: FastifyRequest<ByName>) => master.stat(request.params.name))
  app.delete('/files/:name', {schema: {params: schemas.nameParams}}, async (request: FastifyRequest<ByName>) => master.remove(request.params.name))
  app.post('/files/:name/replicas', {schema: {params: schemas.nameParams, body: schemas.replicaReport}}, async (request: FastifyRequest<ByName & {Body: ReplicaReport}>) =>
    master.reportReplica(request.params.name, request.body),
  )

  app.post('/files/:name/corrupt', {schema: {params: schemas.nameParams, body: schemas.fileReport}}, async (request: FastifyRequest<ByName & {Body: CorruptReport}>) =>
    master.reportCorrupt(request.params.name, request.body),
  )
  app.post('/files/:name/suspect', {schema: {params: schemas.nameParams, body: schemas.fileReport}}, async (request: FastifyRequest<ByName & {Body: SuspectReport}>) =>
    master.suspect(request.params.name, request.body),
  )
  app.get('/fsck', async () => master.fsck())

  return app
}
