import assert from 'node:assert/strict'
import {readdir, stat} from 'node:fs/promises'
import {join} from 'node:path'
import {describe, test} from 'node:test'

import {TestCluster, clusterPerTest, randomFile, sha256File, waitFor} from './helpers/cluster.js'
import {startProxiedKeeper} from './helpers/keeper-proxy.js'
import {startDfs, whileRunning} from './helpers/running-dfs.js'

const MiB = 1024 * 1024

/** Resolves with the keeper whose tmp dir first holds an upload in progress. */
async function keeperReceiving(cluster: TestCluster): Promise<number> {
  return waitFor('an upload in progress on some keeper', async () => {
    for (const [index, keeper] of cluster.keepers.entries()) {
      if (keeper.exited) continue
      const entries = await readdir(join(cluster.dataDirOf(keeper), 'tmp')).catch(() => [])
      if (entries.some((entry) => entry.endsWith('.part'))) return index + 1
    }

    return undefined
  }).then((found) => found - 1)
}

describe('keeper failures during transfers', () => {
  const clusters = clusterPerTest()
  let cluster: TestCluster
  const work = () => clusters.work

  test('put survives its target keeper dying mid-upload: it starts again on another keeper', async () => {
    cluster = await clusters.start({keepers: 3})
    const source = join(work(), 'big-put.bin')
    const sha256 = await randomFile(source, 160 * MiB)
    const put = startDfs(['put', source, '--json', ...cluster.clientFlags])
    const target = await keeperReceiving(cluster)
    const victim = cluster.keepers[target]!
    await victim.stop('SIGKILL')

    const result = await put.done
    assert.equal(result.code, 0, result.stderr)
    const [stored] = JSON.parse(result.stdout) as Array<{keeper: string; sha256: string}>
    assert.notEqual(stored!.keeper, victim.id, 'the retry went to another keeper')
    assert.equal(stored!.sha256, sha256)
    const out = join(work(), 'big-put.copy')
    assert.equal((await cluster.dfs(['get', 'big-put.bin', '-o', out])).code, 0)
    assert.equal(await sha256File(out), sha256)

    // The half-written temp file of the killed keeper is gone once it starts again. (A copy the
    // master orders to the returning keeper may have temp files of its own by then.)
    const tmp = join(cluster.dataDirOf(victim), 'tmp')
    const halfWritten = await readdir(tmp)
    assert.ok(halfWritten.some((entry) => entry.endsWith('.part')), `the killed keeper left its temp file: ${halfWritten.join(', ')}`)
    await cluster.addKeeper(cluster.dataDirOf(victim))
    const left = await readdir(tmp)
    assert.deepEqual(halfWritten.filter((entry) => left.includes(entry)), [])
  })

  test('put gives a clear error when every keeper it tries dies, and records nothing', async () => {
    cluster = await clusters.start({keepers: 1})
    const source = join(work(), 'doomed.bin')
    await randomFile(source, 160 * MiB)
    const put = startDfs(['put', source, ...cluster.clientFlags])
    await keeperReceiving(cluster)
    await cluster.keepers[0]!.stop('SIGKILL')
    const result = await put.done
    assert.notEqual(result.code, 0)
    assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr)
    assert.match(result.stderr, /no alive keepers|cannot reach the keeper/)
    assert.deepEqual(await cluster.dfsJson(['ls']), [])
  })

  test('get survives a replica dying mid-download: its ranges move to another replica', async (t) => {
    cluster = await clusters.start({keepers: 2})
    // The victim sits behind a proxy that lets its first four range bodies through whole and holds
    // every later one after 64 KiB: the download is held mid-way, by state, not by timing, until
    // the victim is killed under it.
    const {keeper: victim, proxy} = await startProxiedKeeper(t, cluster, join(cluster.dir, 'victim'))
    const size = 64 * MiB
    const source = join(work(), 'big-get.bin')
    const sha256 = await randomFile(source, size)
    assert.equal((await cluster.dfs(['put', source, '--wait', 'all'])).code, 0)
    assert.equal((await cluster.stat('big-get.bin')).replicas.length, 3)

    proxy.hold(64 * 1024, 4)
    const target = join(work(), 'big-get.copy')
    // --sources 3: every replica stays in use to the end, however busy the client is (left to it,
    // a client whose CPU is the limit keeps the fastest replica alone, and may never meet the victim again).
    const get = startDfs(['get', 'big-get.bin', '-o', target, '--range-size', '256k', '--sources', '3', '--json', ...cluster.clientFlags])
    await whileRunning(get, 'a range from the victim held mid-body', () => proxy.holding > 0)
    await victim.stop('SIGKILL')
    // The proxy reads on: what the keeper sent before it died comes through, then the cut.
    proxy.release()

    const result = await get.done
    assert.equal(result.code, 0, result.stderr)
    assert.equal(await sha256File(target), sha256)
    const [report] = JSON.parse(result.stdout) as [{sources: Array<{keeper: string; bytes: number; failed?: string}>}]
    const sources = report.sources
    assert.deepEqual(sources.map((used) => used.keeper).sort(), [...cluster.keepers.map((keeper) => keeper.id), victim.id].sort())
    const killed = sources.find((used) => used.keeper === victim.id)!
    // Its four whole ranges, and any held one whose bytes were all on their way when it died.
    assert.ok(killed.bytes >= 4 * 256 * 1024 && killed.bytes < size, `the killed keeper served part of the file before it died: ${JSON.stringify(sources)}`)
    assert.ok(killed.failed, `the client met the killed keeper mid-download and dropped it: ${JSON.stringify(sources)}`)
    for (const survivor of sources.filter((used) => used.keeper !== victim.id)) assert.equal(survivor.failed, undefined)
    assert.equal(sources.reduce((sum, used) => sum + used.bytes, 0), size)
  })

  test('a keeper killed after the master stopped copying is repaired at once, not at the next loop tick', async () => {
    // The replication loop runs only hourly here: only the death itself can start the repair.
    cluster = await clusters.start({keepers: 4, masterArgs: ['--replication-interval', '1h']})
    const source = join(work(), 'endangered.bin')
    await randomFile(source, 2 * MiB)
    assert.equal((await cluster.dfs(['put', source, '--wait', 'all'])).code, 0)
    const holders = await cluster.waitForReplicas('endangered.bin', 3)
    const newcomer = cluster.keepers.find((keeper) => !holders.includes(keeper.id))!
    await cluster.keeperById(holders[0]!).stop('SIGKILL')
    await waitFor('the killed keeper to be marked dead', async () => (await cluster.keeperStatus()).find((keeper) => keeper.id === holders[0])?.alive === false)
    // The keeper that had no copy gets one, with no loop tick to start it.
    const repaired = await cluster.waitForReplicas('endangered.bin', 3)
    assert.deepEqual(new Set(repaired), new Set([...holders.slice(1), newcomer.id]))
  })

  test('rm while a keeper is down: the keeper deletes its replica when it comes back, and status shows the space freed', async () => {
    cluster = await clusters.start({keepers: 3})
    const source = join(work(), 'to-delete.bin')
    await randomFile(source, 3 * MiB)
    assert.equal((await cluster.dfs(['put', source, '--wait', 'all'])).code, 0)
    const {fileId, replicas} = await cluster.stat('to-delete.bin')
    const victim = cluster.keeperById(replicas[0]!.keeper)
    const blob = cluster.blobPath(victim.id, fileId)
    await victim.stop('SIGKILL')
    assert.equal((await cluster.dfs(['rm', 'to-delete.bin'])).code, 0)
    assert.equal((await cluster.dfs(['stat', 'to-delete.bin'])).code, 3)
    assert.ok(await stat(blob), 'the dead keeper still has its copy')

    await cluster.addKeeper(cluster.dataDirOf(victim))
    await waitFor('the returning keeper to delete its replica', async () => (await stat(blob).catch(() => undefined)) === undefined)
    await waitFor('status to show the space freed on every keeper', async () => (await cluster.keeperStatus()).every((keeper) => keeper.alive && keeper.storedBytes === 0 && keeper.files === 0))
  })

})
