// Draining and forgetting keepers on real processes: a drained keeper's files are copied away
// before any copy of it goes (sampled all along), it ends with no blobs; a dead keeper is
// forgotten with its replicas; the admin routes refuse bad ids and weaker tokens.

import assert from 'node:assert/strict'
import {readdir} from 'node:fs/promises'
import {join} from 'node:path'
import {describe, test} from 'node:test'

import {mintClientToken, type Scope} from '../src/lib/client-tokens.js'
import {ClusterKey} from '../src/lib/cluster-key.js'
import type {FileInfo, KeeperInfo} from '../src/lib/protocol.js'
import {bearer, clusterPerTest, json, randomFile, waitFor, type TestCluster} from './helpers/cluster.js'
import {assertReadBack, storeRandomFiles} from './helpers/stored-files.js'

const clusters = clusterPerTest()

async function keeperInfo(cluster: TestCluster, id: string): Promise<KeeperInfo | undefined> {
  return (await cluster.keeperStatus()).find((keeper) => keeper.id === id) as KeeperInfo | undefined
}

/** One line on stderr, the catalogue's exit code, no stack. */
function assertRefused(result: {code: number | null; stderr: string}, exit: number, message: RegExp): void {
  assert.equal(result.code, exit, result.stderr)
  assert.match(result.stderr, message)
  assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr)
  assert.doesNotMatch(result.stderr, /\n\s+at /)
}

describe('dfs keeper drain', () => {
  test('every file keeps 3 alive replicas all through a drain of one of 4 keepers; the drained keeper ends with no blobs', async () => {
    const cluster = await clusters.start({keepers: 4, replicas: 3})
    const files = await storeRandomFiles(cluster, clusters.work, 'drained', 6, {baseSize: 200_000, step: 100_000, replicas: 3})
    const status = await cluster.keeperStatus()
    const victim = status.sort((a, b) => b.files - a.files)[0]!
    assert.ok(victim.files > 0, 'the keeper to drain holds files')
    const victimDir = cluster.dataDirOf(cluster.keeperById(victim.id))

    // Sampled without pause from before the drain until it is over: the fewest alive replicas any file had.
    let sampling = true
    let fewest = Number.POSITIVE_INFINITY
    let rounds = 0
    const sampler = (async () => {
      while (sampling) {
        for (const name of files.keys()) {
          const info = (await cluster.stat(name)) as unknown as FileInfo
          fewest = Math.min(fewest, info.replicas.filter((replica) => replica.alive).length)
        }

        rounds++
      }
    })()
    await waitFor('a first round of samples', () => rounds > 0)

    const drain = await cluster.dfs(['keeper', 'drain', victim.id])
    assert.equal(drain.code, 0, drain.stderr)
    assert.match(drain.stdout, new RegExp(`keeper ${victim.id} is (draining|drained)`))
    const roundsAtDrain = rounds

    // No upload goes to a draining keeper.
    const later = join(clusters.work, `${cluster.masterPort}-later.bin`)
    const laterSha256 = await randomFile(later, 150_000)
    assert.equal((await cluster.dfs(['put', later, '--name', 'later.bin', '--wait', 'all'])).code, 0)
    files.set('later.bin', laterSha256)
    assert.ok(!(await cluster.stat('later.bin')).replicas.some((replica) => replica.keeper === victim.id), 'the new file is not on the draining keeper')

    await waitFor('the keeper drained', async () => (await keeperInfo(cluster, victim.id))?.drain === 'drained')
    await waitFor('no blob left on the drained keeper', async () => (await readdir(join(victimDir, 'blobs'))).length === 0)
    sampling = false
    await sampler
    assert.ok(rounds > roundsAtDrain, 'files were sampled while the drain went on')
    assert.ok(fewest >= 3, `a file fell to ${fewest} alive replicas during the drain`)

    for (const name of files.keys()) {
      const replicas = await cluster.waitForReplicas(name, 3)
      assert.ok(!replicas.includes(victim.id), `${name} is no longer on the drained keeper`)
    }

    const table = await cluster.dfs(['status'])
    assert.match(table.stdout, new RegExp(`^${victim.id}\\s.*\\bdrained\\b`, 'm'))
    assert.equal((await keeperInfo(cluster, victim.id))?.files, 0)

    // The drain is in the master's table: a restarted master still knows it.
    await cluster.master.stop()
    await cluster.startMaster()
    assert.equal((await keeperInfo(cluster, victim.id))?.drain, 'drained')

    // Stopped, the drained keeper is forgotten.
    await cluster.keeperById(victim.id).stop()
    const forget = await cluster.dfs(['keeper', 'forget', victim.id])
    assert.equal(forget.code, 0, forget.stderr)
    assert.equal(await keeperInfo(cluster, victim.id), undefined)
    await assertReadBack(cluster, clusters.work, files)
  })
})

describe('dfs keeper drain with too few keepers', () => {
  test('a drain that would leave files with fewer copies waits until a keeper joins, then finishes', async () => {
    const cluster = await clusters.start({keepers: 3, replicas: 3})
    const files = await storeRandomFiles(cluster, clusters.work, 'waiting', 2, {baseSize: 200_000, step: 100_000, replicas: 3})
    const victim = cluster.keepers[0]!
    const victimBlobs = join(cluster.dataDirOf(victim), 'blobs')
    const before = (await readdir(victimBlobs)).length
    assert.ok(before > 0, 'the keeper to drain holds files')

    const drain = await cluster.dfs(['keeper', 'drain', victim.id])
    assert.equal(drain.code, 0, drain.stderr)
    // Two files stored one after the other, each waiting for its copy by the replicator: at least one
    // whole replication pass (which is where a drain is judged finished) ran after the drain began.
    for (const name of ['pass-1.bin', 'pass-2.bin']) {
      const path = join(clusters.work, `${cluster.masterPort}-${name}`)
      files.set(name, await randomFile(path, 50_000))
      const put = await cluster.dfs(['put', path, '--name', name, '--wait', '2'])
      assert.equal(put.code, 0, put.stderr)
    }

    // Two other keepers cannot hold three copies: the drain waits, nothing of it is deleted.
    assert.equal((await keeperInfo(cluster, victim.id))?.drain, 'draining')
    assert.equal((await readdir(victimBlobs)).length, before, 'the draining keeper keeps its blobs')
    for (const name of ['waiting-0.bin', 'waiting-1.bin']) {
      const {replicas} = await cluster.stat(name)
      assert.equal(replicas.filter((replica) => replica.alive).length, 3, `${name} keeps its 3 copies`)
    }

    // A keeper joins: the copies go to it, and only then is the drained keeper emptied.
    await cluster.addKeeper()
    await waitFor('the keeper drained', async () => (await keeperInfo(cluster, victim.id))?.drain === 'drained')
    await waitFor('no blob left on the drained keeper', async () => (await readdir(victimBlobs)).length === 0)
    for (const name of ['waiting-0.bin', 'waiting-1.bin']) {
      const replicas = await cluster.waitForReplicas(name, 3)
      assert.ok(!replicas.includes(victim.id), `${name} is no longer on the drained keeper`)
    }

    await assertReadBack(cluster, clusters.work, files)
  })
})

describe('dfs keeper forget', () => {
  test('a live keeper is refused; a dead one leaves status and the table, and its files are copied again', async () => {
    const cluster = await clusters.start({keepers: 4, replicas: 3})
    const files = await storeRandomFiles(cluster, clusters.work, 'forgotten', 3, {baseSize: 200_000, step: 100_000, replicas: 3})
    const [alive, dead] = (await cluster.keeperStatus()).sort((a, b) => b.files - a.files)
    assertRefused(await cluster.dfs(['keeper', 'forget', alive!.id]), 1, new RegExp(`keeper ${alive!.id} is alive and not drained`))
    const refused = await cluster.masterJson<{error: string}>(`/keepers/${alive!.id}`, {method: 'DELETE'})
    assert.deepEqual([refused.status, refused.body.error], [409, 'DFS_ERR_KEEPER_IN_USE'])

    await cluster.keeperById(dead!.id).stop('SIGKILL')
    await waitFor('the killed keeper declared dead', async () => (await keeperInfo(cluster, dead!.id))?.alive === false)
    const forget = await cluster.dfsJson<{id: string; forgotten: boolean; replicas: number}>(['keeper', 'forget', dead!.id])
    assert.deepEqual(forget, {id: dead!.id, forgotten: true, replicas: dead!.files})
    assert.equal(await keeperInfo(cluster, dead!.id), undefined)
    assert.ok(await keeperInfo(cluster, alive!.id), 'the others stay')

    for (const name of files.keys()) {
      await waitFor(`${name} on 3 alive replicas, none of the forgotten keeper`, async () => {
        const {replicas} = await cluster.stat(name)
        return replicas.length === 3 && replicas.every((replica) => replica.alive && replica.keeper !== dead!.id)
      })
    }

    await assertReadBack(cluster, clusters.work, files)
  })
})

describe('drain and forget: bad input', () => {
  test('an unknown keeper is a 404 catalogue error; read and write tokens get 403; a bad id 400', async () => {
    const cluster = await clusters.start({keepers: 1, replicas: 1})
    const [keeper] = await cluster.keeperStatus()
    for (const [method, path] of [['POST', '/keepers/kNoSuchOne/drain'], ['DELETE', '/keepers/kNoSuchOne']] as const) {
      const {status, body} = await cluster.masterJson<{error: string; message: string}>(path, {method})
      assert.deepEqual([status, body.error], [404, 'DFS_ERR_UNKNOWN_KEEPER'], `${method} ${path}`)
      assert.match(body.message, /no keeper kNoSuchOne is registered/)
    }

    assertRefused(await cluster.dfs(['keeper', 'drain', 'kNoSuchOne']), 1, /no keeper kNoSuchOne is registered/)
    assertRefused(await cluster.dfs(['keeper', 'forget', 'kNoSuchOne']), 1, /no keeper kNoSuchOne is registered/)
    const bad = await cluster.masterJson<{error: string}>('/keepers/not%20an%20id/drain', {method: 'POST'})
    assert.deepEqual([bad.status, bad.body.error], [400, 'DFS_ERR_BAD_REQUEST'])

    const key = await ClusterKey.load(cluster.secretFile)
    for (const scope of ['read', 'write'] satisfies Scope[]) {
      const {token} = await mintClientToken(key, {scope, ttlMs: 3_600_000})
      for (const [method, path] of [['POST', `/keepers/${keeper!.id}/drain`], ['DELETE', `/keepers/${keeper!.id}`]] as const) {
        const {status, body} = await json<{error: string}>(`${cluster.masterUrl}${path}`, {method, headers: bearer(token)})
        assert.deepEqual([status, body.error], [403, 'DFS_ERR_FORBIDDEN'], `${method} ${path} with a ${scope} token`)
      }

      assertRefused(await cluster.dfs(['keeper', 'drain', keeper!.id, '--token', token]), 9, /scope admin or more/)
      assertRefused(await cluster.dfs(['keeper', 'forget', keeper!.id, '--token', token]), 9, /scope admin or more/)
    }

    const after = await keeperInfo(cluster, keeper!.id)
    assert.deepEqual([after?.alive, after?.drain], [true, null], 'the refused calls changed nothing')
  })
})
