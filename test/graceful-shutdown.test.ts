import assert from 'node:assert/strict'
import {readdir} from 'node:fs/promises'
import {join} from 'node:path'
import {describe, test} from 'node:test'

import {clusterPerTest, randomFile, waitFor} from './helpers/cluster.js'
import {holdUpload} from './helpers/held-upload.js'

const MiB = 1024 * 1024

// Each test stops a server of its cluster: each has a cluster of its own.
describe('graceful shutdown', () => {
  const clusters = clusterPerTest()

  test('a keeper told to stop refuses new requests but finishes the upload under way, and exits 0', async () => {
    const cluster = await clusters.start({keepers: 1, replicas: 1})
    const keeper = cluster.keepers[0]!
    const held = await holdUpload(cluster.masterUrl, cluster.token, 'last.bin')
    await waitFor('the upload to start', async () => (await readdir(join(cluster.dataDirOf(keeper), 'tmp'))).length > 0)

    const exit = keeper.stop('SIGTERM')
    // New connections are refused; a request on a connection kept alive gets the catalogue's 503.
    await waitFor('the keeper to refuse new requests', async () => {
      try {
        const response = await fetch(`${keeper.url}/health`)
        if (response.status !== 503) return undefined
        assert.equal(((await response.json()) as {error: string}).error, 'DFS_ERR_SHUTTING_DOWN')
        return true
      } catch (error) {
        return (error as {cause?: {code?: string}}).cause?.code === 'ECONNREFUSED'
      }
    })

    held.release()
    const answer = await held.response
    assert.ok('status' in answer && answer.status === 201, JSON.stringify('error' in answer ? answer.error.message : answer))
    assert.equal(await exit, 0)
    assert.equal((await cluster.stat('last.bin')).sha256, held.sha256)
  })

  test('the master told to stop exits 0 and keeps its table', async () => {
    const cluster = await clusters.start({keepers: 1, replicas: 1})
    const source = join(clusters.work, 'kept.bin')
    const sha256 = await randomFile(source, MiB)
    assert.equal((await cluster.dfs(['put', source])).code, 0)
    const before = await cluster.stat('kept.bin')
    assert.equal(await cluster.master.stop('SIGTERM'), 0)
    await cluster.startMaster()
    const after = await cluster.stat('kept.bin')
    assert.deepEqual({fileId: after.fileId, size: after.size, sha256: after.sha256}, {fileId: before.fileId, size: MiB, sha256})
    assert.deepEqual(after.replicas.map((replica) => replica.keeper), before.replicas.map((replica) => replica.keeper))
  })
})
