// A keeper killed after an upload's bytes were durable on its disk but before the master recorded
// the upload (the window between the blob's rename and the commit's answer, which the chaos run hit)
// comes back with a file nobody will ever commit. The master, which ticketed that upload to this
// keeper and never recorded it, orders it deleted; a file it has no record of at all (a table
// restored from an old backup) is still kept. The crash's leftovers are made on disk while the
// keeper is down, exactly as its durable write leaves them (blob and description in blobs/).

import assert from 'node:assert/strict'
import {createHash, randomBytes} from 'node:crypto'
import {writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {describe, test} from 'node:test'

import {bearer, clusterPerTest, json, randomFile, sha256File, waitFor, type TestCluster} from './helpers/cluster.js'
import {blobIds} from './helpers/keeper-disk.js'

/** A blob and its description in a stopped keeper's blobs/, as a durable write leaves them. */
async function leaveBlob(cluster: TestCluster, keeperId: string, file: {fileId: string; name: string; bytes: Buffer}): Promise<void> {
  const sha256 = createHash('sha256').update(file.bytes).digest('hex')
  const path = cluster.blobPath(keeperId, file.fileId)
  await writeFile(path, file.bytes)
  await writeFile(`${path}.json`, JSON.stringify({fileId: file.fileId, name: file.name, size: file.bytes.length, sha256, createdAt: Date.now()}))
}

describe('an upload left on a keeper by its crash before the commit', () => {
  const clusters = clusterPerTest()

  test('is deleted on the master\'s order once the keeper is back; a file the master never ticketed is kept', async () => {
    const cluster = await clusters.start({keepers: 1, replicas: 1})
    const keeper = cluster.keepers[0]!
    const dir = cluster.dataDirOf(keeper)
    const bytes = randomBytes(10_000)
    const sha256 = createHash('sha256').update(bytes).digest('hex')
    const ticket = await json<{uploadId: string; keeper: {id: string}}>(`${cluster.masterUrl}/uploads`, {
      method: 'POST',
      headers: {'content-type': 'application/json', ...bearer(cluster.token)},
      body: JSON.stringify({name: 'orphan.bin', size: bytes.length, sha256}),
    })
    assert.equal(ticket.status, 201, JSON.stringify(ticket.body))
    assert.equal(ticket.body.keeper.id, keeper.id)

    await keeper.stop('SIGKILL')
    await leaveBlob(cluster, keeper.id, {fileId: ticket.body.uploadId, name: 'orphan.bin', bytes})
    // Not this master's upload: its id was never ticketed (a file of a table restored from an older backup).
    const stranger = 'strangerFileId0001'
    await leaveBlob(cluster, keeper.id, {fileId: stranger, name: 'stranger.bin', bytes: randomBytes(3000)})
    assert.deepEqual(await blobIds(dir), [stranger, ticket.body.uploadId].sort())

    const back = await cluster.addKeeper(dir)
    assert.equal(back.id, keeper.id)
    await waitFor('the orphaned upload deleted from the keeper', async () => !(await blobIds(dir)).includes(ticket.body.uploadId))
    assert.ok(cluster.master.logs.some((line) => line.includes(`keeper ${keeper.id} holds 1 upload never committed, left by its last process: ordered deleted`)), cluster.master.logs.join('\n'))
    assert.ok(cluster.master.logs.some((line) => line.includes(`keeper ${keeper.id} holds 1 files this master has no record of; they are kept, not used`)))
    assert.deepEqual(await blobIds(dir), [stranger], 'the file the master never ticketed is kept')

    // The name was never taken: a put of it works, and reads back.
    const source = join(clusters.work, 'orphan.bin')
    const putSha = await randomFile(source, 5000)
    const put = await cluster.dfs(['put', source])
    assert.equal(put.code, 0, put.stderr)
    const out = join(clusters.work, 'orphan.copy')
    assert.equal((await cluster.dfs(['get', 'orphan.bin', '-o', out])).code, 0)
    assert.equal(await sha256File(out), putSha)
  })
})
