import assert from 'node:assert/strict'
import {chmod, readFile, rm} from 'node:fs/promises'
import {join} from 'node:path'
import {after, afterEach, before, describe, test} from 'node:test'

import {verifyClientToken} from '../src/lib/client-tokens.js'
import {ClusterKey} from '../src/lib/cluster-key.js'
import {MasterTable} from '../src/roles/master/table.js'
import {ServerProcess, dfs, json, tempDir, type RunResult} from './helpers/cluster.js'

function assertOneLineError(result: RunResult, pattern: RegExp): void {
  assert.notEqual(result.code, 0, `expected a failure, got stdout ${result.stdout}`)
  const lines = result.stderr.trim().split('\n')
  assert.equal(lines.length, 1, `expected one line, got:\n${result.stderr}`)
  assert.match(lines[0]!, pattern)
}

describe('client tokens from the CLI', () => {
  let work: string
  let secret: string
  let master: ServerProcess | undefined

  before(async () => {
    work = await tempDir('dfs-tokens-')
    secret = join(work, 'secret')
    assert.equal((await dfs(['secret', 'create', secret])).code, 0)
  })
  afterEach(async () => {
    await master?.stop('SIGKILL')
    master = undefined
  })
  after(async () => {
    await rm(work, {recursive: true, force: true})
  })

  test('dfs token create prints a token the cluster key verifies, with its scope and expiry, and never the key', async () => {
    const created = await dfs(['token', 'create', '--scope', 'write', '--ttl', '7d', '--secret-file', secret])
    assert.equal(created.code, 0, created.stderr)
    const token = created.stdout.trim()
    assert.equal(created.stdout, `${token}\n`, 'stdout is the token alone, for $(...)')
    const claims = await verifyClientToken(await ClusterKey.load(secret), token, () => false)
    assert.equal(claims.scope, 'write')
    assert.equal(Date.parse(claims.expiresAt) - Date.parse(claims.issuedAt), 7 * 86_400_000)
    assert.match(created.stderr, new RegExp(`^token ${claims.id}: scope write, expires ${claims.expiresAt}\\n$`))
    const key = (await readFile(secret, 'utf8')).trim()
    assert.ok(!created.stdout.includes(key) && !created.stderr.includes(key) && !created.stderr.includes(token))

    const fromEnv = await dfs(['token', 'create', '--scope', 'read', '--json'], {env: {DFS_SECRET_FILE: secret}})
    assert.equal(fromEnv.code, 0, fromEnv.stderr)
    const described = JSON.parse(fromEnv.stdout) as {token: string; id: string; scope: string; expiresAt: string}
    assert.equal(described.scope, 'read')
    assert.equal((await verifyClientToken(await ClusterKey.load(secret), described.token, () => false)).id, described.id)
    assert.equal(Date.parse(described.expiresAt) - Date.now() > 29 * 86_400_000, true, 'the default lifetime is 30 days')
  })

  test('dfs token create refuses an unknown scope, a missing or exposed key file', async () => {
    const badScope = await dfs(['token', 'create', '--scope', 'root', '--secret-file', secret])
    assert.notEqual(badScope.code, 0)
    assert.match(badScope.stderr, /Expected --scope=root to be one of: read, write, admin/)
    assertOneLineError(await dfs(['token', 'create', '--scope', 'read', '--secret-file', join(work, 'missing')]), /cannot read key file .*missing: ENOENT/)
    const exposed = join(work, 'exposed')
    assert.equal((await dfs(['secret', 'create', exposed])).code, 0)
    await chmod(exposed, 0o644)
    assertOneLineError(await dfs(['token', 'create', '--scope', 'read', '--secret-file', exposed]), /open to group or others \(mode 0644\)/)
  })

  test('dfs token revoke records the id in the master table, which refuses the token from then on, across restarts', async () => {
    const data = join(work, 'master')
    master = await ServerProcess.start(['master', '--port', '0', '--data', data, '--secret-file', secret])
    const {stdout} = await dfs(['token', 'create', '--scope', 'admin', '--json', '--secret-file', secret])
    const {token, id} = JSON.parse(stdout) as {token: string; id: string}
    const other = JSON.parse((await dfs(['token', 'create', '--scope', 'admin', '--json', '--secret-file', secret])).stdout) as {token: string}

    // Revoking takes an admin token: another one than the token revoked.
    const revoked = await dfs(['token', 'revoke', id, '--master', master.url, '--token', other.token])
    assert.equal(revoked.code, 0, revoked.stderr)
    assert.equal(revoked.stdout, `revoked token ${id}\n`)
    assert.equal((await dfs(['token', 'revoke', id, '--master', master.url, '--token', other.token])).stdout, `token ${id} was already revoked\n`)
    assertOneLineError(await dfs(['token', 'revoke', 'not a token id!', '--master', master.url]), /"not a token id!" is not a token id/)
    const bad = await json<{error: string}>(`${master.url}/tokens/revoke`, {method: 'POST', headers: {'content-type': 'application/json'}, body: JSON.stringify({id: '../x'})})
    assert.deepEqual([bad.status, bad.body.error], [400, 'DFS_ERR_BAD_REQUEST'])

    assert.equal(await master.stop('SIGTERM'), 0)
    master = undefined
    const table = new MasterTable(data)
    try {
      const key = await ClusterKey.load(secret)
      const isRevoked = (tokenId: string) => table.isTokenRevoked(tokenId)
      await assert.rejects(verifyClientToken(key, token, isRevoked), new RegExp(`token ${id} was revoked`))
      assert.equal((await verifyClientToken(key, other.token, isRevoked)).scope, 'admin', 'only the revoked token is refused')
    } finally {
      table.close()
    }
  })
})
