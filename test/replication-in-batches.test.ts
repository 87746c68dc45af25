// Copies travel in batches: one order per destination (POST /replicate/batch), one report of the
// batch's copies to the master (POST /replicas). A copy that fails in a batch fails alone: here a
// source that lost a file and a source whose bytes no longer match the sha256, among good copies,
// against real processes.

import assert from 'node:assert/strict'
import {rm} from 'node:fs/promises'
import {join} from 'node:path'
import {describe, test} from 'node:test'

import {flipEvery} from './chaos/disk-faults.js'
import {clusterPerTest, randomFile, sha256File, waitFor} from './helpers/cluster.js'
import {blobIds} from './helpers/keeper-disk.js'

const KiB = 1024

describe('replication in batches', () => {
  const clusters = clusterPerTest()

  test('in one order with a copy whose source lacks the file and one whose bytes do not match, the good copies count and the bad ones do not', async () => {
    const cluster = await clusters.start({keepers: 1, replicas: 2})
    const holder = cluster.keepers[0]!
    const names = ['good-0.bin', 'good-1.bin', 'good-2.bin', 'good-3.bin', 'lost.bin', 'rotten.bin']
    const sha256 = new Map<string, string>()
    for (const name of names) sha256.set(name, await randomFile(join(clusters.work, name), 64 * KiB))
    const put = await cluster.dfs(['put', ...names.map((name) => join(clusters.work, name))])
    assert.equal(put.code, 0, put.stderr)
    const fileIds = new Map<string, string>()
    for (const name of names) fileIds.set(name, (await cluster.stat(name)).fileId)

    // The only holder loses one file's blob (its index still lists it) and another's bytes rot.
    await rm(cluster.blobPath(holder.id, fileIds.get('lost.bin')!))
    await flipEvery(cluster.blobPath(holder.id, fileIds.get('rotten.bin')!), 16 * KiB)

    const receiver = await cluster.addKeeper()
    const good = names.filter((name) => name.startsWith('good-'))
    await waitFor('the good files at 2 replicas', async () => {
      const infos = await Promise.all(good.map((name) => cluster.stat(name)))
      return infos.every((info) => info.replicas.some((replica) => replica.keeper === receiver.id && replica.alive))
    })
    const failed = (name: string) => cluster.master.logs.some((line) => line.includes(`copy of \\"${name}\\" from ${holder.id} to ${receiver.id} failed`))
    await waitFor('both bad copies to have failed', () => failed('lost.bin') && failed('rotten.bin'))

    // The good copies came in one order: one line for the four of them.
    assert.ok(cluster.master.logs.some((line) => line.includes(`copied 4 files to ${receiver.id}`)), cluster.master.logs.filter((line) => line.includes('copied')).join('\n'))
    for (const name of ['lost.bin', 'rotten.bin']) {
      const info = await cluster.stat(name)
      assert.deepEqual(info.replicas.map((replica) => replica.keeper), [holder.id], `${name} is held by its one source only`)
    }

    const receiverDir = cluster.keeperDirs[cluster.keepers.indexOf(receiver)]!
    assert.deepEqual(await blobIds(receiverDir), good.map((name) => fileIds.get(name)!).sort(), 'the receiver keeps the good copies only')
    for (const name of good) assert.equal(await sha256File(cluster.blobPath(receiver.id, fileIds.get(name)!)), sha256.get(name), `${name} on ${receiver.id}`)
  })
})
