// A keeper carries out a copy order's small copies from one source in batch reads (POST
// /files/read), not one GET per copy; larger files still come by GET, and a copy whose bytes fail
// the order's sha256 is pulled alone and fails alone. Real master and keepers with a cluster key;
// the source keeper's own metrics witness the batches and the GETs.

import assert from 'node:assert/strict'
import {join} from 'node:path'
import {describe, test} from 'node:test'

import {flipEvery} from './chaos/disk-faults.js'
import {bearer, clusterPerTest, randomFile, sha256File, waitFor, type TestCluster} from './helpers/cluster.js'
import {blobIds} from './helpers/keeper-disk.js'
import {startProxiedKeeper} from './helpers/keeper-proxy.js'
import {parseMetrics, sumOf} from './helpers/prometheus-text.js'

const KiB = 1024

/** One keeper's batch reads, files served and refused in them, GETs of files (its downloads), and copies it asked of batch reads: stored from their frame or pulled alone after. */
async function served(cluster: TestCluster, url: string): Promise<{batches: number; served: number; refused: number; gets: number; stored: number; alone: number}> {
  const response = await fetch(`${url}/metrics`, {headers: bearer(cluster.token)})
  assert.equal(response.status, 200)
  const samples = parseMetrics(await response.text())
  return {
    batches: sumOf(samples, 'dfs_keeper_batch_reads_total'),
    served: sumOf(samples, 'dfs_keeper_batch_read_files_total', {result: 'served'}),
    refused: sumOf(samples, 'dfs_keeper_batch_read_files_total', {result: 'refused'}),
    gets: sumOf(samples, 'dfs_keeper_download_duration_seconds_count'),
    stored: sumOf(samples, 'dfs_keeper_batch_copies_total', {result: 'stored'}),
    alone: sumOf(samples, 'dfs_keeper_batch_copies_total', {result: 'alone'}),
  }
}

/** Stores files of these sizes (name → size) with one `dfs put` on a cluster of one keeper; answers name → sha256 and name → file id. */
async function putOnOneKeeper(cluster: TestCluster, work: string, sizes: Map<string, number>): Promise<{sha256: Map<string, string>; fileIds: Map<string, string>}> {
  const sha256 = new Map<string, string>()
  for (const [name, size] of sizes) sha256.set(name, await randomFile(join(work, name), size))
  const put = await cluster.dfs(['put', ...[...sizes.keys()].map((name) => join(work, name))])
  assert.equal(put.code, 0, put.stderr)
  const fileIds = new Map<string, string>()
  for (const name of sizes.keys()) fileIds.set(name, (await cluster.stat(name)).fileId)
  return {sha256, fileIds}
}

describe('copies in batch reads', () => {
  const clusters = clusterPerTest()

  test('the small copies of an order come from their source in batch reads, byte-exact; a file above 1 MiB comes by GET', async () => {
    const cluster = await clusters.start({keepers: 1, replicas: 2})
    const holder = cluster.keepers[0]!
    // An empty file, small ones, one of exactly 1 MiB (the largest a batch read serves), and one above it.
    const sizes = new Map<string, number>([
      ['empty.bin', 0],
      ['exact.bin', 1024 * KiB],
      ['large.bin', 1024 * KiB + 1],
    ])
    for (let index = 0; index < 30; index++) sizes.set(`small-${index}.bin`, 1 + index * 2203)
    const {sha256, fileIds} = await putOnOneKeeper(cluster, clusters.work, sizes)
    const before = await served(cluster, holder.url)

    const receiver = await cluster.addKeeper()
    await waitFor('every file at 2 replicas', async () => {
      const infos = await Promise.all([...sizes.keys()].map(async (name) => cluster.stat(name)))
      return infos.every((info) => info.replicas.some((replica) => replica.keeper === receiver.id && replica.alive))
    })

    const after = await served(cluster, holder.url)
    assert.equal(after.served - before.served, sizes.size - 1, 'every copy of up to 1 MiB came in a batch read')
    assert.equal(after.refused - before.refused, 0, 'no file was asked of a batch read that it does not serve')
    assert.ok(after.batches - before.batches >= 1 && after.batches - before.batches <= 4, `${sizes.size - 1} copies in a few batch reads (${after.batches - before.batches})`)
    assert.equal(after.gets - before.gets, 1, 'one GET: the copy of the file above 1 MiB')
    const copies = await served(cluster, receiver.url)
    assert.deepEqual([copies.stored, copies.alone], [sizes.size - 1, 0], 'the receiver stored every small copy from its frame')

    const receiverDir = cluster.keeperDirs[cluster.keepers.indexOf(receiver)]!
    assert.deepEqual(await blobIds(receiverDir), [...fileIds.values()].sort())
    for (const [name, fileId] of fileIds) assert.equal(await sha256File(cluster.blobPath(receiver.id, fileId)), sha256.get(name), `${name} on ${receiver.id}`)
  })

  test('a batch read that brings one copy whose bytes do not match the order: that copy is not made, the others in the batch are', async () => {
    const cluster = await clusters.start({keepers: 1, replicas: 2})
    const holder = cluster.keepers[0]!
    const sizes = new Map<string, number>()
    for (let index = 0; index < 8; index++) sizes.set(`good-${index}.bin`, 40 * KiB + index)
    sizes.set('rotten.bin', 64 * KiB)
    const {sha256, fileIds} = await putOnOneKeeper(cluster, clusters.work, sizes)
    // The only holder's bytes of one file rot (same size: its batch read serves them, as it does not re-hash).
    await flipEvery(cluster.blobPath(holder.id, fileIds.get('rotten.bin')!), 16 * KiB)
    const before = await served(cluster, holder.url)

    const receiver = await cluster.addKeeper()
    const good = [...sizes.keys()].filter((name) => name !== 'rotten.bin')
    await waitFor('the good files at 2 replicas', async () => {
      const infos = await Promise.all(good.map(async (name) => cluster.stat(name)))
      return infos.every((info) => info.replicas.some((replica) => replica.keeper === receiver.id && replica.alive))
    })
    await waitFor('the rotten copy to have failed', () => cluster.master.logs.some((line) => line.includes(`copy of \\"rotten.bin\\" from ${holder.id} to ${receiver.id} failed`)))

    const after = await served(cluster, holder.url)
    assert.ok(after.served - before.served >= sizes.size, 'the rotten file was served in a batch read with the others')
    assert.ok(after.gets - before.gets >= 1, 'the copy whose bytes failed was pulled again alone, by GET')
    const copies = await served(cluster, receiver.url)
    assert.equal(copies.stored, good.length, 'the good copies were stored from their frames')
    assert.ok(copies.alone >= 1, 'the rotten one was pulled alone after its frame failed the check')
    assert.deepEqual((await cluster.stat('rotten.bin')).replicas.map((replica) => replica.keeper), [holder.id], 'rotten.bin is held by its one source only')
    const receiverDir = cluster.keeperDirs[cluster.keepers.indexOf(receiver)]!
    assert.deepEqual(await blobIds(receiverDir), good.map((name) => fileIds.get(name)!).sort(), 'the receiver keeps the good copies only')
    for (const name of good) assert.equal(await sha256File(cluster.blobPath(receiver.id, fileIds.get(name)!)), sha256.get(name), `${name} on ${receiver.id}`)
  })

  test('a batch read cut off mid-answer: the copies it had not delivered are pulled alone, byte-exact', async (t) => {
    const cluster = await clusters.start({keepers: 0, replicas: 2})
    const {proxy} = await startProxiedKeeper(t, cluster, join(cluster.dir, 'keeper-behind-proxy'))
    const sizes = new Map<string, number>()
    for (let index = 0; index < 30; index++) sizes.set(`cut-${index}.bin`, 4000 + index * 53)
    const {sha256, fileIds} = await putOnOneKeeper(cluster, clusters.work, sizes)
    // The middle of some frame, well before the end of the answer.
    proxy.cutBatchReads = 30_000

    const receiver = await cluster.addKeeper()
    await waitFor('every file at 2 replicas', async () => {
      const infos = await Promise.all([...sizes.keys()].map(async (name) => cluster.stat(name)))
      return infos.every((info) => info.replicas.some((replica) => replica.keeper === receiver.id && replica.alive))
    })

    assert.ok(proxy.batchReadsCut > 0, 'a batch read from the keeper behind the proxy was cut off')
    const copies = await served(cluster, receiver.url)
    assert.ok(copies.stored >= 1, `the copies delivered before the cut were stored from their frames (${copies.stored})`)
    assert.ok(copies.alone >= 1, `the rest were pulled alone (${copies.alone})`)
    // The cut failed no copy, and no order: every copy of the one order was stored.
    assert.deepEqual(cluster.master.logs.filter((line) => line.includes(`to ${receiver.id} failed`)), [])
    assert.ok(cluster.master.logs.some((line) => line.includes(`copied ${sizes.size} files to ${receiver.id}`)), cluster.master.logs.filter((line) => line.includes('cop')).join('\n'))
    assert.equal(copies.stored + copies.alone, sizes.size, 'each copy stored from its frame or pulled alone, once')
    const receiverDir = cluster.keeperDirs[cluster.keepers.indexOf(receiver)]!
    assert.deepEqual(await blobIds(receiverDir), [...fileIds.values()].sort())
    for (const [name, fileId] of fileIds) assert.equal(await sha256File(cluster.blobPath(receiver.id, fileId)), sha256.get(name), `${name} on ${receiver.id}`)
  })
})
