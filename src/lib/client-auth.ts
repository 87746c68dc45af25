import type {FastifyRequest} from 'fastify'

import type {ClusterKey} from './cluster-key.js'
import {bearerToken, requireScope, verifyClientToken, type Scope} from './client-tokens.js'
import {DfsError} from './errors.js'
import {MEMBER_HEADER, type MemberGate} from './member-auth.js'

/**
 * Checks that a request to a client route carries a client token (`Authorization: Bearer`) that
 * is genuine, unexpired, not revoked and of scope `scope` or more: 401 DFS_ERR_UNAUTHENTICATED
 * without one or with a bad one, 403 DFS_ERR_FORBIDDEN for too small a scope. `orMember`: a member
 * of the cluster may ask too (a keeper settling an upload whose commit had no answer looks the file
 * up). Without a cluster key, every request passes, as in loopback-only development.
 */
export type ClientCheck = (request: FastifyRequest, scope: Scope, options?: {orMember?: boolean}) => Promise<void>

export function clientCheck(key: ClusterKey | undefined, isRevoked: (id: string) => boolean, members: MemberGate | undefined): ClientCheck {
  if (!key) return async () => {}
  return async (request, scope, options = {}) => {
    if (options.orMember && members && request.headers[MEMBER_HEADER] !== undefined) {
      await members.check(request)
      return
    }

    const token = bearerToken(request.headers.authorization)
    if (!token) throw new DfsError('DFS_ERR_UNAUTHENTICATED', `this needs a client token of scope ${scope} or more (--token or DFS_TOKEN; make one with dfs token create)`)
    requireScope(await verifyClientToken(key, token, isRevoked), scope)
  }
}
