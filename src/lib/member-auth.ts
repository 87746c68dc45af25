import type {ClusterKey} from './cluster-key.js'
import {DfsError} from './errors.js'
import {newId} from './ids.js'
import {signCredential, verifyCredential} from './jwt.js'

// Member authentication: the master and the keepers prove to each other that they hold the cluster
// key. Every call between them (registration, heartbeats, commits, reports; the master's copy,
// delete and verify orders) carries a fresh, short-lived credential bound to its sender, its
// recipient, its method and path; the recipient remembers the credential's id until it expires, so
// a copied credential cannot be played again.

/** The header a member's credential travels in. */
export const MEMBER_HEADER = 'x-dfs-member'

/** How long a member credential lives: one request, give or take the machines' clock skew. */
export const MEMBER_TTL_SECONDS = 60

/** Who speaks. */
export interface Member {
  role: 'master' | 'keeper'
  /** The keeper's id; absent on a keeper's very first registration, before the master gave it one. */
  keeperId?: string
  /**
   * A random id of the sending process, new at every start: a keeper id used by two processes at
   * once (a copied data dir) shows up as two instances.
   */
  instance: string
}

/** The recipient of a call: the master, or one keeper by its id. */
export type Recipient = 'master' | {keeperId: string}

export interface MemberRequest {
  method: string
  /** The path and query exactly as sent, e.g. `/keepers/k1/heartbeat`. */
  path: string
  to: Recipient
}

/** A verified credential: who sent it, and its id (kept by the replay guard). */
export interface VerifiedMember extends Member {
  id: string
}

/** This process as a member: a new instance id per start. */
export function newMember(role: 'master' | 'keeper', keeperId?: string): Member {
  return {role, keeperId, instance: newId(9)}
}

/** Mints the credential for one call; the sender makes a new one for every request. */
export async function mintMemberCredential(key: ClusterKey, from: Member, request: MemberRequest, options: {now?: number; ttlSeconds?: number} = {}): Promise<string> {
  const claims = {
    sub: from.role === 'master' ? 'master' : from.keeperId ? `keeper:${from.keeperId}` : 'keeper',
    inst: from.instance,
    to: recipientName(request.to),
    htm: request.method.toUpperCase(),
    htu: request.path,
    jti: newId(12),
  }
  return signCredential(key, 'member', claims, {ttlSeconds: options.ttlSeconds ?? MEMBER_TTL_SECONDS, now: options.now})
}

/**
 * Verifies a member credential: a genuine, unexpired one, for this recipient, this method and this
 * path, not seen before. Returns who sent it; checking that a keeper acts for its own id is the
 * route's (requireKeeper).
 */
export async function verifyMemberCredential(key: ClusterKey, token: string, expected: MemberRequest & {replay: ReplayGuard}): Promise<VerifiedMember> {
  const payload = await verifyCredential(key, 'member', token, ['sub', 'inst', 'to', 'htm', 'htu', 'jti'])
  const {sub, inst, to, htm, htu, jti} = payload
  if (typeof sub !== 'string' || typeof inst !== 'string' || typeof jti !== 'string') throw new DfsError('DFS_ERR_UNAUTHENTICATED', 'the member credential is malformed')
  const refuse = (message: string) => new DfsError('DFS_ERR_UNAUTHENTICATED', message)
  if (to !== recipientName(expected.to)) throw refuse(`the member credential is for ${String(to)}, not ${recipientName(expected.to)}`)
  if (htm !== expected.method.toUpperCase() || htu !== expected.path) throw refuse('the member credential is for another request')
  const member = parseSubject(sub)
  if (!member) throw refuse('the member credential names no known sender')
  if (!expected.replay.firstUse(jti, payload.exp!)) throw refuse('the member credential was already used')
  return {...member, instance: inst, id: jti}
}

/** Throws DFS_ERR_FORBIDDEN unless the caller is the keeper `keeperId` (a heartbeat, commit or report speaks for one keeper). */
export function requireKeeper(member: Member, keeperId: string): void {
  if (member.role !== 'keeper' || member.keeperId !== keeperId) {
    const who = member.role === 'master' ? 'the master' : member.keeperId ? `keeper ${member.keeperId}` : 'an unregistered keeper'
    throw new DfsError('DFS_ERR_FORBIDDEN', `${who} cannot act for keeper ${keeperId}`)
  }
}

/** Throws DFS_ERR_FORBIDDEN unless the caller is the master (orders to keepers come from it alone). */
export function requireMaster(member: Member): void {
  if (member.role !== 'master') throw new DfsError('DFS_ERR_FORBIDDEN', 'only the master gives orders to keepers')
}

/**
 * Remembers the ids of credentials seen, each until it expires (plus the clock tolerance), so that
 * none is accepted twice. Memory is bounded by the calls of one credential lifetime.
 */
export class ReplayGuard {
  readonly #seen = new Map<string, number>()
  readonly #toleranceSeconds: number

  constructor(toleranceSeconds = 30) {
    this.#toleranceSeconds = toleranceSeconds
  }

  /** True the first time an id is offered; false for a replay. */
  firstUse(id: string, expiresAt: number, now = Date.now() / 1000): boolean {
    this.#forget(now)
    if (this.#seen.has(id)) return false
    this.#seen.set(id, expiresAt + this.#toleranceSeconds)
    return true
  }

  get size(): number {
    return this.#seen.size
  }

  /** Drops ids whose credentials can no longer be accepted anyway; they were added roughly in expiry order. */
  #forget(now: number): void {
    for (const [id, until] of this.#seen) {
      if (until >= now) break
      this.#seen.delete(id)
    }
  }
}

function recipientName(to: Recipient): string {
  return to === 'master' ? 'master' : `keeper:${to.keeperId}`
}

function parseSubject(sub: string): Omit<Member, 'instance'> | undefined {
  if (sub === 'master') return {role: 'master'}
  if (sub === 'keeper') return {role: 'keeper'}
  const match = /^keeper:([A-Za-z0-9_-]{1,64})$/.exec(sub)
  return match ? {role: 'keeper', keeperId: match[1]} : undefined
}

/**
 * The credentials hook of a Peer that speaks as a member: a fresh credential for every request,
 * for the recipient the request goes to. `self` is asked per request, as a keeper learns its id
 * from its first registration.
 */
export function memberCredentials(key: ClusterKey, self: () => Member, to: Recipient): (request: {method: string; path: string}) => Promise<Record<string, string>> {
  return async (request) => ({[MEMBER_HEADER]: await mintMemberCredential(key, self(), {method: request.method, path: request.path, to})})
}

/**
 * A server's door for members: the credential of each request is checked against this server as
 * recipient (asked per request: a keeper's id may come later than its server) and the replay guard.
 */
export class MemberGate {
  readonly #replay = new ReplayGuard()

  constructor(
    readonly key: ClusterKey,
    readonly recipient: () => Recipient,
  ) {}

  /** The member who sent this request; DFS_ERR_UNAUTHENTICATED without a valid credential for it. */
  async check(request: {method: string; url: string; headers: Record<string, string | string[] | undefined>}): Promise<VerifiedMember> {
    const header = request.headers[MEMBER_HEADER]
    const token = Array.isArray(header) ? header[0] : header
    if (!token) throw new DfsError('DFS_ERR_UNAUTHENTICATED', `${request.method} ${request.url.split('?')[0]} is for members of the cluster: it needs a member credential (${MEMBER_HEADER})`)
    return verifyMemberCredential(this.key, token, {method: request.method, path: request.url, to: this.recipient(), replay: this.#replay})
  }
}
