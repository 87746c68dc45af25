import type {FastifyRequest} from 'fastify'

import type {ClusterKey} from '../../lib/cluster-key.js'
import {DfsError} from '../../lib/errors.js'
import {GRANT_HEADER, GRANT_QUERY, grantOf, verifyGrant, type Grant, type GrantCheck} from '../../lib/grants.js'

/**
 * Checks, offline, that a request on a file carries the master's grant for it at this keeper
 * (grants.ts): 401 without one or with a forged or expired one, 403 for a genuine grant of another
 * operation, keeper, name or generation. Without a cluster key nothing is asked (undefined).
 */
export async function requireGrant(key: ClusterKey | undefined, request: FastifyRequest, check: GrantCheck): Promise<Grant | undefined> {
  return requireGrantToken(key, key ? grantOf(request) : undefined, check, `${GRANT_HEADER} header or ?${GRANT_QUERY}=`)
}

/**
 * The same check for a grant that travels elsewhere than in the request's header or query (an item
 * of a batch read, `where` it should be): 401 without one, and so on. Nothing asked without a key.
 */
export async function requireGrantToken(key: ClusterKey | undefined, token: string | undefined, check: GrantCheck, where: string): Promise<Grant | undefined> {
  if (!key) return undefined
  if (!token) throw new DfsError('DFS_ERR_UNAUTHENTICATED', `this needs the master's grant for "${check.name}" (${where})`)
  return verifyGrant(key, token, check)
}

/** Throws DFS_ERR_FORBIDDEN unless an upload is the one its write grant names (its size and sha256). */
export function requireGrantedUpload(grant: Grant | undefined, upload: {size: number; sha256: string}): void {
  if (!grant) return
  if (grant.size !== upload.size || grant.sha256 !== upload.sha256) {
    throw new DfsError('DFS_ERR_FORBIDDEN', `the grant is for an upload of ${grant.size} bytes with another sha256 than announced`)
  }
}

/**
 * Checks the pipeline a one-pass upload's bytes are to be forwarded down: with a cluster key, each
 * keeper must come with the master's write grant for this very upload at that keeper and at that
 * URL, so that a keeper forwards only to the chain the master made, and to no other address (403
 * otherwise, 401 for a missing or forged one).
 */
export async function requireGrantedPipeline(key: ClusterKey | undefined, pipeline: ReadonlyArray<{id: string; url: string; grant?: string}>, upload: {fileId: string; name: string; size: number}): Promise<void> {
  if (!key) return
  for (const next of pipeline) {
    if (!next.grant) throw new DfsError('DFS_ERR_UNAUTHENTICATED', `keeper ${next.id} of the pipeline comes without the master's grant`)
    const grant = await verifyGrant(key, next.grant, {ops: ['write'], keeperId: next.id, name: upload.name, fileId: upload.fileId})
    requireGrantedUpload(grant, {size: upload.size, sha256: ''})
    if (grant.url !== next.url) throw new DfsError('DFS_ERR_FORBIDDEN', `keeper ${next.id} of the pipeline comes with another URL than the master's grant names`)
  }
}
