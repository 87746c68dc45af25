import assert from 'node:assert/strict'
import {stat, truncate} from 'node:fs/promises'
import {join} from 'node:path'
import {describe, test} from 'node:test'

import {flipEvery} from './chaos/disk-faults.js'
import {TestCluster, clusterPerSuite, clusterPerTest, randomFile, sha256File, waitFor} from './helpers/cluster.js'
import {logMessages} from './helpers/server-logs.js'

const MiB = 1024 * 1024

/** Every recorded replica of the file is alive, on disk and byte-exact. */
async function assertAllReplicasGood(cluster: TestCluster, name: string, sha256: string, count: number): Promise<void> {
  await cluster.waitForReplicas(name, count)
  const {fileId, replicas} = await cluster.stat(name)
  for (const replica of replicas) {
    assert.equal(await sha256File(cluster.blobPath(replica.keeper, fileId)), sha256, `replica on ${replica.keeper}`)
  }
}

describe('corrupt replicas are found, dropped and copied again', () => {
  const clusters = clusterPerTest()
  let cluster: TestCluster
  const work = () => clusters.work

  test('get that meets a corrupt replica still returns the right bytes and reports the bad one', async () => {
    cluster = await clusters.start({keepers: 4})
    const source = join(work(), 'rotten.bin')
    const sha256 = await randomFile(source, 8 * MiB)
    assert.equal((await cluster.dfs(['put', source, '--wait', 'all'])).code, 0)
    const stored = await cluster.stat('rotten.bin')
    const bad = stored.replicas[0]!
    const badBlob = cluster.blobPath(bad.keeper, stored.fileId)
    // Damage every 64 KiB, so that whichever ranges this replica serves are wrong.
    await flipEvery(badBlob, 64 * 1024)

    const out = join(work(), 'rotten.copy')
    const [result] = await cluster.dfsJson<[{sha256: string; corruptReplicas: string[]}]>(['get', 'rotten.bin', '-o', out, '--range-size', '256k'])
    assert.equal(await sha256File(out), sha256)
    assert.deepEqual(result.corruptReplicas, [bad.keeper])
    // Its keeper verified it, dropped it and told the master; a good copy takes its place.
    assert.ok(cluster.keeperById(bad.keeper).logs.some((line) => line.includes('is corrupt')))
    await assertAllReplicasGood(cluster, 'rotten.bin', sha256, 3)
  })

  // The scrubber's tests damage a file of their own and stop no server: one cluster serves both.
  // Three keepers for three replicas: a dropped replica can only be copied back where it was.
  describe('by the scrubber', () => {
    const shared = clusterPerSuite({keepers: 3, keeperArgs: ['--scrub-interval', '200ms']})

    test('the scrubber finds a corrupt replica that nobody reads, and the file is repaired', async () => {
      const cluster = shared.cluster
      const source = join(shared.work, 'quiet.bin')
      const sha256 = await randomFile(source, 2 * MiB)
      assert.equal((await cluster.dfs(['put', source, '--wait', 'all'])).code, 0)
      const stored = await cluster.stat('quiet.bin')
      const bad = stored.replicas[1]!
      const badBlob = cluster.blobPath(bad.keeper, stored.fileId)
      await flipEvery(badBlob, 1024 * 1024)

      const keeper = cluster.keeperById(bad.keeper)
      await waitFor('the scrubber to report the corrupt replica', () => logMessages(keeper).some((message) => message.includes(`"quiet.bin" (${stored.fileId}) is corrupt`)))
      // The master heard of it and dropped that replica from the table (fsck counts the corruption
      // only until a good copy is made, so the master's log is the witness) …
      await waitFor('the master to drop the corrupt replica', () =>
        logMessages(cluster.master).some((message) => message.includes(`replica of "quiet.bin" on ${bad.keeper} is corrupt`)),
      )
      // … so 2 replicas are left in the table, and 3 good ones again means a good copy was made.
      await assertAllReplicasGood(cluster, 'quiet.bin', sha256, 3)
    })

    test('a truncated replica is found by the scrubber too', async () => {
      const cluster = shared.cluster
      const source = join(shared.work, 'short.bin')
      const sha256 = await randomFile(source, 3 * MiB)
      assert.equal((await cluster.dfs(['put', source, '--wait', 'all'])).code, 0)
      const stored = await cluster.stat('short.bin')
      const bad = stored.replicas[2]!
      const badBlob = cluster.blobPath(bad.keeper, stored.fileId)
      await truncate(badBlob, MiB)
      const keeper = cluster.keeperById(bad.keeper)
      await waitFor('the scrubber to report the truncated replica', () => logMessages(keeper).some((message) => message.includes(`"short.bin" (${stored.fileId}) is corrupt`)))
      await waitFor('the truncated replica to be replaced', async () => (await stat(badBlob).catch(() => undefined))?.size === 3 * MiB)
      await assertAllReplicasGood(cluster, 'short.bin', sha256, 3)
    })
  })

  test('fsck reports missing files and exits non-zero; healthy again once the keepers are back', async () => {
    cluster = await clusters.start({keepers: 2, replicas: 2})
    const source = join(work(), 'fragile.bin')
    await randomFile(source, MiB)
    assert.equal((await cluster.dfs(['put', source, '--wait', 'all'])).code, 0)
    const healthy = await cluster.dfs(['fsck'])
    assert.equal(healthy.code, 0, healthy.stderr)
    assert.match(healthy.stdout, /HEALTHY/)

    const dirs = cluster.keepers.map((keeper) => cluster.dataDirOf(keeper))
    for (const keeper of cluster.keepers) await keeper.stop('SIGKILL')
    await waitFor('both keepers dead', async () => (await cluster.keeperStatus()).every((keeper) => !keeper.alive))
    const missing = await cluster.dfs(['fsck'])
    assert.equal(missing.code, 1)
    assert.match(missing.stdout, /fragile\.bin .*MISSING/)
    assert.match(missing.stdout, /The filesystem is MISSING/)
    const json = await cluster.dfs(['fsck', '--json'])
    assert.equal(json.code, 1)
    assert.equal((JSON.parse(json.stdout) as {status: string}).status, 'missing')

    for (const dir of dirs) await cluster.addKeeper(dir)
    // Polled over HTTP (a CLI start per poll costs more than the wait), then asked of the command.
    await waitFor('fsck no longer missing', async () => (await cluster.masterJson<{status: string}>('/fsck')).body.status !== 'missing')
    const again = await cluster.dfs(['fsck'])
    assert.equal(again.code, 0, again.stdout)
  })
})
