// Clients against a cluster with a key (every TestCluster has one): the master's client routes ask
// for a token of the right scope, keepers ask for the master's grant on every file read and upload,
// and `dfs url` hands out a link that reads with its grant alone. Real master and keepers; each
// test stores its own files and ends by reading every one of them back byte for byte.

import assert from 'node:assert/strict'
import {createHash, randomBytes} from 'node:crypto'
import {readFile, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {describe, test} from 'node:test'

import {mintClientToken, type Scope} from '../src/lib/client-tokens.js'
import {ClusterKey, createKeyFile} from '../src/lib/cluster-key.js'
import {GRANT_HEADER, mintGrant, type GrantClaims} from '../src/lib/grants.js'
import {bearer, clusterPerSuite, json, type TestCluster} from './helpers/cluster.js'

// Each test stores files of its own names and stops no server: one cluster serves every test (two
// keepers, one replica each, so that a grant can be tried at a keeper that does not hold the file).
let shared: ReturnType<typeof clusterPerSuite>

/** A token of `scope` for this cluster, minted from its key as `dfs token create` does. */
async function tokenOf(cluster: TestCluster, scope: Scope, ttlMs = 3_600_000): Promise<{token: string; id: string}> {
  const {token, claims} = await mintClientToken(await ClusterKey.load(cluster.secretFile), {scope, ttlMs})
  return {token, id: claims.id}
}

/** Stores `size` random bytes under `name` with the cluster's admin token; returns the bytes. */
async function store(cluster: TestCluster, name: string, size = 200_000): Promise<Buffer> {
  const bytes = randomBytes(size)
  const path = join(shared.work, `${cluster.masterPort}-${name}`)
  await writeFile(path, bytes)
  const put = await cluster.dfs(['put', path, '--name', name])
  assert.equal(put.code, 0, put.stderr)
  return bytes
}

/** Every file reads back byte for byte through get (with the cluster's admin token). */
async function assertIntact(cluster: TestCluster, files: Record<string, Buffer>): Promise<void> {
  for (const [name, bytes] of Object.entries(files)) {
    const out = join(shared.work, `${cluster.masterPort}-back-${name}`)
    const get = await cluster.dfs(['get', name, '-o', out])
    assert.equal(get.code, 0, get.stderr)
    assert.ok((await readFile(out)).equals(bytes), `${name} reads back byte for byte`)
  }
}

/** One line on stderr, the catalogue's exit code, no stack. */
function assertRefused(result: {code: number | null; stderr: string}, exit: number, message: RegExp): void {
  assert.equal(result.code, exit, result.stderr)
  assert.match(result.stderr, message)
  assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr)
  assert.doesNotMatch(result.stderr, /\n\s+at /)
}

describe('clients against a cluster with a key', () => {
  shared = clusterPerSuite({keepers: 2, replicas: 1})

  describe('client tokens at the master', () => {
    // Valid requests on every client route, so that only the credential can be what is refused.
    const routes = (name: string): Array<[string, string, unknown?]> => [
      ['GET', '/files'],
      ['GET', `/files/${name}`],
      ['GET', `/files/${name}/url`],
      ['GET', '/keepers'],
      ['GET', '/fsck'],
      ['POST', '/uploads', {name: 'new.bin', size: 3, sha256: 'a'.repeat(64)}],
      ['POST', `/files/${name}/suspect`, {keeperId: 'k1', fileId: 'f1'}],
      ['DELETE', `/files/${name}`],
      ['POST', '/tokens/revoke', {id: 'someTokenId'}],
      ['POST', '/keepers/kSomeKeeper/drain'],
      ['DELETE', '/keepers/kSomeKeeper'],
    ]
    const call = (cluster: TestCluster, [method, path, body]: [string, string, unknown?], headers: Record<string, string> = {}) =>
      json<{error: string; message: string}>(`${cluster.masterUrl}${path}`, {
        method,
        headers: {...headers, ...(body === undefined ? {} : {'content-type': 'application/json'})},
        body: body === undefined ? undefined : JSON.stringify(body),
      })

    test('without a token, with a forged one or one of another key, every client route answers 401; /health is open', async () => {
      const cluster = shared.cluster
      const files = {'kept-from-strangers.bin': await store(cluster, 'kept-from-strangers.bin')}
      const otherKey = join(shared.work, `${cluster.masterPort}-other-secret-for-tokens`)
      await createKeyFile(otherKey)
      const foreign = (await mintClientToken(await ClusterKey.load(otherKey), {scope: 'admin', ttlMs: 3_600_000})).token
      const [head, payload] = cluster.token.split('.')
      const forged = `${head}.${payload}.${'A'.repeat(43)}`
      for (const headers of [{}, bearer(foreign), bearer(forged), {authorization: `Basic ${Buffer.from('a:b').toString('base64')}`}]) {
        for (const route of routes('kept-from-strangers.bin')) {
          const {status, body} = await call(cluster, route, headers)
          assert.equal(status, 401, `${route[0]} ${route[1]} with ${JSON.stringify(Object.keys(headers))}: ${JSON.stringify(body)}`)
          assert.equal(body.error, 'DFS_ERR_UNAUTHENTICATED')
        }
      }

      assert.equal((await json(`${cluster.masterUrl}/health`)).status, 200)
      assertRefused(await cluster.dfs(['ls', '--token', foreign]), 8, /^Error: .*(signature|key)/)
      await assertIntact(cluster, files)
    })

    test('a read token reads but cannot put or rm; a write token puts but cannot rm nor revoke; admin can', async () => {
      const cluster = shared.cluster
      const files = {'kept-from-readers.bin': await store(cluster, 'kept-from-readers.bin')}
      const read = (await tokenOf(cluster, 'read')).token
      const write = (await tokenOf(cluster, 'write')).token
      const local = join(shared.work, `${cluster.masterPort}-new.bin`)
      const newBytes = randomBytes(1000)
      await writeFile(local, newBytes)

      for (const args of [['ls'], ['stat', 'kept-from-readers.bin'], ['status'], ['fsck'], ['url', 'kept-from-readers.bin']]) {
        const result = await cluster.dfs([...args, '--token', read])
        assert.equal(result.code, 0, `${args.join(' ')} with a read token: ${result.stderr}`)
      }

      const out = join(shared.work, `${cluster.masterPort}-read-get`)
      assert.equal((await cluster.dfs(['get', 'kept-from-readers.bin', '-o', out, '--token', read])).code, 0, 'a read token gets')
      assert.ok((await readFile(out)).equals(files['kept-from-readers.bin']))

      assertRefused(await cluster.dfs(['put', local, '--name', 'by-reader.bin', '--token', read]), 9, /scope write or more; token \S+ has scope read/)
      assert.equal((await cluster.masterJson('/files/by-reader.bin')).status, 404, 'nothing was stored for the reader')
      assertRefused(await cluster.dfs(['rm', 'kept-from-readers.bin', '--token', read]), 9, /scope admin or more/)

      const put = await cluster.dfs(['put', local, '--name', 'by-writer.bin', '--token', write])
      assert.equal(put.code, 0, put.stderr)
      assertRefused(await cluster.dfs(['rm', 'kept-from-readers.bin', '--token', write]), 9, /scope admin or more; token \S+ has scope write/)
      assertRefused(await cluster.dfs(['token', 'revoke', 'someTokenId', '--token', write]), 9, /scope admin or more/)

      assert.equal((await cluster.dfs(['rm', 'by-writer.bin'])).code, 0, 'the admin token removes')
      await assertIntact(cluster, {...files})
    })

    test('a revoked token is refused from then on, and the one that revoked it still works', async () => {
      const cluster = shared.cluster
      const files = {'kept-past-a-revoke.bin': await store(cluster, 'kept-past-a-revoke.bin')}
      const {token, id} = await tokenOf(cluster, 'write')
      assert.equal((await cluster.dfs(['ls', '--token', token])).code, 0)
      const revoke = await cluster.dfs(['token', 'revoke', id])
      assert.equal(revoke.code, 0, revoke.stderr)
      assertRefused(await cluster.dfs(['ls', '--token', token]), 8, new RegExp(`token ${id} was revoked`))
      const {status, body} = await json<{error: string}>(`${cluster.masterUrl}/files/kept-past-a-revoke.bin`, {headers: bearer(token)})
      assert.deepEqual([status, body.error], [401, 'DFS_ERR_UNAUTHENTICATED'])
      assert.equal((await cluster.dfs(['ls'])).code, 0, 'other tokens are not affected')
      await assertIntact(cluster, files)
    })
  })

  describe('grants at the keepers', () => {
    test('a keeper reads and takes uploads only with a grant of the master for that operation, file, generation and keeper, until it expires', async () => {
      const cluster = shared.cluster
      const files = {'a.bin': await store(cluster, 'a.bin'), 'b.bin': await store(cluster, 'b.bin')}
      const key = await ClusterKey.load(cluster.secretFile)
      const a = await cluster.stat('a.bin')
      const holder = a.replicas[0]!
      const other = cluster.keepers.find((keeper) => keeper.id !== holder.keeper)!
      assert.ok(holder.grant, 'the look-up hands out a read grant per replica')
      const claims: GrantClaims = {op: 'read', fileId: a.fileId, name: 'a.bin', size: a.size, sha256: a.sha256, keeperId: holder.keeper}
      const read = (grant?: string, query = '') =>
        fetch(`${holder.url}/files/a.bin${query}`, {headers: grant === undefined ? {} : {[GRANT_HEADER]: grant}, signal: AbortSignal.timeout(60_000)})
      const refused = async (response: Response, status: number, why: string) => {
        const text = await response.text()
        assert.equal(response.status, status, `${why}: ${text.slice(0, 200)}`)
        assert.equal((JSON.parse(text) as {error: string}).error, status === 401 ? 'DFS_ERR_UNAUTHENTICATED' : 'DFS_ERR_FORBIDDEN', why)
      }

      const granted = await read(holder.grant)
      assert.equal(granted.status, 200)
      assert.ok(Buffer.from(await granted.arrayBuffer()).equals(files['a.bin']), 'the master\'s grant reads the file')
      assert.equal((await fetch(`${holder.url}/files/a.bin`, {method: 'HEAD', headers: {[GRANT_HEADER]: holder.grant}})).status, 200, 'and HEADs it')
      assert.equal((await fetch(`${holder.url}/files/a.bin`, {method: 'HEAD'})).status, 401, 'HEAD without a grant')

      await refused(await read(), 401, 'no grant')
      await refused(await read(await mintGrant(key, claims, {ttlSeconds: 60, now: Date.now() - 10 * 60_000})), 401, 'an expired grant')
      const otherKey = join(shared.work, `${cluster.masterPort}-other-secret-for-grants`)
      await createKeyFile(otherKey)
      await refused(await read(await mintGrant(await ClusterKey.load(otherKey), claims)), 401, 'a grant of another key')
      await refused(await read(await mintGrant(key, {...claims, op: 'write'})), 403, 'a grant for another operation')
      await refused(await read(await mintGrant(key, {...claims, keeperId: other.id})), 403, 'a grant for another keeper')
      const b = await cluster.stat('b.bin')
      await refused(await read(await mintGrant(key, {...claims, name: 'b.bin', fileId: b.fileId})), 403, 'a grant for another file')
      await refused(await read(await mintGrant(key, {...claims, fileId: b.fileId}), `?fileId=${a.fileId}`), 403, 'a grant for another generation')
      // A grant serves its own generation only, even when the request names none: one for a generation
      // the keeper no longer holds (the name was removed and stored again) reads nothing.
      const stale = await read(await mintGrant(key, {...claims, fileId: 'anOlderGeneration'}))
      assert.equal(stale.status, 404, 'a grant for a generation the keeper does not hold')
      await stale.body?.cancel()
      // The grant of a replica on one keeper does not read at another.
      await refused(await fetch(`${other.url}/files/a.bin`, {headers: {[GRANT_HEADER]: holder.grant}}), 403, 'a replica\'s grant at another keeper')

      // Uploads: the ticket's write grant, for that upload id, name, size and sha256 only.
      const body = randomBytes(5000)
      const sha256 = createHash('sha256').update(body).digest('hex')
      const ticket = (await cluster.masterJson<{uploadId: string; keeper: {id: string; url: string}; grant: string}>('/uploads', {
        method: 'POST',
        headers: {'content-type': 'application/json'},
        body: JSON.stringify({name: 'c.bin', size: body.length, sha256}),
      })).body
      assert.ok(ticket.grant, 'the ticket carries a write grant')
      const upload = (name: string, headers: Record<string, string>) =>
        fetch(`${ticket.keeper.url}/files/${name}?upload=${ticket.uploadId}`, {method: 'PUT', headers: {'x-dfs-sha256': sha256, ...headers}, body, signal: AbortSignal.timeout(60_000)})
      await refused(await upload('c.bin', {}), 401, 'an upload without a grant')
      await refused(await upload('c.bin', {[GRANT_HEADER]: holder.grant}), 403, 'an upload with a read grant')
      await refused(await upload('other.bin', {[GRANT_HEADER]: ticket.grant}), 403, 'the ticket\'s grant for another name')
      const otherBody = await mintGrant(key, {op: 'write', fileId: ticket.uploadId, name: 'c.bin', size: body.length, sha256: 'f'.repeat(64), keeperId: ticket.keeper.id})
      await refused(await upload('c.bin', {[GRANT_HEADER]: otherBody}), 403, 'a write grant for other bytes')
      const stored = await upload('c.bin', {[GRANT_HEADER]: ticket.grant})
      assert.equal(stored.status, 201, await stored.clone().text())
      await assertIntact(cluster, {...files, 'c.bin': body})
    })

    test('dfs url prints a link that answers range requests with its grant alone, for that file only', async () => {
      const cluster = shared.cluster
      const files = {'movie.mp4': await store(cluster, 'movie.mp4', 300_000), 'other.bin': await store(cluster, 'other.bin')}
      const read = (await tokenOf(cluster, 'read')).token
      const printed = await cluster.dfs(['url', 'movie.mp4', '--ttl', '10m', '--token', read])
      assert.equal(printed.code, 0, printed.stderr)
      const url = printed.stdout.trim()
      assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/files\/movie\.mp4\?grant=[\w.-]+$/)

      // What curl -r 1000-1999 and a browser's <video> send: a Range header, no credential.
      const ranged = await fetch(url, {headers: {range: 'bytes=1000-1999'}})
      assert.equal(ranged.status, 206)
      assert.equal(ranged.headers.get('content-range'), `bytes 1000-1999/${files['movie.mp4'].length}`)
      assert.equal(ranged.headers.get('content-type'), 'video/mp4')
      assert.ok(Buffer.from(await ranged.arrayBuffer()).equals(files['movie.mp4'].subarray(1000, 2000)))
      const tail = await fetch(url, {headers: {range: 'bytes=-100'}})
      assert.equal(tail.status, 206)
      assert.ok(Buffer.from(await tail.arrayBuffer()).equals(files['movie.mp4'].subarray(-100)))

      const plain = url.replace(/\?grant=.*$/, '')
      assert.equal((await fetch(plain, {headers: {range: 'bytes=0-9'}})).status, 401, 'the same URL without its grant')
      const grant = new URL(url).searchParams.get('grant')!
      const otherFile = (await cluster.stat('other.bin')).replicas[0]!.url
      const elsewhere = await fetch(`${otherFile}/files/other.bin?grant=${encodeURIComponent(grant)}`)
      assert.equal(elsewhere.status, 403, 'the grant reads no other file')

      const described = JSON.parse((await cluster.dfs(['url', 'movie.mp4', '--json'])).stdout) as {url: string; expiresAt: string}
      assert.ok(Date.parse(described.expiresAt) - Date.now() > 50 * 60_000, 'an hour by default')
      const short = JSON.parse((await cluster.dfs(['url', 'movie.mp4', '--json', '--ttl', '2s'])).stdout) as {url: string; expiresAt: string}
      assert.ok(Date.parse(short.expiresAt) - Date.now() < 60_000, `--ttl 2s gives a grant of seconds, not ${short.expiresAt}`)
      const grantExpiry = JSON.parse(Buffer.from(new URL(short.url).searchParams.get('grant')!.split('.')[1]!, 'base64url').toString('utf8')) as {exp: number}
      assert.ok(grantExpiry.exp * 1000 - Date.now() < 60_000, 'the grant itself expires with the URL')
      assertRefused(await cluster.dfs(['url', 'movie.mp4', '--ttl', '2d']), 2, /at most 24h/)
      assert.equal((await json(`${cluster.masterUrl}/files/movie.mp4/url`)).status, 401, 'asking for a URL needs a token')
      await assertIntact(cluster, files)
    })
  })
})
