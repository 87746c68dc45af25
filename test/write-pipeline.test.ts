// A one-pass put that waits for more than one replica (`--wait N`, `--wait all`) has its other
// replicas ride along with its bytes (the write pipeline): the first keeper forwards what it
// receives to the next keeper the master named, which forwards to the one after; the seal goes down
// the same chain. These tests hold it to its promises: three replicas when put returns with no copy
// ordered, the file's very bytes on every keeper, and a downstream that dies, stalls or corrupts costs only
// its copy (the put succeeds, the replicator makes the copy later). A plain put asks for none.

import assert from 'node:assert/strict'
import {readdir} from 'node:fs/promises'
import {join} from 'node:path'
import {describe, test, type TestContext} from 'node:test'

import {GRANT_HEADER} from '../src/lib/grants.js'
import {bearer, clusterPerTest, json, randomFile, sha256File, waitFor, type ServerProcess, type TestCluster} from './helpers/cluster.js'
import {startProxiedKeeper, type KeeperProxy} from './helpers/keeper-proxy.js'
import {parseMetrics, sumOf} from './helpers/prometheus-text.js'

const MiB = 1024 * 1024
// Over SMALL_FILE (8 MiB): a one-pass put, which asks for a pipeline when it waits for replicas.
const SIZE = 9 * MiB
// The stall timeout of the keepers in the stall test (--stall-timeout): the default is 30 s.
const STALL_MS = 3000

interface PutReport {
  name: string
  fileId: string
  sha256: string
  replicas: number
}

/** The copies the master's replicator ordered so far (its /metrics). */
async function copiesOrdered(cluster: TestCluster): Promise<number> {
  const response = await fetch(`${cluster.masterUrl}/metrics`, {headers: bearer(cluster.token)})
  assert.equal(response.status, 200)
  return sumOf(parseMetrics(await response.text()), 'dfs_master_replication_copies_ordered_total')
}

/** The sha256 of the blob of `fileId` on each keeper that holds one, by keeper data dir. */
async function blobsOn(dataDirs: string[], fileId: string): Promise<Map<string, string>> {
  const blobs = new Map<string, string>()
  for (const dir of dataDirs) {
    const names = await readdir(join(dir, 'blobs')).catch((): string[] => [])
    if (names.includes(fileId)) blobs.set(dir, await sha256File(join(dir, 'blobs', fileId)))
  }

  return blobs
}

/** Temp files (held or half-written uploads) in a keeper's data dir. */
async function tmpFiles(dataDir: string): Promise<string[]> {
  return (await readdir(join(dataDir, 'tmp')).catch(() => [])).filter((name) => !name.endsWith('.probe'))
}

/** `count` keepers behind fault proxies (each advertises its proxy), registered and alive at the master. */
async function proxiedKeepers(t: TestContext, cluster: TestCluster, count: number, args: string[] = []): Promise<Array<{keeper: ServerProcess; proxy: KeeperProxy; dataDir: string}>> {
  const started = await Promise.all(
    Array.from({length: count}, async (_, index) => {
      const dataDir = join(cluster.dir, `proxied-${index + 1}`)
      return {...(await startProxiedKeeper(t, cluster, dataDir, args)), dataDir}
    }),
  )
  await waitFor(`${count} keepers alive`, async () => (await cluster.keeperStatus()).filter((keeper) => keeper.alive).length === count)
  return started
}

describe('write pipeline', () => {
  const clusters = clusterPerTest()

  test('a large put on three keepers has its three replicas when put returns, with no copy ordered and the same bytes on every keeper', async () => {
    const cluster = await clusters.start({keepers: 3, replicas: 3})
    const source = join(clusters.work, 'pipelined.bin')
    const sha256 = await randomFile(source, SIZE)

    const [put] = await cluster.dfsJson<PutReport[]>(['put', source, '--wait', 'all'])
    assert.equal(put!.sha256, sha256)
    assert.equal(put!.replicas, 3, 'three durable replicas when put returned')
    const stat = await cluster.stat('pipelined.bin')
    assert.equal(stat.replicas.filter((replica) => replica.alive).length, 3)
    assert.equal(await copiesOrdered(cluster), 0, 'the replicator ordered no copy: the pipeline made them')
    const blobs = await blobsOn(cluster.keeperDirs, put!.fileId)
    assert.equal(blobs.size, 3)
    for (const [dir, blob] of blobs) assert.equal(blob, sha256, `the bytes on ${dir}`)
    for (const dir of cluster.keeperDirs) assert.deepEqual(await tmpFiles(dir), [], `nothing left in ${dir}/tmp`)
  })

  test('a plain put (confirmed at one replica) asks for no pipeline: the replicator makes its copies', async () => {
    const cluster = await clusters.start({keepers: 3, replicas: 3})
    const source = join(clusters.work, 'plain.bin')
    const sha256 = await randomFile(source, SIZE)

    const [put] = await cluster.dfsJson<PutReport[]>(['put', source])
    assert.equal(put!.sha256, sha256)
    await cluster.waitForReplicas('plain.bin', 3)
    assert.ok((await copiesOrdered(cluster)) >= 2, 'both other replicas were copies the replicator ordered')
  })

  test('a keeper forwards only down the pipeline the master made: a keeper named without its grant, or with another keeper\'s, is refused before a byte is read', async () => {
    const cluster = await clusters.start({keepers: 3, replicas: 3})
    const size = 9 * MiB
    const ticket = await cluster.masterJson<{uploadId: string; keeper: {url: string}; grant: string; pipeline: Array<{id: string; url: string; grant: string}>}>('/uploads', {
      method: 'POST',
      headers: {'content-type': 'application/json'},
      body: JSON.stringify({name: 'forged.bin', size, pipeline: true}),
    })
    assert.equal(ticket.status, 201, JSON.stringify(ticket.body))
    const {uploadId, keeper, grant, pipeline} = ticket.body
    assert.equal(pipeline.length, 2, 'the ticket names the two other keepers')
    const send = (chain: unknown) =>
      json<{error?: string}>(`${keeper.url}/uploads/${uploadId}?name=forged.bin`, {
        method: 'PUT',
        headers: {'content-type': 'application/octet-stream', 'x-dfs-size': String(size), [GRANT_HEADER]: grant, 'x-dfs-pipeline': JSON.stringify(chain)},
        body: new Uint8Array(size),
      })
    const [second, third] = pipeline as [(typeof pipeline)[0], (typeof pipeline)[0]]
    const swapped = await send([{...second, grant: third.grant}, third])
    assert.equal(swapped.status, 403, JSON.stringify(swapped.body))
    // The grant names the keeper's URL too: a client cannot point the keeper at another address.
    const elsewhere = await send([{...second, url: 'http://127.0.0.1:9'}, third])
    assert.equal(elsewhere.status, 403, JSON.stringify(elsewhere.body))
    const bare = await send([{id: second.id, url: second.url}])
    assert.equal(bare.status, 401, JSON.stringify(bare.body))
    const garbled = await send([{id: second.id}])
    assert.equal(garbled.status, 400, JSON.stringify(garbled.body))
    for (const dir of cluster.keeperDirs) assert.deepEqual(await tmpFiles(dir), [], `nothing held in ${dir}`)
  })

  test('a downstream keeper killed mid-upload: the put succeeds, and the replicator brings the file to three replicas', async (t) => {
    const cluster = await clusters.start({keepers: 0, replicas: 3})
    const keepers = await proxiedKeepers(t, cluster, 4)
    const source = join(clusters.work, 'cut-off.bin')
    const sha256 = await randomFile(source, SIZE)

    // Whichever keeper gets forwarded bytes first stops after 2 MiB and is killed there.
    const stalled = Promise.race(keepers.map(async (keeper) => keeper.proxy.stallForwardedUpload(2 * MiB).then(() => keeper)))
    const putting = cluster.dfsJson<PutReport[]>(['put', source, '--wait', '2'])
    const victim = await stalled
    await victim.keeper.stop('SIGKILL')
    const [put] = await putting
    assert.equal(put!.sha256, sha256)
    assert.ok(put!.replicas >= 2, `the put waited for 2 replicas and counted ${put!.replicas}`)

    await cluster.waitForReplicas('cut-off.bin', 3)
    assert.ok((await copiesOrdered(cluster)) >= 1, 'the replicator made the missing copies')
    const alive = keepers.filter((keeper) => keeper !== victim).map((keeper) => keeper.dataDir)
    const blobs = await blobsOn(alive, put!.fileId)
    assert.equal(blobs.size, 3)
    for (const [dir, blob] of blobs) assert.equal(blob, sha256, `the bytes on ${dir}`)
  })

  test('a downstream keeper that stops taking bytes is cut off after the stall timeout: the put succeeds without it, and the replicator brings the file to three replicas', async (t) => {
    const cluster = await clusters.start({keepers: 0, replicas: 3})
    // The keepers' own stall timeout (--stall-timeout), shorter than the default so that the test
    // waits 3 s rather than 30; the lines below name it, so a keeper that kept the default fails them.
    const keepers = await proxiedKeepers(t, cluster, 4, ['--stall-timeout', `${STALL_MS}ms`])
    const source = join(clusters.work, 'stalled.bin')
    // Far more than the buffers between two keepers hold, so that the forwarding keeper ends up
    // waiting on the stalled one, which stays alive and connected (unlike a killed one).
    const sha256 = await randomFile(source, 64 * MiB)

    const stalled = Promise.race(keepers.map(async (keeper) => keeper.proxy.stallForwardedUpload(2 * MiB).then(() => keeper)))
    const putting = cluster.dfsJson<PutReport[]>(['put', source, '--wait', '2'])
    const victim = await stalled
    const [put] = await putting
    assert.equal(put!.sha256, sha256)
    assert.ok(put!.replicas >= 2, `the put waited for 2 replicas and counted ${put!.replicas}`)
    // Cut off for its silence (STALL_MS without a byte), not for a failure: it still runs. (The
    // line may reach this process after the put's answer.)
    const cutOff = `keeper ${victim.keeper.id} cut off (it took no byte for ${STALL_MS / 1000} s)`
    await waitFor(`a keeper's log line "${cutOff}"`, () => keepers.some(({keeper}) => keeper.logs.some((line) => line.includes(cutOff))))
    assert.equal(victim.keeper.child.exitCode, null, 'the stalled keeper is still running')

    await cluster.waitForReplicas('stalled.bin', 3)
    const blobs = await blobsOn(keepers.map((keeper) => keeper.dataDir), put!.fileId)
    assert.equal(blobs.size, 3)
    for (const [dir, blob] of blobs) assert.equal(blob, sha256, `the bytes on ${dir}`)
    // Nor does any keeper keep a partial copy until its restart: the cut-off's abort never reaches
    // the stalled keeper (the stall stopped reading, so it carries no sign of the end), which
    // drops its bytes once its upstream was silent for 1.5 stall timeouts (one line), and aborts the one after it.
    // (Half the stall timeout more than its upstream's: the upstream's cut-off comes first.)
    const silent = `sent no byte for ${(STALL_MS * 1.5) / 1000} s; the bytes it sent are dropped`
    await waitFor(`the stalled keeper's log line "${silent}"`, () => victim.keeper.logs.some((line) => line.includes(silent)))
    assert.equal(victim.keeper.logs.filter((line) => line.includes(put!.fileId) && line.includes('dropped')).length, 1, victim.keeper.logs.join('\n'))
    await waitFor('no partial upload left in any keeper\'s tmp/', async () => {
      for (const {dataDir} of keepers) if ((await tmpFiles(dataDir)).length > 0) return false
      return true
    })
  })

  test('downstream keepers that got other bytes than the upload are not counted, keep nothing of them, and get good copies later', async (t) => {
    const cluster = await clusters.start({keepers: 0, replicas: 3})
    const keepers = await proxiedKeepers(t, cluster, 3)
    for (const {proxy} of keepers) proxy.corruptForwardedUploads = true
    const source = join(clusters.work, 'corrupted-downstream.bin')
    const sha256 = await randomFile(source, SIZE)

    const [put] = await cluster.dfsJson<PutReport[]>(['put', source, '--wait', 'all'])
    assert.equal(put!.sha256, sha256)
    assert.ok(keepers.some(({proxy}) => proxy.corrupted > 0), 'forwarded bytes were corrupted')
    await cluster.waitForReplicas('corrupted-downstream.bin', 3)
    // Only the first keeper, which got the bytes from the client, counted: the other two replicas
    // are copies the replicator ordered, not the corrupted pipeline's.
    assert.ok((await copiesOrdered(cluster)) >= 2, 'the replicator copied to both downstream keepers')
    const blobs = await blobsOn(keepers.map((keeper) => keeper.dataDir), put!.fileId)
    assert.equal(blobs.size, 3)
    for (const [dir, blob] of blobs) assert.equal(blob, sha256, `the bytes on ${dir}`)
    // The first keeper told the others to drop what they held, rather than leave it to expire.
    await waitFor('no held bytes left on any keeper', async () => {
      for (const {dataDir} of keepers) if ((await tmpFiles(dataDir)).length > 0) return false
      return true
    })
  })
})
