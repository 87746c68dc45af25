import assert from 'node:assert/strict'
import {createHash, randomBytes} from 'node:crypto'
import {join} from 'node:path'
import {describe, test} from 'node:test'

import {ERRORS} from '../src/lib/errors.js'
import {GRANT_HEADER} from '../src/lib/grants.js'
import {clusterPerSuite, randomFile, sha256File, waitFor, type TestCluster} from './helpers/cluster.js'
import {clusterKeepers, replicasInTable, replicasOnDisk, tmpEntries} from './helpers/keeper-disk.js'

const MiB = 1024 * 1024

/** Once the cluster settled: the name has 3 alive replicas of `fileId`, and the disks hold exactly what the table records. */
async function assertSettledOn(cluster: TestCluster, name: string, fileId: string): Promise<void> {
  const holders = await cluster.waitForReplicas(name, 3)
  assert.equal(new Set(holders).size, 3)
  const keepers = clusterKeepers(cluster)
  // A loser's bytes may still be on their way out (a delete order, a temp file): wait for them to go.
  await waitFor('the disks to hold exactly the replicas in the table', async () => {
    const [onDisk, inTable] = await Promise.all([replicasOnDisk(keepers), replicasInTable(cluster)])
    return JSON.stringify(onDisk) === JSON.stringify(inTable)
  }).catch(async (error: unknown) => {
    assert.deepEqual(await replicasOnDisk(keepers), await replicasInTable(cluster), String(error))
  })
  // The cluster is shared: the other tests' files are in the table and on the disks too.
  const inTable = await replicasInTable(cluster)
  assert.deepEqual(inTable.filter((replica) => replica.endsWith(`/${fileId}`)), holders.map((keeper) => `${keeper}/${fileId}`).sort())
  for (const keeper of keepers) assert.deepEqual(await tmpEntries(keeper.dataDir), [], `tmp/ of ${keeper.id}`)
  const status = await cluster.keeperStatus()
  assert.equal(status.reduce((sum, keeper) => sum + keeper.files, 0), inTable.length, 'only the winners\' replicas are counted')
}

describe('two puts of one name race', () => {
  // The races are between requests, not servers: no test stops one, each contests a name of its own.
  const shared = clusterPerSuite({keepers: 4})

  test('several dfs put of different bytes under one name: one wins, every other exits DFS_ERR_EXISTS', async () => {
    const cluster = shared.cluster
    const racers = await Promise.all([1, 2, 3].map(async (index) => {
      const path = join(shared.work, `racer-${index}.bin`)
      return {path, sha256: await randomFile(path, 4 * MiB)}
    }))
    const results = await Promise.all(racers.map((racer) => cluster.dfs(['put', racer.path, '--name', 'contested-by-puts.bin'])))

    const winners = results.flatMap((result, index) => (result.code === 0 ? [racers[index]!] : []))
    assert.equal(winners.length, 1, results.map((result) => `${result.code}: ${result.stderr}`).join('\n'))
    for (const loser of results.filter((result) => result.code !== 0)) {
      assert.equal(loser.code, ERRORS.DFS_ERR_EXISTS.exit, loser.stderr)
      assert.match(loser.stderr, /^Error: .*"contested-by-puts\.bin" already exists\n$/)
    }

    const info = await cluster.stat('contested-by-puts.bin')
    assert.equal(info.sha256, winners[0]!.sha256)
    await assertSettledOn(cluster, 'contested-by-puts.bin', info.fileId)
    const out = join(shared.work, 'contested-by-puts.copy')
    assert.equal((await cluster.dfs(['get', 'contested-by-puts.bin', '-o', out])).code, 0)
    assert.equal(await sha256File(out), winners[0]!.sha256)
  })

  test('two uploads that both got a ticket: the second commit is refused with DFS_ERR_EXISTS and its bytes leave the keeper', async () => {
    const cluster = shared.cluster
    const bodies = [randomBytes(2 * MiB), randomBytes(2 * MiB)]
    const sha256s = bodies.map((body) => createHash('sha256').update(body).digest('hex'))
    // Both tickets are handed out while the name is still free: the race is decided at commit.
    const tickets = await Promise.all(bodies.map(async (body, index) => {
      const ticket = await cluster.masterJson<{uploadId: string; keeper: {id: string; url: string}; grant: string}>('/uploads', {
        method: 'POST',
        headers: {'content-type': 'application/json'},
        body: JSON.stringify({name: 'contested-by-commits.bin', size: body.length, sha256: sha256s[index]}),
      })
      assert.equal(ticket.status, 201)
      return ticket.body
    }))
    const answers = await Promise.all(bodies.map(async (body, index) => {
      const response = await fetch(`${tickets[index]!.keeper.url}/files/contested-by-commits.bin?upload=${tickets[index]!.uploadId}`, {
        method: 'PUT',
        headers: {'x-dfs-sha256': sha256s[index]!, 'content-type': 'application/octet-stream', [GRANT_HEADER]: tickets[index]!.grant},
        body,
      })
      return {status: response.status, body: (await response.json()) as {error?: string; fileId?: string}}
    }))

    const won = answers.findIndex((answer) => answer.status === 201)
    const lost = 1 - won
    assert.ok(won >= 0, JSON.stringify(answers))
    assert.equal(answers[lost]!.status, ERRORS.DFS_ERR_EXISTS.status, JSON.stringify(answers))
    assert.equal(answers[lost]!.body.error, 'DFS_ERR_EXISTS')
    const info = await cluster.stat('contested-by-commits.bin')
    assert.equal(info.fileId, tickets[won]!.uploadId)
    assert.equal(info.sha256, sha256s[won])
    // The loser's keeper neither serves nor keeps its bytes.
    const loserKeeper = tickets[lost]!.keeper
    const loserGrant = await cluster.grant('read', loserKeeper.id, {name: 'contested-by-commits.bin', fileId: tickets[lost]!.uploadId})
    assert.equal((await fetch(`${loserKeeper.url}/files/contested-by-commits.bin?fileId=${tickets[lost]!.uploadId}`, {headers: {[GRANT_HEADER]: loserGrant}})).status, 404)
    await assertSettledOn(cluster, 'contested-by-commits.bin', info.fileId)
    const out = join(shared.work, 'contested-by-commits.copy')
    assert.equal((await cluster.dfs(['get', 'contested-by-commits.bin', '-o', out])).code, 0)
    assert.equal(await sha256File(out), sha256s[won])
  })
})
