// Found by the chaos run: a keeper that drops a corrupt replica while the master is down could not
// report it, and the master went on counting a replica that was no longer there (fsck healthy,
// the file one good copy short) until that keeper happened to restart.

import assert from 'node:assert/strict'
import {join} from 'node:path'
import {describe, test} from 'node:test'

import {flipBytes} from './chaos/disk-faults.js'
import {clusterPerTest, randomFile, sha256File, waitFor} from './helpers/cluster.js'

const MiB = 1024 * 1024

describe('a corrupt replica found while the master is down', () => {
  const clusters = clusterPerTest()

  test('is reported once the master is back: the master stops counting it and copies a good one', async () => {
    const cluster = await clusters.start({keepers: 4, keeperArgs: ['--scrub-interval', '200ms']})
    const source = join(clusters.work, 'rot.bin')
    const sha256 = await randomFile(source, MiB)
    assert.equal((await cluster.dfs(['put', source, '--wait', 'all'])).code, 0)
    const {fileId, replicas} = await cluster.stat('rot.bin')
    const bad = replicas[0]!
    const keeper = cluster.keeperById(bad.keeper)

    await cluster.master.stop('SIGKILL')
    await flipBytes(cluster.blobPath(bad.keeper, fileId), MiB, [0.5])
    await waitFor('the keeper to drop the replica and fail to report it', () => keeper.logs.some((line) => line.includes('could not report the corrupt replica')))
    await cluster.startMaster()

    // Every replica the master records is on its keeper's disk with the right bytes, and there are three.
    await waitFor(
      'three recorded replicas, each really there and byte-exact',
      async () => {
        const {replicas} = await cluster.stat('rot.bin')
        if (replicas.filter((replica) => replica.alive).length !== 3) return false
        for (const replica of replicas) if ((await sha256File(cluster.blobPath(replica.keeper, fileId)).catch(() => 'missing')) !== sha256) return false
        return true
      },
      30_000,
    )
  })
})
