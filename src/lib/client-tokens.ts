import type {ClusterKey} from './cluster-key.js'
import {DfsError} from './errors.js'
import {newId} from './ids.js'
import {signCredential, verifyCredential} from './jwt.js'
import {TOKEN_ID} from './protocol.js'

/** What a client token allows, each scope including the ones before it: read ⊂ write ⊂ admin. */
export const SCOPES = ['read', 'write', 'admin'] as const
export type Scope = (typeof SCOPES)[number]

/** A client token's claims, as the CLI shows them and the master checks them. */
export interface ClientToken {
  /** The token's unique id (`jti`), for revocation. */
  id: string
  scope: Scope
  issuedAt: string
  expiresAt: string
}

/** Answers whether a token id was revoked (the master's table). */
export type IsRevoked = (id: string) => boolean | Promise<boolean>

export function isScope(value: unknown): value is Scope {
  return typeof value === 'string' && (SCOPES as readonly string[]).includes(value)
}

/** Whether a token of scope `granted` may do what needs `needed`. */
export function scopeCovers(granted: Scope, needed: Scope): boolean {
  return SCOPES.indexOf(granted) >= SCOPES.indexOf(needed)
}

/** Throws DFS_ERR_FORBIDDEN unless the token's scope covers `needed`. */
export function requireScope(token: ClientToken, needed: Scope): void {
  if (!scopeCovers(token.scope, needed)) {
    throw new DfsError('DFS_ERR_FORBIDDEN', `this needs a token of scope ${needed} or more; token ${token.id} has scope ${token.scope}`)
  }
}

/**
 * Mints a client token offline, from the cluster key alone (no master involved): HS256, with its
 * scope, a fresh unique id, iat and exp.
 */
export async function mintClientToken(key: ClusterKey, options: {scope: Scope; ttlMs: number; now?: number}): Promise<{token: string; claims: ClientToken}> {
  if (!isScope(options.scope)) throw new DfsError('DFS_ERR_BAD_REQUEST', `unknown scope "${String(options.scope)}": use ${SCOPES.join(', ')}`)
  const now = options.now ?? Date.now()
  const ttlSeconds = Math.ceil(options.ttlMs / 1000)
  const id = newId(12)
  const token = await signCredential(key, 'client-token', {scope: options.scope, jti: id}, {ttlSeconds, now})
  const issued = Math.floor(now / 1000) * 1000
  return {token, claims: {id, scope: options.scope, issuedAt: new Date(issued).toISOString(), expiresAt: new Date(issued + ttlSeconds * 1000).toISOString()}}
}

/**
 * Verifies a client token (see verifyCredential) and that it names a scope and was not revoked;
 * returns its claims. Scope checks are the caller's, with requireScope.
 */
export async function verifyClientToken(key: ClusterKey, token: string, isRevoked: IsRevoked): Promise<ClientToken> {
  const payload = await verifyCredential(key, 'client-token', token, ['jti'])
  const {jti, scope} = payload
  if (typeof jti !== 'string' || !TOKEN_ID.test(jti)) throw new DfsError('DFS_ERR_UNAUTHENTICATED', 'the token has no valid id')
  if (!isScope(scope)) throw new DfsError('DFS_ERR_UNAUTHENTICATED', `token ${jti} names no known scope`)
  if (await isRevoked(jti)) throw new DfsError('DFS_ERR_UNAUTHENTICATED', `token ${jti} was revoked`)
  return {id: jti, scope, issuedAt: new Date(payload.iat! * 1000).toISOString(), expiresAt: new Date(payload.exp! * 1000).toISOString()}
}

/** The token of an `Authorization: Bearer <token>` header, if there is one. */
export function bearerToken(authorization: string | undefined): string | undefined {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '')
  return match?.[1]
}
