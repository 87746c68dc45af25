import type {ClusterKey} from './cluster-key.js'
import {DfsError} from './errors.js'
import {signCredential, verifyCredential} from './jwt.js'

// A grant is the master's permission for one operation on one generation of one file at one
// keeper (after SeaweedFS's weed/security/jwt.go, whose only claim is the file id). The keeper
// checks it offline with the shared key: no call to the master per request.

/**
 * What a grant allows at a keeper: `read` a file (GET/HEAD, Range), `write` it (the upload the
 * master issued a ticket for), `delete` it, `verify` it (re-hash on a reader's suspicion), or
 * `replicate-from`: another keeper reads it to make a copy the master ordered.
 */
export const GRANT_OPS = ['read', 'write', 'delete', 'verify', 'replicate-from'] as const
export type GrantOp = (typeof GRANT_OPS)[number]

/** Where a grant travels: this header, or the `grant` query parameter (so a plain URL plays in a browser's <video>). */
export const GRANT_HEADER = 'x-dfs-grant'
export const GRANT_QUERY = 'grant'

/**
 * How long a grant lives by default, in seconds. A grant is checked when a request starts, so a
 * long upload outlives its grant; a read grant lasts an hour because a player fetches ranges for as
 * long as the video plays.
 */
export const GRANT_TTL_SECONDS: Record<GrantOp, number> = {read: 3600, write: 300, delete: 300, verify: 300, 'replicate-from': 300}

export interface GrantClaims {
  op: GrantOp
  /** The generation of the file (for `write`, the upload id that becomes it). */
  fileId: string
  name: string
  size: number
  sha256: string
  /** The one keeper the grant is good at. */
  keeperId: string
  /**
   * That keeper's URL, in a write pipeline's grants: the keeper before it forwards bytes there and
   * nowhere else, so that a client cannot point a keeper at an address of its choosing.
   */
  url?: string
}

export interface Grant extends GrantClaims {
  expiresAt: string
}

/** What the keeper expects of a request's grant. */
export interface GrantCheck {
  /** The operations this route performs; `read` routes also take `replicate-from`. */
  ops: readonly GrantOp[]
  /** The keeper checking it: a grant for another keeper is refused. */
  keeperId: string
  /** The name in the request's path. */
  name: string
  /** The generation the request names, if it names one. */
  fileId?: string
}

/** Mints a grant (the master does, when it hands out a ticket, a replica list or a copy order). */
export async function mintGrant(key: ClusterKey, claims: GrantClaims, options: {ttlSeconds?: number; now?: number} = {}): Promise<string> {
  if (!(GRANT_OPS as readonly string[]).includes(claims.op)) throw new DfsError('DFS_ERR_BAD_REQUEST', `unknown grant operation "${claims.op}"`)
  const payload = {op: claims.op, fid: claims.fileId, name: claims.name, size: claims.size, sha256: claims.sha256, keeper: claims.keeperId, ...(claims.url === undefined ? {} : {url: claims.url})}
  return signCredential(key, 'grant', payload, {ttlSeconds: options.ttlSeconds ?? GRANT_TTL_SECONDS[claims.op], now: options.now})
}

/**
 * Verifies a grant offline and that it covers this request: its operation, this keeper, this name
 * and generation. A forged, expired or foreign credential is DFS_ERR_UNAUTHENTICATED; a genuine
 * grant for something else is DFS_ERR_FORBIDDEN.
 */
export async function verifyGrant(key: ClusterKey, token: string, check: GrantCheck): Promise<Grant> {
  const payload = await verifyCredential(key, 'grant', token, ['op', 'fid', 'name', 'size', 'sha256', 'keeper'])
  const {op, fid, name, size, sha256, keeper, url} = payload
  if (typeof op !== 'string' || typeof fid !== 'string' || typeof name !== 'string' || typeof keeper !== 'string' || typeof sha256 !== 'string' || typeof size !== 'number' || (url !== undefined && typeof url !== 'string')) {
    throw new DfsError('DFS_ERR_UNAUTHENTICATED', 'the grant is malformed')
  }

  const forbidden = (message: string) => new DfsError('DFS_ERR_FORBIDDEN', message)
  if (!(check.ops as readonly string[]).includes(op)) throw forbidden(`the grant allows ${op}, not ${check.ops.join(' or ')}`)
  if (keeper !== check.keeperId) throw forbidden(`the grant is for keeper ${keeper}, not this one (${check.keeperId})`)
  if (name !== check.name) throw forbidden(`the grant is for another file than "${check.name}"`)
  if (check.fileId !== undefined && fid !== check.fileId) throw forbidden(`the grant is for another generation of "${check.name}"`)
  return {op: op as GrantOp, fileId: fid, name, size, sha256, keeperId: keeper, ...(typeof url === 'string' ? {url} : {}), expiresAt: new Date(payload.exp! * 1000).toISOString()}
}

/** The grant a request carries: the header, else the query parameter. */
export function grantOf(request: {headers: Record<string, string | string[] | undefined>; query?: unknown}): string | undefined {
  const header = request.headers[GRANT_HEADER]
  if (typeof header === 'string' && header !== '') return header
  const query = (request.query as Record<string, unknown> | undefined)?.[GRANT_QUERY]
  return typeof query === 'string' && query !== '' ? query : undefined
}

/** A URL that reads a file from a keeper with its grant, fit for a browser or curl. */
export function grantUrl(keeperUrl: string, name: string, grant: string): string {
  return `${keeperUrl}/files/${encodeURIComponent(name)}?${GRANT_QUERY}=${encodeURIComponent(grant)}`
}

/** Peer credentials (peer-client.ts) that show `grant` with every request; none for no grant (a cluster without a key). */
export function showingGrant(grant: string | undefined): (() => Record<string, string>) | undefined {
  if (grant === undefined) return undefined
  const headers = {[GRANT_HEADER]: grant}
  return () => headers
}
