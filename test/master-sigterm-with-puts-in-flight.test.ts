import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import {once} from 'node:events'
import {readdir} from 'node:fs/promises'
import {basename, join} from 'node:path'
import {describe, test} from 'node:test'

import {BIN, TestCluster, clusterPerTest, randomFile, sha256File, waitFor} from './helpers/cluster.js'
import {holdUpload} from './helpers/held-upload.js'
import {assertPutOutcomes, type PutOutcome} from './helpers/put-outcomes.js'

const MiB = 1024 * 1024

describe('the master stopped (SIGTERM) while puts are in flight', () => {
  const clusters = clusterPerTest()

  // Back only once every put has ended: those whose commit came too late fail, and nothing of
  // theirs may stay anywhere (a put whose commit made it before the stop succeeded).
  test('master back late: each put succeeds or fails with a catalogue error; nothing is half-recorded or left on a keeper', async () => {
    const {cluster, outcomes, held, sources} = await putsAcrossMasterStop(clusters, 'after the puts')
    assert.equal(held.status, 502)
    assert.equal(held.error, 'DFS_ERR_MASTER_UNREACHABLE')
    await assertNothingHalfRecorded(cluster, outcomes, sources)
  })

  // Back at once: uploads whose ticket died with the old master start again on the new one.
  test('master back at once: each put succeeds or fails with a catalogue error; every file listed is whole, with 3 good replicas', async () => {
    const {cluster, outcomes, held, sources} = await putsAcrossMasterStop(clusters, 'at once')
    // The held upload's commit reached the new master (unknown ticket) or none at all.
    assert.ok(
      (held.status === 410 && held.error === 'DFS_ERR_UNKNOWN_UPLOAD') || (held.status === 502 && held.error === 'DFS_ERR_MASTER_UNREACHABLE'),
      JSON.stringify(held),
    )
    await assertNothingHalfRecorded(cluster, outcomes, sources)
  })
})

type Clusters = ReturnType<typeof clusterPerTest>

/**
 * Starts six 9 MiB puts (one CLI run) and one upload held half-way, stops the master with SIGTERM
 * while the puts are on the keepers, releases the held upload, and starts the master again on the
 * same port and data, either at once or once the put has exited.
 */
async function putsAcrossMasterStop(clusters: Clusters, restart: 'at once' | 'after the puts') {
  const cluster = await clusters.start({keepers: 4})
  const sources = new Map<string, string>()
  const paths: string[] = []
  for (let index = 1; index <= 6; index++) {
    const path = join(clusters.work, `in-flight-${restart === 'at once' ? 'a' : 'b'}${index}.bin`)
    sources.set(basename(path), await randomFile(path, SIZE))
    paths.push(path)
  }

  // One upload held half-way is surely in flight when the master goes; the CLI's are wherever
  // they happen to be.
  const held = await holdUpload(cluster.masterUrl, cluster.token, 'held.bin')
  const put = spawn(process.execPath, [BIN, 'put', ...paths, '--json', '--concurrency', '6', ...cluster.clientFlags], {stdio: ['ignore', 'pipe', 'pipe']})
  let stdout = ''
  let stderr = ''
  put.stdout.on('data', (chunk: Buffer) => (stdout += chunk))
  put.stderr.on('data', (chunk: Buffer) => (stderr += chunk))
  const putDone = once(put, 'close') as Promise<[number | null]>
  // Each upload under way has two temp files (the bytes and their description): the held one's, and more.
  await waitFor('uploads of the CLI in progress on the keepers', async () => (await partsOnKeepers(cluster)) >= 4)

  assert.equal(await cluster.master.stop('SIGTERM'), 0, 'the master stops gracefully')
  held.release()
  if (restart === 'at once') await cluster.startMaster()
  const heldAnswer = await held.response
  assert.ok('status' in heldAnswer, `the held upload got an answer: ${'error' in heldAnswer ? heldAnswer.error.message : ''}`)
  const [code] = await putDone
  if (restart === 'after the puts') await cluster.startMaster()

  const outcomes = assertPutOutcomes({code, stdout, stderr}, 6, sources)
  return {cluster, outcomes, sources, held: {status: heldAnswer.status, error: (heldAnswer.body as {error?: string} | undefined)?.error}}
}

const SIZE = 9 * MiB

/**
 * Every confirmed put is listed; whatever is listed is whole (a failed put may still have been
 * recorded: its answer was what got lost) and gets 3 good replicas; no bytes stay on a keeper
 * without a record (undecided uploads are settled with the master that came back), and no temp file.
 */
async function assertNothingHalfRecorded(cluster: TestCluster, outcomes: PutOutcome[], sources: Map<string, string>): Promise<void> {
  const listed = await cluster.dfsJson<Array<{name: string; size: number; sha256: string}>>(['ls'])
  for (const outcome of outcomes) if ('sha256' in outcome) assert.ok(listed.some((file) => file.name === outcome.name), `confirmed ${outcome.name} is listed`)
  for (const file of listed) {
    assert.equal(file.sha256, sources.get(file.name), `${file.name} is one of the uploads, whole`)
    assert.equal(file.size, SIZE)
  }

  for (const file of listed) {
    await cluster.waitForReplicas(file.name, 3)
    const {fileId, replicas} = await cluster.stat(file.name)
    for (const replica of replicas) {
      assert.equal(await sha256File(cluster.blobPath(replica.keeper, fileId)), file.sha256, `${file.name} on ${replica.keeper}`)
    }
  }

  await waitFor('every blob on a keeper to be a recorded replica', async () => {
    const recorded = new Set<string>()
    for (const file of listed) {
      const {fileId, replicas} = await cluster.stat(file.name)
      for (const replica of replicas) recorded.add(`${replica.keeper}/${fileId}`)
    }
    const onDisk = await blobsOnKeepers(cluster)
    return onDisk.length === recorded.size && onDisk.every((blob) => recorded.has(blob))
  })
  assert.equal(await partsOnKeepers(cluster), 0)
}

async function partsOnKeepers(cluster: TestCluster): Promise<number> {
  let count = 0
  for (const keeper of cluster.keepers) count += (await readdir(join(cluster.dataDirOf(keeper), 'tmp'))).length
  return count
}

/** `keeperId/fileId` of every blob on the keepers' disks. */
async function blobsOnKeepers(cluster: TestCluster): Promise<string[]> {
  const blobs: string[] = []
  for (const keeper of cluster.keepers) {
    const dir = join(cluster.dataDirOf(keeper), 'blobs')
    for (const entry of await readdir(dir)) if (!entry.endsWith('.json')) blobs.push(`${keeper.id}/${entry}`)
  }

  return blobs
}
