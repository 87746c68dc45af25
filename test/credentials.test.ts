import assert from 'node:assert/strict'
import {describe, test} from 'node:test'

import {SignJWT, base64url} from 'jose'

import {bearerToken, mintClientToken, requireScope, scopeCovers, verifyClientToken, type ClientToken} from '../src/lib/client-tokens.js'
import {ClusterKey} from '../src/lib/cluster-key.js'
import {DfsError} from '../src/lib/errors.js'
import {GRANT_HEADER, grantOf, grantUrl, mintGrant, verifyGrant, type GrantClaims} from '../src/lib/grants.js'
import {ReplayGuard, mintMemberCredential, newMember, requireKeeper, requireMaster, verifyMemberCredential} from '../src/lib/member-auth.js'

const RAW = Buffer.alloc(32, 0x5a)
const key = await ClusterKey.fromBytes(RAW)
const otherKey = await ClusterKey.fromBytes(Buffer.alloc(32, 0x33))
const HOUR = 3_600_000
const notRevoked = () => false

/** The promise fails with this catalogue code and message, and the message does not repeat the credential. */
async function refused(promise: Promise<unknown>, code: 'DFS_ERR_UNAUTHENTICATED' | 'DFS_ERR_FORBIDDEN', pattern: RegExp, credential?: string): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof DfsError, String(error))
    assert.equal(error.code, code, error.message)
    assert.match(error.message, pattern)
    if (credential) {
      for (const part of credential.split('.')) if (part.length > 8) assert.ok(!error.message.includes(part), `the message repeats the credential: ${error.message}`)
    }

    return true
  })
}

/** A JWT with any header and claims, signed by `secret` (a test forging what an attacker might). */
function forge(header: Record<string, unknown>, claims: Record<string, unknown>, secret: Parameters<SignJWT['sign']>[0]): Promise<string> {
  return new SignJWT(claims).setProtectedHeader(header as {alg: string}).sign(secret)
}

function unsigned(header: Record<string, unknown>, claims: Record<string, unknown>, signature = ''): string {
  return `${base64url.encode(JSON.stringify(header))}.${base64url.encode(JSON.stringify(claims))}.${signature}`
}

const now = () => Math.floor(Date.now() / 1000)
const tokenClaims = () => ({iss: 'dfs', aud: 'dfs:client', scope: 'admin', jti: 'forged123', iat: now(), exp: now() + 3600})
const tokenHeader = {alg: 'HS256', typ: 'dfs-token+jwt'}

describe('client tokens', () => {
  test('a minted token verifies, with its scope, a unique id and its expiry', async () => {
    const {token, claims} = await mintClientToken(key, {scope: 'write', ttlMs: 30 * 24 * HOUR})
    const verified = await verifyClientToken(key, token, notRevoked)
    assert.deepEqual(verified, claims)
    assert.equal(verified.scope, 'write')
    assert.match(verified.id, /^[A-Za-z0-9_-]{16}$/)
    const days = (Date.parse(verified.expiresAt) - Date.parse(verified.issuedAt)) / (24 * HOUR)
    assert.equal(days, 30)
    assert.notEqual((await mintClientToken(key, {scope: 'write', ttlMs: HOUR})).claims.id, verified.id, 'every token gets its own id')
  })

  test('expired, signed with another key, or with the raw cluster key instead of its token sub-key: refused', async () => {
    const expired = (await mintClientToken(key, {scope: 'read', ttlMs: HOUR, now: Date.now() - 3 * HOUR})).token
    await refused(verifyClientToken(key, expired, notRevoked), 'DFS_ERR_UNAUTHENTICATED', /the token expired at \d{4}-/, expired)
    const foreign = (await mintClientToken(otherKey, {scope: 'read', ttlMs: HOUR})).token
    await refused(verifyClientToken(key, foreign, notRevoked), 'DFS_ERR_UNAUTHENTICATED', new RegExp(`not signed with this cluster's key .*names key ${otherKey.id}`), foreign)
    const raw = await forge(tokenHeader, tokenClaims(), new Uint8Array(RAW))
    await refused(verifyClientToken(key, raw, notRevoked), 'DFS_ERR_UNAUTHENTICATED', /not signed with this cluster's key/, raw)
  })

  test('a token may not pick its algorithm: alg none, RS256, HS512 are refused', async () => {
    await refused(verifyClientToken(key, unsigned({alg: 'none', typ: 'dfs-token+jwt'}, tokenClaims()), notRevoked), 'DFS_ERR_UNAUTHENTICATED', /not signed with HS256/)
    await refused(verifyClientToken(key, unsigned({alg: 'RS256', typ: 'dfs-token+jwt'}, tokenClaims(), 'c2lnbmF0dXJl'), notRevoked), 'DFS_ERR_UNAUTHENTICATED', /not signed with HS256/)
    const hs512 = await forge({alg: 'HS512', typ: 'dfs-token+jwt'}, tokenClaims(), new Uint8Array(64))
    await refused(verifyClientToken(key, hs512, notRevoked), 'DFS_ERR_UNAUTHENTICATED', /not signed with HS256/, hs512)
  })

  test("signed with the right sub-key but with a wrong audience, issuer, type, or no expiry: refused", async () => {
    const subkey = key.subkey('client-token')
    const cases: Array<[Record<string, unknown>, Record<string, unknown>, RegExp]> = [
      [tokenHeader, {...tokenClaims(), aud: 'dfs:grant'}, /wrong or missing "aud"/],
      [tokenHeader, {...tokenClaims(), aud: 'someone-else'}, /wrong or missing "aud"/],
      [tokenHeader, {...tokenClaims(), iss: 'evil'}, /wrong or missing "iss"/],
      [{alg: 'HS256', typ: 'dfs-grant+jwt'}, tokenClaims(), /wrong or missing "typ"/],
      [tokenHeader, {...tokenClaims(), exp: undefined}, /wrong or missing "exp"/],
      [tokenHeader, {...tokenClaims(), jti: undefined}, /wrong or missing "jti"/],
      [tokenHeader, {...tokenClaims(), scope: 'root'}, /names no known scope/],
    ]
    for (const [header, claims, pattern] of cases) {
      const token = await forge(header, claims, subkey)
      await refused(verifyClientToken(key, token, notRevoked), 'DFS_ERR_UNAUTHENTICATED', pattern, token)
    }

    // The control: the same forging with nothing wrong is accepted, so each refusal above is for its one flaw.
    assert.equal((await verifyClientToken(key, await forge(tokenHeader, tokenClaims(), subkey), notRevoked)).scope, 'admin')
  })

  test('a tampered payload (read raised to admin) is refused', async () => {
    const {token} = await mintClientToken(key, {scope: 'read', ttlMs: HOUR})
    const [header, payload, signature] = token.split('.') as [string, string, string]
    const claims = JSON.parse(new TextDecoder().decode(base64url.decode(payload))) as Record<string, unknown>
    const raised = `${header}.${base64url.encode(JSON.stringify({...claims, scope: 'admin'}))}.${signature}`
    await refused(verifyClientToken(key, raised, notRevoked), 'DFS_ERR_UNAUTHENTICATED', /not signed with this cluster's key/, raised)
  })

  test('a revoked token is refused; the callback is asked about its id', async () => {
    const {token, claims} = await mintClientToken(key, {scope: 'admin', ttlMs: HOUR})
    const asked: string[] = []
    await refused(verifyClientToken(key, token, async (id) => (asked.push(id), id === claims.id)), 'DFS_ERR_UNAUTHENTICATED', new RegExp(`token ${claims.id} was revoked`), token)
    assert.deepEqual(asked, [claims.id])
  })

  test('scopes nest: read ⊂ write ⊂ admin', async () => {
    const covers = (['read', 'write', 'admin'] as const).map((granted) => (['read', 'write', 'admin'] as const).map((needed) => scopeCovers(granted, needed)))
    assert.deepEqual(covers, [
      [true, false, false],
      [true, true, false],
      [true, true, true],
    ])
    const reader: ClientToken = {id: 'r1', scope: 'read', issuedAt: '', expiresAt: ''}
    assert.doesNotThrow(() => requireScope(reader, 'read'))
    assert.throws(() => requireScope(reader, 'write'), (error: DfsError) => error.code === 'DFS_ERR_FORBIDDEN' && /scope write or more; token r1 has scope read/.test(error.message))
  })

  test('Authorization: Bearer is where a client token travels', () => {
    assert.equal(bearerToken('Bearer abc.def.ghi'), 'abc.def.ghi')
    assert.equal(bearerToken('bearer  abc'), 'abc')
    assert.equal(bearerToken('Basic abc'), undefined)
    assert.equal(bearerToken(undefined), undefined)
  })
})

describe('grants', () => {
  const claims: GrantClaims = {op: 'read', fileId: 'f1', name: 'video.mp4', size: 10, sha256: 'a'.repeat(64), keeperId: 'kA'}
  const check = {ops: ['read', 'replicate-from'] as const, keeperId: 'kA', name: 'video.mp4', fileId: 'f1'}

  test('a grant verifies offline at the keeper it names, with its file, size and sha256', async () => {
    const grant = await mintGrant(key, claims)
    const verified = await verifyGrant(key, grant, check)
    assert.deepEqual({...verified, expiresAt: undefined}, {...claims, expiresAt: undefined})
    assert.ok(Date.parse(verified.expiresAt) > Date.now())
    // A copy order's grant is good on a read route; without a generation in the request, any is fine.
    await verifyGrant(key, await mintGrant(key, {...claims, op: 'replicate-from'}), {...check, fileId: undefined})
  })

  test('a genuine grant for another operation, keeper, name or generation is forbidden', async () => {
    await refused(verifyGrant(key, await mintGrant(key, {...claims, op: 'delete'}), check), 'DFS_ERR_FORBIDDEN', /allows delete, not read or replicate-from/)
    await refused(verifyGrant(key, await mintGrant(key, claims), {...check, ops: ['write']}), 'DFS_ERR_FORBIDDEN', /allows read, not write/)
    await refused(verifyGrant(key, await mintGrant(key, {...claims, keeperId: 'kB'}), check), 'DFS_ERR_FORBIDDEN', /for keeper kB, not this one \(kA\)/)
    await refused(verifyGrant(key, await mintGrant(key, {...claims, name: 'other.mp4'}), check), 'DFS_ERR_FORBIDDEN', /another file/)
    await refused(verifyGrant(key, await mintGrant(key, {...claims, fileId: 'f0'}), check), 'DFS_ERR_FORBIDDEN', /another generation/)
  })

  test('an expired, foreign, tampered or wrong-kind grant is refused as unauthenticated', async () => {
    const expired = await mintGrant(key, claims, {ttlSeconds: 60, now: Date.now() - HOUR})
    await refused(verifyGrant(key, expired, check), 'DFS_ERR_UNAUTHENTICATED', /the grant expired/, expired)
    const foreign = await mintGrant(otherKey, claims)
    await refused(verifyGrant(key, foreign, check), 'DFS_ERR_UNAUTHENTICATED', /not signed with this cluster's key/, foreign)
    const [header, payload, signature] = (await mintGrant(key, {...claims, keeperId: 'kB'})).split('.') as [string, string, string]
    const moved = JSON.parse(new TextDecoder().decode(base64url.decode(payload))) as Record<string, unknown>
    const tampered = `${header}.${base64url.encode(JSON.stringify({...moved, keeper: 'kA'}))}.${signature}`
    await refused(verifyGrant(key, tampered, check), 'DFS_ERR_UNAUTHENTICATED', /not signed/, tampered)
    const token = (await mintClientToken(key, {scope: 'admin', ttlMs: HOUR})).token
    await refused(verifyGrant(key, token, check), 'DFS_ERR_UNAUTHENTICATED', /not signed with this cluster's key for grants/, token)
    const grant = await mintGrant(key, claims)
    await refused(verifyClientToken(key, grant, notRevoked), 'DFS_ERR_UNAUTHENTICATED', /not signed with this cluster's key for tokens/, grant)
    await refused(verifyGrant(key, unsigned({alg: 'none', typ: 'dfs-grant+jwt'}, {op: 'read'}), check), 'DFS_ERR_UNAUTHENTICATED', /HS256/)
  })

  test('a grant travels in a header or as ?grant= in a URL a browser can play', async () => {
    const grant = await mintGrant(key, claims)
    const url = new URL(grantUrl('http://127.0.0.1:7701', 'holiday 2024.mp4', grant))
    assert.equal(url.pathname, '/files/holiday%202024.mp4')
    assert.equal(grantOf({headers: {}, query: Object.fromEntries(url.searchParams)}), grant)
    assert.equal(grantOf({headers: {[GRANT_HEADER]: 'from-header'}, query: {grant: 'from-query'}}), 'from-header')
    assert.equal(grantOf({headers: {}, query: {}}), undefined)
  })
})

describe('member authentication', () => {
  const keeper = newMember('keeper', 'kA')
  const heartbeat = {method: 'POST', path: '/keepers/kA/heartbeat', to: 'master' as const}

  test("a keeper's call verifies at the master once, naming the keeper and its instance", async () => {
    const replay = new ReplayGuard()
    const credential = await mintMemberCredential(key, keeper, heartbeat)
    const member = await verifyMemberCredential(key, credential, {...heartbeat, replay})
    assert.deepEqual({role: member.role, keeperId: member.keeperId, instance: member.instance}, {role: 'keeper', keeperId: 'kA', instance: keeper.instance})
    requireKeeper(member, 'kA')
    await refused(verifyMemberCredential(key, credential, {...heartbeat, replay}), 'DFS_ERR_UNAUTHENTICATED', /already used/, credential)
    assert.notEqual(newMember('keeper', 'kA').instance, keeper.instance, 'every process start is a new instance')
  })

  test('a credential for another method, path or recipient, expired, foreign or of another kind is refused', async () => {
    const replay = new ReplayGuard()
    const credential = await mintMemberCredential(key, keeper, heartbeat)
    await refused(verifyMemberCredential(key, credential, {...heartbeat, path: '/keepers/kB/heartbeat', replay}), 'DFS_ERR_UNAUTHENTICATED', /another request/, credential)
    await refused(verifyMemberCredential(key, credential, {...heartbeat, method: 'DELETE', replay}), 'DFS_ERR_UNAUTHENTICATED', /another request/, credential)
    await refused(verifyMemberCredential(key, credential, {...heartbeat, to: {keeperId: 'kB'}, replay}), 'DFS_ERR_UNAUTHENTICATED', /is for master, not keeper:kB/, credential)
    // None of those refusals used the credential up: it is still good for its own request.
    await verifyMemberCredential(key, credential, {...heartbeat, replay})

    const order = {method: 'POST', path: '/replicate', to: {keeperId: 'kA'}}
    const toB = await mintMemberCredential(key, newMember('master'), {...order, to: {keeperId: 'kB'}})
    await refused(verifyMemberCredential(key, toB, {...order, replay}), 'DFS_ERR_UNAUTHENTICATED', /is for keeper:kB, not keeper:kA/, toB)
    const expired = await mintMemberCredential(key, keeper, heartbeat, {now: Date.now() - HOUR})
    await refused(verifyMemberCredential(key, expired, {...heartbeat, replay}), 'DFS_ERR_UNAUTHENTICATED', /expired/, expired)
    const foreign = await mintMemberCredential(otherKey, keeper, heartbeat)
    await refused(verifyMemberCredential(key, foreign, {...heartbeat, replay}), 'DFS_ERR_UNAUTHENTICATED', /not signed with this cluster's key/, foreign)
    const token = (await mintClientToken(key, {scope: 'admin', ttlMs: HOUR})).token
    await refused(verifyMemberCredential(key, token, {...heartbeat, replay}), 'DFS_ERR_UNAUTHENTICATED', /not signed with this cluster's key for member credentials/, token)
    const none = unsigned({alg: 'none', typ: 'dfs-member+jwt'}, {sub: 'master', to: 'master', htm: 'POST', htu: '/keepers/kA/heartbeat', jti: 'x', inst: 'i'})
    await refused(verifyMemberCredential(key, none, {...heartbeat, replay}), 'DFS_ERR_UNAUTHENTICATED', /HS256/)
  })

  test('who may act for whom: a keeper for itself only, orders from the master only', async () => {
    const replay = new ReplayGuard()
    const fresh = newMember('keeper')
    const register = {method: 'POST', path: '/keepers', to: 'master' as const}
    const newcomer = await verifyMemberCredential(key, await mintMemberCredential(key, fresh, register), {...register, replay})
    assert.deepEqual({role: newcomer.role, keeperId: newcomer.keeperId}, {role: 'keeper', keeperId: undefined})
    assert.throws(() => requireKeeper(newcomer, 'kA'), (error: DfsError) => error.code === 'DFS_ERR_FORBIDDEN' && /an unregistered keeper cannot act for keeper kA/.test(error.message))
    assert.throws(() => requireKeeper({role: 'keeper', keeperId: 'kB', instance: 'i'}, 'kA'), /keeper kB cannot act for keeper kA/)
    assert.throws(() => requireKeeper({role: 'master', instance: 'i'}, 'kA'), /the master cannot act for keeper kA/)
    assert.throws(() => requireMaster(keeper), (error: DfsError) => error.code === 'DFS_ERR_FORBIDDEN')
    requireMaster(newMember('master'))
  })

  test('the replay guard forgets an id once its credential has expired anyway', () => {
    const guard = new ReplayGuard(30)
    assert.equal(guard.firstUse('a', 1000, 900), true)
    assert.equal(guard.firstUse('a', 1000, 1020), false, 'still remembered within the clock tolerance')
    assert.equal(guard.firstUse('b', 2000, 1500), true)
    assert.equal(guard.size, 1, '"a" (expired at 1000 + 30) is forgotten')
  })
})
