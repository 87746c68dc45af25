import type {FastifyInstance, FastifyRequest} from 'fastify'

import {TOKEN_ID} from '../../lib/client-tokens.js'
import type {MasterTable} from './table.js'

// The master's routes for client tokens. They live apart from server.ts until authentication is
// wired into every route (then POST /tokens/revoke takes an admin token); the body's type and
// schema are to join src/lib/protocol.ts then.

export interface RevokeTokenRequest {
  /** The token's id (its `jti`), as `dfs token create` prints it. */
  id: string
}

export interface RevokeTokenResponse {
  id: string
  revoked: true
  /** False if it had been revoked before. */
  newly: boolean
}

const revokeSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['id'],
  properties: {id: {type: 'string', pattern: TOKEN_ID.source}},
} as const

export function addTokenRoutes(app: FastifyInstance, table: MasterTable): void {
  app.post('/tokens/revoke', {schema: {body: revokeSchema}}, async (request: FastifyRequest<{Body: RevokeTokenRequest}>): Promise<RevokeTokenResponse> => {
    const newly = table.revokeToken(request.body.id)
    return {id: request.body.id, revoked: true, newly}
  })
}
