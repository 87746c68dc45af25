import assert from 'node:assert/strict'
import {createHash, randomBytes} from 'node:crypto'
import {readdir} from 'node:fs/promises'
import {join} from 'node:path'
import {describe, test} from 'node:test'

import {GRANT_HEADER} from '../src/lib/grants.js'
import {clusterPerTest, randomFile, waitFor} from './helpers/cluster.js'

const MiB = 1024 * 1024

// Each test stops a server of its cluster: each has a cluster of its own.
describe('graceful shutdown', () => {
  const clusters = clusterPerTest()

  test('a keeper told to stop refuses new requests but finishes the upload under way, and exits 0', async () => {
    const cluster = await clusters.start({keepers: 1, replicas: 1})
    const keeper = cluster.keepers[0]!
    const body = randomBytes(4 * MiB)
    const sha256 = createHash('sha256').update(body).digest('hex')
    const ticket = await cluster.masterJson<{uploadId: string; grant: string}>('/uploads', {
      method: 'POST',
      headers: {'content-type': 'application/json'},
      body: JSON.stringify({name: 'last.bin', size: body.length, sha256}),
    })
    let release!: () => void
    const released = new Promise<void>((resolve) => (release = resolve))
    const upload = fetch(`${keeper.url}/files/last.bin?upload=${ticket.body.uploadId}`, {
      method: 'PUT',
      headers: {'x-dfs-sha256': sha256, 'x-dfs-size': String(body.length), 'content-type': 'application/octet-stream', [GRANT_HEADER]: ticket.body.grant},
      body: new ReadableStream<Uint8Array>({
        async start(controller) {
          controller.enqueue(body.subarray(0, MiB))
          await released
          controller.enqueue(body.subarray(MiB))
          controller.close()
        },
      }),
      duplex: 'half',
    } as RequestInit)
    upload.catch(() => {})
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

    release()
    const response = await upload
    assert.equal(response.status, 201, await response.clone().text())
    assert.equal(await exit, 0)
    assert.equal((await cluster.stat('last.bin')).sha256, sha256)
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
    assert.deepEqual(after.replicas.map((replica) => [replica.keeper, replica.path]), before.replicas.map((replica) => [replica.keeper, replica.path]))
  })
})
