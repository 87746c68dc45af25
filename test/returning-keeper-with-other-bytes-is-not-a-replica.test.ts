import assert from 'node:assert/strict'
import {createHash, randomBytes} from 'node:crypto'
import {readFile, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {describe, test} from 'node:test'

import {TestCluster, clusterPerTest, randomFile, sha256File, waitFor} from './helpers/cluster.js'

const MiB = 1024 * 1024
const SIZE = 2 * MiB

/**
 * Stores a file on 3 keepers and takes one of them (`stale`) down; while it is down its replica is
 * replaced by other bytes of the same size, and its description claims their sha256: same file id
 * and name, other content. Returns what the test needs to bring it back.
 */
async function staleReplicaOnADownKeeper(cluster: TestCluster, work: string, name: string) {
  const source = join(work, name)
  const sha256 = await randomFile(source, SIZE)
  assert.equal((await cluster.dfs(['put', source, '--wait', 'all'])).code, 0)
  const {fileId, replicas} = await cluster.stat(name)
  const stale = cluster.keeperById(replicas[0]!.keeper)
  const dataDir = cluster.dataDirOf(stale)
  await stale.stop('SIGTERM')
  await waitFor(`${stale.id} to be dead`, async () => !(await cluster.keeperStatus()).find((keeper) => keeper.id === stale.id)!.alive)

  const blob = cluster.blobPath(stale.id, fileId)
  const other = randomBytes(SIZE)
  const otherSha256 = createHash('sha256').update(other).digest('hex')
  await writeFile(blob, other)
  const description = JSON.parse(await readFile(`${blob}.json`, 'utf8')) as {fileId: string; name: string; size: number; sha256: string; createdAt: number}
  assert.ok(Number.isSafeInteger(description.createdAt), 'the description says when the generation was uploaded')
  assert.deepEqual(description, {fileId, name, size: SIZE, sha256, createdAt: description.createdAt}, 'the description as the keeper wrote it')
  await writeFile(`${blob}.json`, JSON.stringify({...description, sha256: otherSha256}))
  return {sha256, fileId, staleId: stale.id, dataDir, blob}
}

describe('a keeper that comes back holding other bytes under a file\'s id', () => {
  const clusters = clusterPerTest()

  test('is not attached as a replica and no reader is sent to it; the file keeps its 3 good copies', async () => {
    const cluster = await clusters.start({keepers: 4})
    const {sha256, staleId, dataDir} = await staleReplicaOnADownKeeper(cluster, clusters.work, 'kept-apart.bin')
    // Meanwhile the file was copied to the fourth keeper.
    await cluster.waitForReplicas('kept-apart.bin', 3)

    // Once its start returns, the keeper has registered with its inventory.
    await cluster.addKeeper(dataDir)
    await waitFor(`${staleId} alive again`, async () => (await cluster.keeperStatus()).find((keeper) => keeper.id === staleId)!.alive)
    // What the master does with it (src/roles/master/master.ts register()): not attached, kept and not used.
    assert.ok(
      cluster.master.logs.some((line) => line.includes(`keeper ${staleId} holds 1 files this master has no record of`)),
      'the master saw the other bytes and did not take them',
    )

    const stat = await cluster.stat('kept-apart.bin')
    assert.equal(stat.sha256, sha256)
    assert.deepEqual(stat.replicas.map((replica) => replica.keeper).filter((keeper) => keeper === staleId), [], 'not a replica, alive or dead')
    assert.equal(stat.replicas.filter((replica) => replica.alive).length, 3)
    for (const replica of stat.replicas) assert.equal(await sha256File(cluster.blobPath(replica.keeper, stat.fileId)), sha256, `replica on ${replica.keeper}`)

    const out = join(clusters.work, 'kept-apart.copy')
    const [got] = await cluster.dfsJson<[{sha256: string; sources: Array<{keeper: string}>; corruptReplicas: string[]}]>(['get', 'kept-apart.bin', '-o', out])
    assert.equal(await sha256File(out), sha256)
    assert.deepEqual(got.sources.map((source) => source.keeper).filter((keeper) => keeper === staleId), [], 'no reader is sent to it')
    assert.deepEqual(got.corruptReplicas, [])
    const fsck = await cluster.dfsJson<{status: string}>(['fsck'])
    assert.equal(fsck.status, 'healthy')
  })

  test('when it is the only place for the third copy, its other bytes are replaced by the file, never counted before', async () => {
    const cluster = await clusters.start({keepers: 3})
    const {sha256, staleId, dataDir, blob} = await staleReplicaOnADownKeeper(cluster, clusters.work, 'replaced.bin')
    await cluster.waitForReplicas('replaced.bin', 2)

    await cluster.addKeeper(dataDir)
    // The keeper is listed as holding the file only once its blob on disk is the file.
    const counted: string[] = []
    await waitFor('3 good replicas, one on the returned keeper', async () => {
      const alive = (await cluster.stat('replaced.bin')).replicas.filter((replica) => replica.alive)
      if (alive.some((replica) => replica.keeper === staleId)) counted.push(await sha256File(blob).catch(() => 'missing'))
      return alive.length === 3
    })
    assert.ok(counted.length > 0)
    assert.deepEqual([...new Set(counted)], [sha256], 'whenever it was counted, it held the file\'s bytes')
    const description = JSON.parse(await readFile(`${blob}.json`, 'utf8')) as {sha256: string}
    assert.equal(description.sha256, sha256)

    const out = join(clusters.work, 'replaced.copy')
    const got = await cluster.dfs(['get', 'replaced.bin', '-o', out])
    assert.equal(got.code, 0, got.stderr)
    assert.equal(await sha256File(out), sha256)
  })
})
