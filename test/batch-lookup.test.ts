// POST /lookup: many files' GET /files/:name in one request, as `dfs get` of many names asks it.
// Real master and keepers with a cluster key; each answer's read grants are shown to a real keeper.

import assert from 'node:assert/strict'
import {readFile} from 'node:fs/promises'
import {join} from 'node:path'
import {describe, test} from 'node:test'

import {mintClientToken, type Scope} from '../src/lib/client-tokens.js'
import {ClusterKey} from '../src/lib/cluster-key.js'
import {GRANT_HEADER} from '../src/lib/grants.js'
import {MAX_LOOKUP_NAMES, type LookupResponse} from '../src/lib/protocol.js'
import {bearer, clusterPerSuite, json, randomFile, type TestCluster} from './helpers/cluster.js'

// Set in the suite: one cluster for every test (each stores names of its own and stops no server).
let shared: ReturnType<typeof clusterPerSuite>

async function tokenOf(cluster: TestCluster, scope: Scope): Promise<string> {
  return (await mintClientToken(await ClusterKey.load(cluster.secretFile), {scope, ttlMs: 3_600_000})).token
}

function lookup(cluster: TestCluster, body: unknown, headers: Record<string, string> = bearer(cluster.token)) {
  return json<LookupResponse & {error?: string; message?: string}>(`${cluster.masterUrl}/lookup`, {
    method: 'POST',
    headers: {...headers, 'content-type': 'application/json'},
    body: JSON.stringify(body),
  })
}

/** Stores files of the given sizes under their names with one `dfs put`, every replica made; returns each one's sha256. */
async function store(cluster: TestCluster, sizes: Record<string, number>): Promise<Record<string, string>> {
  const sha256: Record<string, string> = {}
  for (const [name, size] of Object.entries(sizes)) sha256[name] = await randomFile(join(shared.work, name), size)
  const put = await cluster.dfs(['put', ...Object.keys(sizes).map((name) => join(shared.work, name)), '--wait', 'all'])
  assert.equal(put.code, 0, put.stderr)
  return sha256
}

describe('batch look-up (POST /lookup)', () => {
  // Two replicas of each file, so that every answer carries a grant for each of two keepers.
  shared = clusterPerSuite({keepers: 2, replicas: 2})

  test('answers every name in its order: a file with read grants its keepers honour, a missing or bad name as a miss', async () => {
    const cluster = shared.cluster
    const sha256 = await store(cluster, {'one.bin': 1000, 'two.bin': 70_000})
    const answer = await lookup(cluster, {names: ['two.bin', 'missing.bin', 'one.bin', 'a/../b', 'two.bin']}, bearer(await tokenOf(cluster, 'read')))
    assert.equal(answer.status, 200, JSON.stringify(answer.body))
    const files = answer.body.files
    assert.deepEqual(files.map((entry) => entry.name), ['two.bin', 'missing.bin', 'one.bin', 'a/../b', 'two.bin'])
    assert.deepEqual(files[1], {name: 'missing.bin', error: 'DFS_ERR_NOT_FOUND', message: 'no file named "missing.bin"'})
    assert.equal((files[3] as {error?: string}).error, 'DFS_ERR_INVALID_NAME')
    for (const index of [0, 2, 4]) {
      const file = files[index]!
      assert.ok(!('error' in file), JSON.stringify(file))
      assert.equal(file.sha256, sha256[file.name])
      assert.equal(file.replicas.length, 2)
      for (const replica of file.replicas) {
        assert.ok(replica.alive && replica.grant, 'an alive replica with a read grant')
        const read: Response = await fetch(`${replica.url}/files/${encodeURIComponent(file.name)}`, {headers: {[GRANT_HEADER]: replica.grant}})
        assert.equal(read.status, 200)
        assert.ok(Buffer.from(await read.arrayBuffer()).equals(await readFile(join(shared.work, file.name))), `${file.name} reads back from ${replica.keeper} with its grant`)
      }
    }
  })

  test('asks for a read token, and refuses an empty list, too many names, an empty name or no list with 400', async () => {
    const cluster = shared.cluster
    await store(cluster, {'kept.bin': 100})
    const names = {names: ['kept.bin']}
    const none = await lookup(cluster, names, {})
    assert.equal(none.status, 401)
    assert.equal(none.body.error, 'DFS_ERR_UNAUTHENTICATED')
    assert.equal((await lookup(cluster, names, bearer(await tokenOf(cluster, 'read')))).status, 200)
    for (const body of [{names: []}, {names: Array.from({length: MAX_LOOKUP_NAMES + 1}, (_, index) => `f${index}`)}, {names: ['']}, {}]) {
      const refused = await lookup(cluster, body)
      assert.equal(refused.status, 400, JSON.stringify(body).slice(0, 80))
      assert.equal(refused.body.error, 'DFS_ERR_BAD_REQUEST')
      assert.deepEqual(Object.keys(refused.body).sort(), ['error', 'message'])
    }
  })

  test('dfs get of many names writes each file whole and fails only for the one missing among them (exit 10)', async () => {
    const cluster = shared.cluster
    const sizes = {'a.bin': 65_536, 'b.bin': 1, 'c.bin': 300_000, 'd.bin': 65_536}
    const sha256 = await store(cluster, sizes)
    const out = join(shared.work, 'out')
    const get = await cluster.dfs(['get', 'a.bin', 'b.bin', 'gone.bin', 'c.bin', 'd.bin', '-o', out, '--json'])
    assert.equal(get.code, 10, get.stderr)
    const outcomes = JSON.parse(get.stdout) as Array<{name: string; error?: string; sha256?: string}>
    assert.deepEqual(outcomes.map((outcome) => [outcome.name, outcome.error]), [['a.bin', undefined], ['b.bin', undefined], ['gone.bin', 'DFS_ERR_NOT_FOUND'], ['c.bin', undefined], ['d.bin', undefined]])
    for (const name of Object.keys(sizes)) {
      const bytes = await readFile(join(out, name))
      assert.ok(bytes.equals(await readFile(join(shared.work, name))), `${name} is written whole (sha256 ${sha256[name]})`)
    }
  })
})
