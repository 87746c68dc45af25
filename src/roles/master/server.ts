import type {FastifyInstance} from 'fastify'

import {serveRoute} from '../../lib/http-routes.js'
import {createServer} from '../../lib/http-server.js'
import {masterRoutes} from '../../lib/protocol.js'
import type {ServerTls} from '../../lib/tls.js'
import type {Master} from './master.js'

/** The master's HTTP face: every route parses and validates, then calls one Master method. */
export function createMasterServer(master: Master, logLevel: string, tls?: ServerTls): FastifyInstance {
  const app = createServer({logLevel, role: 'master', tls})

  serveRoute(app, masterRoutes.health, async () => ({role: 'master'}) as const)

  serveRoute(app, masterRoutes.register, async (request) => master.register(request.body))
  serveRoute(app, masterRoutes.heartbeat, async (request) => master.heartbeat(request.params.id, request.body))
  serveRoute(app, masterRoutes.keepers, async () => ({keepers: master.status()}))

  serveRoute(app, masterRoutes.beginUpload, async (request) => master.beginUpload(request.body))
  serveRoute(app, masterRoutes.commitUpload, async (request) => master.commitUpload(request.params.id, request.body))

  serveRoute(app, masterRoutes.list, async () => ({files: master.list()}))
  serveRoute(app, masterRoutes.stat, async (request) => master.stat(request.params.name))
  serveRoute(app, masterRoutes.remove, async (request) => master.remove(request.params.name))
  serveRoute(app, masterRoutes.reportReplica, async (request) => master.reportReplica(request.params.name, request.body))
  serveRoute(app, masterRoutes.reportCorrupt, async (request) => master.reportCorrupt(request.params.name, request.body))
  serveRoute(app, masterRoutes.suspect, async (request) => master.suspect(request.params.name, request.body))
  serveRoute(app, masterRoutes.fsck, async () => master.fsck())
  serveRoute(app, masterRoutes.revokeToken, async (request) => master.revokeToken(request.body.id))

  return app
}
