import type {FastifyInstance, FastifyRequest} from 'fastify'

import {serveRoute} from '../../lib/http-routes.js'
import {MemberGate, type VerifiedMember} from '../../lib/member-auth.js'
import {createServer} from '../../lib/http-server.js'
import {sendMetrics} from '../../lib/metrics.js'
import {masterRoutes} from '../../lib/protocol.js'
import type {ServerTls} from '../../lib/tls.js'
import {clientCheck} from '../../lib/client-auth.js'
import {sendDashboardFile} from './dashboard.js'
import type {Master} from './master.js'

/** The master's HTTP face: every route parses and validates, then calls one Master method. */
export function createMasterServer(master: Master, logLevel: string, tls?: ServerTls): FastifyInstance {
  const app = createServer({logLevel, role: 'master', tls, registry: master.metrics.registry})
  // The calls of keepers: with a cluster key, only from members (401 otherwise); the Master then
  // checks that each keeper speaks for itself.
  const gate = master.options.clusterKey ? new MemberGate(master.options.clusterKey, () => 'master') : undefined
  const member = async (request: FastifyRequest): Promise<VerifiedMember | undefined> => gate?.check(request)
  // Client routes ask for a token of the scope named at each (read ⊂ write ⊂ admin), when the cluster has a key.
  const client = clientCheck(master.options.clusterKey, (id) => master.table.isTokenRevoked(id), gate)
  // The table commits its writes in groups (table.ts): no answer leaves before the writes made so
  // far are durable, so none tells of a file, replica or revocation that a crash could undo.
  app.addHook('onSend', async (_request, _reply, payload) => {
    await master.table.durable()
    return payload
  })

  // Probes of orchestrators carry no credential, and these answers tell nothing but up or not.
  serveRoute(app, masterRoutes.health, async () => ({role: 'master', status: 'ok'}) as const)
  serveRoute(app, masterRoutes.ready, async () => {
    master.assertReady()
    return {status: 'ready'} as const
  })
  // Counts and sizes, no names: a `read` token with a key, unless the operator opened it (docs/security.md).
  serveRoute(app, masterRoutes.metrics, async (request, reply) => {
    if (!master.options.metricsPublic) await client(request, 'read')
    await sendMetrics(master.metrics.registry, reply)
  })

  serveRoute(app, masterRoutes.register, async (request) => master.register(request.body, await member(request)))
  serveRoute(app, masterRoutes.heartbeat, async (request) => master.heartbeat(request.params.id, request.body, await member(request)))
  serveRoute(app, masterRoutes.keepers, async (request) => {
    await client(request, 'read')
    return {keepers: master.status()}
  })
  serveRoute(app, masterRoutes.drainKeeper, async (request) => {
    await client(request, 'admin')
    return master.drainKeeper(request.params.id)
  })
  serveRoute(app, masterRoutes.forgetKeeper, async (request) => {
    await client(request, 'admin')
    return master.forgetKeeper(request.params.id)
  })

  serveRoute(app, masterRoutes.beginUpload, async (request) => {
    await client(request, 'write')
    return master.beginUpload(request.body)
  })
  serveRoute(app, masterRoutes.beginUploads, async (request) => {
    await client(request, 'write')
    return {tickets: await master.beginUploads(request.body.uploads)}
  })
  serveRoute(app, masterRoutes.commitUploads, async (request) => ({commits: master.commitUploads(request.body, await member(request))}))
  serveRoute(app, masterRoutes.commitUpload, async (request) => master.commitUpload(request.params.id, request.body, await member(request)))
  serveRoute(app, masterRoutes.sealUpload, async (request) => {
    await client(request, 'write')
    return master.sealUpload(request.params.id, request.body)
  })

  serveRoute(app, masterRoutes.list, async (request) => {
    await client(request, 'read')
    return master.list(request.query)
  })
  serveRoute(app, masterRoutes.stat, async (request) => {
    await client(request, 'read', {orMember: true})
    return master.stat(request.params.name)
  })
  serveRoute(app, masterRoutes.lookup, async (request) => {
    await client(request, 'read')
    return {files: await master.lookup(request.body.names)}
  })
  serveRoute(app, masterRoutes.remove, async (request) => {
    await client(request, 'admin')
    return master.remove(request.params.name)
  })
  serveRoute(app, masterRoutes.move, async (request) => {
    await client(request, 'write')
    return master.move(request.params.name, request.body.to)
  })
  serveRoute(app, masterRoutes.fileUrl, async (request) => {
    await client(request, 'read')
    return master.fileUrl(request.params.name, request.query.ttl)
  })
  serveRoute(app, masterRoutes.reportReplica, async (request) => master.reportReplica(request.params.name, request.body, await member(request)))
  serveRoute(app, masterRoutes.reportReplicas, async (request) => master.reportReplicas(request.body, await member(request)))
  serveRoute(app, masterRoutes.reportCorrupt, async (request) => master.reportCorrupt(request.params.name, request.body, await member(request)))
  serveRoute(app, masterRoutes.suspect, async (request) => {
    await client(request, 'write')
    return master.suspect(request.params.name, request.body)
  })
  serveRoute(app, masterRoutes.fsck, async (request) => {
    await client(request, 'read')
    return master.fsck(request.query)
  })
  serveRoute(app, masterRoutes.revokeToken, async (request) => {
    await client(request, 'admin')
    return master.revokeToken(request.body.id)
  })

  serveRoute(app, masterRoutes.dashboard, async (request, reply) => sendDashboardFile(request, reply, 'index.html'))
  serveRoute(app, masterRoutes.dashboardAsset, async (request, reply) => sendDashboardFile(request, reply, request.params.asset))

  return app
}
