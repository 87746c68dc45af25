import type {JWTPayload} from 'jose'

import type {ClusterKey, KeyPurpose} from './cluster-key.js'
import {DfsError} from './errors.js'

// Every dfs credential is an HS256 JWT. Each kind is signed with its own sub-key of the cluster key
// and carries its own `typ` header and audience: a grant can never pass for a client token, nor a
// client token for a keeper's word, even before the signature check would stop it.

export const ISSUER = 'dfs'

const KINDS: Record<KeyPurpose, {typ: string; audience: string; what: string}> = {
  'client-token': {typ: 'dfs-token+jwt', audience: 'dfs:client', what: 'token'},
  grant: {typ: 'dfs-grant+jwt', audience: 'dfs:grant', what: 'grant'},
  member: {typ: 'dfs-member+jwt', audience: 'dfs:member', what: 'member credential'},
}

// Why: jose is loaded when a credential is first signed or checked, not with this module. Every
// client command imports this module (the protocol names the grant header, and put shows grants),
// and loading jose cost about half of `node -e 0` again at each command's start; most sign nothing.
let loaded: typeof import('jose') | undefined
async function loadJose(): Promise<typeof import('jose')> {
  return (loaded ??= await import('jose'))
}

// Clocks of the machines of one cluster may differ this much.
const CLOCK_TOLERANCE_SECONDS = 30
// Longer than any credential dfs makes: refused unread.
const MAX_LENGTH = 4096

export interface SignOptions {
  /** Seconds from `now` until it expires. */
  ttlSeconds: number
  /** Milliseconds since the epoch it is issued at; now by default (a test may issue in the past). */
  now?: number
}

/** Signs `claims` as a credential of one kind: HS256, issuer "dfs", the kind's audience, iat and exp. */
export async function signCredential(key: ClusterKey, kind: KeyPurpose, claims: JWTPayload, options: SignOptions): Promise<string> {
  const {typ, audience} = KINDS[kind]
  const iat = Math.floor((options.now ?? Date.now()) / 1000)
  const {SignJWT} = await loadJose()
  return new SignJWT(claims)
    .setProtectedHeader({alg: 'HS256', typ, kid: key.id})
    .setIssuer(ISSUER)
    .setAudience(audience)
    .setIssuedAt(iat)
    .setExpirationTime(iat + Math.max(1, Math.round(options.ttlSeconds)))
    .sign(key.subkey(kind))
}

/**
 * Verifies a credential of one kind and returns its claims. Only HS256 is accepted, whatever the
 * token's header says (no `none`, no RS256 with our secret taken for a public key); it must not be
 * expired and must name dfs as issuer and the kind's audience. Any failure is DFS_ERR_UNAUTHENTICATED.
 */
export async function verifyCredential(key: ClusterKey, kind: KeyPurpose, token: string, requiredClaims: string[] = []): Promise<JWTPayload> {
  const {typ, audience, what} = KINDS[kind]
  if (token.length > MAX_LENGTH) throw new DfsError('DFS_ERR_UNAUTHENTICATED', `the ${what} is longer than any dfs makes`)
  const jose = await loadJose()
  try {
    const {payload} = await jose.jwtVerify(token, key.subkey(kind), {
      algorithms: ['HS256'],
      issuer: ISSUER,
      audience,
      typ,
      requiredClaims: ['iat', 'exp', ...requiredClaims],
      clockTolerance: CLOCK_TOLERANCE_SECONDS,
    })
    return payload
  } catch (error) {
    throw unauthenticated(what, token, key, error, jose)
  }
}

/** Says why a credential was refused, in one line that never repeats the credential itself. */
function unauthenticated(what: string, token: string, key: ClusterKey, error: unknown, {errors, decodeProtectedHeader}: typeof import('jose')): DfsError {
  const refuse = (message: string) => new DfsError('DFS_ERR_UNAUTHENTICATED', message, {cause: error})
  if (error instanceof errors.JWTExpired) {
    const exp = typeof error.payload.exp === 'number' ? ` at ${new Date(error.payload.exp * 1000).toISOString()}` : ''
    return refuse(`the ${what} expired${exp}`)
  }

  if (error instanceof errors.JOSEAlgNotAllowed) return refuse(`the ${what} is not signed with HS256, the only algorithm dfs accepts`)
  if (error instanceof errors.JWSSignatureVerificationFailed) {
    const kid = headerKeyId(token, decodeProtectedHeader)
    const other = kid !== undefined && kid !== key.id ? ` (it names key ${kid}, this cluster's is ${key.id})` : ''
    return refuse(`the ${what} was not signed with this cluster's key for ${what}s${other}`)
  }

  if (error instanceof errors.JWTClaimValidationFailed) return refuse(`the ${what} has a wrong or missing "${error.claim}" (${error.reason})`)
  return refuse(`the ${what} is malformed`)
}

function headerKeyId(token: string, decodeProtectedHeader: typeof import('jose').decodeProtectedHeader): string | undefined {
  try {
    const {kid} = decodeProtectedHeader(token)
    return typeof kid === 'string' && /^[0-9a-f]{1,32}$/.test(kid) ? kid : undefined
  } catch {
    return undefined
  }
}
