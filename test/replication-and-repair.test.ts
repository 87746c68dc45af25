import assert from 'node:assert/strict'
import {rm, stat} from 'node:fs/promises'
import {join} from 'node:path'
import {after, before, describe, test} from 'node:test'

import {FIXTURES, SAMPLES, TestCluster, clusterPerTest, randomFile, sha256File, tempDir, waitFor} from './helpers/cluster.js'
import {logMessages} from './helpers/server-logs.js'

const MiB = 1024 * 1024

// One cluster that no test harms; every test stores the files it needs under names of its own.
describe('replication and parallel download', () => {
  let cluster: TestCluster
  let work: string

  before(async () => {
    cluster = await TestCluster.start({keepers: 4})
    work = await tempDir()
  })
  after(async () => {
    await cluster.stop()
    await rm(work, {recursive: true, force: true})
  })

  test('a stored file is copied to 3 distinct alive keepers', async () => {
    const put = await cluster.dfs(['put', join(FIXTURES, 'sample_1.mp4'), '--name', 'copied.mp4'])
    assert.equal(put.code, 0, put.stderr)
    const holders = await cluster.waitForReplicas('copied.mp4', 3)
    assert.equal(new Set(holders).size, 3)
    // Each replica really is on that keeper's disk, and byte-exact.
    const {fileId, replicas} = await cluster.stat('copied.mp4')
    for (const replica of replicas) {
      assert.equal(await sha256File(cluster.blobPath(replica.keeper, fileId)), SAMPLES['sample_1.mp4'].sha256)
    }
  })

  test('get downloads ranges from several replicas in parallel and verifies the result', async () => {
    const size = 6 * MiB + 123
    const source = join(work, 'ranged.bin')
    const sha256 = await randomFile(source, size)
    assert.equal((await cluster.dfs(['put', source, '--wait', 'all'])).code, 0)
    const out = join(work, 'ranged.copy')
    const [result] = await cluster.dfsJson<[{sha256: string; sources: Array<{keeper: string; bytes: number; ranges: number}>}]>([
      'get', 'ranged.bin', '-o', out, '--range-size', '256k',
    ])
    assert.equal(await sha256File(out), sha256)
    assert.equal(result.sha256, sha256)
    const used = result.sources.filter((source) => source.bytes > 0)
    assert.ok(used.length >= 2, `ranges came from ${used.length} replica(s): ${JSON.stringify(result.sources)}`)
    assert.equal(result.sources.reduce((sum, source) => sum + source.bytes, 0), size)
  })

  test('get --sources 1 reads from one replica only', async () => {
    const source = join(work, 'single.bin')
    const sha256 = await randomFile(source, 3 * MiB)
    assert.equal((await cluster.dfs(['put', source, '--wait', 'all'])).code, 0)
    const out = join(work, 'single.copy')
    const [result] = await cluster.dfsJson<[{sources: Array<{bytes: number}>}]>(['get', 'single.bin', '-o', out, '--sources', '1', '--range-size', '256k'])
    assert.equal(result.sources.length, 1)
    assert.equal(result.sources[0]!.bytes, 3 * MiB)
    assert.equal(await sha256File(out), sha256)
  })
})

// These tests kill keepers: each has a cluster of its own.
describe('repair after a keeper dies', () => {
  const clusters = clusterPerTest()

  /** Stores a file, waits for its 3 replicas, kills one holder and waits until the master says it is dead. */
  async function storeAndKillAHolder(cluster: TestCluster, name: string) {
    const put = await cluster.dfs(['put', join(FIXTURES, 'sample_1.mp4'), '--name', name, '--wait', 'all'])
    assert.equal(put.code, 0, put.stderr)
    const holders = await cluster.waitForReplicas(name, 3)
    const victim = cluster.keeperById(holders[0]!)
    await victim.stop('SIGKILL')
    // The master still records the copy on the dead keeper, but no longer counts it alive.
    await waitFor('the master to mark the killed keeper and its replica dead', async () => {
      const replica = (await cluster.stat(name)).replicas.find((candidate) => candidate.keeper === victim.id)
      const keeper = (await cluster.keeperStatus()).find((candidate) => candidate.id === victim.id)
      return replica?.alive === false && keeper?.alive === false
    })
    return {holders, victim, survivors: holders.slice(1)}
  }

  test('a keeper killed with SIGKILL is marked dead and its files are copied back to 3 alive replicas', async () => {
    const cluster = await clusters.start({keepers: 4})
    const {holders, victim, survivors} = await storeAndKillAHolder(cluster, 'endangered.mp4')
    // The one keeper that had no copy gets one from a survivor.
    const newcomer = cluster.keepers.find((keeper) => !holders.includes(keeper.id))!
    const repaired = await cluster.waitForReplicas('endangered.mp4', 3)
    assert.deepEqual(new Set(repaired), new Set([...survivors, newcomer.id]))
    const {fileId, replicas} = await cluster.stat('endangered.mp4')
    assert.deepEqual(replicas.filter((replica) => !replica.alive).map((replica) => replica.keeper), [victim.id])
    for (const replica of replicas.filter((candidate) => candidate.alive)) {
      assert.equal(await sha256File(cluster.blobPath(replica.keeper, fileId)), SAMPLES['sample_1.mp4'].sha256, `replica on ${replica.keeper}`)
    }

    const out = join(clusters.work, 'after-kill.mp4')
    const get = await cluster.dfs(['get', 'endangered.mp4', '-o', out])
    assert.equal(get.code, 0, get.stderr)
    assert.equal(await sha256File(out), SAMPLES['sample_1.mp4'].sha256)
  })

  test('the killed keeper restarted on its data dir keeps its id and its files, and is alive again', async () => {
    const cluster = await clusters.start({keepers: 4})
    const {victim} = await storeAndKillAHolder(cluster, 'returning.mp4')
    await waitFor('the file repaired without the dead keeper', async () => {
      const replicas = (await cluster.stat('returning.mp4')).replicas
      return replicas.filter((replica) => replica.alive).length === 3 && replicas.every((replica) => replica.keeper !== victim.id || !replica.alive)
    })

    const registrations = () => logMessages(cluster.master).filter((message) => message.includes(`keeper ${victim.id} registered`))
    const before = registrations().length
    const restarted = await cluster.addKeeper(cluster.dataDirOf(victim))
    assert.equal(restarted.id, victim.id)
    await waitFor('the restarted keeper to be alive', async () => (await cluster.keeperStatus()).find((keeper) => keeper.id === victim.id)?.alive)
    // It came back with its file in its inventory …
    const registration = await waitFor('the master to log the registration', () => registrations()[before])
    assert.match(registration, /with 1 files/)
    // … which counts again: 4 alive replicas for a target of 3, so the master trims one …
    const trimmed = await waitFor('the master to trim the surplus replica', () => {
      for (const message of logMessages(cluster.master)) {
        const match = /^trimming surplus replica of "returning\.mp4" on (\S+)$/.exec(message)
        if (match) return match[1]!
      }

      return undefined
    })
    // … and its keeper deletes it from its disk, leaving 3 good replicas.
    const {fileId} = await cluster.stat('returning.mp4')
    const blob = cluster.blobPath(trimmed, fileId)
    await waitFor('the trimmed keeper to delete its copy', async () => (await stat(blob).catch(() => undefined)) === undefined)
    await cluster.waitForReplicas('returning.mp4', 3)
    for (const replica of (await cluster.stat('returning.mp4')).replicas.filter((candidate) => candidate.alive)) {
      assert.equal(await sha256File(cluster.blobPath(replica.keeper, fileId)), SAMPLES['sample_1.mp4'].sha256, `replica on ${replica.keeper}`)
    }
  })
})
